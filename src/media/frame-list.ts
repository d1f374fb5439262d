/**
 * A video given as a list of frames (image files, or raw RGB frames + fps), prepared the way qwen-vl-utils 0.0.14
 * `fetch_video` does for a list input (vision_process.py, the `else` branch of fetch_video):
 *   1. every frame goes through `fetch_image` with the part's options: smart_resize with the *image* pixel bounds
 *      (min_pixels / max_pixels of the part, else IMAGE_MIN/MAX_TOKEN_NUM · factor²) and PIL's bicubic resize;
 *   2. the list is padded to a multiple of FRAME_FACTOR by repeating the last frame;
 *   3. the stacked clip is resized once more under the video per-frame budget (min_pixels, total_pixels / nframes),
 *      with torchvision's bicubic antialiased resize, as for decoded videos.
 * All frames are sampled (no fps sub-sampling); `sample_fps` is the list's frame rate (default 2.0).
 */
import { VideolmError } from "../errors.js";
import { resizeBicubicAntialiasFloat, resizeBicubicPillow } from "../processing/resize.js";
import type { RgbImage } from "../processing/rgb-image.js";
import { smartResize } from "../processing/smart-resize.js";
import { planVideoFrameSize, type SamplingDefaults, type VideoSamplingOptions } from "../sampling/qwen-vl-utils.js";
import { decodeImage } from "./image.js";

export interface FrameListVideo {
  frames: RgbImage[];
  frameIndices: number[];
  timestamps: number[];
  sampleFps: number;
}

function resizeTo(image: RgbImage, height: number, width: number, resize: typeof resizeBicubicPillow): RgbImage {
  return image.height === height && image.width === width ? image : resize(image, height, width);
}

/**
 * qwen-vl-utils `fetch_image`: smart_resize (qwen-vl-utils variant, factor = patch · merge) within the part's
 * min/max pixels, else the image defaults (4 · factor² … 16384 · factor²), then PIL's bicubic resize.
 */
export function fetchImage(image: RgbImage, bounds: { minPixels?: number; maxPixels?: number }, defaults: SamplingDefaults): RgbImage {
  const [h, w] = smartResize(image.height, image.width, {
    factor: defaults.factor,
    minPixels: bounds.minPixels ?? defaults.imageMinPixels,
    maxPixels: bounds.maxPixels ?? defaults.imageMaxPixels,
  });
  return resizeTo(image, h, w, resizeBicubicPillow);
}

export async function loadFrameList(
  frames: readonly (string | Buffer | RgbImage)[],
  fps: number | undefined,
  options: VideoSamplingOptions,
  defaults: SamplingDefaults,
  limits: { maxInputPixels?: number } = {},
): Promise<FrameListVideo> {
  if (frames.length === 0) throw new VideolmError("a video given as a list of frames needs at least one frame");
  if (options.nframes !== undefined || options.videoStart !== undefined || options.videoEnd !== undefined) {
    throw new VideolmError("nframes / start / end apply to video files; a list of frames is used as given (pass fewer frames instead)");
  }
  const sampleFps = fps ?? 2.0;
  if (!(sampleFps > 0)) throw new VideolmError(`the frame rate of a list of frames must be positive (got ${fps})`);
  const images: RgbImage[] = [];
  for (const f of frames) {
    // Each encoded frame's header is checked against maxInputPixels before it is decoded (decodeImage).
    const image = typeof f === "string" || Buffer.isBuffer(f) ? await decodeImage(f, { maxInputPixels: limits.maxInputPixels }) : f;
    images.push(fetchImage(image, options, defaults)); // step 1
  }
  const first = images[0];
  if (!images.every((im) => im.height === first.height && im.width === first.width)) {
    throw new VideolmError("all frames of a video must have the same size after resizing; give frames of one size");
  }
  // Step 2: pad to the temporal factor.
  while (images.length % defaults.frameFactor !== 0) images.push(images[images.length - 1]);
  // Step 3: the video per-frame budget.
  const size = planVideoFrameSize(options, first.height, first.width, images.length, defaults);
  const resized = images.map((im) => resizeTo(im, size.height, size.width, resizeBicubicAntialiasFloat));
  const frameIndices = resized.map((_, i) => i);
  return { frames: resized, frameIndices, timestamps: frameIndices.map((i) => i / sampleFps), sampleFps };
}
