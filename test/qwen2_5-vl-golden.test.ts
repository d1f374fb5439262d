/**
 * Qwen2.5-VL end to end against the reference (transformers 4.57.6, float32, eager attention): window layout,
 * prompt ids, time-aligned 3-D position ids, pixel values, vision embeddings, logits at several positions, greedy
 * tokens, cached decode vs a full pass; plus the checks that time is not ignored (reversed frames, another fps).
 * Goldens: test/fixtures/qwen2_5-vl/<checkpoint>/golden.json, recorded by tools/oracle/record_qwen2_5_vl.py.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { VideoModel } from "../src/engine/model.js";
import type { ChatRequestMessage, ContentPart } from "../src/engine/request.js";
import { parseQwen2_5VLConfig } from "../src/families/qwen2-5-vl/config.js";
import { DEFAULT_VIDEO_TIME_RULE } from "../src/families/qwen2-5-vl/processor.js";
import { windowPlan } from "../src/families/qwen2-5-vl/window.js";
import { getRopeIndex } from "../src/families/qwen2-vl/rope-index.js";
import { materializeTinyCheckpoint, qwen2_5VlWeightSpec, repoRoot, type Qwen2_5VlShapeConfig, type WeightSpec, testCacheDir } from "../src/testing/tiny-checkpoint.js";
import { checkGreedyDecoding, checkLogitRecords, fullForward, pixelValuesOf, tolerance, type LogitRecord } from "./golden-helpers.js";

const FIXTURES = path.join(repoRoot(), "test/fixtures/qwen2_5-vl");
const CACHE = testCacheDir();
const CHECKPOINT = "qwen2_5-vl-tiny";
const GEOMETRY = { patchSize: 14, spatialMergeSize: 2, windowSize: 112 };
const IDS = { spatialMergeSize: 2, imageTokenId: 151655, videoTokenId: 151656, visionStartTokenId: 151652, tokensPerSecond: 2 };

interface Summary {
  sum: number;
  abs_sum: number;
  indices: number[];
  values: number[];
  shape: number[];
}
interface GoldenCase {
  messages: { role: string; content: { type: string; text?: string; image?: string; video?: string[]; fps?: number }[] }[];
  input_ids: number[];
  image_grid_thw: [number, number, number][] | null;
  video_grid_thw: [number, number, number][] | null;
  second_per_grid_ts: number[] | null;
  windows: { kind: string; grid: [number, number, number]; window_index: number[]; cu_window_seqlens: number[] }[];
  position_ids: number[][];
  rope_deltas: number;
  pixel_values: Summary | null;
  pixel_values_videos: Summary | null;
  image_embeds?: Summary;
  video_embeds?: Summary;
  logit_ids: number[];
  logits: LogitRecord[];
  greedy: { new_tokens: number[]; steps: { step: number; max_abs: number; top20: [number, number][]; at_ids: number[] }[]; full_forward_last: { max_abs: number; top20: [number, number][] } };
}

const golden = JSON.parse(fs.readFileSync(path.join(FIXTURES, CHECKPOINT, "golden.json"), "utf8")) as { cases: Record<string, GoldenCase> };

/** The DESIGN tolerance: fp32 logits within 1e-4 × max(1, max |logit|). */
/** Largest logit deviation seen per case, printed at the end (the report's measured deltas). */
const worstByCase: Record<string, number> = {};

function toMessages(c: GoldenCase, edit: { reverseFrames?: boolean; fps?: number } = {}): ChatRequestMessage[] {
  const media = (p: string) => path.join(FIXTURES, p);
  return c.messages.map((m) => ({
    role: m.role as ChatRequestMessage["role"],
    content: m.content.map((part): ContentPart => {
      if (part.type === "image") return { type: "image", image: media(part.image!) };
      if (part.type === "video") {
        const frames = part.video!.map(media);
        if (edit.reverseFrames) frames.reverse();
        // Frames as images, as the golden's HF processor got them (sizes are multiples of 28): the per-frame lower
        // bound is lowered so qwen-vl-utils does not upscale them; the fps is the sample_fps the reference used.
        return { type: "video", video: frames, fps: edit.fps ?? part.fps, minPixels: 28 * 28 };
      }
      return { type: "text", text: part.text! };
    }),
  }));
}

