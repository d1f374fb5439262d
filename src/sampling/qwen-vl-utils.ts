/**
 * Video frame sampling and per-frame size policy of qwen-vl-utils 0.0.14 (the authors' pipeline for Qwen2-VL,
 * Qwen2.5-VL and Qwen3-VL).
 *
 * Reference: QwenLM/Qwen3-VL `qwen-vl-utils/src/qwen_vl_utils/vision_process.py` at fe120581464a989a8d0dcc3c0fc925e65f8b3ba1
 * (v0.0.14): `smart_nframes`, `calculate_video_frame_range`, `_read_video_torchcodec` / `_read_video_decord` (indices
 * and sample_fps), `fetch_video` (pixel budget). Facts: shared/reference/video-preprocessing-facts.md §1.3–1.5.
 *
 * The module constants that depend on the model family (factor = patch·merge, the per-frame min/max pixels, the
 * total-pixel budget, the frame limits) come in through `SamplingDefaults`, so each family supplies its own.
 */
import { VideolmError } from "../errors.js";
import { OptionError } from "../option-error.js";
import { roundHalfEven, smartResize } from "../processing/smart-resize.js";

export interface SamplingDefaults {
  /** image_patch_size · SPATIAL_MERGE_SIZE: 28 for patch 14 (Qwen2/2.5-VL), 32 for patch 16 (Qwen3-VL). */
  factor: number;
  /** VIDEO_MIN_TOKEN_NUM · factor² (128·28² = 100 352 for Qwen2-VL). */
  videoMinPixels: number;
  /** VIDEO_MAX_TOKEN_NUM · factor² (768·28² = 602 112). */
  videoMaxPixels: number;
  /** Default `total_pixels`: MODEL_SEQ_LEN · factor² · 0.9 (a float, not passed through int() in 0.0.14). */
  videoTotalPixels: number;
  /** FPS = 2.0 */
  fps: number;
  /** FPS_MIN_FRAMES = 4 */
  minFrames: number;
  /** FPS_MAX_FRAMES = 768 */
  maxFrames: number;
  /** FRAME_FACTOR = 2 (frames go to the model in temporal pairs). */
  frameFactor: number;
  /** IMAGE_MIN/MAX_TOKEN_NUM · factor²: smart_resize's defaults, used when resized_height/width are given. */
  imageMinPixels: number;
  imageMaxPixels: number;
}

/** The qwen-vl-utils 0.0.14 module constants for a given vision patch size (14 → factor 28, 16 → factor 32). */
export function qwenVlUtilsDefaults(imagePatchSize: number, modelSeqLen = 128000): SamplingDefaults {
  const factor = imagePatchSize * 2;
  return {
    factor,
    videoMinPixels: 128 * factor * factor,
    videoMaxPixels: 768 * factor * factor,
    videoTotalPixels: modelSeqLen * factor * factor * 0.9,
    fps: 2.0,
    minFrames: 4,
    maxFrames: 768,
    frameFactor: 2,
    imageMinPixels: 4 * factor * factor,
    imageMaxPixels: 16384 * factor * factor,
  };
}

/** The per-request options of a qwen-vl-utils video element (`ele`), camelCased. Unset = the reference default. */
export interface VideoSamplingOptions {
  fps?: number;
  nframes?: number;
  minFrames?: number;
  maxFrames?: number;
  /** seconds */
  videoStart?: number;
  /** seconds */
  videoEnd?: number;
  minPixels?: number;
  maxPixels?: number;
  totalPixels?: number;
  resizedHeight?: number;
  resizedWidth?: number;
}

const ceilByFactor = (x: number, f: number) => Math.ceil(x / f) * f;
const floorByFactor = (x: number, f: number) => Math.floor(x / f) * f;

/** The caller's option (MediaOptions key) behind a sampling option: videoStart / videoEnd are `start` / `end`. */
const OPTION_KEY: Partial<Record<keyof VideoSamplingOptions, string>> = { videoStart: "start", videoEnd: "end" };
const optionKey = (key: keyof VideoSamplingOptions) => OPTION_KEY[key] ?? key;

