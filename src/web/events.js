/**
 * Events on the page: where each `{start, end, text}` span sits on a timeline, which spans hold a moment, how a span
 * reads, and the SRT / WebVTT files the page exports. Pure functions, shared by the page (events-view.js, app.js)
 * and the unit tests (test/web-events.test.ts proves the exports equal the library's formatEvents on the same events).
 */
import { formatTime } from "./timestamps.js";

/**
 * The bars of a timeline `duration` seconds long: per event (in the given order) `left` and `width` in percent of
 * the duration, clamped to it, and a `lane` (row) so that events overlapping in time never cover each other — each
 * event, in order of start, takes the first lane free by its start (interval partitioning: as few lanes as the most
 * events overlapping at one moment). `lanes` is how many rows the timeline needs (at least 1).
 */
export function timelineLayout(events, duration) {
  const total = duration > 0 && Number.isFinite(duration) ? duration : Math.max(0, ...events.map((e) => e.end));
  const pct = (s) => (total > 0 ? (100 * Math.min(Math.max(s, 0), total)) / total : 0);
  const order = events.map((e, index) => index).sort((a, b) => events[a].start - events[b].start || events[a].end - events[b].end || a - b);
  const laneEnds = [];
  const lanes = new Array(events.length);
  for (const i of order) {
    const e = events[i];
    let lane = laneEnds.findIndex((end) => end <= e.start);
    if (lane === -1) lane = laneEnds.length;
    laneEnds[lane] = Math.max(e.end, e.start);
    lanes[i] = lane;
  }
  const bars = events.map((e, index) => {
    const left = pct(e.start);
    return { index, left, width: Math.max(0, pct(e.end) - left), lane: lanes[index] };
  });
  return { bars, lanes: Math.max(1, laneEnds.length) };
}

/** Indices of the events that hold the moment `t` (start ≤ t < end; an instant event only at its own time). */
export function eventsAt(events, t) {
  const out = [];
  events.forEach((e, i) => {
    if (e.start <= t && (t < e.end || (e.start === e.end && t === e.start))) out.push(i);
  });
  return out;
}

/** "0:01.5–0:03", or one time for an instant. */
export function spanLabel(event) {
  return event.end > event.start ? `${formatTime(event.start)}–${formatTime(event.end)}` : formatTime(event.start);
}

/** What a bar or list entry says to people and screen readers: "0:01.5–0:03 · the red ball is visible". */
export function eventLabel(event) {
  return event.text ? `${spanLabel(event)} · ${event.text}` : spanLabel(event);
}

/** "clip.webm" → "clip.srt" (the export's file name, from the video's). */
export function exportName(videoName, extension) {
  const base = String(videoName || "events").replace(/\.[^./\\]*$/, "") || "events";
  return `${base}.${extension}`;
}

/**
 * What a result holds, in words: "2 events", "1 moment for “the ball stops”", or that no event could be read in the
 * model's answer (never an invented one); the parser's warnings follow (e.g. times outside the video, dropped).
 */
export function resultSummary(result) {
  const n = (result.events ?? []).length;
  const what = result.task === "grounding" ? (n === 1 ? "moment" : "moments") : n === 1 ? "event" : "events";
  let text =
    result.parsed === false ? "No event could be read in the model's answer (its words are below)."
    : n === 0 ? `No ${what} found.`
    : `${n} ${what}${result.task === "grounding" && result.query ? ` for “${result.query}”` : ""}.`;
  const warnings = result.warnings ?? [];
  if (warnings.length) text += ` Note: ${warnings.join("; ")}.`;
  return text;
}

// ---- SRT and WebVTT, as the library writes them (src/events/format.ts formatEvents "srt" / "vtt": the same rules,
// ---- in the browser; test/web-events.test.ts checks the output is identical on the same events).

/** HH:MM:SS<sep>mmm, rounded to the millisecond (hours grow past two digits when needed). */
function clock(seconds, separator) {
  const totalMs = Math.max(0, Math.round(seconds * 1000));
  const ms = totalMs % 1000;
  const totalSeconds = (totalMs - ms) / 1000;
  const pad = (v, w) => String(v).padStart(w, "0");
  return `${pad(Math.floor(totalSeconds / 3600), 2)}:${pad(Math.floor(totalSeconds / 60) % 60, 2)}:${pad(totalSeconds % 60, 2)}${separator}${pad(ms, 3)}`;
}

/** Cue text: CRLF/CR → LF, blank lines removed (they would end the cue), no leading/trailing newlines. */
function cueText(text) {
  return String(text)
    .replace(/\r\n?/g, "\n")
    .split("\n")
    .filter((line) => line.trim() !== "")
    .join("\n");
}

/** SubRip: "index\nHH:MM:SS,mmm --> HH:MM:SS,mmm\ntext\n\n" per event. */
export function formatSrt(events) {
  return events.map((e, i) => `${i + 1}\n${clock(e.start, ",")} --> ${clock(e.end, ",")}\n${cueText(e.text)}\n\n`).join("");
}

/** WebVTT: "WEBVTT", a blank line, then cues; cue text escapes &, < and > (so "-->" never appears in it). */
export function formatVtt(events) {
  const escape = (t) => t.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  return `WEBVTT\n\n${events.map((e) => `${clock(e.start, ".")} --> ${clock(e.end, ".")}\n${escape(cueText(e.text))}\n\n`).join("")}`;
}
