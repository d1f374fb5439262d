/**
 * The shape of a request: messages with text, image and video parts (the library's equivalent of OpenAI /
 * Hugging Face content parts), and the per-part media options.
 */
import type { RgbImage } from "../processing/rgb-image.js";
import type { VisionBatch } from "./sessions.js";
import type { SamplingPolicyName } from "../sampling/policy.js";
import type { SeedSamplingPlan, SeedTask } from "../sampling/seed-1-5.js";

export { DEFAULT_MAX_INPUT_PIXELS } from "../media/limits.js";

/** A path, a file:// / http(s):// / data: URL, or the file's bytes. */
export type MediaSource = string | URL | Buffer;

/** Sampling and resizing options of one video (qwen-vl-utils names, camelCased). Every option is per part. */
export interface MediaOptions {
  /** Frames per second to sample (default: the family's, 2 for Qwen). Exclusive with nframes. */
  fps?: number;
  /** Exact number of frames to sample (rounded to the temporal patch). Exclusive with fps. */
  nframes?: number;
  minFrames?: number;
  maxFrames?: number;
  /** Per-frame pixel bounds after resizing. */
  minPixels?: number;
  maxPixels?: number;
  /** Pixel budget shared by all frames of a video. */
  totalPixels?: number;
  /** Clip range in seconds. */
  start?: number;
  end?: number;
  /**
   * Frame times the model sees and the user reads: "presentation" (default) = the frames' presentation timestamps;
   * "reference" = index / average fps as qwen-vl-utils computes them (wrong on variable-frame-rate video). Which frames
   * are sampled does not change. CLI `--frame-times`. See src/media/video.ts.
   */
  frameTimes?: "presentation" | "reference";
  /**
   * EVS token pruning of videos (src/engine/evs.ts, vLLM's rule): the fraction of a video's merged tokens to drop,
   * in [0, 1); 0 or absent keeps every token (the reference's answer). Per video part, or for every video of the
   * request. The first temporal patch is always kept whole; the kept tokens keep their rotary coordinates. CLI
   * `--prune`, server `video_url.prune`.
   */
  prune?: number;
  /**
   * Largest accepted stored size, width × height, of an image or of one video frame (default
   * DEFAULT_MAX_INPUT_PIXELS = 50,000,000; CLI `--max-input-pixels`). Read from the header and checked before anything
   * is decoded; larger media is refused with an error, never downscaled. Applies to images as well as videos: set it in
   * the request's media options (the server sets it per request; wire requests cannot).
   */
  maxInputPixels?: number;
  /**
   * A hard upper bound on the frames sampled from one video (the server's `--max-frames`), applied on top of the
   * part's own options and the checkpoint's defaults, never raising them; the plan says when it shaped a video.
   * Not a per-part option: set it in the request's media options.
   */
  frameLimit?: number;
  /**
   * InternVL-Flash checkpoints' resolution router, for the whole request (one decision over all its tiles and frames):
   * `false` gives every tile its 256 tokens (the plain InternVL path), an object overrides the checkpoint's
   * `flash_relative_threshold` (`relative`, a quantile in [0, 1]) and/or `flash_absolute_threshold` (`absolute`, the
   * floor on the gate's probability). CLI `--flash-relative`, `--flash-absolute`, `--no-flash`. Ignored by other
   * families. Not a per-part option: set it in the request's media options.
   */
  flash?: false | { relative?: number; absolute?: number };
  /**
   * A named sampling policy that decides a video's frames and per-frame pixel budget instead of the family's own
   * sampling: "seed1.5" = Seed1.5-VL's dynamic frame-resolution sampling (src/sampling/seed-1-5.ts; Qwen-VL families,
   * plan-level: the family's processor still resizes to its own factor and patchifies). With it, `fps` is the
   * policy's sampling rate (exclusive with `policyTask`); the other frame/pixel options and start/end are refused.
   * CLI `--policy`, server `video_url.policy`.
   */
  policy?: SamplingPolicyName;
  /** The policy's task hint: Seed1.5-VL samples 1 fps ("general", default), 2 ("detail"), 5 ("motion", "counting"). CLI `--policy-task`. */
  policyTask?: SeedTask;
}

export interface TextPart {
  type: "text";
  text: string;
}
export interface ImagePart extends Pick<MediaOptions, "minPixels" | "maxPixels"> {
  type: "image";
  image: MediaSource | RgbImage;
}
export interface VideoPart extends MediaOptions {
  type: "video";
  /** A video file / URL, a list of image files used as frames, or raw RGB frames with their fps. */
  video: MediaSource | MediaSource[] | { frames: RgbImage[]; fps: number };
}
export type ContentPart = TextPart | ImagePart | VideoPart;

export interface ChatRequestMessage {
  role: "system" | "user" | "assistant";
  content: string | ContentPart[];
}

/**
 * A limit that shaped a visual's plan (or the request's): `max_frames` capped the frame count, `total_pixels` or
 * `max_pixels` the frame size, `min_frames` raised the count, … `source` says whose setting it was.
 */
export interface PlanLimit {
  /** qwen-vl-utils / request option name: max_frames, min_frames, total_pixels, max_pixels, min_pixels, max_new_tokens, frame_limit. */
  name: string;
  value: number;
  /** "request" (the part's or the command's option), "checkpoint" (its video_preprocessor_config.json), "default" (qwen-vl-utils), "server" (--max-frames), "fit" (chosen so the prompt fits the context). */
  source: "request" | "checkpoint" | "default" | "server" | "fit";
  /** One line for people, e.g. "max_frames 64 (checkpoint default): 120 frames at 2 fps capped to 64". */
  note: string;
}

/**
 * One image or video as planned, before any pixel is decoded: everything `inspect` shows and the prompt needs (the
 * prompt's placeholder count depends only on the grid, the positions only on grids and timestamps).
 */
export interface VisualPlan {
  kind: "image" | "video";
  /** Where it came from, for messages and `inspect`. */
  source: string;
  /** Patch grid [t, h, w] (t = temporal patches: frame pairs). */
  grid: [number, number, number];
  /** Merged visual tokens it occupies in the prompt. */
  tokens: number;
  /** Resized frame size [height, width]. */
  size: [number, number];
  /** Videos: indices of the sampled frames in the source, their times in seconds, the sampling rate. */
  frameIndices?: number[];
  timestamps?: number[];
  sampleFps?: number;
  /** Qwen2.5-VL: seconds per temporal grid step. */
  secondPerGrid?: number;
  /**
   * Videos: the EVS pruning rate asked for (MediaOptions.prune, the part's over the request's), set by the preparer
   * when above 0; `tokens` stays the planned upper bound, the kept count is decided after the vision pass.
   */
  prune?: number;
  /** The limits that shaped this visual (videos: frame count and size caps that were reached). */
  limits?: PlanLimit[];
  /**
   * Video files: the probe facts and sampling options the plan came from, so the family can re-plan it with other
   * limits without reading the file again (fitting the context, suggesting a cheaper setting). Plain data.
   */
  resample?: { frameCount: number; fps: number; width: number; height: number; options: Record<string, number | undefined> };
  /** Videos sampled by a named policy (MediaOptions.policy): its plan (frames, level, its own frame size, texts). */
  policy?: SeedSamplingPlan;
}

/** One image or video after sampling and patching: what the vision encoder consumes. */
export interface PreparedVisual extends VisualPlan {
  batch: VisionBatch;
  /** Milliseconds spent reading and decoding its pixels (0 when its frames came from the frame cache). */
  decodeMs?: number;
}
