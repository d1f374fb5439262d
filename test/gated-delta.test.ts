/**
 * Gated DeltaNet graph helpers (src/onnx/gated-delta.ts) against an independent float64 port of the reference math:
 * transformers 5.x models/qwen3_5/modeling_qwen3_5.py `torch_recurrent_gated_delta_rule` (token by token),
 * `causal_conv1d_fn` and `Qwen3_5RMSNormGated`, written here from the reference, not from the graph code. When the
 * fixture test/fixtures/qwen3_5/gated-delta.json exists (tools/oracle/record_gated_delta.py), the chunked graph is
 * also compared with the real `torch_chunk_gated_delta_rule`.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import "../src/onnx/no-telemetry.js";
import * as ort from "onnxruntime-node";
import { afterAll, describe, expect, it } from "vitest";
import { causalConv1d, gatedDeltaChunked, gatedDeltaStep, gatedRmsNorm, unitLowerInverse } from "../src/onnx/gated-delta.js";
import { GraphBuilder } from "../src/onnx/graph.js";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "videolm-gdn-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

let fileCounter = 0;
async function build(g: GraphBuilder): Promise<ort.InferenceSession> {
  const file = path.join(dir, `g${fileCounter++}.onnx`);
  fs.writeFileSync(file, g.toBytes());
  return ort.InferenceSession.create(file, { intraOpNumThreads: 1 });
}

/** Deterministic uniform [0, 1) (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const normal = (r: () => number) => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
const randn = (r: () => number, n: number, s = 1) => Float32Array.from({ length: n }, () => normal(r) * s);

interface Case {
  B: number;
  H: number;
  T: number;
  Dk: number;
  Dv: number;
  q: Float32Array; // [B,H,T,Dk]
  k: Float32Array;
  v: Float32Array; // [B,H,T,Dv]
  g: Float32Array; // [B,H,T]
  beta: Float32Array;
  state: Float32Array; // [B,H,Dk,Dv]
}

/**
 * Random inputs, g and beta as Qwen3_5GatedDeltaNet makes them. "aligned": almost no decay (g ≈ −0.001), keys
 * sharing one strong direction and beta near 1, so the UT system's inverse is far from I (a truncated Neumann series
 * fails here by 10⁷). "strong-decay": g down to −10 per token, so exp(cumulative decay) underflows inside a chunk.
 */
type Regime = "typical" | "aligned" | "strong-decay";
function makeCase(seed: number, B: number, H: number, T: number, Dk: number, Dv: number, withState: boolean, regime: Regime = "typical"): Case {
  const hard = regime === "aligned";
  const r = rng(seed);
  const softplus = (x: number) => Math.log1p(Math.exp(x));
  const shared = randn(r, Dk, 2);
  const k = randn(r, B * H * T * Dk);
  if (hard) for (let i = 0; i < k.length; i++) k[i] = 0.5 * k[i] + shared[i % Dk];
  const c: Case = {
    B, H, T, Dk, Dv,
    q: randn(r, B * H * T * Dk),
    k,
    v: randn(r, B * H * T * Dv),
    // as Qwen3_5GatedDeltaNet makes them: g = −exp(A_log)·softplus(a + dt_bias), beta = sigmoid(b)
    g: Float32Array.from({ length: B * H * T }, () => -Math.exp(Math.log(0.02 + r() * 1.5)) * softplus(normal(r))),
    beta: Float32Array.from({ length: B * H * T }, () => 1 / (1 + Math.exp(-normal(r)))),
    state: withState ? randn(r, B * H * Dk * Dv, 0.5) : new Float32Array(B * H * Dk * Dv),
  };
  if (hard) {
    c.g = Float32Array.from(c.g, () => -0.001 * r());
    c.beta = Float32Array.from(c.beta, () => 0.8 + 0.2 * r());
  }
  if (regime === "strong-decay") c.g = Float32Array.from(c.g, () => -10 * r());
  return c;
}

/**
 * float64 port of `torch_recurrent_gated_delta_rule` (use_qk_l2norm_in_kernel=True), heads-first layout, any T.
 * Returns the output [B,H,T,Dv] and the final state [B,H,Dk,Dv].
 */
