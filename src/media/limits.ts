/**
 * The pixel limit on media videolm did not make itself: decompression bombs.
 *
 * Threat: a few kilobytes of image or video can claim enormous frames — a 223-byte JPEG or a 783 KB PNG of
 * 16383×16383 pixels, a 200 KB H.264 file of 8192×8192 frames. Decoding them costs 1.6–1.7 GB of memory and seconds
 * to tens of seconds each (measured on the 2-core reference machine), and a server decoding one is blocked meanwhile.
 *
 * Defence: the stored size (width × height of an image, or of one video frame) is read from the header first — sharp
 * `metadata()` for images, ffprobe for videos — and anything larger than `maxInputPixels` is refused with a one-line
 * error before a single pixel is decoded. Nothing is silently downscaled (that would change results). Second layers:
 * sharp's own `limitInputPixels` and the FFmpeg decoders' `max_pixels`, set from the same limit, refuse a frame whose
 * bitstream is larger than its header said.
 *
 * The default, 50,000,000 pixels, admits 48 MP phone photos (8064×6048) and 8K video frames (7680×4320 = 33 MP) and
 * refuses 8192×8192 (67 MP) and larger. CLI: `--max-input-pixels N` (run, inspect, serve); library: `maxInputPixels`
 * in `MediaOptions`.
 */
import { VideolmError } from "../errors.js";

export const DEFAULT_MAX_INPUT_PIXELS = 50_000_000;

/** The limit to apply: `limit` when given (must be a positive integer), else the default. */
export function resolveMaxInputPixels(limit: number | undefined): number {
  if (limit === undefined) return DEFAULT_MAX_INPUT_PIXELS;
  if (!(Number.isSafeInteger(limit) && limit > 0)) {
    throw new VideolmError(`maxInputPixels (--max-input-pixels) must be a positive integer, got ${limit}`);
  }
  return limit;
}

/** "50,000,000" */
function grouped(n: number): string {
  return n.toLocaleString("en-US");
}

/** The reason of a refusal, e.g. `16383×16383 pixels is more than the limit of 50,000,000 (--max-input-pixels)`. */
export function pixelLimitReason(width: number, height: number, limit: number, perFrame = false): string {
  return `${width}×${height} pixels${perFrame ? " per frame" : ""} is more than the limit of ${grouped(limit)} (--max-input-pixels)`;
}

/** The one-line refusal, e.g. `image.png: 16383×16383 pixels is more than the limit of 50,000,000 (--max-input-pixels)`. */
export function pixelLimitError(label: string, width: number, height: number, limit: number, perFrame = false): VideolmError {
  return new VideolmError(`${label}: ${pixelLimitReason(width, height, limit, perFrame)}`);
}

/** Throws `pixelLimitError` when width × height exceeds `limit`. */
export function checkInputPixels(label: string, width: number, height: number, limit: number, perFrame = false): void {
  if (width * height > limit) throw pixelLimitError(label, width, height, limit, perFrame);
}

/**
 * The FFmpeg decoders' `max_pixels` for a limit: a little above it, because decoders check their coded size, which is
 * padded to whole blocks (16 or 64 pixels per side, e.g. 1920×1088 for 1080p H.264), and a frame within the limit must
 * still decode. The exact limit is enforced on the probed size before decoding starts.
 */
export function decoderMaxPixels(limit: number): number {
  return Math.min(Math.ceil(limit * 1.05) + 1_000_000, 2 ** 31 - 1);
}
