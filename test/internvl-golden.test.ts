/**
 * InternVL (transformers 4.57.6 models/internvl, InternVL3.5 -HF checkpoints and the original InternVLChatModel
 * layout) against the reference: for each tiny fixture (tools/oracle/record_internvl.py; internvl-tiny: HF layout,
 * InternViT-300M-style tower with 56-px tiles; internvl-tiny-6b-style: RMSNorm + QK-norm tower, 112-px tiles;
 * internvl-tiny-original: internvl-tiny's weights in the original InternVLChatModel layout, same golden) the prompt
 * ids, 1-D positions, pixel values, the tower's rows, the projector's rows, logits at the recorded positions, 12 greedy
 * tokens with chunked prefill and cached decode, and one full pass over prompt + generated; int8 close to fp32.
 *
 * Published widths: an InternVL3.5-2B-shaped checkpoint (InternViT-300M tower, Qwen3-1.7B decoder, 2 layers each,
 * seeded random weights) converts through the family's names and builders and runs one tile and one prompt.
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { openCheckpoint } from "../src/checkpoint/checkpoint.js";
import type { TensorInfo } from "../src/checkpoint/safetensors.js";
import { WeightMap } from "../src/checkpoint/weight-map.js";
import { allKvLayers } from "../src/engine/decoder-state.js";
import { createSession, Decoder, VisionEncoder } from "../src/engine/sessions.js";
import { parseInternVLConfig, type InternVLConfig } from "../src/families/internvl/config.js";
import { sanitizeInternVLTensorName } from "../src/families/internvl/names.js";
import { buildInternVLDecoder } from "../src/families/internvl/text.js";
import { buildInternVLVision } from "../src/families/internvl/vision.js";
import { BENCH_SHAPES, INTERNVL3_5_2B, internVLWeightSpec } from "../src/bench/presets.js";
import { GraphBuilder } from "../src/onnx/graph.js";
import { Layers } from "../src/onnx/layers.js";
import { VideoModel } from "../src/engine/model.js";
import type { ChatRequestMessage, ContentPart } from "../src/engine/request.js";
import { materializeTinyCheckpoint, repoRoot, testCacheDir, writeSafetensors, type WeightSpec } from "../src/testing/tiny-checkpoint.js";
import { checkGreedyDecoding, checkLogitRecords, checkSummary, concatFloat32, fullForward, maxAbsDiff, type GreedyGolden, type LogitRecord, type Summary } from "./golden-helpers.js";

const FIXTURES = path.join(repoRoot(), "test/fixtures/internvl");
const CACHE = testCacheDir();

interface GoldenCase {
  messages: { role: string; content: { type: string; text?: string; image?: string; video?: string[]; fps?: number; num_segments?: number }[] }[];
  input_ids: number[];
  expanded_prompt: string;
  position_ids: number[];
  num_tiles: number;
  pixel_values: Summary | null;
  vision_embeds?: Summary;
  vision_tower_last_hidden?: Summary;
  logit_ids: number[];
  logits: LogitRecord[];
  greedy: GreedyGolden;
}
type Golden = { checkpoint: { name: string }; reference: { tokens_per_tile: number }; cases: Record<string, GoldenCase> };

/** The recorded messages with media paths resolved; a video is its 40 source frames at `fps`, `num_segments` sampled. */
function toMessages(c: GoldenCase): ChatRequestMessage[] {
  return c.messages.map((m) => ({
    role: m.role as ChatRequestMessage["role"],
    content: m.content.map((p): ContentPart => {
      if (p.type === "image") return { type: "image", image: path.join(FIXTURES, p.image!) };
      if (p.type === "video") return { type: "video", video: p.video!.map((f) => path.join(FIXTURES, f)), fps: p.fps, nframes: p.num_segments };
      return { type: "text", text: p.text! };
    }),
  }));
}

