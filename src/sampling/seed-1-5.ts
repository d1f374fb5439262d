/**
 * Seed1.5-VL's dynamic frame-resolution sampling (the `seed1.5` sampling policy): which frames of a video, at which
 * per-frame resolution level, and the `[t second]` text before each frame.
 *
 * Reference (the code, followed where the report differs): ByteDance-Seed/Seed1.5-VL at
 * f952f84bcd8f720f7e75559b4262578217c48489, `GradioDemo/infer.py`:
 *   - `SeedVLInfer.__init__` defaults: sampling_fps 1, min_n_frames 16, max_video_length 81920, max_pixels_choices
 *     [640, 512, 384, 256, 160, 128]·28·28, min_pixels 4·28·28, use_timestamp True;
 *   - `SeedVLInfer.preprocess_video`: frame count, linspace indices, the level loop, the uniform subsampling, the
 *     resize of every frame to one size, the timestamps `round(i / fps, 1)`;
 *   - `get_resized_hw_for_Navit` (factor 28, max_ratio 200): a level's max_pixels → the frame size;
 *   - `SeedVLInfer.construct_messages`: each frame sent as an image preceded by the text f'[{timestamp} second]'.
 * The report (Seed1.5-VL Technical Report, arXiv 2505.07062, §2.2 "Video Encoding") adds the per-task frame rates:
 * 1 fps by default, 2 fps for tasks that need detail, 5 fps for counting and motion (`SEED_TASK_FPS`; the code has
 * one `sampling_fps` knob, which these set).
 *
 * Where report and code differ, the code is followed:
 *   - the report chooses a resolution "for each frame"; the code chooses one level for the whole video (all frames
 *     the same size): so does this module;
 *   - the code has a floor of 16 frames (min_n_frames) that the report does not mention: kept;
 *   - the budget counts each frame at its level's nominal tokens (max_pixels / 28²: 640, 512, …), not at the tokens
 *     of the resized frame (which are ≤ the level): kept (`budgetTokens`; `tokens` is the resized frames' count).
 * One addition: `frameLimit` (a server's --max-frames) caps the frame count before the level is chosen.
 *
 * Pure: the inputs are the probe's facts (frame count, average fps, frame size), nothing is read or decoded.
 */
import { VideolmError } from "../errors.js";
import { formatSeconds1dp } from "../families/qwen3-vl/timestamps.js";
import { roundHalfEven } from "../processing/smart-resize.js";

/** The policy's name, as `--policy`, MediaOptions.policy and the server's `video_url.policy` spell it. */
export const SEED_POLICY = "seed1.5";

/** Sampling frame rate by task (the report, §2.2): the code's `sampling_fps`. */
export const SEED_TASK_FPS = { general: 1, detail: 2, motion: 5, counting: 5 } as const;
export type SeedTask = keyof typeof SEED_TASK_FPS;
export const SEED_TASKS = Object.keys(SEED_TASK_FPS) as SeedTask[];

/** `SeedVLInfer.__init__` defaults (infer.py). */
export const SEED_DEFAULTS = {
  /** Pixels per visual token side: every size is a multiple of 28 and the budget counts 28×28-pixel tokens. */
  factor: 28,
  /** min_pixels = 4·28·28 */
  minPixels: 4 * 28 * 28,
  /** min_n_frames */
  minFrames: 16,
  /** max_video_length: the video's token budget */
  maxVideoTokens: 81920,
  /** max_pixels_choices / 28²: the resolution levels, in tokens per frame, tried from the largest */
  levels: [640, 512, 384, 256, 160, 128] as readonly number[],
  /** get_resized_hw_for_Navit's max_ratio */
  maxRatio: 200,
} as const;

export interface SeedSamplingOptions {
  /** Sets the sampling frame rate (SEED_TASK_FPS); default "general" (1 fps). */
  task?: SeedTask;
  /** The sampling frame rate itself (the code's `sampling_fps`); exclusive with `task`. */
  fps?: number;
  /** At most this many frames (a server's --max-frames), applied before the level is chosen (not in the reference). */
  frameLimit?: number;
  /** The token budget (the code's `max_video_length`); default 81,920. */
  maxVideoTokens?: number;
}

