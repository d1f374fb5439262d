/**
 * A plan's cost on this machine (bench/estimate.ts), with what it means for the user: a warning when the request
 * will take minutes, the setting that brings it under a target (--max-frames / --fps, --max-pixels,
 * --max-new-tokens), and whether its memory fits what is available (and which flag lowers it when not).
 */
import { decoderCostModel, type CostFamily } from "../bench/cost.js";
import { availableMemoryBytes, estimateCost, loadRates, weightBytes, type CostEstimate } from "../bench/estimate.js";
import type { Qwen2VLConfig } from "../families/qwen2-vl/config.js";
import type { WeightPrecision } from "../onnx/layers.js";
import type { RequestPlan, RequestPreparer } from "./preparer.js";

/**
 * Requests whose first token is estimated later than this (seconds: vision + prefill, what the media settings
 * change) are warned about; the total with every new token is reported as an upper bound beside it.
 */
export const SLOW_REQUEST_SECONDS = 60;

/** Vision chunk size of the engine (engine/model.ts DEFAULT_VISION_CHUNK_PATCHES; not imported: it pulls onnxruntime in). */
const CHUNK_PATCHES = 1024;

export interface PlanCost {
  estimate: CostEstimate;
  /** Estimated seconds to the first token > targetSeconds. */
  slow: boolean;
  targetSeconds: number;
  /** One line: "estimated 4 min 10 s on this machine (…)" when slow. */
  warning?: string;
  /** The setting that brings the estimate under the target, e.g. "--max-frames 16 (≈ 52 s)". */
  suggestion?: string;
  availableMemoryBytes: number;
  memoryFits: boolean;
  /** When memory does not fit: what to lower. */
  memoryAdvice?: string;
}

