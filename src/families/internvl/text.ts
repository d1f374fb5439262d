/**
 * InternVL's language model: the Qwen2-VL decoder builder (../qwen2-vl/text.ts) with 1-D RoPE (positionAxes 1), as
 * a Qwen2, Qwen3 or Qwen3-MoE decoder. What differs from Qwen2-VL's decoder (transformers 4.57.6):
 *   - positions: plain RoPE, one position per token (models/qwen2/modeling_qwen2.py, models/qwen3/modeling_qwen3.py
 *     *RotaryEmbedding: freqs = position · inv_freq) — `position_ids` [1, 1, S];
 *   - Qwen3 (InternVL3.5): RMSNorm over head_dim on q and k before rotary (Qwen3Attention q_norm / k_norm), no q/k/v
 *     bias (`attention_bias`), head_dim from the config; Qwen2 (InternVL2.5 / 3): q/k/v bias, no QK-norm;
 *   - Qwen3-MoE (InternVL3.5-30B-A3B): models/qwen3_moe/modeling_qwen3_moe.py Qwen3MoeSparseMoeBlock on the sparse
 *     layers (softmax router, top-k, renormalised when `norm_topk_prob`, no shared expert; per-expert tensors
 *     `mlp.experts.{j}.*_proj.weight`), Qwen3MoeMLP (dense SwiGLU) on `mlp_only_layers` / off the sparse step.
 * Visual rows arrive through the same `visual_embeds` / `visual_positions` scatter (InternVLModel.forward's
 * masked_scatter over `<IMG_CONTEXT>`).
 */
import type { WeightMap } from "../../checkpoint/weight-map.js";
import type { Layers } from "../../onnx/layers.js";
import { sparseMoe } from "../../onnx/moe.js";
import type { DecoderStage } from "../family.js";
import { expertWeights } from "../moe-experts.js";
import { buildQwen2VLDecoder, chunkedMrope, swigluMlp, type DecoderVariant } from "../qwen2-vl/text.js";
import type { InternVLConfig, InternVLMoeConfig } from "./config.js";

/** Qwen3MoeDecoderLayer.__init__: layer i is sparse unless listed in mlp_only_layers or off the sparse step. */
export function isSparseLayer(moe: InternVLMoeConfig, layer: number): boolean {
  return !moe.mlpOnlyLayers.includes(layer) && moe.numExperts > 0 && (layer + 1) % moe.decoderSparseStep === 0;
}

export function buildInternVLDecoder(layers: Layers, weights: WeightMap, cfg: InternVLConfig, stage?: DecoderStage): void {
  const t = cfg.text;
  // A tied model's checkpoint may still hold lm_head.weight (a copy the reference ignores: tie_weights replaces it
  // with the embedding table); claimed here so it is not reported unused.
  const last = stage ? stage.last : true;
  if (last && t.tieWordEmbeddings && weights.has("lm_head.weight")) weights.info("lm_head.weight", [t.vocabSize, t.hiddenSize]);
  const moe = cfg.moe;
  const variant: DecoderVariant = {
    qkNorm: t.qkNorm,
    attentionBias: t.attentionBias,
    positionAxes: 1,
    mlp: moe
      ? (l, w, x, prefix, i) =>
          isSparseLayer(moe, i)
            ? sparseMoe(l, x, "mlp", { hidden: t.hiddenSize, numExperts: moe.numExperts, topK: moe.numExpertsPerTok, intermediate: moe.moeIntermediateSize, normTopkProb: moe.normTopkProb, act: t.hiddenAct }, {
                router: w.take(`${prefix}.gate.weight`, [moe.numExperts, t.hiddenSize]),
                ...expertWeights(w, prefix, { numExperts: moe.numExperts, hidden: t.hiddenSize, intermediate: moe.moeIntermediateSize }, "out-in"),
              })
            : swigluMlp(l, w, x, prefix, t.hiddenSize, t.intermediateSize, t.hiddenAct)
      : undefined,
  };
  buildQwen2VLDecoder(layers, weights, t, chunkedMrope, variant, stage);
}