function referenceRecurrent(c: Case): { out: Float64Array; state: Float64Array } {
  const { B, H, T, Dk, Dv } = c;
  const out = new Float64Array(B * H * T * Dv);
  const stateAll = Float64Array.from(c.state);
  const l2 = (x: Float32Array, at: number, n: number) => {
    let ss = 0;
    for (let i = 0; i < n; i++) ss += x[at + i] * x[at + i];
    const inv = 1 / Math.sqrt(ss + 1e-6);
    return Float64Array.from({ length: n }, (_, i) => x[at + i] * inv);
  };
  for (let bh = 0; bh < B * H; bh++) {
    const S = stateAll.subarray(bh * Dk * Dv, (bh + 1) * Dk * Dv);
    for (let t = 0; t < T; t++) {
      const q = l2(c.q, (bh * T + t) * Dk, Dk).map((x) => x / Math.sqrt(Dk));
      const k = l2(c.k, (bh * T + t) * Dk, Dk);
      const v = c.v.subarray((bh * T + t) * Dv, (bh * T + t + 1) * Dv);
      const decay = Math.exp(c.g[bh * T + t]);
      const beta = c.beta[bh * T + t];
      for (let i = 0; i < Dk * Dv; i++) S[i] *= decay; // last_recurrent_state * decay_t
      for (let j = 0; j < Dv; j++) {
        let kvMem = 0; // (S * k[:, None]).sum(-2)
        for (let i = 0; i < Dk; i++) kvMem += S[i * Dv + j] * k[i];
        const delta = (v[j] - kvMem) * beta;
        for (let i = 0; i < Dk; i++) S[i * Dv + j] += k[i] * delta;
      }
      for (let j = 0; j < Dv; j++) {
        let o = 0; // (S * q[:, None]).sum(-2)
        for (let i = 0; i < Dk; i++) o += S[i * Dv + j] * q[i];
        out[(bh * T + t) * Dv + j] = o;
      }
    }
  }
  return { out, state: stateAll };
}

/** max |a − b| ≤ tol · max(1, max |b|). */
function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-4, what = ""): void {
  expect(actual.length, what).toBe(expected.length);
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < expected.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(actual[i] - expected[i]));
    maxRef = Math.max(maxRef, Math.abs(expected[i]));
  }
  expect(Number.isFinite(maxDiff), what).toBe(true);
  expect(maxDiff, `${what} max |diff| ${maxDiff} at max |ref| ${maxRef}`).toBeLessThanOrEqual(tol * Math.max(1, maxRef));
}

const sessions = new Map<string, Promise<ort.InferenceSession>>();

/** The gated delta rule as a graph (chunked or one step), sessions cached per shape. */
function deltaSession(kind: "chunk" | "step", H: number, Dk: number, Dv: number, chunkSize = 64): Promise<ort.InferenceSession> {
  const key = `${kind}|${H}|${Dk}|${Dv}|${chunkSize}`;
  let s = sessions.get(key);
  if (!s) {
    const g = new GraphBuilder(`gdn-${kind}`);
    const T = kind === "step" ? 1 : "T";
    const inputs = {
      q: g.input("q", "float32", ["B", H, T, Dk]),
      k: g.input("k", "float32", ["B", H, T, Dk]),
      v: g.input("v", "float32", ["B", H, T, Dv]),
      g: g.input("g", "float32", ["B", H, T]),
      beta: g.input("beta", "float32", ["B", H, T]),
      state: g.input("state", "float32", ["B", H, Dk, Dv]),
    };
    const opts = { l2normQK: true, keyDim: Dk, valueDim: Dv, chunkSize };
    const r = kind === "step" ? gatedDeltaStep(g, inputs, opts) : gatedDeltaChunked(g, inputs, opts);
    g.output(r.output, "out", "float32", ["B", H, T, Dv]);
    g.output(r.state, "new_state", "float32", ["B", H, Dk, Dv]);
    s = build(g);
    sessions.set(key, s);
  }
  return s;
}

async function runDelta(kind: "chunk" | "step", c: Case, chunkSize = 64): Promise<{ out: Float32Array; state: Float32Array }> {
  const s = await deltaSession(kind, c.H, c.Dk, c.Dv, chunkSize);
  const { B, H, T, Dk, Dv } = c;
  const r = await s.run({
    q: new ort.Tensor("float32", c.q, [B, H, T, Dk]),
    k: new ort.Tensor("float32", c.k, [B, H, T, Dk]),
    v: new ort.Tensor("float32", c.v, [B, H, T, Dv]),
    g: new ort.Tensor("float32", c.g, [B, H, T]),
    beta: new ort.Tensor("float32", c.beta, [B, H, T]),
    state: new ort.Tensor("float32", c.state, [B, H, Dk, Dv]),
  });
  expect(r.out.dims).toEqual([B, H, T, Dv]);
  expect(r.new_state.dims).toEqual([B, H, Dk, Dv]);
  return { out: r.out.data as Float32Array, state: r.new_state.data as Float32Array };
}

