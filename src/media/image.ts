/**
 * Still-image decoding to 8-bit RGB (PNG, JPEG, WebP, and whatever else sharp/libvips reads).
 *
 * Matches what the Python reference does with `PIL.Image.open(...)`, EXIF orientation applied
 * (`ImageOps.exif_transpose`, as transformers' `load_image` does), then `.convert("RGB")`:
 *  - alpha is dropped without compositing onto a background (PIL RGBA→RGB keeps the stored RGB bytes);
 *  - greyscale is replicated into R, G and B;
 *  - embedded ICC profiles are ignored (PIL's convert does not apply them; sharp would convert to sRGB).
 * Checked against PIL 12.3 (oracle venv): JPEG q75 4:2:0, q90, q95 4:4:4 with EXIF orientation 6, and an RGBA
 * PNG decode to identical bytes. (Other JPEG builds could differ by ±1 from IDCT / chroma upsampling choices.)
 *
 * Decompression bombs (issue 14): a 223-byte JPEG or a 783 KB PNG can claim 16383×16383 pixels (1.6 GB and seconds
 * to decode). The size is read from the header first (sharp `metadata()` decodes no pixels) and an image over
 * `maxInputPixels` is refused before decoding; sharp's `limitInputPixels` is set to the same limit as a second layer.
 * See limits.ts.
 * Other files: images are always decoded from a Buffer, never from a path — given a path, libvips's SVG loader
 * follows `<image href="file:…">` and relative references to other local files; from a Buffer it has no base and
 * loads none (checked: an SVG referencing a red PNG decodes black; test/media-hostile.test.ts).
 */
import { readFile } from "node:fs/promises";
import sharp from "sharp";

import { VideolmError } from "../errors.js";
import type { RgbImage } from "../processing/rgb-image.js";
import { pixelLimitError, resolveMaxInputPixels } from "./limits.js";

export type { RgbImage } from "../processing/rgb-image.js";
export { imageProcessorResize } from "../processing/qwen2-vl-resize.js";

function describeSource(source: string | Buffer): string {
  return typeof source === "string" ? source : `<image buffer, ${source.length} bytes>`;
}

export interface DecodeImageOptions {
  /** Largest accepted stored size, width × height (default DEFAULT_MAX_INPUT_PIXELS); checked before decoding. */
  maxInputPixels?: number;
  /** How to name the image in messages (default: the path, or a description of the buffer). */
  label?: string;
}

/**
 * Decodes a file path or an in-memory encoded image into HWC RGB bytes.
 * Throws VideolmError naming the file on: missing/unreadable file, unsupported or corrupt data, truncation, a size
 * over `maxInputPixels` (before decoding anything).
 */
export async function decodeImage(source: string | Buffer, opts: DecodeImageOptions = {}): Promise<RgbImage> {
  const name = opts.label ?? describeSource(source);
  const maxInputPixels = resolveMaxInputPixels(opts.maxInputPixels);
  let bytes: Buffer;
  if (typeof source === "string") {
    try {
      bytes = await readFile(source);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const reason =
        code === "ENOENT" ? "file not found" : code === "EISDIR" ? "is a directory" : (err as Error).message;
      throw new VideolmError(`cannot read image ${name}: ${reason}`, { cause: err });
    }
  } else {
    bytes = source;
  }
  if (bytes.length === 0) throw new VideolmError(`cannot decode image ${name}: the file is empty`);

  // The header first: refuse a decompression bomb before a pixel is decoded.
  const header = await sharp(bytes, { limitInputPixels: false })
    .metadata()
    .catch((err: unknown) => {
      throw new VideolmError(`cannot decode image ${name}: ${firstLine(err)} (expected a valid PNG, JPEG or WebP file)`, { cause: err });
    });
  const width = header.width ?? 0;
  const height = header.height ?? 0;
  if (width * height > maxInputPixels) throw pixelLimitError(name, width, height, maxInputPixels);

  try {
    const { data, info } = await sharp(bytes, {
      autoOrient: true, // apply and drop the EXIF Orientation tag
      ignoreIcc: true,
      failOn: "error", // also rejects truncated data, as PIL does unless LOAD_TRUNCATED_IMAGES is set
      limitInputPixels: maxInputPixels, // second layer, should the header have understated the size
    })
      .removeAlpha()
      .toColourspace("srgb") // greyscale → 3 equal channels; 16-bit → 8-bit
      .raw({ depth: "uchar" })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) {
      throw new Error(`decoder produced ${info.channels} channels, expected 3`);
    }
    // Copy out of sharp's (possibly pooled) Buffer into a plain, exactly-sized Uint8Array.
    return { width: info.width, height: info.height, data: new Uint8Array(data) };
  } catch (err) {
    throw new VideolmError(`cannot decode image ${name}: ${firstLine(err)} (expected a valid PNG, JPEG or WebP file)`, { cause: err });
  }
}

function firstLine(err: unknown): string {
  return (err as Error).message.split("\n")[0].trim();
}
