/**
 * The top of video ingestion: source → probe → sampling plan → decode the selected frames, resized.
 *
 * Follows qwen-vl-utils 0.0.14 `fetch_video` with the torchcodec reader (`_read_video_torchcodec`): the reader's
 * frame count and average fps drive `calculate_video_frame_range`, `smart_nframes` and the linspace indices; the frame
 * size after rotation drives the per-frame pixel budget and `smart_resize`; every sampled frame is resized with
 * torchvision's (v1) bicubic antialiased resize, as `fetch_video` does (`resizeBicubicAntialiasFloat`).
 * Memory: only the resized sampled frames are kept (plus one native frame in flight per ffmpeg run).
 *
 * Frame times (issue 15). The reference gives frame i the time i / average fps, which on a variable-frame-rate video
 * is wrong by up to seconds (1.65 s measured on a phone-style clip). `frameTimes: "presentation"` (the default) uses
 * the frames' presentation timestamps instead, relative to the first frame, from the frame table (frame-table.ts):
 * read from the mp4/mov sample table (cheap, always), or from an ffprobe packet scan for other containers when the
 * probe says the rate is variable (without the table a constant-rate file's times are i / fps). Where the container's
 * timestamp precision cannot tell a frame's time from i / fps (within one time-base unit), i / fps is kept, so a
 * constant-rate file gets exactly the reference's numbers. `sampleFps` follows: the frames sampled per second of the
 * range's real duration (the reference: per second of count / average fps). Which frames are sampled does not change:
 * the indices are always the reference's. `frameTimes: "reference"` gives the reference's times.
 * Decoding seeks when that is cheaper (`decodeStrategy`, decode-frames.ts).
 * Hostile media: the probe refuses frames over `maxInputPixels` and containers outside ALLOWED_DEMUXERS before any
 * pixel is decoded; decoding uses the demuxer the probe detected (see ffmpeg.ts, limits.ts).
 */
import { resizeBicubicAntialiasFloat } from "../processing/resize.js";
import type { RgbImage } from "../processing/rgb-image.js";
import { planVideoSampling, type SamplingDefaults, type VideoSamplingOptions, type VideoSamplingPlan } from "../sampling/qwen-vl-utils.js";
import { seedFamilyPlan } from "../sampling/policy.js";
import type { SeedSamplingOptions, SeedSamplingPlan } from "../sampling/seed-1-5.js";
import { decodeFrames, SEEKABLE_DEMUXERS, type DecodeReport, type DecodeStrategy, type ResizeFn } from "./decode-frames.js";
import { frameSeconds, mp4FrameTable, scanFrameTable, type FrameTable } from "./frame-table.js";
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
  /** Frame times: the frames' presentation times (default) or the reference's index / average fps (file comment). */
  frameTimes?: FrameTimes;
  /** How to reach the sampled frames: "auto" (default), "seek", or "stream" (one pass from the start). */
  decodeStrategy?: DecodeStrategy;
  /** Filled in with the decoding runs done (tests, benches). */
  decodeReport?: DecodeReport;
  /**
   * Sample by the seed1.5 policy (sampling/policy.ts) instead of qwen-vl-utils: its frames and per-frame pixel budget,
   * `defaults`' factor for the size. The qwen-vl-utils options above are then not used.
   */
  seedPolicy?: SeedSamplingOptions;
}

export type FrameTimes = "presentation" | "reference";

export interface VideoPlan {
  probe: VideoProbe;
  /** The reference's plan, with `timestamps` and `sampleFps` as `frameTimes` asks. */
  plan: VideoSamplingPlan;
  /** Which rule gave the times: "presentation" needs a frame table; without one, the reference's rule is used. */
  frameTimes: FrameTimes;
  /** With `seedPolicy`: the policy's own plan (level, Seed1.5-VL frame size, `[t second]` texts). */
  policy?: SeedSamplingPlan;
}

export interface LoadedVideo extends VideoPlan {
  /** The sampled frames, each `plan.resizedWidth × plan.resizedHeight`, in `frameIndices` order. */
  frames: RgbImage[];
  frameIndices: number[];
  /** Seconds of each sampled frame after the first frame (`frameTimes`: presentation times, or index / average fps). */
  timestamps: number[];
  /** qwen-vl-utils `sample_fps` (Qwen2.5-VL: second_per_grid_ts = 2 / sample_fps); see the file comment. */
  sampleFps: number;
}