function ropeVisuals(c: GoldenCase) {
  return [
    ...(c.image_grid_thw ?? []).map((grid) => ({ kind: "image" as const, grid })),
    ...(c.video_grid_thw ?? []).map((grid, i) => ({ kind: "video" as const, grid, secondPerGrid: c.second_per_grid_ts![i] })),
  ];
}

function checkSummary(actual: Float32Array, ref: Summary, digits: number) {
  expect(actual.length).toBe(ref.shape.reduce((a, b) => a * b, 1));
  let sum = 0;
  let abs = 0;
  for (const v of actual) {
    sum += v;
    abs += Math.abs(v);
  }
  expect(Math.abs(sum - ref.sum)).toBeLessThan(10 ** -digits * ref.abs_sum + 1e-3);
  expect(Math.abs(abs - ref.abs_sum)).toBeLessThan(10 ** -digits * ref.abs_sum + 1e-3);
  ref.indices.forEach((idx, j) => expect(actual[idx]).toBeCloseTo(ref.values[j], digits));
}

function rows(positionIds: Int32Array, S: number): number[][] {
  return [0, 1, 2].map((a) => Array.from(positionIds.subarray(a * S, (a + 1) * S)));
}

describe("Qwen2.5-VL tiny checkpoint spec", () => {
  it("qwen2_5VlWeightSpec reproduces the Python oracle's weights.json", () => {
    const dir = path.join(FIXTURES, CHECKPOINT);
    const spec = JSON.parse(fs.readFileSync(path.join(dir, "weights.json"), "utf8")) as WeightSpec;
    const config = JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8")) as Qwen2_5VlShapeConfig;
    expect(qwen2_5VlWeightSpec(config, spec.seed)).toEqual(spec);
  });
});

describe("Qwen2.5-VL config", () => {
  it("reads the hub layout: vision hidden_size is the ViT width, out_hidden_size the merger output", () => {
    // Values of huggingface.co/Qwen/Qwen2.5-VL-7B-Instruct config.json (text fields abridged to those parsed).
    const cfg = parseQwen2_5VLConfig({
      model_type: "qwen2_5_vl",
      hidden_size: 3584,
      intermediate_size: 18944,
      num_attention_heads: 28,
      num_hidden_layers: 28,
      num_key_value_heads: 4,
      rms_norm_eps: 1e-6,
      rope_theta: 1000000.0,
      vocab_size: 152064,
      max_position_embeddings: 128000,
      rope_scaling: { type: "mrope", mrope_section: [16, 24, 24] },
      vision_config: {
        depth: 32, hidden_act: "silu", hidden_size: 1280, intermediate_size: 3420, num_heads: 16, in_chans: 3, out_hidden_size: 3584,
        patch_size: 14, spatial_merge_size: 2, spatial_patch_size: 14, window_size: 112, fullatt_block_indexes: [7, 15, 23, 31],
        tokens_per_second: 2, temporal_patch_size: 2,
      },
    });
    expect(cfg.vision).toMatchObject({ embedDim: 1280, outHiddenSize: 3584, intermediateSize: 3420, numHeads: 16, depth: 32, hiddenAct: "silu", windowSize: 112, fullAttBlockIndexes: [7, 15, 23, 31], tokensPerSecond: 2 });
    expect(cfg.text).toMatchObject({ hiddenSize: 3584, headDim: 128, numKvHeads: 4, mropeSection: [16, 24, 24] });
    const tiny = JSON.parse(fs.readFileSync(path.join(FIXTURES, CHECKPOINT, "config.json"), "utf8")) as Record<string, unknown> & { vision_config: object };
    expect(parseQwen2_5VLConfig(tiny).vision.fullAttBlockIndexes).toEqual([1]);
    expect(() => parseQwen2_5VLConfig({ ...tiny, vision_config: { ...tiny.vision_config, fullatt_block_indexes: [3] } })).toThrow(/fullatt_block_indexes .* below depth 3/);
  });
});

