/**
 * `smart_resize`: the frame size the Qwen2-VL / Qwen2.5-VL vision tower sees.
 *
 * References:
 *  - qwen-vl-utils `vision_process.py:smart_resize` (QVU 0.0.11 `a30e36fa`, 0.0.14 `fe120581`)
 *  - transformers 4.57.6 `models/qwen2_vl/image_processing_qwen2_vl.py:smart_resize`
 *  - shared/reference/video-preprocessing-facts.md §1.2
 *
 * Both sides end divisible by `factor` (= patch_size · merge_size, 28 for Qwen2-VL), the area lands in
 * [minPixels, maxPixels] and the aspect ratio is kept as well as the rounding allows.
 */
import { VideolmError } from "../errors.js";

export const MAX_ASPECT_RATIO = 200;

export interface SmartResizeOptions {
  factor: number;
  minPixels: number;
  maxPixels: number;
  /**
   * "qwen-vl-utils" (default): every side is clamped to ≥ factor after rounding and after the too-large
   * branch, as in QVU 0.0.11. QVU 0.0.14 lost the clamp in the too-large branch (an evident slip: a
   * 1×200 strip with a small budget would get a 0-pixel side); we keep it, as the facts file decides.
   * "transformers": the 4.57.6 image/video processor's copy: no clamp after the first rounding (a side
   * that rounds to 0 is rescued by the min branch instead), clamp kept in the too-large branch.
   */
  variant?: "qwen-vl-utils" | "transformers";
}

/** Python `round()` for a non-negative float: round half to even (JS Math.round rounds half up). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Returns [height, width] after smart_resize. Throws VideolmError when the aspect ratio exceeds 200
 * (the reference raises ValueError there).
 */
export function smartResize(height: number, width: number, options: SmartResizeOptions): [number, number] {
  const { factor, minPixels, maxPixels } = options;
  const clampFirstRounding = (options.variant ?? "qwen-vl-utils") === "qwen-vl-utils";
  if (!(Number.isInteger(height) && Number.isInteger(width) && height > 0 && width > 0)) {
    throw new VideolmError(`smart_resize: frame size ${width}x${height} must be positive integers`);
  }
  if (!(minPixels <= maxPixels)) {
    throw new VideolmError(`smart_resize: minPixels ${minPixels} is larger than maxPixels ${maxPixels}`);
  }
  const ratio = Math.max(height, width) / Math.min(height, width);
  if (ratio > MAX_ASPECT_RATIO) {
    throw new VideolmError(
      `frame size ${width}x${height} has aspect ratio ${ratio}, more than the ${MAX_ASPECT_RATIO} the Qwen-VL ` +
        `processor accepts; crop or pad the image first`,
    );
  }
  // Python: round(height / factor) * factor — float division then round half to even.
  let hBar = roundHalfEven(height / factor) * factor;
  let wBar = roundHalfEven(width / factor) * factor;
  if (clampFirstRounding) {
    hBar = Math.max(factor, hBar);
    wBar = Math.max(factor, wBar);
  }
  if (hBar * wBar > maxPixels) {
    // (height * width) / max_pixels: exact integer product, one correctly rounded division, as in Python.
    const beta = Math.sqrt((height * width) / maxPixels);
    hBar = Math.max(factor, Math.floor(height / beta / factor) * factor);
    wBar = Math.max(factor, Math.floor(width / beta / factor) * factor);
  } else if (hBar * wBar < minPixels) {
    const beta = Math.sqrt(minPixels / (height * width));
    hBar = Math.ceil((height * beta) / factor) * factor;
    wBar = Math.ceil((width * beta) / factor) * factor;
  }
  return [hBar, wBar];
}
