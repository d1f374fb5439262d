/**
 * MoE bench (not a test): one sparse MoE layer (src/onnx/moe.ts) at a Qwen3.5-35B-A3B-like width, decoding one token
 * per call (S = 1) with a fresh random token each call (so different experts, read cold, as in real decoding), against
 *   - dense-active: a dense SwiGLU MLP with the same active parameter count (intermediate k·Im + Is), the floor a
 *     sparse layer can approach;
 *   - dense-all: every expert on every token (strategy "dense"), what ignoring the routing would cost.
 * Prints ms per decoded token for this one layer (median and min of --steps calls), the expert bytes a token reads (active)
 * against all the layer's expert bytes (total), load time, and optionally a prefill of --prefill tokens.
 *
 *   npx tsx bench/moe.ts [--hidden 2048] [--experts 256] [--top-k 8] [--intermediate 512] [--shared 512]
 *                        [--precisions int4,fp32] [--fp32-experts 64] [--steps 40] [--prefill 128] [--threads 2]
 *                        [--skip-dense-all] [--expert-group G] [--conditional if|loop]
 *
 * Measured on this project's 2-core AVX2 machine (shared with other jobs, load average ~3; 1 thread, the steadiest),
 * ms per decoded token for one layer, median (min):
 *   int4, E 256 (20.2 MB of expert bytes per token active vs 520 MB total, 25.7×):
 *     sparse 4.7 (3.4), dense-active 0.96 (0.85), dense-all 59 (58)   → sparse 13× faster than dense-all
 *   fp32, E 64 (114 MB active vs 818 MB total, 7.2×):
 *     sparse 8.1 (7.8), dense-active 6.2 (5.7), dense-all 53 (52)      → 6.5×
 * Of int4 sparse's ~4 ms, ~1 ms is the 256 Ifs (an untaken one ~4 µs; --expert-group 8 trims it, see moe.ts) and
 * ~2 ms the chosen experts' MatMulNBits on weights read cold (dense-active reads the same bytes, hot in cache, each
 * call). With 2 threads the shared machine's contention makes the many small sparse kernels noisy (int4 sparse 8.6
 * (3.7), dense-active 1.5 (0.8), dense-all 118 (74)).
 *
 * fp32 runs with --fp32-experts experts (default 64: 256 experts at fp32 are 3.2 GB per copy, and dense-all needs
 * a second one); the active bytes per token do not depend on E, the total does.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parseArgs } from "node:util";
import "../src/onnx/no-telemetry.js";
import * as ort from "onnxruntime-node";
import { GraphBuilder } from "../src/onnx/graph.js";
import { Layers, type WeightPrecision } from "../src/onnx/layers.js";
import { type MoeConfig, type MoeWeights, sparseMoe } from "../src/onnx/moe.js";

const { values } = parseArgs({
  options: {
    hidden: { type: "string", default: "2048" },
    experts: { type: "string", default: "256" },
    "top-k": { type: "string", default: "8" },
    intermediate: { type: "string", default: "512" },
    shared: { type: "string", default: "512" },
    precisions: { type: "string", default: "int4,fp32" },
    "fp32-experts": { type: "string", default: "64" },
    steps: { type: "string", default: "40" },
    prefill: { type: "string", default: "128" },
    threads: { type: "string", default: "2" },
    "skip-dense-all": { type: "boolean", default: false },
    "expert-group": { type: "string" },
    conditional: { type: "string", default: "if" },
  },
});
const h = Number(values.hidden);
const k = Number(values["top-k"]);
const Im = Number(values.intermediate);
const Is = Number(values.shared);
const steps = Number(values.steps);
const prefill = Number(values.prefill);
const threads = Number(values.threads);

/** Deterministic uniform(−scale, scale) values (an LCG; fast enough for a few hundred million). */
function random(n: number, seed: number, scale: number): Float32Array {
  let s = (seed * 2654435761) >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = ((s / 2 ** 32) * 2 - 1) * scale;
  }
  return out;
}

/** Bytes per weight as stored (MatMulNBits block 32: data + one float32 scale + one zero point per block). */
const bytesPerWeight: Record<WeightPrecision, number> = { fp32: 4, fp16: 2, int8: (32 + 4 + 1) / 32, int4: (16 + 4 + 0.5) / 32 };

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "videolm-moe-bench-"));
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

type Variant = "sparse" | "dense-all" | "dense-active";