/** Tokens [from, to) of a case, with the given starting state. */
function sliceCase(c: Case, from: number, to: number, state: Float32Array): Case {
  const { B, H, T, Dk, Dv } = c;
  const n = to - from;
  const take = (x: Float32Array, d: number) => {
    const y = new Float32Array(B * H * n * d);
    for (let bh = 0; bh < B * H; bh++) y.set(x.subarray((bh * T + from) * d, (bh * T + to) * d), bh * n * d);
    return y;
  };
  return { B, H, T: n, Dk, Dv, q: take(c.q, Dk), k: take(c.k, Dk), v: take(c.v, Dv), g: take(c.g, 1), beta: take(c.beta, 1), state };
}

describe("gated delta rule: chunk-parallel prefill equals the token-by-token recurrence", () => {
  const shapes = [
    { Dk: 16, Dv: 16 },
    { Dk: 16, Dv: 32 },
  ];
  for (const { Dk, Dv } of shapes) {
    for (const withState of [false, true]) {
      it(`T = 1, 7, 64, 100, 130; H = 2, Dk = ${Dk}, Dv = ${Dv}, ${withState ? "with" : "without"} an initial state`, async () => {
        for (const T of [1, 7, 64, 100, 130]) {
          const c = makeCase(1000 + T + Dv + (withState ? 7 : 0), 1, 2, T, Dk, Dv, withState);
          const ref = referenceRecurrent(c);
          const got = await runDelta("chunk", c);
          expectClose(got.out, ref.out, 1e-4, `T=${T} output`);
          expectClose(got.state, ref.state, 1e-4, `T=${T} state`);
        }
      });
    }
  }

  for (const regime of ["aligned", "strong-decay"] as const) {
    it(`${regime}: ${regime === "aligned" ? "little decay, aligned keys, beta near 1 (an inverse far from I)" : "exp(cumulative decay) underflows"}`, async () => {
      for (const T of [64, 130]) {
        const c = makeCase(31 + T, 1, 2, T, 16, 32, true, regime);
        const ref = referenceRecurrent(c);
        const got = await runDelta("chunk", c);
        expectClose(got.out, ref.out, 1e-4, `T=${T} output`);
        expectClose(got.state, ref.state, 1e-4, `T=${T} state`);
      }
    });
  }

  it("batch 2 and a small chunk size (8: three squarings, many chunks)", async () => {
    const c = makeCase(77, 2, 2, 37, 16, 16, true);
    const ref = referenceRecurrent(c);
    for (const chunkSize of [8, 64]) {
      const got = await runDelta("chunk", c, chunkSize);
      expectClose(got.out, ref.out, 1e-4, `chunk ${chunkSize} output`);
      expectClose(got.state, ref.state, 1e-4, `chunk ${chunkSize} state`);
    }
  });
});

describe("unitLowerInverse", () => {
  it("(I + L)⁻¹ of the strictly lower triangle, ignoring the diagonal and upper triangle (batch of 3, C = 64)", async () => {
    const C = 64;
    const r = rng(8);
    const m = randn(r, 3 * C * C, 0.3); // full random matrices: only the strictly lower part may be read
    const g = new GraphBuilder("inv");
    g.output(unitLowerInverse(g, g.input("m", "float32", [3, C, C]), C), "inv", "float32", [3, C, C]);
    const inv = (await (await build(g)).run({ m: new ort.Tensor("float32", m, [3, C, C]) })).inv.data as Float32Array;
    // (I + L) · inv = I, in float64
    const product: number[] = [];
    const identity: number[] = [];
    for (let b = 0; b < 3; b++) {
      for (let i = 0; i < C; i++) {
        for (let j = 0; j < C; j++) {
          let acc = inv[(b * C + i) * C + j];
          for (let l = 0; l < i; l++) acc += m[(b * C + i) * C + l] * inv[(b * C + l) * C + j];
          product.push(acc);
          identity.push(i === j ? 1 : 0);
        }
      }
    }
    expectClose(product, identity, 1e-5);
  });
});

