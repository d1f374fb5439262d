/**
 * Bytes of a decoder state by layer kind, from the family's `decoderState` specs alone: the one rule that both the
 * engine's `DecoderState` (what it allocates and uses) and the cost estimate (bench/estimate.ts, what the plan says)
 * read, so the two cannot drift. No onnxruntime here (the plan is made without loading it).
 *
 *   "kv"        2 (K and V) · kv_heads · positions · head_dim · 4 bytes (float32): per position
 *   "recurrent" Σ over its tensors of their element count · 4 bytes: constant in the sequence length
 */
import type { LayerStateSpec } from "./decoder-state.js";

export interface StateBytes {
  /** KV layers at `positions` positions. */
  kv: number;
  /** Recurrent layers (conv + recurrent state of linear-attention layers), independent of `positions`. */
  recurrent: number;
  /** kv + recurrent. */
  total: number;
  /** Layers of each kind. */
  kvLayers: number;
  recurrentLayers: number;
}

const count = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);

/** Bytes of a state with these layers holding `positions` positions, split by kind. */
export function stateBytesByKind(specs: readonly LayerStateSpec[], positions: number): StateBytes {
  let kv = 0;
  let recurrent = 0;
  let kvLayers = 0;
  let recurrentLayers = 0;
  for (const spec of specs) {
    if (spec.kind === "kv") {
      kv += 2 * spec.numKvHeads * positions * spec.headDim * 4;
      kvLayers++;
    } else {
      for (const dims of Object.values(spec.shapes)) recurrent += count(dims) * 4;
      recurrentLayers++;
    }
  }
  return { kv, recurrent, total: kv + recurrent, kvLayers, recurrentLayers };
}

/** Bytes of a state with these layers holding `positions` positions. */
export function stateBytes(specs: readonly LayerStateSpec[], positions: number): number {
  return stateBytesByKind(specs, positions).total;
}
