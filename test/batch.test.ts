/**
 * Batch jobs without a model: manifests (CSV quoting, JSONL errors with line numbers), item ids, globs, the results
 * file (repair of a cut last line, the lock) and the dispatcher with fake backends (limits, least busy, retry on
 * another backend, dead backends, abort).
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { dispatch, type Backend, type Outcome } from "../src/batch/dispatcher.js";
import { collectItems, globFiles, globRegex } from "../src/batch/inputs.js";
import { itemId } from "../src/batch/items.js";
import { parseCsvRows, parseJsonlRows, readManifest } from "../src/batch/manifest.js";
import { errorMessage, runBatchJob } from "../src/batch/job.js";
import { formatDuration, progressLine, ProgressReporter, rateAndEta, summaryLine } from "../src/batch/progress.js";
import type { ItemAnswer } from "../src/batch/engine.js";
import type { BatchItem } from "../src/batch/items.js";
import { readDone, readRecords, recordsToCsv, repairTail, ResultsFile, type ResultRecord } from "../src/batch/results.js";
import { VideolmError } from "../src/errors.js";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "videolm-batch-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const write = (name: string, text: string) => {
  const file = path.join(dir, name);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
  return file;
};
const errorOf = (f: () => unknown): VideolmError => {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(VideolmError);
    return e as VideolmError;
  }
  throw new Error("expected an error");
};

describe("CSV manifests", () => {
  it("reads quoted fields with commas, doubled quotes and line breaks, CRLF, a BOM; records keep their first line", () => {
    const text = '\uFEFFvideo,question,id\r\na.mp4,"Where, and when?",x1\r\n"b c.mp4","He said ""go"".",x2\r\nd.mp4,"two\nlines",x3\r\n\r\ne.mp4,plain,x4\r\n';
    const rows = parseCsvRows(text, "m.csv");
    expect(rows.map((r) => r.fields)).toEqual([
      { video: "a.mp4", question: "Where, and when?", id: "x1" },
      { video: "b c.mp4", question: 'He said "go".', id: "x2" },
      { video: "d.mp4", question: "two\nlines", id: "x3" },
      { video: "e.mp4", question: "plain", id: "x4" },
    ]);
    expect(rows.map((r) => r.line)).toEqual([2, 3, 4, 7]);
  });

  it("empty cells are absent fields; the last line may lack a line end", () => {
    const rows = parseCsvRows("video,question,fps\na.mp4,q,\nb.mp4,q,2", "m.csv");
    expect(rows.map((r) => r.fields)).toEqual([{ video: "a.mp4", question: "q" }, { video: "b.mp4", question: "q", fps: "2" }]);
  });

  const bad: [string, string, RegExp][] = [
    ["a row with more fields than the header", "video,question\na.mp4,q\nb.mp4,where, when?\n", /^m\.csv line 3: 3 fields, but the header has 2/],
    ["an unclosed quote", 'video,question\na.mp4,"q\nb.mp4,q\n', /^m\.csv line 2: a quoted field is never closed/],
    ["text after a closing quote", 'video,question\na.mp4,"q"x\n', /^m\.csv line 2: unexpected "x" after a closing quote/],
    ["a quote inside an unquoted field", 'video,question\na.mp4,say "hi"\n', /^m\.csv line 2: a quote inside an unquoted field/],
    ["a header column twice", "video,video\na,b\n", /^m\.csv line 1: column "video" appears twice/],
  ];
  for (const [what, text, message] of bad) it(`refuses ${what}, naming the line`, () => expect(errorOf(() => parseCsvRows(text, "m.csv")).message).toMatch(message));

  it("rows become items: paths against the manifest's folder, options parsed, unknown columns named with a suggestion", () => {
    const file = write("sub/m.csv", 'video,question,fps,start,end,max_frames\nclips/a.mp4,"What, exactly?",1.5,0:05,12,8\nhttps://example.com/v.mp4,q,,,,\n');
    const items = readManifest(file);
    expect(items[0]).toMatchObject({ video: path.join(dir, "sub/clips/a.mp4"), task: "answer", question: "What, exactly?", media: { fps: 1.5, start: 5, end: 12, maxFrames: 8 }, origin: "m.csv line 2" });
    expect(items[1]).toMatchObject({ video: "https://example.com/v.mp4", media: {} });
    expect(errorOf(() => readManifest(write("u.csv", "video,question,max_frame\na.mp4,q,3\n"))).message).toMatch(/^u\.csv line 2: unknown field "max_frame"; did you mean max_frames\?/);
    expect(errorOf(() => readManifest(write("n.csv", "video,question,nframes\na.mp4,q,2.5\n"))).message).toBe("n.csv line 2: nframes expects an integer, got \"2.5\"");
    expect(errorOf(() => readManifest(write("t.csv", "video,question,start\na.mp4,q,1:2\n"))).message).toMatch(/^t\.csv line 2: start expects a time/);
    expect(errorOf(() => readManifest(write("q.csv", "video\na.mp4\n"))).message).toMatch(/^q\.csv line 2: no question/);
    expect(readManifest(write("d.csv", "video\na.mp4\n"), { question: "default?" })[0].question).toBe("default?");
  });
});

describe("JSONL manifests", () => {
  it("one object per line, blank lines skipped; errors name the line", () => {
    expect(parseJsonlRows('{"video":"a.mp4"}\n\n{"video":"b.mp4"}\n', "m.jsonl").map((r) => r.line)).toEqual([1, 3]);
    expect(errorOf(() => parseJsonlRows('{"video":"a.mp4"}\n{"video": "b.mp4",\n', "m.jsonl")).message).toMatch(/^m\.jsonl line 2: not valid JSON \(/);
    expect(errorOf(() => parseJsonlRows('{"video":"a.mp4"}\n\n["b.mp4"]\n', "m.jsonl")).message).toMatch(/^m\.jsonl line 3: expected a JSON object/);
  });

  it("tasks: events needs nothing more, ground needs a query; numbers may be JSON numbers", () => {
    const file = write("t.jsonl", ['{"video":"a.mp4","task":"events","fps":2}', '{"video":"a.mp4","task":"ground","query":"the red circle"}', '{"video":"a.mp4","question":"q","id":7}'].join("\n"));
    const items = readManifest(file);
    expect(items.map((i) => [i.task, i.question, i.query, i.id.length])).toEqual([
      ["events", undefined, undefined, 16],
      ["ground", undefined, "the red circle", 16],
      ["answer", "q", undefined, 1],
    ]);
    expect(items[2].id).toBe("7");
    expect(errorOf(() => readManifest(write("g.jsonl", '{"video":"a.mp4","task":"ground"}'))).message).toMatch(/^g\.jsonl line 1: task ground needs a query/);
    expect(errorOf(() => readManifest(write("k.jsonl", '{"video":"a.mp4","task":"count"}'))).message).toMatch(/^k\.jsonl line 1: task must be one of answer, events, ground/);
    expect(errorOf(() => readManifest(write("f.jsonl", '{"video":"a.mp4","question":"q","fps":"fast"}'))).message).toBe('f.jsonl line 1: fps expects a number, got "fast"');
  });
});

describe("item ids", () => {
  const base = { video: "/v/a.mp4", task: "answer" as const, question: "q", media: {} };
  it("are stable, and differ when the video, the question or an option differs (not the options' order)", () => {
    expect(itemId(base)).toBe(itemId({ ...base }));
    expect(itemId(base)).toMatch(/^[0-9a-f]{16}$/);
    const others = [{ ...base, video: "/v/b.mp4" }, { ...base, question: "q2" }, { ...base, media: { fps: 1 } }, { ...base, task: "events" as const, question: undefined }];
    expect(new Set([base, ...others].map(itemId)).size).toBe(5);
    expect(itemId({ ...base, media: { fps: 1, start: 2 } })).toBe(itemId({ ...base, media: { start: 2, fps: 1 } }));
  });

  it("one explicit id for two different rows is refused; the same row twice is one item", () => {
    const file = write("dup.jsonl", '{"id":"a","video":"x.mp4","question":"q"}\n{"id":"a","video":"y.mp4","question":"q"}\n');
    expect(errorOf(() => collectItems([file], {})).message).toMatch(/^dup\.jsonl line 2: id "a" is already used by dup\.jsonl line 1/);
    const same = write("same.jsonl", '{"video":"x.mp4","question":"q"}\n{"video":"x.mp4","question":"q"}\n');
    expect(collectItems([same], {})).toHaveLength(1);
  });
});

describe("folders and globs", () => {
  it("a folder gives its videos (not other files, not subfolders); a glob walks folders with **", () => {
    for (const f of ["lib/a.mp4", "lib/b.MKV", "lib/notes.txt", "lib/deep/c.mp4", "lib/deep/d.webm"]) write(f, "x");
    const lib = path.join(dir, "lib");
    expect(collectItems([lib], { question: "q" }).map((i) => path.relative(lib, i.video))).toEqual(["a.mp4", "b.MKV"]);
    expect(globFiles(path.join(lib, "**/*.mp4")).map((f) => path.relative(lib, f))).toEqual(["a.mp4", "deep/c.mp4"]);
    expect(globFiles(path.join(lib, "deep/*.{mp4,webm}")).map((f) => path.relative(lib, f))).toEqual(["deep/c.mp4", "deep/d.webm"]);
    expect(errorOf(() => collectItems([lib], {})).message).toMatch(/need --question/);
    expect(collectItems([lib], { task: "events" }).every((i) => i.task === "events" && i.question === undefined)).toBe(true);
  });

  it("glob syntax", () => {
    expect(globRegex("*.mp4").test("a.mp4")).toBe(true);
    expect(globRegex("*.mp4").test("x/a.mp4")).toBe(false);
    expect(globRegex("**/*.mp4").test("a.mp4")).toBe(true);
    expect(globRegex("**/*.mp4").test("x/y/a.mp4")).toBe(true);
    expect(globRegex("clip[0-2]?.mp4").test("clip1a.mp4")).toBe(true);
    expect(globRegex("clip[!0-2].mp4").test("clip1.mp4")).toBe(false);
    expect(globRegex("a.mp4").test("aXmp4")).toBe(false);
  });
});

