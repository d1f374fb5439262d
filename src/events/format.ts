/**
 * Events written out for programs and people: JSON, SubRip (SRT), WebVTT, CSV (RFC 4180), and a table for terminals;
 * SRT and VTT read back (`parseSrt`, `parseVtt`) so subtitles made here, or by a person, can serve as ground truth.
 *
 * Times are written to the millisecond (SRT `00:00:01,500`, VTT `00:00:01.500`), so format → parse returns the same
 * events to the ms.
 */
import { VideolmError } from "../errors.js";
import type { Event } from "./types.js";

export type EventsFormat = "json" | "srt" | "vtt" | "csv";

export const EVENTS_FORMATS: readonly EventsFormat[] = ["json", "srt", "vtt", "csv"];

export function formatEvents(events: readonly Event[], format: EventsFormat): string {
  switch (format) {
    case "json":
      return `${JSON.stringify(events.map(({ start, end, text }) => ({ start, end, text })), null, 2)}\n`;
    case "srt":
      return formatSrt(events);
    case "vtt":
      return formatVtt(events);
    case "csv":
      return formatCsv(events);
    default:
      throw new VideolmError(`unknown events format "${String(format)}": use one of ${EVENTS_FORMATS.join(", ")}`);
  }
}

// SubRip: "index\nHH:MM:SS,mmm --> HH:MM:SS,mmm\ntext\n\n". A blank line ends a cue, so the text's blank lines go.
function formatSrt(events: readonly Event[]): string {
  return events.map((event, i) => `${i + 1}\n${clock(event.start, ",")} --> ${clock(event.end, ",")}\n${cueText(event.text)}\n\n`).join("");
}

// WebVTT (W3C WebVTT §4.1): the "WEBVTT" line, a blank line, then cues "HH:MM:SS.mmm --> HH:MM:SS.mmm\ntext".
// Cue text escapes "&", "<" and ">" (">" so that "-->" can never appear in it).
function formatVtt(events: readonly Event[]): string {
  const cues = events.map((event) => `${clock(event.start, ".")} --> ${clock(event.end, ".")}\n${escapeVtt(cueText(event.text))}\n\n`);
  return `WEBVTT\n\n${cues.join("")}`;
}

// RFC 4180: CRLF line ends, a header, fields with `"`, `,`, CR or LF quoted and inner quotes doubled.
function formatCsv(events: readonly Event[]): string {
  const rows = [["start", "end", "text"], ...events.map((e) => [csvNumber(e.start), csvNumber(e.end), e.text])];
  return rows.map((row) => row.map(csvField).join(",")).join("\r\n") + "\r\n";
}

function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

function csvNumber(seconds: number): string {
  return String(Math.round(seconds * 1000) / 1000);
}

/** Cue text: CRLF/CR → LF, blank lines removed (they would end the cue), no leading/trailing newlines. */
function cueText(text: string): string {
  return text
    .replace(/\r\n?/g, "\n")
    .split("\n")
    .filter((line) => line.trim() !== "")
    .join("\n");
}

