/**
 * decodeImage: formats, EXIF orientation, alpha and greyscale handling like PIL `.convert("RGB")`, errors.
 * Inputs are generated here with sharp; expected pixels are the bytes written (lossless formats) or the
 * block colours (JPEG, within a tolerance).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { afterAll, describe, expect, it } from "vitest";

import { VideolmError } from "../src/errors.js";
import { decodeImage } from "../src/media/image.js";

const dir = mkdtempSync(join(tmpdir(), "videolm-image-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Raw HWC image with a pixel function. */
function raw(width: number, height: number, channels: 1 | 3 | 4, px: (x: number, y: number) => number[]) {
  const data = Buffer.alloc(width * height * channels);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data.set(px(x, y), (y * width + x) * channels);
  return sharp(data, { raw: { width, height, channels } });
}

function pixel(img: { width: number; data: Uint8Array }, x: number, y: number): number[] {
  const i = (y * img.width + x) * 3;
  return Array.from(img.data.subarray(i, i + 3));
}

describe("decodeImage", () => {
  it("decodes a PNG file exactly", async () => {
    const file = join(dir, "rgb.png");
    await raw(5, 3, 3, (x, y) => [x * 50, y * 100, 7]).png().toFile(file);
    const img = await decodeImage(file);
    expect([img.width, img.height, img.data.length]).toEqual([5, 3, 45]);
    expect(pixel(img, 4, 2)).toEqual([200, 200, 7]);
    expect(pixel(img, 1, 0)).toEqual([50, 0, 7]);
  });

  it("applies EXIF orientation 6 (rotate 90° clockwise) to a JPEG", async () => {
    // 64 wide × 32 tall: left half red, right half blue. Rotated CW, the left edge becomes the top.
    const jpeg = await raw(64, 32, 3, (x) => (x < 32 ? [255, 0, 0] : [0, 0, 255]))
      .jpeg({ quality: 100 })
      .withMetadata({ orientation: 6 })
      .toBuffer();
    expect((await sharp(jpeg).metadata()).orientation).toBe(6);
    const img = await decodeImage(jpeg);
    expect([img.width, img.height]).toEqual([32, 64]);
    const top = pixel(img, 16, 8);
    const bottom = pixel(img, 16, 56);
    expect(top[0]).toBeGreaterThan(240);
    expect(top[2]).toBeLessThan(15);
    expect(bottom[2]).toBeGreaterThan(240);
    expect(bottom[0]).toBeLessThan(15);
  });

  it("drops alpha without compositing (PIL RGBA→RGB keeps the stored colour bytes)", async () => {
    const file = join(dir, "rgba.png");
    await raw(2, 1, 4, (x) => (x === 0 ? [10, 20, 30, 0] : [200, 100, 50, 128])).png().toFile(file);
    const img = await decodeImage(file);
    expect(Array.from(img.data)).toEqual([10, 20, 30, 200, 100, 50]);
  });

  it("expands greyscale to three equal channels", async () => {
    const png = await raw(3, 2, 1, (x, y) => [x * 40 + y * 100]).toColourspace("b-w").png().toBuffer();
    expect((await sharp(png).metadata()).channels).toBe(1);
    const img = await decodeImage(png);
    expect(pixel(img, 2, 1)).toEqual([180, 180, 180]);
    expect(pixel(img, 0, 0)).toEqual([0, 0, 0]);
  });

  it("decodes a lossless WebP exactly", async () => {
    const file = join(dir, "img.webp");
    await raw(4, 4, 3, (x, y) => [x * 60, y * 60, 255 - x * 10]).webp({ lossless: true }).toFile(file);
    const img = await decodeImage(file);
    expect([img.width, img.height]).toEqual([4, 4]);
    expect(pixel(img, 3, 2)).toEqual([180, 120, 225]);
  });

  it("errors: missing file, not an image, truncated file, empty buffer", async () => {
    const missing = join(dir, "nope.png");
    await expect(decodeImage(missing)).rejects.toThrow(VideolmError);
    await expect(decodeImage(missing)).rejects.toThrow(`cannot read image ${missing}: file not found`);

    const text = join(dir, "notes.png");
    writeFileSync(text, "this is not an image\n");
    await expect(decodeImage(text)).rejects.toThrow(VideolmError);
    await expect(decodeImage(text)).rejects.toThrow(new RegExp(`cannot decode image ${text}: `));

    const big = await raw(64, 64, 3, (x, y) => [(x * 7) & 255, (y * 13) & 255, (x * y) & 255]);
    const png = await big.clone().png().toBuffer();
    const cutPng = join(dir, "cut.png");
    writeFileSync(cutPng, png.subarray(0, Math.floor(png.length / 2)));
    await expect(decodeImage(cutPng)).rejects.toThrow(new RegExp(`cannot decode image ${cutPng}`));

    const jpeg = await big.clone().jpeg().toBuffer();
    await expect(decodeImage(jpeg.subarray(0, Math.floor(jpeg.length / 2)))).rejects.toThrow(
      /cannot decode image <image buffer, \d+ bytes>/,
    );

    await expect(decodeImage(Buffer.alloc(0))).rejects.toThrow(/empty/);
    await expect(decodeImage(dir)).rejects.toThrow(/is a directory/);
  });
});