describe("results file", () => {
  const record = (id: string, extra: Partial<ResultRecord> = {}): ResultRecord => ({ id, video: "/v.mp4", task: "answer", question: "q", answer: "a", backend: "local", attempts: 1, finishedAt: "t", ...extra });

  it("cuts an incomplete last line off (its item runs again) and keeps whole lines", () => {
    const file = path.join(dir, "r1.jsonl");
    const whole = [record("a"), record("b")].map((r) => JSON.stringify(r) + "\n").join("");
    fs.writeFileSync(file, whole + JSON.stringify(record("c")).slice(0, 25));
    expect(repairTail(file)).toBe(25);
    expect(fs.readFileSync(file, "utf8")).toBe(whole);
    expect([...readDone(file).done.keys()]).toEqual(["a", "b"]);
    expect(repairTail(file)).toBe(0);
    fs.writeFileSync(file, '{"id":"a"'); // not one whole line
    expect(repairTail(file)).toBe(9);
    expect(fs.readFileSync(file, "utf8")).toBe("");
  });

  it("appends lines; reopening knows what is done and which failed; lines that are not results are reported", () => {
    const file = path.join(dir, "r2.jsonl");
    const first = ResultsFile.open(file);
    expect(first.done.size).toBe(0);
    first.results.append(record("a"));
    first.results.append(record("b", { answer: undefined, error: "bad video" }));
    first.results.close();
    fs.appendFileSync(file, "garbage\n");
    const again = ResultsFile.open(file);
    expect(Object.fromEntries(again.done)).toEqual({ a: { error: false, backendError: false }, b: { error: true, backendError: false } });
    expect(again.badLines).toEqual([3]);
    again.results.append(record("b")); // a retried failure: the last line wins
    again.results.close();
    expect(readRecords(file).map((r) => [r.id, r.error])).toEqual([["a", undefined], ["b", undefined]]);
  });

  it("refuses a file another live job holds; takes over a lock left by a dead one", () => {
    const file = path.join(dir, "r3.jsonl");
    fs.writeFileSync(`${file}.lock`, `${process.ppid}\n`); // a live process
    expect(errorOf(() => ResultsFile.open(file)).message).toMatch(/another batch job \(pid \d+\) is writing/);
    fs.writeFileSync(`${file}.lock`, "999999999\n"); // no such process
    const opened = ResultsFile.open(file);
    expect(fs.readFileSync(`${file}.lock`, "utf8").trim()).toBe(String(process.pid));
    opened.results.close();
    expect(fs.existsSync(`${file}.lock`)).toBe(false);
  });

  it("CSV: quoted cells, events as JSON", () => {
    const csv = recordsToCsv([record("a", { answer: 'say "hi", then\nleave', events: { events: [{ start: 1, end: 2, text: "x" }], duration: 3, parsed: true, warnings: [] } })]);
    const rows = parseCsvRows(csv);
    expect(rows[0].fields.answer).toBe('say "hi", then\nleave');
    expect(JSON.parse(rows[0].fields.events as string)).toEqual([{ start: 1, end: 2, text: "x" }]);
  });
});

