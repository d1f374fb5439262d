/**
 * VideoLLaMA3 end to end against the reference (transformers 5.18.0, float32, eager attention;
 * tools/oracle/record_video_llama_3.py → test/fixtures/video_llama_3/video_llama_3-tiny/golden.json): per case the
 * rendered template, the planned prompt (every video token), pixel values, image rows (merge 1) and every video row
 * (merge 2: the 2×2 mean), the DiffFP scores and mask, the compacted prompt ids and 1-D positions (only kept pads,
 * renumbered), the kept video rows, logits at the recorded positions and 12 greedy tokens with the KV cache; the
 * whole request through VideoModel.generate; a video file through the file path.
 *
 * The reference was given the frames with their source indices (`frames_indices`, e.g. [0, 1, 2, 3, 5, 6, 9, 11] at
 * 4 fps: times 0.25, 0.75, … that Python formats half-to-even); a list of frames in a videolm request is used as
 * given at its fps (times k / fps), so for those cases the test sets the frames' times to the reference's and builds
 * the prompt again with the processor's buildPrompt (`video-static`'s frames are 0 … 5: no override).
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VideoModel } from "../src/engine/model.js";
import type { PreparedRequest } from "../src/engine/preparer.js";
import { previewVisualSelection } from "../src/engine/route-preview.js";
import type { ChatRequestMessage, ContentPart } from "../src/engine/request.js";
import { diffFpMask, VideoLlama3Processor } from "../src/families/video-llama-3/processor.js";
import { locateFfmpeg } from "../src/media/ffmpeg.js";
import { materializeTinyCheckpoint, repoRoot, testCacheDir } from "../src/testing/tiny-checkpoint.js";
import { checkGreedyDecoding, checkLogitRecords, checkSummary, concatFloat32, type GreedyGolden, type LogitRecord, type Summary } from "./golden-helpers.js";

const FIXTURES = path.join(repoRoot(), "test/fixtures/video_llama_3");
const IMAGE_PAD = 151655;
const VIDEO_PAD = 151656;

interface GoldenPart {
  type: "text" | "image" | "video";
  text?: string;
  image?: string;
  video?: string[];
  fps?: number;
  frames_indices?: number[];
}
interface GoldenCase {
  messages: { role: string; content: GoldenPart[] }[];
  processor_kwargs: { use_token_compression?: boolean };
  prompt: string;
  input_ids: number[];
  num_tokens: number;
  expanded_prompt: string;
  image_grid_thw: number[][] | null;
  video_grid_thw: number[][] | null;
  num_image_pads: number;
  num_video_pads: number;
  pixel_values: Summary | null;
  pixel_values_videos: Summary | null;
  videos: { seconds: number[]; labels: string[]; tokens_per_frame: number; mask_per_frame: number[][]; kept_per_frame: number[]; kept_total: number; full_total: number; pixel_diff_x255: (number[] | null)[] }[];
  video_compression_mask?: number[];
  image_embeds?: Summary;
  video_embeds_all?: Summary;
  video_embeds_kept?: Summary;
  position_ids: number[];
  logit_ids: number[];
  logits: LogitRecord[];
  greedy: GreedyGolden & { text: string };
}
const golden = JSON.parse(fs.readFileSync(path.join(FIXTURES, "video_llama_3-tiny/golden.json"), "utf8")) as { cases: Record<string, GoldenCase> };

/**
 * The case as a request. The reference ran the processor with do_resize=False on frames already multiples of 28: the
 * per-frame lower bound is lowered so the clip budget's smart_resize leaves them as they are (the class default
 * shortest_edge 100352 would enlarge 56×84 frames to 280×392).
 */
function messagesOf(c: GoldenCase): ChatRequestMessage[] {
  const media = (p: string) => path.join(FIXTURES, p);
  return c.messages.map((m) => ({
    role: m.role as ChatRequestMessage["role"],
    content: m.content.map((p): ContentPart => {
      if (p.type === "image") return { type: "image", image: media(p.image!) };
      if (p.type === "video") return { type: "video", video: p.video!.map(media), fps: p.fps, minPixels: 28 * 28 };
      return { type: "text", text: p.text! };
    }),
  }));
}

/** Frames listed at their reference indices: their times (index / fps) replace the list's (k / fps), prompt rebuilt. */
function withReferenceTimes(model: VideoModel, prepared: PreparedRequest, c: GoldenCase): PreparedRequest {
  const videos = prepared.visuals.filter((v) => v.kind === "video");
  if (videos.every((v, i) => v.timestamps!.every((t, k) => t === c.videos[i].seconds[k]))) return prepared;
  videos.forEach((v, i) => (v.timestamps = c.videos[i].seconds));
  const built = model.preparer.processor.buildPrompt(prepared.promptText, model.tokenizer, prepared.visuals);
  return { ...prepared, ...built };
}

