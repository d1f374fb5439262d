/**
 * src/onnx/moe.ts against a plain TypeScript (float64) port of transformers 5.18's Qwen3_5MoeSparseMoeBlock
 * (modeling_qwen3_5_moe.py: TopKRouter softmax → top-k → renormalise; Experts SwiGLU; sigmoid-gated shared expert).
 * fp32 within 1e-5 (relative to max |y|); int8/int4 (MatMulNBits, accuracy level 4: activations quantised to int8 per
 * block) against the same formula over the dequantised expert matrices, within 2e-2 of max |y|; the dense strategy
 * (every expert, unchosen ones weighted 0) equals the sparse one.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import "../src/onnx/no-telemetry.js";
import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { GraphBuilder } from "../src/onnx/graph.js";
import { Layers, type WeightPrecision } from "../src/onnx/layers.js";
import { type MoeConfig, type MoeWeights, sparseMoe } from "../src/onnx/moe.js";
import { quantizeBlockwise } from "../src/onnx/quantize.js";

function random(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return ((s / 2 ** 32) * 2 - 1) * scale;
  });
}

/** (q − zp) · scale of quantizeBlockwise's layout (src/onnx/quantize.ts), block 32. */
function dequantized(w: Float32Array, rows: number, cols: number, bits: 4 | 8): Float32Array {
  const block = 32;
  const q = quantizeBlockwise(w, rows, cols, bits, block);
  const blocks = cols / block;
  const zpRow = Math.ceil((blocks * bits) / 8);
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++)
    for (let b = 0; b < blocks; b++) {
      const zb = q.zeroPoints[r * zpRow + (bits === 8 ? b : b >> 1)];
      const zp = bits === 8 ? zb : b & 1 ? zb >> 4 : zb & 15;
      for (let i = 0; i < block; i++) {
        const at = (r * blocks + b) * ((block * bits) / 8) + (bits === 8 ? i : i >> 1);
        const v = bits === 8 ? q.data[at] : i & 1 ? q.data[at] >> 4 : q.data[at] & 15;
        out[r * cols + b * block + i] = (v - zp) * q.scales[r * blocks + b];
      }
    }
  return out;
}

/** y = x Wᵀ for W [out, in], float64. */
function linear(x: Float64Array, w: Float32Array, out: number, inn: number): Float64Array {
  const y = new Float64Array(out);
  for (let o = 0; o < out; o++) {
    let s = 0;
    for (let i = 0; i < inn; i++) s += x[i] * w[o * inn + i];
    y[o] = s;
  }
  return y;
}
const silu = (v: number) => v / (1 + Math.exp(-v));
function swiglu(x: Float64Array, gateUp: Float32Array, down: Float32Array, I: number, h: number): Float64Array {
  const gu = linear(x, gateUp, 2 * I, h);
  const a = Float64Array.from({ length: I }, (_, i) => silu(gu[i]) * gu[I + i]);
  return linear(a, down, h, I);
}

/** The reference block for one token; `deq` maps a matrix to what the kernel multiplies with. Also returns the chosen experts. */
function reference(x: Float32Array, cfg: MoeConfig, w: MoeWeights, deq: (m: Float32Array, r: number, c: number) => Float32Array): { y: Float64Array; chosen: number[] } {
  const { hidden: h, numExperts: E, topK: k, intermediate: I } = cfg;
  const xt = Float64Array.from(x);
  const logits = linear(xt, w.router, E, h);
  const m = Math.max(...logits);
  const e = logits.map((v) => Math.exp(v - m));
  const z = e.reduce((a, b) => a + b, 0);
  const p = e.map((v) => v / z);
  const order = Array.from({ length: E }, (_, i) => i).sort((a, b) => p[b] - p[a]);
  const chosen = order.slice(0, k);
  const sum = chosen.reduce((a, i) => a + p[i], 0);
  const y = new Float64Array(h);
  const gu = w.gateUp as Float32Array;
  const dn = w.down as Float32Array;
  for (const ei of chosen) {
    const weight = cfg.normTopkProb === false ? p[ei] : p[ei] / sum;
    const o = swiglu(xt, deq(gu.subarray(ei * 2 * I * h, (ei + 1) * 2 * I * h), 2 * I, h), deq(dn.subarray(ei * h * I, (ei + 1) * h * I), h, I), I, h);
    for (let i = 0; i < h; i++) y[i] += weight * o[i];
  }
  if (w.shared) {
    const Is = cfg.sharedIntermediate!;
    const s = swiglu(xt, deq(w.shared.gateUp, 2 * Is, h), deq(w.shared.down, h, Is), Is, h);
    const gate = 1 / (1 + Math.exp(-linear(xt, w.shared.gate, 1, h)[0]));
    for (let i = 0; i < h; i++) y[i] += gate * s[i];
  }
  return { y, chosen };
}

