// InternVL request processing (src/families/internvl/{processor,sampling,tiling,prompt}.ts) against the reference
// recorded by tools/oracle/record_internvl.py (transformers 4.57.6 + the OpenGVLab/InternVL3_5 model card pipeline):
// get_index and tiling tables, and for every golden case of the three fixtures the sampled frames, tile counts, pixel
// values (summary) and prompt ids; then the same frames through a real (lossless) video file.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { ContentPart, PreparedVisual, VisualPlan } from "../src/engine/request.js";
import { InternVLProcessor, patchifyTiles, type InternVLProcessorConfig } from "../src/families/internvl/processor.js";
import { expandPromptText, promptTokensFromTokenizerConfig, videoText } from "../src/families/internvl/prompt.js";
import { DEFAULT_FRAMES, getIndex, planInternVLFrames, roundHalfEven } from "../src/families/internvl/sampling.js";
import { candidateGrids, chooseTileGrid, dynamicPreprocess, tileCount } from "../src/families/internvl/tiling.js";
import { ChatTemplate, specialTokenVariables } from "../src/text/chat-template.js";
import { TextTokenizer } from "../src/text/tokenizer.js";
import { addTokensToTokenizerJson, qwenTokenizerJsonPath } from "../src/testing/tiny-checkpoint.js";
import { FFV1_RGB, runFfmpeg } from "./media-helpers.js";

const ROOT = path.join(import.meta.dirname, "fixtures", "internvl");
const readJson = <T>(file: string): T => JSON.parse(fs.readFileSync(file, "utf8")) as T;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "internvl-processing-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface Summary {
  shape: number[];
  sum: number;
  abs_sum: number;
  indices: number[];
  values: number[];
}
interface Part {
  type: "text" | "image" | "video";
  text?: string;
  image?: string;
  video?: string[];
  fps?: number;
  num_segments?: number;
}
interface GoldenCase {
  messages: { role: "user"; content: Part[] }[];
  prompt: string;
  input_ids: number[];
  position_ids: number[];
  num_tiles: number;
  visuals: { type: "image" | "video"; num_patches?: number; grid?: [number, number]; frame_indices?: number[]; num_patches_list?: number[] }[];
  pixel_values: Summary | null;
}
interface Golden {
  reference: { tile_size: number; tokens_per_tile: number };
  cases: Record<string, GoldenCase>;
}

/** The processor settings the family config gives (config.ts), read here from config.json directly. */
function processorConfig(dir: string): InternVLProcessorConfig {
  const c = readJson<Record<string, unknown>>(path.join(dir, "config.json"));
  if (c.model_type === "internvl_chat") {
    const v = c.vision_config as { patch_size: number };
    return { imageSize: c.force_image_size as number, patchSize: v.patch_size, downsampleRatio: c.downsample_ratio as number, imageTokenId: 151671, maxDynamicPatch: c.max_dynamic_patch as number, useThumbnail: c.use_thumbnail as boolean };
  }
  const v = c.vision_config as { image_size: number[]; patch_size: number[] };
  return { imageSize: v.image_size[0], patchSize: v.patch_size[0], downsampleRatio: c.downsample_ratio as number, imageTokenId: c.image_token_id as number };
}

let tokenizer: TextTokenizer | undefined;
function internvlTokenizer(dir: string): TextTokenizer {
  if (!tokenizer) {
    const added = readJson<{ added_tokens: { id: number; content: string; special: boolean }[] }>(path.join(dir, "tokenizer_added_tokens.json")).added_tokens;
    const json = JSON.parse(addTokensToTokenizerJson(fs.readFileSync(qwenTokenizerJsonPath()), added).toString("utf8")) as unknown;
    tokenizer = TextTokenizer.fromJson(json, readJson(path.join(dir, "tokenizer_config.json")));
  }
  return tokenizer;
}

function toParts(content: Part[]): ContentPart[] {
  return content.map((p): ContentPart => {
    if (p.type === "text") return { type: "text", text: p.text! };
    if (p.type === "image") return { type: "image", image: path.join(ROOT, p.image!) };
    return { type: "video", video: p.video!.map((f) => path.join(ROOT, f)), fps: p.fps, nframes: p.num_segments };
  });
}

