/** Frames sent to a backend as images: JPEG (what the Qwen and Seed cookbooks send), at high quality since the backend resizes and patches them again. */
import sharp from "sharp";
import type { RgbImage } from "../processing/rgb-image.js";

export const FRAME_JPEG_QUALITY = 95;

export async function frameJpeg(frame: RgbImage, format: "jpeg" | "png" = "jpeg"): Promise<Buffer> {
  const img = sharp(Buffer.from(frame.data.buffer, frame.data.byteOffset, frame.data.byteLength), { raw: { width: frame.width, height: frame.height, channels: 3 } });
  return format === "jpeg" ? img.jpeg({ quality: FRAME_JPEG_QUALITY }).toBuffer() : img.png().toBuffer();
}