function makeWeights(cfg: MoeConfig, shared: boolean, seed: number): MoeWeights {
  const { hidden: h, numExperts: E, intermediate: I } = cfg;
  const Is = cfg.sharedIntermediate ?? 0;
  return {
    // a larger router spread so that the top-k choice is not decided by rounding
    router: random(E * h, seed, 0.5),
    gateUp: random(E * 2 * I * h, seed + 1, 0.2),
    down: random(E * h * I, seed + 2, 0.2),
    shared: shared ? { gateUp: random(2 * Is * h, seed + 3, 0.2), down: random(h * Is, seed + 4, 0.2), gate: random(h, seed + 5, 0.3) } : undefined,
  };
}

/** Runs the block; with cfg.expertGroup > 1 the model goes through a file with external weight data (as converted models do). */
async function runMoe(cfg: MoeConfig, weights: MoeWeights, precision: WeightPrecision, x: Float32Array, S: number): Promise<Float32Array> {
  const dir = (cfg.expertGroup ?? 1) > 1 ? fs.mkdtempSync(path.join(os.tmpdir(), "moe-test-")) : null;
  const g = new GraphBuilder("moe", dir ? path.join(dir, "moe.onnx.data") : undefined);
  const layers = new Layers(g, precision);
  const y = sparseMoe(layers, g.input("x", "float32", [1, "seq", cfg.hidden]), "mlp", cfg, weights);
  g.output(y, "y", "float32", [1, "seq", cfg.hidden]);
  let model: Uint8Array | string = g.toBytes();
  if (dir) {
    fs.writeFileSync(path.join(dir, "moe.onnx"), model);
    model = path.join(dir, "moe.onnx");
  }
  const session = await ort.InferenceSession.create(model as string, { intraOpNumThreads: 1 });
  try {
    return (await session.run({ x: new ort.Tensor("float32", x, [1, S, cfg.hidden]) })).y.data as Float32Array;
  } finally {
    await session.release();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  }
}

const identity = (m: Float32Array) => m;

