/**
 * Qwen2.5-VL (model_type `qwen2_5_vl`). Reference: transformers 4.57.6 models/qwen2_5_vl/.
 *
 * Written as differences from Qwen2-VL (src/families/qwen2-vl/):
 *   - config.ts: vision widths renamed (hidden_size = ViT width, out_hidden_size), window / time keys;
 *   - vision.ts + window.ts: RMSNorm, SwiGLU MLP, window attention with full-attention blocks;
 *   - processor.ts: time-aligned temporal rotary ids (second_per_grid_ts × tokens_per_second);
 *   - the decoder (Qwen2 + chunked M-RoPE), tensor names, prompt expansion and media handling are Qwen2-VL's.
 */
import { allKvLayers } from "../../engine/decoder-state.js";
import type { ModelFamily } from "../family.js";
import { qwen2_5VLEventPrompt } from "../event-prompts.js";
import { sanitizeQwenVLTensorName } from "../qwen2-vl/family.js";
import { buildQwen2VLDecoder } from "../qwen2-vl/text.js";
import { parseQwen2_5VLConfig, type Qwen2_5VLConfig } from "./config.js";
import { Qwen2_5VLProcessor } from "./processor.js";
import { buildQwen2_5VLVision } from "./vision.js";

export const qwen2_5VL: ModelFamily<Qwen2_5VLConfig> = {
  name: "Qwen2.5-VL",
  modelTypes: ["qwen2_5_vl"],
  parseConfig: parseQwen2_5VLConfig,
  sanitizeTensorName: sanitizeQwenVLTensorName,
  buildVision: (layers, weights, cfg) => buildQwen2_5VLVision(layers, weights, cfg.vision),
  buildDecoder: (layers, weights, cfg, stage) => buildQwen2VLDecoder(layers, weights, cfg.text, undefined, undefined, stage),
  decoderState: (cfg) => allKvLayers(cfg.text),
  eventPrompt: qwen2_5VLEventPrompt,
  createProcessor: (dir, cfg) => new Qwen2_5VLProcessor(dir, cfg),
};
