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
 */
import { readFile } from "node:fs/promises";
import sharp from "sharp";

import { VideolmError } from "../errors.js";
import type { RgbImage } from "../processing/rgb-image.js";

export type { RgbImage } from "../processing/rgb-image.js";
export { imageProcessorResize } from "../processing/qwen2-vl-resize.js";

function describeSource(source: string | Buffer): string {
  return typeof source === "string" ? source : `<image buffer, ${source.length} bytes>`;
}

/**
 * Decodes a file path or an in-memory encoded image into HWC RGB bytes.
 * Throws VideolmError naming the file on: missing/unreadable file, unsupported or corrupt data, truncation.
 */
export async function decodeImage(source: string | Buffer): Promise<RgbImage> {
  const name = describeSource(source);
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

  try {
    const { data, info } = await sharp(bytes, {
      autoOrient: true, // apply and drop the EXIF Orientation tag
      ignoreIcc: true,
      failOn: "error", // also rejects truncated data, as PIL does unless LOAD_TRUNCATED_IMAGES is set
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
    const reason = (err as Error).message.split("\n")[0].trim();
    throw new VideolmError(
      `cannot decode image ${name}: ${reason} (expected a valid PNG, JPEG or WebP file)`,
      { cause: err },
    );
  }
}
