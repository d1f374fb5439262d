/**
 * The vision-embedding cache: a follow-up question about the same video with the same sampling plan reuses the
 * encoder's output (same answer, no second encode); a different plan or different frames encode again; the byte
 * budget evicts least-recently-used entries; 0 disables it.
 */
import * as path from "node:path";
import { beforeAll, describe, expect, it, vi } from "vitest";
import { VideoModel } from "../src/engine/model.js";
import type { VisionBatch, VisionOutput } from "../src/engine/sessions.js";
import { VisionCache, visionCacheKey } from "../src/engine/vision-cache.js";
import type { RgbImage } from "../src/processing/rgb-image.js";
import { materializeTinyCheckpoint, repoRoot, testCacheDir } from "../src/testing/tiny-checkpoint.js";

function batch(seed: number, rows = 4): VisionBatch {
  return { pixelValues: Float32Array.from({ length: rows * 6 }, (_, i) => Math.sin(seed + i)), grid: [1, 2, rows / 2], positionIds: Int32Array.from({ length: rows * 2 }, (_, i) => i) };
}
const output = (bytes: number): VisionOutput => ({ embeds: new Float32Array(bytes / 4), deepstackLevels: 0 });

describe("VisionCache", () => {
  it("keys on pixel values, grid, positions and family inputs", () => {
    const a = batch(1);
    expect(visionCacheKey(a)).toBe(visionCacheKey(batch(1)));
    expect(visionCacheKey(a)).not.toBe(visionCacheKey(batch(2)));
    expect(visionCacheKey(a)).not.toBe(visionCacheKey({ ...a, grid: [1, 1, 4] }));
    expect(visionCacheKey(a)).not.toBe(visionCacheKey({ ...a, positionIds: a.positionIds.map((v) => v + 1) }));
    const withExtra = { ...a, extraInputs: { window_index: { dims: [2], data: [0, 1] } } };
    expect(visionCacheKey(withExtra)).not.toBe(visionCacheKey(a));
    expect(visionCacheKey(withExtra)).not.toBe(visionCacheKey({ ...a, extraInputs: { window_index: { dims: [2], data: [1, 0] } } }));
  });

  it("returns the stored output on a hit and evicts the least recently used beyond the budget", async () => {
    const cache = new VisionCache(100);
    const encode = vi.fn(async () => output(40));
    const first = await cache.getOrEncode(batch(1), encode);
    expect(await cache.getOrEncode(batch(1), encode)).toBe(first);
    expect(encode).toHaveBeenCalledTimes(1);
    await cache.getOrEncode(batch(2), encode); // 80 bytes held
    await cache.getOrEncode(batch(1), encode); // hit: 1 becomes the most recent
    await cache.getOrEncode(batch(3), encode); // 120 > 100: evicts 2, the least recent
    expect(encode).toHaveBeenCalledTimes(3);
    await cache.getOrEncode(batch(1), encode);
    expect(encode).toHaveBeenCalledTimes(3);
    await cache.getOrEncode(batch(2), encode);
    expect(encode).toHaveBeenCalledTimes(4);
  });

  it("is off with a budget of 0", async () => {
    const cache = new VisionCache(0);
    const encode = vi.fn(async () => output(8));
    await cache.getOrEncode(batch(1), encode);
    await cache.getOrEncode(batch(1), encode);
    expect(encode).toHaveBeenCalledTimes(2);
  });
});

describe("VideoModel with the vision cache", () => {
  let model: VideoModel;
  beforeAll(async () => {
    const dir = await materializeTinyCheckpoint(path.join(repoRoot(), "test/fixtures/qwen2-vl/qwen2-vl-tiny"));
    model = await VideoModel.load(dir, { cacheDir: testCacheDir(), threads: 1 });
  });

  const frames: RgbImage[] = Array.from({ length: 6 }, (_, f) => ({
    width: 56,
    height: 56,
    data: Uint8Array.from({ length: 56 * 56 * 3 }, (_, i) => (i * 7 + f * 40) & 255),
  }));
  const ask = (question: string, fps: number, maxPixels?: number, clip = frames) =>
    model.generate({
      messages: [{ role: "user", content: [{ type: "video", video: { frames: clip, fps }, minPixels: 28 * 28, maxPixels }, { type: "text", text: question }] }],
      maxNewTokens: 6,
      temperature: 0,
    });

  it("answers a follow-up about the same video without encoding it again, with the same result", async () => {
    const encode = vi.spyOn(model.vision, "encode");
    const uncached = await VideoModel.load(model.preparer.dir, { cacheDir: testCacheDir(), threads: 1, visionCacheBytes: 0 });
    const first = await ask("what happens?", 2);
    const again = await ask("what happens?", 2);
    expect(encode).toHaveBeenCalledTimes(1);
    expect(again.tokens).toEqual(first.tokens);
    const followUp = await ask("what color is it?", 2);
    expect(encode).toHaveBeenCalledTimes(1);
    const fresh = await uncached.generate({ messages: [{ role: "user", content: [{ type: "video", video: { frames, fps: 2 }, minPixels: 28 * 28 }, { type: "text", text: "what color is it?" }] }], maxNewTokens: 6, temperature: 0 });
    expect(followUp.tokens).toEqual(fresh.tokens);
    await ask("what happens?", 2, 28 * 28); // another plan: smaller frames
    expect(encode).toHaveBeenCalledTimes(2);
    await ask("what happens?", 2, undefined, frames.slice(2)); // other frames
    expect(encode).toHaveBeenCalledTimes(3);
    encode.mockRestore();
  });
});