describe("gated delta rule: one-token step", () => {
  it("equals the reference recurrence, token after token from a state", async () => {
    const c = makeCase(5, 1, 2, 5, 16, 32, true);
    const ref = referenceRecurrent(c);
    let state = c.state;
    const outs: number[] = [];
    const perToken: number[][] = [];
    for (let t = 0; t < c.T; t++) {
      const r = await runDelta("step", sliceCase(c, t, t + 1, state));
      state = r.state;
      perToken.push(Array.from(r.out));
    }
    // out [B=1,H,1,Dv] per token → [H,T,Dv]
    for (let h = 0; h < c.H; h++) for (let t = 0; t < c.T; t++) outs.push(...perToken[t].slice(h * c.Dv, (h + 1) * c.Dv));
    expectClose(outs, ref.out, 1e-4, "outputs");
    expectClose(state, ref.state, 1e-4, "state");
  });

  it("prefill then recurrent steps equals one longer prefill", async () => {
    const c = makeCase(9, 1, 2, 135, 16, 16, false);
    const full = await runDelta("chunk", c);
    const pre = await runDelta("chunk", sliceCase(c, 0, 130, c.state));
    let state = pre.state;
    for (let t = 130; t < 135; t++) {
      const r = await runDelta("step", sliceCase(c, t, t + 1, state));
      state = r.state;
      for (let h = 0; h < c.H; h++) {
        const want = full.out.subarray((h * c.T + t) * c.Dv, (h * c.T + t + 1) * c.Dv);
        expectClose(r.out.subarray(h * c.Dv, (h + 1) * c.Dv), want, 1e-4, `token ${t} head ${h}`);
      }
    }
    expectClose(state, full.state, 1e-4, "state after the steps");
    // and chunked prefill in two pieces (100 + 35) equals one
    const a = await runDelta("chunk", sliceCase(c, 0, 100, c.state));
    const b = await runDelta("chunk", sliceCase(c, 100, 135, a.state));
    expectClose(b.state, full.state, 1e-4, "state after 100 + 35");
  });
});

/** float64 `causal_conv1d_fn` over [state ‖ x] (x [B,T,C], state [B,C,K−1], weight [C,K]) then SiLU. */
function referenceConv(x: Float32Array, state: Float32Array, w: Float32Array, B: number, T: number, C: number, K: number): Float64Array {
  const out = new Float64Array(B * T * C);
  const at = (b: number, c: number, s: number) => (s < K - 1 ? state[(b * C + c) * (K - 1) + s] : x[(b * T + s - (K - 1)) * C + c]);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      for (let c = 0; c < C; c++) {
        let acc = 0;
        for (let j = 0; j < K; j++) acc += w[c * K + j] * at(b, c, t + j);
        out[(b * T + t) * C + c] = acc / (1 + Math.exp(-acc));
      }
    }
  }
  return out;
}

describe("causal depthwise conv1d with state", () => {
  const C = 24;
  const K = 4;
  const w = randn(rng(3), C * K, 0.5);
  const session = (() => {
    const g = new GraphBuilder("conv");
    const x = g.input("x", "float32", ["B", "T", C]);
    const st = g.input("state", "float32", ["B", C, K - 1]);
    const r = causalConv1d(g, x, st, "conv1d", w, C, K);
    g.output(r.output, "y", "float32", ["B", "T", C]);
    g.output(r.state, "new_state", "float32", ["B", C, K - 1]);
    return build(g);
  })();
  const run = async (x: Float32Array, state: Float32Array, B: number, T: number) => {
    const r = await (await session).run({ x: new ort.Tensor("float32", x, [B, T, C]), state: new ort.Tensor("float32", state, [B, C, K - 1]) });
    return { y: r.y.data as Float32Array, state: r.new_state.data as Float32Array };
  };

  it("prefill equals the reference conv (zero state = the reference's left padding), T = 1, 2, 9", async () => {
    for (const T of [1, 2, 9]) {
      const B = 2;
      const x = randn(rng(T), B * T * C);
      const zero = new Float32Array(B * C * (K - 1));
      expectClose((await run(x, zero, B, T)).y, referenceConv(x, zero, w, B, T, C, K), 1e-5, `T=${T}`);
      const st = randn(rng(50 + T), B * C * (K - 1));
      expectClose((await run(x, st, B, T)).y, referenceConv(x, st, w, B, T, C, K), 1e-5, `T=${T} with state`);
    }
  });

  it("prefill, then one-token steps (and a 2-token chunk, shorter than K−1), equals one prefill", async () => {
    const T = 12;
    const x = randn(rng(11), T * C);
    const full = await run(x, new Float32Array(C * (K - 1)), 1, T);
    let { state } = await run(x.subarray(0, 7 * C), new Float32Array(C * (K - 1)), 1, 7);
    const ys: number[] = Array.from(full.y.subarray(0, 7 * C));
    for (const [a, b] of [
      [7, 8],
      [8, 10],
      [10, 11],
      [11, 12],
    ]) {
      const r = await run(x.slice(a * C, b * C), state, 1, b - a);
      ys.push(...r.y);
      state = r.state;
    }
    expectClose(ys, full.y, 1e-6, "outputs");
    expectClose(state, full.state, 0, "state");
    // the state is the last K−1 inputs, channel-major
    const last = Array.from({ length: C * (K - 1) }, (_, i) => x[(T - (K - 1) + (i % (K - 1))) * C + Math.floor(i / (K - 1))]);
    expect(Array.from(full.state)).toEqual(last);
  });
});

