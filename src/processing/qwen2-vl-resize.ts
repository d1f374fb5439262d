/**
 * The resize step of the transformers 4.57.6 Qwen2-VL processors.
 *
 * `AutoProcessor` / `AutoImageProcessor.from_pretrained` on a Qwen2-VL or Qwen2.5-VL checkpoint loads
 * `Qwen2VLImageProcessorFast` even though the checkpoints saved the slow class
 * (transformers/models/auto/image_processing_auto.py: `FORCE_FAST_IMAGE_PROCESSOR = ["Qwen2VLImageProcessor"]`,
 * whenever torchvision is installed). The fast processor resizes with torchvision v2 on the uint8 tensor, i.e.
 * torch's native uint8 antialias kernel; the `Qwen2VLVideoProcessor` does the same per frame. So both match
 * `resizeBicubicAntialias`, after the transformers copy of smart_resize (no first-rounding clamp).
 */
import { resizeBicubicAntialias } from "./resize.js";
import type { RgbImage } from "./rgb-image.js";
import { smartResize } from "./smart-resize.js";

export interface ProcessorResizeOptions {
  minPixels: number;
  maxPixels: number;
  patchSize: number;
  mergeSize: number;
}

/** smart_resize (transformers variant, factor = patchSize·mergeSize) + bicubic antialias uint8 resize. */
export function imageProcessorResize(image: RgbImage, opts: ProcessorResizeOptions): RgbImage {
  const [h, w] = smartResize(image.height, image.width, {
    factor: opts.patchSize * opts.mergeSize,
    minPixels: opts.minPixels,
    maxPixels: opts.maxPixels,
    variant: "transformers",
  });
  return resizeBicubicAntialias(image, h, w);
}