/** Patch rows [tiles·P², (c, y, x)] → the reference's pixel_values layout [tiles, 3, size, size]. */
function tilesNCHW(rows: Float32Array, size: number, patch: number): Float32Array {
  const P = size / patch;
  const out = new Float32Array(rows.length);
  const tiles = rows.length / (3 * size * size);
  let k = 0;
  for (let t = 0; t < tiles; t++)
    for (let py = 0; py < P; py++)
      for (let px = 0; px < P; px++)
        for (let c = 0; c < 3; c++) for (let y = 0; y < patch; y++) for (let x = 0; x < patch; x++) out[((t * 3 + c) * size + py * patch + y) * size + px * patch + x] = rows[k++];
  return out;
}

/** Largest logit difference per checkpoint and case (and the max |logit| it was measured at), for the report. */
const worst: Record<string, { delta: number; maxAbs: number }> = {};

for (const checkpoint of ["internvl-tiny", "internvl-tiny-6b-style", "internvl-tiny-original"]) {
  describe(`InternVL golden: ${checkpoint}`, () => {
    const fixture = path.join(FIXTURES, checkpoint);
    const golden = JSON.parse(fs.readFileSync(path.join(fixture, "golden.json"), "utf8")) as Golden;
    let model: VideoModel;
    beforeAll(async () => {
      model = await VideoModel.load(await materializeTinyCheckpoint(fixture), { cacheDir: CACHE, threads: 1 });
    }, 120_000);
    const note = (key: string, delta: number, maxAbs: number) => {
      const w = (worst[key] ??= { delta: 0, maxAbs: 0 });
      if (delta > w.delta) Object.assign(w, { delta, maxAbs });
    };

    it("config: the <IMG_CONTEXT> / <img> ids, 1-D decoder, tiles of the config's size", () => {
      expect(model.config.imageTokenId).toBe(151671);
      expect(model.config.videoTokenId).toBe(151671);
      expect(model.config.visionStartTokenId).toBe(151669);
      expect(model.tokenizer.tokenId("<img>")).toBe(151669);
      expect(model.decoder.positionAxes).toBe(1);
    });

    for (const [name, c] of Object.entries(golden.cases)) {
      it(`${name}: prompt ids, positions, pixels, tower and projector rows, logits, greedy tokens, cached decode`, async () => {
        const prepared = await model.prepare(toMessages(c));
        expect(model.tokenizer.decode(prepared.inputIds, { skipSpecialTokens: false })).toBe(c.expanded_prompt);
        expect(prepared.inputIds).toEqual(c.input_ids);
        expect(Array.from(prepared.positionIds)).toEqual(c.position_ids);
        expect(prepared.ropeDelta).toBe(0);
        const tiles = prepared.visuals.reduce((n, v) => n + v.batch.grid[0], 0);
        expect(tiles).toBe(c.num_tiles);
        if (c.pixel_values) {
          // The reference's [tiles, 3, size, size] in prompt order, from our patch rows.
          const { imageSize, patchSize } = (model.config as InternVLConfig).vision;
          checkSummary(tilesNCHW(concatFloat32(prepared.visuals.map((v) => v.batch.pixelValues)), imageSize, patchSize), c.pixel_values, 1e-6);
          // Vision tower + pixel shuffle + projector, tile by tile (debug aid: fails before the logits do).
          const outs = await Promise.all(prepared.visuals.map((v) => model.vision.encode(v.batch)));
          checkSummary(concatFloat32(outs.map((o) => o.embeds)), c.vision_embeds!, 1e-5);
          expect(outs.reduce((n, o) => n + o.embeds.length, 0)).toBe(tiles * golden.reference.tokens_per_tile * model.config.text.hiddenSize);
        }
        const prompt = await model.encodeVisuals(prepared);
        note(`${checkpoint} ${name}`, await checkLogitRecords(model, prompt, c.logit_ids, c.logits), Math.max(...c.logits.map((l) => l.max_abs)));
        // Greedy decoding with the KV cache; prefill in chunks of 7 so a tile's rows straddle chunks.
        note(`${checkpoint} ${name}`, await checkGreedyDecoding(model, prompt, c.greedy, c.logit_ids), c.greedy.full_forward_last.max_abs);
      }, 120_000);
    }

    if (checkpoint === "internvl-tiny") {
      it("reversing the frames changes the output (the frames' order reaches the model)", async () => {
        const c = golden.cases["video-8"];
        const forward = await model.prepare(toMessages(c));
        const messages = toMessages(c);
        const part = messages[0].content[0] as Extract<ContentPart, { type: "video" }>;
        part.video = [...(part.video as string[])].reverse();
        const reversed = await model.prepare(messages);
        expect(reversed.inputIds).toEqual(forward.inputIds);
        const a = await fullForward(model, await model.encodeVisuals(forward), [forward.inputIds.length - 1]);
        const b = await fullForward(model, await model.encodeVisuals(reversed), [reversed.inputIds.length - 1]);
        expect(maxAbsDiff(a, b)).toBeGreaterThan(1e-2);
      });

      it("decoder stages of one layer each give the single graph's logits (mixed case)", async () => {
        const c = golden.cases.mixed;
        const staged = await VideoModel.load(await materializeTinyCheckpoint(fixture), { cacheDir: CACHE, threads: 1, decoderLayersPerStage: 1 });
        expect(staged.decoder.stageCount).toBe(3);
        const positions = c.logits.map((l) => l.position);
        const a = await fullForward(staged, await staged.encodeVisuals(await staged.prepare(toMessages(c))), positions);
        const b = await fullForward(model, await model.encodeVisuals(await model.prepare(toMessages(c))), positions);
        expect(maxAbsDiff(a, b)).toBeLessThan(1e-5);
        await staged.dispose();
      });

      it("generate() gives the greedy tokens and their text (mixed case)", async () => {
        const c = golden.cases.mixed;
        const r = await model.generate({ messages: toMessages(c), temperature: 0, maxNewTokens: c.greedy.new_tokens.length });
        expect(r.tokens).toEqual(c.greedy.new_tokens);
        expect(r.text).toBe(model.tokenizer.decode(c.greedy.new_tokens, { skipSpecialTokens: true }));
      });

      it("int8: logits close to fp32 on the mixed case", async () => {
        const c = golden.cases.mixed;
        const q = await VideoModel.load(await materializeTinyCheckpoint(fixture), { cacheDir: CACHE, threads: 1, dtype: "int8" });
        const last = [c.input_ids.length - 1];
        const ref = await fullForward(model, await model.encodeVisuals(await model.prepare(toMessages(c))), last);
        const ours = await fullForward(q, await q.encodeVisuals(await q.prepare(toMessages(c))), last);
        let dot = 0, na = 0, nb = 0;
        for (let i = 0; i < ref.length; i++) {
          dot += ref[i] * ours[i];
          na += ref[i] * ref[i];
          nb += ours[i] * ours[i];
        }
        expect(dot / Math.sqrt(na * nb)).toBeGreaterThan(0.99);
        await q.dispose();
      }, 120_000);
    }
  });
}

