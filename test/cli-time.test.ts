/** `--start` / `--end` time values: seconds, mm:ss and hh:mm:ss, each with an optional fraction. */
import { describe, expect, it } from "vitest";
import { parseTimeValue, timeFlag } from "../src/cli/time.js";

describe("parseTimeValue", () => {
  const good: [string, number][] = [
    ["3723.5", 3723.5],
    ["0", 0],
    ["10", 10],
    [".5", 0.5],
    ["7.", 7],
    ["62:03", 3723],
    ["1:02:03.5", 3723.5],
    ["01:02:03.250", 3723.25],
    ["00:00:10", 10],
    ["0:00", 0],
    ["90:00", 5400], // the first field is unbounded
    ["100:00:00", 360000],
    ["1:15.5", 75.5],
    [" 1:15 ", 75],
  ];
  for (const [text, seconds] of good) it(`${JSON.stringify(text)} → ${seconds} s`, () => expect(parseTimeValue(text)).toBeCloseTo(seconds, 9));

  const bad = ["", "abc", "-5", "1:2", "1:60", "1:60:00", "1:00:60", "1:02:03:04", "1::02", ":30", "1:02.", "1e3", "0x10", "Infinity", "1:02:03,5", "5s"];
  for (const text of bad) it(`rejects ${JSON.stringify(text)}`, () => expect(parseTimeValue(text)).toBeUndefined());
});

describe("timeFlag", () => {
  it("is undefined when the flag is absent", () => expect(timeFlag("start", undefined)).toBeUndefined());
  it("parses a value", () => expect(timeFlag("end", "00:00:10")).toBe(10));
  it("names the flag and the accepted forms on a malformed value", () => {
    expect(() => timeFlag("start", "1:2")).toThrow(/^--start expects a time: seconds \(75\.5\), mm:ss \(1:15\.5\) or hh:mm:ss \(0:01:15\.5\); got "1:2"$/);
  });
});
