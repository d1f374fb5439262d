/** Grounding ground truth: Charades-STA text lines, lmms-eval-style JSON rows, video-keyed JSON; errors name the line. */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseGroundingAnnotations, readGroundingAnnotations } from "../src/events/charades.js";

describe("Charades-STA text", () => {
  it("reads VIDEOID START END##sentence lines (blank lines, CRLF and a BOM tolerated)", () => {
    const text = "\uFEFF3MSZA 24.3 30.4##person turn a light on.\r\n\r\nAO8RW 0.0 6.9##a person is putting a book on a shelf.\n";
    expect(parseGroundingAnnotations(text, "charades_sta_test.txt")).toEqual([
      { video: "3MSZA", start: 24.3, end: 30.4, query: "person turn a light on.", origin: "line 1" },
      { video: "AO8RW", start: 0, end: 6.9, query: "a person is putting a book on a shelf.", origin: "line 3" },
    ]);
  });

  it("swaps a reversed span", () => {
    expect(parseGroundingAnnotations("X 9 3##q")[0]).toMatchObject({ start: 3, end: 9 });
  });

  const bad: [string, RegExp][] = [
    ["ok 1 2##fine\n3MSZA 24.3 30.4 person turn a light on.", /f\.txt:2: .*no "##"/],
    ["3MSZA 24.3##q", /f\.txt:1: .*found 2 field/],
    ["3MSZA 24.3 abc##q", /f\.txt:1: the end time "abc"/],
    ["3MSZA -1 2##q", /f\.txt:1: the start time "-1"/],
    ["3MSZA 1 2##   ", /f\.txt:1: the sentence after "##" is empty/],
    ["\n\n", /no annotations/],
  ];
  for (const [text, message] of bad) it(`rejects ${JSON.stringify(text)}`, () => expect(() => parseGroundingAnnotations(text, "f.txt")).toThrow(message));
});

describe("JSON annotations", () => {
  it("reads lmms-eval-style rows {video, caption, timestamp}", () => {
    const text = JSON.stringify([{ video: "3MSZA.mp4", caption: "person turn a light on", timestamp: [24.3, 30.4], duration: 31 }, { video: "B", query: "q", timestamp: [1, 2] }]);
    expect(parseGroundingAnnotations(text)).toEqual([
      { video: "3MSZA.mp4", start: 24.3, end: 30.4, query: "person turn a light on", duration: 31, origin: "entry 1" },
      { video: "B", start: 1, end: 2, query: "q", origin: "entry 2" },
    ]);
  });

  it("reads lmms-eval TimeLens rows {video_path, query, span: [[s, e], …]} (the first pair, as TimeLens scores)", () => {
    const text = JSON.stringify([{ video_path: "charades/3MSZA.mp4", query: "person turn a light on", span: [[24.3, 30.4], [40, 41]] }]);
    expect(parseGroundingAnnotations(text)).toEqual([{ video: "charades/3MSZA.mp4", start: 24.3, end: 30.4, query: "person turn a light on", origin: "entry 1" }]);
  });

  it("reads JSON lines", () => {
    const text = '{"video": "A", "caption": "x", "timestamp": [0, 1]}\n{"video": "B", "caption": "y", "timestamp": [2, 3]}\n';
    expect(parseGroundingAnnotations(text).map((a) => a.video)).toEqual(["A", "B"]);
  });

  it("reads the video-keyed {duration, timestamps, sentences} layout", () => {
    const text = JSON.stringify({ V1: { duration: 30, timestamps: [[1, 5], [6, 9]], sentences: ["a", "b"] } });
    expect(parseGroundingAnnotations(text)).toEqual([
      { video: "V1", start: 1, end: 5, query: "a", duration: 30, origin: "V1 #1" },
      { video: "V1", start: 6, end: 9, query: "b", duration: 30, origin: "V1 #2" },
    ]);
  });

  const bad: [string, RegExp][] = [
    ['[{"video": "A", "caption": "x", "timestamp": [1]}]', /entry 1: "timestamp" must be \[start, end\]/],
    ['[{"video": "A", "timestamp": [0, 1]}]', /entry 1: "caption"/],
    ['[{"caption": "x", "timestamp": [0, 1]}]', /entry 1: "video"/],
    ['[{"video": "A", "caption": "x", "timestamp": [0, 1], "duration": -4}]', /"duration" must be a positive/],
    ['{"V": {"timestamps": [[0, 1]], "sentences": []}}', /1 timestamps but 0 sentences/],
    ["[{", /not valid JSON/],
  ];
  for (const [text, message] of bad) it(`rejects ${text}`, () => expect(() => parseGroundingAnnotations(text, "a.json")).toThrow(message));
});

describe("readGroundingAnnotations", () => {
  it("reads a file and reports an unreadable one", () => {
    const dir = mkdtempSync(join(tmpdir(), "videolm-charades-"));
    const path = join(dir, "test.txt");
    writeFileSync(path, "A 1 2##q\n");
    expect(readGroundingAnnotations(path)).toHaveLength(1);
    expect(() => readGroundingAnnotations(join(dir, "missing.txt"))).toThrow(/cannot read the annotation file/);
  });
});
