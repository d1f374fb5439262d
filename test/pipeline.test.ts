/**
 * Vision pipelined with prefill (src/engine/pipeline.ts): on every family's tiny checkpoint, a request with a video
 * of several vision chunks and an image, prefilled in chunks of 7 tokens so prefill chunks wait for rows and run
 * while later vision chunks encode, gives bit-identical prefill logits and identical greedy tokens and logprobs to
 * the sequential path (encode everything, then prefill); the vision cache still works (a hit skips the pipeline's
 * encoder, a miss fills the cache), progress is reported per chunk, and a family whose prompt depends on the vision
 * output takes the sequential path.
 */
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { prefill } from "../src/engine/generate.js";
import { VideoModel } from "../src/engine/model.js";
import { canPipeline, overlapMs, runVisionStage, VisualStream, visualRowTargets, type PipelineHooks } from "../src/engine/pipeline.js";
import type { PreparedRequest } from "../src/engine/preparer.js";
import type { ChatRequestMessage } from "../src/engine/request.js";
import type { VisionBatch } from "../src/engine/sessions.js";
import { VisionCache } from "../src/engine/vision-cache.js";
import type { RgbImage } from "../src/processing/rgb-image.js";
import { materializeTinyCheckpoint, repoRoot, testCacheDir } from "../src/testing/tiny-checkpoint.js";
import type { ProgressEvent } from "../src/util/progress.js";

const frames: RgbImage[] = Array.from({ length: 10 }, (_, f) => ({
  width: 112,
  height: 56,
  data: Uint8Array.from({ length: 112 * 56 * 3 }, (_, i) => (i * 5 + f * 37 + ((i / 336) | 0) * 11) & 255),
}));
const IMAGE = path.join(repoRoot(), "test/fixtures/qwen2-vl/media/image-a-h56-w84.png");
/** The video's placeholders come first in the prompt, the image's after some text. */
const messages: ChatRequestMessage[] = [
  {
    role: "user",
    content: [
      { type: "video", video: { frames, fps: 2 }, minPixels: 28 * 28 },
      { type: "text", text: "and in this picture" },
      { type: "image", image: IMAGE },
      { type: "text", text: "what happens?" },
    ],
  },
];
const CHUNK_PATCHES = 64;
const PREFILL_CHUNK = 7;

const FIXTURES = ["qwen2-vl/qwen2-vl-tiny", "qwen2_5-vl/qwen2_5-vl-tiny", "qwen3-vl/qwen3-vl-tiny", "qwen3_vl_moe/qwen3_vl_moe-tiny", "qwen3_5/qwen3_5-tiny", "qwen3_5_moe/qwen3_5_moe-tiny"];

for (const fixture of FIXTURES) {
  describe(`pipelined vision + prefill: ${path.basename(fixture)}`, () => {
    let sequential: VideoModel;
    let pipelined: VideoModel;
    let prepared: PreparedRequest;

    beforeAll(async () => {
      const dir = await materializeTinyCheckpoint(path.join(repoRoot(), "test/fixtures", fixture));
      const common = { cacheDir: testCacheDir(), threads: 1, visionChunkPatches: CHUNK_PATCHES };
      sequential = await VideoModel.load(dir, { ...common, pipeline: false, visionCacheBytes: 0 });
      pipelined = await VideoModel.load(dir, { ...common, pipeline: true });
      prepared = await sequential.prepare(messages);
    }, 600_000);
    afterAll(async () => {
      await Promise.all([sequential?.dispose(), pipelined?.dispose()]);
    });

    it("prefill logits are bit-identical, and prefill chunks ran while the video was still encoding", async () => {
      const video = prepared.visuals.find((v) => v.kind === "video")!;
      expect(pipelined.preparer.processor.visionChunks!(video.batch, CHUNK_PATCHES).length).toBeGreaterThan(2);
      const S = prepared.inputIds.length;
      const promptA = await sequential.encodeVisuals(prepared);
      const logitsA = await prefill(sequential.decoder, promptA, sequential.decoder.createState(S), PREFILL_CHUNK);

      const stream = new VisualStream(prepared, pipelined.config, pipelined.decoder.deepstackLevels);
      const events: string[] = [];
      let waits = 0;
      let visionChunks = 0;
      // Each chunk held back a little, so that prefill chunks wait for rows whatever the relative speeds of the two
      // stages (the MoE decoders' prefill is slower than these tiny vision towers).
      const vision = { encode: async (b: VisionBatch) => (await new Promise((r) => setTimeout(r, 20)), pipelined.vision.encode(b)), release: async () => {} };
      const stage = runVisionStage(stream, prepared.visuals, {
        vision,
        processor: pipelined.preparer.processor,
        cache: new VisionCache(0),
        chunkPatches: CHUNK_PATCHES,
        hiddenSize: pipelined.config.text.hiddenSize,
        onChunk: () => {
          visionChunks++;
          events.push("vision");
        },
      }).then(() => events.push("vision done"));
      const logitsB = await prefill(pipelined.decoder, stream.prompt, pipelined.decoder.createState(S), PREFILL_CHUNK, {
        visualsReady: (rows) => {
          if (rows > stream.rowsReady) waits++;
          return stream.ready(rows);
        },
        onChunk: () => events.push("prefill"),
      });
      await stage;

      expect(stream.prompt.visualPositions).toEqual(promptA.visualPositions);
      expect(stream.prompt.visualEmbeds).toEqual(promptA.visualEmbeds);
      if (promptA.deepstackEmbeds) expect(stream.prompt.deepstackEmbeds).toEqual(promptA.deepstackEmbeds);
      expect(logitsB).toEqual(logitsA); // bit-identical (toEqual compares every float exactly)
      expect(visionChunks).toBeGreaterThan(3);
      expect(waits).toBeGreaterThan(0);
      // Interleaved: some prefill chunk finished before the last vision chunk did.
      expect(events.indexOf("prefill")).toBeLessThan(events.lastIndexOf("vision"));
    });

    it("generate gives the same tokens and logprobs; the vision cache and progress still work", async () => {
      const request = { messages, prepared, maxNewTokens: 8, temperature: 0, logprobs: 3, stop: [], prefillChunk: PREFILL_CHUNK };
      const a = await sequential.generate(request);
      const progress: ProgressEvent[] = [];
      const misses = pipelined.visionCache.misses;
      const b = await pipelined.generate({ ...request, onProgress: (e) => progress.push(e) });
      expect(b.tokens).toEqual(a.tokens);
      expect(b.logprobs).toEqual(a.logprobs);
      expect(b.text).toBe(a.text);
      expect(b.pipeline!.visionChunks).toBeGreaterThan(3);
      expect(b.pipeline!.prefillBusyMs).toBeGreaterThan(0);
      expect(b.timings.ttftMs).toBeGreaterThan(0);
      expect(a.pipeline).toBeUndefined();
      const [t] = prepared.visuals.find((v) => v.kind === "video")!.batch.grid;
      expect(progress.at(-1)).toMatchObject({ done: t, total: t, unit: "frames" });
      expect(pipelined.visionCache.misses).toBe(misses + 2);

      // Second time: both visuals come from the vision cache, nothing is encoded.
      const hits = pipelined.visionCache.hits;
      const c = await pipelined.generate(request);
      expect(c.tokens).toEqual(a.tokens);
      expect(c.logprobs).toEqual(a.logprobs);
      expect(pipelined.visionCache.hits).toBe(hits + 2);
      expect(c.pipeline!.visionChunks).toBe(0);
    });
  });
}

