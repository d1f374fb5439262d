/**
 * Qwen2.5-VL window attention layout, computed once per grid in TypeScript (index bookkeeping, not per token).
 *
 * Reference: transformers 4.57.6 models/qwen2_5_vl/modeling_qwen2_5_vl.py —
 * `Qwen2_5_VisionTransformerPretrainedModel.get_window_index` and `.forward`:
 *   - merged tokens (groups of merge² consecutive patch rows) are indexed u = t·h'·w' + row·w' + col;
 *   - each frame is cut into windows of ws × ws merged tokens, ws = window_size // merge // patch (112 → 4);
 *     the grid is padded up to whole windows and the padding dropped, so edge windows are smaller;
 *   - windows are enumerated frame by frame, row-major, tokens within a window row-major: `window_index`;
 *   - the reference permutes the patch rows by window_index, runs attention on `cu_window_seqlens` segments
 *     (windowed blocks) or per frame (full-attention blocks), merges, and restores the order with
 *     argsort(window_index).
 *
 * Every step except attention acts row by row (patch embed, norms, MLP, rotary, and the merger, whose groups the
 * permutation moves whole), and attention within a frame does not depend on the order of its rows. So the engine
 * keeps the natural row order throughout and uses the permutation only to say which rows share a window: the
 * windowed blocks gather rows into a padded [numWindows, windowLen] layout (padding masked as keys), attend per
 * window, and gather the results back. No argsort is needed because nothing was permuted.
 */
import { check } from "../../errors.js";

export interface WindowGeometry {
  patchSize: number;
  spatialMergeSize: number;
  /** Window side in pixels (vision_config.window_size). */
  windowSize: number;
}

export interface WindowPlan {
  numWindows: number;
  /** Slots per window in the padded layout: the largest window's patch count. */
  windowLen: number;
  /** [numWindows · windowLen]: natural patch row read by each slot; padding slots repeat the window's first row. */
  gather: Int32Array;
  /** [t·h·w]: the slot of each natural patch row (each row has exactly one). */
  scatter: Int32Array;
  /** [numWindows]: real patches in each window (slots at or beyond it are padding). */
  lengths: Int32Array;
  /** The reference's `window_index` (merged-token ids in window order), for tests and debugging. */
  windowIndex: Int32Array;
  /** The reference's `cu_window_seqlens` after unique_consecutive, in patches. */
  cuWindowSeqlens: number[];
}

/** Merged tokens per window side: window_size // spatial_merge_size // patch_size (Python floor divisions). */
export function mergedWindowSide(g: WindowGeometry): number {
  return Math.floor(Math.floor(g.windowSize / g.spatialMergeSize) / g.patchSize);
}

export function windowPlan(grid: readonly [number, number, number], g: WindowGeometry): WindowPlan {
  const [t, h, w] = grid;
  const merge = g.spatialMergeSize;
  const unit = merge * merge;
  const ws = mergedWindowSide(g);
  check(ws >= 1, `window_size ${g.windowSize} is smaller than one merged token (${merge * g.patchSize} px)`);
  check(h % merge === 0 && w % merge === 0, `grid [${grid.join(", ")}] is not divisible by spatial_merge_size ${merge}`);
  const lh = h / merge;
  const lw = w / merge;
  const nwh = Math.ceil(lh / ws);
  const nww = Math.ceil(lw / ws);

  // Window contents in the reference order: frames, window rows, window cols; tokens row-major inside.
  const windowIndex = new Int32Array(t * lh * lw);
  const lengthsList: number[] = [];
  let n = 0;
  for (let f = 0; f < t; f++) {
    for (let wr = 0; wr < nwh; wr++) {
      for (let wc = 0; wc < nww; wc++) {
        const start = n;
        for (let r = wr * ws; r < Math.min(lh, (wr + 1) * ws); r++) {
          for (let c = wc * ws; c < Math.min(lw, (wc + 1) * ws); c++) windowIndex[n++] = f * lh * lw + r * lw + c;
        }
        lengthsList.push((n - start) * unit); // never 0: ceil() creates no all-padding window
      }
    }
  }
  const numWindows = lengthsList.length;
  const lengths = Int32Array.from(lengthsList);
  const windowLen = Math.max(...lengthsList);
  const gather = new Int32Array(numWindows * windowLen);
  const scatter = new Int32Array(t * h * w);
  const cuWindowSeqlens = [0];
  let k = 0; // position in windowIndex
  for (let win = 0; win < numWindows; win++) {
    const tokens = lengths[win] / unit;
    const firstRow = windowIndex[k] * unit;
    for (let s = 0; s < windowLen; s++) gather[win * windowLen + s] = firstRow;
    for (let j = 0; j < tokens; j++, k++) {
      for (let p = 0; p < unit; p++) {
        const row = windowIndex[k] * unit + p;
        const slot = win * windowLen + j * unit + p;
        gather[slot] = row;
        scatter[row] = slot;
      }
    }
    cuWindowSeqlens.push(cuWindowSeqlens[cuWindowSeqlens.length - 1] + lengths[win]);
  }
  return { numWindows, windowLen, gather, scatter, lengths, windowIndex, cuWindowSeqlens };
}
