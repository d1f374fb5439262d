/**
 * One tolerant parser for the time spans video models write, in JSON or in prose, into `Event[]`.
 *
 * Order of reading:
 *   1. Only the answer counts: text after the last `</think>` (an unfinished `<think>` block is reasoning, not read),
 *      the inside of `<answer>…</answer>` when present; HTML-ish inline tags (`<span>`) are dropped.
 *   2. JSON, fenced or not, truncated JSON kept as far as it is complete (json-events.ts lists the shapes).
 *   3. Otherwise free text, line by line (time-text.ts lists the span forms). A line's text is what surrounds its
 *      span: a label before it ("第一次跳高：3 - 10秒", "1. title：0 - 5秒，description") and/or a description after it
 *      ("0.0 - 7.9 seconds, A man …"); several spans on one line each take the text up to the next span. A span alone
 *      on its line takes the next line as its text.
 *   4. Only when no span was found: `start: A … end: B` labels, then single times said "at 3.5 seconds", which become
 *      zero-length events (a point is not a span; the warning says so, and its IoU with any real span is 0).
 * Then every event is checked against the video: start ≤ end (swapped, with a warning), clamped to [0, duration],
 * dropped when it lies entirely outside (a warning each), sorted by start. Nothing parsed: no events and a warning —
 * never invented.
 *
 * Grounding: an event's text is the model's own words when it gave any ("第二次跳高"), else the query. Filler such as
 * "The given query happens in" is not a description.
 */
import { eventsFromJsonValue, type RawEvent } from "./json-events.js";
import { labelledPairs, pointTimes, scanSpans } from "./time-text.js";
import { readJsonPrefix } from "./tolerant-json.js";
import type { Event, EventsResult, EventsTask, ParsedEvents } from "./types.js";

export interface ParseEventsOptions {
  /** Seconds of video the times refer to: events are clamped to [0, duration]. */
  duration?: number;
  task?: EventsTask;
  /** Grounding: the query, used as the text of events the model gave no words for. */
  query?: string;
}

/** Longer text is cut here before parsing (a warning says so): far past any answer, and it bounds the work. */
export const MAX_PARSE_CHARS = 100_000;
/** JSON start candidates ("[" / "{") tried before giving up on JSON. */
const MAX_JSON_ATTEMPTS = 16;

export function parseEvents(text: string, opts: ParseEventsOptions = {}): ParsedEvents {
  const warnings: string[] = [];
  let body = text;
  if (body.length > MAX_PARSE_CHARS) {
    warnings.push(`the text is ${body.length} characters long; only the first ${MAX_PARSE_CHARS} were read`);
    body = body.slice(0, MAX_PARSE_CHARS);
  }
  body = stripMarkup(answerPart(body, warnings));
  let events = eventsFromJson(body, warnings);
  if (events.length === 0) events = eventsFromLines(body, warnings);
  if (events.length === 0) events = fallbackEvents(body, warnings);
  if (opts.query !== undefined && opts.query.trim()) {
    const query = opts.query.trim();
    for (const event of events) if (!event.text) event.text = query;
  }
  const checked = checkAgainstVideo(events, opts.duration, warnings);
  if (checked.length === 0) warnings.push(events.length === 0 ? "no time span found in the model's text: no events" : "no event lies inside the video: no events");
  else if (opts.task !== "grounding") warnRepeats(checked, warnings);
  return { events: checked, warnings };
}

/** The result the library, CLI and server return: parsed events beside the model's unchanged text. */
export function eventsResult(raw: string, opts: { task: EventsTask; query?: string; duration: number }): EventsResult {
  const { events, warnings } = parseEvents(raw, opts);
  return {
    task: opts.task,
    ...(opts.query !== undefined ? { query: opts.query } : {}),
    events,
    raw,
    duration: opts.duration,
    parsed: events.length > 0,
    warnings,
  };
}

function answerPart(text: string, warnings: string[]): string {
  let body = text;
  const thinkEnd = body.lastIndexOf("</think>");
  if (thinkEnd >= 0) body = body.slice(thinkEnd + "</think>".length);
  else {
    const thinkStart = body.indexOf("<think>");
    if (thinkStart >= 0) {
      warnings.push("the text ends inside a <think> block (reasoning cut off before an answer): its times were not read");
      body = body.slice(0, thinkStart);
    }
  }
  const answerStart = body.indexOf("<answer>");
  if (answerStart >= 0) {
    const answerEnd = body.indexOf("</answer>", answerStart);
    body = body.slice(answerStart + "<answer>".length, answerEnd < 0 ? undefined : answerEnd);
  }
  return body;
}

// Bounded attribute run ({0,200}): linear whatever the input.
const BLOCK_TAGS = /<\/?(?:p|br|div|li|ul|ol|tr|table)\b[^<>]{0,200}>/gi;
const INLINE_TAGS = /<\/?(?:span|b|i|em|strong|code|pre|u|mark|font|time|td|th)\b[^<>]{0,200}>/gi;