/** A fake backend: each item takes `ms`, fails as `fail` says; records its in-flight peak. */
function fake(name: string, limit: number, opts: { ms?: number; fail?: (item: number) => "item" | "backend" | undefined } = {}) {
  const stats = { name, active: 0, peak: 0, ran: [] as number[] };
  const backend: Backend<number, string> = {
    name,
    limit,
    async run(item, signal) {
      stats.active++;
      stats.peak = Math.max(stats.peak, stats.active);
      stats.ran.push(item);
      try {
        await new Promise<void>((resolve, reject) => {
          const onAbort = () => (clearTimeout(t), reject(new Error("aborted")));
          const t = setTimeout(() => (signal.removeEventListener("abort", onAbort), resolve()), opts.ms ?? 5);
          signal.addEventListener("abort", onAbort, { once: true });
        });
        const f = opts.fail?.(item);
        if (f) throw Object.assign(new Error(`${f} fault on ${item}`), { fault: f });
        return `${name}:${item}`;
      } finally {
        stats.active--;
      }
    },
    isBackendFault: (e) => (e as { fault?: string }).fault === "backend",
  };
  return { backend, stats };
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

describe("dispatcher", () => {
  it("never exceeds a backend's limit, keeps every slot busy, and shares items by limit", async () => {
    const a = fake("a", 1, { ms: 20 });
    const b = fake("b", 3, { ms: 20 });
    const outcomes: Outcome<number, string>[] = [];
    const t0 = performance.now();
    const s = await dispatch(range(40), [a.backend, b.backend], { onOutcome: (o) => void outcomes.push(o) });
    const wall = performance.now() - t0;
    expect(s).toMatchObject({ finished: 40, notRun: 0 });
    expect(outcomes.filter((o) => o.ok).map((o) => o.item).sort((x, y) => x - y)).toEqual(range(40));
    expect(a.stats.peak).toBe(1);
    expect(b.stats.peak).toBe(3);
    expect(b.stats.ran.length).toBeGreaterThanOrEqual(27); // ≈ 3/4 of the items
    expect(a.stats.ran.length).toBeGreaterThanOrEqual(7);
    expect(wall).toBeLessThan(40 * 20); // in parallel: ≈ 10 rounds of 20 ms, not 40
  });

  it("equal backends take turns (the fewest started wins a tie)", async () => {
    const backs = ["a", "b", "c"].map((n) => fake(n, 1, { ms: 1 }));
    await dispatch(range(9), backs.map((x) => x.backend), { onOutcome: () => {} });
    expect(backs.map((x) => x.stats.ran.length)).toEqual([3, 3, 3]);
  });

  it("an item's own failure is recorded at once; a backend's failure is retried once on another backend", async () => {
    const a = fake("a", 1, { fail: (i) => (i === 3 ? "item" : i % 2 === 0 ? "backend" : undefined) });
    const b = fake("b", 1, { fail: (i) => (i === 3 ? "item" : undefined) });
    const outcomes = new Map<number, Outcome<number, string>>();
    const s = await dispatch(range(8), [a.backend, b.backend], { deadAfter: 100, onOutcome: (o) => void outcomes.set(o.item, o) });
    expect(s.finished).toBe(8);
    expect(outcomes.get(3)).toMatchObject({ ok: false, attempts: 1 });
    for (const [item, o] of outcomes) {
      if (item === 3) continue;
      expect(o.ok).toBe(true);
      if (a.stats.ran.includes(item) && item % 2 === 0) expect(o).toMatchObject({ backend: "b", attempts: 2, value: `b:${item}` });
    }
    expect(a.stats.ran.filter((i) => i !== 3).length + b.stats.ran.length).toBeGreaterThan(7); // retried ones ran twice
  });

  it("a backend failing twice in a row on one item: recorded after the second attempt", async () => {
    const a = fake("a", 1, { fail: (i) => (i === 0 ? "backend" : undefined) });
    const b = fake("b", 1, { fail: (i) => (i === 0 ? "backend" : undefined) });
    const outcomes: Outcome<number, string>[] = [];
    await dispatch([0], [a.backend, b.backend], { deadAfter: 100, onOutcome: (o) => void outcomes.push(o) });
    expect(outcomes).toHaveLength(1);
    expect(outcomes[0]).toMatchObject({ ok: false, attempts: 2 });
    expect(a.stats.ran.length + b.stats.ran.length).toBe(2);
  });

  it("a dead backend gets no more items and the job finishes on the others", async () => {
    const dead = fake("dead", 2, { ms: 1, fail: () => "backend" });
    const live = fake("live", 1, { ms: 5 });
    const gone: string[] = [];
    const outcomes: Outcome<number, string>[] = [];
    const s = await dispatch(range(20), [dead.backend, live.backend], { deadAfter: 3, onBackendDead: (n) => gone.push(n), onOutcome: (o) => void outcomes.push(o) });
    expect(gone).toEqual(["dead"]);
    expect(dead.stats.ran.length).toBeLessThanOrEqual(4); // 3 in a row (+1 already in flight)
    expect(s).toMatchObject({ finished: 20, notRun: 0 });
    expect(outcomes.every((o) => o.ok)).toBe(true);
  });

  it("when every backend is dead the job stops; items not attempted are not recorded", async () => {
    const a = fake("a", 1, { fail: () => "backend" });
    const outcomes: Outcome<number, string>[] = [];
    const s = await dispatch(range(10), [a.backend], { deadAfter: 2, onOutcome: (o) => void outcomes.push(o) });
    expect(s.stopped).toBe("no-backend");
    expect(s.finished + s.notRun).toBe(10);
    expect(outcomes.length).toBe(s.finished);
    expect(s.notRun).toBeGreaterThanOrEqual(9);
  });

  it("abort: items in flight are not recorded, nothing more starts", async () => {
    const a = fake("a", 2, { ms: 30 });
    const abort = new AbortController();
    const outcomes: Outcome<number, string>[] = [];
    setTimeout(() => abort.abort(), 45);
    const s = await dispatch(range(10), [a.backend], { signal: abort.signal, onOutcome: (o) => void outcomes.push(o) });
    expect(s.stopped).toBe("aborted");
    expect(outcomes.length).toBe(2);
    expect(s.finished + s.notRun).toBe(10);
    expect(a.stats.ran.length).toBe(4);
  });
});

describe("batch job (fake backends)", () => {
  const item = (id: string): BatchItem => ({ id, video: `/v/${id}.mp4`, task: "answer", question: "q", media: {}, origin: id });
  /** Answers every item but those in `bad` (the item's fault) and `down` (the backend's fault). */
  const backend = (name: string, bad: Set<string>, down: Set<string>, ran: string[]) => ({
    name,
    limit: 2,
    async run(i: BatchItem): Promise<ItemAnswer> {
      ran.push(i.id);
      await new Promise((r) => setTimeout(r, 2));
      if (bad.has(i.id)) throw new VideolmError(`${i.video}: corrupt`);
      if (down.has(i.id)) throw Object.assign(new Error("connection refused"), { down: true });
      return { answer: `answer ${i.id}`, timings: { totalMs: 2 } };
    },
    isBackendFault: (e: unknown) => (e as { down?: boolean }).down === true,
  });

  it("records answers and errors (with whose fault); a resume skips answers and the items' own errors, and runs the backends' failures again", async () => {
    const out = path.join(dir, "job.jsonl");
    const items = ["a", "b", "c", "d", "e"].map(item);
    const ran1: string[] = [];
    const first = await runBatchJob(items, [backend("x", new Set(["b"]), new Set(["c"]), ran1)], { output: out });
    expect(first).toMatchObject({ total: 5, ok: 3, failed: 2, skipped: 0, notRun: 0 });
    const records = new Map(readRecords(out).map((r) => [r.id, r]));
    expect(records.get("a")).toMatchObject({ answer: "answer a", backend: "x", attempts: 1 });
    expect(records.get("b")).toMatchObject({ error: "/v/b.mp4: corrupt", errorKind: "item", attempts: 1 });
    expect(records.get("c")).toMatchObject({ error: "internal error: connection refused", errorKind: "backend", attempts: 2 });

    const ran2: string[] = [];
    const second = await runBatchJob(items, [backend("x", new Set(["b"]), new Set(), ran2)], { output: out });
    expect(ran2).toEqual(["c"]);
    expect(second).toMatchObject({ total: 5, ok: 1, failed: 0, skipped: 4 });
    expect(readRecords(out).find((r) => r.id === "c")).toMatchObject({ answer: "answer c" });

    const ran3: string[] = [];
    await runBatchJob(items, [backend("x", new Set(), new Set(), ran3)], { output: out, retryFailed: true, csv: path.join(dir, "job.csv") });
    expect(ran3).toEqual(["b"]);
    const last = readRecords(out); // the last line per id
    expect(last.map((r) => r.id).sort()).toEqual(["a", "b", "c", "d", "e"]);
    expect(last.every((r) => r.error === undefined)).toBe(true);
    expect(parseCsvRows(fs.readFileSync(path.join(dir, "job.csv"), "utf8")).map((r) => r.fields.id).sort()).toEqual(["a", "b", "c", "d", "e"]);
  });
});

describe("progress", () => {
  it("rate over this run's items only, ETA of the rest, durations", () => {
    // 10 items, 4 done before; in 60 s this run finished 3 (1 failed): 3/min, 3 left → 60 s.
    const c = { total: 10, skipped: 4, ok: 2, failed: 1 };
    expect(rateAndEta(c, 60_000)).toEqual({ perMinute: 3, etaMs: 60_000 });
    expect(rateAndEta({ ...c, ok: 0, failed: 0 }, 5_000)).toEqual({ perMinute: 0 });
    expect(progressLine(c, 60_000)).toBe("batch: 7/10 (70%), 1 failed, 3.0 items/min, elapsed 1m00s, ETA 1m00s");
    expect(summaryLine(c, 60_000, 2)).toBe("batch: 2 ok, 1 failed, 4 skipped (done before), 2 not run; 1m00s, 3.0 items/min");
    expect([formatDuration(4_400), formatDuration(3_599_000), formatDuration(7_260_000)]).toEqual(["4s", "59m59s", "2h01m"]);
  });

  it("a log gets a line at most every interval; a terminal one redrawn line", () => {
    let now = 0;
    const log: string[] = [];
    const r = new ProgressReporter({ write: (s: string) => log.push(s) }, 5000, () => now);
    const c = { total: 4, skipped: 0, ok: 1, failed: 0 };
    r.update(c, 1000);
    now = 1000;
    r.update(c, 2000); // within 5 s: skipped
    now = 6000;
    r.update(c, 7000);
    expect(log).toHaveLength(2);
    expect(log.every((l) => l.endsWith("\n") && !l.includes("\r"))).toBe(true);
    const tty: string[] = [];
    const t = new ProgressReporter({ write: (s: string) => tty.push(s), isTTY: true }, 5000, () => now);
    t.update(c, 1000);
    t.line("batch: x failed");
    expect(tty).toEqual([`\r\x1b[2K${progressLine(c, 1000)}`, "\r\x1b[2K", "batch: x failed\n"]);
  });

  it("errors are one line, internal ones say so", () => {
    expect(errorMessage(new VideolmError("bad\n  video"))).toBe("bad video");
    expect(errorMessage(new TypeError("x is undefined"))).toBe("internal error: x is undefined");
  });
});
