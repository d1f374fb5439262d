/**
 * Qwen3-VL-MoE config.json (model_type `qwen3_vl_moe`, Qwen3-VL-30B-A3B / 235B-A22B) → typed config: Qwen3-VL's
 * (../qwen3-vl/config.ts) plus the mixture-of-experts fields of the text config.
 * Reference: transformers 4.57.6 models/qwen3_vl_moe/configuration_qwen3_vl_moe.py (Qwen3VLMoeTextConfig defaults:
 * intermediate_size 5632, moe_intermediate_size 1408, num_experts 60, num_experts_per_tok 4, decoder_sparse_step 1,
 * mlp_only_layers []), modeling_qwen3_vl_moe.py Qwen3VLMoeTextDecoderLayer (which layers are sparse, :327-330) and
 * Qwen3VLMoeTextSparseMoeBlock (top-k weights always renormalised: `norm_topk_prob` is not read, :138-147).
 */
import { ConfigReader, LIMITS } from "../../checkpoint/config-values.js";
import { VideolmError } from "../../errors.js";
import { parseQwen3VLConfig, type Qwen3VLConfig } from "../qwen3-vl/config.js";

export interface Qwen3VLMoeTextMoe {
  numExperts: number;
  numExpertsPerTok: number;
  moeIntermediateSize: number;
  decoderSparseStep: number;
  mlpOnlyLayers: number[];
}

export interface Qwen3VLMoeConfig extends Qwen3VLConfig {
  moe: Qwen3VLMoeTextMoe;
}

type Json = Record<string, unknown>;

export function parseQwen3VLMoeConfig(raw: Json): Qwen3VLMoeConfig {
  const top = new ConfigReader(raw);
  const textObj = top.object("text_config")?.obj ?? {};
  // intermediate_size is the dense layers' width (mlp_only_layers or off the sparse step); the config class defaults it.
  const base = parseQwen3VLConfig({ ...raw, text_config: { intermediate_size: 5632, ...textObj } });
  const text = new ConfigReader({ ...raw, ...textObj });
  const numExperts = text.int("num_experts", { min: 1, max: 4096 }, 60);
  const moe: Qwen3VLMoeTextMoe = {
    numExperts,
    numExpertsPerTok: text.int("num_experts_per_tok", { min: 1, max: numExperts }, 4),
    moeIntermediateSize: text.int("moe_intermediate_size", LIMITS.intermediateSize, 1408),
    decoderSparseStep: text.int("decoder_sparse_step", LIMITS.layers, 1),
    mlpOnlyLayers: text.intList("mlp_only_layers", { min: 0, max: base.text.numLayers - 1 }, [], { min: 0, max: base.text.numLayers }),
  };
  if (base.modelType !== "qwen3_vl_moe") throw new VideolmError(`config.json: model_type ${JSON.stringify(base.modelType)} is not qwen3_vl_moe`);
  return { ...base, moe };
}

/** Qwen3VLMoeTextDecoderLayer.__init__: layer i is sparse unless listed in mlp_only_layers or off the sparse step. */
export function isSparseLayer(moe: Qwen3VLMoeTextMoe, layer: number): boolean {
  return !moe.mlpOnlyLayers.includes(layer) && moe.numExperts > 0 && (layer + 1) % moe.decoderSparseStep === 0;
}
