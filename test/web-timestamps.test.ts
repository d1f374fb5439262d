/** The page's time finder and <think> splitter (src/web/timestamps.js); expected values derived by hand. */
import { describe, expect, it } from "vitest";
// @ts-expect-error plain browser JavaScript module without type declarations
import { findTimestamps, formatTime, splitThink } from "../src/web/timestamps.js";

type Hit = { start: number; end: number; seconds: number };
const times = (text: string) => (findTimestamps(text) as Hit[]).map((h) => [text.slice(h.start, h.end), h.seconds]);

describe("findTimestamps", () => {
  const cases: [string, [string, number][]][] = [
    ["At 3.5 s the ball stops", [["3.5 s", 3.5]]],
    ["at 3 seconds", [["3 seconds", 3]]],
    ["after 12s and 4 sec", [["12s", 12], ["4 sec", 4]]],
    ["from 0:07 to 01:02:03", [["0:07", 7], ["01:02:03", 3723]]],
    ["at 12:30.5", [["12:30.5", 750.5]]],
    ["1 min 20 s later", [["1 min 20 s", 80]]],
    ["2 minutes in", [["2 minutes", 120]]],
    ["between 2-4 s", [["2", 2], ["4 s", 4]]],
    ["2 to 5 seconds", [["2", 2], ["5 seconds", 5]]],
    ["a 16:9 frame", []],
    ["version v1.5s", []],
    ["10:61 is not a time", []],
    ["no times here", []],
  ];
  for (const [text, expected] of cases) it(JSON.stringify(text), () => expect(times(text)).toEqual(expected));
});

describe("splitThink", () => {
  it("splits a closed block", () => expect(splitThink("<think>\nhmm\n</think>\n\nThe answer")).toEqual({ reasoning: "hmm", answer: "The answer", thinking: false }));
  it("an open block is all reasoning, still thinking", () => expect(splitThink("<think>let me see")).toEqual({ reasoning: "let me see", answer: "", thinking: true }));
  it("a block opened by the prompt ends with a lone </think>", () => expect(splitThink("plan</think>answer")).toEqual({ reasoning: "plan", answer: "answer", thinking: false }));
  it("text without a block is the answer", () => expect(splitThink("just <b>text</b>")).toEqual({ reasoning: "", answer: "just <b>text</b>", thinking: false }));
});

describe("formatTime", () => {
  it("formats m:ss, h:mm:ss and tenths", () => {
    expect([formatTime(3), formatTime(75.5), formatTime(3723), formatTime(0.6)]).toEqual(["0:03", "1:15.5", "1:02:03", "0:00.6"]);
  });
});