/** pixel values of prepared visuals as the reference's [tiles, 3, s, s] tensor (flat), from the patch rows. */
function asNchw(visuals: readonly PreparedVisual[], size: number, patch: number): Float64Array {
  const P = size / patch;
  const tiles = visuals.reduce((n, v) => n + v.grid[0], 0);
  const out = new Float64Array(tiles * 3 * size * size);
  let t0 = 0;
  for (const v of visuals) {
    const px = v.batch.pixelValues;
    for (let t = 0; t < v.grid[0]; t++) {
      for (let c = 0; c < 3; c++) {
        for (let Y = 0; Y < size; Y++) {
          for (let X = 0; X < size; X++) {
            const row = (t * P + Math.floor(Y / patch)) * P + Math.floor(X / patch);
            out[(((t0 + t) * 3 + c) * size + Y) * size + X] = px[row * 3 * patch * patch + (c * patch + (Y % patch)) * patch + (X % patch)];
          }
        }
      }
    }
    t0 += v.grid[0];
  }
  return out;
}

function checkSummary(got: Float64Array, want: Summary): void {
  expect(got.length).toBe(want.shape.reduce((a, b) => a * b, 1));
  let sum = 0;
  let abs = 0;
  for (const v of got) {
    sum += v;
    abs += Math.abs(v);
  }
  expect(Math.abs(sum - want.sum)).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(want.sum)));
  expect(Math.abs(abs - want.abs_sum)).toBeLessThanOrEqual(1e-4 * want.abs_sum);
  want.indices.forEach((idx, k) => expect(got[idx]).toBe(want.values[k]));
}

describe("get_index (model card) and the frame plan", () => {
  const tables = readJson<{ get_index: { rows: { total: number; num: number; model_card: number[]; hf_sample_frames: number[] | null }[] } }>(path.join(ROOT, "tables.json"));

  it("reproduces every recorded (total, num) row, including the facts doc's (300, 8)", () => {
    expect(tables.get_index.rows.length).toBe(32);
    for (const r of tables.get_index.rows) expect(getIndex(undefined, 30, r.total - 1, 0, r.num), `${r.total}, ${r.num}`).toEqual(r.model_card);
    expect(getIndex(undefined, 30, 299, 0, 8)).toEqual([18, 55, 93, 130, 168, 205, 242, 280]);
    // The HF video processor's rule picks other frames in most rows (recorded for documentation).
    expect(tables.get_index.rows.filter((r) => r.hf_sample_frames && r.hf_sample_frames.join() !== r.model_card.join()).length).toBe(30);
  });

  it("rounds half to even as Python / numpy do", () => {
    expect([0.5, 1.5, 2.5, -0.5, -1.5, 2.4999, 2.5001, 3].map(roundHalfEven)).toEqual([0, 2, 2, 0, -2, 2, 3, 3]);
  });

  it("plans 16 frames by default, nframes exactly, fps per second of the clip, max/min frames and the range", () => {
    expect(planInternVLFrames(300, 30, {}).frameIndices).toEqual(getIndex(undefined, 30, 299, 0, DEFAULT_FRAMES));
    // A short clip: as many segments as frames (get_index itself then repeats a frame and skips the last: [0,1,2,3,4,4,5,6,7,8]).
    expect(planInternVLFrames(10, 30, {}).frameIndices).toEqual([0, 1, 2, 3, 4, 4, 5, 6, 7, 8]);
    expect(planInternVLFrames(10, 30, { nframes: 16 }).frameIndices.length).toBe(16); // as given (get_index repeats frames)
    expect(planInternVLFrames(300, 30, { fps: 1 }).frameIndices).toEqual(getIndex(undefined, 30, 299, 0, 10));
    const capped = planInternVLFrames(300, 30, { fps: 2, maxFrames: 12 });
    expect(capped.frameIndices.length).toBe(12);
    expect(capped.limitedBy).toEqual({ name: "max_frames", value: 12, wanted: 20 });
    expect(planInternVLFrames(300, 30, { frameLimit: 4 }).limitedBy).toEqual({ name: "frame_limit", value: 4, wanted: 16 });
    expect(planInternVLFrames(300, 30, { fps: 0.1, minFrames: 4 }).frameIndices.length).toBe(4);
    const clip = planInternVLFrames(300, 30, { start: 2, end: 4, nframes: 4 });
    expect(clip.range).toEqual({ start: 60, end: 120, count: 61 });
    expect(clip.frameIndices).toEqual(getIndex([2, 4], 30, 299, 0, 4));
    expect(() => planInternVLFrames(300, 30, { nframes: 4, fps: 2 })).toThrow(/either nframes or fps/);
    expect(() => planInternVLFrames(300, 30, { start: 20 })).toThrow(/holds no frame/);
  });
});

