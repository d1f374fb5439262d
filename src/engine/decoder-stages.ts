/**
 * Decoder stages: a decoder split into several onnxruntime sessions of consecutive layers (docs/architecture.md).
 *
 *   stage 0: input_ids (+ visual rows) ─ layers [0, a) ──▶ hidden_states_out ─┐
 *   stage 1: hidden_states_in ─ layers [a, b) ──▶ hidden_states_out ──────────┘─▶ …
 *   stage n−1: hidden_states_in ─ layers [·, L) ─ norm ─ lm_head ──▶ logits
 *
 * Why: onnxruntime 1.30's session creation is quadratic in the number of If nodes at one graph level (a graph of
 * trivial Ifs, .notes/ifs.mts: 1,280 → 0.9 s, 2,560 → 2.7–8.7 s, 5,120 → 9–35 s), and a sparse MoE layer is one If
 * per expert (src/onnx/moe.ts), so Qwen3.5-35B-A3B's 40 × 256 experts in one graph would take ~400 s to create.
 * Stages of at most MAX_SUBGRAPHS_PER_STAGE Ifs each keep every session's creation short (and they are created in
 * parallel). Dense decoders stay one graph (decoder.onnx, unchanged).
 *
 * Measured (bench/decoder-stages.ts: 40 layers × 256 experts at tiny widths, int4, 1 thread, the 2-core shared
 * machine): one session 538 s to create, decode step 208 ms; stages of 2 layers (512 Ifs) 72 s one after another
 * (2.2–9 s each; 53 s all at once), 118 ms; stages of 1 layer (256 Ifs) 32 s (0.6–1.1 s each; 26 s at once), 94 ms.
 * Creation is still quadratic at 512, hence the budget of 256.
 */
import { VideolmError } from "../errors.js";
import type { DecoderStage, FamilyConfig, ModelFamily } from "../families/family.js";

/**
 * Conditional subgraphs (If nodes) a stage holds at most, by the families' `decoderLayerSubgraphs`: one layer of 256
 * experts (Qwen3.5-35B-A3B: 40 stages), two of 128 (Qwen3-VL-30B-A3B: 24 stages).
 */
export const MAX_SUBGRAPHS_PER_STAGE = 256;

/** Environment override of the stage size (layers per stage), for tests and benchmarks: LoadOptions.decoderLayersPerStage. */
export const LAYERS_PER_STAGE_ENV = "VIDEOLM_DECODER_LAYERS_PER_STAGE";

/** Splits layers 0 … numLayers−1 into contiguous stages of `layersPerStage` layers (the last may be shorter). */
export function stagesOfSize(numLayers: number, layersPerStage: number): DecoderStage[] {
  if (!Number.isInteger(layersPerStage) || layersPerStage < 1) throw new VideolmError(`decoder layers per stage must be a positive integer, got ${layersPerStage}`);
  const stages: DecoderStage[] = [];
  for (let from = 0; from < numLayers; from += layersPerStage) stages.push({ from, to: Math.min(numLayers, from + layersPerStage), first: from === 0, last: from + layersPerStage >= numLayers });
  return stages;
}

/**
 * Splits layers by cost: consecutive layers join a stage while its total stays within `budget` (a layer costing more
 * than the budget gets a stage of its own). All within budget: one stage.
 */
export function stagesByCost(costs: readonly number[], budget = MAX_SUBGRAPHS_PER_STAGE): DecoderStage[] {
  const bounds: number[] = [0];
  let sum = 0;
  costs.forEach((c, i) => {
    if (i > bounds[bounds.length - 1] && sum + c > budget) {
      bounds.push(i);
      sum = 0;
    }
    sum += c;
  });
  bounds.push(costs.length);
  return bounds.slice(0, -1).map((from, k) => ({ from, to: bounds[k + 1], first: k === 0, last: k === bounds.length - 2 }));
}

/** The layers-per-stage override: the option when given, else $VIDEOLM_DECODER_LAYERS_PER_STAGE, else none. */
export function layersPerStageOverride(option?: number): number | undefined {
  if (option !== undefined) return option;
  const env = process.env[LAYERS_PER_STAGE_ENV];
  if (env === undefined || env === "") return undefined;
  const n = Number(env);
  if (!Number.isInteger(n) || n < 1) throw new VideolmError(`${LAYERS_PER_STAGE_ENV} must be a positive integer, got "${env}"`);
  return n;
}

/** The decoder's stages for this family and config: the override's size when given, else by the family's subgraph counts. */
export function planDecoderStages<C extends FamilyConfig>(family: ModelFamily<C>, config: C, layersPerStage?: number): DecoderStage[] {
  const L = config.text.numLayers;
  if (layersPerStage !== undefined) return stagesOfSize(L, layersPerStage);
  const costs = family.decoderLayerSubgraphs?.(config);
  if (!costs) return [{ from: 0, to: L, first: true, last: true }];
  if (costs.length !== L) throw new Error(`${family.name}: decoderLayerSubgraphs gives ${costs.length} layers, the config has ${L}`);
  return stagesByCost(costs);
}

/** A short description of a plan for cache keys and messages: "0-2,2-4". */
export function describeStages(stages: readonly DecoderStage[]): string {
  return stages.map((s) => `${s.from}-${s.to}`).join(",");
}