function stripMarkup(text: string): string {
  return text.replace(BLOCK_TAGS, "\n").replace(INLINE_TAGS, "");
}

function eventsFromJson(body: string, warnings: string[]): RawEvent[] {
  const fence = body.indexOf("```");
  if (fence >= 0) {
    const contentStart = body.indexOf("\n", fence);
    if (contentStart >= 0) {
      const close = body.indexOf("```", contentStart);
      const fenced = eventsFromJsonIn(body.slice(contentStart + 1, close < 0 ? undefined : close), warnings);
      if (fenced.length > 0) return fenced;
    }
  }
  return eventsFromJsonIn(body, warnings);
}

function eventsFromJsonIn(text: string, warnings: string[]): RawEvent[] {
  let attempts = 0;
  let pos = 0;
  while (attempts < MAX_JSON_ATTEMPTS) {
    const next = nextOpening(text, pos);
    if (next < 0) return [];
    attempts++;
    const json = readJsonPrefix(text, next);
    if (json && typeof json.value === "object" && json.value !== null) {
      const events = eventsFromJsonValue(json.value, (line) => eventsFromLines(line, warnings));
      if (events.length > 0) {
        if (!json.complete) warnings.push(`the JSON is cut off (the model may have hit its token limit): kept the ${events.length} complete event(s)`);
        return events;
      }
      if (!json.complete) return [];
      pos = json.end;
    } else pos = next + 1;
  }
  return [];
}

function nextOpening(text: string, from: number): number {
  for (let i = from; i < text.length; i++) if (text[i] === "[" || text[i] === "{") return i;
  return -1;
}

function eventsFromLines(body: string, warnings: string[]): RawEvent[] {
  const events: RawEvent[] = [];
  let timecodes = 0;
  let previousLineEvent: RawEvent | undefined;
  for (const line of body.split(/\r\n|\r|\n/)) {
    const scan = scanSpans(line);
    timecodes += scan.timecodes;
    const spans = scan.spans;
    if (spans.length === 0) {
      const text = cleanText(line);
      // A span alone on its line, its description on the next one.
      if (previousLineEvent && !previousLineEvent.text && text) previousLineEvent.text = text;
      previousLineEvent = undefined;
      continue;
    }
    const label = labelText(line.slice(0, spans[0].from));
    const lineEvents = spans.map((span, k) => {
      const text = label ? (k === 0 ? label : gapText(line.slice(spans[k - 1].to, span.from))) : k + 1 < spans.length ? gapText(line.slice(span.to, spans[k + 1].from)) : cleanText(line.slice(span.to));
      return { start: span.start, end: span.end, text };
    });
    if (label) {
      const last = lineEvents[lineEvents.length - 1];
      const trailing = cleanText(line.slice(spans[spans.length - 1].to));
      if (trailing) last.text = joinLabel(last.text, trailing);
    }
    events.push(...lineEvents);
    previousLineEvent = lineEvents[lineEvents.length - 1];
  }
  if (timecodes > 0) warnings.push(`skipped ${timecodes} span(s) written as hh:mm:ss:ff timecodes: the last field counts frames, and the text does not say the frame rate`);
  return events;
}

function fallbackEvents(body: string, warnings: string[]): RawEvent[] {
  const loose = scanSpans(body).loose;
  const pairs = labelledPairs(body, loose);
  if (pairs.length > 0) return pairs.map(([start, end]) => ({ start, end, text: "" }));
  const points = pointTimes(body, loose);
  if (points.length > 0) {
    warnings.push(`the model gave single time(s), not spans: kept as zero-length event(s) at ${points.map(seconds).join(", ")} s`);
    return points.map((t) => ({ start: t, end: t, text: "" }));
  }
  return [];
}

/** Start ≤ end, inside [0, duration], in order of start; a warning for each kind of change. */
function checkAgainstVideo(events: RawEvent[], duration: number | undefined, warnings: string[]): Event[] {
  const swapped: string[] = [];
  const clamped: string[] = [];
  const outside: string[] = [];
  const kept: Event[] = [];
  const limit = duration !== undefined && Number.isFinite(duration) && duration > 0 ? duration : undefined;
  for (const event of events) {
    let { start, end } = event;
    if (!Number.isFinite(start) || !Number.isFinite(end)) continue;
    if (start > end) {
      swapped.push(spanText(start, end));
      [start, end] = [end, start];
    }
    if (end < 0 || (limit !== undefined && (start > limit || (start === limit && end > start)))) {
      outside.push(spanText(start, end));
      continue;
    }
    if (start < 0 || (limit !== undefined && end > limit)) {
      clamped.push(spanText(start, end));
      start = Math.max(0, start);
      end = limit === undefined ? end : Math.min(end, limit);
    }
    kept.push({ start, end, text: event.text });
  }
  const range = limit === undefined ? "" : ` (0–${seconds(limit)} s)`;
  if (swapped.length) warnings.push(`swapped start and end of ${swapped.length} event(s) written end first: ${list(swapped)}`);
  if (clamped.length) warnings.push(`clamped ${clamped.length} event(s) reaching outside the video${range}: ${list(clamped)}`);
  if (outside.length) warnings.push(`dropped ${outside.length} event(s) outside the video${range}: ${list(outside)}`);
  return kept.sort((a, b) => a.start - b.start || a.end - b.end);
}

