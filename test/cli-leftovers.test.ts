/**
 * A videolm process leaves nothing behind: no files in TMPDIR (onnxruntime's bundled telemetry client wrote an empty
 * `mat-debug-<pid>.log` and a `.ses` file from every process that created a session, src/onnx/no-telemetry.ts), and
 * `npx videolm` inside the repository prints no npm warning (a project .npmrc with a key npm does not know did).
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { repoRoot } from "../src/testing/tiny-checkpoint.js";

const ROOT = repoRoot();
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "videolm-leftovers-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe("a videolm process leaves nothing behind", () => {
  it("running the demo model writes no files into TMPDIR", () => {
    const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: tmp, TMP: tmp, TEMP: tmp };
    delete env.ORT_DISABLE_TELEMETRY;
    const r = spawnSync(process.execPath, [path.join(ROOT, "node_modules/tsx/dist/cli.mjs"), path.join(ROOT, "src/cli/main.ts"), "run", "-q", "--max-new-tokens", "2", path.join(ROOT, "examples/demo.mp4"), "what color is the triangle?"], {
      encoding: "utf8",
      env,
      timeout: 120_000,
    });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    // tsx keeps its compile cache in a folder of its own under TMPDIR; everything else is videolm's.
    const left = fs.readdirSync(tmp).filter((name) => !name.startsWith("tsx-"));
    expect(left).toEqual([]);
  });

  it("npx videolm prints no npm warning", () => {
    const r = spawnSync("npx", ["--no-install", "videolm", "models"], { cwd: ROOT, encoding: "utf8", timeout: 60_000 });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("qwen2_vl");
    expect(r.stderr).not.toMatch(/npm warn/i);
  });
});
