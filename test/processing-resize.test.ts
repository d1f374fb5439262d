/**
 * Bicubic antialias resize vs torchvision (fixtures from tools/oracle/record_processing.py):
 * 'u8' = v2 functional on uint8 (torch's native uint8 kernel), 'float' = v1 functional (float32 path),
 * 'pil' = PIL Image.resize BICUBIC.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

import { VideolmError } from "../src/errors.js";
import {
  resizeBicubicAntialias,
  resizeBicubicAntialiasFloat,
  resizeBicubicPillow,
} from "../src/processing/resize.js";
import { syntheticImage } from "./fixtures/processing/synthetic-image.js";

interface Rec { sha256: string; sum: number; data_b64?: string }
interface Case { in: [number, number]; out: [number, number]; pattern: "noise" | "smooth"; seed: number; u8: Rec; float: Rec; pil: Rec }
const fixture = JSON.parse(readFileSync(new URL("./fixtures/processing/resize.json", import.meta.url), "utf8")) as {
  cases: Case[];
};

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

const paths = { u8: resizeBicubicAntialias, float: resizeBicubicAntialiasFloat, pil: resizeBicubicPillow } as const;

describe.each(["u8", "float", "pil"] as const)("resize %s path", (path) => {
  it.each(fixture.cases.map((c) => [`${c.in.join("x")} -> ${c.out.join("x")} ${c.pattern}`, c] as const))(
    "%s matches torchvision bit-exactly",
    (_name, c) => {
      const src = syntheticImage(c.in[0], c.in[1], c.pattern, c.seed);
      const out = paths[path](src, c.out[0], c.out[1]);
      expect([out.height, out.width]).toEqual(c.out);
      const ref = c[path];
      if (ref.data_b64 !== undefined) {
        // small case: report how many values differ, not only that the hash does
        const expected = new Uint8Array(Buffer.from(ref.data_b64, "base64"));
        let differing = 0;
        for (let i = 0; i < expected.length; i++) if (expected[i] !== out.data[i]) differing++;
        expect(differing).toBe(0);
      }
      let sum = 0;
      for (const v of out.data) sum += v;
      expect(sum).toBe(ref.sum);
      expect(sha256(out.data)).toBe(ref.sha256);
    },
  );
});

describe("resize behaviour", () => {
  it("returns the input itself when the size is unchanged (torchvision does too)", () => {
    const src = syntheticImage(11, 13, "noise", 1);
    expect(resizeBicubicAntialias(src, 11, 13)).toBe(src);
    expect(resizeBicubicAntialiasFloat(src, 11, 13)).toBe(src);
  });

  it("keeps a constant image constant (weights sum to 2^precision after rounding)", () => {
    const src = { width: 37, height: 23, data: new Uint8Array(37 * 23 * 3).fill(200) };
    for (const fn of Object.values(paths)) {
      const out = fn(src, 11, 90);
      expect(new Set(out.data)).toEqual(new Set([200]));
    }
  });

  it("rejects bad sizes and malformed buffers with VideolmError", () => {
    const src = syntheticImage(4, 4, "noise", 1);
    expect(() => resizeBicubicAntialias(src, 0, 4)).toThrow(VideolmError);
    expect(() => resizeBicubicAntialias({ width: 4, height: 4, data: new Uint8Array(10) }, 2, 2)).toThrow(
      /expected 4x4x3/,
    );
  });
});
