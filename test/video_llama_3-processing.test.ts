/**
 * VideoLLaMA3 processing tables against the reference (transformers 5.18.0 video_processing_video_llama_3.py, recorded
 * in test/fixtures/video_llama_3/video_llama_3-tiny/golden.json by tools/oracle/record_video_llama_3.py):
 * `sample_frames` on 22 cases (fps and num_frames paths, min/max frames, the `torch.arange(...).int()` quirk that
 * returns n + 1 indices with the last one past the end), the `Time {t:.1f}s:` labels (Python's half-to-even
 * formatting), and smart_resize with the per-clip budget `longest_edge // T` on 8 sizes × 6 frame counts × 2 budgets.
 * Plus the DiffFP rule on synthetic frames and the prompt expansion.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { parseVideoLlama3Config } from "../src/families/video-llama-3/config.js";
import { diffFpMask, readVideoLlama3Settings, VideoLlama3Processor } from "../src/families/video-llama-3/processor.js";
import { clipFrameSize, referenceSampleFrames, sampleFrames } from "../src/families/video-llama-3/sampling.js";
import { formatSeconds1dp } from "../src/families/qwen3-vl/timestamps.js";
import { patchifyFrames } from "../src/processing/qwen2-vl-patches.js";
import type { RgbImage } from "../src/processing/rgb-image.js";
import { repoRoot } from "../src/testing/tiny-checkpoint.js";

const golden = JSON.parse(fs.readFileSync(path.join(repoRoot(), "test/fixtures/video_llama_3/video_llama_3-tiny/golden.json"), "utf8")) as {
  frame_sampling: { total_num_frames: number; video_fps: number; fps: number | null; max_frames: number; min_frames: number; num_frames: number | null; indices: number[]; count: number; timestamps: number[]; labels: string[] }[];
  smart_resize: { height: number; width: number; num_frames: number; size: { shortest_edge: number; longest_edge: number }; max_pixels: number; resized: [number, number]; grid_hw: [number, number]; tokens_per_frame: number }[];
};

describe("VideoLLaMA3 frame sampling (VideoLlama3VideoProcessor.sample_frames)", () => {
  const quirks = golden.frame_sampling.filter((r) => r.indices[r.indices.length - 1] >= r.total_num_frames);
  it("the table has cases of the arange quirk (n + 1 indices, the last one = total)", () => {
    expect(quirks.length).toBeGreaterThan(0);
  });

  for (const r of golden.frame_sampling) {
    const what = r.num_frames != null ? `num_frames ${r.num_frames}` : `fps ${r.fps}`;
    it(`${r.total_num_frames} frames at ${r.video_fps} fps, ${what}, frames ${r.min_frames}–${r.max_frames}: indices and labels`, () => {
      const o = { numFrames: r.num_frames ?? undefined, fps: r.fps ?? undefined, minFrames: r.min_frames, maxFrames: r.max_frames };
      const indices = referenceSampleFrames(r.total_num_frames, r.video_fps, o);
      expect(indices).toEqual(r.indices);
      expect(indices.map((i) => `Time ${formatSeconds1dp(i / r.video_fps)}s:`)).toEqual(r.labels);
      // What videolm decodes: the same frames without the index past the end.
      expect(sampleFrames(r.total_num_frames, r.video_fps, o)).toEqual(r.indices.filter((i) => i < r.total_num_frames));
    });
  }

  // torch.arange(0, total, total / n).int() (torch 2.13, the oracle venv): element i is trunc(float32(i · step)) — in
  // float64 index 11 of (30, 22) would be 14 (11 · 30/22 = 14.999…), float32 rounds it to 15.0.
  for (const [total, n, indices] of [
    [30, 22, [0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 15, 16, 17, 19, 20, 21, 23, 24, 25, 27, 28]],
    [15, 13, [0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 15]],
    [30, 26, [0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 15, 16, 17, 18, 19, 20, 21, 23, 24, 25, 26, 27, 28, 30]],
  ] as [number, number, number[]][]) {
    it(`arange in float32: ${total} frames, ${n} wanted`, () => {
      expect(referenceSampleFrames(total, 1, { numFrames: n, minFrames: 1, maxFrames: 1000 })).toEqual(indices);
    });
  }

  it("nframes larger than the video is refused, as the reference raises", () => {
    expect(() => referenceSampleFrames(10, 30, { numFrames: 11, minFrames: 4, maxFrames: 180 })).toThrow(/more than the video's 10 frames/);
  });
});

describe("VideoLLaMA3 smart_resize with the per-clip budget", () => {
  for (const r of golden.smart_resize) {
    it(`${r.width}×${r.height}, ${r.num_frames} frames, longest_edge ${r.size.longest_edge}: ${r.resized[1]}×${r.resized[0]}`, () => {
      const [h, w] = clipFrameSize(r.height, r.width, r.num_frames, 28, { minPixels: r.size.shortest_edge, clipPixels: r.size.longest_edge });
      expect([h, w]).toEqual(r.resized);
      expect((h / 28) * (w / 28)).toBe(r.tokens_per_frame);
    });
  }
});

describe("VideoLLaMA3 DiffFP (VideoLlama3VideoProcessor._get_compression_mask)", () => {
  const frame = (fill: (x: number, y: number, c: number) => number): RgbImage => {
    const data = new Uint8Array(56 * 56 * 3);
    for (let y = 0; y < 56; y++) for (let x = 0; x < 56; x++) for (let c = 0; c < 3; c++) data[(y * 56 + x) * 3 + c] = fill(x, y, c);
    return { width: 56, height: 56, data };
  };
  const patches = (frames: RgbImage[]) => patchifyFrames(frames, { patchSize: 14, temporalPatchSize: 1, mergeSize: 2, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });

  it("keeps every token of frame 0, tokens whose mean |Δ| · 255 exceeds 0.1, and the first token of a frame keeping none", () => {
    const base = frame((x, y, c) => (x * 3 + y * 5 + c * 40) % 256);
    // Token (0, 1) (top right 28×28 block): one value changes by 118 levels → Σ|Δ| = 118 > 117.6 → kept.
    const oneJump = frame((x, y, c) => (x === 40 && y === 3 && c === 0 ? ((x * 3 + y * 5) % 256) + 118 : (x * 3 + y * 5 + c * 40) % 256));
    // 117 levels is not enough (d = 2·117/2352 = 0.0995).
    const justBelow = frame((x, y, c) => (x === 40 && y === 3 && c === 0 ? ((x * 3 + y * 5) % 256) + 117 : (x * 3 + y * 5 + c * 40) % 256));
    const { pixelValues, grid } = patches([base, oneJump, base, justBelow]);
    const { keep, scores } = diffFpMask(pixelValues, grid, 2);
    expect(Array.from(keep)).toEqual([1, 1, 1, 1, 0, 1, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0]);
    expect(scores[5]).toBeCloseTo((2 * 118) / 2352, 6);
    expect(scores[9]).toBeCloseTo((2 * 118) / 2352, 6); // back to the base frame: the same change
    expect(scores[13]).toBeCloseTo((2 * 117) / 2352, 6); // under the threshold: frame 3 keeps only its first token
  });
});

/**
 * Resizing as the 5.18 processors do (torchvision bicubic with antialias on uint8; the golden cases run with
 * do_resize=False). Reference values from the oracle venv (transformers 5.18.0, torch 2.13) on the fixture's processor
 * configs: `processor.video_processor(videos=[the 8 diff8 frames], video_metadata=[{fps: 4, frames_indices: 0…7}])`
 * (class-default budget: 56×84 enlarged to 280×392) and `processor.image_processor(images=[image-h70-w98],
 * size={shortest_edge: 40000, longest_edge: 1003520})` (70×98 → 182×238); sums of pixel_values in float64.
 */