function checkOptions(o: VideoSamplingOptions): void {
  if (o.fps !== undefined && o.nframes !== undefined) {
    // smart_nframes: assert not ("fps" in ele and "nframes" in ele)
    throw new OptionError(["fps", "nframes"], (n) => `video sampling: give either ${n("fps")} or ${n("nframes")}, not both`);
  }
  const positive: (keyof VideoSamplingOptions)[] = ["fps", "nframes", "minFrames", "maxFrames", "minPixels", "maxPixels", "totalPixels", "resizedHeight", "resizedWidth"];
  for (const key of positive) {
    const v = o[key];
    if (v !== undefined && !(Number.isFinite(v) && v > 0)) {
      throw new OptionError([key], (n) => `video sampling: ${n(key)} must be a positive number, got ${v}`);
    }
  }
  for (const key of ["videoStart", "videoEnd"] as const) {
    const v = o[key];
    if (v !== undefined && !Number.isFinite(v)) throw new OptionError([optionKey(key)], (n) => `video sampling: ${n(optionKey(key))} must be a number of seconds, got ${v}`);
  }
  if ((o.resizedHeight === undefined) !== (o.resizedWidth === undefined)) {
    // fetch_video only honours them as a pair ("resized_height" in ele and "resized_width" in ele).
    throw new VideolmError("video sampling: give resizedHeight and resizedWidth together");
  }
}

/**
 * qwen-vl-utils `smart_nframes`: how many frames to sample from `totalFrames` frames at `videoFps`.
 * Throws when the result is outside [FRAME_FACTOR, totalFrames] (the reference raises ValueError).
 */
export function smartNframes(o: VideoSamplingOptions, totalFrames: number, videoFps: number, d: SamplingDefaults): number {
  checkOptions(o);
  let nframes: number;
  if (o.nframes !== undefined) {
    nframes = roundHalfEven(o.nframes / d.frameFactor) * d.frameFactor;
  } else {
    const fps = o.fps ?? d.fps;
    const minFrames = ceilByFactor(o.minFrames ?? d.minFrames, d.frameFactor);
    const maxFrames = floorByFactor(o.maxFrames ?? Math.min(d.maxFrames, totalFrames), d.frameFactor);
    // Python float arithmetic, left to right: total_frames / video_fps * fps
    nframes = (totalFrames / videoFps) * fps;
    nframes = Math.min(Math.min(Math.max(nframes, minFrames), maxFrames), totalFrames);
    nframes = floorByFactor(nframes, d.frameFactor);
  }
  if (!(d.frameFactor <= nframes && nframes <= totalFrames)) throw frameCountError(o, nframes, totalFrames, d);
  return nframes;
}

/**
 * Why smart_nframes found no valid frame count, naming the option that caused it: Qwen-VL models see a video as
 * frame pairs (FRAME_FACTOR = 2), so fewer than 2 frames — `nframes 1` rounds to 0, `max_frames 1` floors to 0, a
 * one-frame clip — is refused (the reference raises ValueError), as is asking for more frames than the clip has.
 */
function frameCountError(o: VideoSamplingOptions, nframes: number, totalFrames: number, d: SamplingDefaults): VideolmError {
  const ff = d.frameFactor;
  const clip = o.videoStart !== undefined || o.videoEnd !== undefined ? "the selected range of the clip" : "the clip";
  if (totalFrames < ff) {
    return new VideolmError(`video sampling: at least ${ff} frames requested but ${clip} has ${totalFrames} (Qwen-VL models see video frames in pairs); give a single frame as an image instead`);
  }
  const tooFew = frameOptionsError(o, ff);
  if (tooFew) return tooFew;
  if (o.nframes !== undefined) {
    return new OptionError(["nframes"], (n) => `video sampling: ${n("nframes")} ${o.nframes} is more than the ${totalFrames} frames ${clip} has; use ${n("nframes")} ${totalFrames - (totalFrames % ff)} or fewer`);
  }
  return new VideolmError(`video sampling: ${nframes} frames sampled but ${clip} has ${totalFrames} (need ${ff}..${totalFrames})`);
}

