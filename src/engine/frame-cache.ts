/**
 * Decoded, resized frames of recent visuals, keyed by the source's identity and the plan that selected them, so a
 * second request about the same video with the same plan (a follow-up question, a re-plan in the web app, the
 * server's /v1/plan then the chat request) skips decoding. It sits before the vision cache (vision-cache.ts), which
 * keys on the pixel values these frames become; frames are 4× smaller than the float32 patches they give.
 *
 *   source identity   a local file: its real path, size and modification time (a replaced file misses); a Buffer or
 *                     a data: URL: the SHA-256 of its bytes; other URLs (downloaded per request): not cached
 *   plan              kind, frame indices, resized size and whatever else selects the pixels (the caller's JSON)
 *
 * Least-recently-used entries are dropped beyond the byte budget (frames' RGB bytes).
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import { fileURLToPath } from "node:url";
import type { RgbImage } from "../processing/rgb-image.js";

/** Default budget of a processor's frame cache: 256 MiB of RGB frames (e.g. 64 frames of 1280×720 at 3 B/px = 169 MiB). */
export const DEFAULT_FRAME_CACHE_BYTES = 256 * 2 ** 20;

/**
 * A string that changes whenever the media behind `source` may have changed, or undefined when it cannot be known
 * cheaply (http(s) URLs, raw frames).
 */
export function sourceIdentity(source: unknown): string | undefined {
  if (Buffer.isBuffer(source)) return `sha256:${createHash("sha256").update(source).digest("hex")}`;
  let file: string | undefined;
  if (source instanceof URL) {
    if (source.protocol !== "file:") return undefined;
    file = fileURLToPath(source);
  } else if (typeof source === "string") {
    if (/^data:/i.test(source)) return `sha256:${createHash("sha256").update(source).digest("hex")}`;
    if (/^file:/i.test(source)) file = fileURLToPath(source);
    else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(source)) return undefined;
    else file = source;
  }
  if (file === undefined) return undefined;
  try {
    const real = fs.realpathSync(file);
    const st = fs.statSync(real);
    if (!st.isFile()) return undefined;
    return `file:${real}:${st.size}:${st.mtimeMs}:${st.ino}`;
  } catch {
    return undefined; // missing: the loader reports it
  }
}

function framesBytes(frames: readonly RgbImage[]): number {
  // Repeated frames (padding) share their buffer: count each buffer once.
  const seen = new Set<Uint8Array>();
  let n = 0;
  for (const f of frames) {
    if (seen.has(f.data)) continue;
    seen.add(f.data);
    n += f.data.byteLength;
  }
  return n;
}

export class FrameCache {
  private entries = new Map<string, { frames: RgbImage[]; bytes: number }>();
  private bytes = 0;
  hits = 0;
  misses = 0;

  /** @param maxBytes budget for cached frames (RGB bytes); 0 disables the cache. */
  constructor(readonly maxBytes: number = DEFAULT_FRAME_CACHE_BYTES) {}

  get size(): number {
    return this.entries.size;
  }

  get usedBytes(): number {
    return this.bytes;
  }

  /** The key of `source` under `plan` (any JSON-able description of what selects the pixels), or undefined. */
  static key(source: unknown, plan: unknown): string | undefined {
    const id = sourceIdentity(source);
    return id === undefined ? undefined : `${id}|${JSON.stringify(plan)}`;
  }

  get(key: string | undefined): RgbImage[] | undefined {
    if (key === undefined || this.maxBytes <= 0) return undefined;
    const hit = this.entries.get(key);
    if (!hit) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    this.entries.delete(key); // re-insert: most recently used last
    this.entries.set(key, hit);
    return hit.frames;
  }

  set(key: string | undefined, frames: RgbImage[]): void {
    if (key === undefined || this.maxBytes <= 0) return;
    const size = framesBytes(frames);
    if (size > this.maxBytes) return;
    const old = this.entries.get(key);
    if (old) {
      this.entries.delete(key);
      this.bytes -= old.bytes;
    }
    this.entries.set(key, { frames, bytes: size });
    this.bytes += size;
    for (const [k, v] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.entries.delete(k);
      this.bytes -= v.bytes;
    }
  }

  clear(): void {
    this.entries.clear();
    this.bytes = 0;
  }
}
