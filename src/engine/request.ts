/**
 * The shape of a request: messages with text, image and video parts (the library's equivalent of OpenAI /
 * Hugging Face content parts), and the per-part media options.
 */
import type { RgbImage } from "../processing/rgb-image.js";
import type { VisionBatch } from "./sessions.js";

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
   * Largest accepted stored size, width × height, of an image or of one video frame (default
   * DEFAULT_MAX_INPUT_PIXELS = 50,000,000; CLI `--max-input-pixels`). Read from the header and checked before anything
   * is decoded; larger media is refused with an error, never downscaled. Applies to images as well as videos: set it in
   * the request's media options (the server sets it per request; wire requests cannot).
   */
  maxInputPixels?: number;
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

/** One image or video after sampling and patching: what the vision encoder consumes and `inspect` shows. */
export interface PreparedVisual {
  kind: "image" | "video";
  /** Where it came from, for messages and `inspect`. */
  source: string;
  batch: VisionBatch;
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
}