describe("sparse MoE block (Qwen3_5MoeSparseMoeBlock)", () => {
  const cases: { E: number; k: number; shared: boolean; norm: boolean; group?: number; loop?: boolean }[] = [
    { E: 8, k: 2, shared: true, norm: true },
    { E: 8, k: 2, shared: false, norm: false, group: 2 },
    { E: 16, k: 4, shared: false, norm: true, loop: true },
    { E: 16, k: 4, shared: true, norm: false, group: 4, loop: true },
  ];
  for (const c of cases) {
    it(`fp32 E=${c.E} k=${c.k} shared=${c.shared} norm=${c.norm} expert groups of ${c.group ?? 1}, ${c.loop ? "Loop" : "If"}: S = 1, 5, 37 within 1e-5 of the float64 reference`, async () => {
      const cfg: MoeConfig = { hidden: 64, numExperts: c.E, topK: c.k, intermediate: 32, sharedIntermediate: c.shared ? 48 : undefined, normTopkProb: c.norm, expertGroup: c.group, conditional: c.loop ? "loop" : "if" };
      const weights = makeWeights(cfg, c.shared, 100 + c.E + c.k);
      for (const S of [1, 5, 37]) {
        const x = random(S * cfg.hidden, 7 + S);
        const y = await runMoe(cfg, weights, "fp32", x, S);
        const used = new Set<number>();
        let err = 0;
        let scale = 1e-6;
        for (let t = 0; t < S; t++) {
          const ref = reference(x.subarray(t * 64, (t + 1) * 64), cfg, weights, identity);
          ref.chosen.forEach((e) => used.add(e));
          for (let i = 0; i < 64; i++) {
            err = Math.max(err, Math.abs(y[t * 64 + i] - ref.y[i]));
            scale = Math.max(scale, Math.abs(ref.y[i]));
          }
        }
        expect(err / Math.max(1, scale)).toBeLessThan(1e-5);
        if (S <= 5) expect(used.size).toBeLessThan(c.E); // some experts get no token: their If branch is not taken
        if (S === 37) expect(used.size).toBe(c.E);
      }
    });
  }

  for (const [precision, bits] of [
    ["int8", 8],
    ["int4", 4],
  ] as const) {
    it(`${precision} (MatMulNBits) E=16 k=4 with shared expert, expert groups of 4: within 2e-2 of the reference over dequantised weights`, async () => {
      const cfg: MoeConfig = { hidden: 64, numExperts: 16, topK: 4, intermediate: 32, sharedIntermediate: 64, expertGroup: 4, conditional: bits === 4 ? "loop" : "if" };
      const weights = makeWeights(cfg, true, 5);
      const deq = (m: Float32Array, r: number, cc: number) => dequantized(m, r, cc, bits);
      for (const S of [1, 5, 37]) {
        const x = random(S * 64, 70 + S);
        const y = await runMoe(cfg, weights, precision, x, S);
        let err = 0;
        let scale = 0;
        for (let t = 0; t < S; t++) {
          const ref = reference(x.subarray(t * 64, (t + 1) * 64), cfg, weights, deq);
          for (let i = 0; i < 64; i++) {
            err = Math.max(err, Math.abs(y[t * 64 + i] - ref.y[i]));
            scale = Math.max(scale, Math.abs(ref.y[i]));
          }
        }
        expect(err / scale).toBeLessThan(2e-2);
      }
    });
  }

  it("fp16 storage and the per-expert accessor give the fp32 stack's result (within fp16 rounding)", async () => {
    const cfg: MoeConfig = { hidden: 64, numExperts: 8, topK: 2, intermediate: 32, sharedIntermediate: 32 };
    const weights = makeWeights(cfg, true, 9);
    const gu = weights.gateUp as Float32Array;
    const dn = weights.down as Float32Array;
    const perExpert: MoeWeights = { ...weights, gateUp: (e) => gu.slice(e * 2 * 32 * 64, (e + 1) * 2 * 32 * 64), down: (e) => dn.slice(e * 64 * 32, (e + 1) * 64 * 32) };
    const x = random(5 * 64, 3);
    const a = await runMoe(cfg, weights, "fp32", x, 5);
    const b = await runMoe(cfg, perExpert, "fp16", x, 5);
    let err = 0;
    for (let i = 0; i < a.length; i++) err = Math.max(err, Math.abs(a[i] - b[i]));
    expect(err).toBeLessThan(5e-3);
  });

  for (const [group, conditional] of [[1, "if"], [4, "if"], [1, "loop"]] as const) it(`decode touches only the chosen experts (expert groups of ${group}, ${conditional}): onnxruntime's profile of an S = 1 call runs kernels of exactly those k`, async () => {
    const cfg: MoeConfig = { hidden: 64, numExperts: 16, topK: 4, intermediate: 32, sharedIntermediate: 32, expertGroup: group, conditional };
    const weights = makeWeights(cfg, true, 17);
    const g = new GraphBuilder("moe");
    g.output(sparseMoe(new Layers(g, "int4"), g.input("x", "float32", [1, 1, 64]), "mlp", cfg, weights), "y", "float32", [1, 1, 64]);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "moe-profile-"));
    try {
      const session = await ort.InferenceSession.create(g.toBytes(), { intraOpNumThreads: 1, enableProfiling: true, profileFilePrefix: path.join(dir, "p") });
      const x = random(64, 23);
      await session.run({ x: new ort.Tensor("float32", x, [1, 1, 64]) });
      session.endProfiling();
      await session.release();
      const events = JSON.parse(fs.readFileSync(path.join(dir, fs.readdirSync(dir)[0]), "utf8")) as { cat: string; name: string; args?: { op_name?: string } }[];
      const ran = new Set<number>();
      let matmuls = 0;
      for (const e of events) {
        const m = e.cat === "Node" && e.name.endsWith("_kernel_time") ? /\/experts\.(\d+)\//.exec(e.name) : null;
        if (!m) continue;
        ran.add(Number(m[1]));
        if (e.args?.op_name === "MatMulNBits") matmuls++;
      }
      const chosen = reference(x, cfg, weights, identity).chosen;
      expect([...ran].sort((a, b) => a - b)).toEqual([...chosen].sort((a, b) => a - b));
      expect(matmuls).toBe(2 * cfg.topK); // gate_up and down of each chosen expert, nothing else
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("the dense strategy (all experts, unchosen weighted 0) equals the sparse one", async () => {
    const cfg: MoeConfig = { hidden: 64, numExperts: 8, topK: 2, intermediate: 32, sharedIntermediate: 32 };
    const weights = makeWeights(cfg, true, 11);
    const x = random(5 * 64, 4);
    const a = await runMoe(cfg, weights, "fp32", x, 5);
    const b = await runMoe({ ...cfg, strategy: "dense" }, weights, "fp32", x, 5);
    let err = 0;
    for (let i = 0; i < a.length; i++) err = Math.max(err, Math.abs(a[i] - b[i]));
    expect(err).toBeLessThan(1e-5);
  });
});
