import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { compactVisual, decideFlash, quantileLinear } from "../src/families/internvl/flash-router.js";

const golden = JSON.parse(fs.readFileSync(path.join(__dirname, "fixtures/internvl_flash/internvl_flash-tiny/golden.json"), "utf8")) as {
  cases: Record<string, { flash: { relative_threshold: number; absolute_threshold: number; p0: number[]; relative_quantile_value: number; compress: boolean[] } }>;
};

describe("InternVL-Flash decision rule (docs/internvl-flash-reference.md §4)", () => {
  for (const [name, c] of Object.entries(golden.cases)) {
    it(`${name}: the reference's quantile value and compress/keep decisions from its p0`, () => {
      const f = c.flash;
      const d = decideFlash(f.p0, { relative: f.relative_threshold, absolute: f.absolute_threshold });
      expect(d.quantile).toBe(Math.fround(f.relative_quantile_value));
      expect(d.compress).toEqual(f.compress);
    });
  }

  it("torch.quantile's linear interpolation, strict relative and non-strict absolute tests", () => {
    expect(quantileLinear([3, 1, 2, 4], 0.5)).toBe(2.5);
    expect(quantileLinear([5], 0.3)).toBe(5);
    // A single tile is never compressed (rq = p0, strict >); equal p0s neither.
    expect(decideFlash([0.9], { relative: 0.5, absolute: 0 }).compress).toEqual([false]);
    expect(decideFlash([0.7, 0.7, 0.7], { relative: 0, absolute: 0 }).compress).toEqual([false, false, false]);
    // p0 exactly at the absolute floor passes it.
    expect(decideFlash([0.1, 0.5], { relative: 0, absolute: 0.5 }).compress).toEqual([false, true]);
  });

  it("a compressed tile keeps the first 64 of its 256 placeholders, filled with its 64 compressed rows", () => {
    const D = 2;
    const full = Float32Array.from({ length: 2 * 256 * D }, (_, i) => i);
    const small = Float32Array.from({ length: 2 * 64 * D }, (_, i) => -1 - i);
    const { rows, keep } = compactVisual(full, small, [true, false], D);
    expect(rows.length).toBe((64 + 256) * D);
    expect(Array.from(keep.subarray(0, 256)).reduce((a, b) => a + b, 0)).toBe(64);
    expect(keep[63]).toBe(1);
    expect(keep[64]).toBe(0);
    expect(Array.from(keep.subarray(256))).toEqual(new Array(256).fill(1));
    expect(rows[0]).toBe(-1); // tile 0: compressed rows
    expect(rows[64 * D]).toBe(256 * D); // tile 1: its own full rows
    expect(() => compactVisual(full, small, [true], D)).toThrow(/do not match 1 tiles/);
  });
});