describe("pipelined generation stops cleanly", () => {
  it("an abort while the video encodes rejects the request; the model answers the next one", async () => {
    const dir = await materializeTinyCheckpoint(path.join(repoRoot(), "test/fixtures/qwen2-vl/qwen2-vl-tiny"));
    const model = await VideoModel.load(dir, { cacheDir: testCacheDir(), threads: 1, visionChunkPatches: CHUNK_PATCHES, pipeline: true, visionCacheBytes: 0 });
    try {
      const prepared = await model.prepare(messages);
      const abort = new AbortController();
      const request = { messages, prepared, maxNewTokens: 4, temperature: 0, stop: [], prefillChunk: PREFILL_CHUNK };
      await expect(model.generate({ ...request, signal: abort.signal, onProgress: (e) => e.done > 0 && abort.abort() })).rejects.toThrow(/aborted/);
      const again = await model.generate(request);
      expect(again.tokens.length).toBe(4);
    } finally {
      await model.dispose();
    }
    await expect(model.generate({ messages })).rejects.toThrow(/disposed/);
  });
});

describe("pipeline plumbing", () => {
  it("a family whose prompt depends on the vision output is not pipelined", () => {
    const prepared = { visuals: [{}] } as unknown as PreparedRequest;
    const processor = {} as PipelineHooks & Parameters<typeof canPipeline>[0];
    expect(canPipeline(processor, prepared)).toBe(true);
    expect(canPipeline(processor, { visuals: [] } as unknown as PreparedRequest)).toBe(false);
    processor.promptDependsOnVision = true;
    expect(canPipeline(processor, prepared)).toBe(false);
    processor.promptDependsOnVision = () => false;
    expect(canPipeline(processor, prepared)).toBe(true);
  });

  it("rows go where the sequential path puts them: per class in order, or in request order with one placeholder", () => {
    const visuals = [
      { kind: "image", tokens: 2 },
      { kind: "video", tokens: 3 },
      { kind: "image", tokens: 1 },
    ] as unknown as Parameters<typeof visualRowTargets>[2];
    const ids = [0, 9, 9, 1, 8, 8, 8, 1, 9];
    const separate = visualRowTargets(ids, { imageTokenId: 9, videoTokenId: 8 } as Parameters<typeof visualRowTargets>[1], visuals);
    expect(Array.from(separate.positions)).toEqual([1, 2, 4, 5, 6, 8]);
    expect(separate.targets.map((t) => Array.from(t))).toEqual([[0, 1], [2, 3, 4], [5]]);
    const shared = visualRowTargets([0, 7, 7, 7, 7, 7, 1, 7], { imageTokenId: 7, videoTokenId: 7 } as Parameters<typeof visualRowTargets>[1], visuals);
    expect(shared.targets.map((t) => Array.from(t))).toEqual([[0, 1], [2, 3, 4], [5]]);
    expect(() => visualRowTargets([9, 9, 9, 9], { imageTokenId: 9, videoTokenId: 8 } as Parameters<typeof visualRowTargets>[1], visuals)).toThrow(/more image placeholders than image inputs/);
  });

  it("overlap counts the time both stages ran", () => {
    expect(overlapMs([[0, 10], [20, 30]], [[5, 25]])).toBe(10);
    expect(overlapMs([[0, 10]], [[10, 20]])).toBe(0);
  });
});
