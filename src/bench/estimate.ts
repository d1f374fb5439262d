/**
 * What a request will cost on this machine, before running it: memory (weights + vision activations of one chunk +
 * the decoder state and the activations of one prefill chunk) and time (vision and prefill FLOPs ÷ measured GFLOP/s, decode bytes ÷
 * measured GB/s), from the work model of cost.ts and the rates `videolm bench` measured here and cached
 * (machine-rates.json in the videolm cache folder), else a conservative built-in default — the estimate says which.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { defaultCacheRoot } from "../engine/convert.js";
import type { Qwen2VLConfig } from "../families/qwen2-vl/config.js";
import { isFloatPrecision, type WeightPrecision } from "../onnx/layers.js";
import { stateBytesByKind, type StateBytes } from "../engine/state-bytes.js";
import { bytesPerWeight, decodeBytesPerToken, decoderCostModel, prefillFlops, visionFlops, type DecoderCostModel } from "./cost.js";

/** Throughput of each stage: vision and prefill GFLOP/s, decode GB/s of weights + KV cache read per token. */
export interface MachineRates {
  visionGflops: number;
  prefillGflops: number;
  decodeGBps: number;
}

export interface RatesInfo extends MachineRates {
  /** "measured": from `videolm bench` on this machine (cached); "default": the built-in conservative rates. */
  source: "measured" | "default";
  dtype: WeightPrecision;
  /** measured: when, where from (the cache file), with how many threads and on which model. */
  measuredAt?: string;
  file?: string;
  threads?: number;
  model?: string;
}

/**
 * Half the rates the 2-core reference machine reached in `npm run bench:compare` (docs/performance.md: 2B shapes,
 * 8 frames of 448², 1,049 prompt tokens; fp32 vision 137 GFLOP/s, prefill 148, decode 26.8 GB/s; int8 115 / 100 /
 * 14.7; int4 191 / 128 / 14.0): slow enough that an unmeasured machine is rarely faster than said.
 */
export const DEFAULT_RATES: Record<WeightPrecision, MachineRates> = {
  fp32: { visionGflops: 65, prefillGflops: 70, decodeGBps: 13 },
  fp16: { visionGflops: 65, prefillGflops: 70, decodeGBps: 13 },
  int8: { visionGflops: 55, prefillGflops: 50, decodeGBps: 7 },
  int4: { visionGflops: 90, prefillGflops: 60, decodeGBps: 7 },
};

const RATES_FILE = "machine-rates.json";

export function ratesFile(cacheRoot?: string): string {
  return path.join(cacheRoot ?? defaultCacheRoot(), RATES_FILE);
}

interface RatesFileShape {
  version: 1;
  /** by dtype */
  rates: Partial<Record<WeightPrecision, MachineRates & { measuredAt: string; threads: number; model: string }>>;
}

function readRatesFile(file: string): RatesFileShape | undefined {
  try {
    const raw = JSON.parse(fs.readFileSync(file, "utf8")) as RatesFileShape;
    return raw && raw.version === 1 && typeof raw.rates === "object" && raw.rates !== null ? raw : undefined;
  } catch {
    return undefined;
  }
}

const positive = (x: unknown): x is number => typeof x === "number" && Number.isFinite(x) && x > 0;

/** The measured rates for `dtype` from the cache, else the built-in default (said in `source`). */
export function loadRates(dtype: WeightPrecision, cacheRoot?: string): RatesInfo {
  const file = ratesFile(cacheRoot);
  const entry = readRatesFile(file)?.rates[dtype];
  if (entry && positive(entry.visionGflops) && positive(entry.prefillGflops) && positive(entry.decodeGBps)) {
    return {
      source: "measured",
      dtype,
      visionGflops: entry.visionGflops,
      prefillGflops: entry.prefillGflops,
      decodeGBps: entry.decodeGBps,
      measuredAt: entry.measuredAt,
      threads: entry.threads,
      model: entry.model,
      file,
    };
  }
  return { source: "default", dtype, ...DEFAULT_RATES[dtype] };
}

/** Records measured rates for `dtype` (written by `videolm bench`), keeping the other precisions' entries. */
export function saveRates(dtype: WeightPrecision, rates: MachineRates, meta: { threads: number; model: string }, cacheRoot?: string): string {
  const file = ratesFile(cacheRoot);
  const current = readRatesFile(file) ?? { version: 1, rates: {} };
  current.rates[dtype] = { visionGflops: rates.visionGflops, prefillGflops: rates.prefillGflops, decodeGBps: rates.decodeGBps, measuredAt: new Date().toISOString(), ...meta };
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(current, null, 2) + "\n");
  fs.renameSync(tmp, file);
  return file;
}

export interface CostInput {
  /** Grids [t, h, w] of the visuals. */
  grids: [number, number, number][];
  promptTokens: number;
  maxNewTokens: number;
}

export interface CostEstimate {
  dtype: WeightPrecision;
  /** Peak bytes: weights + the larger of the vision phase and the decoder phase + the visual embeddings. */
  memoryBytes: number;
  /**
   * decoderBytes = the decoder state at the full context (`state`) + one prefill chunk's activations (attention scores,
   * linear-attention intermediates, MLP).
   */
  memory: { weightsBytes: number; visionBytes: number; decoderBytes: number; embeddingsBytes: number; state: StateBytes };
  /** Seconds per stage; `firstToken` = vision + prefill; `total` adds all maxNewTokens (an upper bound). */
  seconds: { vision: number; prefill: number; decode: number; firstToken: number; total: number };
  /** Work: vision and prefill GFLOP, decode GB read over all new tokens. */
  work: { visionGflop: number; prefillGflop: number; decodeGB: number };
  rates: RatesInfo;
}

