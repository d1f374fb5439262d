/**
 * Qwen2-VL (model_type `qwen2_vl`). Reference: transformers 4.57.6 models/qwen2_vl/.
 */
import { allKvLayers } from "../../engine/decoder-state.js";
import type { ModelFamily } from "../family.js";
import { timesAsTextEventPrompt } from "../event-prompts.js";
import { parseQwen2VLConfig, type Qwen2VLConfig } from "./config.js";
import { Qwen2VLProcessor } from "./processor.js";
import { buildQwen2VLDecoder } from "./text.js";
import { buildQwen2VLVision } from "./vision.js";

/**
 * Hub checkpoints name tensors `model.layers.*`, `visual.*`, `lm_head.*`; transformers ≥ 4.52 can also
 * write `model.language_model.*` and `model.visual.*` (its `_checkpoint_conversion_mapping`). Both
 * map to the hub names here.
 */
export function sanitizeQwenVLTensorName(name: string): string {
  if (name.startsWith("model.language_model.")) return "model." + name.slice("model.language_model.".length);
  if (name.startsWith("model.visual.")) return name.slice("model.".length);
  return name;
}

export const qwen2VL: ModelFamily<Qwen2VLConfig> = {
  name: "Qwen2-VL",
  modelTypes: ["qwen2_vl"],
  parseConfig: parseQwen2VLConfig,
  sanitizeTensorName: sanitizeQwenVLTensorName,
  buildVision: (layers, weights, cfg) => buildQwen2VLVision(layers, weights, cfg.vision),
  buildDecoder: (layers, weights, cfg, stage) => buildQwen2VLDecoder(layers, weights, cfg.text, undefined, undefined, stage),
  decoderState: (cfg) => allKvLayers(cfg.text),
  eventPrompt: timesAsTextEventPrompt,
  createProcessor: (dir, cfg) => new Qwen2VLProcessor(dir, cfg),
};
