/**
 * VideoLLaMA3 frame sampling and the per-clip resize budget, as transformers 5.18.0
 * models/video_llama_3/video_processing_video_llama_3.py does them (docs/video_llama_3-reference.md §7.1–7.2).
 */
import { VideolmError } from "../../errors.js";
import { MAX_ASPECT_RATIO, roundHalfEven } from "../../processing/smart-resize.js";

export interface SampleFramesOptions {
  /** `num_frames`: exact count (rounded to the temporal patch, 1). */
  numFrames?: number;
  /** `fps`: frames per second of video to take. */
  fps?: number;
  minFrames: number;
  maxFrames: number;
}

/**
 * VideoLlama3VideoProcessor.sample_frames (VP:149-215), bit for bit with temporal_patch_size 1, including the
 * `torch.arange(0, total, total / n).int()` quirk: its length is ceil(total / (total / n)) in float64, which is n + 1
 * for about 4 % of (total, n), the last index then equal to `total` (out of range); element i is
 * trunc(float32(i · (total / n))). Neither fps nor num_frames: every frame.
 */
export function referenceSampleFrames(total: number, videoFps: number, o: SampleFramesOptions): number[] {
  if (!(Number.isInteger(total) && total >= 1)) throw new VideolmError(`a video needs at least one frame (got ${total})`);
  let n: number;
  if (o.numFrames !== undefined) {
    n = Math.round(o.numFrames); // round(num_frames / 1) * 1 on an integer
    if (n > total) throw new VideolmError(`nframes ${n} is more than the video's ${total} frames`);
    if (n < 1) throw new VideolmError(`nframes must be at least 1 (got ${o.numFrames})`);
  } else if (o.fps !== undefined) {
    const maxFrames = Math.floor(Math.min(o.maxFrames, total));
    const wanted = (total / videoFps) * o.fps;
    n = Math.floor(Math.min(Math.max(wanted, o.minFrames), maxFrames, total));
    if (n < 1) throw new VideolmError(`sampling gives no frame (max_frames ${o.maxFrames})`);
  } else {
    return Array.from({ length: total }, (_, i) => i);
  }
  const step = total / n;
  const length = Math.ceil(total / step);
  return Array.from({ length }, (_, i) => Math.trunc(Math.fround(i * step)));
}

/**
 * The frames videolm samples: the reference's, without an index past the last frame (the arange quirk's extra
 * element, which no decoder can return).
 */
export function sampleFrames(total: number, videoFps: number, o: SampleFramesOptions): number[] {
  return referenceSampleFrames(total, videoFps, o).filter((i) => i < total);
}

/** The video processor's resize bounds: `size.shortest_edge` (min pixels per frame) and `size.longest_edge` (per clip). */
export interface ClipBudget {
  minPixels: number;
  /** Pixels for the whole clip: each of its T frames gets longest_edge // T. */
  clipPixels: number;
  /** A per-frame cap on top (the request's maxPixels); none in the reference. */
  maxPixels?: number;
}

/**
 * The frame size of a clip of `frames` frames (VP:217-241): smart_resize(h, w, factor = patch · merge,
 * min_pixels, max_pixels = longest_edge // T) — "diff from Qwen!": the budget is per clip.
 */
export function clipFrameSize(height: number, width: number, frames: number, factor: number, b: ClipBudget): [number, number] {
  let maxPixels = Math.floor(b.clipPixels / frames);
  if (b.maxPixels !== undefined) maxPixels = Math.min(maxPixels, b.maxPixels);
  return videoLlama3SmartResize(height, width, factor, b.minPixels, maxPixels);
}

/**
 * video_processing_video_llama_3.smart_resize (VP:65-91; the image processor's is the same): Qwen2-VL's formula without
 * a min ≤ max check — the too-large branch is tested first, so with many frames a frame can end below min_pixels, and
 * a frame that rounds under both bounds is enlarged to min_pixels even past max_pixels (docs §7.2). Python round() =
 * half to even; no clamp after the first rounding (a side rounding to 0 is rescued by the min branch).
 */
export function videoLlama3SmartResize(height: number, width: number, factor: number, minPixels: number, maxPixels: number): [number, number] {
  if (!(Number.isInteger(height) && Number.isInteger(width) && height > 0 && width > 0)) throw new VideolmError(`smart_resize: frame size ${width}x${height} must be positive integers`);
  const ratio = Math.max(height, width) / Math.min(height, width);
  if (ratio > MAX_ASPECT_RATIO) throw new VideolmError(`frame size ${width}x${height} has aspect ratio ${ratio}, more than the ${MAX_ASPECT_RATIO} the VideoLLaMA3 processor accepts; crop or pad it first`);
  let h = roundHalfEven(height / factor) * factor;
  let w = roundHalfEven(width / factor) * factor;
  if (h * w > maxPixels) {
    const beta = Math.sqrt((height * width) / maxPixels);
    h = Math.max(factor, Math.floor(height / beta / factor) * factor);
    w = Math.max(factor, Math.floor(width / beta / factor) * factor);
  } else if (h * w < minPixels) {
    const beta = Math.sqrt(minPixels / (height * width));
    h = Math.ceil((height * beta) / factor) * factor;
    w = Math.ceil((width * beta) / factor) * factor;
  }
  return [h, w];
}
