/**
 * Attention parts shared by the Qwen ViTs (Qwen2-VL, and as written-as-differences Qwen2.5-VL and Qwen3-VL).
 * Reference: transformers 4.57.6 models/qwen2_vl/modeling_qwen2_vl.py — VisionRotaryEmbedding,
 * Qwen2VisionTransformerPretrainedModel.rot_pos_emb, apply_rotary_pos_emb_vision, VisionAttention.
 */
import type { GraphBuilder } from "../../onnx/graph.js";

/**
 * 2-D rotary tables: inv_freq over dim = hd/2 (theta 10000); each patch gets [row·inv_freq, col·inv_freq]
 * ([N, hd/2]), duplicated to [N, hd]; returned as cos/sin [N, 1, hd] to broadcast over heads.
 */
export function visionRotary(g: GraphBuilder, posIds: string, headDim: number): { cos: string; sin: string } {
  return g.scope("rotary", () => {
    const dim = headDim / 2;
    const invFreq = Float32Array.from({ length: dim / 2 }, (_, i) => 1 / 10000 ** ((2 * i) / dim));
    const pos = g.op("Unsqueeze", [g.op("Cast", [posIds], { to: 1 }), g.ints([2])]); // [N, 2, 1]
    const freqs = g.op("Reshape", [g.op("Mul", [pos, g.constant("float32", [invFreq.length], invFreq)]), g.ints([0, dim])]); // [N, hd/2]
    const emb = g.op("Unsqueeze", [g.op("Concat", [freqs, freqs], { axis: -1 }), g.ints([1])]); // [N, 1, hd]
    return { cos: g.op("Cos", [emb]), sin: g.op("Sin", [emb]) };
  });
}

/**
 * The shape [t, -1, heads, hd] that lays the patches of one grid out per temporal slice. Attention in the reference
 * is restricted to one temporal slice (cu_seqlens = h·w per t); every slice of one grid has the same size, so it is
 * a batched attention over t slices.
 */
export function frameLayoutShape(g: GraphBuilder, grid: string, heads: number, headDim: number): string {
  return g.op("Concat", [g.op("Slice", [grid, g.ints([0]), g.ints([1])]), g.ints([-1, heads, headDim])], { axis: 0 });
}

/** Fused qkv rows [N, 3E] → q, k, v as [N, heads, hd] each (the reference's reshape(N, 3, heads, hd)). */
export function splitQkv(g: GraphBuilder, qkv: string, embedDim: number, heads: number, headDim: number): [string, string, string] {
  const parts = g.opN("Split", [qkv, g.ints([embedDim, embedDim, embedDim])], { axis: -1 }, 3).map((t) => g.op("Reshape", [t, g.ints([0, heads, headDim])]));
  return [parts[0], parts[1], parts[2]];
}

/** softmax(q·kᵀ/√hd (+ additive mask))·v over [B, heads, S, hd] batches. */
export function scaledDotAttention(g: GraphBuilder, q: string, k: string, v: string, headDim: number, mask?: string): string {
  let scores = g.op("Mul", [g.op("MatMul", [q, g.op("Transpose", [k], { perm: [0, 1, 3, 2] })]), g.scalar(1 / Math.sqrt(headDim))]);
  if (mask) scores = g.op("Add", [scores, mask]);
  return g.op("MatMul", [g.op("Softmax", [scores], { axis: -1 }), v]);
}

/** Attention within each temporal slice: q, k, v [N, heads, hd] (rotary applied) → context rows [N, E]. */
export function attendWithinFrames(g: GraphBuilder, q: string, k: string, v: string, frameShape: string, embedDim: number, headDim: number): string {
  const perFrame = (t: string) => g.op("Transpose", [g.op("Reshape", [t, frameShape])], { perm: [0, 2, 1, 3] }); // [t, heads, hw, hd]
  const ctx = scaledDotAttention(g, perFrame(q), perFrame(k), perFrame(v), headDim); // [t, heads, hw, hd]
  return g.op("Reshape", [g.op("Transpose", [ctx], { perm: [0, 2, 1, 3] }), g.ints([-1, embedDim])]); // [N, E]
}
