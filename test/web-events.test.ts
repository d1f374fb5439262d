/**
 * The page's events module (src/web/events.js): timeline layout, the events at a moment, labels, and SRT / WebVTT
 * exports identical to the library's formatEvents on the same events. Expected layouts derived by hand.
 */
import { describe, expect, it } from "vitest";
import { formatEvents, parseSrt, parseVtt } from "../src/events/format.js";
import type { Event } from "../src/events/types.js";
// @ts-expect-error plain browser JavaScript module without type declarations
import { eventLabel, eventsAt, exportName, formatSrt, formatVtt, resultSummary, spanLabel, timelineLayout } from "../src/web/events.js";

type Bar = { index: number; left: number; width: number; lane: number };
const layout = (events: Event[], duration: number) => timelineLayout(events, duration) as { bars: Bar[]; lanes: number };
const ev = (start: number, end: number, text = "x"): Event => ({ start, end, text });

describe("timelineLayout", () => {
  it("places bars by start and end over the duration, in percent", () => {
    const { bars, lanes } = layout([ev(0, 2), ev(5, 10)], 10);
    expect(bars).toEqual([
      { index: 0, left: 0, width: 20, lane: 0 },
      { index: 1, left: 50, width: 50, lane: 0 },
    ]);
    expect(lanes).toBe(1);
  });

  it("puts overlapping events on separate lanes, reusing a lane once it is free (touching events share one)", () => {
    // a 0–4 and b 2–6 overlap → lanes 0, 1; c 4–5 starts when a ends → lane 0; d 5.5–8 overlaps b only → lane 0.
    const { bars, lanes } = layout([ev(4, 5, "c"), ev(0, 4, "a"), ev(2, 6, "b"), ev(5.5, 8, "d")], 8);
    expect(bars.map((b) => b.lane)).toEqual([0, 0, 1, 0]);
    expect(lanes).toBe(2);
  });

  it("clamps to the timeline and keeps instants as zero-width bars", () => {
    const { bars } = layout([ev(-1, 3), ev(8, 12), ev(2, 2)], 10);
    expect(bars.map((b) => [b.left, b.width])).toEqual([[0, 30], [80, 20], [20, 0]]);
  });

  it("without a known duration, the last event's end is the timeline's end; no events is one empty lane", () => {
    expect(layout([ev(1, 2), ev(2, 4)], NaN).bars.map((b) => [b.left, b.width])).toEqual([[25, 25], [50, 50]]);
    expect(layout([], 10)).toEqual({ bars: [], lanes: 1 });
  });
});

describe("eventsAt, labels, names", () => {
  const events = [ev(0, 2, "a"), ev(1, 3, "b"), ev(3, 3, "c")];
  it("the events holding a moment (end excluded; an instant at its own time)", () => {
    expect([eventsAt(events, 0), eventsAt(events, 1.5), eventsAt(events, 2), eventsAt(events, 3), eventsAt(events, 4)]).toEqual([[0], [0, 1], [1], [2], []]);
  });
  it("labels", () => {
    expect(spanLabel(ev(1.5, 3))).toBe("0:01.5–0:03");
    expect(spanLabel(ev(75, 75))).toBe("1:15");
    expect(eventLabel(ev(0, 2, "the ball rolls"))).toBe("0:00–0:02 · the ball rolls");
    expect(eventLabel(ev(0, 2, ""))).toBe("0:00–0:02");
  });
  it("export names follow the video's", () => {
    expect([exportName("clip.webm", "srt"), exportName("my.clip.mp4", "vtt"), exportName(undefined, "srt"), exportName(".mp4", "vtt")]).toEqual(["clip.srt", "my.clip.vtt", "events.srt", "events.vtt"]);
  });
  it("summaries say what was found, or that nothing parsed", () => {
    expect(resultSummary({ task: "grounding", query: "the ball stops", events: [ev(1, 2)], parsed: true, warnings: [] })).toBe("1 moment for “the ball stops”.");
    expect(resultSummary({ task: "dense", events: [ev(1, 2), ev(2, 3)], parsed: true, warnings: ["end clamped to 2 s"] })).toBe("2 events. Note: end clamped to 2 s.");
    expect(resultSummary({ task: "dense", events: [], parsed: false, warnings: [] })).toBe("No event could be read in the model's answer (its words are below).");
  });
});

describe("SRT and WebVTT exports equal the library's formatEvents", () => {
  const cases: [string, Event[]][] = [
    ["none", []],
    ["plain", [ev(0, 1.5, "the red ball appears"), ev(1.5, 2, "it stops")]],
    ["rounding to the millisecond", [ev(0.0004, 0.0005, "a"), ev(1.2345, 59.9996, "b"), ev(3599.9995, 3600.001, "c")]],
    ["hours past two digits", [ev(360000.25, 360001, "long")]],
    ["negative time", [ev(-0.2, 0.1, "clamped to 0")]],
    ["text with blank lines, CRLF, markup and an arrow", [ev(1, 2, "line one\r\n\r\nline two\rthree"), ev(2, 3, "a <b>bold</b> & --> arrow"), ev(3, 4, "")]],
    ["unicode", [ev(0.5, 1.25, "红色的球出现了 🎈")]],
  ];
  for (const [name, events] of cases) {
    it(name, () => {
      expect(formatSrt(events)).toBe(formatEvents(events, "srt"));
      expect(formatVtt(events)).toBe(formatEvents(events, "vtt"));
    });
  }

  it("the exports read back (parseSrt / parseVtt) as the same events to the millisecond", () => {
    const events = [ev(0.25, 1.5, "first"), ev(1.5, 2.125, "a & b")];
    expect(parseSrt(formatSrt(events))).toEqual(events);
    expect(parseVtt(formatVtt(events))).toEqual(events);
  });
});
