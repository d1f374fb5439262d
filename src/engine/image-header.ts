/**
 * An image's displayed size from its header alone (sharp `metadata()`, which decodes no pixels): what planning needs.
 * EXIF orientations 5–8 swap width and height, as decoding with auto-orientation does (media/image.ts). The stored
 * size is checked against `maxInputPixels` here too, so a plan refuses what decoding would refuse.
 */
import { readFile } from "node:fs/promises";
import sharp from "sharp";
import { VideolmError } from "../errors.js";
import { pixelLimitError, resolveMaxInputPixels } from "../media/limits.js";
import { withLocalVideoFile } from "../media/sources.js";

export interface ImageHeader {
  width: number;
  height: number;
}

async function headerOfBytes(bytes: Buffer, name: string, maxInputPixels: number | undefined): Promise<ImageHeader> {
  if (bytes.length === 0) throw new VideolmError(`cannot decode image ${name}: the file is empty`);
  const meta = await sharp(bytes, { limitInputPixels: false })
    .metadata()
    .catch((err: unknown) => {
      throw new VideolmError(`cannot decode image ${name}: ${String((err as Error)?.message ?? err).split("\n")[0].trim()} (expected a valid PNG, JPEG or WebP file)`, { cause: err });
    });
  const width = meta.width ?? 0;
  const height = meta.height ?? 0;
  const limit = resolveMaxInputPixels(maxInputPixels);
  if (width * height > limit) throw pixelLimitError(name, width, height, limit);
  if (!(width > 0 && height > 0)) throw new VideolmError(`cannot decode image ${name}: its header gives no size`);
  const swap = (meta.orientation ?? 1) >= 5;
  return swap ? { width: height, height: width } : { width, height };
}

/** The size of an image given as a path, a Buffer, or a file:// / http(s):// / data: URL. */
export async function readImageHeader(source: string | URL | Buffer, maxInputPixels: number | undefined, signal?: AbortSignal): Promise<ImageHeader> {
  if (Buffer.isBuffer(source)) return headerOfBytes(source, `<image buffer, ${source.length} bytes>`, maxInputPixels);
  const text = source instanceof URL ? source.href : source;
  const read = async (file: string, name: string) => {
    let bytes: Buffer;
    try {
      bytes = await readFile(file);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new VideolmError(`cannot read image ${name}: ${code === "ENOENT" ? "file not found" : code === "EISDIR" ? "is a directory" : (err as Error).message}`, { cause: err });
    }
    return headerOfBytes(bytes, name, maxInputPixels);
  };
  if (!/^(https?|data|file):/i.test(text)) return read(text, text);
  return withLocalVideoFile(text, { signal }, (file) => read(file.path, file.label));
}
