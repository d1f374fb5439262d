/**
 * Physical bounds measured with onnxruntime itself on this machine: the matmul throughput (GFLOP/s) it reaches on
 * a stage's own shapes, and the rate at which a matrix-vector product streams weights (GB/s) at each storage
 * precision. The bench divides each stage's work (bench/cost.ts) by these to say how close the stage runs to
 * what the hardware and onnxruntime's kernels allow.
 */
import { randomFillSync } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import "../onnx/no-telemetry.js";
import * as ort from "onnxruntime-node";
import { GraphBuilder } from "../onnx/graph.js";
import { f32bytes, isFloatPrecision, Layers, type QuantizedKernel, type WeightPrecision } from "../onnx/layers.js";

const BLOCK = 32;

/**
 * Random weights in ±0.01, different for every call. Matrices must not repeat: onnxruntime streamed identical fp32
 * matrices about twice as fast as distinct ones (1×1,536×2,048 products: 49 vs 24 GB/s), which made the decode
 * bound unreachable for a real decoder, whose matrices all differ.
 */
function randomWeights(count: number): Float32Array {
  const bits = randomFillSync(new Uint32Array(count));
  const w = new Float32Array(count);
  for (let i = 0; i < count; i++) w[i] = (bits[i] / 2 ** 32 - 0.5) * 0.02;
  return w;
}

/** Adds y = x · W for a random W [K, N] at `precision`, with the kernel the converter emits (engine/convert.ts). */
function addProduct(g: GraphBuilder, x: string, K: number, N: number, precision: WeightPrecision, name: string, kernel: QuantizedKernel): string {
  if (isFloatPrecision(precision)) return g.op("MatMul", [x, g.weight(name, "float32", [K, N], f32bytes(randomWeights(K * N)))]);
  if (kernel === "rowwise-int8") return new Layers(g, precision, kernel).linear(x, name, randomWeights(K * N), N, K);
  const bits = precision === "int4" ? 4 : 8;
  const blocks = K / BLOCK;
  const q = randomFillSync(new Uint8Array((N * blocks * BLOCK * bits) / 8));
  const scales = new Float32Array(N * blocks).fill(0.01);
  const zeros = new Uint8Array(N * Math.ceil((blocks * bits) / 8)).fill(bits === 4 ? 0x88 : 128);
  return g.op(
    "MatMulNBits",
    [x, g.weight(`${name}.q`, "uint8", [N, blocks, (BLOCK * bits) / 8], q), g.weight(`${name}.s`, "float32", [N * blocks], f32bytes(scales)), g.weight(`${name}.z`, "uint8", [zeros.length], zeros)],
    { K, N, bits, block_size: BLOCK, accuracy_level: kernel === "nbits-acc1" ? 1 : 4 },
    { domain: "com.microsoft" },
  );
}

async function withGraph<T>(build: (g: GraphBuilder) => void, threads: number, use: (session: ort.InferenceSession) => Promise<T>): Promise<T> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "videolm-bounds-"));
  try {
    const file = path.join(dir, "m.onnx");
    const g = new GraphBuilder("bounds", `${file}.data`);
    build(g);
    fs.writeFileSync(file, g.toBytes());
    const session = await ort.InferenceSession.create(file, { executionProviders: ["cpu"], graphOptimizationLevel: "all", intraOpNumThreads: threads, interOpNumThreads: 1 });
    try {
      return await use(session);
    } finally {
      await session.release();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Best time (ms) of `run` over ≥ 3 runs and ≥ `minMs` in total, after one warm-up run. */
async function bestOf(run: () => Promise<unknown>, minMs = 1500): Promise<number> {
  await run();
  let best = Infinity;
  const start = performance.now();
  for (let i = 0; i < 3 || performance.now() - start < minMs; i++) {
    const t = performance.now();
    await run();
    best = Math.min(best, performance.now() - t);
    if (i >= 50) break;
  }
  return best;
}

/** GFLOP/s of x [M, K] · W [K, N] at `precision` (quantized: with `kernel`, as the engine's graph uses). */
export async function matmulGflops(M: number, K: number, N: number, precision: WeightPrecision, threads: number, kernel: QuantizedKernel = "nbits-acc4"): Promise<number> {
  return withGraph(
    (g) => {
      const x = g.input("x", "float32", [M, K]);
      g.output(addProduct(g, x, K, N, precision, "w", kernel), "y", "float32", [M, N]);
    },
    threads,
    async (session) => {
      const x = new ort.Tensor("float32", new Float32Array(M * K).fill(0.5), [M, K]);
      const ms = await bestOf(() => session.run({ x }));
      return (2 * M * K * N) / (ms * 1e6);
    },
  );
}

/**
 * GB/s of weight bytes streamed by matrix-vector products x [1, K] · W_i [K, N] over distinct matrices that
 * together far exceed the caches (≥ 512 MB), as a decode step reads its layers.
 */
export async function gemvBandwidth(K: number, N: number, precision: WeightPrecision, threads: number, bytesPerWeight: number): Promise<number> {
  const perMatrix = K * N * bytesPerWeight;
  // ≥ 512 MB in all, at most 256 matrices (tiny models' matrices then stay cache-sized: their bound means little)
  const count = Math.min(256, Math.max(2, Math.ceil((512 * 2 ** 20) / perMatrix)));
  return withGraph(
    (g) => {
      const x = g.input("x", "float32", [1, K]);
      for (let i = 0; i < count; i++) g.output(addProduct(g, x, K, N, precision, `w${i}`, "nbits-acc4"), `y${i}`, "float32", [1, N]);
    },
    threads,
    async (session) => {
      const x = new ort.Tensor("float32", new Float32Array(K).fill(0.5), [1, K]);
      const ms = await bestOf(() => session.run({ x }));
      return (count * perMatrix) / (ms * 1e6);
    },
  );
}
