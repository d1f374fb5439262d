/**
 * Vision embeddings of recent visuals, keyed by what the encoder sees (pixel values, grid, patch positions and any
 * family inputs), so a follow-up question about the same video with the same sampling plan skips encoding.
 * Any change to the frames or to the plan (fps, size, range) changes the pixel values or the grid, hence the key.
 * Least-recently-used entries are dropped beyond the byte budget.
 */
import { createHash } from "node:crypto";
import type { VisionBatch, VisionOutput } from "./sessions.js";

function bytesOf(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

export function visionCacheKey(batch: VisionBatch): string {
  const h = createHash("sha256");
  h.update(JSON.stringify(batch.grid));
  h.update(bytesOf(batch.positionIds));
  h.update(bytesOf(batch.pixelValues));
  for (const [name, t] of Object.entries(batch.extraInputs ?? {}).sort(([a], [b]) => a.localeCompare(b))) {
    h.update(`${name}:${t.type ?? "int64"}:${t.dims.join(",")}:`);
    h.update(bytesOf(Float64Array.from(t.data as ArrayLike<number>)));
  }
  return h.digest("hex");
}

function outputBytes(o: VisionOutput): number {
  return o.embeds.byteLength + (o.deepstack?.byteLength ?? 0) + Object.values(o.extra ?? {}).reduce((n, t) => n + t.data.byteLength, 0);
}

export class VisionCache {
  private entries = new Map<string, VisionOutput>();
  private bytes = 0;
  hits = 0;
  misses = 0;

  /** @param maxBytes budget for cached embeddings; 0 disables the cache. */
  constructor(readonly maxBytes: number) {}

  async getOrEncode(batch: VisionBatch, encode: () => Promise<VisionOutput>): Promise<VisionOutput> {
    if (this.maxBytes <= 0) return encode();
    const key = visionCacheKey(batch);
    const hit = this.entries.get(key);
    if (hit) {
      this.hits++;
      this.entries.delete(key); // re-insert: most recently used last
      this.entries.set(key, hit);
      return hit;
    }
    this.misses++;
    const out = await encode();
    const size = outputBytes(out);
    if (size > this.maxBytes) return out;
    this.entries.set(key, out);
    this.bytes += size;
    for (const [k, v] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.entries.delete(k);
      this.bytes -= outputBytes(v);
    }
    return out;
  }
}
