/** Events as JSON / SRT / WebVTT / CSV and as a terminal table; SRT and VTT read back to the same events to the ms. */
import { describe, expect, it } from "vitest";
import { VideolmError } from "../src/errors.js";
import { eventsTable, formatEvents, parseSrt, parseVtt } from "../src/events/format.js";
import type { Event } from "../src/events/types.js";

const two: Event[] = [
  { start: 1.5, end: 3, text: "a dog runs" },
  { start: 3723.25, end: 3725.0004, text: "it stops" },
];

describe("formatEvents", () => {
  it("writes SRT per the SubRip layout: index, HH:MM:SS,mmm --> HH:MM:SS,mmm, text, blank line", () => {
    expect(formatEvents(two, "srt")).toBe("1\n00:00:01,500 --> 00:00:03,000\na dog runs\n\n2\n01:02:03,250 --> 01:02:05,000\nit stops\n\n");
  });

  it("writes WebVTT with its header and HH:MM:SS.mmm, escaping &, < and >", () => {
    const text = formatEvents([{ start: 0.001, end: 59.9995, text: "a <b> & c --> d" }], "vtt");
    expect(text).toBe("WEBVTT\n\n00:00:00.001 --> 00:01:00.000\na &lt;b&gt; &amp; c --&gt; d\n\n");
  });

  it("writes CSV per RFC 4180: header, CRLF, quoted fields with doubled quotes", () => {
    const csv = formatEvents([{ start: 0, end: 2.5, text: 'say "hi", then\nleave' }, { start: 3, end: 4, text: "plain" }], "csv");
    expect(csv).toBe('start,end,text\r\n0,2.5,"say ""hi"", then\nleave"\r\n3,4,plain\r\n');
  });

  it("writes JSON as a list of {start, end, text}", () => {
    expect(JSON.parse(formatEvents(two, "json"))).toEqual(two);
  });

  it("drops blank lines inside a text, which would end the cue early", () => {
    const events = [{ start: 0, end: 1, text: "a\n\n\r\nb" }, { start: 2, end: 3, text: "c" }];
    expect(parseSrt(formatEvents(events, "srt")).map((e) => e.text)).toEqual(["a\nb", "c"]);
    expect(parseVtt(formatEvents(events, "vtt")).map((e) => e.text)).toEqual(["a\nb", "c"]);
  });

  it("refuses an unknown format with a VideolmError", () => {
    expect(() => formatEvents(two, "xml" as never)).toThrow(VideolmError);
  });
});

/** Deterministic awkward events: ms times, hours, markup, arrows, commas, quotes, CJK, multi-line text. */
function awkwardEvents(): Event[] {
  const texts = ["plain", "a <b>bold</b> & 'quoted' \"double\"", "arrow --> inside", "逗号，和冒号：", "two\nlines", "1", "00:00:01,000 --> looks like timing", "trailing, comma,", "emoji 🎬"];
  let seed = 7;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  return texts.map((text, i) => {
    const start = Math.round(random() * 9_000_000) / 1000 + i;
    return { start, end: start + Math.round(random() * 60_000) / 1000, text };
  });
}

describe("round trips", () => {
  const events = awkwardEvents();
  const same = (back: Event[]) => {
    expect(back).toHaveLength(events.length);
    back.forEach((event, i) => {
      expect(Math.round(event.start * 1000)).toBe(Math.round(events[i].start * 1000));
      expect(Math.round(event.end * 1000)).toBe(Math.round(events[i].end * 1000));
      expect(event.text).toBe(events[i].text);
    });
  };
  it("SRT → parseSrt gives the same events to the ms", () => same(parseSrt(formatEvents(events, "srt"))));
  it("VTT → parseVtt gives the same events to the ms", () => same(parseVtt(formatEvents(events, "vtt"))));
  it("CSV → an RFC 4180 reader gives the same events", () => {
    const [header, ...rows] = readCsv(formatEvents(events, "csv"));
    expect(header).toEqual(["start", "end", "text"]);
    same(rows.map(([start, end, text]) => ({ start: Number(start), end: Number(end), text })));
  });
});