function planFor(probe: VideoProbe, options: LoadVideoOptions, table: FrameTable | undefined): { plan: VideoSamplingPlan; frameTimes: FrameTimes; policy?: SeedSamplingPlan } {
  const rotate = options.applyRotation ?? true;
  const source = {
    frameCount: probe.frameCount,
    fps: probe.avgFps,
    width: rotate ? probe.displayWidth : probe.width,
    height: rotate ? probe.displayHeight : probe.height,
  };
  const seeded = options.seedPolicy ? seedFamilyPlan(source, options.seedPolicy, options.defaults) : undefined;
  const plan = seeded?.plan ?? planVideoSampling(options, source, options.defaults);
  const policy = seeded ? { policy: seeded.policy } : {};
  if ((options.frameTimes ?? "presentation") === "reference" || !table) return { plan, frameTimes: "reference", ...policy };
  return { plan: { ...plan, ...presentationTimes(plan, table, probe.avgFps) }, frameTimes: "presentation", ...policy };
}

/**
 * Presentation times of the sampled frames and the matching sample fps (see the file comment): a value within one
 * time-base unit of the reference's is the reference's.
 */
export function presentationTimes(plan: VideoSamplingPlan, table: FrameTable, fps: number): { timestamps: number[]; sampleFps: number } {
  const unit = table.timeBase[0] / table.timeBase[1] + 1e-9;
  const timestamps = plan.frameIndices.map((i, k) => {
    const t = frameSeconds(table, i);
    return Math.abs(t - plan.timestamps[k]) <= unit ? plan.timestamps[k] : t;
  });
  const { start, end, count } = plan.range;
  let sampleFps = plan.sampleFps;
  if (count > 1) {
    const span = frameSeconds(table, end) - frameSeconds(table, start);
    if (span > 0 && Math.abs(span - (count - 1) / fps) > unit) sampleFps = (plan.nframes / count) * ((count - 1) / span);
  }
  return { timestamps, sampleFps };
}

function probeOptions(options: LoadVideoOptions) {
  return { signal: options.signal, timeoutMs: options.probeTimeoutMs, maxInputPixels: options.maxInputPixels };
}

/**
 * The frame table when it is cheap (mp4/mov: the sample table) or needed for times (a variable frame rate per the
 * probe, presentation times asked); undefined otherwise or when the file has none that can be trusted.
 */
async function tableForTimes(file: string, probe: VideoProbe, options: LoadVideoOptions): Promise<FrameTable | undefined> {
  if (probe.demuxer === "mov") {
    const table = await mp4FrameTable(file, probe.frameCount);
    if (table) return table;
  }
  if (probe.isVfr && (options.frameTimes ?? "presentation") === "presentation") {
    return scanFrameTable(file, probe, probeOptions(options));
  }
  return undefined;
}

/** Seeking pays off when a stream pass would decode many more frames than a scan costs (~1/20 of a decode). */
const SCAN_WORTH_FRAMES = 600;

/** Probes and plans without decoding any pixels (for `videolm inspect`). */
export async function planVideo(source: string, options: LoadVideoOptions): Promise<VideoPlan> {
  return withLocalVideoFile(source, options, async (file) => {
    const probe = await probeVideo(file.path, probeOptions(options), file.label);
    const table = await tableForTimes(file.path, probe, options);
    return { probe, ...planFor(probe, options, table) };
  });
}

/** Loads a video the way qwen-vl-utils `fetch_video` does: sampled, resized frames plus the sampling facts. */
export async function loadVideo(source: string, options: LoadVideoOptions): Promise<LoadedVideo> {
  return withLocalVideoFile(source, options, async (file) => {
    const probe = await probeVideo(file.path, probeOptions(options), file.label);
    let table = await tableForTimes(file.path, probe, options);
    const { plan, frameTimes, policy } = planFor(probe, options, table);
    const strategy = options.decodeStrategy ?? "auto";
    const last = plan.frameIndices[plan.frameIndices.length - 1];
    if (!table && strategy !== "stream" && SEEKABLE_DEMUXERS.includes(probe.demuxer) && last >= SCAN_WORTH_FRAMES) {
      table = await scanFrameTable(file.path, probe, probeOptions(options));
    }
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
      strategy,
      table,
      frameCount: probe.frameCount,
      report: options.decodeReport,
    });
    return { probe, plan, frameTimes, ...(policy ? { policy } : {}), frames, frameIndices: plan.frameIndices, timestamps: plan.timestamps, sampleFps: plan.sampleFps };
  });
}
