/**
 * The bench's model shapes and its work model: every shape's config parses with its family's parser and its weight
 * spec has the published sizes, the Qwen tokenizer the random-weight checkpoints ship is found from the installed
 * package, and the FLOP / byte counts match the closed forms worked out by hand for Qwen2-VL-2B.
 */
import * as fs from "node:fs";
import { describe, expect, it } from "vitest";
import { decodeBytesPerToken, prefillFlops, visionFlops } from "../src/bench/cost.js";
import { BENCH_SHAPE_NAMES, BENCH_SHAPES, benchShape, qwenTokenizerJson, type BenchShape } from "../src/bench/presets.js";
import { qwen3_5DecoderState } from "../src/families/qwen3-5/family.js";
import type { Qwen3_5FamilyConfig } from "../src/families/qwen3-5/family.js";
import { parseQwen2VLConfig } from "../src/families/qwen2-vl/config.js";
import type { Qwen3VLConfig } from "../src/families/qwen3-vl/config.js";
import { parseQwen3_5MoeConfig } from "../src/families/qwen3-5/moe-config.js";
import { familyForModelType, supportedModelTypes } from "../src/families/registry.js";
import { elementCount } from "../src/testing/tiny-checkpoint.js";

/** name → shape of the shape's weight spec. */
function specShapes(shape: BenchShape): Map<string, number[]> {
  const def = benchShape(shape);
  return new Map(def.weightSpec(def.config, 2024).tensors.map((t) => [t.name, t.shape]));
}
const params = (shapes: Map<string, number[]>, keep: (name: string) => boolean) => [...shapes].filter(([n]) => keep(n)).reduce((a, [, s]) => a + elementCount(s), 0);

