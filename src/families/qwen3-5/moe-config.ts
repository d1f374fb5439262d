/**
 * Qwen3.5-MoE / Qwen3.6 config.json (model_type `qwen3_5_moe`) → the dense Qwen3.5 config plus the MoE keys.
 * Reference: docs/qwen3_5-reference.md §1 (transformers 5.18.0 models/qwen3_5_moe/configuration_qwen3_5_moe.py,
 * Qwen3_5MoeTextConfig): no `intermediate_size`; `num_experts` (256), `num_experts_per_tok` (8),
 * `moe_intermediate_size` (512), `shared_expert_intermediate_size` (512); every layer is MoE and the top-k weights
 * are always renormalised (`norm_topk_prob`, `decoder_sparse_step`, `mlp_only_layers` do not exist in this family).
 * Everything else (layer types, Gated DeltaNet shapes, rotary, vision) is the dense family's, parsed by config.ts.
 */
import { ConfigReader, LIMITS } from "../../checkpoint/config-values.js";
import { VideolmError } from "../../errors.js";
import { parseQwen3_5Config, type Qwen3_5Config } from "./config.js";

export interface Qwen3_5MoeBlockConfig {
  /** E */
  numExperts: number;
  /** k */
  numExpertsPerTok: number;
  /** Im: each routed expert's intermediate width */
  moeIntermediateSize: number;
  /** Is: the shared expert's intermediate width */
  sharedExpertIntermediateSize: number;
}

export interface Qwen3_5MoeConfig extends Qwen3_5Config {
  moe: Qwen3_5MoeBlockConfig;
}

type Json = Record<string, unknown>;

/** Reads the MoE keys of `text_config` (bounds-checked) . */
export function parseQwen3_5MoeBlock(raw: Json): Qwen3_5MoeBlockConfig {
  const text = new ConfigReader(raw).object("text_config");
  if (!text) throw new VideolmError("config.json: text_config is missing (a qwen3_5_moe config nests the language model's keys under text_config)");
  const numExperts = text.int("num_experts", { min: 1, max: 4096 });
  return {
    numExperts,
    numExpertsPerTok: text.int("num_experts_per_tok", { min: 1, max: numExperts }),
    moeIntermediateSize: text.int("moe_intermediate_size", LIMITS.intermediateSize),
    sharedExpertIntermediateSize: text.int("shared_expert_intermediate_size", LIMITS.intermediateSize),
  };
}

/**
 * The whole config: the dense parser reads every shared key (it requires `intermediate_size` and model_type
 * `qwen3_5`, so it is given a view with model_type `qwen3_5` and intermediate_size = moe_intermediate_size, a width no
 * dense MLP is built with); then the MoE keys.
 */
export function parseQwen3_5MoeConfig(raw: Json): Qwen3_5MoeConfig {
  const modelType = new ConfigReader(raw).str("model_type", "qwen3_5_moe", ["qwen3_5_moe"]);
  const moe = parseQwen3_5MoeBlock(raw);
  return { ...parseQwen3_5Config(denseView(raw, moe)), modelType, moe };
}

/** raw with model_type `qwen3_5` and text_config.intermediate_size = moe_intermediate_size (see above). */
export function denseView(raw: Json, moe: Qwen3_5MoeBlockConfig): Json {
  const text = raw.text_config as Json;
  return { ...raw, model_type: "qwen3_5", text_config: { ...text, intermediate_size: moe.moeIntermediateSize } };
}