describe("Qwen2.5-VL window layout (get_window_index)", () => {
  it("matches the reference window_index / cu_window_seqlens of every recorded grid", () => {
    let checked = 0;
    for (const c of Object.values(golden.cases)) {
      for (const w of c.windows) {
        const plan = windowPlan(w.grid, GEOMETRY);
        expect(Array.from(plan.windowIndex)).toEqual(w.window_index);
        expect(plan.cuWindowSeqlens).toEqual(w.cu_window_seqlens);
        checked++;
      }
    }
    expect(checked).toBeGreaterThanOrEqual(6);
  });

  it("matches the facts-doc example (grid 1×12×20) and gathers/scatters every patch exactly once", () => {
    // Facts doc §1.10 (facts_check.out): merged 6×10 → windows 4×4, 4×4, 4×2, 2×4, 2×4, 2×2.
    const plan = windowPlan([1, 12, 20], GEOMETRY);
    expect(plan.cuWindowSeqlens).toEqual([0, 64, 128, 160, 192, 224, 240]);
    expect(Array.from(plan.windowIndex.slice(0, 8))).toEqual([0, 1, 2, 3, 10, 11, 12, 13]);
    expect(Array.from(plan.windowIndex.slice(-4))).toEqual([48, 49, 58, 59]);
    expect(plan.windowLen).toBe(64);
    expect(Array.from(plan.lengths)).toEqual([64, 64, 32, 32, 32, 16]);
    for (let row = 0; row < 240; row++) expect(plan.gather[plan.scatter[row]]).toBe(row);
    const seen = new Set(Array.from(plan.scatter));
    expect(seen.size).toBe(240);
  });
});

describe("Qwen2.5-VL time rule", () => {
  const frac = golden.cases["video-frac"];
  it("replays transformers 4.57.6 (second_per_grid cast to int) on a fractional second_per_grid", () => {
    expect(frac.second_per_grid_ts![0]).toBeCloseTo(2 / 3, 6);
    const r = getRopeIndex(frac.input_ids, ropeVisuals(frac), { ...IDS, videoTimeRule: "hf-4.57" });
    expect(rows(r.positionIds, frac.input_ids.length)).toEqual(frac.position_ids);
    expect(r.ropeDelta).toBe(frac.rope_deltas);
  });

  it("the engine default (Qwen's float rule) keeps time where 4.57.6 drops it", () => {
    expect(DEFAULT_VIDEO_TIME_RULE).toBe("qwen-float");
    const S = frac.input_ids.length;
    const r = getRopeIndex(frac.input_ids, ropeVisuals(frac), { ...IDS, videoTimeRule: DEFAULT_VIDEO_TIME_RULE });
    const start = frac.input_ids.indexOf(IDS.videoTokenId);
    // Grid 3×12×16: 6·8 = 48 merged tokens per temporal step; temporal offset of step k from the block start.
    const steps = (tRow: ArrayLike<number>) => [0, 1, 2].map((k) => tRow[start + k * 48] - tRow[start]);
    expect(frac.video_grid_thw).toEqual([[3, 12, 16]]);
    // 4.57.6: trunc(0.667) = 0 → all three steps at the same temporal position.
    expect(steps(frac.position_ids[0])).toEqual([0, 0, 0]);
    // Qwen float: trunc(k · 0.667 · 2) = 0, 1, 2 (1.33 → 1, 2.67 → 2).
    expect(steps(r.positionIds.subarray(0, S))).toEqual([0, 1, 2]);
  });
});