/** The probe's facts the reference reads: decord's `len(vr)`, `vr.get_avg_fps()`, and the decoded frame size. */
export interface SeedVideoSource {
  frameCount: number;
  fps: number;
  width: number;
  height: number;
}

export interface SeedFrame {
  /** Index of the frame in the video (presentation order). */
  index: number;
  /** `round(index / fps, 1)`: the seconds the model is told. */
  seconds: number;
  /** `[seconds second]`, the text sent before the frame's image. */
  text: string;
}

export interface SeedSamplingPlan {
  policy: typeof SEED_POLICY;
  /** The task asked for (undefined when `fps` was given). */
  task?: SeedTask;
  samplingFps: number;
  /** n_frames: ceil(duration · samplingFps), at least 16, at most the video's frames (and `frameLimit`). */
  wantedFrames: number;
  /** The sampled frames, in order, each with its timestamp text. */
  frames: SeedFrame[];
  frameIndices: number[];
  /** The level chosen for every frame, in tokens (640 … 128). */
  levelTokens: number;
  /** level · 28²: the per-frame pixel budget. */
  maxPixels: number;
  /** True when even the smallest level exceeded the budget and the frames were subsampled uniformly. */
  subsampled: boolean;
  /** True when `frameLimit` lowered the frame count. */
  frameLimited: boolean;
  /** Frames × level: what the reference checks against the budget (≤ maxVideoTokens). */
  budgetTokens: number;
  maxVideoTokens: number;
  /** The size every frame is resized to (get_resized_hw_for_Navit with the level's max_pixels). */
  height: number;
  width: number;
  /** Visual tokens of the resized frames: (height / 28) · (width / 28) per frame, times the frames. */
  tokensPerFrame: number;
  tokens: number;
}

/** `math.ceil(length / fps * sampling_fps)`, at least min_n_frames, at most the video's frames (preprocess_video). */
export function seedFrameCount(frameCount: number, videoFps: number, samplingFps: number, minFrames: number = SEED_DEFAULTS.minFrames): number {
  return Math.min(Math.max(Math.ceil((frameCount / videoFps) * samplingFps), minFrames), frameCount);
}

/**
 * `np.linspace(start, stop, num).round().astype(int)` in float64: numpy's function_base.linspace computes
 * `arange(num) * step + start` with step = (stop − start) / (num − 1), then sets the last value to `stop`;
 * np.round rounds half to even.
 */
export function numpyLinspaceRound(start: number, stop: number, num: number): number[] {
  if (num <= 0) return [];
  if (num === 1) return [roundHalfEven(start)];
  const step = (stop - start) / (num - 1);
  const out = new Array<number>(num);
  for (let i = 0; i < num - 1; i++) out[i] = roundHalfEven(i * step + start);
  out[num - 1] = roundHalfEven(stop);
  return out;
}

/**
 * The level loop of `preprocess_video`: the first level (largest first) at which `frames · level` does not exceed
 * the budget (`len(frame_indices) * max_pixels / 28 / 28 > max_video_length` is the test for "too many"); when even
 * the last level is too many, the number of frames kept is `int(max_video_length / max_pixels * 28 * 28)`.
 */
export function chooseSeedLevel(frames: number, maxVideoTokens: number = SEED_DEFAULTS.maxVideoTokens, levels: readonly number[] = SEED_DEFAULTS.levels): { levelTokens: number; keptFrames: number; subsampled: boolean } {
  const f = SEED_DEFAULTS.factor;
  for (const [round, level] of levels.entries()) {
    const maxPixels = level * f * f;
    // Python float arithmetic, left to right, as the reference writes it.
    if ((frames * maxPixels) / f / f > maxVideoTokens) {
      if (round === levels.length - 1) {
        return { levelTokens: level, keptFrames: Math.trunc((maxVideoTokens / maxPixels) * f * f), subsampled: true };
      }
      continue;
    }
    return { levelTokens: level, keptFrames: frames, subsampled: false };
  }
  throw new VideolmError("seed1.5 sampling: no resolution levels");
}

