/**
 * The events parser on a corpus of real model outputs (cited), synthetic cases for formats no model was seen writing,
 * and malformed ones; expected spans were written by hand from each text (test/fixtures/events/corpus.json).
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { eventsResult, MAX_PARSE_CHARS, parseEvents } from "../src/events/parse.js";
import { parseSpanString, parseTimeString } from "../src/events/time-text.js";
import { readJsonPrefix } from "../src/events/tolerant-json.js";
import type { EventsTask } from "../src/events/types.js";

interface CorpusCase {
  id: string;
  kind: string;
  source: string;
  task: EventsTask;
  query?: string;
  duration?: number;
  text: string;
  expected: { start: number; end: number; text?: string }[];
  warnings?: string[];
}

const corpus = JSON.parse(readFileSync(new URL("./fixtures/events/corpus.json", import.meta.url), "utf8")) as { cases: CorpusCase[] };

describe("events corpus", () => {
  it("has real outputs, each with a source", () => {
    const real = corpus.cases.filter((c) => c.kind.startsWith("real"));
    expect(real.length).toBeGreaterThanOrEqual(15);
    for (const c of corpus.cases) expect(c.source.length, c.id).toBeGreaterThan(10);
    expect(new Set(corpus.cases.map((c) => c.id)).size).toBe(corpus.cases.length);
  });

  for (const c of corpus.cases) {
    it(`${c.kind}: ${c.id}`, () => {
      const { events, warnings } = parseEvents(c.text, { task: c.task, query: c.query, duration: c.duration });
      expect(events.map((e) => [e.start, e.end]), "spans").toHaveLength(c.expected.length);
      c.expected.forEach((want, i) => {
        expect(events[i].start, `start of event ${i}`).toBeCloseTo(want.start, 6);
        expect(events[i].end, `end of event ${i}`).toBeCloseTo(want.end, 6);
        if (want.text !== undefined) expect(events[i].text, `text of event ${i}`).toBe(want.text);
      });
      for (const fragment of c.warnings ?? []) expect(warnings.join("\n"), "warnings").toContain(fragment);
      if (c.expected.length > 0 && !c.warnings) expect(warnings, "no warnings expected").toEqual([]);
    });
  }
});

describe("parseEvents", () => {
  it("reads mm:ss.ff whole, where lmms-eval's charades extract_time returns [1, 32.4]", () => {
    const { events } = parseEvents("The event happens in 01:32.40 - 01:35.60.");
    expect(events.map((e) => [e.start, e.end])).toEqual([[92.4, 95.6]]);
  });

  it("never invents: no span → no events and a warning", () => {
    for (const text of ["", "   ", "The video shows a dog.", "Frame 3 and frame 7", "3 and 5", "{}", "[]", "[1, 2, 3]"]) {
      const { events, warnings } = parseEvents(text);
      expect(events, text).toEqual([]);
      expect(warnings.join(" "), text).toMatch(/no time span/);
    }
  });

  it("keeps events sorted by start, start ≤ end, inside [0, duration]", () => {
    const { events } = parseEvents("9 - 3 s: b\n-1 - 2 s: a\n7 - 20 s: c\n30 - 40 s: d", { duration: 10 });
    for (const e of events) {
      expect(e.start).toBeLessThanOrEqual(e.end);
      expect(e.start).toBeGreaterThanOrEqual(0);
      expect(e.end).toBeLessThanOrEqual(10);
    }
    expect(events.map((e) => e.start)).toEqual([...events.map((e) => e.start)].sort((a, b) => a - b));
    expect(events.map((e) => e.text)).toEqual(["a", "b", "c"]);
  });

  it("a zero-length span at the video's end is outside it; one inside is kept", () => {
    expect(parseEvents("5 - 8 s", { duration: 5 }).events).toEqual([]);
    expect(parseEvents("4 - 8 s", { duration: 5 }).events).toEqual([{ start: 4, end: 5, text: "" }]);
  });

  it("grounding without a query keeps the model's words or leaves the text empty", () => {
    expect(parseEvents("The event happens in 1 - 2 seconds.", { task: "grounding" }).events[0].text).toBe("");
  });

  it("bounds the input it reads and says so", () => {
    const text = "0 - 1 s: a\n" + "x".repeat(MAX_PARSE_CHARS) + "\n5 - 6 s: b";
    const { events, warnings } = parseEvents(text);
    expect(events.map((e) => e.text)).toEqual(["a"]);
    expect(warnings.join(" ")).toMatch(/only the first/);
  });

  // Hostile inputs: each is 1 MB (cut to MAX_PARSE_CHARS) or just under the cut; every scan is linear, so each
  // takes ~0.1 s warm (seconds on a loaded 2-core machine); a quadratic pattern would take minutes on 100 k chars.
  const hostile: [string, string][] = [
    ["digits and dashes", "1-".repeat(500_000)],
    ["spaces between numbers", "1 ".repeat(500_000)],
    ["clock fragments", "1:1".repeat(350_000)],
    ["open brackets", "[".repeat(1_000_000)],
    ["unterminated JSON string", '[{"start": "' + "a".repeat(1_000_000)],
    ["nested objects", '{"a":'.repeat(200_000)],
    ["separators only", ",: -".repeat(250_000)],
    ["almost-spans", "1 - a ".repeat(170_000)],
    ["long unbroken digits", "9".repeat(1_000_000)],
    ["fractions", "1.1.1.".repeat(170_000)],
    ["tags", "<span ".repeat(170_000)],
    ["words after spans", ("0 - 1 s " + " ".repeat(50)).repeat(17_000)],
    ["under the cut, one line", ("1 - 2 s," + " ".repeat(30)).repeat(Math.floor((MAX_PARSE_CHARS - 10) / 38))],
  ];
  for (const [name, text] of hostile) {
    it(`finishes fast on hostile input: ${name}`, () => {
      const started = performance.now();
      const result = parseEvents(text);
      const ms = performance.now() - started;
      expect(Array.isArray(result.events)).toBe(true);
      expect(ms).toBeLessThan(5000);
    });
  }
});

describe("eventsResult", () => {
  it("wraps the parse with the raw text, duration and parsed flag", () => {
    const raw = "The given query happens in 64.0 - 72.0 seconds.";
    const result = eventsResult(raw, { task: "grounding", query: "seasoning the steak", duration: 70 });
    expect(result).toEqual({
      task: "grounding",
      query: "seasoning the steak",
      events: [{ start: 64, end: 70, text: "seasoning the steak" }],
      raw,
      duration: 70,
      parsed: true,
      warnings: [expect.stringContaining("clamped")],
    });
  });

  it("parsed is false when nothing parsed", () => {
    const result = eventsResult("no idea", { task: "dense", duration: 10 });
    expect(result.parsed).toBe(false);
    expect(result.events).toEqual([]);
    expect(result.raw).toBe("no idea");
    expect("query" in result).toBe(false);
  });
});

describe("time strings", () => {
  const good: [string, number][] = [
    ["12", 12],
    ["12.5", 12.5],
    ["12.5s", 12.5],
    ["12.5 seconds", 12.5],
    ["00.00", 0],
    ["02.00", 2],
    ["0029.0", 29],
    ["0:05", 5],
    ["00:21.80", 21.8],
    ["01:35.60", 95.6],
    ["1:02:03", 3723],
    ["01:02:03.250", 3723.25],
    ["00:00:01,500", 1.5],
    ["12:34.56s", 754.56],
    ["90:00", 5400],
    ["3秒", 3],
  ];
  for (const [text, seconds] of good) it(`${JSON.stringify(text)} → ${seconds} s`, () => expect(parseTimeString(text)).toBeCloseTo(seconds, 9));
  const bad = ["", "XX", "1:2", "1:60", "1:00:60", "00:00:01:12", "7B", "1.2.3", "12 apples", "-3", "1e3", "12.5 - 13"];
  for (const text of bad) it(`rejects ${JSON.stringify(text)}`, () => expect(parseTimeString(text)).toBeUndefined());

  const spans: [string, [number, number] | undefined][] = [
    ["00:23.00 - 00:48.00", [23, 48]],
    ["37.1秒到52.6秒", [37.1, 52.6]],
    ["3 - 10秒", [3, 10]],
    ["28.2s to 35.5s", [28.2, 35.5]],
    ["0:00-0:05", [0, 5]],
    ["12.5–15", [12.5, 15]],
    ["between 1 and 2 s", [1, 2]],
    ["[1.5, 3]", [1.5, 3]],
    ["1, 3", undefined],
    ["3 and 5", undefined],
    ["2024-05-17", undefined],
    ["Qwen2.5-VL", undefined],
    ["1 -- 2", undefined],
  ];
  for (const [text, span] of spans) it(`span ${JSON.stringify(text)}`, () => expect(parseSpanString(text)).toEqual(span));
});

describe("tolerant JSON", () => {
  it("reads strict JSON exactly", () => {
    const value = { a: [1, 2.5, -3e2, "x\ny\u00e9", true, false, null], b: { c: "" } };
    const text = JSON.stringify(value);
    expect(readJsonPrefix(text, 0)).toEqual({ value, complete: true, end: text.length });
  });

  it("keeps only complete members of cut-off JSON", () => {
    expect(readJsonPrefix('[{"a": 1}, {"a": 2}, {"a": 3', 0)).toMatchObject({ value: [{ a: 1 }, { a: 2 }], complete: false });
    expect(readJsonPrefix('{"a": [1, 2], "b": "unfinish', 0)).toMatchObject({ value: { a: [1, 2] }, complete: false });
    expect(readJsonPrefix("[1, 2", 0)).toMatchObject({ value: [1], complete: false }); // "2" may be the start of "25"
    expect(readJsonPrefix("[tr", 0)).toMatchObject({ value: [], complete: false });
  });

  it("accepts what models write: trailing commas, single quotes, bare keys, Python literals", () => {
    expect(readJsonPrefix("[{'a': True, b: None,},]", 0)?.value).toEqual([{ a: true, b: null }]);
  });

  it("rejects what is not JSON", () => {
    for (const text of ["[00:15, 00:32]", "[3.0 second]", "{a b}", "[1 2]", "<x>"]) expect(readJsonPrefix(text, 0), text).toBeUndefined();
  });

  it("keeps __proto__ an ordinary key", () => {
    const value = readJsonPrefix('{"__proto__": {"polluted": 1}}', 0)?.value as Record<string, unknown>;
    expect(Object.getPrototypeOf(value)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it("treats nesting past its depth limit as not JSON", () => {
    expect(readJsonPrefix("[".repeat(100) + "]".repeat(100), 0)).toBeUndefined();
  });
});