describe(`Qwen2.5-VL golden: ${CHECKPOINT}`, () => {
  let model: VideoModel;

  beforeAll(async () => {
    const dir = await materializeTinyCheckpoint(path.join(FIXTURES, CHECKPOINT));
    model = await VideoModel.load(dir, { cacheDir: CACHE, threads: 1 });
  });

  /** Prompt logits at `positions` of one full pass. */
  for (const [name, c] of Object.entries(golden.cases)) {
    it(`${name}: prompt ids, positions, pixels, vision embeddings, logits, greedy tokens, cached decode`, async () => {
      let prepared = await model.prepare(toMessages(c));
      expect(prepared.inputIds).toEqual(c.input_ids);
      const S = c.input_ids.length;
      if (name === "video-frac") {
        // The default rule differs from 4.57.6 here (see "time rule" above); replay the oracle's rule.
        expect(rows(prepared.positionIds, S)).not.toEqual(c.position_ids);
        const r = getRopeIndex(prepared.inputIds, prepared.visuals.map((v) => ({ kind: v.kind, grid: v.batch.grid, secondPerGrid: v.secondPerGrid })), { ...IDS, videoTimeRule: "hf-4.57" });
        prepared = { ...prepared, positionIds: r.positionIds, ropeDelta: r.ropeDelta };
      }
      expect(rows(prepared.positionIds, S)).toEqual(c.position_ids);
      expect(prepared.ropeDelta).toBe(c.rope_deltas);
      const videos = prepared.visuals.filter((v) => v.kind === "video");
      expect(videos.map((v) => Math.fround(v.secondPerGrid!))).toEqual(c.second_per_grid_ts ?? []);

      for (const kind of ["image", "video"] as const) {
        const ref = kind === "image" ? c.pixel_values : c.pixel_values_videos;
        const all = pixelValuesOf(prepared, kind);
        if (!ref) {
          expect(all).toHaveLength(0);
          continue;
        }
        expect(all.length).toBe(ref.shape[0] * ref.shape[1]);
        checkSummary(all, ref, 5);
      }

      const prompt = await model.encodeVisuals(prepared);
      const D = model.config.text.hiddenSize;

      // Vision tower output: every case lists its images before its videos, so the prompt-order rows are
      // cat(image_embeds, video_embeds).
      const nImage = c.image_embeds ? c.image_embeds.shape[0] : 0;
      if (c.image_embeds) checkSummary(prompt.visualEmbeds!.subarray(0, nImage * D), c.image_embeds, 4);
      if (c.video_embeds) checkSummary(prompt.visualEmbeds!.subarray(nImage * D), c.video_embeds, 4);

      const logitsWorst = await checkLogitRecords(model, prompt, c.logit_ids, c.logits);
      // Greedy decoding with the KV cache (prefill in chunks of 7) and cached decode vs one full pass.
      const greedyWorst = await checkGreedyDecoding(model, prompt, c.greedy, c.logit_ids);
      worstByCase[name] = Math.max(logitsWorst, greedyWorst);
    });
  }

  it("time is not ignored: another fps changes the position ids, reversed frames change the output", async () => {
    const c = golden.cases["video-fps2"];
    const S = c.input_ids.length;
    const last = c.logits[c.logits.length - 1];
    expect(last.position).toBe(S - 1);

    // Same frames at 0.5 fps: 4 s per temporal step instead of 1 s → temporal ids 0, 8, 16 instead of 0, 2, 4.
    const slow = await model.prepare(toMessages(c, { fps: 0.5 }));
    const normal = await model.prepare(toMessages(c));
    expect(slow.inputIds).toEqual(normal.inputIds);
    expect(rows(slow.positionIds, S)[0]).not.toEqual(rows(normal.positionIds, S)[0]);
    expect(rows(slow.positionIds, S)).toEqual(golden.cases["video-fps0.5"].position_ids);
    const start = c.input_ids.indexOf(IDS.videoTokenId);
    expect([0, 48, 96].map((k) => normal.positionIds[start + k] - normal.positionIds[start])).toEqual([0, 2, 4]);
    expect([0, 48, 96].map((k) => slow.positionIds[start + k] - slow.positionIds[start])).toEqual([0, 8, 16]);

    // Reversed frames: same tokens and positions, different pixels → the last prompt logits move well beyond the tolerance.
    const reversed = await model.prepare(toMessages(c, { reverseFrames: true }));
    expect(reversed.inputIds).toEqual(c.input_ids);
    expect(rows(reversed.positionIds, S)).toEqual(c.position_ids);
    const logits = await fullForward(model, await model.encodeVisuals(reversed), [S - 1]);
    let moved = 0;
    last.top20.forEach(([id, v]) => (moved = Math.max(moved, Math.abs(logits[id] - v))));
    expect(moved).toBeGreaterThan(100 * tolerance(last.max_abs));
  });

  it("reports the largest logit deviation per case", () => {
    console.log("Qwen2.5-VL max |logit − reference| per case:", JSON.stringify(worstByCase));
    expect(Object.keys(worstByCase).length).toBe(Object.keys(golden.cases).length);
  });
});