/**
 * `get_resized_hw_for_Navit(height, width, min_pixels, max_pixels, max_ratio=200, factor=28)`: each side rounded to a
 * multiple of 28 (half to even, at least 28); when the area exceeds max_pixels, both sides scaled by
 * sqrt(h·w / max_pixels) and floored to 28; when below min_pixels, scaled up and ceiled. Where the reference would give
 * a 0-pixel side (a strip near the 200:1 limit at a small level), this throws instead.
 */
export function seedResize(height: number, width: number, maxPixels: number, minPixels: number = SEED_DEFAULTS.minPixels, factor: number = SEED_DEFAULTS.factor): [number, number] {
  if (!(Number.isInteger(height) && Number.isInteger(width) && height > 0 && width > 0)) {
    throw new VideolmError(`seed1.5 sampling: frame size ${width}x${height} must be positive integers`);
  }
  const ratio = Math.max(height, width) / Math.min(height, width);
  if (ratio > SEED_DEFAULTS.maxRatio) {
    throw new VideolmError(`seed1.5 sampling: frame size ${width}x${height} has aspect ratio ${ratio}, more than the ${SEED_DEFAULTS.maxRatio} Seed1.5-VL accepts; crop or pad the video first`);
  }
  let h = Math.max(factor, roundHalfEven(height / factor) * factor);
  let w = Math.max(factor, roundHalfEven(width / factor) * factor);
  if (h * w > maxPixels) {
    const beta = Math.sqrt((height * width) / maxPixels);
    h = Math.floor(height / beta / factor) * factor;
    w = Math.floor(width / beta / factor) * factor;
  } else if (h * w < minPixels) {
    const beta = Math.sqrt(minPixels / (height * width));
    h = Math.ceil((height * beta) / factor) * factor;
    w = Math.ceil((width * beta) / factor) * factor;
  }
  if (h === 0 || w === 0) {
    throw new VideolmError(`seed1.5 sampling: a ${width}x${height} frame at ${maxPixels / (factor * factor)} tokens would be ${w}x${h} pixels; the frames are too narrow for this many frames (use fewer frames: a lower --fps)`);
  }
  return [h, w];
}

/** The seconds Seed1.5-VL is told for frame `index`: Python `round(index / fps, 1)`. */
export function seedFrameSeconds(index: number, fps: number): number {
  return Number(formatSeconds1dp(index / fps));
}

/**
 * `f'[{round(index / fps, 1)} second]'`: Python prints the rounded float with repr, which for one decimal is the
 * decimal itself ("[0.0 second]", "[12.3 second]"); round() and the `.1f` format both round the exact binary value,
 * ties to even, so formatSeconds1dp gives the same digits.
 */
export function seedTimestampText(index: number, fps: number): string {
  return `[${formatSeconds1dp(index / fps)} second]`;
}

/** The sampling frame rate of the options: `fps`, else the task's, else 1 (the code's default sampling_fps). */
export function seedSamplingFps(options: SeedSamplingOptions): number {
  if (options.fps !== undefined && options.task !== undefined) {
    throw new VideolmError(`seed1.5 sampling: give a task (${SEED_TASKS.join(", ")}) or an fps, not both`);
  }
  if (options.task !== undefined && !SEED_TASKS.includes(options.task)) {
    throw new VideolmError(`seed1.5 sampling: unknown task ${JSON.stringify(options.task)} (known: ${SEED_TASKS.join(", ")})`);
  }
  const fps = options.fps ?? SEED_TASK_FPS[options.task ?? "general"];
  if (!(Number.isFinite(fps) && fps > 0)) throw new VideolmError(`seed1.5 sampling: fps must be a positive number, got ${fps}`);
  return fps;
}

