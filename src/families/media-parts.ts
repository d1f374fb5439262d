/**
 * Reading a request's image and video parts, shared by the family processors: what a part holds (a path, URL, Buffer,
 * raw frames, or a list of frames), how it is named in messages, images decoded with their header checked first, and
 * the frame table that gives presentation times.
 */
import { fileURLToPath } from "node:url";
import type { MediaOptions, MediaSource, VideoPart } from "../engine/request.js";
import { VideolmError } from "../errors.js";
import { mp4FrameTable, scanFrameTable, type FrameTable } from "../media/frame-table.js";
import { decodeImage } from "../media/image.js";
import type { VideoProbe } from "../media/probe.js";
import { withLocalVideoFile } from "../media/sources.js";
import type { RgbImage } from "../processing/rgb-image.js";

export function isRgbImage(x: unknown): x is RgbImage {
  return typeof x === "object" && x !== null && "data" in x && "width" in x && "height" in x && !(x instanceof URL) && !Buffer.isBuffer(x);
}

/** How a part's source is named in plans and messages (a data: URL by its length, a Buffer by its size). */
export function describeSource(x: unknown): string {
  if (typeof x === "string") return x.startsWith("data:") ? `data: URL (${x.length} chars)` : x;
  if (x instanceof URL) return x.href;
  if (Buffer.isBuffer(x)) return `<${x.length} bytes>`;
  return "<raw frames>";
}

export function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** A video file part as the URL the media layer fetches (a Buffer as a data: URL). */
export function videoUrl(video: MediaSource): string {
  return video instanceof URL ? video.href : Buffer.isBuffer(video) ? `data:video/mp4;base64,${video.toString("base64")}` : video;
}

export interface FrameListVideo {
  frames: (MediaSource | RgbImage)[];
  fps?: number;
  label: string;
}

/** A video given as frames: a list of image sources or raw RGB frames (+ their fps); undefined for a file part. */
export function frameList(video: VideoPart["video"]): FrameListVideo | undefined {
  if (Array.isArray(video)) {
    if (video.length === 0) throw new VideolmError("a video given as a list of frames needs at least one frame");
    return { frames: video.map((f) => (f instanceof URL ? fileURLToPath(f) : f)), label: `${video.length} frames` };
  }
  if (typeof video === "object" && video !== null && !(video instanceof URL) && !Buffer.isBuffer(video) && Array.isArray((video as { frames?: unknown }).frames)) {
    const raw = video as { frames: RgbImage[]; fps: number };
    if (raw.frames.length === 0) throw new VideolmError("a video given as raw frames needs at least one frame");
    return { frames: raw.frames, fps: raw.fps, label: `${raw.frames.length} raw frames` };
  }
  return undefined;
}

/**
 * Decodes an image from a path, a Buffer, or a file:// / http(s):// / data: URL (fetched with the video limits); its
 * header is checked against `maxInputPixels` before decoding. Raw frames are returned as they are.
 */
export async function loadImage(source: MediaSource | RgbImage, maxInputPixels: number | undefined, signal?: AbortSignal): Promise<RgbImage> {
  if (isRgbImage(source)) return source;
  if (Buffer.isBuffer(source)) return decodeImage(source, { maxInputPixels });
  const text = source instanceof URL ? source.href : source;
  if (!/^(https?|data|file):/i.test(text)) return decodeImage(text, { maxInputPixels });
  return withLocalVideoFile(text, { signal }, (file) => decodeImage(file.path, { maxInputPixels, label: file.label }));
}

/** The frame table when cheap (mp4/mov) or needed for presentation times of a variable-rate video. */
export async function timesTable(file: string, probe: VideoProbe, o: MediaOptions, signal?: AbortSignal): Promise<FrameTable | undefined> {
  if ((o.frameTimes ?? "presentation") === "reference") return undefined;
  if (probe.demuxer === "mov") {
    const table = await mp4FrameTable(file, probe.frameCount);
    if (table) return table;
  }
  if (probe.isVfr) return scanFrameTable(file, probe, { signal, maxInputPixels: o.maxInputPixels });
  return undefined;
}
