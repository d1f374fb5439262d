/**
 * InternVL (model_type `internvl`: InternVL3.5 / InternVL3 `-HF` checkpoints; `internvl_chat`: the original
 * InternVLChatModel layout of the same models): InternViT on 448-px tiles (or frames), CLS dropped, 2×2 pixel shuffle
 * and an MLP projector, rows scattered over `<IMG_CONTEXT>` placeholders of a Qwen2 / Qwen3 / Qwen3-MoE decoder with
 * 1-D RoPE. Files: config.ts (both config layouts), names.ts (both tensor layouts → one), vision.ts, text.ts;
 * processor.ts / tiling.ts / sampling.ts / prompt.ts (tiles, frames, `<img>…</img>` blocks, 1-D positions).
 * Reference: transformers 4.57.6 models/internvl/ (modeling_internvl.py, configuration_internvl.py,
 * processing_internvl.py), convert_internvl_weights_to_hf.py; facts doc §4.
 */
import { qwen2VLLayerCost, type DecoderLayerCost } from "../../bench/cost.js";
import { allKvLayers } from "../../engine/decoder-state.js";
import type { ModelFamily } from "../family.js";
import { timesAsTextEventPrompt } from "../event-prompts.js";
import { parseInternVLConfig, type InternVLConfig } from "./config.js";
import { sanitizeInternVLTensorName } from "./names.js";
import { conversationTemplate } from "./conversation.js";
import { buildFlashOutputs } from "./flash.js";
import { InternVLFlashProcessor } from "./flash-processor.js";
import { InternVLProcessor } from "./processor.js";
import { buildInternVLDecoder, isSparseLayer } from "./text.js";
import { buildInternVLVision } from "./vision.js";

/** Per decoder layer what the cost estimate counts: Qwen3-MoE sparse layers hold E experts, a token uses k. */
function internVLDecoderCost(cfg: InternVLConfig): DecoderLayerCost[] {
  const t = cfg.text;
  const dense = qwen2VLLayerCost(t);
  const moe = cfg.moe;
  if (!moe) return Array.from({ length: t.numLayers }, () => dense);
  const attention = dense.params - 3 * t.hiddenSize * t.intermediateSize;
  const router = moe.numExperts * t.hiddenSize;
  const expert = 3 * t.hiddenSize * moe.moeIntermediateSize;
  return Array.from({ length: t.numLayers }, (_, i): DecoderLayerCost =>
    isSparseLayer(moe, i) ? { params: attention + router + moe.numExperts * expert, activeParams: attention + router + moe.numExpertsPerTok * expert, mixer: dense.mixer } : dense,
  );
}

export const internVL: ModelFamily<InternVLConfig> = {
  name: "InternVL",
  modelTypes: ["internvl", "internvl_chat"],
  parseConfig: parseInternVLConfig,
  sanitizeTensorName: sanitizeInternVLTensorName,
  // Flash checkpoints add the router's outputs (mlp2 rows and the gate) computed from the tower's features (flash.ts).
  buildVision: (layers, weights, cfg) =>
    buildInternVLVision(layers, weights, cfg.vision, cfg.flash ? (patches) => buildFlashOutputs(layers, weights, patches, cfg.vision.embedDim, cfg.vision.imageSize / cfg.vision.patchSize, cfg.text.hiddenSize) : undefined),
  buildDecoder: (layers, weights, cfg, stage) => buildInternVLDecoder(layers, weights, cfg, stage),
  // Qwen3-MoE: one If per expert in each sparse layer (src/onnx/moe.ts), so InternVL3.5-30B-A3B's 48 × 128 are staged.
  decoderLayerSubgraphs: (cfg) => Array.from({ length: cfg.text.numLayers }, (_, i) => (cfg.moe && isSparseLayer(cfg.moe, i) ? cfg.moe.numExperts : 0)),
  decoderState: (cfg) => allKvLayers(cfg.text),
  decoderCost: internVLDecoderCost,
  defaultChatTemplate: (cfg) => conversationTemplate(cfg.conversationTemplate),
  eventPrompt: timesAsTextEventPrompt,
  createProcessor: (dir, cfg) => (cfg.flash ? new InternVLFlashProcessor(dir, cfg.processor, cfg.flash, cfg.text.hiddenSize) : new InternVLProcessor(dir, cfg.processor)),
};
