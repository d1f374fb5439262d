/**
 * One unit of work of a batch job and its identity. An item's id names its result line, so a resumed job knows what
 * is done: the manifest's `id` when it has one, else a hash of what the item asks (video, task, question or query,
 * and its own media options) — the same row gives the same id on every run, and two rows asking the same thing are
 * one item.
 */
import { createHash } from "node:crypto";
import * as path from "node:path";
import type { MediaOptions } from "../engine/request.js";

export const BATCH_TASKS = ["answer", "events", "ground"] as const;
/** answer: a question about the video; events: dense captions (what happens when); ground: when `query` happens. */
export type BatchTask = (typeof BATCH_TASKS)[number];

/** Media options an item may set for its own video (manifest columns / keys, snake_case as in the HTTP API). */
export type ItemMediaOptions = Pick<MediaOptions, "fps" | "nframes" | "minFrames" | "maxFrames" | "minPixels" | "maxPixels" | "totalPixels" | "start" | "end" | "prune">;

export interface BatchItem {
  id: string;
  /** A path (absolute: resolved against the manifest's folder or the working directory) or an http(s) URL. */
  video: string;
  task: BatchTask;
  /** answer: the question. */
  question?: string;
  /** ground: what to find. */
  query?: string;
  media: ItemMediaOptions;
  /** Where it came from, for messages: `manifest.csv line 4`, or the file found by a folder / glob. */
  origin: string;
}

/** The id of an item without an explicit one: 16 hex digits of SHA-256 over its video, task, text and options. */
export function itemId(item: Omit<BatchItem, "id" | "origin">): string {
  const media = Object.fromEntries(Object.entries(item.media).filter(([, v]) => v !== undefined).sort(([a], [b]) => a.localeCompare(b)));
  const key = JSON.stringify([item.video, item.task, item.question ?? null, item.query ?? null, media]);
  return createHash("sha256").update(key).digest("hex").slice(0, 16);
}

/** A video reference as the item keeps it: URLs as given, paths absolute (relative ones against `base`). */
export function resolveVideo(video: string, base: string): string {
  if (/^(https?|file|data):/i.test(video)) return video;
  return path.resolve(base, video);
}