describe("gated RMSNorm", () => {
  it("equals Qwen3_5RMSNormGated: x·rsqrt(mean x² + eps)·w·silu(z)", async () => {
    const D = 32;
    const rows = 6;
    const r = rng(21);
    const w = randn(r, D);
    const xs = randn(r, rows * D, 2);
    const zs = randn(r, rows * D, 2);
    const g = new GraphBuilder("norm");
    const x = g.input("x", "float32", [rows, D]);
    const z = g.input("z", "float32", [rows, D]);
    g.output(gatedRmsNorm(g, x, z, "norm", w, 1e-6), "y", "float32", [rows, D]);
    const s = await build(g);
    const y = (await s.run({ x: new ort.Tensor("float32", xs, [rows, D]), z: new ort.Tensor("float32", zs, [rows, D]) })).y.data as Float32Array;
    const ref = new Float64Array(rows * D);
    for (let i = 0; i < rows; i++) {
      let ms = 0;
      for (let d = 0; d < D; d++) ms += xs[i * D + d] ** 2 / D;
      const inv = 1 / Math.sqrt(ms + 1e-6);
      for (let d = 0; d < D; d++) {
        const zz = zs[i * D + d];
        ref[i * D + d] = xs[i * D + d] * inv * w[d] * (zz / (1 + Math.exp(-zz)));
      }
    }
    expectClose(y, ref, 1e-5);
  });
});

/** [B, T, H, D] (the reference's layout) → [B, H, T, D], and back. */
function headsFirst(x: ArrayLike<number>, B: number, T: number, H: number, D: number): Float32Array {
  const y = new Float32Array(B * H * T * D);
  for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) for (let h = 0; h < H; h++) for (let d = 0; d < D; d++) y[((b * H + h) * T + t) * D + d] = x[((b * T + t) * H + h) * D + d];
  return y;
}
function tokensFirst(x: ArrayLike<number>, B: number, T: number, H: number, D: number): Float32Array {
  const y = new Float32Array(B * H * T * D);
  for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) for (let h = 0; h < H; h++) for (let d = 0; d < D; d++) y[((b * T + t) * H + h) * D + d] = x[((b * H + h) * T + t) * D + d];
  return y;
}

interface Fixture {
  delta: {
    B: number; T: number; H: number; Dk: number; Dv: number; aligned: boolean;
    q: number[]; k: number[]; v: number[]; g: number[]; beta: number[]; initial_state: number[];
    chunk_output: number[]; chunk_state: number[]; step_output: number[]; step_state: number[];
  }[];
  conv: { B: number; T: number; C: number; K: number; x: number[]; weight: number[]; prefill: number[]; step: number[] }[];
  norm: { rows: number; D: number; eps: number; weight: number[]; x: number[]; z: number[]; y: number[] };
}
const fixturePath = path.join(import.meta.dirname, "fixtures", "qwen3_5", "gated-delta.json");
const fixture = fs.existsSync(fixturePath) ? (JSON.parse(fs.readFileSync(fixturePath, "utf8")) as Fixture) : null;