/** Rows of the prompt's visual embeddings that sit on `id` placeholders, in prompt order. */
function rowsAt(ids: readonly number[], positions: Int32Array, embeds: Float32Array, id: number, D: number): Float32Array {
  const rows: Float32Array[] = [];
  positions.forEach((p, k) => {
    if (ids[p] === id) rows.push(embeds.subarray(k * D, (k + 1) * D));
  });
  return concatFloat32(rows);
}

describe("VideoLLaMA3 golden: video_llama_3-tiny", () => {
  let model: VideoModel;
  let processor: VideoLlama3Processor;
  beforeAll(async () => {
    model = await VideoModel.load(await materializeTinyCheckpoint(path.join(FIXTURES, "video_llama_3-tiny")), { cacheDir: testCacheDir(), threads: 1 });
    processor = model.preparer.processor as VideoLlama3Processor;
  }, 120_000);
  afterAll(() => model?.dispose());

  for (const [name, c] of Object.entries(golden.cases)) {
    it(`${name}: template, planned and compacted ids, positions, pixels, vision rows, DiffFP, logits, greedy tokens`, async () => {
      processor.useTokenCompression = c.processor_kwargs.use_token_compression ?? true;
      try {
        const prepared = withReferenceTimes(model, await model.prepare(messagesOf(c)), c);
        expect(prepared.promptText).toBe(c.prompt);
        const D = model.config.text.hiddenSize;
        const S0 = prepared.inputIds.length;
        const count = (ids: readonly number[], id: number) => ids.filter((t) => t === id).length;
        // Planned: every video token (the upper bound), every image token.
        const full = c.videos.reduce((n, v) => n + v.full_total, 0);
        expect(count(prepared.inputIds, VIDEO_PAD)).toBe(full);
        expect(count(prepared.inputIds, IMAGE_PAD)).toBe(c.num_image_pads);
        expect(S0).toBe(c.num_tokens + full - c.num_video_pads);

        const images = prepared.visuals.filter((v) => v.kind === "image");
        const videos = prepared.visuals.filter((v) => v.kind === "video");
        expect(images.map((v) => v.batch.grid)).toEqual(c.image_grid_thw ?? []);
        expect(videos.map((v) => v.batch.grid)).toEqual(c.video_grid_thw ?? []);
        if (c.pixel_values) checkSummary(concatFloat32(images.map((v) => v.batch.pixelValues)), c.pixel_values, 1e-6);
        if (c.pixel_values_videos) checkSummary(concatFloat32(videos.map((v) => v.batch.pixelValues)), c.pixel_values_videos, 1e-6);

        // Vision rows before the selection: images (merge 1) and every frame of every video (merge 2).
        if (c.image_embeds) checkSummary(concatFloat32(await Promise.all(images.map(async (v) => (await model.vision.encode(v.batch)).embeds))), c.image_embeds, 1e-5);
        if (c.video_embeds_all) checkSummary(concatFloat32(await Promise.all(videos.map(async (v) => (await model.vision.encode(v.batch)).embeds))), c.video_embeds_all, 1e-5);

        // DiffFP: scores and mask on the normalised pixels, as the video processor computes them.
        videos.forEach((v, i) => {
          const ref = c.videos[i];
          const { keep, scores } = diffFpMask(v.batch.pixelValues, v.batch.grid, 2);
          const per = ref.tokens_per_frame;
          ref.pixel_diff_x255.forEach((row, f) => row?.forEach((d, k) => expect(Math.abs(scores[f * per + k] - d)).toBeLessThan(1e-5 * Math.max(1, d))));
          if (processor.useTokenCompression) expect(Array.from({ length: ref.mask_per_frame.length }, (_, f) => Array.from(keep.subarray(f * per, (f + 1) * per)))).toEqual(ref.mask_per_frame);
        });

        // After the vision pass: only kept pads, positions 0 … S−1 (renumbered), the kept rows.
        const prompt = await model.encodeVisuals(prepared);
        expect(prompt.inputIds).toEqual(c.input_ids);
        expect(model.tokenizer.decode(prompt.inputIds, { skipSpecialTokens: false })).toBe(c.expanded_prompt);
        expect(Array.from(prompt.positionIds)).toEqual(c.position_ids);
        expect(prompt.ropeDelta).toBe(0);
        const sel = prompt.selection!;
        expect(sel.plannedTokens).toBe(full + c.num_image_pads);
        expect(sel.keptTokens).toBe(c.num_video_pads + c.num_image_pads);
        expect(sel.units.map((u) => u.tokens)).toEqual(processor.useTokenCompression ? c.videos.flatMap((v) => v.kept_per_frame) : []);
        if (c.video_compression_mask) expect(count(prompt.inputIds, VIDEO_PAD)).toBe(c.video_compression_mask.reduce((a, b) => a + b, 0));
        if (c.video_embeds_kept) checkSummary(rowsAt(prompt.inputIds, prompt.visualPositions!, prompt.visualEmbeds!, VIDEO_PAD, D), c.video_embeds_kept, 1e-5);
        if (c.image_embeds) checkSummary(rowsAt(prompt.inputIds, prompt.visualPositions!, prompt.visualEmbeds!, IMAGE_PAD, D), c.image_embeds, 1e-5);

        const logitDiff = await checkLogitRecords(model, prompt, c.logit_ids, c.logits);
        const greedyDiff = await checkGreedyDecoding(model, prompt, c.greedy, c.logit_ids);
        console.log(`video_llama_3 ${name}: max logit diff ${Math.max(logitDiff, greedyDiff).toExponential(2)} (max |logit| ${Math.max(...c.logits.map((r) => r.max_abs)).toFixed(2)})`);
      } finally {
        processor.useTokenCompression = true;
      }
    }, 120_000);
  }

  it("generate(): the request end to end gives the greedy tokens, the compacted prompt length and the DiffFP report", async () => {
    const c = golden.cases["video-static"];
    const r = await model.generate({ messages: messagesOf(c), temperature: 0, maxNewTokens: c.greedy.new_tokens.length });
    expect(r.tokens).toEqual(c.greedy.new_tokens);
    expect(r.promptTokens).toBe(c.num_tokens);
    expect(r.visualTokens?.method).toBe("VideoLLaMA3 DiffFP");
    expect(r.visualTokens?.plannedTokens).toBe(c.videos[0].full_total);
    expect(r.visualTokens?.keptTokens).toBe(c.videos[0].kept_total);
    expect(r.visualTokens?.units.map((u) => u.reduced)).toEqual(c.videos[0].kept_per_frame.map((k) => k < c.videos[0].tokens_per_frame));
  }, 120_000);

  it("inspect --route (the vision encoder alone): the plan counts every video token, the preview the kept ones", async () => {
    const c = golden.cases["video-static"];
    const plan = await model.preparer.plan(messagesOf(c));
    expect(plan.inputIds.length).toBe(c.num_tokens + c.videos[0].full_total - c.videos[0].kept_total);
    const route = (await previewVisualSelection(model.preparer, plan, {}, { cacheDir: testCacheDir(), threads: 1 }))!;
    expect(route.plannedPromptTokens).toBe(plan.inputIds.length);
    expect(route.promptTokens).toBe(c.num_tokens);
    expect(route.report.units.map((u) => u.tokens)).toEqual(c.videos[0].kept_per_frame);
    expect(route.report.units.map((u) => u.score)).toEqual(c.videos[0].kept_per_frame.map((k) => k / c.videos[0].tokens_per_frame));
  }, 120_000);

  it("vision chunks of whole frames (attention never crosses a frame) give the whole video's rows", async () => {
    const c = golden.cases.video;
    const prepared = await model.prepare(messagesOf(c));
    const batch = prepared.visuals[0].batch;
    const chunks = processor.visionChunks(batch, 3 * 24);
    expect(chunks.map((ch) => ch.grid[0])).toEqual([3, 3, 2]);
    expect(chunks.every((ch) => ch.extraInputs === batch.extraInputs)).toBe(true);
    const whole = (await model.vision.encode(batch)).embeds;
    const parts = concatFloat32(await Promise.all(chunks.map(async (ch) => (await model.vision.encode(ch)).embeds)));
    expect(parts.length).toBe(whole.length);
    let d = 0;
    for (let i = 0; i < whole.length; i++) d = Math.max(d, Math.abs(parts[i] - whole[i]));
    expect(d).toBeLessThan(1e-5);
    checkSummary(parts, c.video_embeds_all!, 1e-5);
  }, 120_000);

  it("a video file: sampled at 2 fps from the file, the same frames, times and prompt as the frame list", async () => {
    const c = golden.cases["video-static"];
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "videolm-vl3-"));
    try {
      const clip = path.join(dir, "static.mkv");
      execFileSync(locateFfmpeg().ffmpeg, ["-nostdin", "-loglevel", "error", "-y", "-framerate", "2", "-i", path.join(FIXTURES, "media", "static6-h56-w56-%02d.png"), "-c:v", "ffv1", "-pix_fmt", "bgr0", clip]);
      const messages: ChatRequestMessage[] = [{ role: "user", content: [{ type: "video", video: clip, fps: 2, minPixels: 28 * 28 }, { type: "text", text: "Does anything move?" }] }];
      const prepared = await model.prepare(messages);
      expect(prepared.visuals[0].frameIndices).toEqual([0, 1, 2, 3, 4, 5]);
      expect(prepared.visuals[0].timestamps).toEqual(c.videos[0].seconds);
      checkSummary(prepared.visuals[0].batch.pixelValues, c.pixel_values_videos!, 1e-6);
      const prompt = await model.encodeVisuals(prepared);
      expect(prompt.inputIds).toEqual(c.input_ids);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
