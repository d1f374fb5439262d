/**
 * Block-wise quantisation for MatMulNBits: onnxruntime's result must equal x · dequant(W)ᵀ computed here from the
 * packed bytes (proves the packing layout), and dequant(W) must be close to W (proves the quantiser).
 */
import "../src/onnx/no-telemetry.js";
import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { GraphBuilder } from "../src/onnx/graph.js";
import { Layers } from "../src/onnx/layers.js";
import { quantizeBlockwise, quantizePerOutputSymmetric } from "../src/onnx/quantize.js";

function randomMatrix(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32) * 2 - 1;
  });
}

/** Reads back (q − zero_point) · scale from the packed layout documented in src/onnx/quantize.ts. */
function dequantize(q: ReturnType<typeof quantizeBlockwise>, rows: number, cols: number, bits: 4 | 8, block: number): Float32Array {
  const blocks = cols / block;
  const zpRowBytes = Math.ceil((blocks * bits) / 8);
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < blocks; b++) {
      const zpByte = q.zeroPoints[r * zpRowBytes + (bits === 8 ? b : b >> 1)];
      const zp = bits === 8 ? zpByte : b & 1 ? zpByte >> 4 : zpByte & 15;
      const scale = q.scales[r * blocks + b];
      for (let i = 0; i < block; i++) {
        const byteIndex = (r * blocks + b) * ((block * bits) / 8) + (bits === 8 ? i : i >> 1);
        const v = bits === 8 ? q.data[byteIndex] : i & 1 ? q.data[byteIndex] >> 4 : q.data[byteIndex] & 15;
        out[r * cols + b * block + i] = (v - zp) * scale;
      }
    }
  }
  return out;
}

describe("MatMulNBits quantisation", () => {
  for (const bits of [8, 4] as const) {
    it(`${bits}-bit: onnxruntime equals the documented dequantisation, which is close to the weights`, async () => {
      const [M, K, N] = [3, 64, 48];
      const w = randomMatrix(N * K, 7);
      const x = randomMatrix(M * K, 11);
      const q = quantizeBlockwise(w, N, K, bits, 32);
      const deq = dequantize(q, N, K, bits, 32);
      const maxStep = Math.max(...q.scales);
      let quantErr = 0;
      for (let i = 0; i < w.length; i++) quantErr = Math.max(quantErr, Math.abs(deq[i] - w[i]));
      expect(quantErr).toBeLessThanOrEqual(maxStep / 2 + 1e-6); // round-to-nearest within half a step
      expect(quantErr).toBeLessThan(bits === 8 ? 0.01 : 0.15);

      const g = new GraphBuilder("q");
      const layers = new Layers(g, bits === 8 ? "int8" : "int4");
      const y = layers.linear(g.input("x", "float32", [M, K]), "proj", w, N, K);
      g.output(y, "y", "float32", [M, N]);
      const session = await ort.InferenceSession.create(g.toBytes());
      const out = (await session.run({ x: new ort.Tensor("float32", x, [M, K]) })).y.data as Float32Array;
      let err = 0;
      for (let m = 0; m < M; m++) {
        for (let n = 0; n < N; n++) {
          let ref = 0;
          for (let k = 0; k < K; k++) ref += x[m * K + k] * deq[n * K + k];
          err = Math.max(err, Math.abs(out[m * N + n] - ref));
        }
      }
      // accuracy_level 4 quantises activations to int8 inside MatMulNBits, hence the tolerance.
      expect(err).toBeLessThan(0.05);
    });
  }
});

/** round half to even, as QuantizeLinear rounds */
function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v - Math.trunc(v)) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

describe("row-wise int8 products (MatMulInteger)", () => {
  it("quantizes each output feature symmetrically to |q| ≤ 63", () => {
    const [N, K] = [16, 40];
    const w = randomMatrix(N * K, 5);
    const q = quantizePerOutputSymmetric(w, N, K);
    const data = new Int8Array(q.data.buffer);
    for (let n = 0; n < N; n++) {
      let peak = 0;
      for (let k = 0; k < K; k++) {
        const v = data[k * N + n];
        peak = Math.max(peak, Math.abs(v));
        expect(Math.abs(v * q.scales[n] - w[n * K + k])).toBeLessThanOrEqual(q.scales[n] / 2 + 1e-7);
      }
      expect(peak).toBe(63); // the largest weight of every feature maps to the end of the range
    }
  });

  it("onnxruntime's result is the exact integer product of the row-quantized activations and the weights", async () => {
    // Rows with large values next to each other meet the largest weights: with 8-bit weights, AVX2's pairwise
    // int16 accumulation (VPMADDUBSW) would saturate here and the sums would be far off.
    const [M, K, N] = [6, 256, 64];
    const w = randomMatrix(N * K, 3);
    for (let n = 0; n < N; n++) for (let k = 0; k < 8; k++) w[n * K + k] = n % 2 ? 1 : -1;
    const x = randomMatrix(M * K, 9).map((v, i) => (i % K < 8 ? 4 : v * (1 + (i % 7))));
    const g = new GraphBuilder("rowwise");
    const layers = new Layers(g, "int4", "rowwise-int8");
    g.output(layers.linear(g.input("x", "float32", [M, K]), "proj", w, N, K), "y", "float32", [M, N]);
    const session = await ort.InferenceSession.create(g.toBytes());
    const out = (await session.run({ x: new ort.Tensor("float32", x, [M, K]) })).y.data as Float32Array;

    const q = quantizePerOutputSymmetric(w, N, K);
    const wq = new Int8Array(q.data.buffer);
    let worst = 0;
    let worstVsFloat = 0;
    let largest = 0;
    for (let m = 0; m < M; m++) {
      let rowMax = 0;
      for (let k = 0; k < K; k++) rowMax = Math.max(rowMax, Math.abs(x[m * K + k]));
      const s = Math.fround(Math.fround(rowMax) * Math.fround(1 / 127));
      const xq = Array.from({ length: K }, (_, k) => roundHalfEven(Math.fround(x[m * K + k] / s)));
      for (let n = 0; n < N; n++) {
        let acc = 0;
        let exact = 0;
        for (let k = 0; k < K; k++) {
          acc += xq[k] * wq[k * N + n];
          exact += x[m * K + k] * w[n * K + k];
        }
        const ref = acc * s * q.scales[n];
        worst = Math.max(worst, Math.abs(out[m * N + n] - ref) / (s * q.scales[n]));
        worstVsFloat = Math.max(worstVsFloat, Math.abs(out[m * N + n] - exact));
        largest = Math.max(largest, Math.abs(exact));
      }
    }
    expect(worst).toBeLessThan(0.01); // in units of one integer step: only float32 rounding of the scales
    expect(worstVsFloat / largest).toBeLessThan(0.02); // and close to the float product
  });
});