async function build(variant: Variant, precision: WeightPrecision, E: number): Promise<{ session: ort.InferenceSession; loadMs: number; buildMs: number }> {
  const t0 = performance.now();
  const file = path.join(dir, `${variant}-${precision}.onnx`);
  const g = new GraphBuilder(`moe-${variant}`, `${file}.data`);
  const layers = new Layers(g, precision);
  const x = g.input("x", "float32", [1, "seq", h]);
  const cfg: MoeConfig = { hidden: h, numExperts: E, topK: k, intermediate: Im, sharedIntermediate: Is, strategy: variant === "dense-all" ? "dense" : "sparse", expertGroup: values["expert-group"] ? Number(values["expert-group"]) : undefined, conditional: values.conditional as "if" | "loop" };
  let y: string;
  if (variant === "dense-active") {
    // SwiGLU with the active parameter count: k experts + the shared expert side by side.
    const F = k * Im + Is;
    y = g.scope("mlp", () => {
      const gu = layers.linear(x, "gate_up_proj", random(2 * F * h, 1, 0.02), 2 * F, h);
      const [gate, up] = g.opN("Split", [gu, g.ints([F, F])], { axis: -1 }, 2);
      return layers.linear(g.op("Mul", [layers.activation(gate, "silu"), up]), "down_proj", random(h * F, 2, 0.02), h, F);
    });
  } else {
    const weights: MoeWeights = {
      router: random(E * h, 3, 0.05),
      gateUp: (e) => random(2 * Im * h, 1000 + e, 0.02),
      down: (e) => random(h * Im, 5000 + e, 0.02),
      shared: { gateUp: random(2 * Is * h, 4, 0.02), down: random(h * Is, 5, 0.02), gate: random(h, 6, 0.02) },
    };
    y = sparseMoe(layers, x, "mlp", cfg, weights);
  }
  g.output(y, "y", "float32", [1, "seq", h]);
  fs.writeFileSync(file, g.toBytes());
  const t1 = performance.now();
  const session = await ort.InferenceSession.create(file, { executionProviders: ["cpu"], intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: "all" });
  const t2 = performance.now();
  return { session, buildMs: t1 - t0, loadMs: t2 - t1 };
}

async function timeRuns(session: ort.InferenceSession, S: number, n: number, seed: number): Promise<{ median: number; min: number }> {
  const times: number[] = [];
  for (let i = 0; i < n + 2; i++) {
    const x = new ort.Tensor("float32", random(S * h, seed + i, 1), [1, S, h]);
    const t0 = performance.now();
    await session.run({ x });
    if (i >= 2) times.push(performance.now() - t0); // two warm-up calls
  }
  return { median: median(times), min: Math.min(...times) };
}

console.log(`MoE layer: h ${h}, k ${k}, Im ${Im}, shared ${Is}; ${threads} threads; decode = median of ${steps} one-token calls, each a new random token`);
for (const precision of values.precisions.split(",") as WeightPrecision[]) {
  const E = precision === "fp32" ? Math.min(Number(values.experts), Number(values["fp32-experts"])) : Number(values.experts);
  const bpw = bytesPerWeight[precision];
  const perExpert = 3 * Im * h;
  const active = (k * perExpert + 3 * Is * h) * bpw + (E + 1) * h * 4; // + router and shared gate (float32)
  const total = (E * perExpert + 3 * Is * h) * bpw + (E + 1) * h * 4;
  console.log(`\n${precision}, E ${E}: expert bytes per decoded token ${mb(active)} active vs ${mb(total)} total (${(total / active).toFixed(1)}×)`);
  const variants: Variant[] = values["skip-dense-all"] ? ["sparse", "dense-active"] : ["sparse", "dense-active", "dense-all"];
  for (const variant of variants) {
    const { session, buildMs, loadMs } = await build(variant, precision, E);
    const decode = await timeRuns(session, 1, steps, 10_000);
    const pre = prefill > 0 ? (await timeRuns(session, prefill, 3, 20_000)).median : 0;
    const rss = process.memoryUsage().rss;
    console.log(
      `  ${variant.padEnd(12)} decode ${decode.median.toFixed(3)} ms/token (min ${decode.min.toFixed(3)})` +
        (prefill > 0 ? `   prefill ${prefill} tokens ${pre.toFixed(1)} ms (${((pre / prefill) * 1000).toFixed(0)} µs/token)` : "") +
        `   build ${(buildMs / 1000).toFixed(1)} s, load ${(loadMs / 1000).toFixed(1)} s, rss ${mb(rss)}`,
    );
    await session.release();
    for (const f of fs.readdirSync(dir)) fs.rmSync(path.join(dir, f));
  }
}
fs.rmSync(dir, { recursive: true, force: true });
