import { check } from "../errors.js";

/**
 * An 8-bit RGB image in row-major HWC order: `data[(y * width + x) * 3 + c]`, c = 0 R, 1 G, 2 B.
 * This is the layout FFmpeg (`-pix_fmt rgb24`) and sharp (`.raw()`) produce; the reference's CHW tensors are
 * the same pixels transposed.
 */
export interface RgbImage {
  width: number;
  height: number;
  /** length = height · width · 3 */
  data: Uint8Array;
}

/** Throws unless `image` is a well-formed RgbImage; `what` names it in the message. */
export function checkRgbImage(image: RgbImage, what: string): void {
  check(
    Number.isInteger(image.width) && Number.isInteger(image.height) && image.width > 0 && image.height > 0,
    () => `${what}: image size ${image.width}x${image.height} is not a positive integer size`,
  );
  check(
    image.data.length === image.width * image.height * 3,
    () =>
      `${what}: RGB buffer has ${image.data.length} bytes, expected ${image.width}x${image.height}x3 = ` +
      `${image.width * image.height * 3}`,
  );
}
