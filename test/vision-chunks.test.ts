/**
 * Chunked vision encoding (long videos in bounded memory, with progress): a video split into chunks of whole frame
 * pairs encodes to the same rows as one call, for every family (Qwen2.5-VL's windows and Qwen3-VL's position-embedding
 * taps and DeepStack levels are rebuilt per chunk), and progress counts the frame pairs.
 */
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { VideoModel } from "../src/engine/model.js";
import type { RgbImage } from "../src/processing/rgb-image.js";
import { materializeTinyCheckpoint, repoRoot, testCacheDir } from "../src/testing/tiny-checkpoint.js";
import type { ProgressEvent } from "../src/util/progress.js";

const frames: RgbImage[] = Array.from({ length: 10 }, (_, f) => ({
  width: 112,
  height: 56,
  data: Uint8Array.from({ length: 112 * 56 * 3 }, (_, i) => (i * 5 + f * 37 + ((i / 336) | 0) * 11) & 255),
}));
const messages = [{ role: "user" as const, content: [{ type: "video" as const, video: { frames, fps: 2 }, minPixels: 28 * 28 }, { type: "text" as const, text: "what happens?" }] }];

function maxDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

for (const fixture of ["qwen2-vl/qwen2-vl-tiny", "qwen2_5-vl/qwen2_5-vl-tiny", "qwen3-vl/qwen3-vl-tiny"]) {
  describe(`chunked vision encoding: ${path.basename(fixture)}`, () => {
    it("equals encoding the whole video in one call, and reports progress per chunk", async () => {
      const dir = await materializeTinyCheckpoint(path.join(repoRoot(), "test/fixtures", fixture));
      const whole = await VideoModel.load(dir, { cacheDir: testCacheDir(), threads: 1, visionCacheBytes: 0, visionChunkPatches: 1 << 20 });
      const chunked = await VideoModel.load(dir, { cacheDir: testCacheDir(), threads: 1, visionCacheBytes: 0, visionChunkPatches: 64 });
      const prepared = await whole.prepare(messages);
      const [t, h, w] = prepared.visuals[0].batch.grid;
      expect(t).toBe(5);
      expect(Math.floor(64 / (h * w))).toBeLessThan(t); // more than one chunk
      const events: ProgressEvent[] = [];
      const a = await whole.encodeVisuals(prepared);
      const b = await chunked.encodeVisuals(prepared, (e) => events.push(e));
      expect(maxDiff(a.visualEmbeds!, b.visualEmbeds!)).toBeLessThanOrEqual(1e-5);
      if (a.deepstackEmbeds) expect(maxDiff(a.deepstackEmbeds, b.deepstackEmbeds!)).toBeLessThanOrEqual(1e-5);
      expect(events.at(-1)).toMatchObject({ done: t, total: t, unit: "frames" });
      expect(events.length).toBeGreaterThan(2);
    });
  });
}
