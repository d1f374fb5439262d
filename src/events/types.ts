/**
 * Events: what happens in a video and when, as `{start, end, text}` spans in seconds. One result type for temporal
 * grounding (a query → the span(s) where it happens) and dense captioning (the whole video → a list of events),
 * returned by the library (`VideoModel.ground` / `VideoModel.events`), the CLI (`videolm ground` / `videolm events`)
 * and the HTTP API (`POST /v1/events`, chat completions with `response_format: {type: "videolm_events"}`).
 */

/** One span of the video. Times are seconds from the start of the video the model saw (after `--start`). */
export interface Event {
  start: number;
  end: number;
  /** What happens (dense captions) or the query it answers (grounding). */
  text: string;
}

export type EventsTask = "grounding" | "dense";

/** The result of a grounding or dense-captioning request: the parsed spans beside the model's own words. */
export interface EventsResult {
  task: EventsTask;
  /** Grounding: the query as the user gave it. */
  query?: string;
  /** Parsed, clamped to [0, duration], start ≤ end, in order of start. Empty when nothing parsed (`parsed` false). */
  events: Event[];
  /** The model's text, unchanged. */
  raw: string;
  /** Seconds of video the times refer to (the sampled clip's length). */
  duration: number;
  /** False when the text held no span the parser could read: `events` is then empty, never invented. */
  parsed: boolean;
  /** What the parser changed or could not read, in words (clamped times, swapped start/end, skipped lines). */
  warnings: string[];
}

/** What the tolerant parser returns (src/events/parse.ts). */
export interface ParsedEvents {
  events: Event[];
  warnings: string[];
}