describe.runIf(fixture)("against transformers 5.18 (test/fixtures/qwen3_5/gated-delta.json)", () => {
  it("torch_chunk_gated_delta_rule prefill, then torch_recurrent_gated_delta_rule for the next token", async () => {
    for (const f of fixture!.delta) {
      const { B, T, H, Dk, Dv } = f;
      const all: Case = {
        B, H, T: T + 1, Dk, Dv,
        q: headsFirst(f.q, B, T + 1, H, Dk), k: headsFirst(f.k, B, T + 1, H, Dk), v: headsFirst(f.v, B, T + 1, H, Dv),
        g: headsFirst(f.g, B, T + 1, H, 1), beta: headsFirst(f.beta, B, T + 1, H, 1), state: Float32Array.from(f.initial_state),
      };
      const what = f.aligned ? "aligned" : "typical";
      const pre = await runDelta("chunk", sliceCase(all, 0, T, all.state));
      expectClose(tokensFirst(pre.out, B, T, H, Dv), f.chunk_output, 1e-4, `${what} chunk output`);
      expectClose(pre.state, f.chunk_state, 1e-4, `${what} chunk state`);
      const step = await runDelta("step", sliceCase(all, T, T + 1, pre.state));
      expectClose(step.out, f.step_output, 1e-4, `${what} step output`); // T = 1: both layouts agree
      expectClose(step.state, f.step_state, 1e-4, `${what} step state`);
      // the float64 port used by the tests above agrees with the reference too
      const ref = referenceRecurrent(sliceCase(all, 0, T, all.state));
      expectClose(tokensFirst(ref.out, B, T, H, Dv), f.chunk_output, 1e-4, `${what} float64 port output`);
      expectClose(ref.state, f.chunk_state, 1e-4, `${what} float64 port state`);
    }
  });

  it("causal_conv1d_fn (prefill) and causal_conv1d_update (one token)", async () => {
    for (const f of fixture!.conv) {
      const { B, T, C, K } = f;
      const g = new GraphBuilder("conv-fixture");
      const x = g.input("x", "float32", [B, "T", C]);
      const st = g.input("state", "float32", [B, C, K - 1]);
      const r = causalConv1d(g, x, st, "conv1d", Float32Array.from(f.weight), C, K);
      g.output(r.output, "y", "float32", [B, "T", C]);
      g.output(r.state, "new_state", "float32", [B, C, K - 1]);
      const s = await build(g);
      // f.x is [B, C, T+1]; the helper takes [B, T, C]
      const tokens = (from: number, to: number) => {
        const y = new Float32Array(B * (to - from) * C);
        for (let b = 0; b < B; b++) for (let t = from; t < to; t++) for (let c = 0; c < C; c++) y[(b * (to - from) + t - from) * C + c] = f.x[(b * C + c) * (T + 1) + t];
        return y;
      };
      const channelsFirst = (y: Float32Array, n: number) => Float32Array.from({ length: B * C * n }, (_, i) => y[(Math.floor(i / (C * n)) * n + (i % n)) * C + (Math.floor(i / n) % C)]);
      const pre = await s.run({ x: new ort.Tensor("float32", tokens(0, T), [B, T, C]), state: new ort.Tensor("float32", new Float32Array(B * C * (K - 1)), [B, C, K - 1]) });
      expectClose(channelsFirst(pre.y.data as Float32Array, T), f.prefill, 1e-5, `conv prefill T=${T}`);
      const step = await s.run({ x: new ort.Tensor("float32", tokens(T, T + 1), [B, 1, C]), state: pre.new_state });
      expectClose(channelsFirst(step.y.data as Float32Array, 1), f.step, 1e-5, `conv step after T=${T}`);
    }
  });

  it("Qwen3_5RMSNormGated", async () => {
    const f = fixture!.norm;
    const g = new GraphBuilder("norm-fixture");
    const x = g.input("x", "float32", [f.rows, f.D]);
    const z = g.input("z", "float32", [f.rows, f.D]);
    g.output(gatedRmsNorm(g, x, z, "norm", Float32Array.from(f.weight), f.eps), "y", "float32", [f.rows, f.D]);
    const s = await build(g);
    const y = await s.run({ x: new ort.Tensor("float32", Float32Array.from(f.x), [f.rows, f.D]), z: new ort.Tensor("float32", Float32Array.from(f.z), [f.rows, f.D]) });
    expectClose(y.y.data as Float32Array, f.y, 1e-5);
  });
});