/**
 * Weight bytes once converted at `dtype`: decoder matrices at the precision, vision tower at float32 (fp32/fp16) or
 * 8 bits (int8/int4), embedding table float32, output head 8-bit under int8/int4 (a copy when tied), vectors float32.
 */
export function weightBytes(tensors: Iterable<[string, { shape: number[] }]>, dtype: WeightPrecision, tieWordEmbeddings: boolean): number {
  const float = isFloatPrecision(dtype);
  const head = float ? 4 : bytesPerWeight("int8");
  let bytes = 0;
  for (const [name, info] of tensors) {
    const n = info.shape.reduce((a, b) => a * b, 1);
    if (info.shape.length < 2) bytes += 4 * n;
    else if (name.includes("embed_tokens")) bytes += 4 * n + (tieWordEmbeddings ? head * n : 0);
    else if (name.includes("lm_head")) bytes += head * n;
    else if (name.startsWith("visual") || name.includes(".visual.")) bytes += float ? 4 * n : bytesPerWeight("int8") * n;
    else bytes += bytesPerWeight(dtype) * n;
  }
  return bytes;
}

/** Prefill chunk length of the engine (engine/generate.ts DEFAULT_PREFILL_CHUNK). */
const PREFILL_CHUNK = 512;

/**
 * `options.decoder`: the decoder's layers and state (cost.ts `decoderCostModel(config, family)`); default: Qwen2-VL
 * attention layers throughout.
 */
export function estimateCost(
  config: Qwen2VLConfig,
  input: CostInput,
  options: { dtype: WeightPrecision; rates: RatesInfo; weightsBytes: number; chunkPatches: number; decoder?: DecoderCostModel },
): CostEstimate {
  const decoder = options.decoder ?? decoderCostModel(config);
  const v = config.vision;
  const t = config.text;
  const f32 = 4;
  // Vision: all pixel values of the largest visual are held; one chunk (whole frame pairs, ≤ chunkPatches patches)
  // runs at a time: attention scores per head within each frame pair, MLP and residual activations.
  const patchIn = v.inChannels * v.temporalPatchSize * v.patchSize * v.patchSize;
  const mlp = v.embedDim * v.mlpRatio;
  let visionBytes = 0;
  let visionFlop = 0;
  let visualTokens = 0;
  for (const grid of input.grids) {
    const [gt, gh, gw] = grid;
    const perStep = gh * gw;
    const steps = Math.min(gt, Math.max(1, Math.floor(options.chunkPatches / perStep)));
    const chunk = steps * perStep;
    const activations = chunk * (6 * v.embedDim + 2 * mlp) * f32 + steps * v.numHeads * perStep * perStep * f32;
    visionBytes = Math.max(visionBytes, gt * perStep * patchIn * f32 + activations);
    visionFlop += visionFlops(config, grid);
    visualTokens += (gt * perStep) / v.spatialMergeSize ** 2;
  }
  const S = input.promptTokens;
  const total = S + input.maxNewTokens;
  const deepstack = ((config as unknown as { vision: { deepstackVisualIndexes?: number[] } }).vision.deepstackVisualIndexes?.length ?? 0) + 1;
  const embeddingsBytes = visualTokens * t.hiddenSize * f32 * deepstack;
  // The state the engine allocates for S + maxNewTokens positions (generate.ts createState), by the same rule.
  const state = stateBytesByKind(decoder.state, total);
  const chunk = Math.min(S, PREFILL_CHUNK);
  // One layer runs at a time: the largest mixer scratch of a chunk (attention scores over the prompt, or a linear
  // layer's intermediates), plus the MLP's and residual activations.
  let mixerFloats = 0;
  for (const { mixer: m } of decoder.layers) mixerFloats = Math.max(mixerFloats, m.kind === "attention" ? m.numHeads * S : m.scratchFloatsPerToken);
  const decoderBytes = state.total + chunk * mixerFloats * f32 + chunk * (3 * t.intermediateSize + 4 * t.hiddenSize) * f32 + S * t.hiddenSize * f32 + t.vocabSize * f32;
  const memoryBytes = options.weightsBytes + embeddingsBytes + Math.max(visionBytes, decoderBytes);

  const r = options.rates;
  const prefillFlop = prefillFlops(config, S, decoder);
  const decodeBytes = input.maxNewTokens * decodeBytesPerToken(config, options.dtype, S + input.maxNewTokens / 2, decoder);
  const vision = visionFlop / (r.visionGflops * 1e9);
  const prefill = prefillFlop / (r.prefillGflops * 1e9);
  const decode = decodeBytes / (r.decodeGBps * 1e9);
  return {
    dtype: options.dtype,
    memoryBytes,
    memory: { weightsBytes: options.weightsBytes, visionBytes, decoderBytes, embeddingsBytes, state },
    seconds: { vision, prefill, decode, firstToken: vision + prefill, total: vision + prefill + decode },
    work: { visionGflop: visionFlop / 1e9, prefillGflop: prefillFlop / 1e9, decodeGB: decodeBytes / 1e9 },
    rates: r,
  };
}

/** Memory this process may still use: the system's available memory, within a cgroup limit when there is one. */
export function availableMemoryBytes(): number {
  let available = os.freemem();
  const constrained = (process as unknown as { constrainedMemory?: () => number | undefined }).constrainedMemory?.();
  if (constrained && constrained > 0 && constrained < 2 ** 60) available = Math.min(available, Math.max(0, constrained - process.memoryUsage().rss));
  return available;
}
