/**
 * Qwen3.5-MoE / Qwen3.6 (model_type `qwen3_5_moe`) = Qwen3.5 (family.ts) with every decoder MLP replaced by the
 * sparse MoE block (moe-mlp.ts over src/onnx/moe.ts; moe-config.ts for the MoE keys). Decoder state, tensor names,
 * vision tower and processor are the dense family's.
 * Reference: docs/qwen3_5-reference.md §1, §2, §10 (transformers 5.18.0 models/qwen3_5_moe/).
 */
import type { ModelFamily } from "../family.js";
import { qwen3VLEventPrompt } from "../event-prompts.js";
import { Qwen3VLProcessor } from "../qwen3-vl/processor.js";
import { buildQwen3VLVision } from "../qwen3-vl/vision.js";
import { qwen3_5MoeDecoderCost } from "./cost.js";
import { parseQwen3_5FamilyConfig, qwen3_5DecoderState, type Qwen3_5FamilyConfig, sanitizeQwen3_5TensorName } from "./family.js";
import { denseView, parseQwen3_5MoeBlock, type Qwen3_5MoeBlockConfig } from "./moe-config.js";
import { qwen3_5MoeMlp } from "./moe-mlp.js";
import { buildQwen3_5EngineDecoder } from "./text.js";

export interface Qwen3_5MoeFamilyConfig extends Qwen3_5FamilyConfig {
  moe: Qwen3_5MoeBlockConfig;
}

/** The dense family's config (text + vision) read through moe-config.ts's view, plus the MoE keys. */
export function parseQwen3_5MoeFamilyConfig(raw: Record<string, unknown>): Qwen3_5MoeFamilyConfig {
  const moe = parseQwen3_5MoeBlock(raw);
  const modelType = typeof raw.model_type === "string" ? raw.model_type : "qwen3_5_moe";
  return { ...parseQwen3_5FamilyConfig(denseView(raw, moe)), modelType, moe };
}

export const qwen3_5Moe: ModelFamily<Qwen3_5MoeFamilyConfig> = {
  name: "Qwen3.5-MoE",
  modelTypes: ["qwen3_5_moe"],
  parseConfig: parseQwen3_5MoeFamilyConfig,
  sanitizeTensorName: sanitizeQwen3_5TensorName,
  buildVision: (layers, weights, cfg) => buildQwen3VLVision(layers, weights, cfg.vision),
  buildDecoder: (layers, weights, cfg, stage) => buildQwen3_5EngineDecoder(layers, weights, cfg.text, { mlp: qwen3_5MoeMlp(cfg.moe, cfg.text.hiddenSize, cfg.text.hiddenAct) }, stage),
  // One If per expert in every layer (src/onnx/moe.ts): Qwen3.5-35B-A3B's 40 × 256 are split into stages.
  decoderLayerSubgraphs: (cfg) => Array.from({ length: cfg.text.numLayers }, () => cfg.moe.numExperts),
  decoderState: qwen3_5DecoderState,
  decoderCost: qwen3_5MoeDecoderCost,
  eventPrompt: qwen3VLEventPrompt,
  createProcessor: (dir, cfg) => new Qwen3VLProcessor(dir, cfg, "5.x"),
};
