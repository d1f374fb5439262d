/**
 * qwen-vl-utils 0.0.14 sampling policy against golden records from tools/oracle/record_sampling.py
 * (verbatim copies of smart_nframes / calculate_video_frame_range / smart_resize, torch float32 linspace).
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { VideolmError } from "../src/errors.js";
import {
  fmaf32,
  linspaceRoundIndices,
  planVideoSampling,
  qwenVlUtilsDefaults,
  smartNframes,
  torchLinspaceF32,
  type VideoSamplingOptions,
} from "../src/sampling/qwen-vl-utils.js";

const fixture = (name: string) => JSON.parse(readFileSync(new URL(`./fixtures/sampling/${name}`, import.meta.url), "utf8"));

interface PlanCase {
  totalFrames: number;
  videoFps: number;
  height: number;
  width: number;
  imagePatchSize: number;
  options: Record<string, number>;
  expected?: {
    frameIndices: number[];
    nframes: number;
    sampleFps: number;
    rangeStart: number;
    rangeEnd: number;
    rangeCount: number;
    minPixels: number;
    maxPixels: number;
    resizedHeight: number;
    resizedWidth: number;
  };
  error?: string;
}

/** The reference's snake_case element keys → our options. */
function toOptions(ele: Record<string, number>): VideoSamplingOptions {
  const map: Record<string, keyof VideoSamplingOptions> = {
    fps: "fps", nframes: "nframes", min_frames: "minFrames", max_frames: "maxFrames", video_start: "videoStart",
    video_end: "videoEnd", min_pixels: "minPixels", max_pixels: "maxPixels", total_pixels: "totalPixels",
    resized_height: "resizedHeight", resized_width: "resizedWidth",
  };
  const o: VideoSamplingOptions = {};
  for (const [k, v] of Object.entries(ele)) {
    if (!(k in map)) throw new Error(`unmapped option ${k}`);
    o[map[k]] = v;
  }
  return o;
}

describe("planVideoSampling matches qwen-vl-utils 0.0.14", () => {
  const { cases } = fixture("plans.json") as { cases: PlanCase[] };
  it("has both success and error cases", () => {
    expect(cases.filter((c) => c.expected).length).toBeGreaterThan(25);
    expect(cases.filter((c) => c.error).length).toBeGreaterThanOrEqual(4);
  });
  for (const c of cases) {
    const name = `${c.totalFrames} frames @ ${c.videoFps.toFixed(3)} fps, ${c.width}x${c.height}, patch ${c.imagePatchSize}, ${JSON.stringify(c.options)}`;
    it(name, () => {
      const d = qwenVlUtilsDefaults(c.imagePatchSize);
      const run = () =>
        planVideoSampling(toOptions(c.options), { frameCount: c.totalFrames, fps: c.videoFps, width: c.width, height: c.height }, d);
      if (c.error) {
        expect(run).toThrow(VideolmError);
        return;
      }
      const plan = run();
      const e = c.expected!;
      expect(plan.frameIndices).toEqual(e.frameIndices);
      expect(plan.nframes).toBe(e.nframes);
      expect(plan.sampleFps).toBe(e.sampleFps); // same float64 operations in the same order: bit-equal
      expect([plan.range.start, plan.range.end, plan.range.count]).toEqual([e.rangeStart, e.rangeEnd, e.rangeCount]);
      expect(plan.minPixels).toBe(e.minPixels);
      expect(plan.maxPixels).toBe(e.maxPixels);
      expect([plan.resizedHeight, plan.resizedWidth]).toEqual([e.resizedHeight, e.resizedWidth]);
      expect(plan.timestamps).toEqual(e.frameIndices.map((i) => i / c.videoFps));
    });
  }
});