describe("tiling (model card dynamic_preprocess)", () => {
  const tables = readJson<{ tiling: { candidate_order: [number, number][]; rows: { width: number; height: number; image_size: number; grid: [number, number]; hf_grid: [number, number]; tiles_with_thumbnail: number }[] } }>(path.join(ROOT, "tables.json"));

  it("chooses the recorded grid for every size, exact ties included, and counts the thumbnail", () => {
    expect(tables.tiling.rows.length).toBe(24);
    for (const r of tables.tiling.rows) {
      expect(chooseTileGrid(r.width, r.height, r.image_size), `${r.width}x${r.height}`).toEqual(r.grid);
      expect(tileCount(r.width, r.height, r.image_size)).toBe(r.tiles_with_thumbnail);
      expect(r.hf_grid).toEqual(r.grid); // GotOcr2 agrees with the model card on all of them
    }
    // A tie (aspect 3.5 between 3x1 and 4x1) resolved by the area rule both ways.
    expect(chooseTileGrid(700, 200, 448)).toEqual([3, 1]);
    expect(chooseTileGrid(1400, 400, 448)).toEqual([4, 1]);
  });

  it("has the model card's candidates, in the same order by area (ties among equal areas: see tiling.ts)", () => {
    const mine = candidateGrids(1, 12);
    const theirs = tables.tiling.candidate_order;
    expect(mine.map((g) => g[0] * g[1])).toEqual(theirs.map((g) => g[0] * g[1]));
    expect(new Set(mine.map((g) => g.join()))).toEqual(new Set(theirs.map((g) => g.join())));
  });

  it("cuts tiles row by row and appends the thumbnail", () => {
    const w = 6, h = 3;
    const data = new Uint8Array(w * h * 3).map((_, i) => i % 251);
    const tiles = dynamicPreprocess({ width: w, height: h, data }, 3, { useThumbnail: true });
    expect(tiles.length).toBe(3); // 2x1 grid (no resize: 6x3 is already 2 tiles of 3) + thumbnail
    expect(Array.from(tiles[1].data.subarray(0, 3))).toEqual(Array.from(data.subarray(9, 12))); // tile 1 starts at x = 3
    const { pixelValues, positionIds, grid } = patchifyTiles(tiles, 3, 1);
    expect(grid).toEqual([3, 3, 3]);
    expect(pixelValues.length).toBe(3 * 9 * 3);
    expect(Array.from(positionIds.subarray(0, 8))).toEqual([0, 0, 0, 1, 0, 2, 1, 0]);
  });
});

describe("prompt expansion", () => {
  it("expands images and videos in order of appearance and refuses a count mismatch", () => {
    expect(videoText(2, 1)).toBe("Frame1: <img><IMG_CONTEXT></img>\nFrame2: <img><IMG_CONTEXT></img>");
    const text = "a<video>\nb<IMG_CONTEXT>\nc";
    const out = expandPromptText(text, [{ kind: "image", tiles: 2 }, { kind: "video", tiles: 1 }], 2);
    expect(out).toBe("aFrame1: <img><IMG_CONTEXT><IMG_CONTEXT></img>\nb<img>" + "<IMG_CONTEXT>".repeat(4) + "</img>\nc");
    expect(() => expandPromptText(text, [{ kind: "video", tiles: 1 }], 2)).toThrow(/more <IMG_CONTEXT> placeholders/);
    expect(() => expandPromptText("x", [{ kind: "video", tiles: 1 }], 2)).toThrow(/0 image and 0 video placeholder/);
  });

  it("takes the placeholders from the tokenizer's extra_special_tokens, as transformers' InternVLProcessor", () => {
    const t = promptTokensFromTokenizerConfig({ extra_special_tokens: { video_token: "<vid>", context_image_token: "<ctx>" } });
    expect(t).toEqual({ start: "<img>", end: "</img>", context: "<ctx>", video: "<vid>" });
    expect(expandPromptText("<vid>|<ctx>", [{ kind: "video", tiles: 1 }, { kind: "image", tiles: 1 }], 1, t)).toBe("Frame1: <img><ctx></img>|<img><ctx></img>");
    const dir = path.join(ROOT, "internvl-tiny");
    expect(new InternVLProcessor(dir, processorConfig(dir)).promptTokens).toEqual(promptTokensFromTokenizerConfig(undefined));
  });
});

