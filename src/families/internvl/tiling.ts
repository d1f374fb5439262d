/**
 * InternVL dynamic tiling, as the model card code of OpenGVLab/InternVL3_5-* does it (`find_closest_aspect_ratio`,
 * `dynamic_preprocess`, `load_image`):
 *   - candidate grids (cols, rows) with min_num ≤ cols·rows ≤ max_num, sorted by cols·rows;
 *   - the grid whose cols/rows is closest to the image's width/height wins; on an exact tie a later candidate replaces
 *     the best one when the image area exceeds half the grid's canvas (0.5 · size² · cols · rows);
 *   - the image is resized (PIL `Image.resize`, bicubic: Pillow's default) to (size·cols) × (size·rows) and cut into
 *     size × size tiles row by row; with more than one tile and use_thumbnail, a size × size resize of the whole
 *     image is appended (`load_image`: use_thumbnail=True, max_num=12). Video frames use max_num=1: one tile, no
 *     thumbnail, i.e. a plain resize to size × size.
 * The model card builds the candidates in a Python `set` before the stable sort by area, so its order among grids of
 * equal area is the set's hash order; here they are ordered by cols then rows (transformers' GotOcr2 order). The
 * order only matters on an exact tie between two grids of equal area, which is never the closest one for
 * max_num ≤ 12 (the grid between them is closer); test/fixtures/internvl/tables.json shows both choices agreeing.
 * The tiles then go through `T.Resize((size, size))` (a no-op at that size), ToTensor and the ImageNet Normalize.
 */
import { VideolmError } from "../../errors.js";
import { resizeBicubicPillow } from "../../processing/resize.js";
import type { RgbImage } from "../../processing/rgb-image.js";

export interface TilingOptions {
  minNum?: number;
  maxNum?: number;
  useThumbnail?: boolean;
}

/** (cols, rows) with minNum ≤ cols·rows ≤ maxNum, sorted by cols·rows (ties: cols, then rows ascending). */
export function candidateGrids(minNum: number, maxNum: number): [number, number][] {
  if (!Number.isInteger(minNum) || !Number.isInteger(maxNum) || minNum < 1 || maxNum < minNum) {
    throw new VideolmError(`tile limits must satisfy 1 <= min (${minNum}) <= max (${maxNum})`);
  }
  const out: [number, number][] = [];
  for (let i = 1; i <= maxNum; i++) for (let j = 1; j <= maxNum; j++) if (i * j >= minNum && i * j <= maxNum) out.push([i, j]);
  return out.sort((a, b) => a[0] * a[1] - b[0] * b[1]); // stable
}

/** The model card's find_closest_aspect_ratio (float64, the same operations in the same order). */
export function findClosestAspectRatio(aspectRatio: number, targetRatios: readonly (readonly [number, number])[], width: number, height: number, imageSize: number): [number, number] {
  let bestRatioDiff = Infinity;
  let best: [number, number] = [1, 1];
  const area = width * height;
  for (const ratio of targetRatios) {
    const ratioDiff = Math.abs(aspectRatio - ratio[0] / ratio[1]);
    if (ratioDiff < bestRatioDiff) {
      bestRatioDiff = ratioDiff;
      best = [ratio[0], ratio[1]];
    } else if (ratioDiff === bestRatioDiff) {
      if (area > 0.5 * imageSize * imageSize * ratio[0] * ratio[1]) best = [ratio[0], ratio[1]];
    }
  }
  return best;
}

/** The (cols, rows) grid dynamic_preprocess picks for a width × height image. */
export function chooseTileGrid(width: number, height: number, imageSize: number, options: TilingOptions = {}): [number, number] {
  const cands = candidateGrids(options.minNum ?? 1, options.maxNum ?? 12);
  return findClosestAspectRatio(width / height, cands, width, height, imageSize);
}

/** Tiles (incl. the thumbnail) an image of width × height becomes. */
export function tileCount(width: number, height: number, imageSize: number, options: TilingOptions = {}): number {
  const [cols, rows] = chooseTileGrid(width, height, imageSize, options);
  const blocks = cols * rows;
  return blocks + ((options.useThumbnail ?? true) && blocks !== 1 ? 1 : 0);
}

/** Pillow's resize (bicubic), which returns a copy when the size is unchanged. */
function pilResize(image: RgbImage, height: number, width: number): RgbImage {
  return image.width === width && image.height === height ? image : resizeBicubicPillow(image, height, width);
}

function crop(image: RgbImage, x0: number, y0: number, size: number): RgbImage {
  const data = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++) {
    const from = ((y0 + y) * image.width + x0) * 3;
    data.set(image.data.subarray(from, from + size * 3), y * size * 3);
  }
  return { width: size, height: size, data };
}

/** The model card's dynamic_preprocess: the tiles of `image` (row by row) and, when asked, the thumbnail last. */
export function dynamicPreprocess(image: RgbImage, imageSize: number, options: TilingOptions = {}): RgbImage[] {
  const [cols, rows] = chooseTileGrid(image.width, image.height, imageSize, options);
  const resized = pilResize(image, imageSize * rows, imageSize * cols);
  const tiles: RgbImage[] = [];
  for (let i = 0; i < cols * rows; i++) tiles.push(crop(resized, (i % cols) * imageSize, Math.floor(i / cols) * imageSize, imageSize));
  if ((options.useThumbnail ?? false) && tiles.length !== 1) tiles.push(pilResize(image, imageSize, imageSize));
  return tiles;
}

/** A video frame: one tile (max_num=1), i.e. the frame resized to size × size. */
export function frameTile(frame: RgbImage, imageSize: number): RgbImage {
  return pilResize(frame, imageSize, imageSize);
}
