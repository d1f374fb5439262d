/**
 * Qwen3.5 / Qwen3.6 config.json → typed text-decoder config (model_type `qwen3_5`; the vision tower is Qwen3-VL's
 * without DeepStack and is parsed when the family is wired into the engine).
 * Reference: docs/qwen3_5-reference.md §1 (transformers 5.18.0 models/qwen3_5/configuration_qwen3_5.py:
 * Qwen3_5Config C:154, Qwen3_5TextConfig C:29; rotary: modeling_qwen3_5.py Qwen3_5TextRotaryEmbedding M:142-212).
 *
 * Every value is read through ConfigReader (type- and range-checked, one-line errors naming the key, e.g.
 * `config.json: text_config.linear_num_value_heads must be …`). What Qwen3.5 adds to a Qwen3-VL text config:
 *   - `layer_types`: "linear_attention" (Gated DeltaNet) or "full_attention" per layer; when absent, every
 *     `full_attention_interval`-th layer (default 4) is full attention (C:112);
 *   - `linear_conv_kernel_dim`, `linear_num_key_heads`, `linear_key_head_dim`, `linear_num_value_heads`,
 *     `linear_value_head_dim` (the Gated DeltaNet shapes; value heads a multiple of key heads);
 *   - `rope_parameters` (5.x; `rope_scaling` + top-level `rope_theta` from 4.x-era writers is accepted too) with
 *     `partial_rotary_factor` (default 0.25: only the first int(head_dim · factor) dims of a head rotate) and
 *     `mrope_section` (default [11, 11, 10], sums to rotary_dim / 2). `mrope_interleaved` is read but the layout is
 *     always interleaved, as in the reference (M:203).
 */
import { ConfigReader, LIMITS } from "../../checkpoint/config-values.js";
import { VideolmError } from "../../errors.js";
import { SUPPORTED_ACTIVATIONS } from "../qwen2-vl/config.js";

export const QWEN3_5_LAYER_TYPES = ["linear_attention", "full_attention"] as const;
export type Qwen3_5LayerType = (typeof QWEN3_5_LAYER_TYPES)[number];

/** The Gated DeltaNet (linear attention) shapes. */
export interface Qwen3_5LinearAttentionConfig {
  /** K, the depthwise causal conv width (`linear_conv_kernel_dim`). */
  convKernel: number;
  /** Hk, dk: query/key heads and their size. */
  numKeyHeads: number;
  keyHeadDim: number;
  /** Hv, dv: value heads (a multiple of Hk) and their size. */
  numValueHeads: number;
  valueHeadDim: number;
}

export interface Qwen3_5TextConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  layerTypes: Qwen3_5LayerType[];
  /** Full-attention layers: heads, KV heads, head size. */
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  attentionBias: boolean;
  hiddenAct: string;
  rmsNormEps: number;
  linear: Qwen3_5LinearAttentionConfig;
  ropeTheta: number;
  partialRotaryFactor: number;
  /** int(headDim · partialRotaryFactor): the rotating leading dims of each head (even). */
  rotaryDim: number;
  /** Frequencies per axis (T, H, W), interleaved; sums to rotaryDim / 2. */
  mropeSection: [number, number, number];
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
}

export interface Qwen3_5Config {
  modelType: string;
  text: Qwen3_5TextConfig;
  imageTokenId: number;
  videoTokenId: number;
  visionStartTokenId: number;
  visionEndTokenId: number;
  eosTokenIds: number[];
}

type Json = Record<string, unknown>;

/** C:112: layer i is full attention iff (i + 1) % interval == 0. */
export function defaultLayerTypes(numLayers: number, fullAttentionInterval: number): Qwen3_5LayerType[] {
  return Array.from({ length: numLayers }, (_, i) => ((i + 1) % fullAttentionInterval === 0 ? "full_attention" : "linear_attention"));
}