describe("InternVL measured deltas", () => {
  it("reports the largest logit deltas", () => {
    for (const [k, v] of Object.entries(worst)) console.log(`${k}: max |Δlogit| ${v.delta.toExponential(2)} at max |logit| ${v.maxAbs.toFixed(2)}`);
    expect(Object.keys(worst).length).toBeGreaterThan(0);
  });
});

/** InternVL3.5-2B's shapes (the bench preset internvl3_5-2b) with 2 layers in each tower. */
const PUBLISHED_2B = {
  ...INTERNVL3_5_2B,
  text_config: { ...(INTERNVL3_5_2B.text_config as object), num_hidden_layers: 2 },
  vision_config: { ...(INTERNVL3_5_2B.vision_config as object), num_hidden_layers: 2 },
};

describe("InternVL published widths: InternVL3.5-2B-shaped (2 + 2 layers)", () => {
  it("bench shape internvl3_5-2b: 2.0 B weights; its tokenizer.json has the InternVL tokens at the config's ids", () => {
    const def = BENCH_SHAPES["internvl3_5-2b"];
    const weights = def.weightSpec(def.config, 2024).tensors.reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0);
    expect(weights / 1e9).toBeCloseTo(2.03, 1);
    const files = def.companions();
    for (const c of Object.values(files)) if ("copyFrom" in c) expect(fs.existsSync(c.copyFrom)).toBe(true);
    const tok = (files["tokenizer.json"] as { json: { added_tokens: { id: number; content: string }[] } }).json;
    const id = (content: string) => tok.added_tokens.find((t) => t.content === content)?.id;
    expect([id("<img>"), id("</img>"), id("<IMG_CONTEXT>")]).toEqual([151669, 151670, 151671]);
  });

  it("converts through the family's names and runs a 448-px tile (256 tokens) and a prompt with them", async () => {
    const cfg = parseInternVLConfig(PUBLISHED_2B);
    expect(cfg.text).toMatchObject({ llm: "qwen3", qkNorm: true, attentionBias: false, headDim: 128, numKvHeads: 8, tieWordEmbeddings: true });
    // The weights (0.7 GB of bf16, deterministic) are kept across runs next to the tiny checkpoints, keyed by their
    // spec; the graphs are built in this run's cache with the code under test.
    const spec = internVLWeightSpec(PUBLISHED_2B, 35);
    const key = createHash("sha256").update(JSON.stringify([PUBLISHED_2B, spec])).digest("hex").slice(0, 12);
    const dir = path.join(repoRoot(), ".cache", "tiny", `internvl3_5-2b-shape-${key}`);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(PUBLISHED_2B));
    const weightsFile = path.join(dir, "model.safetensors");
    if (!fs.existsSync(weightsFile)) {
      await writeSafetensors(spec, `${weightsFile}.tmp-${process.pid}`);
      fs.renameSync(`${weightsFile}.tmp-${process.pid}`, weightsFile);
    }
    const out = path.join(testCacheDir(), "internvl3_5-2b-shape");
    fs.mkdirSync(out, { recursive: true });
    const ckpt = openCheckpoint(dir);
    const canonical = new Map<string, TensorInfo>();
    for (const [n, info] of ckpt.tensors) canonical.set(sanitizeInternVLTensorName(n), info);
    const weights = new WeightMap(canonical, dir);
    const graph = (name: string, build: (l: Layers) => void) => {
      const file = path.join(out, `${name}.onnx`);
      const g = new GraphBuilder(name, `${file}.data`);
      build(new Layers(g, "fp32"));
      fs.writeFileSync(file, g.toBytes());
      return file;
    };
    const visionFile = graph("vision", (l) => buildInternVLVision(l, weights, cfg.vision));
    const decoderFile = graph("decoder", (l) => buildInternVLDecoder(l, weights, cfg));
    weights.assertAllUsed();

    const vision = new VisionEncoder(await createSession(visionFile, { threads: 1 }));
    const P = 32;
    const pixels = Float32Array.from({ length: P * P * 3 * 14 * 14 }, (_, i) => Math.sin(i * 0.37));
    const { embeds } = await vision.encode({ pixelValues: pixels, grid: [1, P, P], positionIds: new Int32Array(2 * P * P) });
    expect(embeds.length).toBe(256 * 2048);
    expect(embeds.every(Number.isFinite)).toBe(true);

    const decoder = new Decoder(await createSession(decoderFile, { threads: 1 }), cfg, allKvLayers(cfg.text));
    expect(decoder.positionAxes).toBe(1);
    const ids = [151644, 872, 198, cfg.visionStartTokenId, ...new Array<number>(256).fill(cfg.imageTokenId), 151670, 198, 3838, 151645];
    const S = ids.length;
    const state = decoder.createState(S + 1);
    const visualPositions = ids.flatMap((id, i) => (id === cfg.imageTokenId ? [i] : []));
    const logits = await decoder.forward({ inputIds: ids, positionIds: ids.map((_, i) => i), visualEmbeds: embeds, visualPositions, logitsIndices: [S - 1] }, state);
    expect(logits.length).toBe(151936);
    expect(logits.every(Number.isFinite)).toBe(true);
    const step = await decoder.forward({ inputIds: [42], positionIds: [S], logitsIndices: [0] }, state);
    expect(step.length).toBe(151936);
    expect(step.every(Number.isFinite)).toBe(true);
    await vision.release();
    await decoder.release();
  }, 240_000);
});

