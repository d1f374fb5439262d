/**
 * Qwen2-VL pixel_values and vision positions vs transformers 4.57.6 (Qwen2VLImageProcessorFast — what
 * AutoProcessor loads — and Qwen2VLVideoProcessor), fixtures from tools/oracle/record_processing.py.
 * End to end from the synthetic frames: smart_resize + uint8 bicubic resize + normalise + patchify.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

import { VideolmError } from "../src/errors.js";
import {
  OPENAI_CLIP_MEAN,
  OPENAI_CLIP_STD,
  patchifyFrames,
  visionPositionIds,
} from "../src/processing/qwen2-vl-patches.js";
import { imageProcessorResize } from "../src/processing/qwen2-vl-resize.js";
import type { RgbImage } from "../src/processing/rgb-image.js";
import { syntheticImage } from "./fixtures/processing/synthetic-image.js";

interface PixelCase {
  kind: "image" | "video";
  frames: [number, number, "noise" | "smooth", number][];
  min_pixels: number;
  max_pixels: number;
  shape: [number, number];
  grid_thw: [number, number, number];
  sha256_f32le: string;
  sum: number;
  abs_sum: number;
  at: Record<string, number>;
}
const fixture = JSON.parse(
  readFileSync(new URL("./fixtures/processing/qwen2_vl_pixels.json", import.meta.url), "utf8"),
) as { cases: PixelCase[]; vision_position_ids: { grid_thw: [number, number, number]; merge: number; ids: number[] }[] };

const opts = { patchSize: 14, temporalPatchSize: 2, mergeSize: 2, mean: OPENAI_CLIP_MEAN, std: OPENAI_CLIP_STD };

describe("Qwen2-VL pixel_values", () => {
  it.each(fixture.cases.map((c) => [`${c.kind} ${c.frames.length} frame(s) ${c.frames[0][0]}x${c.frames[0][1]}`, c] as const))(
    "%s matches the transformers processor bit-exactly",
    (_name, c) => {
      const frames: RgbImage[] = c.frames.map(([h, w, pattern, seed]) =>
        imageProcessorResize(syntheticImage(h, w, pattern, seed), {
          minPixels: c.min_pixels,
          maxPixels: c.max_pixels,
          patchSize: 14,
          mergeSize: 2,
        }),
      );
      const { pixelValues, grid, rowLength } = patchifyFrames(frames, opts);
      expect(grid).toEqual(c.grid_thw);
      expect([pixelValues.length / rowLength, rowLength]).toEqual(c.shape);
      for (const [i, v] of Object.entries(c.at)) expect(pixelValues[Number(i)]).toBe(v);
      let sum = 0;
      let absSum = 0;
      for (const v of pixelValues) {
        sum += v;
        absSum += Math.abs(v);
      }
      expect(sum).toBeCloseTo(c.sum, 6);
      expect(absSum).toBeCloseTo(c.abs_sum, 6);
      const bytes = new Uint8Array(pixelValues.buffer, pixelValues.byteOffset, pixelValues.byteLength);
      expect(createHash("sha256").update(bytes).digest("hex")).toBe(c.sha256_f32le);
    },
  );

  it("an image fills both temporal slots with the same pixels; an odd video repeats its last frame", () => {
    const img = syntheticImage(28, 56, "noise", 5);
    const { pixelValues, grid, rowLength } = patchifyFrames([img], opts);
    expect(grid).toEqual([1, 2, 4]);
    const P2 = 14 * 14;
    for (let row = 0; row < grid[0] * grid[1] * grid[2]; row++) {
      for (let c = 0; c < 3; c++) {
        const base = row * rowLength + c * 2 * P2;
        expect(pixelValues.subarray(base, base + P2)).toEqual(pixelValues.subarray(base + P2, base + 2 * P2));
      }
    }
    const three = [1, 2, 3].map((seed) => syntheticImage(28, 28, "noise", seed));
    const video = patchifyFrames(three, opts);
    expect(video.grid).toEqual([2, 2, 2]);
    const padded = patchifyFrames([...three, three[2]], opts);
    expect(video.pixelValues).toEqual(padded.pixelValues);
  });

  it("hand-derived layout: row = block-major patch, column = (c, t, py, px), CLIP normalisation", () => {
    // 28x28 frame whose R byte encodes the patch index (0..3 row-major) and G encodes the pixel row.
    const data = new Uint8Array(28 * 28 * 3);
    for (let y = 0; y < 28; y++)
      for (let x = 0; x < 28; x++) {
        data[(y * 28 + x) * 3] = (y >= 14 ? 2 : 0) + (x >= 14 ? 1 : 0);
        data[(y * 28 + x) * 3 + 1] = y % 14;
      }
    const { pixelValues, rowLength } = patchifyFrames([{ width: 28, height: 28, data }], opts);
    expect(rowLength).toBe(1176);
    const norm = (v: number, c: number) => Math.fround(Math.fround(v - Math.fround(Math.fround(OPENAI_CLIP_MEAN[c]) * 255)) / Math.fround(Math.fround(OPENAI_CLIP_STD[c]) * 255));
    for (let row = 0; row < 4; row++) {
      expect(pixelValues[row * 1176]).toBe(norm(row, 0)); // R of first pixel = patch index
      expect(pixelValues[row * 1176 + 2 * 196 + 5 * 14 + 3]).toBe(norm(5, 1)); // G, slot 0, py 5
      expect(pixelValues[row * 1176 + 3 * 196 + 9 * 14]).toBe(norm(9, 1)); // G, slot 1, py 9
    }
  });

  it("rejects frames of different sizes or not multiples of 28", () => {
    expect(() => patchifyFrames([syntheticImage(28, 28, "noise", 1), syntheticImage(28, 56, "noise", 1)], opts)).toThrow(VideolmError);
    expect(() => patchifyFrames([syntheticImage(28, 42, "noise", 1)], opts)).toThrow(/multiple of/);
  });
});

describe("visionPositionIds", () => {
  it.each(fixture.vision_position_ids.map((c) => [c.grid_thw.join("x"), c] as const))(
    "grid %s matches rot_pos_emb",
    (_name, c) => {
      expect(Array.from(visionPositionIds(c.grid_thw, c.merge))).toEqual(c.ids);
    },
  );

  it("facts §1.9 example for grid (1,4,4)", () => {
    const ids = Array.from(visionPositionIds([1, 4, 4], 2));
    expect(ids.slice(0, 16)).toEqual([0, 0, 0, 1, 1, 0, 1, 1, 0, 2, 0, 3, 1, 2, 1, 3]);
  });
});