describe("torch.linspace float32 emulation", () => {
  const { cases, meta } = fixture("linspace.json") as {
    cases: { start: number; end: number; steps: number; indices: number[]; bits: number[] }[];
    meta: { float64RoundsDifferentlyIn: number };
  };
  it("the fixture holds cases where float64 linspace would round differently", () => {
    expect(meta.float64RoundsDifferentlyIn).toBeGreaterThan(0);
    // A float64 implementation gets at least one recorded case wrong (so the test below can fail).
    const f64Wrong = cases.some((c) => {
      const step = (c.end - c.start) / (c.steps - 1);
      return c.indices.some((v, i) => {
        const x = c.start + step * i;
        const r = Math.round(x);
        return (r - x === 0.5 && r % 2 ? r - 1 : r) !== v;
      });
    });
    expect(f64Wrong).toBe(true);
  });
  it("indices (round half to even) equal torch's for every recorded case", () => {
    for (const c of cases) expect(linspaceRoundIndices(c.start, c.end, c.steps), `${c.start}..${c.end} n=${c.steps}`).toEqual(c.indices);
  });
  it("float32 values are bit-identical to torch's", () => {
    const f = new Float32Array(1);
    const bits = new Int32Array(f.buffer);
    for (const c of cases) {
      const got = torchLinspaceF32(c.start, c.end, c.steps).map((v) => {
        f[0] = v;
        return bits[0];
      });
      expect(got, `${c.start}..${c.end} n=${c.steps}`).toEqual(c.bits);
    }
  });
});

describe("fmaf32", () => {
  it("rounds once (a fused multiply-add), not twice", () => {
    // a·b = 1 + 2^-24 + 2^-48: rounding the product to float32 first gives 1 (tie to even) and 1 - 1 = 0;
    // the fused result keeps the 2^-24 part.
    const a = 1 + 2 ** -24 * 2; // float32: 1 + 2^-23
    const b = 1 - 2 ** -24; // float32
    expect(fmaf32(a, b, -1)).toBe(Math.fround(a * b - 1));
    expect(fmaf32(a, b, -1)).not.toBe(0);
    expect(fmaf32(3, 5, 7)).toBe(22);
  });
  it("resolves a double-rounding tie by the exact remainder", () => {
    // Products chosen so that the double sum lands exactly on a float32 tie while the exact value does not:
    // naive fround(a·b + c) then rounds to even, the wrong way.
    const a = 1 + 2 ** -10;
    const b = Math.fround((1 - 2 ** -10 + 2 ** -20) * 2 ** -24); // a·b = 2^-24 + 2^-54 exactly
    expect(a * b + 1).toBe(1 + 2 ** -24); // the double sum is the tie between 1 and 1 + 2^-23
    expect(Math.fround(a * b + 1)).toBe(1); // naive: tie to even
    expect(fmaf32(a, b, 1)).toBe(1 + 2 ** -23); // exact value is above the tie
    const a2 = 1 + 2 ** -15;
    const b2 = Math.fround((1 - 2 ** -15) * 2 ** -24); // a2·b2 = 2^-24 - 2^-54
    const c2 = 1 + 2 ** -23;
    expect(Math.fround(a2 * b2 + c2)).toBe(1 + 2 ** -22); // naive: tie to even, upwards
    expect(fmaf32(a2, b2, c2)).toBe(1 + 2 ** -23); // exact value is below the tie
  });
});

describe("smartNframes options", () => {
  const d = qwenVlUtilsDefaults(14);
  it("fps and nframes together are an error", () => {
    expect(() => smartNframes({ fps: 2, nframes: 4 }, 100, 30, d)).toThrow(/either fps or nframes/);
  });
  it("rejects non-positive or non-numeric options with the option's name", () => {
    expect(() => smartNframes({ fps: 0 }, 100, 30, d)).toThrow(/fps must be a positive number/);
    expect(() => smartNframes({ maxFrames: Number.NaN }, 100, 30, d)).toThrow(/maxFrames/);
  });
  it("family constants come from SamplingDefaults (factor 32 → 128·32² min pixels)", () => {
    const d3 = qwenVlUtilsDefaults(16);
    expect(d3.factor).toBe(32);
    expect(d3.videoMinPixels).toBe(131072);
    expect(d3.videoMaxPixels).toBe(786432);
    expect(d3.videoTotalPixels).toBe(128000 * 32 * 32 * 0.9);
    const custom = { ...d, maxFrames: 16 };
    expect(smartNframes({}, 18000, 30, custom)).toBe(16);
  });
});