function escapeVtt(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** HH:MM:SS<sep>mmm, rounded to the millisecond (hours grow past two digits when needed). */
function clock(seconds: number, separator: "," | "."): string {
  const totalMs = Math.max(0, Math.round(seconds * 1000));
  const ms = totalMs % 1000;
  const totalSeconds = (totalMs - ms) / 1000;
  const s = totalSeconds % 60;
  const m = Math.floor(totalSeconds / 60) % 60;
  const h = Math.floor(totalSeconds / 3600);
  return `${pad(h, 2)}:${pad(m, 2)}:${pad(s, 2)}${separator}${pad(ms, 3)}`;
}

function pad(value: number, width: number): string {
  return String(value).padStart(width, "0");
}

/** Reads SubRip subtitles into events (index lines optional; "," or "." before the milliseconds). */
export function parseSrt(text: string): Event[] {
  return parseCues(text, "SRT", /^(\d+):([0-5]\d):([0-5]\d)[,.](\d{3})$/, 0);
}

/** Reads WebVTT subtitles into events: header, NOTE/STYLE/REGION blocks and cue settings skipped, markup removed. */
export function parseVtt(text: string): Event[] {
  const lines = splitLines(text);
  if (!/^WEBVTT(?:[ \t].*)?$/.test(lines[0] ?? "")) throw new VideolmError(`not a WebVTT file: line 1 must start with "WEBVTT" (found ${JSON.stringify((lines[0] ?? "").slice(0, 40))})`);
  let i = 1;
  while (i < lines.length && lines[i].trim() !== "") i++; // header block
  return parseCues(lines.slice(i).join("\n"), "WebVTT", /^(?:(\d+):)?([0-5]\d):([0-5]\d)\.(\d{3})$/, i, unescapeVtt);
}

/**
 * Blocks separated by blank lines; in each, the line holding "-->" is the timing, lines after it the text.
 * `lineOffset` maps line numbers back to the original file for error messages.
 */
function parseCues(text: string, kind: string, time: RegExp, lineOffset: number, unescape: (s: string) => string = (s) => s): Event[] {
  const lines = splitLines(text);
  const events: Event[] = [];
  let i = 0;
  while (i < lines.length) {
    if (lines[i].trim() === "") {
      i++;
      continue;
    }
    const blockStart = i;
    while (i < lines.length && lines[i].trim() !== "") i++;
    const block = lines.slice(blockStart, i);
    if (kind === "WebVTT" && /^(?:NOTE|STYLE|REGION)(?:[ \t]|$)/.test(block[0])) continue;
    const timingIndex = block.findIndex((line) => line.includes("-->"));
    const lineNumber = lineOffset + blockStart + Math.max(timingIndex, 0) + 1;
    if (timingIndex < 0 || timingIndex > 1) throw new VideolmError(`${kind} line ${lineNumber}: expected a timing line "start --> end" in this cue`);
    const [startText, rest] = block[timingIndex].split("-->").map((part) => part.trim());
    const endText = rest.split(/[ \t]+/)[0]; // WebVTT cue settings follow the end time
    const start = clockSeconds(startText, time);
    const end = clockSeconds(endText, time);
    if (start === undefined || end === undefined) throw new VideolmError(`${kind} line ${lineNumber}: cannot read the times in ${JSON.stringify(block[timingIndex])}`);
    if (end < start) throw new VideolmError(`${kind} line ${lineNumber}: the cue ends (${endText}) before it starts (${startText})`);
    events.push({ start, end, text: unescape(block.slice(timingIndex + 1).join("\n")) });
  }
  return events;
}

function clockSeconds(text: string, pattern: RegExp): number | undefined {
  const match = pattern.exec(text);
  if (!match) return undefined;
  const [, h, m, s, ms] = match;
  return Number(h ?? 0) * 3600 + Number(m) * 60 + Number(s) + Number(ms) / 1000;
}

function splitLines(text: string): string[] {
  return text.replace(/^\uFEFF/, "").split(/\r\n|\r|\n/);
}

const VTT_ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", nbsp: "\u00a0", lrm: "\u200e", rlm: "\u200f" };

/** Cue text → plain text: tags (`<b>`, `<v Speaker>`, `<00:01.000>`) removed, character references decoded. */
function unescapeVtt(text: string): string {
  return text.replace(/<[^<>\n]{0,200}>/g, "").replace(/&(amp|lt|gt|nbsp|lrm|rlm);/g, (_, name: string) => VTT_ENTITIES[name]);
}

/** A table for terminals: aligned start/end columns, text wrapped to `width` columns (at most `maxLines` lines). */
export function eventsTable(events: readonly Event[], opts: { width?: number; maxLines?: number } = {}): string {
  const width = Math.max(40, Math.floor(opts.width ?? 100));
  const maxLines = Math.max(1, opts.maxLines ?? 3);
  const longest = events.reduce((max, e) => Math.max(max, e.end, e.start), 0);
  const time = (seconds: number) => tableTime(seconds, longest);
  const starts = events.map((e) => time(e.start));
  const ends = events.map((e) => time(e.end));
  const timeWidth = Math.max(5, ...starts.map((s) => s.length), ...ends.map((s) => s.length));
  const textWidth = width - 2 * timeWidth - 4;
  const header = `${"start".padStart(timeWidth)}  ${"end".padStart(timeWidth)}  text`;
  const rows = events.map((event, i) => {
    const lines = wrap(terminalSafe(event.text), textWidth, maxLines);
    const indent = " ".repeat(2 * timeWidth + 4);
    return [`${starts[i].padStart(timeWidth)}  ${ends[i].padStart(timeWidth)}  ${lines[0] ?? ""}`.trimEnd(), ...lines.slice(1).map((line) => indent + line)].join("\n");
  });
  return [header, ...rows].join("\n") + "\n";
}

/** Seconds ("12.5") when the video is under a minute, else m:ss.s or h:mm:ss.s. */
function tableTime(seconds: number, longest: number): string {
  const tenths = Math.round(seconds * 10);
  if (longest < 59.95) return (tenths / 10).toFixed(1);
  const t = tenths % 600;
  const totalMinutes = (tenths - t) / 600;
  const secondsPart = (t / 10).toFixed(1).padStart(4, "0");
  if (longest < 3599.95) return `${totalMinutes}:${secondsPart}`;
  return `${Math.floor(totalMinutes / 60)}:${pad(totalMinutes % 60, 2)}:${secondsPart}`;
}

/** Model text must not move the cursor or recolour the terminal: control characters (ESC included) become spaces. */
function terminalSafe(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f]+/g, " ").trim();
}

