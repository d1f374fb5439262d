/**
 * --dtype fp16: float16 storage, float32 compute. The conversion to half precision rounds like numpy/torch, and on
 * every family's golden checkpoint (bf16 weights, which float16 holds exactly within its range) fp16 gives the
 * same greedy tokens as fp32 and logits equal within float rounding, while the converted files are about half.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { prefill } from "../src/engine/generate.js";
import { VideoModel } from "../src/engine/model.js";
import { float32ToFloat16Bits } from "../src/onnx/fp16.js";
import type { RgbImage } from "../src/processing/rgb-image.js";
import { materializeTinyCheckpoint, repoRoot, testCacheDir } from "../src/testing/tiny-checkpoint.js";
import { argmax } from "./golden-helpers.js";

describe("float32 → float16 bits", () => {
  it.each([
    [1, 0x3c00],
    [-2, 0xc000],
    [1 / 3, 0x3555],
    [65504, 0x7bff],
    [65520, 0x7c00], // rounds up to inf
    [-Infinity, 0xfc00],
    [2 ** -14, 0x0400], // smallest normal
    [2 ** -24, 0x0001], // smallest subnormal
    [2 ** -25, 0x0000], // half of it: tie to even → 0
    [1 + 2 ** -11, 0x3c00], // tie → even
    [1 + 3 * 2 ** -11, 0x3c02], // tie → even (up)
    [0.1, 0x2e66],
  ])("%d → %i", (value, bits) => expect(float32ToFloat16Bits(value)).toBe(bits));

  it("keeps NaN a NaN", () => expect(float32ToFloat16Bits(NaN) & 0x7fff).toBeGreaterThan(0x7c00));
});

const frames: RgbImage[] = Array.from({ length: 6 }, (_, f) => ({
  width: 84,
  height: 56,
  data: Uint8Array.from({ length: 84 * 56 * 3 }, (_, i) => (i * 3 + f * 29) & 255),
}));

function dirSize(dir: string): number {
  return fs.readdirSync(dir).reduce((n, f) => n + fs.statSync(path.join(dir, f)).size, 0);
}

for (const fixture of ["qwen2-vl/qwen2-vl-tiny", "qwen2-vl/qwen2-vl-tiny-tied", "qwen2_5-vl/qwen2_5-vl-tiny", "qwen3-vl/qwen3-vl-tiny"]) {
  it(`${path.basename(fixture)}: fp16 gives fp32's greedy tokens and logits, in about half the files`, async () => {
    const dir = await materializeTinyCheckpoint(path.join(repoRoot(), "test/fixtures", fixture));
    const run = async (dtype: "fp32" | "fp16") => {
      const model = await VideoModel.load(dir, { cacheDir: testCacheDir(), threads: 1, dtype });
      const prepared = await model.prepare([{ role: "user", content: [{ type: "video", video: { frames, fps: 2 }, minPixels: 28 * 28 }, { type: "text", text: "What is shown?" }] }]);
      const prompt = await model.encodeVisuals(prepared);
      const logits = await prefill(model.decoder, prompt, model.decoder.createState(prompt.inputIds.length));
      const answer = await model.generate({ messages: [], prepared, temperature: 0, maxNewTokens: 12 });
      return { logits, tokens: answer.tokens };
    };
    const a = await run("fp32");
    const b = await run("fp16");
    expect(b.tokens).toEqual(a.tokens);
    expect(argmax(b.logits)).toBe(argmax(a.logits));
    let diff = 0;
    let max = 0;
    for (let i = 0; i < a.logits.length; i++) {
      diff = Math.max(diff, Math.abs(a.logits[i] - b.logits[i]));
      max = Math.max(max, Math.abs(a.logits[i]));
    }
    expect(diff).toBeLessThanOrEqual(1e-4 * Math.max(1, max));
    const converted = path.join(testCacheDir(), "converted");
    const size = (dtype: string) => dirSize(path.join(converted, fs.readdirSync(converted).find((d) => d.startsWith(`${path.basename(dir)}-${dtype}-`))!));
    expect(size("fp16") / size("fp32")).toBeLessThan(0.6);
  });
}
