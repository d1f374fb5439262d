/**
 * Qwen3-VL text decoder: the Qwen2-VL decoder builder (../qwen2-vl/text.ts) with its Qwen3 variant switched on.
 * What differs from Qwen2-VL (reference: transformers 4.57.6 models/qwen3_vl/modeling_qwen3_vl.py):
 *   - Qwen3VLTextAttention: per-head RMSNorm on q and k (`q_norm`, `k_norm`, weight [head_dim]) before rotary;
 *     no q/k/v bias (`attention_bias` false); head_dim from the config (not hidden/heads);
 *   - Qwen3VLTextRotaryEmbedding.apply_interleaved_mrope: frequency j takes H when j % 3 == 1 and j < 3·section[1],
 *     W when j % 3 == 2 and j < 3·section[2], else T (facts §2.8) — THWTHW…TT instead of TTT…HHH…WWW;
 *   - DeepStack (Qwen3VLTextModel.forward / _deepstack_process): after decoder layer k < L, the k-th vision feature
 *     set is added to the hidden states at the visual token positions.
 */
import type { WeightMap } from "../../checkpoint/weight-map.js";
import type { Layers } from "../../onnx/layers.js";
import type { DecoderStage } from "../family.js";
import { buildQwen2VLDecoder, type MropeAxisOfFrequency } from "../qwen2-vl/text.js";
import type { Qwen3VLConfig } from "./config.js";

/** Interleaved M-RoPE: which axis (0 = T, 1 = H, 2 = W) drives each of the head_dim/2 frequencies. */
export const interleavedMrope =
  (half: number): MropeAxisOfFrequency =>
  (section) =>
    Array.from({ length: half }, (_, j) => (j % 3 === 1 && j < 3 * section[1] ? 1 : j % 3 === 2 && j < 3 * section[2] ? 2 : 0));

export function buildQwen3VLDecoder(layers: Layers, weights: WeightMap, cfg: Qwen3VLConfig, stage?: DecoderStage): void {
  buildQwen2VLDecoder(
    layers,
    weights,
    cfg.text,
    interleavedMrope(cfg.text.headDim / 2),
    {
      qkNorm: true,
      attentionBias: cfg.text.attentionBias,
      deepstackLayers: cfg.vision.deepstackVisualIndexes.length,
    },
    stage,
  );
}
