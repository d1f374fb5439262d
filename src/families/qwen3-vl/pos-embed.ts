/**
 * Qwen3-VL learned position embeddings: the bilinear taps that resize the square `pos_embed` table to one patch grid.
 * Index bookkeeping only (once per grid, in TypeScript); the weighted gather-sum runs in the vision graph.
 *
 * Reference: transformers 4.57.6 models/qwen3_vl/modeling_qwen3_vl.py `Qwen3VLVisionModel.fast_pos_embed_interpolate`:
 *   h_idxs = torch.linspace(0, n−1, h) (float32), floor = h_idxs.int(), ceil = (floor+1).clip(max=n−1), dh = h_idxs − floor
 *   (the same along w); taps floor·n+floor, floor·n+ceil, ceil·n+floor, ceil·n+ceil with weights (1−dh)(1−dw),
 *   (1−dh)dw, dh(1−dw), dh·dw, all float32; rows enumerated (row, col) row-major, repeated for every temporal slice
 *   and permuted to the merge-block order of `pixel_values` (t, h/m, w/m, m, m).
 * Facts doc §2.10.
 */

/**
 * torch.linspace(start, end, steps) in float32 on CPU (aten RangeFactoriesKernel `linspace_kernel`, scalar path):
 * step = (end − start)/(steps − 1) in float32; index i < steps/2 → start + step·i, else end − step·(steps − 1 − i).
 * The kernel's vectorized path (used only when a whole SIMD vector fits below steps/2, i.e. steps ≥ 16 or 32 by CPU)
 * computes (start + step·i0) + step·j instead, which can differ in the last bit; taps stay within the same bilinear
 * cell, so the effect on the embeddings is at float32 rounding level.
 */
export function linspaceF32(start: number, end: number, steps: number): Float32Array {
  const out = new Float32Array(steps);
  if (steps === 1) {
    out[0] = start;
    return out;
  }
  const f = Math.fround;
  const step = f(f(f(end) - f(start)) / (steps - 1));
  const halfway = Math.floor(steps / 2);
  for (let i = 0; i < steps; i++) out[i] = i < halfway ? f(start + f(step * i)) : f(end - f(step * (steps - i - 1)));
  return out;
}

/** The 4 taps per patch: indices [4][N] into the table and float32 weights [4][N], in `pixel_values` patch order. */
export interface PosEmbedTaps {
  indices: Int32Array; // [4, t·h·w]
  weights: Float32Array; // [4, t·h·w]
}

export function posEmbedTaps(grid: readonly [number, number, number], numPositionEmbeddings: number, mergeSize: number): PosEmbedTaps {
  const [t, h, w] = grid;
  const n = Math.round(Math.sqrt(numPositionEmbeddings));
  const f = Math.fround;
  const axis = (size: number) => {
    const pos = linspaceF32(0, n - 1, size);
    const lo = Array.from(pos, (v) => Math.trunc(v)); // .int() truncates
    const hi = lo.map((v) => Math.min(v + 1, n - 1));
    const d = Array.from(pos, (v, i) => f(v - lo[i]));
    return { lo, hi, d };
  };
  const H = axis(h);
  const W = axis(w);
  const N = t * h * w;
  const indices = new Int32Array(4 * N);
  const weights = new Float32Array(4 * N);
  let p = 0;
  // Patch order of pixel_values: (t, block row, block col, row in block, col in block).
  for (let k = 0; k < t; k++) {
    for (let br = 0; br < h / mergeSize; br++) {
      for (let bc = 0; bc < w / mergeSize; bc++) {
        for (let ir = 0; ir < mergeSize; ir++) {
          for (let ic = 0; ic < mergeSize; ic++) {
            const r = br * mergeSize + ir;
            const c = bc * mergeSize + ic;
            const dh = H.d[r];
            const dw = W.d[c];
            const taps = [H.lo[r] * n + W.lo[c], H.lo[r] * n + W.hi[c], H.hi[r] * n + W.lo[c], H.hi[r] * n + W.hi[c]];
            const ws = [f(f(1 - dh) * f(1 - dw)), f(f(1 - dh) * dw), f(dh * f(1 - dw)), f(dh * dw)];
            for (let q = 0; q < 4; q++) {
              indices[q * N + p] = taps[q];
              weights[q * N + p] = ws[q];
            }
            p++;
          }
        }
      }
    }
  }
  return { indices, weights };
}