describe("InternVL config parsing", () => {
  const read = (name: string) => JSON.parse(fs.readFileSync(path.join(FIXTURES, name, "config.json"), "utf8")) as Record<string, unknown>;
  const hf = read("internvl-tiny");
  const original = read("internvl-tiny-original");
  const withText = (raw: Record<string, unknown>, key: string, patch: Record<string, unknown>) => ({ ...raw, [key]: { ...(raw[key] as object), ...patch } });

  it("reads both layouts into the same model", () => {
    const a = parseInternVLConfig(hf);
    const b = parseInternVLConfig(original);
    expect(a.format).toBe("hf");
    expect(b.format).toBe("original");
    expect(b.text).toEqual(a.text);
    expect({ ...b.vision }).toEqual({ ...a.vision });
    expect(b.imageTokenId).toBe(a.imageTokenId); // the original config has no image_token_id: Qwen3's <IMG_CONTEXT>
    expect(b.processor).toMatchObject({ imageSize: 56, patchSize: 14, downsampleRatio: 0.5, imageTokenId: 151671, maxDynamicPatch: 12, useThumbnail: true });
  });

  it("derives <IMG_CONTEXT> from the LLM when the original config does not say (Qwen2: 151667, <img> 151665)", () => {
    const qwen2 = parseInternVLConfig(withText(original, "llm_config", { architectures: ["Qwen2ForCausalLM"], model_type: "qwen2", head_dim: undefined }));
    expect(qwen2.text).toMatchObject({ llm: "qwen2", attentionBias: true, qkNorm: false });
    expect([qwen2.imageTokenId, qwen2.visionStartTokenId]).toEqual([151667, 151665]);
  });

  it("honours vision_feature_layer / select_layer (hidden_states[k]: layers before k run)", () => {
    expect(parseInternVLConfig({ ...hf, vision_feature_layer: -2 }).vision.featureLayers).toBe(1);
    expect(parseInternVLConfig({ ...original, select_layer: -1 }).vision.featureLayers).toBe(2);
    expect(() => parseInternVLConfig({ ...hf, vision_feature_layer: 5 })).toThrow(/vision_feature_layer must be in \[-3, 2\]/);
  });

  it("reads Qwen3-MoE text configs (InternVL3.5-30B-A3B)", () => {
    const moe = parseInternVLConfig(withText(hf, "text_config", { model_type: "qwen3_moe", num_experts: 8, num_experts_per_tok: 2, moe_intermediate_size: 32, norm_topk_prob: true, mlp_only_layers: [1] }));
    expect(moe.moe).toEqual({ numExperts: 8, numExpertsPerTok: 2, moeIntermediateSize: 32, decoderSparseStep: 1, mlpOnlyLayers: [1], normTopkProb: true });
  });

  it.each([
    ["ps_version v1", { ...original, ps_version: "v1" }, /ps_version must be "v2"/],
    ["GPT-OSS", withText(hf, "text_config", { model_type: "gpt_oss" }), /text_config\.model_type "gpt_oss".*not supported/],
    ["an InternLM2 LLM", withText(original, "llm_config", { architectures: ["InternLM2ForCausalLM"], model_type: undefined }), /llm_config\.model_type "internlm2" is not supported/],
    ["downsample_ratio 0.25", { ...hf, downsample_ratio: 0.25 }, /downsample_ratio must be 0\.5/],
    ["a resized position table", { ...original, force_image_size: 112 }, /force_image_size must equal vision_config\.image_size 56/],
    ["the CLS token kept", { ...hf, vision_feature_select_strategy: "full" }, /vision_feature_select_strategy must be "default"/],
    ["YaRN", withText(hf, "text_config", { rope_scaling: { rope_type: "yarn", factor: 4 } }), /text_config\.rope_scaling\.rope_type must be "default" or "dynamic"/],
    ["an odd patch grid", withText(hf, "vision_config", { image_size: 42 }), /vision_config\.image_size \/ patch_size 14 must be an even number of patches/],
    ["LoRA", { ...original, use_llm_lora: 16 }, /use_llm_lora must be 0/],
    ["no llm_config", { ...original, llm_config: undefined }, /llm_config is missing/],
  ])("refuses %s, naming the key", (_, raw, message) => {
    expect(() => parseInternVLConfig(raw as Record<string, unknown>)).toThrow(message);
  });
});