export function formatSeconds(s: number): string {
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

export function formatBytes(b: number): string {
  return b >= 2 ** 30 ? `${(b / 2 ** 30).toFixed(2)} GiB` : `${(b / 2 ** 20).toFixed(1)} MiB`;
}

const plural = (n: number, word: string) => `${n} ${word} layer${n === 1 ? "" : "s"}`;

/**
 * The decoder's part of the memory estimate in words: "KV cache with attention 12.8 MiB" when every layer keeps a KV
 * cache; with recurrent (linear-attention) layers the state split by kind, e.g. "the decoder 7.9 MiB (decoder state
 * 2.5 MiB: KV 1.2 MiB for 1 attention layer + 1.2 MiB recurrent for 3 linear layers, constant in length; the rest
 * one prefill chunk's activations)".
 */
export function decoderMemoryText(e: CostEstimate): string {
  const s = e.memory.state;
  if (s.recurrentLayers === 0) return `KV cache with attention ${formatBytes(e.memory.decoderBytes)}`;
  const parts = [...(s.kvLayers > 0 ? [`KV ${formatBytes(s.kv)} for ${plural(s.kvLayers, "attention")}`] : []), `${formatBytes(s.recurrent)} recurrent for ${plural(s.recurrentLayers, "linear")}, constant in length`];
  return `the decoder ${formatBytes(e.memory.decoderBytes)} (decoder state ${formatBytes(s.total)}: ${parts.join(" + ")}; the rest one prefill chunk's activations)`;
}

const weightCache = new WeakMap<object, Map<string, number>>();

function weightsOf(preparer: RequestPreparer, dtype: WeightPrecision): number {
  let byDtype = weightCache.get(preparer);
  if (!byDtype) weightCache.set(preparer, (byDtype = new Map()));
  let bytes = byDtype.get(dtype);
  if (bytes === undefined) {
    const tied = (preparer.checkpoint.config as { tie_word_embeddings?: unknown }).tie_word_embeddings === true;
    bytes = weightBytes(preparer.checkpoint.tensors, dtype, tied);
    byDtype.set(dtype, bytes);
  }
  return bytes;
}

export function planCost(
  preparer: RequestPreparer,
  plan: Pick<RequestPlan, "visuals" | "inputIds" | "maxNewTokens">,
  options: {
    dtype?: WeightPrecision;
    cacheRoot?: string;
    targetSeconds?: number;
    /** Memory available (default: the system's, availableMemoryBytes). */
    availableBytes?: number;
    /** The weights are loaded already (a server): the available memory is compared with the rest of the estimate. */
    weightsLoaded?: boolean;
  } = {},
): PlanCost {
  const dtype = options.dtype ?? "fp32";
  const target = options.targetSeconds ?? SLOW_REQUEST_SECONDS;
  const config = preparer.config as unknown as Qwen2VLConfig;
  const rates = loadRates(dtype, options.cacheRoot);
  const weightsBytes = weightsOf(preparer, dtype);
  // The decoder by layer (the family's decoderState and, where it has one, decoderCost): attention vs linear layers.
  const decoder = decoderCostModel(config, preparer.family as CostFamily<Qwen2VLConfig>);
  const estimateFor = (grids: [number, number, number][], promptTokens: number, maxNewTokens: number) =>
    estimateCost(config, { grids, promptTokens, maxNewTokens }, { dtype, rates, weightsBytes, chunkPatches: CHUNK_PATCHES, decoder });
  const grids = plan.visuals.map((v) => v.grid);
  const S = plan.inputIds.length;
  const estimate = estimateFor(grids, S, plan.maxNewTokens);
  const slow = estimate.seconds.firstToken > target;
  const available = options.availableBytes ?? availableMemoryBytes();
  const needed = (e: CostEstimate) => e.memoryBytes - (options.weightsLoaded ? e.memory.weightsBytes : 0);
  const memoryFits = needed(estimate) <= available;
  const merge = config.vision.spatialMergeSize;
  const tokensOf = (g: [number, number, number]) => (g[0] * g[1] * g[2]) / (merge * merge);

  // The cheaper setting: fewer frames for the videos that can be re-sampled (the same cap for all of them), at their
  // planned size or at a smaller one.
  const frameCapFor = (fitsEstimate: (e: CostEstimate) => boolean, maxPixels?: number): { maxFrames: number; estimate: CostEstimate; fps?: number } | undefined => {
    const regrid = preparer.processor.gridWithMaxFrames?.bind(preparer.processor);
    const videos = plan.visuals.map((v, i) => ({ v, i })).filter(({ v }) => v.kind === "video" && v.resample);
    if (!regrid || videos.length === 0) return undefined;
    const at = (maxFrames: number) => {
      const g = grids.slice();
      let prompt = S;
      for (const { v, i } of videos) {
        const ng = regrid(v, maxFrames, maxPixels);
        if (!ng) return undefined;
        prompt += tokensOf(ng) - tokensOf(v.grid);
        g[i] = ng;
      }
      return estimateFor(g, prompt, plan.maxNewTokens);
    };
    const ok = (maxFrames: number) => {
      const e = at(maxFrames);
      return e !== undefined && fitsEstimate(e);
    };
    const current = Math.max(...videos.map(({ v }) => v.frameIndices?.length ?? 2));
    if (current <= 2 || !ok(2)) return undefined;
    let lo = 2;
    let hi = maxPixels === undefined ? current - 2 : current;
    while (lo < hi) {
      const mid = Math.floor((lo + hi + 2) / 4) * 2;
      if (ok(mid)) lo = mid;
      else hi = mid - 2;
    }
    const first = videos[0].v;
    const fps = first.sampleFps && first.frameIndices ? (first.sampleFps * lo) / first.frameIndices.length : undefined;
    return { maxFrames: lo, estimate: at(lo)!, fps };
  };
  /** Frames alone, else with a quarter, a sixteenth, … of the pixels per frame (down to the family's minimum). */
  const cheaper = (fitsEstimate: (e: CostEstimate) => boolean): string | undefined => {
    const byFrames = frameCapFor(fitsEstimate);
    if (byFrames) return `--max-frames ${byFrames.maxFrames}${byFrames.fps ? ` (or --fps ${+byFrames.fps.toPrecision(2)})` : ""}`;
    const videos = plan.visuals.filter((v) => v.kind === "video" && v.resample);
    if (videos.length === 0) return undefined;
    const pixels = Math.max(...videos.map((v) => v.size[0] * v.size[1]));
    for (let p = Math.floor(pixels / 4); p >= 784; p = Math.floor(p / 4)) {
      const found = frameCapFor(fitsEstimate, p);
      if (found) return `--max-pixels ${p} --max-frames ${found.maxFrames}`;
    }
    return undefined;
  };

  let suggestion: string | undefined;
  if (slow) {
    suggestion = cheaper((e) => e.seconds.firstToken <= target);
    if (suggestion) suggestion += ` (first token in ≤ ${formatSeconds(target)})`;
  }
  const warning = slow
    ? `the first token is estimated after ${formatSeconds(estimate.seconds.firstToken)} on this machine (vision ${formatSeconds(estimate.seconds.vision)}, prefill ${formatSeconds(estimate.seconds.prefill)}; then up to ${plan.maxNewTokens} new tokens in ${formatSeconds(estimate.seconds.decode)}; ${rates.source === "measured" ? "rates measured by videolm bench" : "built-in default rates: run videolm bench to measure this machine"})`
    : undefined;

  let memoryAdvice: string | undefined;
  if (!memoryFits) {
    const lower = cheaper((e) => needed(e) <= available) ?? "--max-pixels / --max-frames";
    memoryAdvice = `needs about ${formatBytes(needed(estimate))} (${options.weightsLoaded ? "beyond the loaded weights" : `weights ${formatBytes(estimate.memory.weightsBytes)} at ${dtype}`}) but ${formatBytes(available)} is available: lower it with ${lower}${dtype === "fp32" || dtype === "fp16" ? ", or use --dtype int4" : ""}`;
  }
  return { estimate, slow, targetSeconds: target, ...(warning ? { warning } : {}), ...(suggestion ? { suggestion } : {}), availableMemoryBytes: available, memoryFits, ...(memoryAdvice ? { memoryAdvice } : {}) };
}

/** The estimate as JSON fields (inspect --json, the server's plan): seconds and bytes, rates and their source. */
export function costJson(cost: PlanCost) {
  const e = cost.estimate;
  const round = (x: number) => Math.round(x * 100) / 100;
  return {
    dtype: e.dtype,
    seconds: { vision: round(e.seconds.vision), prefill: round(e.seconds.prefill), first_token: round(e.seconds.firstToken), decode: round(e.seconds.decode), total: round(e.seconds.total) },
    memory_bytes: Math.round(e.memoryBytes),
    memory: {
      weights_bytes: Math.round(e.memory.weightsBytes),
      vision_bytes: Math.round(e.memory.visionBytes),
      decoder_bytes: Math.round(e.memory.decoderBytes),
      embeddings_bytes: Math.round(e.memory.embeddingsBytes),
      // Part of decoder_bytes: the decoder state for the whole context, KV (attention layers, per position) and
      // recurrent (linear-attention layers, constant in length).
      decoder_state: {
        kv_bytes: Math.round(e.memory.state.kv),
        recurrent_bytes: Math.round(e.memory.state.recurrent),
        attention_layers: e.memory.state.kvLayers,
        linear_layers: e.memory.state.recurrentLayers,
      },
    },
    available_memory_bytes: Math.round(cost.availableMemoryBytes),
    memory_fits: cost.memoryFits,
    rates: {
      source: e.rates.source,
      vision_gflops: round(e.rates.visionGflops),
      prefill_gflops: round(e.rates.prefillGflops),
      decode_gbps: round(e.rates.decodeGBps),
      ...(e.rates.measuredAt ? { measured_at: e.rates.measuredAt } : {}),
    },
    slow: cost.slow,
    ...(cost.warning ? { warning: cost.warning } : {}),
    ...(cost.suggestion ? { suggestion: cost.suggestion } : {}),
    ...(cost.memoryAdvice ? { memory_advice: cost.memoryAdvice } : {}),
  };
}