describe.each(["internvl-tiny", "internvl-tiny-6b-style", "internvl-tiny-original"])("golden cases of %s", (name) => {
  const dir = path.join(ROOT, name);
  const golden = readJson<Golden>(path.join(dir, "golden.json"));
  const cfg = processorConfig(dir);
  const processor = new InternVLProcessor(dir, cfg);

  it("has the recorded tile size and tokens per tile", () => {
    expect(cfg.imageSize).toBe(golden.reference.tile_size);
    expect(processor.tokensPerTile).toBe(golden.reference.tokens_per_tile);
    expect(processor.maxNum).toBe(12);
  });

  it.each(Object.keys(golden.cases))("%s: plan, pixels, prompt ids and positions equal the reference", async (caseName) => {
    const c = golden.cases[caseName];
    const parts = toParts(c.messages[0].content);
    const plans: VisualPlan[] = [];
    const prepared: PreparedVisual[] = [];
    for (const p of parts) {
      const plan = await processor.planVisual(p, {});
      const prep = await processor.prepareVisual(p, {});
      if (!plan || !prep) continue;
      expect(prep.grid).toEqual(plan.grid);
      expect(prep.tokens).toBe(plan.tokens);
      plans.push(plan);
      prepared.push(prep);
    }
    expect(plans.length).toBe(c.visuals.length);
    c.visuals.forEach((v, i) => {
      const tiles = v.type === "image" ? v.num_patches! : v.num_patches_list!.length;
      expect(plans[i].grid).toEqual([tiles, cfg.imageSize / cfg.patchSize, cfg.imageSize / cfg.patchSize]);
      expect(plans[i].tokens).toBe(tiles * golden.reference.tokens_per_tile);
      if (v.type === "video") expect(plans[i].frameIndices).toEqual(v.frame_indices);
    });
    expect(prepared.reduce((n, v) => n + v.grid[0], 0)).toBe(c.num_tiles);
    if (c.pixel_values) checkSummary(asNchw(prepared, cfg.imageSize, cfg.patchSize), c.pixel_values);
    else expect(prepared.length).toBe(0);

    // The checkpoint's chat template renders the recorded prompt; the processor expands it to the recorded ids.
    const template = await ChatTemplate.load(dir);
    const messages = c.messages.map((m) => ({ role: m.role, content: m.content.map((p) => (p.type === "text" ? { type: "text" as const, text: p.text! } : { type: p.type })) }));
    expect(template.render(messages, { addGenerationPrompt: true, specialTokens: specialTokenVariables(readJson(path.join(dir, "tokenizer_config.json"))) })).toBe(c.prompt);
    const { inputIds, positionIds, ropeDelta } = processor.buildPrompt(c.prompt, internvlTokenizer(dir), plans);
    expect(inputIds).toEqual(c.input_ids);
    expect(Array.from(positionIds)).toEqual(c.position_ids);
    expect(ropeDelta).toBe(0);
  });

  it("splits a batch into whole tiles", async () => {
    const c = golden.cases["video-16"];
    const prep = (await processor.prepareVisual(toParts(c.messages[0].content)[0], {}))!;
    const P2 = prep.grid[1] * prep.grid[2];
    const chunks = processor.visionChunks(prep.batch, 5 * P2 + 1);
    expect(chunks.map((b) => b.grid[0])).toEqual([5, 5, 5, 1]);
    expect(chunks.reduce((n, b) => n + b.pixelValues.length, 0)).toBe(prep.batch.pixelValues.length);
    expect(chunks[1].pixelValues[0]).toBe(prep.batch.pixelValues[5 * P2 * 3 * cfg.patchSize * cfg.patchSize]);
    expect(processor.visionChunks(prep.batch, 1).length).toBe(16);
  });
});

describe("a real video file", () => {
  const dir = path.join(ROOT, "internvl-tiny");
  const golden = readJson<Golden>(path.join(dir, "golden.json"));
  const processor = new InternVLProcessor(dir, processorConfig(dir));

  it("samples get_index's frames of a lossless 10 fps encode of the 40 frames and gives the reference's pixels", async () => {
    const file = path.join(tmp, "video40.mkv");
    runFfmpeg(["-framerate", "10", "-i", path.join(ROOT, "media", "video40-h48-w72-%02d.png"), ...FFV1_RGB, file]);
    for (const caseName of ["video-8", "video-16"]) {
      const c = golden.cases[caseName];
      const n = c.messages[0].content.find((p) => p.type === "video")!.num_segments!;
      const part: ContentPart = { type: "video", video: file, nframes: n };
      const plan = (await processor.planVisual(part, {}))!;
      expect(plan.frameIndices).toEqual(c.visuals[0].frame_indices);
      expect(plan.timestamps).toEqual(plan.frameIndices!.map((i) => i / 10));
      expect(plan.resample?.frameCount).toBe(40);
      const prep = (await processor.prepareVisual(part, {}))!;
      checkSummary(asNchw([prep], 56, 14), c.pixel_values!);
      // Fitting the context: fewer frames from the probe facts alone.
      expect(processor.gridWithMaxFrames(plan, 4)).toEqual([4, 4, 4]);
      expect(processor.gridWithMaxFrames(plan, 4, 100)).toBeUndefined();
    }
    // The default: 16 frames (the file has 40).
    expect((await processor.planVisual({ type: "video", video: file }, {}))!.grid).toEqual([16, 4, 4]);
  });
});