export function parseQwen3_5Config(raw: Json): Qwen3_5Config {
  const top = new ConfigReader(raw);
  const text = top.object("text_config");
  if (!text) throw new VideolmError("config.json: text_config is missing (a qwen3_5 config nests the language model's keys under text_config)");

  const hiddenSize = text.int("hidden_size", LIMITS.hiddenSize);
  const numLayers = text.int("num_hidden_layers", LIMITS.layers);
  const numHeads = text.int("num_attention_heads", LIMITS.heads);
  const numKvHeads = text.int("num_key_value_heads", { min: 1, max: numHeads });
  if (numHeads % numKvHeads !== 0) throw text.fail("num_key_value_heads", `must divide num_attention_heads ${numHeads}`, numKvHeads);
  const headDim = text.int("head_dim", LIMITS.headDim);

  let layerTypes: Qwen3_5LayerType[];
  const rawTypes = text.obj.layer_types;
  if (rawTypes == null) {
    layerTypes = defaultLayerTypes(numLayers, text.int("full_attention_interval", LIMITS.layers, 4));
  } else {
    if (!Array.isArray(rawTypes) || rawTypes.length !== numLayers || !rawTypes.every((t) => (QWEN3_5_LAYER_TYPES as readonly unknown[]).includes(t))) {
      throw text.fail("layer_types", `must list num_hidden_layers (${numLayers}) entries, each ${QWEN3_5_LAYER_TYPES.join(" or ")}`, rawTypes);
    }
    layerTypes = rawTypes as Qwen3_5LayerType[];
  }

  const numKeyHeads = text.int("linear_num_key_heads", LIMITS.heads);
  const numValueHeads = text.int("linear_num_value_heads", LIMITS.heads);
  if (numValueHeads % numKeyHeads !== 0) throw text.fail("linear_num_value_heads", `must be a multiple of linear_num_key_heads ${numKeyHeads}`, numValueHeads);
  const linear: Qwen3_5LinearAttentionConfig = {
    convKernel: text.int("linear_conv_kernel_dim", { min: 1, max: 64 }),
    numKeyHeads,
    keyHeadDim: text.int("linear_key_head_dim", LIMITS.headDim),
    numValueHeads,
    valueHeadDim: text.int("linear_value_head_dim", LIMITS.headDim),
  };

  // Rotary: 5.x `rope_parameters`; 4.x-era writers: `rope_scaling` with a top-level rope_theta.
  const ropeKey = text.obj.rope_parameters != null ? "rope_parameters" : "rope_scaling";
  const rope = text.object(ropeKey);
  if (!rope) throw text.fail("rope_parameters", "must be an object with rope_theta and mrope_section", text.obj.rope_parameters);
  rope.str("rope_type", "default", ["default"]);
  const thetaRange = { min: 0, max: 1e30, exclusiveMin: true };
  const ropeTheta = rope.obj.rope_theta != null ? rope.num("rope_theta", thetaRange) : text.num("rope_theta", thetaRange, 1e7);
  const partialRotaryFactor =
    rope.obj.partial_rotary_factor != null ? rope.num("partial_rotary_factor", { min: 0, max: 1, exclusiveMin: true }) : text.num("partial_rotary_factor", { min: 0, max: 1, exclusiveMin: true }, 0.25);
  const rotaryDim = Math.floor(headDim * partialRotaryFactor);
  if (rotaryDim < 2 || rotaryDim % 2 !== 0) throw rope.fail("partial_rotary_factor", `× head_dim ${headDim} must give an even rotary size ≥ 2 (rotary_dim ${rotaryDim})`, partialRotaryFactor);
  const section = rope.intList("mrope_section", { min: 0, max: rotaryDim / 2 }, [11, 11, 10], { min: 3, max: 3 });
  if (section[0] + section[1] + section[2] !== rotaryDim / 2) throw rope.fail("mrope_section", `must sum to rotary_dim/2 = ${rotaryDim / 2} (head_dim ${headDim} × partial_rotary_factor ${partialRotaryFactor} / 2)`, section);
  rope.bool("mrope_interleaved", true);

  const vocabSize = text.int("vocab_size", LIMITS.vocabSize);
  const tokenId = { min: 0, max: vocabSize - 1 };
  const tie = top.obj.tie_word_embeddings != null ? top.bool("tie_word_embeddings", false) : text.bool("tie_word_embeddings", false);
  return {
    modelType: top.str("model_type", "qwen3_5", ["qwen3_5"]),
    text: {
      vocabSize,
      hiddenSize,
      intermediateSize: text.int("intermediate_size", LIMITS.intermediateSize),
      numLayers,
      layerTypes,
      numHeads,
      numKvHeads,
      headDim,
      attentionBias: text.bool("attention_bias", false),
      hiddenAct: text.str("hidden_act", "silu", SUPPORTED_ACTIVATIONS),
      rmsNormEps: text.num("rms_norm_eps", { min: 0, max: 1, exclusiveMin: true }, 1e-6),
      linear,
      ropeTheta,
      partialRotaryFactor,
      rotaryDim,
      mropeSection: [section[0], section[1], section[2]],
      maxPositionEmbeddings: text.int("max_position_embeddings", LIMITS.contextLength, 262144),
      tieWordEmbeddings: tie,
    },
    imageTokenId: top.int("image_token_id", tokenId, 248056),
    videoTokenId: top.int("video_token_id", tokenId, 248057),
    visionStartTokenId: top.int("vision_start_token_id", tokenId, 248053),
    visionEndTokenId: top.int("vision_end_token_id", tokenId, 248054),
    eosTokenIds: top.intOrList("eos_token_id", tokenId) ?? text.intOrList("eos_token_id", tokenId) ?? [],
  };
}
