/**
 * The top of video ingestion: source → probe → sampling plan → decode the selected frames, resized.
 *
 * Follows qwen-vl-utils 0.0.14 `fetch_video` with the torchcodec reader (`_read_video_torchcodec`): the reader's
 * frame count and average fps drive `calculate_video_frame_range`, `smart_nframes` and the linspace indices; the frame
 * size after rotation drives the per-frame pixel budget and `smart_resize`; every sampled frame is resized with
 * torchvision's (v1) bicubic antialiased resize, as `fetch_video` does (`resizeBicubicAntialiasFloat`).
 * Memory: only the resized sampled frames are kept (plus one native frame in flight).
 * Hostile media: the probe refuses frames over `maxInputPixels` and containers outside ALLOWED_DEMUXERS before any
 * pixel is decoded; decoding uses the demuxer the probe detected (see ffmpeg.ts, limits.ts).
 */
import { resizeBicubicAntialiasFloat } from "../processing/resize.js";
import type { RgbImage } from "../processing/rgb-image.js";
import { planVideoSampling, type SamplingDefaults, type VideoSamplingOptions, type VideoSamplingPlan } from "../sampling/qwen-vl-utils.js";
import { decodeFrames, type ResizeFn } from "./decode-frames.js";
import { probeVideo, type VideoProbe } from "./probe.js";
import { withLocalVideoFile, type SourceOptions } from "./sources.js";

export interface LoadVideoOptions extends VideoSamplingOptions, SourceOptions {
  /** The model family's sampling constants (e.g. `qwenVlUtilsDefaults(14)` for Qwen2-VL). */
  defaults: SamplingDefaults;
  /**
   * Apply the container's display rotation (default true, as ffmpeg and torchcodec ≥ 0.11 do). false returns stored
   * pixels, as decord, torchvision.io and torchcodec < 0.11 do.
   */
  applyRotation?: boolean;
  /** Resize function; default the torchvision v1 float path that qwen-vl-utils uses. */
  resize?: ResizeFn;
  /** Called after each decoded frame with (frames done, frames total). */
  onProgress?: (done: number, total: number) => void;
  probeTimeoutMs?: number;
  decodeTimeoutMs?: number;
  /** Largest accepted stored frame size, width × height, checked on the probe before decoding (default 50,000,000). */
  maxInputPixels?: number;
}

export interface VideoPlan {
  probe: VideoProbe;
  plan: VideoSamplingPlan;
}

export interface LoadedVideo extends VideoPlan {
  /** The sampled frames, each `plan.resizedWidth × plan.resizedHeight`, in `frameIndices` order. */
  frames: RgbImage[];
  frameIndices: number[];
  /** Seconds: frame index / average fps (the reference's notion of a frame's time). */
  timestamps: number[];
  /** qwen-vl-utils `sample_fps` (Qwen2.5-VL: second_per_grid_ts = 2 / sample_fps). */
  sampleFps: number;
}

function planFor(probe: VideoProbe, options: LoadVideoOptions): VideoSamplingPlan {
  const rotate = options.applyRotation ?? true;
  return planVideoSampling(
    options,
    {
      frameCount: probe.frameCount,
      fps: probe.avgFps,
      width: rotate ? probe.displayWidth : probe.width,
      height: rotate ? probe.displayHeight : probe.height,
    },
    options.defaults,
  );
}

function probeOptions(options: LoadVideoOptions) {
  return { signal: options.signal, timeoutMs: options.probeTimeoutMs, maxInputPixels: options.maxInputPixels };
}

/** Probes and plans without decoding any pixels (for `videolm inspect`). */
export async function planVideo(source: string, options: LoadVideoOptions): Promise<VideoPlan> {
  return withLocalVideoFile(source, options, async (file) => {
    const probe = await probeVideo(file.path, probeOptions(options), file.label);
    return { probe, plan: planFor(probe, options) };
  });
}

/** Loads a video the way qwen-vl-utils `fetch_video` does: sampled, resized frames plus the sampling facts. */
export async function loadVideo(source: string, options: LoadVideoOptions): Promise<LoadedVideo> {
  return withLocalVideoFile(source, options, async (file) => {
    const probe = await probeVideo(file.path, probeOptions(options), file.label);
    const plan = planFor(probe, options);
    const frames = await decodeFrames(file.path, {
      indices: plan.frameIndices,
      width: probe.width,
      height: probe.height,
      rotation: options.applyRotation ?? true ? probe.rotation : 0,
      demuxer: probe.demuxer,
      maxInputPixels: options.maxInputPixels,
      resize: { height: plan.resizedHeight, width: plan.resizedWidth, fn: options.resize ?? resizeBicubicAntialiasFloat },
      label: file.label,
      signal: options.signal,
      timeoutMs: options.decodeTimeoutMs,
      onProgress: options.onProgress,
    });
    return { probe, plan, frames, frameIndices: plan.frameIndices, timestamps: plan.timestamps, sampleFps: plan.sampleFps };
  });
}
