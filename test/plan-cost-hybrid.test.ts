/**
 * The cost estimate by the decoder state a family declares (issue 16): for Qwen3.5's hybrid decoder (3 Gated DeltaNet
 * layers with a constant-size state, 1 gated attention layer with a KV cache) the plan's decoder state equals what the
 * engine's DecoderState allocates, only the KV part grows with the context, attention FLOPs are counted for the
 * attention layer only, and the per-layer matmul weights equal the checkpoint's tensors; Qwen2-VL's estimate is the
 * formula it was before.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { execFileSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { decodeBytesPerToken, decoderCostModel, prefillFlops, type CostFamily, type DecoderCostModel } from "../src/bench/cost.js";
import { DEFAULT_RATES, estimateCost, type CostEstimate } from "../src/bench/estimate.js";
import { inspectCommand } from "../src/cli/commands/inspect.js";
import { DecoderState } from "../src/engine/decoder-state.js";
import { decoderMemoryText, planCost } from "../src/engine/plan-cost.js";
import { RequestPreparer } from "../src/engine/preparer.js";
import type { Qwen2VLConfig } from "../src/families/qwen2-vl/config.js";
import { qwen2VL } from "../src/families/qwen2-vl/family.js";
import { gatedDeltaFlopsPerTokenHead, qwen3_5DecoderCost, qwen3_5MoeDecoderCost } from "../src/families/qwen3-5/cost.js";
import { qwen3_5, qwen3_5DecoderState, type Qwen3_5FamilyConfig } from "../src/families/qwen3-5/family.js";
import { parseQwen3_5MoeFamilyConfig } from "../src/families/qwen3-5/moe-family.js";
import { parseQwen3VLMoeConfig } from "../src/families/qwen3-vl-moe/config.js";
import { qwen3VLMoeDecoderCost } from "../src/families/qwen3-vl-moe/cost.js";
import { locateFfmpeg } from "../src/media/ffmpeg.js";
import { elementCount, materializeTinyCheckpoint, repoRoot } from "../src/testing/tiny-checkpoint.js";

const ROOT = repoRoot();
const QWEN3_5_FIXTURE = path.join(ROOT, "test/fixtures/qwen3_5/qwen3_5-tiny");
const work = fs.mkdtempSync(path.join(os.tmpdir(), "videolm-plan-cost-hybrid-"));
const cacheRoot = path.join(work, "cache"); // no machine-rates.json: the built-in default rates
let qwen3_5Dir: string;
let qwen2Dir: string;
let clip: string;

beforeAll(async () => {
  qwen3_5Dir = await materializeTinyCheckpoint(QWEN3_5_FIXTURE);
  qwen2Dir = await materializeTinyCheckpoint(path.join(ROOT, "test/fixtures/qwen2-vl/qwen2-vl-tiny"));
  clip = path.join(work, "clip.mp4");
  execFileSync(locateFfmpeg().ffmpeg, ["-nostdin", "-y", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-t", "5", "-pix_fmt", "yuv420p", clip]);
}, 120_000);
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

const rates = { source: "default" as const, dtype: "fp32" as const, ...DEFAULT_RATES.fp32 };
function estimate(config: Qwen2VLConfig, decoder: DecoderCostModel | undefined, promptTokens: number, maxNewTokens: number): CostEstimate {
  return estimateCost(config, { grids: [], promptTokens, maxNewTokens }, { dtype: "fp32", rates, weightsBytes: 0, chunkPatches: 1024, ...(decoder ? { decoder } : {}) });
}

async function captureStdout(fn: () => Promise<number>): Promise<{ code: number; stdout: string }> {
  let stdout = "";
  const spy = vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  });
  try {
    return { code: await fn(), stdout };
  } finally {
    spy.mockRestore();
  }
}

describe("Qwen3.5's hybrid decoder in the cost estimate", () => {
  it("the plan's decoder state is what the engine allocates: KV for the 1 attention layer, a constant state for the 3 linear layers", async () => {
    const preparer = await RequestPreparer.load(qwen3_5Dir);
    const config = preparer.config as unknown as Qwen3_5FamilyConfig;
    const plan = await preparer.plan([{ role: "user", content: [{ type: "video", video: clip }, { type: "text", text: "What happens?" }] }], {}, { maxNewTokens: 64 });
    const cost = planCost(preparer, plan, { cacheRoot });
    const capacity = plan.inputIds.length + plan.maxNewTokens; // generate.ts: createState(S + maxNewTokens)
    const engine = new DecoderState(qwen3_5.decoderState(config), capacity);
    const s = cost.estimate.memory.state;
    expect(s.total).toBe(engine.bytesAllocated());
    expect([s.kvLayers, s.recurrentLayers]).toEqual([1, 3]);
    // by hand (docs/qwen3_5-reference.md §7, §11): KV 2 · nkv 2 · hd 64 · positions · 4 bytes for the one attention
    // layer; per linear layer 4 · (conv_dim 320 · K 4 + Hv 4 · dk 32 · dv 48) bytes, whatever the length
    expect(s.kv).toBe(2 * 2 * 64 * capacity * 4);
    expect(s.recurrent).toBe(3 * 4 * (320 * 4 + 4 * 32 * 48));
    // the state is part of the decoder's memory, with one prefill chunk's activations
    expect(cost.estimate.memory.decoderBytes).toBeGreaterThan(s.total);
    // what the Qwen2-VL formula said: a KV cache in all 4 layers
    const allKv = estimate(config as unknown as Qwen2VLConfig, undefined, plan.inputIds.length, plan.maxNewTokens).memory.state;
    expect(allKv.kv).toBe(4 * s.kv);
    expect(allKv.recurrent).toBe(0);
  }, 60_000);

  it("doubling the context doubles only the KV part; decode reads the KV at the context plus the constant state", async () => {
    const preparer = await RequestPreparer.load(qwen3_5Dir);
    const config = preparer.config as unknown as Qwen2VLConfig;
    const decoder = decoderCostModel(config, qwen3_5 as unknown as CostFamily<Qwen2VLConfig>);
    const a = estimate(config, decoder, 1000, 200).memory.state;
    const b = estimate(config, decoder, 2000, 400).memory.state;
    expect(b.kv).toBe(2 * a.kv);
    expect(b.recurrent).toBe(a.recurrent);
    expect(b.recurrent).toBeGreaterThan(0);
    for (const [T, capacity] of [
      [1200, 1200],
      [2400, 2400],
    ]) {
      expect(estimate(config, decoder, T - 100, 100).memory.state.total).toBe(new DecoderState(qwen3_5.decoderState(config as unknown as Qwen3_5FamilyConfig), capacity).bytesAllocated());
    }
    // decode bytes: weights + head + state; the difference between two contexts is KV of the attention layer only
    const d1 = decodeBytesPerToken(config, "fp32", 1000, decoder);
    const d2 = decodeBytesPerToken(config, "fp32", 2000, decoder);
    expect(d2 - d1).toBe(2 * 2 * 64 * 1000 * 4);
  });

  it("counts each layer's matmul weights as the checkpoint holds them (linear: in_proj_qkv/z/a/b, out_proj; attention: gated q, k, v, o; MLP)", async () => {
    const preparer = await RequestPreparer.load(qwen3_5Dir);
    const config = preparer.config as unknown as Qwen3_5FamilyConfig;
    const spec = JSON.parse(fs.readFileSync(path.join(QWEN3_5_FIXTURE, "weights.json"), "utf8")) as { tensors: { name: string; shape: number[] }[] };
    const layers = qwen3_5DecoderCost(config);
    expect(layers).toHaveLength(4);
    layers.forEach((layer, i) => {
      const prefix = `model.language_model.layers.${i}.`;
      // matrices only: the depthwise conv1d [conv_dim, 1, K] and the norms, A_log, dt_bias are not matmul weights
      const matrices = spec.tensors.filter((t) => t.name.startsWith(prefix) && t.shape.length === 2);
      expect(layer.params, `layer ${i}`).toBe(matrices.reduce((n, t) => n + elementCount(t.shape), 0));
      expect(layer.mixer.kind).toBe(config.text.layerTypes[i] === "full_attention" ? "attention" : "linear");
    });
    // h 64, I 128: linear 320·64 + 192·64 + 2·4·64 + 64·192 + 3·64·128; attention (2·4·64)·64 + 2·(2·64)·64 + 64·256 + 3·64·128
    expect(layers.map((l) => l.params)).toEqual([70144, 70144, 70144, 90112]);
  });

  it("counts attention FLOPs (quadratic in tokens) for the attention layer only, the linear layers' delta rule linear in tokens", async () => {
    const preparer = await RequestPreparer.load(qwen3_5Dir);
    const config = preparer.config as unknown as Qwen2VLConfig;
    const decoder = decoderCostModel(config, qwen3_5 as unknown as CostFamily<Qwen2VLConfig>);
    // Hv 4 heads of dk 32, dv 48, chunks of 64: 2·(64·(3·32 + 2·48) + (1+4+16+64+256+1024) + 3·32·48) per head,
    // + the conv 2·conv_dim 320·K 4
    expect(gatedDeltaFlopsPerTokenHead(32, 48)).toBe(2 * (64 * 192 + 1365 + 4608));
    const linearPerToken = 4 * 36522 + 2 * 320 * 4;
    const f = (T: number) => prefillFlops(config, T, decoder);
    const T = 1000;
    const params = 3 * 70144 + 90112;
    expect(f(T)).toBe(2 * T * params + 2 * T * T * 4 * 64 + 3 * T * linearPerToken + 2 * 151936 * 64);
    // the quadratic coefficient: (f(2T) − 2 f(T) + f(0)) / 2T² = 2 · nh · hd for 1 layer (the old formula: 4 layers)
    expect((f(2 * T) - 2 * f(T) + f(0)) / (2 * T * T)).toBe(2 * 4 * 64);
    const old = (t: number) => prefillFlops(config, t);
    expect((old(2 * T) - 2 * old(T) + old(0)) / (2 * T * T)).toBe(4 * 2 * 4 * 64);
  });

  it("inspect says the split: KV for 1 attention layer + recurrent for 3 linear layers, constant in length", async () => {
    const text = await captureStdout(() => inspectCommand(["--model", qwen3_5Dir, "--video", clip, "--cache-dir", cacheRoot, "-q"]));
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/the decoder [\d.]+ MiB \(decoder state [\d.]+ MiB: KV [\d.]+ MiB for 1 attention layer \+ [\d.]+ MiB recurrent for 3 linear layers, constant in length; the rest one prefill chunk's activations\)/);
    expect(text.stdout).not.toContain("KV cache with attention");
    const json = JSON.parse((await captureStdout(() => inspectCommand(["--model", qwen3_5Dir, "--video", clip, "--cache-dir", cacheRoot, "--json", "-q"]))).stdout);
    const positions = json.promptTokens + json.maxNewTokens;
    expect(json.cost.memory.decoder_state).toEqual({ kv_bytes: 2 * 2 * 64 * positions * 4, recurrent_bytes: 89088, attention_layers: 1, linear_layers: 3 });
  }, 60_000);
});

describe("MoE: total weights stored, active weights computed and read", () => {
  it("qwen3_5_moe tiny: params = every expert (as the checkpoint holds them), activeParams = router + top-k + shared expert", () => {
    const fixture = path.join(ROOT, "test/fixtures/qwen3_5_moe/qwen3_5_moe-tiny");
    const config = parseQwen3_5MoeFamilyConfig(JSON.parse(fs.readFileSync(path.join(fixture, "config.json"), "utf8")));
    const spec = JSON.parse(fs.readFileSync(path.join(fixture, "weights.json"), "utf8")) as { tensors: { name: string; shape: number[] }[] };
    const layers = qwen3_5MoeDecoderCost(config);
    const h = 64;
    // E 8 experts of Im 32, top-2, shared expert Is 48: router 8·64, shared 3·64·48 + its gate 64, experts 3·64·32 each
    const always = 8 * h + 3 * h * 48 + h;
    const expert = 3 * h * 32;
    layers.forEach((layer, i) => {
      const prefix = `model.language_model.layers.${i}.`;
      // matmul weights: matrices and the fused expert tensors [E, ·, ·]; not the depthwise conv1d [conv_dim, 1, K]
      const weights = spec.tensors.filter((t) => t.name.startsWith(prefix) && t.shape.length >= 2 && !t.name.includes("conv1d"));
      expect(layer.params, `layer ${i}`).toBe(weights.reduce((n, t) => n + elementCount(t.shape), 0));
      expect(layer.params - layer.activeParams!).toBe((8 - 2) * expert);
    });
    // the dense layers' mixers with the MoE block: the same state, prefill FLOPs and decode bytes counted on the active weights
    const mixer = [70144, 70144, 70144, 90112].map((p) => p - 3 * h * 128);
    expect(layers.map((l) => l.activeParams)).toEqual(mixer.map((m) => m + always + 2 * expert));
    const decoder = decoderCostModel(config as unknown as Qwen2VLConfig, { decoderState: qwen3_5DecoderState, decoderCost: qwen3_5MoeDecoderCost } as unknown as CostFamily<Qwen2VLConfig>);
    const active = layers.reduce((n, l) => n + l.activeParams!, 0);
    expect(decodeBytesPerToken(config as unknown as Qwen2VLConfig, "fp32", 0, decoder)).toBe(active * 4 + 151936 * h * 4 + 3 * 4 * (320 * 4 + 4 * 32 * 48));
  });
});

describe("MoE: Qwen3-VL-MoE", () => {
  it("qwen3_vl_moe tiny: params = the checkpoint's matrices per layer, activeParams = attention + router + top-k experts", () => {
    const fixture = path.join(ROOT, "test/fixtures/qwen3_vl_moe/qwen3_vl_moe-tiny");
    const config = parseQwen3VLMoeConfig(JSON.parse(fs.readFileSync(path.join(fixture, "config.json"), "utf8")));
    const spec = JSON.parse(fs.readFileSync(path.join(fixture, "weights.json"), "utf8")) as { tensors: { name: string; shape: number[] }[] };
    const layers = qwen3VLMoeDecoderCost(config);
    const { numExperts: E, numExpertsPerTok: k, moeIntermediateSize: Im } = config.moe;
    expect(layers).toHaveLength(config.text.numLayers);
    layers.forEach((layer, i) => {
      const prefix = `model.language_model.layers.${i}.`;
      const weights = spec.tensors.filter((t) => t.name.startsWith(prefix) && t.shape.length >= 2);
      expect(layer.params, `layer ${i}`).toBe(weights.reduce((n, t) => n + elementCount(t.shape), 0));
      expect(layer.params - layer.activeParams!).toBe((E - k) * 3 * config.text.hiddenSize * Im);
      expect(layer.mixer.kind).toBe("attention");
    });
  });
});

describe("Qwen2-VL's estimate is unchanged", () => {
  it("every layer attention with a KV cache: the same decoder memory, FLOPs and bytes as the formula before", async () => {
    const preparer = await RequestPreparer.load(qwen2Dir);
    const config = preparer.config as unknown as Qwen2VLConfig;
    const t = config.text;
    const decoder = decoderCostModel(config, qwen2VL as unknown as CostFamily<Qwen2VLConfig>);
    expect(decoder.layers.every((l) => l.mixer.kind === "attention")).toBe(true);
    expect(decoder).toEqual(decoderCostModel(config));
    const S = 700;
    const M = 100;
    const e = estimate(config, decoder, S, M);
    // the formula before the decoder was described per layer (bench/estimate.ts, transformers Qwen2Model shapes)
    const chunk = Math.min(S, 512);
    const kv = 2 * t.numLayers * t.numKvHeads * t.headDim * (S + M) * 4;
    expect(e.memory.decoderBytes).toBe(kv + chunk * t.numHeads * S * 4 + chunk * (3 * t.intermediateSize + 4 * t.hiddenSize) * 4 + S * t.hiddenSize * 4 + t.vocabSize * 4);
    expect(e.memory.state).toEqual({ kv, recurrent: 0, total: kv, kvLayers: t.numLayers, recurrentLayers: 0 });
    const layer = t.hiddenSize * t.numHeads * t.headDim * 2 + 2 * t.hiddenSize * t.numKvHeads * t.headDim + 3 * t.hiddenSize * t.intermediateSize;
    expect(prefillFlops(config, S, decoder)).toBe(t.numLayers * (2 * S * layer + 2 * S * S * t.numHeads * t.headDim) + 2 * t.vocabSize * t.hiddenSize);
    expect(decodeBytesPerToken(config, "fp32", S, decoder)).toBe(t.numLayers * layer * 4 + t.vocabSize * t.hiddenSize * 4 + 2 * t.numLayers * t.numKvHeads * t.headDim * S * 4);
    expect(decoderMemoryText(e)).toMatch(/^KV cache with attention [\d.]+ MiB$/);
  });

  it("a family's decoderCost must describe as many layers as its decoder state", () => {
    const config = { text: { numLayers: 2, numKvHeads: 1, headDim: 8, numHeads: 1, hiddenSize: 8, intermediateSize: 8 } } as unknown as Qwen2VLConfig;
    const family: CostFamily<Qwen2VLConfig> = { decoderState: () => [{ kind: "kv", numKvHeads: 1, headDim: 8 }], decoderCost: () => [] };
    expect(() => decoderCostModel(config, family)).toThrow(/describes 0 layers but the decoder state has 1/);
  });
});
