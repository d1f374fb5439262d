/**
 * Qwen3-VL-MoE (model_type `qwen3_vl_moe`: Qwen3-VL-30B-A3B, 235B-A22B, Instruct and Thinking), written as a
 * difference from Qwen3-VL (../qwen3-vl/): the same vision tower with DeepStack, processor (4.57.6 prompt layout),
 * attention and interleaved M-RoPE; the decoder's feed-forward block is a sparse mixture of experts
 * (src/onnx/moe.ts: softmax router, top-k renormalised, no shared expert) on the sparse layers (config.ts
 * `isSparseLayer`), dense SwiGLU on the others. Expert tensors: fused [E, h, 2·Im] / [E, Im, h] as the hub ships them,
 * or per-expert `experts.{j}.*_proj.weight` (../moe-experts.ts).
 * Reference: transformers 4.57.6 models/qwen3_vl_moe/modeling_qwen3_vl_moe.py.
 */
import { allKvLayers } from "../../engine/decoder-state.js";
import { sparseMoe } from "../../onnx/moe.js";
import type { ModelFamily } from "../family.js";
import { qwen3VLEventPrompt } from "../event-prompts.js";
import { expertWeights } from "../moe-experts.js";
import { buildQwen2VLDecoder, swigluMlp } from "../qwen2-vl/text.js";
import { sanitizeQwen3VLTensorName } from "../qwen3-vl/family.js";
import { Qwen3VLProcessor } from "../qwen3-vl/processor.js";
import { interleavedMrope } from "../qwen3-vl/text.js";
import { buildQwen3VLVision } from "../qwen3-vl/vision.js";
import { qwen3VLMoeDecoderCost } from "./cost.js";
import { isSparseLayer, parseQwen3VLMoeConfig, type Qwen3VLMoeConfig } from "./config.js";

export const qwen3VLMoe: ModelFamily<Qwen3VLMoeConfig> = {
  name: "Qwen3-VL-MoE",
  modelTypes: ["qwen3_vl_moe"],
  parseConfig: parseQwen3VLMoeConfig,
  sanitizeTensorName: sanitizeQwen3VLTensorName,
  buildVision: (layers, weights, cfg) => buildQwen3VLVision(layers, weights, cfg.vision),
  buildDecoder: (layers, weights, cfg, stage) => {
    const t = cfg.text;
    const { numExperts: E, numExpertsPerTok: k, moeIntermediateSize: Im } = cfg.moe;
    buildQwen2VLDecoder(
      layers,
      weights,
      t,
      interleavedMrope(t.headDim / 2),
      {
        qkNorm: true,
        attentionBias: t.attentionBias,
        deepstackLayers: cfg.vision.deepstackVisualIndexes.length,
        mlp: (l, w, x, prefix, i) =>
          isSparseLayer(cfg.moe, i)
            ? sparseMoe(l, x, "mlp", { hidden: t.hiddenSize, numExperts: E, topK: k, intermediate: Im, normTopkProb: true, act: t.hiddenAct }, {
                router: w.take(`${prefix}.gate.weight`, [E, t.hiddenSize]),
                ...expertWeights(w, prefix, { numExperts: E, hidden: t.hiddenSize, intermediate: Im }, "in-out"),
              })
            : swigluMlp(l, w, x, prefix, t.hiddenSize, t.intermediateSize, t.hiddenAct),
      },
      stage,
    );
  },
  // One If per expert in each sparse layer (src/onnx/moe.ts): Qwen3-VL-30B-A3B's 48 × 128 are split into stages.
  decoderLayerSubgraphs: (cfg) => Array.from({ length: cfg.text.numLayers }, (_, i) => (isSparseLayer(cfg.moe, i) ? cfg.moe.numExperts : 0)),
  decoderState: (cfg) => allKvLayers(cfg.text),
  decoderCost: qwen3VLMoeDecoderCost,
  eventPrompt: qwen3VLEventPrompt,
  createProcessor: (dir, cfg) => new Qwen3VLProcessor(dir, cfg),
};