/** Everything `preprocess_video` decides before decoding a pixel (see the file comment). */
export function planSeedSampling(video: SeedVideoSource, options: SeedSamplingOptions = {}): SeedSamplingPlan {
  const samplingFps = seedSamplingFps(options);
  if (!(Number.isInteger(video.frameCount) && video.frameCount > 0)) throw new VideolmError("seed1.5 sampling: the video has no frames");
  if (!(Number.isFinite(video.fps) && video.fps > 0)) throw new VideolmError("seed1.5 sampling: the video's frame rate must be a positive number");
  const budget = options.maxVideoTokens ?? SEED_DEFAULTS.maxVideoTokens;
  if (!(Number.isFinite(budget) && budget > 0)) throw new VideolmError(`seed1.5 sampling: the token budget must be a positive number, got ${budget}`);
  if (options.frameLimit !== undefined && !(Number.isInteger(options.frameLimit) && options.frameLimit >= 1)) {
    throw new VideolmError(`seed1.5 sampling: the frame limit must be a positive integer, got ${options.frameLimit}`);
  }
  const wantedFrames = seedFrameCount(video.frameCount, video.fps, samplingFps);
  const frameLimited = options.frameLimit !== undefined && options.frameLimit < wantedFrames;
  const nFrames = frameLimited ? options.frameLimit! : wantedFrames;
  let frameIndices = numpyLinspaceRound(0, video.frameCount - 1, nFrames);
  const { levelTokens, keptFrames, subsampled } = chooseSeedLevel(frameIndices.length, budget);
  if (subsampled) {
    if (keptFrames < 1) throw new VideolmError(`seed1.5 sampling: a budget of ${budget} tokens holds no frame at ${levelTokens} tokens`);
    const picked = frameIndices;
    frameIndices = numpyLinspaceRound(0, picked.length - 1, keptFrames).map((i) => picked[i]);
  }
  const f = SEED_DEFAULTS.factor;
  const maxPixels = levelTokens * f * f;
  const [height, width] = seedResize(video.height, video.width, maxPixels);
  const tokensPerFrame = (height / f) * (width / f);
  const frames = frameIndices.map((index) => ({ index, seconds: seedFrameSeconds(index, video.fps), text: seedTimestampText(index, video.fps) }));
  return {
    policy: SEED_POLICY,
    ...(options.fps === undefined ? { task: options.task ?? "general" } : {}),
    samplingFps,
    wantedFrames,
    frames,
    frameIndices,
    levelTokens,
    maxPixels,
    subsampled,
    frameLimited,
    budgetTokens: frameIndices.length * levelTokens,
    maxVideoTokens: budget,
    height,
    width,
    tokensPerFrame,
    tokens: tokensPerFrame * frameIndices.length,
  };
}

/** One OpenAI-style content part, as Seed1.5-VL's API (Volcano Engine Ark, OpenAI-compatible) takes them. */
export type SeedContentPart = { type: "text"; text: string } | { type: "image_url"; image_url: { url: string; detail: "high" | "low" } };

/**
 * The content parts of a sampled video as `construct_messages` (infer.py) sends it: for each frame the text
 * `[t second]`, then the frame as an image (`detail: "high"` there; the cookbook notebook
 * Video/video_understanding.ipynb sends "low"). `imageUrls[i]` is frame i resized to `plan.width × plan.height`
 * and encoded (infer.py: JPEG, `data:image/jpeg;base64,…`).
 */
export function seedContentParts(plan: SeedSamplingPlan, imageUrls: readonly string[], detail: "high" | "low" = "high"): SeedContentPart[] {
  if (imageUrls.length !== plan.frames.length) throw new VideolmError(`seed1.5 sampling: ${imageUrls.length} images for ${plan.frames.length} planned frames`);
  return plan.frames.flatMap((frame, i) => [
    { type: "text" as const, text: frame.text },
    { type: "image_url" as const, image_url: { url: imageUrls[i], detail } },
  ]);
}
