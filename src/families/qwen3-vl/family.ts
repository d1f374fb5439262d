/**
 * Qwen3-VL (model_type `qwen3_vl`, Instruct and Thinking checkpoints), written as differences from Qwen2-VL:
 * config.ts (nested config, DeepStack, learned position table), vision.ts (patch bias, bilinear position embeddings,
 * DeepStack mergers), text.ts (QK-norm, interleaved M-RoPE, DeepStack injection), processor.ts / prompt.ts /
 * timestamps.ts (per-frame-pair blocks with `<t seconds>` text, 4.57.6 layout), pos-embed.ts (bilinear taps).
 * Reference: transformers 4.57.6 models/qwen3_vl/.
 */
import { allKvLayers } from "../../engine/decoder-state.js";
import type { ModelFamily } from "../family.js";
import { qwen3VLEventPrompt } from "../event-prompts.js";
import { sanitizeQwenVLTensorName } from "../qwen2-vl/family.js";
import { parseQwen3VLConfig, type Qwen3VLConfig } from "./config.js";
import { Qwen3VLProcessor } from "./processor.js";
import { buildQwen3VLDecoder } from "./text.js";
import { buildQwen3VLVision } from "./vision.js";

/**
 * Hub Qwen3-VL checkpoints name tensors `model.language_model.*`, `model.visual.*`, `lm_head.*`. The decoder builder
 * (shared with Qwen2-VL) claims `model.*`, so the language model prefix is mapped as for Qwen2-VL; the vision
 * builder here claims the hub's `model.visual.*` names as they are (`visual.*` from older writers map back to them).
 */
export function sanitizeQwen3VLTensorName(name: string): string {
  if (name.startsWith("visual.")) return "model." + name;
  if (name.startsWith("model.visual.")) return name;
  return sanitizeQwenVLTensorName(name);
}

export const qwen3VL: ModelFamily<Qwen3VLConfig> = {
  name: "Qwen3-VL",
  modelTypes: ["qwen3_vl"],
  parseConfig: parseQwen3VLConfig,
  sanitizeTensorName: sanitizeQwen3VLTensorName,
  buildVision: (layers, weights, cfg) => buildQwen3VLVision(layers, weights, cfg.vision),
  buildDecoder: (layers, weights, cfg, stage) => buildQwen3VLDecoder(layers, weights, cfg, stage),
  decoderState: (cfg) => allKvLayers(cfg.text),
  eventPrompt: qwen3VLEventPrompt,
  createProcessor: (dir, cfg) => new Qwen3VLProcessor(dir, cfg),
};