/** nframes / maxFrames that give fewer than one frame pair whatever the clip (nframes 1 rounds to 0), else undefined. */
function frameOptionsError(o: { nframes?: number; maxFrames?: number }, frameFactor: number): OptionError | undefined {
  const pairs = `a video needs at least ${frameFactor} frames (Qwen-VL models see frames in pairs)`;
  if (o.nframes !== undefined && roundHalfEven(o.nframes / frameFactor) * frameFactor < frameFactor) {
    return new OptionError(["nframes"], (n) => `video sampling: ${n("nframes")} ${o.nframes} is too few: ${pairs}; use ${n("nframes")} ${frameFactor} or more, or give a single frame as an image`);
  }
  if (o.nframes === undefined && o.maxFrames !== undefined && floorByFactor(o.maxFrames, frameFactor) < frameFactor) {
    return new OptionError(["maxFrames"], (n) => `video sampling: ${n("maxFrames")} ${o.maxFrames} is too few: ${pairs}; use ${n("maxFrames")} ${frameFactor} or more`);
  }
  return undefined;
}

/**
 * Refuses, before any video is read, frame options that no clip can satisfy (smart_nframes would raise for every
 * video): `nframes` rounding to 0, `maxFrames` below one frame pair. Its OptionError names them in the caller's
 * spelling (`--nframes`, `nframes`).
 */
export function checkFrameOptions(o: { nframes?: number; maxFrames?: number }, frameFactor = 2): void {
  const error = frameOptionsError(o, frameFactor);
  if (error) throw error;
}

export interface FrameRange {
  /** first frame index (inclusive) */
  start: number;
  /** last frame index (inclusive) */
  end: number;
  /** end − start + 1: the `total_frames` the rest of the reference works with */
  count: number;
}

/** qwen-vl-utils `calculate_video_frame_range` (decord / torchcodec readers): video_start / video_end → frame range. */
export function calculateVideoFrameRange(o: VideoSamplingOptions, totalFrames: number, videoFps: number): FrameRange {
  if (!(videoFps > 0)) throw new VideolmError("video sampling: video fps must be a positive number");
  if (!(totalFrames > 0)) throw new VideolmError("video sampling: the video has no frames");
  if (o.videoStart === undefined && o.videoEnd === undefined) return { start: 0, end: totalFrames - 1, count: totalFrames };
  const maxDuration = totalFrames / videoFps;
  const startFrame = o.videoStart !== undefined ? Math.ceil(Math.max(0, Math.min(o.videoStart, maxDuration)) * videoFps) : 0;
  let endFrame = totalFrames - 1;
  if (o.videoEnd !== undefined) {
    endFrame = Math.min(Math.floor(Math.max(0, Math.min(o.videoEnd, maxDuration)) * videoFps), totalFrames - 1);
  }
  if (startFrame >= endFrame) {
    throw new OptionError(
      ["start", "end"],
      (n) =>
        `video sampling: start frame ${startFrame} (${n("start")} ${o.videoStart ?? 0} s) is not before end frame ` +
        `${endFrame} (${n("end")} ${o.videoEnd ?? maxDuration} s); the video lasts ${maxDuration.toFixed(2)} s ` +
        `(${totalFrames} frames at ${videoFps} fps)`,
    );
  }
  return { start: startFrame, end: endFrame, count: endFrame - startFrame + 1 };
}

// ---- torch.linspace in float32, bit-exact --------------------------------------------------------------------

const f32 = Math.fround;
const f32Bits = new Float32Array(1);
const u32Bits = new Uint32Array(f32Bits.buffer);

/** The next float32 after `x` (a float32 value) in the direction of `dir` (±1). */
function nextFloat32(x: number, dir: 1 | -1): number {
  if (x === 0) return dir * 1.401298464324817e-45;
  f32Bits[0] = x;
  u32Bits[0] += (x > 0) === (dir > 0) ? 1 : -1;
  return f32Bits[0];
}

