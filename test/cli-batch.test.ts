/**
 * `videolm batch` as a user runs it, on the built-in demo model: a poisoned item (a corrupt mp4) recorded as an error
 * while the rest complete; a job killed midway (SIGKILL, and a cut last line) and resumed runs every item exactly
 * once; manifest errors are one line naming the file and line.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { parseCsvRows } from "../src/batch/manifest.js";
import { repoRoot } from "../src/testing/tiny-checkpoint.js";
import { runCliAsync } from "./cli-helpers.js";

const ROOT = repoRoot();
// tsx's loader in this process (not tsx's CLI, which runs the program in a child process a kill would not reach).
const CLI = ["--import", pathToFileURL(path.join(ROOT, "node_modules/tsx/dist/loader.mjs")).href, path.join(ROOT, "src/cli/main.ts")];
const example = JSON.parse(fs.readFileSync(path.join(ROOT, "examples/demo.json"), "utf8"));
const color = example.questions.find((q: { type: string }) => q.type === "color");
const shape = example.questions.find((q: { type: string }) => q.type === "shape");
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "videolm-cli-batch-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function videolm(args: string[]) {
  return runCliAsync(process.execPath, [...CLI, ...args], { cwd: dir, timeout: 240_000 });
}
const lines = (file: string) =>
  fs
    .readFileSync(file, "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l));

describe("videolm batch", () => {
  it("a corrupt video is recorded as an error (one line, no stack) while the others complete; CSV and summary", async () => {
    const lib = path.join(dir, "lib");
    fs.mkdirSync(lib);
    const demo = fs.readFileSync(path.join(ROOT, "examples", example.video));
    for (const name of ["a.mp4", "b.mp4", "c.mp4"]) fs.writeFileSync(path.join(lib, name), demo);
    fs.writeFileSync(path.join(lib, "broken.mp4"), demo.subarray(0, 2000)); // cut short: the header promises frames that are not there
    const r = await videolm(["batch", lib, "--question", color.question, "-o", "out.jsonl", "--csv", "out.csv", "--json"]);
    expect(r.stderr).toMatch(/batch: 3 ok, 1 failed, 0 skipped/);
    expect(r.code).toBe(0);
    const results = lines(path.join(dir, "out.jsonl"));
    expect(results.map((x) => path.basename(x.video)).sort()).toEqual(["a.mp4", "b.mp4", "broken.mp4", "c.mp4"]);
    for (const x of results) {
      if (path.basename(x.video) === "broken.mp4") {
        expect(x.answer).toBeUndefined();
        expect(x.error).toMatch(/broken\.mp4/);
        expect(x.error).not.toMatch(/\n|\s+at \S+ \(/); // a message, not a stack trace
      } else {
        expect(x.error).toBeUndefined();
        expect(x.answer).toBe(color.answer);
        expect(x.usage.promptTokens).toBeGreaterThan(0);
        expect(x.timings.totalMs).toBeGreaterThan(0);
        expect(x).toMatchObject({ task: "answer", question: color.question, backend: "local", attempts: 1 });
      }
    }
    const summary = JSON.parse(r.stdout);
    expect(summary).toMatchObject({ total: 4, ok: 3, failed: 1, skipped: 0, notRun: 0 });
    const csv = parseCsvRows(fs.readFileSync(path.join(dir, "out.csv"), "utf8"));
    expect(csv.map((row) => row.fields.id).sort()).toEqual(results.map((x) => x.id).sort());
    expect(csv.find((row) => String(row.fields.video).endsWith("broken.mp4"))!.fields.error).toBe(results.find((x) => x.video.endsWith("broken.mp4")).error);

    // Run again: everything is done, nothing runs (failures too, unless --retry-failed).
    const again = await videolm(["batch", lib, "--question", color.question, "-o", "out.jsonl", "--json"]);
    expect(JSON.parse(again.stdout)).toMatchObject({ total: 4, ok: 0, failed: 0, skipped: 4 });
    const retry = await videolm(["batch", lib, "--question", color.question, "-o", "out.jsonl", "--json", "--retry-failed"]);
    expect(JSON.parse(retry.stdout)).toMatchObject({ total: 4, ok: 0, failed: 1, skipped: 3 });
    expect(lines(path.join(dir, "out.jsonl"))).toHaveLength(5);
  }, 600_000);

  it("killed midway (SIGKILL) and resumed: every item exactly once, none lost", async () => {
    const clip = path.join(ROOT, "examples", example.video);
    const questions = [color.question, shape.question];
    const rows = Array.from({ length: 10 }, (_, i) => ({ id: `item-${i}`, video: clip, question: questions[i % 2], ...(i >= 5 ? { fps: 2 } : {}) }));
    const manifest = path.join(dir, "m.jsonl");
    fs.writeFileSync(manifest, rows.map((r) => JSON.stringify(r)).join("\n") + "\n");
    const out = path.join(dir, "resume.jsonl");
    const args = ["batch", manifest, "-o", out, "--concurrency", "1", "-q"];

    const child = spawn(process.execPath, [...CLI, ...args], { cwd: dir, stdio: "ignore" });
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
    const t0 = Date.now();
    for (;;) {
      const n = fs.existsSync(out) ? fs.readFileSync(out, "utf8").split("\n").length - 1 : 0;
      if (n >= 3) break;
      if (Date.now() - t0 > 180_000) throw new Error("the job wrote no results");
      await new Promise((r) => setTimeout(r, 20));
    }
    child.kill("SIGKILL");
    await exited;
    const before = lines(out);
    expect(before.length).toBeGreaterThanOrEqual(3);
    expect(before.length).toBeLessThan(10); // killed midway, not after the end
    // A write cut short by a crash: an unterminated half line at the end.
    fs.appendFileSync(out, JSON.stringify({ id: "item-9", video: clip, task: "answer", answer: "x" }).slice(0, 30));

    const r = await videolm(["batch", manifest, "-o", out, "--concurrency", "2", "--json"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/cut off an incomplete last line \(30 bytes/);
    expect(r.stderr).toContain(`resuming ${out}: ${before.length} of 10 items already done, ${10 - before.length} to run`);
    const summary = JSON.parse(r.stdout);
    expect(summary).toMatchObject({ total: 10, skipped: before.length, ok: 10 - before.length, failed: 0 });
    const after = lines(out);
    expect(after.slice(0, before.length)).toEqual(before); // the first run's lines kept as they were
    expect(after.map((x) => x.id).sort()).toEqual(rows.map((x) => x.id).sort()); // each id exactly once
    for (const x of after) expect(x.answer).toBe(x.question === color.question ? color.answer : shape.answer);
    expect(fs.existsSync(`${out}.lock`)).toBe(false);
  }, 400_000);

  it("events and ground tasks: the spans videolm events / ground give for the same video", async () => {
    const clip = path.join(ROOT, "examples", example.video);
    const query = "the purple triangle";
    const manifest = path.join(dir, "tasks.csv");
    fs.writeFileSync(manifest, `id,video,task,query\ng1,${clip},ground,${query}\ne1,${clip},events,\n`);
    const out = path.join(dir, "tasks.jsonl");
    const r = await videolm(["batch", manifest, "-o", out, "-q"]);
    expect(r.code).toBe(0);
    const byId = Object.fromEntries(lines(out).map((x) => [x.id, x]));
    const ground = JSON.parse((await videolm(["ground", "-q", clip, query])).stdout);
    const events = JSON.parse((await videolm(["events", "-q", clip])).stdout);
    expect(byId.g1).toMatchObject({ task: "ground", query, answer: ground.raw, events: { events: ground.events, duration: ground.duration, parsed: ground.parsed } });
    expect(byId.e1).toMatchObject({ task: "events", answer: events.raw, events: { events: events.events, duration: events.duration, parsed: events.parsed } });
    expect(byId.g1.usage.completionTokens).toBeGreaterThan(0);
  }, 600_000);

  it("manifest and flag errors: one line naming the file and line, nothing written", async () => {
    fs.writeFileSync(path.join(dir, "bad.jsonl"), `{"video": "a.mp4", "question": "q"}\n{"video": "b.mp4" "question": "q"}\n`);
    fs.writeFileSync(path.join(dir, "bad.csv"), 'video,question\na.mp4,"unclosed\n');
    fs.writeFileSync(path.join(dir, "ev.jsonl"), '{"video": "a.mp4", "task": "events"}\n');
    const cases: [string[], RegExp][] = [
      [["batch", "bad.jsonl", "-o", "x.jsonl"], /^videolm: bad\.jsonl line 2: not valid JSON/],
      [["batch", "bad.csv", "-o", "x.jsonl"], /^videolm: bad\.csv line 2: a quoted field is never closed/],
      [["batch", "bad.jsonl"], /^videolm: batch: give the results file with -o/],
      [["batch", "nothing-here", "-o", "x.jsonl"], /^videolm: nothing-here: no such file or folder/],
      [["batch", "bad.jsonl", "-o", "x.jsonl", "--backend", "http://127.0.0.1:9#0"], /^videolm: --backend http:\/\/127\.0\.0\.1:9#0: the part after # is the backend's limit/],
      [["batch", "ev.jsonl", "-o", "x.jsonl", "--backend-kind", "vllm"], /^videolm: --backend-kind applies to a remote backend: give --backend URL too/],
    ];
    for (const [args, message] of cases) {
      const r = await videolm(args);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
    }
    expect(fs.existsSync(path.join(dir, "x.jsonl"))).toBe(false);
  }, 600_000);
});
