/**
 * Work per stage, to put measured times next to physical bounds and to estimate a request before running it:
 * floating-point operations of vision encoding and prefill (matmuls and attention, 1 multiply-add = 2 FLOPs),
 * and the bytes a decode step must read (decoder weights at their stored precision, plus the decoder state).
 * Norms, activations and rotary embeddings are left out: they are < 1% of either count at 2B scale.
 * Vision shapes follow transformers 4.57.6 modeling_qwen2_vl.py (Qwen2VisionTransformerPretrainedModel).
 *
 * The decoder is described per layer (`DecoderCostModel`): what each layer's matrices hold (`DecoderLayerCost`,
 * from the family's `decoderCost(config)`, else the Qwen2-VL formula below) and the state it keeps (the family's
 * `decoderState(config)`, the specs the engine allocates from). So attention FLOPs (quadratic in tokens) and the
 * per-position KV cache are counted for attention layers only, and linear-attention layers (Gated DeltaNet) add
 * FLOPs linear in tokens and a state constant in the context length (engine/state-bytes.ts, shared with the engine).
 */
import type { LayerStateSpec } from "../engine/decoder-state.js";
import { stateBytes } from "../engine/state-bytes.js";
import { VideolmError } from "../errors.js";
import type { Qwen2VLConfig, Qwen2VLTextConfig } from "../families/qwen2-vl/config.js";
import { isFloatPrecision, type WeightPrecision } from "../onnx/layers.js";

/** A decoder layer's token mixer, as the cost model counts it. */
export type MixerCost =
  /** Softmax attention over every past position (a KV cache per position): causal prefill 2·T²·heads·headDim FLOPs. */
  | { kind: "attention"; numHeads: number; headDim: number }
  /**
   * A mixer with a state constant in length (linear attention, SSM): `flopsPerToken` beyond its projections (e.g. the
   * chunk-parallel delta rule and the short conv), linear in tokens; `scratchFloatsPerToken`: the float32 values per
   * token of a prefill chunk it holds while it runs (its intermediates), for the memory estimate.
   */
  | { kind: "linear"; flopsPerToken: number; scratchFloatsPerToken: number };

/** One decoder layer's matrices and mixer (a family's `decoderCost`, ModelFamily in families/family.ts). */
export interface DecoderLayerCost {
  /** Weights of the layer's matrix products (mixer projections + MLP): what it stores. */
  params: number;
  /**
   * Of those, the weights one token is multiplied by, when fewer (MoE: router + shared expert + the top-k experts):
   * prefill FLOPs and decode bytes count these. Default: `params`.
   */
  activeParams?: number;
  mixer: MixerCost;
}

/** The decoder as the cost model sees it: per layer, its matrices and mixer, and the state it keeps. */
export interface DecoderCostModel {
  layers: readonly DecoderLayerCost[];
  /** The family's `decoderState(config)`: what DecoderState allocates. */
  state: readonly LayerStateSpec[];
}

/** The parts of a family (ModelFamily) the cost model reads; structural, so this file does not import the registry. */
export interface CostFamily<C = never> {
  decoderState(config: C): LayerStateSpec[];
  decoderCost?(config: C): DecoderLayerCost[];
}

/** Qwen2-VL's decoder layer: q, k, v, o and the gate/up/down MLP, softmax attention. */
export function qwen2VLLayerCost(t: Pick<Qwen2VLTextConfig, "hiddenSize" | "numHeads" | "numKvHeads" | "headDim" | "intermediateSize">): DecoderLayerCost {
  return { params: layerWeights(t), mixer: { kind: "attention", numHeads: t.numHeads, headDim: t.headDim } };
}

/**
 * The decoder's cost model: the family's per-layer description when it has one (`decoderCost`), else every layer
 * Qwen2-VL's (the Qwen-VL line), with the family's decoder state (else a KV cache in every layer).
 */
export function decoderCostModel<C extends { text: Qwen2VLTextConfig }>(config: C, family?: CostFamily<C>): DecoderCostModel {
  const t = config.text;
  const state = family ? family.decoderState(config) : Array.from({ length: t.numLayers }, (): LayerStateSpec => ({ kind: "kv", numKvHeads: t.numKvHeads, headDim: t.headDim }));
  const layers = family?.decoderCost ? family.decoderCost(config) : state.map(() => qwen2VLLayerCost(t));
  if (layers.length !== state.length) throw new VideolmError(`the decoder cost describes ${layers.length} layers but the decoder state has ${state.length}`);
  return { layers, state };
}

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

/** Decoder matmul weights per layer (q, k, v, o, gate, up, down) of a Qwen2-VL layer. */
function layerWeights(t: Pick<Qwen2VLTextConfig, "hiddenSize" | "numHeads" | "numKvHeads" | "headDim" | "intermediateSize">): number {
  const H = t.hiddenSize;
  const kv = t.numKvHeads * t.headDim;
  return H * (t.numHeads * t.headDim) * 2 + 2 * H * kv + 3 * H * t.intermediateSize;
}

const active = (layer: DecoderLayerCost) => layer.activeParams ?? layer.params;

/**
 * FLOPs of prefilling `tokens` positions from an empty state, logits at one position: per layer the matmuls of its
 * active weights, plus causal attention (QKᵀ and AV over the causal half) for attention layers or the mixer's
 * per-token FLOPs for linear ones.
 */
export function prefillFlops(config: Qwen2VLConfig, tokens: number, decoder: DecoderCostModel = decoderCostModel(config)): number {
  const t = config.text;
  let flops = 0;
  for (const layer of decoder.layers) {
    const m = layer.mixer;
    const mixer = m.kind === "attention" ? 2 * tokens * tokens * m.numHeads * m.headDim : tokens * m.flopsPerToken;
    flops += 2 * tokens * active(layer) + mixer;
  }
  return flops + 2 * t.vocabSize * t.hiddenSize;
}

/**
 * Bytes one decode step reads at context length `context`: the decoder's active weights, the output head, and the
 * decoder state (float32; KV layers at `context` positions, recurrent layers in full).
 */
export function decodeBytesPerToken(config: Qwen2VLConfig, precision: WeightPrecision, context: number, decoder: DecoderCostModel = decoderCostModel(config)): number {
  const t = config.text;
  // The output head is int8 under int8/int4 (families/qwen2-vl/text.ts, "lm_head").
  const head = t.vocabSize * t.hiddenSize * bytesPerWeight(isFloatPrecision(precision) ? precision : "int8");
  let weights = 0;
  for (const layer of decoder.layers) weights += active(layer);
  return weights * bytesPerWeight(precision) + head + stateBytes(decoder.state, context);
}
