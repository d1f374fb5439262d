/**
 * `videolm events` / `videolm ground` as a user runs them (a child process) on the tiny Qwen2-VL checkpoint: output
 * formats, -o, exit codes, errors. The tiny model's random weights write no span on their own (exit 3, the text
 * shown); held to a span pattern (a checkpoint's `videolm_events` regex, constrained decoding) they always do.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseSrt } from "../src/events/format.js";
import { materializeTinyCheckpoint, repoRoot } from "../src/testing/tiny-checkpoint.js";
import { makeTestVideo } from "./server-helpers.js";
import { runCliAsync } from "./cli-helpers.js";

const ROOT = repoRoot();
const FIXTURES = path.join(ROOT, "test/fixtures/qwen2-vl");
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "videolm-cli-events-"));
let model: string;
let spanModel: string;
let video: string;

/** Runs the CLI (asynchronously: a blocking spawnSync of minutes starves vitest's worker RPC). */
function videolm(args: string[]) {
  return runCliAsync(process.execPath, [path.join(ROOT, "node_modules/tsx/dist/cli.mjs"), path.join(ROOT, "src/cli/main.ts"), ...args], {
    env: { ...process.env, VIDEOLM_CACHE: path.join(dir, "cache") },
    timeout: 180_000,
  });
}

beforeAll(async () => {
  model = await materializeTinyCheckpoint(path.join(FIXTURES, "qwen2-vl-tiny"), path.join(dir, "tiny"));
  // The same weights with a grounding prompt and answer pattern of its own (as the demo model ships).
  spanModel = await materializeTinyCheckpoint(path.join(FIXTURES, "qwen2-vl-tiny"), path.join(dir, "tiny-spans"));
  const vpc = path.join(spanModel, "video_preprocessor_config.json");
  const base = fs.existsSync(vpc) ? JSON.parse(fs.readFileSync(vpc, "utf8")) : {};
  const span = "from 0\\.[05] to 1\\.[05] seconds"; // always a span inside the 2 s clip
  fs.writeFileSync(vpc, JSON.stringify({ ...base, videolm_events: { grounding: "when is the {query} visible?", groundingFormat: { type: "regex", pattern: span }, dense: "list the events.", denseFormat: { type: "regex", pattern: `${span}: the [a-z]{1,8}` } } }));
  video = makeTestVideo(dir);
}, 180_000);
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe("videolm events / ground", () => {
  it("no span in the answer: exit 3, the model's text shown, a warning; JSON on a pipe", async () => {
    const r = await videolm(["events", video, "--model", model, "--max-new-tokens", "4", "--fps", "2"]);
    expect(r.code).toBe(3);
    const out = JSON.parse(r.stdout); // stdout is a pipe here: JSON by default
    expect(out).toMatchObject({ task: "dense", events: [], parsed: false, duration: 2, constrained: false });
    expect(typeof out.raw).toBe("string");
    expect(out.prompt).toMatch(/^The video contains 4 frames sampled at 0\.0(, \d\.\d){3} seconds\.\n/); // the frames' clip times
    expect(r.stderr).toMatch(/no event could be read from the model's answer/);
    const srt = await videolm(["ground", video, "a pattern", "--model", model, "--max-new-tokens", "4", "--fps", "2", "--format", "srt", "-q"]);
    expect(srt.code).toBe(3);
    expect(srt.stdout).toBe(`${JSON.parse((await videolm(["ground", video, "a pattern", "--model", model, "--max-new-tokens", "4", "--fps", "2", "--json", "-q"])).stdout).raw}\n`);
  }, 240_000);

  it("constrained to the checkpoint's span pattern: events, exit 0, in every format; -o takes the format from the extension", async () => {
    const json = await videolm(["ground", video, "The pattern", "--model", spanModel, "--max-new-tokens", "24", "-q"]);
    expect(json.code).toBe(0);
    const out = JSON.parse(json.stdout);
    expect(out.constrained).toBe(true);
    expect(out.prompt).toBe("when is the pattern visible?");
    expect(out.raw).toMatch(/^from 0\.[05] to 1\.[05] seconds$/);
    const [a, b] = [...out.raw.matchAll(/\d\.\d/g)].map((m: RegExpMatchArray) => Number(m[0]));
    expect(out.events).toEqual([{ start: a, end: b, text: "The pattern" }]);

    const file = path.join(dir, "out.srt");
    const toFile = await videolm(["ground", video, "The pattern", "--model", spanModel, "--max-new-tokens", "24", "-o", file]);
    expect(toFile.code).toBe(0);
    expect(parseSrt(fs.readFileSync(file, "utf8"))).toEqual(out.events.map((e: { start: number; end: number; text: string }) => ({ ...e, start: Math.round(e.start * 1000) / 1000, end: Math.round(e.end * 1000) / 1000 })));
    expect(toFile.stderr).toMatch(/\[1 event in 2 s of video → .*out\.srt; \d+ prompt tokens, \d+ generated \(constrained: regex\)/);

    const csv = await videolm(["ground", video, "The pattern", "--model", spanModel, "--max-new-tokens", "24", "--format", "csv", "-q"]);
    expect(csv.stdout.split("\n")[0]).toMatch(/start/i);
    const free = JSON.parse((await videolm(["ground", video, "The pattern", "--model", spanModel, "--max-new-tokens", "6", "--no-constrained", "--json", "-q"])).stdout);
    expect(free.constrained).toBe(false);
  }, 300_000);

  it("usage errors: one line, exit 1", async () => {
    const cases: [string[], RegExp][] = [
      [["ground", video, "--model", model], /ground: give the query as one quoted argument/],
      [["events", "--model", model], /events: give one video/],
      [["events", video, "extra", "--model", model], /unexpected argument "extra"/],
      [["events", video, "--model", model, "--format", "xml"], /--format must be one of table, json, srt, vtt, csv/],
      [["events", video, "--model", model, "-o", path.join(dir, "x.txt")], /cannot tell the format from the extension/],
      [["events", video, "--model", model, "--constrained", "--no-constrained"], /contradict/],
      [["events", video, "--model", model, "--json", "--format", "srt"], /contradict/],
      [["events", video, "--model", model, "--image", video], /takes a video, not images/],
    ];
    for (const [args, message] of cases) {
      const r = await videolm(args);
      expect(r.code, args.join(" ")).toBe(1);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
    }
  }, 240_000);

  it("--help", async () => {
    const r = await videolm(["ground", "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Usage: videolm ground VIDEO "QUERY"/);
  });
});
