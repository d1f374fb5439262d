/**
 * Gated DeltaNet bench (not a test): the chunk-parallel prefill graph (`gatedDeltaChunked`) over T tokens against the
 * one-token recurrent graph (`gatedDeltaStep`) run T times, at one linear-attention layer's real width, to confirm
 * the chunk form is the fast path for prefill on this CPU. Prints ms for each (median of --repeat runs) and the
 * largest difference between their outputs and final states.
 *
 *   npx tsx bench/gated-delta.ts [--heads 16] [--key-dim 128] [--value-dim 128] [--tokens 1024] [--threads 2] [--repeat 3]
 *
 * Defaults: Qwen3.5-2B-like linear-attention heads (16 heads of 128) over 1,024 tokens.
 * The step timing includes one session.run per token (tensor creation, the binding's overhead), as a standalone
 * decode graph would; inside a whole-decoder graph that overhead is shared by all layers.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parseArgs } from "node:util";
import "../src/onnx/no-telemetry.js";
import * as ort from "onnxruntime-node";
import { gatedDeltaChunked, gatedDeltaStep } from "../src/onnx/gated-delta.js";
import { GraphBuilder } from "../src/onnx/graph.js";

const { values } = parseArgs({
  options: {
    heads: { type: "string", default: "16" },
    "key-dim": { type: "string", default: "128" },
    "value-dim": { type: "string", default: "128" },
    tokens: { type: "string", default: "1024" },
    threads: { type: "string", default: "2" },
    repeat: { type: "string", default: "3" },
  },
});
const H = Number(values.heads);
const Dk = Number(values["key-dim"]);
const Dv = Number(values["value-dim"]);
const T = Number(values.tokens);
const threads = Number(values.threads);
const repeat = Number(values.repeat);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "videolm-gdn-bench-"));
async function session(kind: "chunk" | "step"): Promise<ort.InferenceSession> {
  const g = new GraphBuilder(`gdn-${kind}`);
  const t = kind === "step" ? 1 : "T";
  const inputs = {
    q: g.input("q", "float32", [1, H, t, Dk]),
    k: g.input("k", "float32", [1, H, t, Dk]),
    v: g.input("v", "float32", [1, H, t, Dv]),
    g: g.input("g", "float32", [1, H, t]),
    beta: g.input("beta", "float32", [1, H, t]),
    state: g.input("state", "float32", [1, H, Dk, Dv]),
  };
  const opts = { l2normQK: true, keyDim: Dk, valueDim: Dv };
  const r = kind === "step" ? gatedDeltaStep(g, inputs, opts) : gatedDeltaChunked(g, inputs, opts);
  g.output(r.output, "out", "float32", [1, H, t, Dv]);
  g.output(r.state, "new_state", "float32", [1, H, Dk, Dv]);
  const file = path.join(dir, `${kind}.onnx`);
  fs.writeFileSync(file, g.toBytes());
  return ort.InferenceSession.create(file, { intraOpNumThreads: threads, interOpNumThreads: 1 });
}

let seed = 1;
const rand = () => {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return seed / 2147483648;
};
const randn = (n: number) => Float32Array.from({ length: n }, () => (rand() + rand() + rand() - 1.5) * 2);
const q = randn(H * T * Dk);
const k = randn(H * T * Dk);
const v = randn(H * T * Dv);
const gl = Float32Array.from({ length: H * T }, () => -0.05 - rand());
const beta = Float32Array.from({ length: H * T }, () => 0.2 + 0.6 * rand());
const state0 = new Float32Array(H * Dk * Dv);

/** Token t of a heads-first [1, H, T, d] array. */
const token = (x: Float32Array, t: number, d: number) => {
  const y = new Float32Array(H * d);
  for (let h = 0; h < H; h++) y.set(x.subarray((h * T + t) * d, (h * T + t + 1) * d), h * d);
  return y;
};

const chunk = await session("chunk");
const step = await session("step");
const feeds = (n: number, x: { q: Float32Array; k: Float32Array; v: Float32Array; g: Float32Array; beta: Float32Array }, state: ort.Tensor) => ({
  q: new ort.Tensor("float32", x.q, [1, H, n, Dk]),
  k: new ort.Tensor("float32", x.k, [1, H, n, Dk]),
  v: new ort.Tensor("float32", x.v, [1, H, n, Dv]),
  g: new ort.Tensor("float32", x.g, [1, H, n]),
  beta: new ort.Tensor("float32", x.beta, [1, H, n]),
  state,
});
// per-token inputs prepared up front: the loop below times the graph runs, not the slicing
const perToken = Array.from({ length: T }, (_, t) => ({ q: token(q, t, Dk), k: token(k, t, Dk), v: token(v, t, Dv), g: token(gl, t, 1), beta: token(beta, t, 1) }));

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const chunkMs: number[] = [];
const stepMs: number[] = [];
let chunkOut: ort.InferenceSession.OnnxValueMapType = {};
let stepOut: Float32Array[] = [];
let stepState: ort.Tensor | null = null;
// warm-up: one chunked run, a few steps
await chunk.run(feeds(T, { q, k, v, g: gl, beta }, new ort.Tensor("float32", state0, [1, H, Dk, Dv])));
for (let t = 0; t < Math.min(T, 16); t++) await step.run(feeds(1, perToken[t], new ort.Tensor("float32", state0, [1, H, Dk, Dv])));
for (let r = 0; r < repeat; r++) {
  let t0 = performance.now();
  chunkOut = await chunk.run(feeds(T, { q, k, v, g: gl, beta }, new ort.Tensor("float32", state0, [1, H, Dk, Dv])));
  chunkMs.push(performance.now() - t0);

  let state: ort.Tensor = new ort.Tensor("float32", state0, [1, H, Dk, Dv]);
  const outs: Float32Array[] = [];
  t0 = performance.now();
  for (let t = 0; t < T; t++) {
    const o = await step.run(feeds(1, perToken[t], state));
    state = o.new_state as ort.Tensor;
    outs.push(o.out.data as Float32Array);
  }
  stepMs.push(performance.now() - t0);
  stepOut = outs;
  stepState = state;
}

let maxOut = 0;
const co = chunkOut.out.data as Float32Array;
for (let t = 0; t < T; t++) for (let h = 0; h < H; h++) for (let d = 0; d < Dv; d++) maxOut = Math.max(maxOut, Math.abs(co[(h * T + t) * Dv + d] - stepOut[t][h * Dv + d]));
let maxState = 0;
const cs = chunkOut.new_state.data as Float32Array;
const ss = stepState!.data as Float32Array;
for (let i = 0; i < cs.length; i++) maxState = Math.max(maxState, Math.abs(cs[i] - ss[i]));

const c = median(chunkMs);
const s = median(stepMs);
console.log(`gated delta rule, H=${H} Dk=${Dk} Dv=${Dv}, T=${T}, ${threads} threads (median of ${repeat})`);
console.log(`  chunked prefill (one graph run):   ${c.toFixed(1)} ms  (${((c / T) * 1000).toFixed(1)} µs/token)`);
console.log(`  recurrent step × ${T}:            ${s.toFixed(1)} ms  (${((s / T) * 1000).toFixed(1)} µs/token)`);
console.log(`  chunked is ${(s / c).toFixed(1)}× faster; max |Δ| output ${maxOut.toExponential(2)}, state ${maxState.toExponential(2)}`);
fs.rmSync(dir, { recursive: true, force: true });
