/** smart_resize vs qwen-vl-utils (with the >= factor clamps) and transformers 4.57.6 (fixture rows). */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

import { VideolmError } from "../src/errors.js";
import { roundHalfEven, smartResize } from "../src/processing/smart-resize.js";

interface Row { h: number; w: number; factor: number; min: number; max: number; qvu: [number, number] | "error"; hf: [number, number] | "error" }
const rows = (
  JSON.parse(readFileSync(new URL("./fixtures/processing/smart_resize.json", import.meta.url), "utf8")) as { rows: Row[] }
).rows;

function run(r: Row, variant: "qwen-vl-utils" | "transformers"): [number, number] | "error" {
  try {
    return smartResize(r.h, r.w, { factor: r.factor, minPixels: r.min, maxPixels: r.max, variant });
  } catch (err) {
    if (err instanceof VideolmError && /aspect ratio/.test(err.message)) return "error";
    throw err;
  }
}

describe("smartResize", () => {
  it(`matches qwen-vl-utils on all ${rows.length} fixture rows`, () => {
    const mismatches = rows.filter((r) => JSON.stringify(run(r, "qwen-vl-utils")) !== JSON.stringify(r.qvu));
    expect(mismatches).toEqual([]);
  });

  it("matches transformers 4.57.6 with variant 'transformers'", () => {
    const mismatches = rows.filter((r) => JSON.stringify(run(r, "transformers")) !== JSON.stringify(r.hf));
    expect(mismatches).toEqual([]);
  });

  it("the fixture exercises the error, the variant difference and both branches", () => {
    expect(rows.some((r) => r.qvu === "error")).toBe(true);
    expect(rows.some((r) => JSON.stringify(r.qvu) !== JSON.stringify(r.hf))).toBe(true);
  });

  it("hand-checked values (facts §1.2)", () => {
    const video = { factor: 28, minPixels: 100352, maxPixels: 602112 };
    expect(smartResize(1080, 1920, video)).toEqual([560, 1008]);
    expect(smartResize(480, 640, video)).toEqual([476, 644]);
    expect(smartResize(1080, 1920, { factor: 28, minPixels: 3136, maxPixels: 12845056 })).toEqual([1092, 1932]);
    // round half to even: 70/28 = 2.5 → 2, 98/28 = 3.5 → 4
    expect(smartResize(70, 98, { factor: 28, minPixels: 0, maxPixels: 1e9 })).toEqual([56, 112]);
  });

  it("throws a VideolmError naming the size for aspect ratio > 200", () => {
    expect(() => smartResize(1, 201, { factor: 28, minPixels: 3136, maxPixels: 12845056 })).toThrow(/201x1/);
    // ratio exactly 200 is allowed: 1 → round(1/28)=0 → clamped to 28; 200/28 = 7.14 → 196; 28·196 ≥ 3136
    expect(smartResize(1, 200, { factor: 28, minPixels: 3136, maxPixels: 12845056 })).toEqual([28, 196]);
  });

  it("roundHalfEven rounds ties to even like Python round()", () => {
    expect([0.5, 1.5, 2.5, 3.5, 2.4, 2.6, 7].map(roundHalfEven)).toEqual([0, 2, 2, 4, 2, 3, 7]);
  });
});
