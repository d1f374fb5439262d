/**
 * Qwen3.5's decoder for the cost estimate (bench/cost.ts `DecoderLayerCost`, the family's `decoderCost`): per layer
 * the weights of its matrix products and its mixer, from the config alone.
 * Shapes: docs/qwen3_5-reference.md §2 (weights), §4-§5 (Gated DeltaNet and the chunked delta rule), §6 (attention).
 *
 *   every layer         MLP gate/up [I, h], down [h, I]                                         3·h·I
 *   linear_attention    in_proj_qkv [conv_dim, h], in_proj_z [value_dim, h], in_proj_a/b [Hv, h],
 *                       out_proj [h, value_dim]  (conv1d is depthwise: counted in the mixer's FLOPs)
 *                       mixer: the chunk-parallel delta rule (onnx/gated-delta.ts, chunks of C = 64) per value head
 *   full_attention      q_proj [2·nh·hd, h] (query and output gate), k/v_proj [nkv·hd, h], o_proj [h, nh·hd]
 *                       mixer: softmax attention, nh heads of hd
 *
 * MoE (qwen3_5_moe, §10) replaces the MLP term (`qwen3_5MoeDecoderCost`): `params` with the router, every expert and
 * the shared expert, `activeParams` with the router, the top-k experts and the shared expert one token goes through.
 */
import type { DecoderLayerCost } from "../../bench/cost.js";
import type { Qwen3_5Config } from "./config.js";
import type { Qwen3_5MoeBlockConfig } from "./moe-config.js";

/** A layer's MLP in the cost model: the weights it stores and those one token is multiplied by. */
export interface MlpCost {
  params: number;
  activeParams: number;
}

/** The dense SwiGLU MLP: gate/up [I, h], down [h, I]. */
export function denseMlpCost(h: number, intermediateSize: number): MlpCost {
  const params = 3 * h * intermediateSize;
  return { params, activeParams: params };
}

/**
 * The sparse MoE block (docs/qwen3_5-reference.md §2, §10): router gate [E, h], experts gate_up [E, 2·Im, h] and down
 * [E, h, Im], shared expert gate/up [Is, h] and down [h, Is], shared_expert_gate [1, h]; a token goes through the
 * router, k experts and the shared expert.
 */
export function moeMlpCost(h: number, moe: Qwen3_5MoeBlockConfig): MlpCost {
  const expert = 3 * h * moe.moeIntermediateSize;
  const always = moe.numExperts * h + 3 * h * moe.sharedExpertIntermediateSize + h; // router, shared expert, its gate
  return { params: always + moe.numExperts * expert, activeParams: always + moe.numExpertsPerTok * expert };
}

/** Tokens per chunk of the chunk-parallel delta rule (onnx/gated-delta.ts `gatedDeltaChunked`, its default C). */
export const GATED_DELTA_CHUNK = 64;

/**
 * FLOPs per token and per value head of the chunk-parallel gated delta rule (onnx/gated-delta.ts), with chunks of C
 * tokens, key size dk and value size dv (q and k repeated to the value heads). Matrix products per chunk:
 *   (βK)Kᵀ and QKᵀ            2 · C·C·dk
 *   (I + L)⁻¹ by block inversion   Σ over block sizes s = 1, 2, …, C/2 of C·s²  (C/2s pairs × 2 products of s³)
 *   (I + L)⁻¹ [βV | βK·e^Γ]       C·C·(dv + dk)
 *   scan: W·S, Q·S, P·V', Kᵀ·V'   3 · C·dk·dv + C·C·dv
 * = C²(3dk + 2dv) + C·Σs² + 3·C·dk·dv multiply-adds, per token ÷ C, × 2 FLOPs.
 */
export function gatedDeltaFlopsPerTokenHead(dk: number, dv: number, C = GATED_DELTA_CHUNK): number {
  let inverse = 0;
  for (let s = 1; s < C; s *= 2) inverse += s * s;
  return 2 * (C * (3 * dk + 2 * dv) + inverse + 3 * dk * dv);
}

/** Per layer of a Qwen3.5 decoder; `mlp`: every layer's MLP (default: the dense one of `intermediate_size`). */
export function qwen3_5DecoderCost(cfg: Qwen3_5Config, mlp: MlpCost = denseMlpCost(cfg.text.hiddenSize, cfg.text.intermediateSize)): DecoderLayerCost[] {
  const t = cfg.text;
  const h = t.hiddenSize;
  const { convKernel: K, numKeyHeads: Hk, keyHeadDim: dk, numValueHeads: Hv, valueHeadDim: dv } = t.linear;
  const keyDim = Hk * dk;
  const valueDim = Hv * dv;
  const convDim = 2 * keyDim + valueDim;
  const C = GATED_DELTA_CHUNK;

  const linear: DecoderLayerCost = {
    ...withMlp(convDim * h + valueDim * h + 2 * Hv * h + h * valueDim, mlp),
    mixer: {
      kind: "linear",
      // the delta rule per value head + the depthwise causal conv (K taps per channel)
      flopsPerToken: Hv * gatedDeltaFlopsPerTokenHead(dk, dv, C) + 2 * convDim * K,
      // per value head: the [C, C] pairwise decay, UT system, intra-chunk scores and inverse (+ its blocks), the
      // padded/decayed q, k, v copies and the solve's output; plus the projections' outputs (conv in and out, z, o)
      scratchFloatsPerToken: Hv * (5 * C + 6 * dk + 4 * dv) + 2 * convDim + 2 * valueDim,
    },
  };
  const nh = t.numHeads;
  const hd = t.headDim;
  const attention: DecoderLayerCost = {
    ...withMlp(2 * nh * hd * h + 2 * t.numKvHeads * hd * h + h * nh * hd, mlp),
    mixer: { kind: "attention", numHeads: nh, headDim: hd },
  };
  return t.layerTypes.map((type) => (type === "linear_attention" ? linear : attention));
}

/** The mixer's projections plus the MLP; `activeParams` only when a token uses fewer weights than the layer stores. */
function withMlp(mixerParams: number, mlp: MlpCost): Pick<DecoderLayerCost, "params" | "activeParams"> {
  const params = mixerParams + mlp.params;
  const active = mixerParams + mlp.activeParams;
  return active === params ? { params } : { params, activeParams: active };
}

/**
 * Qwen3.5-MoE (moe-family.ts): the dense layers with every MLP the sparse MoE block. For the family object:
 * `decoderCost: qwen3_5MoeDecoderCost`.
 */
export function qwen3_5MoeDecoderCost(cfg: Qwen3_5Config & { moe: Qwen3_5MoeBlockConfig }): DecoderLayerCost[] {
  return qwen3_5DecoderCost(cfg, moeMlpCost(cfg.text.hiddenSize, cfg.moe));
}