/** Word wrap by display width (CJK counts 2); words longer than a line are broken; "…" marks cut text. */
function wrap(text: string, width: number, maxLines: number): string[] {
  const lines: string[] = [];
  let line = "";
  let lineWidth = 0;
  const push = () => {
    lines.push(line.trimEnd());
    line = "";
    lineWidth = 0;
  };
  for (const token of text.split(/(\s+)/)) {
    if (!token) continue;
    const isSpace = /^\s+$/.test(token);
    if (isSpace) {
      if (lineWidth > 0 && lineWidth < width) {
        line += " ";
        lineWidth += 1;
      }
      continue;
    }
    const tokenWidth = displayWidth(token);
    if (lineWidth + tokenWidth > width && lineWidth > 0) push();
    for (const char of token) {
      const w = charWidth(char);
      if (lineWidth + w > width) push();
      line += char;
      lineWidth += w;
    }
  }
  if (line.trim()) push();
  if (lines.length <= maxLines) return lines;
  const kept = lines.slice(0, maxLines);
  let last = kept[maxLines - 1];
  while (displayWidth(last) + 1 > width) last = [...last].slice(0, -1).join("");
  kept[maxLines - 1] = `${last}…`;
  return kept;
}

function displayWidth(text: string): number {
  let width = 0;
  for (const char of text) width += charWidth(char);
  return width;
}

/** Terminal columns of a character: East Asian wide/fullwidth and emoji take 2. */
function charWidth(char: string): number {
  const code = char.codePointAt(0) ?? 0;
  const wide =
    (code >= 0x1100 && code <= 0x115f) ||
    (code >= 0x2e80 && code <= 0xa4cf) ||
    (code >= 0xac00 && code <= 0xd7a3) ||
    (code >= 0xf900 && code <= 0xfaff) ||
    (code >= 0xfe30 && code <= 0xfe4f) ||
    (code >= 0xff00 && code <= 0xff60) ||
    (code >= 0xffe0 && code <= 0xffe6) ||
    (code >= 0x1f300 && code <= 0x1faff) ||
    (code >= 0x20000 && code <= 0x3fffd);
  return wide ? 2 : 1;
}
