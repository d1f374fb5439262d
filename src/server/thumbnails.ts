/**
 * Thumbnails of what the model sees: the sampled, resized frames recovered from a visual's `pixel_values`, so the
 * web app shows exactly the frames and size the vision encoder gets (not a separate decode).
 *
 * Inverts the Qwen2-VL / Qwen2.5-VL patch layout (src/processing/qwen2-vl-patches.ts `patchifyFrames`):
 *   row    = ((t·(gh/m) + bh)·(gw/m) + bw)·m² + mh·m + mw
 *   column = ((c·tp + k)·P + py)·P + px        frame t·tp + k, pixel ((bh·m+mh)·P + py, (bw·m+mw)·P + px)
 * and the normalisation x' = (x − 255·mean) / (255·std), with the image_mean / image_std of the checkpoint's
 * preprocessor_config.json (HF's field names; CLIP statistics when absent). P, tp and m are derived from the
 * visual itself (size / grid, row length, tokens), so nothing family-specific is hard-coded beyond the layout.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import sharp from "sharp";
import type { PreparedVisual } from "../engine/request.js";
import { OPENAI_CLIP_MEAN, OPENAI_CLIP_STD } from "../processing/qwen2-vl-patches.js";
import type { RgbImage } from "../processing/rgb-image.js";

export interface Normalisation {
  mean: readonly number[];
  std: readonly number[];
}

export function readNormalisation(checkpointDir: string): Normalisation {
  try {
    const raw = JSON.parse(fs.readFileSync(path.join(checkpointDir, "preprocessor_config.json"), "utf8")) as Record<string, unknown>;
    const ok = (v: unknown): v is number[] => Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === "number");
    return { mean: ok(raw.image_mean) ? raw.image_mean : OPENAI_CLIP_MEAN, std: ok(raw.image_std) ? raw.image_std : OPENAI_CLIP_STD };
  } catch {
    return { mean: OPENAI_CLIP_MEAN, std: OPENAI_CLIP_STD };
  }
}

/** The frames of a visual (the sampled ones, without temporal padding), or null when the layout does not fit. */
export function framesOfVisual(v: PreparedVisual, norm: Normalisation): RgbImage[] | null {
  const [gt, gh, gw] = v.batch.grid;
  const [H, W] = v.size;
  const P = H / gh;
  const rows = gt * gh * gw;
  const rowLength = v.batch.pixelValues.length / rows;
  const tp = rowLength / (3 * P * P);
  const m = Math.sqrt((gt * gh * gw) / v.tokens);
  if (![P, tp, m, rowLength].every((x) => Number.isInteger(x) && x > 0) || W / gw !== P || gh % m !== 0 || gw % m !== 0) return null;
  const count = v.kind === "video" ? (v.frameIndices?.length ?? gt * tp) : 1;
  const scale = [0, 1, 2].map((c) => Math.fround(norm.std[c] * 255));
  const offset = [0, 1, 2].map((c) => Math.fround(norm.mean[c] * 255));
  const frames: RgbImage[] = [];
  const px = v.batch.pixelValues;
  for (let f = 0; f < Math.min(count, gt * tp); f++) {
    const t = Math.floor(f / tp);
    const k = f % tp;
    const data = new Uint8Array(H * W * 3);
    for (let bh = 0; bh < gh / m; bh++)
      for (let bw = 0; bw < gw / m; bw++)
        for (let mh = 0; mh < m; mh++)
          for (let mw = 0; mw < m; mw++) {
            const row = ((t * (gh / m) + bh) * (gw / m) + bw) * m * m + mh * m + mw;
            for (let c = 0; c < 3; c++)
              for (let py = 0; py < P; py++)
                for (let pxI = 0; pxI < P; pxI++) {
                  const value = px[row * rowLength + ((c * tp + k) * P + py) * P + pxI] * scale[c] + offset[c];
                  const y = (bh * m + mh) * P + py;
                  const x = (bw * m + mw) * P + pxI;
                  data[(y * W + x) * 3 + c] = Math.min(255, Math.max(0, Math.round(value)));
                }
          }
    frames.push({ width: W, height: H, data });
  }
  return frames;
}

/** JPEG thumbnail, at most `maxSide` pixels on its longer side. */
export async function encodeThumbnail(frame: RgbImage, maxSide = 240): Promise<Buffer> {
  let img = sharp(Buffer.from(frame.data.buffer, frame.data.byteOffset, frame.data.byteLength), { raw: { width: frame.width, height: frame.height, channels: 3 } });
  if (Math.max(frame.width, frame.height) > maxSide) img = img.resize({ width: maxSide, height: maxSide, fit: "inside" });
  return img.jpeg({ quality: 82 }).toBuffer();
}