/** A minimal RFC 4180 reader (quoted fields, doubled quotes, CRLF records) written for this test. */
function readCsv(text: string): string[][] {
  const records: string[][] = [];
  let field = "";
  let record: string[] = [];
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") {
      record.push(field);
      field = "";
    } else if (c === "\r" && text[i + 1] === "\n") {
      record.push(field);
      records.push(record);
      record = [];
      field = "";
      i++;
    } else field += c;
  }
  return records;
}

describe("parseSrt", () => {
  it("reads a hand-written file: BOM, CRLF, no index line, '.' before ms, extra blank lines", () => {
    const text = "\uFEFF1\r\n00:00:01,000 --> 00:00:02,500\r\nhello\r\n\r\n\r\n00:01:00.250 --> 00:01:01.000\r\nworld\r\nagain\r\n";
    expect(parseSrt(text)).toEqual([
      { start: 1, end: 2.5, text: "hello" },
      { start: 60.25, end: 61, text: "world\nagain" },
    ]);
  });

  it("names the line of a malformed timing", () => {
    expect(() => parseSrt("1\n00:00:01,000 --> 00:00:02,500\nok\n\n2\n00:00:03 --> 00:00:04,000\nbad\n")).toThrow(/SRT line 6/);
    expect(() => parseSrt("1\nno timing here\n")).toThrow(VideolmError);
    expect(() => parseSrt("1\n00:00:05,000 --> 00:00:04,000\nbackwards\n")).toThrow(/ends .* before it starts/);
  });
});

describe("parseVtt", () => {
  it("reads header text, NOTE and STYLE blocks, cue ids, settings, mm:ss times, markup and entities", () => {
    const text = [
      "WEBVTT - made by hand",
      "Kind: captions",
      "",
      "NOTE a comment",
      "spanning lines",
      "",
      "STYLE",
      "::cue { color: red }",
      "",
      "intro",
      "00:01.000 --> 00:02.500 align:start position:10%",
      "<v Roger>Hi &amp; <b>bye</b>&lt;3",
      "",
      "01:00:00.000 --> 01:00:01.000",
      "late",
    ].join("\n");
    expect(parseVtt(text)).toEqual([
      { start: 1, end: 2.5, text: "Hi & bye<3" },
      { start: 3600, end: 3601, text: "late" },
    ]);
  });

  it("requires the WEBVTT header", () => {
    expect(() => parseVtt("00:01.000 --> 00:02.000\nx\n")).toThrow(/WEBVTT/);
  });
});

describe("eventsTable", () => {
  const width = (line: string) => [...line].reduce((w, c) => w + (/[\u2e80-\ua4cf\uff00-\uff60]/.test(c) ? 2 : 1), 0);

  it("aligns the time columns and uses seconds for short videos", () => {
    const table = eventsTable([{ start: 0, end: 5.25, text: "short" }, { start: 12.5, end: 20, text: "b" }], { width: 60 });
    const lines = table.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^\s*start\s+end\s+text$/);
    expect(lines[1]).toMatch(/^\s*0\.0\s+5\.3\s+short$/);
    expect(lines[2]).toMatch(/^\s*12\.5\s+20\.0\s+b$/);
    expect(lines[1].indexOf("short")).toBe(lines[2].indexOf("b"));
  });

  it("uses m:ss.s past a minute and h:mm:ss.s past an hour", () => {
    expect(eventsTable([{ start: 75.5, end: 90, text: "x" }])).toContain("1:15.5");
    expect(eventsTable([{ start: 3723.5, end: 3724, text: "x" }])).toContain("1:02:03.5");
  });

  it("wraps long text (CJK counted double) within the width and marks cut text with …", () => {
    const long = "word ".repeat(60) + "第一次助跑加速女子在跑道上准备后开始助跑快速冲向跳高架".repeat(3);
    const table = eventsTable([{ start: 0, end: 1, text: long }], { width: 50, maxLines: 3 });
    const lines = table.trimEnd().split("\n");
    for (const line of lines) expect(width(line)).toBeLessThanOrEqual(50);
    expect(lines).toHaveLength(4); // header + 3
    expect(lines[3].endsWith("…")).toBe(true);
  });

  it("removes control characters so model text cannot drive the terminal", () => {
    const table = eventsTable([{ start: 0, end: 1, text: "red\u001b[31m text\u0007\rover" }]);
    // eslint-disable-next-line no-control-regex
    expect(table).not.toMatch(/[\u0000-\u0009\u000b-\u001f]/);
  });
});
