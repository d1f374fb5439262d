/**
 * Events out of JSON that models write, in every shape seen in real outputs (docs: .notes research, corpus in
 * test/fixtures/events/corpus.json):
 *   - a list of `{start_time, end_time, description}` (Qwen2.5-VL cookbook), times as "mm:ss.ff", numbers or
 *     zero-padded seconds ("00.00" is 0 s, not a clock);
 *   - an object keyed by spans, `{"00:23.00 - 00:48.00": "trim the fat …"}` (Qwen3-VL cookbook);
 *   - `{"timestamp": [s, e], "caption": …}` (ActivityNet-Captions / VTG-LLM);
 *   - `{"query": …, "relevant_windows": [[s, e], …]}` (Moment-DETR style), bare `[s, e]` pairs and lists of them;
 *   - `{"时间范围": "37.1秒到52.6秒", "场景描述": …}`, wrapped in any object (`{"events": [...]}`, `{"分割片段": [...]}`);
 *   - per-frame `{"time": 1.0, …}` points (Qwen3-VL spatio-temporal grounding) as zero-length events.
 */
import { parseSpanString, parseTimeString } from "./time-text.js";
import type { JsonValue } from "./tolerant-json.js";

export interface RawEvent {
  start: number;
  end: number;
  text: string;
}

type JsonObject = { [key: string]: JsonValue };

const MAX_NESTING = 12;

// Keys compared after lowercasing and removing blanks, "_" and "-" ("start_time", "Start Time", "startTime" match).
const START_KEYS = ["start", "starttime", "begin", "begintime", "from", "starttimestamp", "startsec", "startseconds", "开始", "开始时间", "起始时间"];
const END_KEYS = ["end", "endtime", "to", "stop", "finish", "endtimestamp", "endsec", "endseconds", "结束", "结束时间", "终止时间"];
const SPAN_KEYS = ["timestamp", "timestamps", "time", "span", "segment", "timerange", "range", "interval", "window", "windows", "relevantwindows", "spans", "segments", "时间范围", "时间段", "时间"];
const TEXT_KEYS = ["description", "caption", "event", "text", "sentence", "summary", "content", "label", "title", "action", "query", "描述", "场景描述", "事件", "事件描述", "内容", "视频理解"];

/** The events a JSON value describes; lists of strings go to `fromText` (one free-text event list per string). */
export function eventsFromJsonValue(value: JsonValue, fromText: (text: string) => RawEvent[]): RawEvent[] {
  const events: RawEvent[] = [];
  collect(value, events, fromText, 0);
  return events;
}

function collect(value: JsonValue, out: RawEvent[], fromText: (text: string) => RawEvent[], depth: number): void {
  if (depth > MAX_NESTING || value === null || typeof value !== "object") return;
  if (Array.isArray(value)) {
    const pair = spanOfPair(value);
    if (pair) {
      out.push({ start: pair[0], end: pair[1], text: "" });
      return;
    }
    for (const item of value) {
      if (typeof item === "string") out.push(...fromText(item));
      else collect(item, out, fromText, depth + 1);
    }
    return;
  }
  const own = eventsOfObject(value);
  if (own.length > 0) {
    out.push(...own);
    return;
  }
  for (const [key, member] of Object.entries(value)) {
    const span = parseSpanString(key);
    if (span) out.push({ start: span[0], end: span[1], text: textOf(member) });
    else collect(member, out, fromText, depth + 1);
  }
}

/** The event(s) an object itself describes (start/end keys, a span key), else []. */
function eventsOfObject(object: JsonObject): RawEvent[] {
  const members = new Map<string, JsonValue>();
  for (const [key, value] of Object.entries(object)) {
    const normalized = key.toLowerCase().replace(/[\s_-]/g, "");
    if (!members.has(normalized)) members.set(normalized, value);
  }
  const text = textOf(object);
  const start = firstTime(members, START_KEYS);
  const end = firstTime(members, END_KEYS);
  if (start !== undefined && end !== undefined) return [{ start, end, text }];
  for (const key of SPAN_KEYS) {
    const value = members.get(key);
    if (value === undefined) continue;
    const spans = spansOf(value);
    if (spans.length > 0) return spans.map(([s, e]) => ({ start: s, end: e, text }));
  }
  return [];
}

/** A span key's value: "[s, e]", "[[s, e], …]", "A - B", or a single time (a point). */
function spansOf(value: JsonValue): [number, number][] {
  if (typeof value === "number") return Number.isFinite(value) ? [[value, value]] : [];
  if (typeof value === "string") {
    const span = parseSpanString(value);
    if (span) return [span];
    const point = parseTimeString(value);
    return point === undefined ? [] : [[point, point]];
  }
  if (!Array.isArray(value)) return [];
  const pair = spanOfPair(value);
  if (pair) return [pair];
  return value.flatMap((item) => (Array.isArray(item) ? spansOf(item) : []));
}

/** `[s, e]` with two times (numbers or time strings). */
function spanOfPair(value: JsonValue[]): [number, number] | undefined {
  if (value.length !== 2) return undefined;
  const start = timeOf(value[0]);
  const end = timeOf(value[1]);
  return start !== undefined && end !== undefined ? [start, end] : undefined;
}

function firstTime(members: Map<string, JsonValue>, keys: string[]): number | undefined {
  for (const key of keys) {
    const value = members.get(key);
    if (value === undefined) continue;
    const time = timeOf(value);
    if (time !== undefined) return time;
  }
  return undefined;
}

function timeOf(value: JsonValue): number | undefined {
  if (typeof value === "number") return Number.isFinite(value) ? value : undefined;
  if (typeof value === "string") return parseTimeString(value);
  return undefined;
}

function textOf(value: JsonValue): string {
  if (typeof value === "string") return value.trim();
  if (value === null || typeof value !== "object" || Array.isArray(value)) return "";
  const members = new Map<string, JsonValue>();
  for (const [key, member] of Object.entries(value)) members.set(key.toLowerCase().replace(/[\s_-]/g, ""), member);
  for (const key of TEXT_KEYS) {
    const member = members.get(key);
    if (typeof member === "string" && member.trim()) return member.trim();
  }
  return "";
}