describe("VideoLLaMA3 resize + patches against the reference processors (do_resize=True)", () => {
  const fixtures = path.join(repoRoot(), "test/fixtures/video_llama_3");
  const processor = new VideoLlama3Processor(path.join(fixtures, "video_llama_3-tiny"), { imageTokenId: 151655, videoTokenId: 151656, patchSize: 14, hiddenSize: 64 });
  const sums = (x: Float32Array) => {
    let sum = 0;
    let abs = 0;
    for (const v of x) {
      sum += v;
      abs += Math.abs(v);
    }
    return { sum, abs };
  };

  it("a video enlarged to the clip's min_pixels: grid, pixel sums, DiffFP kept tokens", async () => {
    const frames = Array.from({ length: 8 }, (_, k) => path.join(fixtures, "media", `diff8-h56-w84-0${k}.png`));
    const v = (await processor.prepareVisual({ type: "video", video: frames, fps: 4 }, {}))!;
    expect(v.batch.grid).toEqual([8, 20, 28]);
    const { sum, abs } = sums(v.batch.pixelValues);
    expect(sum).toBeCloseTo(25898.580663284287, 6);
    expect(abs).toBeCloseTo(1238232.0482149636, 4);
    expect(Array.from(v.batch.pixelValues.subarray(0, 5))).toEqual([-1, -1, -1, -0.9843137264251709, -0.9686274528503418]);
    expect(diffFpMask(v.batch.pixelValues, v.batch.grid, 2).keep.reduce((a, b) => a + b, 0)).toBe(224);
  });

  it("an image resized by smart_resize(factor 14): grid and pixel sums", async () => {
    const v = (await processor.prepareVisual({ type: "image", image: path.join(fixtures, "media", "image-h70-w98.png"), minPixels: 40000 }, {}))!;
    expect(v.batch.grid).toEqual([1, 13, 17]);
    expect(v.tokens).toBe(13 * 17);
    const { sum, abs } = sums(v.batch.pixelValues);
    expect(sum).toBeCloseTo(-1287.035392459482, 6);
    expect(abs).toBeCloseTo(65577.43661622703, 5);
  });
});

