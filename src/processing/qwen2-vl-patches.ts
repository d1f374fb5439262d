/**
 * Qwen2-VL / Qwen2.5-VL pixel patches: normalise resized frames and cut them into the `pixel_values` rows
 * the vision tower's Conv3d patch embedding consumes, plus the per-patch 2-D rotary positions.
 *
 * References (transformers 4.57.6):
 *  - models/qwen2_vl/image_processing_qwen2_vl_fast.py `Qwen2VLImageProcessorFast._preprocess` and
 *    models/qwen2_vl/video_processing_qwen2_vl.py `Qwen2VLVideoProcessor._preprocess` (same layout)
 *  - image_processing_utils_fast.py `rescale_and_normalize` / `_fuse_mean_std_and_rescale_factor`
 *  - models/qwen2_vl/modeling_qwen2_vl.py `Qwen2VisionTransformerPretrainedModel.rot_pos_emb`
 *  - shared/reference/video-preprocessing-facts.md §1.7–1.9
 */
import { check } from "../errors.js";
import type { RgbImage } from "./rgb-image.js";

/** OpenAI CLIP statistics (transformers `OPENAI_CLIP_MEAN` / `OPENAI_CLIP_STD`), used by Qwen2/2.5-VL. */
export const OPENAI_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073] as const;
export const OPENAI_CLIP_STD = [0.26862954, 0.26130258, 0.27577711] as const;

export interface PatchifyOptions {
  /** spatial patch side in pixels (14 for Qwen2/2.5-VL) */
  patchSize: number;
  /** frames per temporal patch (2) */
  temporalPatchSize: number;
  /** side of the square of patches the merger concatenates (2) */
  mergeSize: number;
  mean: readonly number[];
  std: readonly number[];
}

export interface PatchifiedFrames {
  /** [t·h·w, C·temporalPatchSize·P·P] row-major float32 */
  pixelValues: Float32Array;
  /** [t, h, w] in patches: t = ceil(frames / temporalPatchSize), h = H / P, w = W / P */
  grid: [number, number, number];
  /** C·temporalPatchSize·P·P (1176 for Qwen2-VL) */
  rowLength: number;
}

/**
 * uint8 → float32 lookup per channel, reproducing the fused rescale+normalize in float32:
 *   mean' = float32(mean) · 255, std' = float32(std) · 255 (torch.tensor(mean) * (1.0 / (1/255)), and
 *   1.0 / (1/255) is exactly 255.0 in double), then (x − mean') / std' with float32 sub and div
 *   (torchvision normalize: `image.sub(mean).div_(std)`).
 * Each JS operation below is done in double and rounded once to float32, which equals the float32 op.
 */
function normalisationTable(mean: readonly number[], std: readonly number[]): Float32Array[] {
  const f32 = Math.fround;
  return [0, 1, 2].map((c) => {
    const m = f32(f32(mean[c]) * 255);
    const s = f32(f32(std[c]) * 255);
    const table = new Float32Array(256);
    for (let v = 0; v < 256; v++) table[v] = f32(f32(v - m) / s);
    return table;
  });
}

/**
 * Normalises and patchifies frames of one image or video (all the same size, already resized to multiples
 * of patchSize·mergeSize).
 *
 * An image is one frame: it is repeated to fill the temporal patch (two identical frames for Qwen2-VL), and a
 * video whose frame count is not a multiple of temporalPatchSize is padded by repeating its last frame, as
 * the reference does (`patches[:, -1:].repeat(...)`; for temporalPatchSize 2 that is exactly one copy).
 *
 * Layout (reference: view (gt, tp, C, gh/m, m, P, gw/m, m, P) → permute (0,3,6,4,7,2,1,5,8) → reshape):
 *   row    = ((t·(gh/m) + bh)·(gw/m) + bw)·m² + mh·m + mw   — time, merge block row, merge block column,
 *            then the patch inside the 2×2 block, so each block's patches are consecutive rows
 *   column = ((c·tp + k)·P + py)·P + px                     — channel, temporal slot, pixel row, pixel column
 * where the patch is at patch row bh·m + mh, patch column bw·m + mw, frame t·tp + k.
 */
export function patchifyFrames(frames: readonly RgbImage[], opts: PatchifyOptions): PatchifiedFrames {
  const { patchSize: P, temporalPatchSize: TP, mergeSize: M } = opts;
  check(frames.length > 0, "patchify: no frames given");
  const { width: W, height: H } = frames[0];
  for (const [i, f] of frames.entries()) {
    check(
      f.width === W && f.height === H && f.data.length === W * H * 3,
      () => `patchify: frame ${i} is ${f.width}x${f.height}, expected ${W}x${H} like frame 0 (RGB, 3 bytes/pixel)`,
    );
  }
  check(
    H % (P * M) === 0 && W % (P * M) === 0,
    () => `patchify: frame size ${W}x${H} is not a multiple of patchSize·mergeSize = ${P * M}; run smartResize first`,
  );
  check(opts.mean.length === 3 && opts.std.length === 3, "patchify: mean and std need 3 values (RGB)");

  const gt = Math.ceil(frames.length / TP);
  const gh = H / P;
  const gw = W / P;
  const rowLength = 3 * TP * P * P;
  const pixelValues = new Float32Array(gt * gh * gw * rowLength);
  const table = normalisationTable(opts.mean, opts.std);
  // Frame for temporal index f: past the end, repeat the last frame.
  const frameAt = (f: number) => frames[Math.min(f, frames.length - 1)].data;

  let o = 0; // write cursor, advances row by row in output order
  for (let t = 0; t < gt; t++) {
    for (let bh = 0; bh < gh / M; bh++) {
      for (let bw = 0; bw < gw / M; bw++) {
        for (let mh = 0; mh < M; mh++) {
          for (let mw = 0; mw < M; mw++) {
            const y0 = (bh * M + mh) * P;
            const x0 = (bw * M + mw) * P;
            for (let c = 0; c < 3; c++) {
              const lut = table[c];
              for (let k = 0; k < TP; k++) {
                const data = frameAt(t * TP + k);
                for (let py = 0; py < P; py++) {
                  let s = ((y0 + py) * W + x0) * 3 + c;
                  for (let px = 0; px < P; px++, s += 3) pixelValues[o++] = lut[data[s]];
                }
              }
            }
          }
        }
      }
    }
  }
  return { pixelValues, grid: [gt, gh, gw], rowLength };
}

/**
 * Vision-tower 2-D rotary positions: (row, col) of every patch, in the same block-major order as the
 * pixel_values rows, repeated for each temporal index. Returns [t·h·w, 2] row-major.
 * Reference: modeling_qwen2_vl.py `rot_pos_emb` (hpos/wpos reshaped (h/m, m, w/m, m), permuted (0,2,1,3)).
 */
export function visionPositionIds(grid: readonly [number, number, number], mergeSize: number): Int32Array {
  const [t, h, w] = grid;
  const M = mergeSize;
  check(
    h % M === 0 && w % M === 0,
    () => `vision positions: grid ${h}x${w} is not divisible by mergeSize ${M}`,
  );
  const perFrame = h * w;
  const ids = new Int32Array(t * perFrame * 2);
  let o = 0;
  for (let bh = 0; bh < h / M; bh++) {
    for (let bw = 0; bw < w / M; bw++) {
      for (let mh = 0; mh < M; mh++) {
        for (let mw = 0; mw < M; mw++) {
          ids[o++] = bh * M + mh;
          ids[o++] = bw * M + mw;
        }
      }
    }
  }
  for (let f = 1; f < t; f++) ids.copyWithin(f * perFrame * 2, 0, perFrame * 2);
  return ids;
}
