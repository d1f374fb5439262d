/**
 * `videolm run --response-format`: the flag's forms (json, json_schema:FILE, regex:PATTERN) and their errors, and a
 * run of the tiny checkpoint held to a pattern its random weights would never follow on their own; `run --events`.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { responseFormatFlag } from "../src/cli/response-format.js";
import { materializeTinyCheckpoint, repoRoot } from "../src/testing/tiny-checkpoint.js";
import { makeTestVideo } from "./server-helpers.js";

const ROOT = repoRoot();
const FIXTURES = path.join(ROOT, "test/fixtures/qwen2-vl");
const golden = JSON.parse(fs.readFileSync(path.join(FIXTURES, "qwen2-vl-tiny/golden.json"), "utf8"));
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "videolm-cli-rf-"));
let model: string;

beforeAll(async () => {
  model = await materializeTinyCheckpoint(path.join(FIXTURES, "qwen2-vl-tiny"), path.join(dir, "tiny"));
}, 120_000);
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function videolm(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(ROOT, "node_modules/tsx/dist/cli.mjs"), path.join(ROOT, "src/cli/main.ts"), ...args], {
      env: { ...process.env, VIDEOLM_CACHE: path.join(dir, "cache") },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("run --events", () => {
  it("reads the answer's spans as events of the video's clip (held to a span here: random weights write none)", async () => {
    const video = makeTestVideo(dir); // 2 s
    const r = await videolm(["run", "--model", model, "--video", video, "--fps", "2", "--start", "0.5", "--max-new-tokens", "16", "--response-format", "regex:from 0\\.5 to 1\\.[05] seconds", "--events", "--json", "-q", "When?"]);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    const [a, b] = [...out.text.matchAll(/\d\.\d/g)].map((m: RegExpMatchArray) => Number(m[0]));
    expect(out.events).toEqual({ events: [{ start: a, end: b, text: "" }], parsed: true, warnings: [], duration: 1.5 });
    const image = path.join(FIXTURES, golden.cases.image.messages[0].content[0].image);
    const noVideo = await videolm(["run", "--model", model, "--image", image, "--events", "-q", "When?"]);
    expect(noVideo.code).toBe(1);
    expect(noVideo.stderr).toMatch(/--events reads the answer's times as spans of a video/);
  }, 240_000);
});

describe("--response-format", () => {
  it("reads json, json_schema:FILE (a bare schema or a whole response_format) and regex:PATTERN", () => {
    expect(responseFormatFlag("json")).toEqual({ type: "json_object" });
    expect(responseFormatFlag("regex:(yes|no)")).toEqual({ type: "regex", pattern: "(yes|no)" });
    expect(responseFormatFlag(undefined)).toBeUndefined();
    const schema = { type: "object", properties: { a: { type: "integer" } }, required: ["a"], additionalProperties: false };
    fs.writeFileSync(path.join(dir, "schema.json"), JSON.stringify(schema));
    expect(responseFormatFlag(`json_schema:${path.join(dir, "schema.json")}`)).toMatchObject({ type: "json_schema", json_schema: { schema } });
    fs.writeFileSync(path.join(dir, "format.json"), JSON.stringify({ type: "json_schema", json_schema: { name: "n", schema } }));
    expect(responseFormatFlag(`json_schema:${path.join(dir, "format.json")}`)).toMatchObject({ type: "json_schema", json_schema: { name: "n", schema } });
  });

  it("refuses what it cannot use, naming the flag", () => {
    expect(() => responseFormatFlag("xml")).toThrow(/--response-format must be json, json_schema:FILE or regex:PATTERN/);
    expect(() => responseFormatFlag("regex:(")).toThrow(/--response-format regex: "\(": missing/);
    expect(() => responseFormatFlag(`json_schema:${path.join(dir, "missing.json")}`)).toThrow(/no such file/);
    fs.writeFileSync(path.join(dir, "bad.json"), "{");
    expect(() => responseFormatFlag(`json_schema:${path.join(dir, "bad.json")}`)).toThrow(/not JSON/);
  });

  it("holds the tiny model's answer to a pattern", async () => {
    const image = path.join(FIXTURES, golden.cases.image.messages[0].content[0].image);
    const r = await videolm(["run", "--model", model, "--image", image, "--max-new-tokens", "8", "--response-format", "regex:(yes|no)", "-q", "Is it red?"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^(yes|no)\n$/);
    const free = await videolm(["run", "--model", model, "--image", image, "--max-new-tokens", "8", "-q", "Is it red?"]);
    expect(free.stdout).not.toMatch(/^(yes|no)\n$/); // the random weights on their own
  }, 240_000);
});