/**
 * Qwen3-MoE decoders (InternVL3.5-30B-A3B) through the family: internvl-tiny with layer 0's MLP as a sparse block of
 * two experts that both hold the dense MLP's weights (weight-spec `source` slices), top-2 renormalised — whatever the
 * router says, the block equals the dense MLP, so the logits must equal the dense checkpoint's (and the reference's).
 * This checks the per-expert tensor names, the router, top-k and the renormalisation wiring; the routing itself was
 * checked against transformers 4.57.6 Qwen3MoeSparseMoeBlock on a random tiny model (max |Δlogit| 1.7e-5).
 */
describe("InternVL with a Qwen3-MoE decoder", () => {
  it("two identical experts, top-2 renormalised, give the dense model's logits", async () => {
    const fixture = path.join(FIXTURES, "internvl-tiny");
    const denseDir = await materializeTinyCheckpoint(fixture);
    const spec = JSON.parse(fs.readFileSync(path.join(fixture, "weights.json"), "utf8")) as WeightSpec;
    const mlp = "model.language_model.layers.0.mlp";
    const tensors = spec.tensors.filter((t) => !t.name.startsWith(`${mlp}.`));
    for (const t of spec.tensors.filter((t) => t.name.startsWith(`${mlp}.`))) {
      for (const j of [0, 1]) tensors.push({ ...t, name: t.name.replace(`${mlp}.`, `${mlp}.experts.${j}.`), source: { name: t.name, start: 0 } });
    }
    tensors.push({ name: `${mlp}.gate.weight`, shape: [2, 64], offset: 0, scale: 0.5 });
    const dir = path.join(testCacheDir(), "internvl-tiny-moe");
    fs.mkdirSync(dir, { recursive: true });
    for (const f of fs.readdirSync(denseDir)) if (f.endsWith(".json") && f !== "config.json") fs.copyFileSync(path.join(denseDir, f), path.join(dir, f));
    const config = JSON.parse(fs.readFileSync(path.join(denseDir, "config.json"), "utf8")) as { text_config: Record<string, unknown> };
    config.text_config = { ...config.text_config, model_type: "qwen3_moe", architectures: ["Qwen3MoeForCausalLM"], num_experts: 2, num_experts_per_tok: 2, moe_intermediate_size: 128, norm_topk_prob: true, decoder_sparse_step: 1, mlp_only_layers: [1, 2] };
    fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(config));
    await writeSafetensors({ ...spec, tensors: tensors.sort((a, b) => (a.name < b.name ? -1 : 1)) }, path.join(dir, "model.safetensors"));

    const moe = await VideoModel.load(dir, { cacheDir: testCacheDir(), threads: 1 });
    const dense = await VideoModel.load(denseDir, { cacheDir: testCacheDir(), threads: 1 });
    const c = (JSON.parse(fs.readFileSync(path.join(fixture, "golden.json"), "utf8")) as Golden).cases.image;
    const positions = c.logits.map((l) => l.position);
    const a = await fullForward(moe, await moe.encodeVisuals(await moe.prepare(toMessages(c))), positions);
    const b = await fullForward(dense, await dense.encodeVisuals(await dense.prepare(toMessages(c))), positions);
    expect(maxAbsDiff(a, b)).toBeLessThan(1e-4);
    expect(await checkLogitRecords(moe, await moe.encodeVisuals(await moe.prepare(toMessages(c))), c.logit_ids, c.logits)).toBeLessThan(1e-3);
    await moe.dispose();
    await dense.dispose();
  }, 120_000);
});