/**
 * fmaf(a, b, c) for float32 a, b, c: a·b + c rounded once to float32. a·b is exact in double (24 + 24 bits); the sum
 * is split exactly into s + err (Knuth two-sum), and the one case where rounding s alone is wrong — s exactly halfway
 * between two float32 values with err ≠ 0 — is resolved by the sign of err.
 */
export function fmaf32(a: number, b: number, c: number): number {
  const p = a * b;
  const s = p + c;
  const bb = s - p;
  const err = p - (s - bb) + (c - bb);
  const r = f32(s);
  if (err === 0 || r === s) return r;
  const other = nextFloat32(r, s > r ? 1 : -1);
  if (s !== (r + other) / 2) return r;
  // s is a tie between r and other; the exact value lies on err's side of s.
  return err > 0 === other > r ? other : r;
}

/**
 * `torch.linspace(start, end, steps)` with the default float32 dtype on CPU, bit-exact.
 * aten/src/ATen/native/cpu/RangeFactoriesKernel.cpp `linspace_kernel`: step = (end − start) / (steps − 1) in float32,
 * value i = start + step·i for i < steps/2 and end − step·(steps − 1 − i) for the rest (so both ends are exact).
 * The x86 builds (AVX2/AVX512 kernels, compiled with -mfma) contract those into fused multiply-adds; verified against
 * torch 2.13 on 6870 (start, end, steps) cases, all bit-identical. (Without the FMA the values differ in the last bit
 * in most cases but, in the same sweep, never after rounding to integer indices.)
 */
export function torchLinspaceF32(start: number, end: number, steps: number): number[] {
  if (steps === 1) return [f32(start)];
  const s = f32(start);
  const e = f32(end);
  const step = f32(f32(e - s) / (steps - 1));
  const halfway = Math.floor(steps / 2);
  const out = new Array<number>(steps);
  for (let i = 0; i < steps; i++) {
    out[i] = i < halfway ? fmaf32(step, i, s) : fmaf32(-step, steps - 1 - i, e);
  }
  return out;
}

/** `torch.linspace(start, end, n).round().long()`: float32 linspace, round half to even. */
export function linspaceRoundIndices(start: number, end: number, n: number): number[] {
  return torchLinspaceF32(start, end, n).map(roundHalfEven);
}

// ---- the whole plan --------------------------------------------------------------------------------------------

export interface VideoSource {
  /** frames the reader reports (decord `len(vr)` / torchcodec `num_frames`) */
  frameCount: number;
  /** the reader's average fps */
  fps: number;
  /** frame size as decoded (after rotation, if the reader applies it) */
  width: number;
  height: number;
}

export interface VideoSamplingPlan {
  /** Indices into the video's frames (presentation order), ascending, length `nframes`. */
  frameIndices: number[];
  nframes: number;
  /** `nframes / max(total_frames, 1e-6) · video_fps`, with total_frames the length of the selected range. */
  sampleFps: number;
  /** The selected range (video_start / video_end). */
  range: FrameRange;
  /** Per-frame pixel limits fed to smart_resize. */
  minPixels: number;
  maxPixels: number;
  /** Size every sampled frame is resized to. */
  resizedHeight: number;
  resizedWidth: number;
  /** Seconds of each sampled frame: index / video fps. */
  timestamps: number[];
}

/**
 * qwen-vl-utils `fetch_video` budget: per-frame max_pixels from the total-pixel budget shared across frames.
 *   max_pixels = max(min(VIDEO_FRAME_MAX_PIXELS, total_pixels / nframes · FRAME_FACTOR), int(min_pixels · 1.05))
 * and a user max_pixels can only lower it.
 */
export function videoFramePixelBudget(o: VideoSamplingOptions, nframes: number, d: SamplingDefaults): { minPixels: number; maxPixels: number } {
  const minPixels = o.minPixels ?? d.videoMinPixels;
  const totalPixels = o.totalPixels ?? d.videoTotalPixels;
  let maxPixels = Math.max(Math.min(d.videoMaxPixels, (totalPixels / nframes) * d.frameFactor), Math.trunc(minPixels * 1.05));
  if (o.maxPixels !== undefined) maxPixels = Math.min(o.maxPixels, maxPixels);
  return { minPixels, maxPixels };
}

