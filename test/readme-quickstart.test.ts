/**
 * The README's quick-start command, exactly as a new user types it after `npm ci`: `npx videolm run …` runs the
 * built CLI (dist/, made by `npm run build`, which `npm test` and `npm ci` run first).
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { repoRoot } from "../src/testing/tiny-checkpoint.js";

const ROOT = repoRoot();

describe("README quick start", () => {
  it('npx videolm run examples/demo.mp4 "what color is the triangle?" answers from the built-in model', () => {
    const readme = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");
    const command = 'npx videolm run examples/demo.mp4 "what color is the triangle?"';
    expect(readme).toContain(command);
    const example = JSON.parse(fs.readFileSync(path.join(ROOT, "examples/demo.json"), "utf8"));
    const expected = example.questions.find((q: { question: string }) => q.question === "what color is the triangle?").answer;
    const r = spawnSync("sh", ["-c", command], { cwd: ROOT, encoding: "utf8", timeout: 120_000, env: { ...process.env, VIDEOLM_CACHE: path.join(ROOT, ".cache", "test-cache", "quickstart") } });
    expect(r.stderr).not.toMatch(/Permission denied|not found/);
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe(expected);
  });
});