/** A looping model (QwenLM/Qwen3-VL#1737) repeats one sentence at every step: say so, keep the events. */
function warnRepeats(events: Event[], warnings: string[]): void {
  const seen = new Set<string>();
  let repeats = 0;
  for (const { text } of events) {
    if (!text) continue;
    if (seen.has(text)) repeats++;
    seen.add(text);
  }
  if (repeats >= 2) warnings.push(`${repeats} events repeat an earlier event's text word for word (the model may be looping)`);
}

// Characters trimmed around a line's text: separators between a span and its words, markdown emphasis, the
// brackets of "[00:15, 00:32]". A sentence keeps its final full stop; only a leading one goes ("seconds. Then …").
const TRIMMED_BOTH = new Set([..." \t\u00a0\u3000,，:：;；、-–—~*#>|`_"]);
const TRIMMED_LEADING = new Set([...TRIMMED_BOTH, ".", "。", "]", ")", "）", "】"]);
const TRIMMED_TRAILING = new Set([...TRIMMED_BOTH, "[", "(", "（", "【"]);
const LIST_MARKER = /^\s*(?:\d{1,3}[.)、]|\(\d{1,3}\)|[-*•·+])\s+/u;

/** Trims separators around `text` (a character loop, not a regex: linear on any input). */
function cleanText(text: string): string {
  let from = 0;
  let to = text.length;
  while (from < to && TRIMMED_LEADING.has(text[from])) from++;
  while (to > from && TRIMMED_TRAILING.has(text[to - 1])) to--;
  return text.slice(from, to);
}

/** Words between two spans on a line: "…, a man walks; from" → "a man walks" (the "from" leads to the next span). */
function gapText(text: string): string {
  return cleanText(withoutTrailingConnectors(cleanText(text)));
}

/**
 * The words before a line's first span, unless they are only a list marker or filler ("The event happens in");
 * connecting words at its end go ("He cuts a tomato from" → "He cuts a tomato").
 */
function labelText(before: string): string {
  const text = cleanText(before.length <= 200 ? before.replace(LIST_MARKER, "") : before);
  return isFiller(text) ? "" : cleanText(withoutTrailingConnectors(text));
}

const TRAILING_CONNECTORS = new Set(["and", "then", "from", "between", "in", "at", "during", "within", "around", "approximately", "about", "the", "is", "are", "was", "happens", "occurs", "appears", "takes", "place", "range", "time"]);

function withoutTrailingConnectors(text: string): string {
  let end = text.length;
  // Chinese: "从第3秒到第5秒", "出现在3 - 5秒": the ordinal 第 and the preposition before a time.
  while (end > 0 && "第从在于自".includes(text[end - 1])) end--;
  while (end > 0) {
    const space = text.lastIndexOf(" ", end - 1);
    const word = text.slice(space + 1, end).toLowerCase().replace(/[:：,]$/, "");
    if (!word) break;
    if (!TRAILING_CONNECTORS.has(word) || space < 0) break;
    end = space;
  }
  return text.slice(0, end);
}

const FILLER_WORDS = new Set(
  (
    "a an the this that it its given query event events action activity described content moment segment clip scene " +
    "happens happen happened occurs occur occurred takes take place is are was were appears appear visible shown seen " +
    "in at from between during within around approximately about roughly time times range timestamp timestamps answer " +
    "video span period interval of starts start ends end and occurring happening located found can be"
  ).split(" "),
);
const CHINESE_FILLER = new Set(["时间", "时间范围", "时间段", "答案", "视频时间", "在", "发生在", "出现在"]);

function isFiller(text: string): boolean {
  if (!text) return true;
  if (CHINESE_FILLER.has(text)) return true;
  if (text.length > 120) return false;
  const words = text.toLowerCase().split(/[^a-z0-9'\u3400-\u9fff]+/u).filter(Boolean);
  return words.length > 0 && words.every((word) => FILLER_WORDS.has(word));
}

function joinLabel(label: string, description: string): string {
  return /[\u3000-\u9fff\uff00-\uffef]$/u.test(label) ? `${label}：${description}` : `${label}: ${description}`;
}

function seconds(value: number): string {
  return String(Math.round(value * 1000) / 1000);
}

function spanText(start: number, end: number): string {
  return `${seconds(start)}–${seconds(end)} s`;
}

function list(items: string[]): string {
  return items.length <= 5 ? items.join(", ") : `${items.slice(0, 5).join(", ")} and ${items.length - 5} more`;
}
