/**
 * `videolm run` as a user runs it: a real child process, streamed text or one JSON object on stdout, progress
 * and errors on stderr, exit codes.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { materializeTinyCheckpoint, repoRoot } from "../src/testing/tiny-checkpoint.js";

const ROOT = repoRoot();
const FIXTURES = path.join(ROOT, "test/fixtures/qwen2-vl");
const golden = JSON.parse(fs.readFileSync(path.join(FIXTURES, "qwen2-vl-tiny/golden.json"), "utf8"));
let model: string;
const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), "videolm-cli-"));

function videolm(args: string[], input?: string) {
  const r = spawnSync(process.execPath, [path.join(ROOT, "node_modules/tsx/dist/cli.mjs"), path.join(ROOT, "src/cli/main.ts"), ...args], {
    encoding: "utf8",
    input,
    env: { ...process.env, VIDEOLM_CACHE: cacheDir },
    timeout: 120_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(async () => {
  model = await materializeTinyCheckpoint(path.join(FIXTURES, "qwen2-vl-tiny"));
});
afterAll(() => fs.rmSync(cacheDir, { recursive: true, force: true }));

describe("videolm run", () => {
  const image = path.join(FIXTURES, golden.cases.image.messages[0].content[0].image);
  const question = golden.cases.image.messages[0].content[1].text;

  it("--json prints one object with the reference's greedy tokens", () => {
    const r = videolm(["run", "--model", model, "--image", image, "--max-new-tokens", "12", "--json", question]);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.tokens).toEqual(golden.cases.image.greedy.new_tokens);
    expect(out.promptTokens).toBe(golden.cases.image.input_ids.length);
    expect(out.text).toBe(golden.cases.image.greedy.text);
    expect(out.finishReason).toBe("length");
    for (const k of ["loadMs", "visionMs", "prefillMs", "ttftMs", "decodeTokensPerSecond"]) expect(typeof out.timings[k]).toBe("number");
    expect(r.stderr).toMatch(/Converting qwen2-vl-tiny/); // first load converts, with progress on stderr
  });

  it("streams the answer text to stdout and a summary to stderr", () => {
    const r = videolm(["run", "--model", model, "--image", image, "--max-new-tokens", "12", question]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(golden.cases.image.greedy.text + "\n");
    expect(r.stderr).toMatch(/\d+ prompt tokens, 12 generated/);
    expect(r.stderr).not.toMatch(/Converting/); // second load uses the cache
  });

  it("--logprobs N: each token's text, logprob and top N alternatives, as JSON or as a table after the answer", () => {
    const args = ["run", "--model", model, "--image", image, "--max-new-tokens", "6", "--logprobs", "2", "-q"];
    const json = JSON.parse(videolm([...args, "--json", question]).stdout);
    expect(json.logprobs).toHaveLength(6);
    expect(json.logprobs.map((e: { token: number }) => e.token)).toEqual(json.tokens);
    for (const e of json.logprobs) {
      expect(typeof e.text).toBe("string");
      expect(e.logprob).toBeLessThanOrEqual(0);
      expect(e.top).toHaveLength(2);
      for (const t of e.top) expect(Object.keys(t).sort()).toEqual(["logprob", "text", "token"]);
    }
    expect(json.logprobs.map((e: { text: string }) => e.text).join("")).toBe(json.text);

    const r = videolm([...args, question]);
    expect(r.code).toBe(0);
    const [answer, blank, header, ...rows] = r.stdout.trimEnd().split("\n");
    expect(answer).toBe(json.text);
    expect(blank).toBe("");
    expect(header).toMatch(/^#\s+token\s+logprob\s+top 2$/);
    expect(rows).toHaveLength(6);
    json.logprobs.forEach((e: { text: string; logprob: number; top: { text: string; logprob: number }[] }, i: number) => {
      expect(rows[i]).toContain(`${i}  ${JSON.stringify(e.text)}`);
      expect(rows[i]).toContain(e.logprob.toFixed(4));
      expect(rows[i]).toContain(`${JSON.stringify(e.top[1].text)} ${e.top[1].logprob.toFixed(4)}`);
    });
  });

  it("without --model uses the built-in demo model, says so, and answers about the example video", () => {
    const example = JSON.parse(fs.readFileSync(path.join(ROOT, "examples/demo.json"), "utf8"));
    const color = example.questions.find((q: { type: string }) => q.type === "color");
    const r = videolm(["run", path.join(ROOT, "examples", example.video), color.question]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/using the built-in demo model \(models\/videolm-demo\)/);
    expect(r.stdout.trim()).toBe(color.answer);
  });

  it("reads the question from stdin when it is not a terminal and none is given, or in place of -", () => {
    const example = JSON.parse(fs.readFileSync(path.join(ROOT, "examples/demo.json"), "utf8"));
    const color = example.questions.find((q: { type: string }) => q.type === "color");
    const video = path.join(ROOT, "examples", example.video);
    for (const args of [["run", "-q", video], ["run", "-q", video, "-"], ["run", "-q", "--video", video, "-"]]) {
      const r = videolm(args, `${color.question}\n`);
      expect(r.stderr).toBe("");
      expect(r.stdout.trim()).toBe(color.answer);
    }
    const empty = videolm(["run", "-q", video, "-"], "\n");
    expect(empty.code).toBe(1);
    expect(empty.stderr.trim()).toBe('videolm: the question read from stdin ("-") is empty');
  });

  const failures: [string, string[], RegExp][] = [
    ["a missing model folder", ["run", "--model", "/no/such/model", "hi"], /^videolm: model folder not found: \/no\/such\/model/],
    ["a missing image", ["run", "--model", "MODEL", "--image", "/no/such.png", "hi"], /^videolm: cannot read image \/no\/such\.png: file not found/],
    ["an unknown flag", ["run", "--model", "MODEL", "--bogus", "hi"], /^videolm: run: unknown option --bogus \(see videolm run --help\)$/m],
    ["a mistyped flag", ["run", "--model", "MODEL", "--max-frame", "8", "hi"], /^videolm: run: unknown option --max-frame; did you mean --max-frames\? \(see videolm run --help\)$/m],
    ["a mistyped command", ["rn", "clip.mp4", "hi"], /^videolm: unknown command "rn"; did you mean run\? \(see videolm --help\)$/m],
    ["a malformed time", ["run", "--model", "MODEL", "--start", "1:2", "clip.mp4", "hi"], /^videolm: --start expects a time: seconds \(75\.5\), mm:ss \(1:15\.5\) or hh:mm:ss \(0:01:15\.5\); got "1:2"$/m],
    ["a bad number", ["run", "--model", "MODEL", "--top-p", "abc", "hi"], /^videolm: --top-p expects a number, got "abc"/],
    ["an out-of-range option", ["run", "--model", "MODEL", "--top-p", "1.5", "hi"], /^videolm: Invalid generation option topP \(--top-p\) = 1\.5/],
    ["no question", ["run", "--model", "MODEL"], /^videolm: run: give the question/],
  ];
  for (const [what, args, message] of failures) {
    it(`fails cleanly on ${what}`, () => {
      const r = videolm(args.map((a) => (a === "MODEL" ? model : a)));
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trim().split("\n")).toHaveLength(1); // one line, no stack trace
      expect(r.stdout).toBe("");
    });
  }
});
