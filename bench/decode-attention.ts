/**
 * Decode-attention bench (not a test): one token attending over a KV cache, for every layer of a model shape, with
 * GroupQueryAttention (what prefill chunks use; it copies the past into its own present buffer on every call) and
 * with the decoder's own one-token path (`singleTokenAttention`, reading the cache buffers in place). Same inputs,
 * same graph around them; prints ms per token for each and the largest difference between their outputs.
 *
 *   npx tsx bench/decode-attention.ts [--heads 12] [--kv-heads 2] [--head-dim 128] [--context 1049] [--layers 28] [--threads 2]
 *
 * Defaults: Qwen2-VL-2B's decoder at the context of the speed bench (8 frames of 448×448 + a question).
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parseArgs } from "node:util";
import "../src/onnx/no-telemetry.js";
import * as ort from "onnxruntime-node";
import { pastBias, singleTokenAttention } from "../src/families/qwen2-vl/text.js";
import { GraphBuilder } from "../src/onnx/graph.js";

const { values } = parseArgs({
  options: {
    heads: { type: "string", default: "12" },
    "kv-heads": { type: "string", default: "2" },
    "head-dim": { type: "string", default: "128" },
    context: { type: "string", default: "1049" },
    layers: { type: "string", default: "28" },
    threads: { type: "string", default: "2" },
  },
});
const H = Number(values.heads);
const KV = Number(values["kv-heads"]);
const hd = Number(values["head-dim"]);
const context = Number(values.context);
const layers = Number(values.layers);
const capacity = context + 32; // a cache sized for the prompt + 32 new tokens, as `videolm bench` allocates it

/** Builds the per-layer attention of a graph (setup shared by all layers happens when this is called). */
type Attention = (g: GraphBuilder) => (q: string, k: string, v: string, layer: number) => string;

const gqa: Attention = (g) => (q, k, v, i) =>
  g.opN("GroupQueryAttention", [q, k, v, `past_key.${i}`, `past_value.${i}`, "seqlens_k", "total_sequence_length"], { num_heads: H, kv_num_heads: KV }, 3, "com.microsoft")[0];
const inPlace: Attention = (g) => {
  const bias = pastBias(g, "past_key.0", "seqlens_k"); // once per graph, as in the decoder
  return (q, k, v, i) => singleTokenAttention(g, { q, k, v, pastKey: `past_key.${i}`, pastValue: `past_value.${i}`, pastBias: bias, H, KV, hd });
};

async function measure(name: string, makeAttention: Attention): Promise<Float32Array> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "videolm-attn-"));
  const file = path.join(dir, "attention.onnx");
  const g = new GraphBuilder(name);
  const q = g.input("q", "float32", [1, 1, H * hd]);
  const k = g.input("k", "float32", [1, 1, KV * hd]);
  const v = g.input("v", "float32", [1, 1, KV * hd]);
  g.input("seqlens_k", "int32", [1]);
  g.input("total_sequence_length", "int32", []);
  for (let i = 0; i < layers; i++) {
    g.input(`past_key.${i}`, "float32", [1, KV, "capacity", hd]);
    g.input(`past_value.${i}`, "float32", [1, KV, "capacity", hd]);
  }
  const attention = makeAttention(g);
  // Layers chained through q (each layer's output is the next one's query), as a decoder chains them.
  let x = q;
  for (let i = 0; i < layers; i++) x = attention(x, k, v, i);
  g.output(x, "y", "float32", [1, 1, H * hd]);
  fs.writeFileSync(file, g.toBytes());
  const session = await ort.InferenceSession.create(file, { intraOpNumThreads: Number(values.threads), interOpNumThreads: 1, graphOptimizationLevel: "all" });
  const filled = (seed: number) =>
    Float32Array.from({ length: KV * capacity * hd }, (_, j) => (Math.floor(j / hd) % capacity < context ? Math.sin(j * 0.37 + seed) : 0));
  const feeds: Record<string, ort.Tensor> = {
    q: new ort.Tensor("float32", Float32Array.from({ length: H * hd }, (_, j) => Math.sin(j) * 0.1), [1, 1, H * hd]),
    k: new ort.Tensor("float32", Float32Array.from({ length: KV * hd }, (_, j) => Math.cos(j) * 0.1), [1, 1, KV * hd]),
    v: new ort.Tensor("float32", Float32Array.from({ length: KV * hd }, (_, j) => Math.cos(3 * j)), [1, 1, KV * hd]),
    seqlens_k: new ort.Tensor("int32", Int32Array.from([context]), [1]), // total − 1: the new token sits at `context`
    total_sequence_length: new ort.Tensor("int32", Int32Array.from([context + 1]), []),
  };
  for (let i = 0; i < layers; i++) {
    feeds[`past_key.${i}`] = new ort.Tensor("float32", filled(2 * i), [1, KV, capacity, hd]);
    feeds[`past_value.${i}`] = new ort.Tensor("float32", filled(2 * i + 1), [1, KV, capacity, hd]);
  }
  let out = await session.run(feeds);
  let best = Infinity;
  for (let r = 0; r < 10; r++) {
    const t = performance.now();
    out = await session.run(feeds);
    best = Math.min(best, performance.now() - t);
  }
  console.log(`${name.padEnd(26)} ${best.toFixed(2)} ms per token (${layers} layers)`);
  await session.release();
  fs.rmSync(dir, { recursive: true, force: true });
  return out.y.data as Float32Array;
}

console.log(`one token over ${context} cached positions (capacity ${capacity}); ${H} heads, ${KV} KV heads, head_dim ${hd}; ${values.threads} threads`);
const a = await measure("GroupQueryAttention", gqa);
const b = await measure("in place (decoder's path)", inPlace);
console.log(`max |difference| ${a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0).toExponential(2)}`);