describe("bench presets and work model", () => {
  it("finds the Qwen tokenizer in the installed package", () => {
    const file = qwenTokenizerJson();
    expect(fs.existsSync(file)).toBe(true);
    expect(JSON.parse(fs.readFileSync(file, "utf8")).added_tokens.some((t: { content: string }) => t.content === "<|video_pad|>")).toBe(true);
  });

  it("counts Qwen2-VL-2B's work: 5,923 GFLOP of vision for 4×32×32 patches, 2,844 GFLOP of prefill for 1,049 tokens", () => {
    const config = parseQwen2VLConfig(BENCH_SHAPES["qwen2-vl-2b"].config);
    // 32 blocks × (24·N·E² + 4·N·L·E) + patch embedding 2·N·1176·E + merger 2·(N/4)·(4E)² + 2·(N/4)·4E·1536
    const N = 4096, E = 1280, L = 1024;
    const vision = 32 * (24 * N * E * E + 4 * N * L * E) + 2 * N * 1176 * E + 2 * (N / 4) * (4 * E) ** 2 + 2 * (N / 4) * 4 * E * 1536;
    expect(visionFlops(config, [4, 32, 32])).toBe(vision);
    // per layer: q, o 1536² each; k, v 1536·256 each; gate, up, down 1536·8960 each
    const layer = 2 * 1536 * 1536 + 2 * 1536 * 256 + 3 * 1536 * 8960;
    const S = 1049;
    expect(prefillFlops(config, S)).toBe(28 * (2 * S * layer + 2 * S * S * 1536) + 2 * 151936 * 1536);
    // int4: 0.640625 bytes per weight; int8 head 1.15625 bytes per weight; fp32 KV cache
    expect(decodeBytesPerToken(config, "int4", 1000)).toBeCloseTo(28 * layer * 0.640625 + 151936 * 1536 * 1.15625 + 28 * 2 * 2 * 128 * 1000 * 4, 0);
    expect(decodeBytesPerToken(config, "fp32", 0)).toBe(28 * layer * 4 + 151936 * 1536 * 4);
  });

  it.each(BENCH_SHAPE_NAMES.filter((s) => supportedModelTypes().includes(String(BENCH_SHAPES[s].config.model_type))))("%s: the config parses with its family's parser", (shape) => {
    const config = BENCH_SHAPES[shape].config;
    expect(() => familyForModelType(config.model_type, "config.json").parseConfig(config)).not.toThrow();
  });

  it("qwen3-vl-2b: Qwen3-VL-2B-Instruct's sizes (28 attention layers, 8 KV heads of 128, 2.1 B parameters)", () => {
    const config = familyForModelType("qwen3_vl", "config.json").parseConfig(BENCH_SHAPES["qwen3-vl-2b"].config) as Qwen3VLConfig;
    expect(config.text).toMatchObject({ hiddenSize: 2048, intermediateSize: 6144, numLayers: 28, numHeads: 16, numKvHeads: 8, headDim: 128, vocabSize: 151936, tieWordEmbeddings: true });
    const shapes = specShapes("qwen3-vl-2b");
    expect(shapes.get("model.language_model.embed_tokens.weight")).toEqual([151936, 2048]);
    expect(shapes.get("model.language_model.layers.27.self_attn.k_proj.weight")).toEqual([1024, 2048]);
    expect(shapes.has("lm_head.weight")).toBe(false); // tied
    expect(shapes.get("model.visual.blocks.23.mlp.linear_fc1.weight")).toEqual([4096, 1024]);
    expect(shapes.has("model.visual.deepstack_merger_list.2.linear_fc2.weight")).toBe(true);
    const total = params(shapes, () => true);
    expect(total).toBeGreaterThan(2.0e9);
    expect(total).toBeLessThan(2.2e9);
  });

  it("qwen3_5-2b: Qwen3.5-2B's sizes (18 Gated DeltaNet + 6 gated-attention layers, hidden 2048, vocab 248,320)", () => {
    const config = familyForModelType("qwen3_5", "config.json").parseConfig(BENCH_SHAPES["qwen3_5-2b"].config) as Qwen3_5FamilyConfig;
    expect(config.text).toMatchObject({ hiddenSize: 2048, intermediateSize: 6144, numLayers: 24, numHeads: 8, numKvHeads: 2, headDim: 256, vocabSize: 248320, tieWordEmbeddings: true, rotaryDim: 64 });
    expect(config.text.linear).toEqual({ convKernel: 4, numKeyHeads: 16, keyHeadDim: 128, numValueHeads: 16, valueHeadDim: 128 });
    expect(config.text.layerTypes.filter((t) => t === "full_attention")).toHaveLength(6);
    expect(config.text.layerTypes[3]).toBe("full_attention");
    // the state: 6 KV layers, 18 linear layers of conv [1, 6144, 4] + recurrent [1, 16, 128, 128] float32
    const state = qwen3_5DecoderState(config);
    expect(state.filter((s) => s.kind === "kv")).toHaveLength(6);
    expect(state[0]).toEqual({ kind: "recurrent", shapes: { conv_state: [1, 6144, 4], recurrent_state: [1, 16, 128, 128] } });
    const shapes = specShapes("qwen3_5-2b");
    expect(shapes.get("model.language_model.embed_tokens.weight")).toEqual([248320, 2048]);
    expect(shapes.get("model.language_model.layers.0.linear_attn.in_proj_qkv.weight")).toEqual([6144, 2048]);
    expect(shapes.get("model.language_model.layers.3.self_attn.q_proj.weight")).toEqual([4096, 2048]); // query + gate
    expect(shapes.has("lm_head.weight")).toBe(false); // tied
    // the language model (embedding + 24 layers): ~1.9 B of the "2B"
    const text = params(shapes, (n) => n.startsWith("model.language_model."));
    expect(text).toBeGreaterThan(1.8e9);
    expect(text).toBeLessThan(2.0e9);
  });

  it("qwen3_5-35b-a3b-4l: Qwen3.5-35B-A3B's widths with 4 layers (3 linear, 1 full), 256 experts of 512, top-8, a shared expert", () => {
    const config = parseQwen3_5MoeConfig(BENCH_SHAPES["qwen3_5-35b-a3b-4l"].config);
    expect(config.text).toMatchObject({ hiddenSize: 2048, numLayers: 4, numHeads: 16, numKvHeads: 2, headDim: 256, vocabSize: 248320, tieWordEmbeddings: false });
    expect(config.text.linear).toEqual({ convKernel: 4, numKeyHeads: 16, keyHeadDim: 128, numValueHeads: 32, valueHeadDim: 128 });
    expect(config.text.layerTypes).toEqual(["linear_attention", "linear_attention", "linear_attention", "full_attention"]);
    expect(config.moe).toEqual({ numExperts: 256, numExpertsPerTok: 8, moeIntermediateSize: 512, sharedExpertIntermediateSize: 512 });
    const shapes = specShapes("qwen3_5-35b-a3b-4l");
    expect(shapes.get("model.language_model.layers.0.mlp.experts.gate_up_proj")).toEqual([256, 1024, 2048]);
    expect(shapes.get("model.language_model.layers.3.mlp.experts.down_proj")).toEqual([256, 2048, 512]);
    expect(shapes.get("model.language_model.layers.3.mlp.shared_expert.gate_proj.weight")).toEqual([512, 2048]);
    expect(shapes.get("model.language_model.layers.0.linear_attn.in_proj_qkv.weight")).toEqual([8192, 2048]);
    expect(shapes.get("lm_head.weight")).toEqual([248320, 2048]);
    // one layer's experts: 256 × 3 × 512 × 2048 = 805 M weights, of which top-8 read 25 M per token
    const experts = params(shapes, (n) => n.startsWith("model.language_model.layers.0.mlp.experts."));
    expect(experts).toBe(256 * 3 * 512 * 2048);
  });
});