describe("VideoLLaMA3 config and processor settings", () => {
  const fixture = path.join(repoRoot(), "test/fixtures/video_llama_3/video_llama_3-tiny");
  const raw = JSON.parse(fs.readFileSync(path.join(fixture, "config.json"), "utf8")) as Record<string, unknown>;

  it("config.json: Qwen2 text (1-D RoPE theta from rope_parameters), vision in the Qwen2-VL layout, the two pads", () => {
    const c = parseVideoLlama3Config(raw);
    expect(c.text).toMatchObject({ hiddenSize: 64, numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 16, ropeTheta: 1e6, tieWordEmbeddings: false });
    expect(c.vision).toMatchObject({ embedDim: 32, depth: 2, numHeads: 2, intermediateSize: 64, patchSize: 14, temporalPatchSize: 1, spatialMergeSize: 2, ropeTheta: 10000, hiddenAct: "gelu_pytorch_tanh" });
    expect(c.visionTokens?.map((t) => [t.token, t.id])).toEqual([["<|image_pad|>", 151655], ["<|video_pad|>", 151656]]);
    // A tied top level ties the model (VideoLlama3Config.__init__); 4.x-style top-level rope_theta is read too.
    const tc = raw.text_config as Record<string, unknown>;
    const tied = parseVideoLlama3Config({ ...raw, tie_word_embeddings: true, text_config: { ...tc, rope_parameters: undefined, rope_theta: 5e5 } });
    expect(tied.text.tieWordEmbeddings).toBe(true);
    expect(tied.text.ropeTheta).toBe(5e5);
    expect(() => parseVideoLlama3Config({ ...raw, text_config: { ...tc, model_type: "llama" } })).toThrow(/Qwen2 language model/);
    expect(() => parseVideoLlama3Config({ ...raw, vision_config: { ...(raw.vision_config as object), rope_parameters: { rope_type: "default" } } })).toThrow(/axial/);
  });

  it("processor settings: the fixture's (class defaults, image merge 1); use_token_compression, fps, merge sizes from the files", () => {
    const s = readVideoLlama3Settings(fixture);
    expect(s.image).toMatchObject({ minPixels: 3136, maxPixels: 1003520, mergeSize: 1, mean: [0.5, 0.5, 0.5] });
    expect(s.video).toMatchObject({ minPixels: 100352, clipPixels: 602112, mergeSize: 2, fps: 1, minFrames: 4, maxFrames: 180, useTokenCompression: true });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "videolm-vl3-settings-"));
    try {
      fs.writeFileSync(path.join(dir, "video_preprocessor_config.json"), JSON.stringify({ use_token_compression: false, fps: 2, max_frames: 64, size: { shortest_edge: 3136, longest_edge: 16384 * 196 } }));
      const t = readVideoLlama3Settings(dir);
      expect(t.video).toMatchObject({ useTokenCompression: false, fps: 2, maxFrames: 64, minPixels: 3136, clipPixels: 16384 * 196, mergeSize: 2 });
      expect(t.image.mergeSize).toBe(1); // no preprocessor_config.json: the image processor's class default
      fs.writeFileSync(path.join(dir, "video_preprocessor_config.json"), JSON.stringify({ merge_size: 3 }));
      expect(() => readVideoLlama3Settings(dir)).toThrow(/merge_size.*must be 1 or 2/);
      fs.writeFileSync(path.join(dir, "video_preprocessor_config.json"), JSON.stringify({ temporal_patch_size: 2 }));
      expect(() => readVideoLlama3Settings(dir)).toThrow(/temporal_patch_size/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
