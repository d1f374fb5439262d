/**
 * Work per stage for a Qwen2-VL-architecture model, to put measured times next to physical bounds:
 * floating-point operations of vision encoding and prefill (matmuls and attention, 1 multiply-add = 2 FLOPs),
 * and the bytes a decode step must read (decoder weights at their stored precision, plus the KV cache).
 * Norms, activations and rotary embeddings are left out: they are < 1% of either count at 2B scale.
 * Shapes follow transformers 4.57.6 modeling_qwen2_vl.py (Qwen2VisionTransformerPretrainedModel, Qwen2Model).
 */
import type { Qwen2VLConfig } from "../families/qwen2-vl/config.js";
import { isFloatPrecision, type WeightPrecision } from "../onnx/layers.js";

/** Bytes per weight as stored by Layers.linear: MatMulNBits blocks of 32 carry a float32 scale and a uint8 zero point. */
export function bytesPerWeight(precision: WeightPrecision): number {
  switch (precision) {
    case "fp32":
      return 4;
    case "fp16": // stored as float16, but folded to float32 in memory when onnxruntime loads the graph
      return 4;
    case "int8":
      return 1 + 4 / 32 + 1 / 32;
    case "int4":
      return 0.5 + 4 / 32 + 0.5 / 32;
  }
}

/** FLOPs of the vision tower for one video grid [t, h, w] (patches attend within their temporal step). */
export function visionFlops(config: Qwen2VLConfig, grid: readonly [number, number, number]): number {
  const v = config.vision;
  const E = v.embedDim;
  const M = E * v.mlpRatio;
  const N = grid[0] * grid[1] * grid[2];
  const perStep = grid[1] * grid[2];
  const patchIn = v.inChannels * v.temporalPatchSize * v.patchSize * v.patchSize;
  const merge = v.spatialMergeSize ** 2;
  const patchEmbed = 2 * N * patchIn * E;
  const block = 2 * N * (E * 3 * E + E * E + 2 * E * M) + 4 * N * perStep * E;
  const merger = 2 * (N / merge) * (merge * E) * (merge * E) + 2 * (N / merge) * (merge * E) * v.outHiddenSize;
  return patchEmbed + v.depth * block + merger;
}

/** Decoder matmul weights per layer (q, k, v, o, gate, up, down). */
function layerWeights(config: Qwen2VLConfig): number {
  const t = config.text;
  const H = t.hiddenSize;
  const kv = t.numKvHeads * t.headDim;
  return H * (t.numHeads * t.headDim) * 2 + 2 * H * kv + 3 * H * t.intermediateSize;
}

/** FLOPs of prefilling `tokens` positions from an empty cache (causal attention), logits at one position. */
export function prefillFlops(config: Qwen2VLConfig, tokens: number): number {
  const t = config.text;
  const attention = 2 * tokens * tokens * t.numHeads * t.headDim; // QKᵀ and AV over the causal half
  return t.numLayers * (2 * tokens * layerWeights(config) + attention) + 2 * t.vocabSize * t.hiddenSize;
}

/** Bytes one decode step reads at context length `context`: decoder weights, output head, KV cache (float32). */
export function decodeBytesPerToken(config: Qwen2VLConfig, precision: WeightPrecision, context: number): number {
  const t = config.text;
  // The output head is int8 under int8/int4 (families/qwen2-vl/text.ts, "lm_head").
  const head = t.vocabSize * t.hiddenSize * bytesPerWeight(isFloatPrecision(precision) ? precision : "int8");
  const kv = t.numLayers * 2 * t.numKvHeads * t.headDim * context * 4;
  return t.numLayers * layerWeights(config) * bytesPerWeight(precision) + head + kv;
}