/** The frame size `fetch_video` resizes every sampled frame to. */
export function planVideoFrameSize(
  o: VideoSamplingOptions,
  height: number,
  width: number,
  nframes: number,
  d: SamplingDefaults,
): { height: number; width: number; minPixels: number; maxPixels: number } {
  const { minPixels, maxPixels } = videoFramePixelBudget(o, nframes, d);
  let size: [number, number];
  if (o.resizedHeight !== undefined && o.resizedWidth !== undefined) {
    // smart_resize(resized_height, resized_width, factor) with the image default min/max pixels.
    size = smartResize(o.resizedHeight, o.resizedWidth, { factor: d.factor, minPixels: d.imageMinPixels, maxPixels: d.imageMaxPixels });
  } else {
    checkPixelBounds(o, minPixels, maxPixels);
    size = smartResize(height, width, { factor: d.factor, minPixels, maxPixels });
  }
  return { height: size[0], width: size[1], minPixels, maxPixels };
}

/**
 * Refuses a frame-size range that is empty (smart_resize asserts max_pixels >= min_pixels), naming the option(s) the
 * caller set: both, or a `maxPixels` below the model's default minimum. `minPixels` / `maxPixels` are the bounds in
 * effect (the caller's or the defaults); with neither set by the caller the defaults are consistent and nothing is
 * checked here (smart_resize still checks).
 */
export function checkPixelBounds(o: { minPixels?: number; maxPixels?: number }, minPixels = o.minPixels, maxPixels = o.maxPixels): void {
  if (minPixels === undefined || maxPixels === undefined || minPixels <= maxPixels) return;
  if (o.minPixels !== undefined && o.maxPixels !== undefined) {
    throw new OptionError(["minPixels", "maxPixels"], (n) => `${n("minPixels")} ${o.minPixels} is larger than ${n("maxPixels")} ${o.maxPixels}; lower ${n("minPixels")} or raise ${n("maxPixels")}`);
  }
  if (o.maxPixels !== undefined) {
    throw new OptionError(
      ["maxPixels", "minPixels"],
      (n) => `${n("maxPixels")} ${o.maxPixels} is below the smallest frame size this model uses (${n("minPixels")} defaults to ${minPixels}); raise ${n("maxPixels")}, or lower ${n("minPixels")} too`,
    );
  }
  if (o.minPixels !== undefined) {
    throw new OptionError(["minPixels", "maxPixels"], (n) => `${n("minPixels")} ${o.minPixels} is above the largest frame size this model uses (${n("maxPixels")} defaults to ${maxPixels}); lower ${n("minPixels")}, or raise ${n("maxPixels")} too`);
  }
}

/**
 * Everything qwen-vl-utils decides about a video before decoding pixels: which frames, sample_fps, and the resized size.
 * Follows `_read_video_torchcodec` (the default reader): frame range → smart_nframes on the range → linspace indices.
 */
export function planVideoSampling(o: VideoSamplingOptions, video: VideoSource, d: SamplingDefaults): VideoSamplingPlan {
  checkOptions(o);
  const range = calculateVideoFrameRange(o, video.frameCount, video.fps);
  const nframes = smartNframes(o, range.count, video.fps, d);
  const frameIndices = linspaceRoundIndices(range.start, range.end, nframes);
  const sampleFps = (nframes / Math.max(range.count, 1e-6)) * video.fps;
  const size = planVideoFrameSize(o, video.height, video.width, nframes, d);
  return {
    frameIndices,
    nframes,
    sampleFps,
    range,
    minPixels: size.minPixels,
    maxPixels: size.maxPixels,
    resizedHeight: size.height,
    resizedWidth: size.width,
    timestamps: frameIndices.map((i) => i / video.fps),
  };
}
