/**
 * What a model family provides to the engine. A family is a folder under src/families/ plus one registry
 * entry; variants (Qwen2.5-VL, Qwen3-VL) are written as differences from their parent.
 */
import type { Layers } from "../onnx/layers.js";
import type { WeightMap } from "../checkpoint/weight-map.js";
import type { ContentPart, MediaOptions, PreparedVisual, VisualPlan } from "../engine/request.js";
import type { TextTokenizer } from "../text/tokenizer.js";
import type { ProgressCallback } from "../util/progress.js";
import type { VisionBatch, VisionOutput } from "../engine/sessions.js";
import type { PositionRule } from "../engine/visual-selection.js";
import type { LayerStateSpec } from "../engine/decoder-state.js";
import type { DecoderLayerCost } from "../bench/cost.js";
import type { EventPromptBuilder } from "./event-prompts.js";

/** Request preparation for a family: media → patches, prompt text → ids and rotary positions. */
export interface FamilyProcessor {
  /**
   * Plans an image/video part from headers alone (probe, sampling plan, resized size, grid, tokens), decoding no
   * pixels; null for parts that are not visual. `prepareVisual` realises the same plan.
   */
  planVisual(part: ContentPart, defaults: MediaOptions, signal?: AbortSignal): Promise<VisualPlan | null>;
  /** Loads, samples and patches an image/video part; null for parts that are not visual. */
  prepareVisual(part: ContentPart, defaults: MediaOptions, signal?: AbortSignal, onProgress?: ProgressCallback): Promise<PreparedVisual | null>;
  /**
   * The grid a planned video would get with at most `maxFrames` frames (and `maxPixels` pixels per frame), without
   * I/O; undefined when it cannot say.
   */
  gridWithMaxFrames?(plan: VisualPlan, maxFrames: number, maxPixels?: number): [number, number, number] | undefined;
  /**
   * Tokenizes the rendered prompt, expands placeholders, computes the 3-D position ids: from the visuals' grids (and
   * timestamps), so a plan gives the same ids as the prepared request.
   */
  buildPrompt(promptText: string, tokenizer: TextTokenizer, visuals: readonly VisualPlan[]): { inputIds: number[]; positionIds: Int32Array; ropeDelta: number };
  /**
   * The batch split into exact sub-batches of whole temporal steps with at most `maxPatches` patches each, so long
   * videos encode in bounded memory and report progress. Families without it are encoded in one call.
   */
  visionChunks?(batch: VisionBatch, maxPatches: number): VisionBatch[];
  /**
   * Checkpoints whose chat template takes each message's content as one string (templates derived from a
   * conversation.py, e.g. original-format InternVL): the message's parts as that string, each image / video as the
   * placeholder the processor expands. Absent: the template gets the parts as a list (Hugging Face templates).
   */
  contentAsText?(parts: readonly ContentPart[]): string;
  /**
   * Families whose visual token count the vision encoder decides (InternVL-Flash's resolution router): from every
   * visual's encoder output, in request order, the rows each visual contributes and which of its planned placeholder
   * rows stay. The prompt was planned with every row (an upper bound that fits the context); the engine removes the
   * dropped placeholders and renumbers positions by `rule` (engine/visual-selection.ts). Absent: every planned row is
   * kept as encoded. The engine cannot overlap such a family's vision pass with prefill (the decision needs all tiles).
   */
  selectVisualRows?(outputs: readonly VisionOutput[], visuals: readonly VisualPlan[], media: MediaOptions): VisualSelection;
  /**
   * Whether `selectVisualRows` decides anything for these visuals (a request's, or a plan's): families that select
   * only on request (EVS pruning, `VisualPlan.prune`) say no for the others, which then keep every row as encoded and
   * can be pipelined. Absent: true whenever `selectVisualRows` exists (InternVL-Flash, VideoLLaMA3's DiffFP).
   */
  selectsVisualRows?(visuals: readonly VisualPlan[]): boolean;
  /**
   * The family prunes videos that ask for it (`MediaOptions.prune` → `VisualPlan.prune`) by EVS (engine/evs.ts) in
   * its selectVisualRows; requests that ask others to prune are refused.
   */
  readonly evsPruning?: boolean;
  /** Named sampling policies (`MediaOptions.policy`, sampling/policy.ts) its videos can be planned by; others are refused. */
  readonly samplingPolicies?: readonly string[];
}

/** Whether the family's `selectVisualRows` runs for these visuals (see FamilyProcessor.selectsVisualRows). */
export function selectsVisualRows(processor: FamilyProcessor, visuals: readonly VisualPlan[]): boolean {
  if (!processor.selectVisualRows) return false;
  return processor.selectsVisualRows ? processor.selectsVisualRows(visuals) : true;
}

/** What `selectVisualRows` decided. */
export interface VisualSelection {
  /** Per visual, request order: the kept rows [kept, hidden], in placeholder order. */
  rows: Float32Array[];
  /** Qwen3-VL: per visual, the DeepStack features of the kept rows [levels, kept, hidden] (absent: none). */
  deepstack?: { data: Float32Array; levels: number }[];
  /** Per visual: 1 for each planned placeholder row that stays, 0 for one that is removed from the prompt. */
  keep: Uint8Array[];
  rule: PositionRule;
  /** For people (inspect, `run --json`, the server's usage): what was decided and what it saved. */
  report: VisualSelectionReport;
}

export interface VisualSelectionReport {
  /** e.g. "InternVL-Flash resolution router". */
  method: string;
  plannedTokens: number;
  keptTokens: number;
  /** Per tile / frame, request order: which visual it belongs to, its index there, the score and what was decided. */
  units: { visual: number; index: number; score: number; reduced: boolean; tokens: number }[];
  /** The rule's parameters as used, e.g. {relative: 0.5, absolute: 0.3, quantile: 0.4585}. */
  parameters: Record<string, number>;
  /** What a unit's `score` is, for people (e.g. "kept fraction"); absent: the Flash gate's "p0". */
  scoreName?: string;
}

/** The parts of a family's config the generic engine needs. */
export interface FamilyConfig {
  modelType: string;
  text: {
    hiddenSize: number;
    numLayers: number;
    numKvHeads: number;
    headDim: number;
    vocabSize: number;
    maxPositionEmbeddings: number;
  };
  vision: { numHeads: number };
  imageTokenId: number;
  videoTokenId: number;
  visionStartTokenId: number;
  eosTokenIds: number[];
  /**
   * The placeholder and marker tokens the prompt relies on, each with the config.json key that sets its id: the
   * tokenizer must map each string to exactly that id (checked on load). Absent: Qwen-VL's `<|image_pad|>`,
   * `<|video_pad|>`, `<|vision_start|>` from imageTokenId / videoTokenId / visionStartTokenId.
   */
  visionTokens?: { key: string; token: string; id: number }[];
}

/**
 * A decoder stage: layers [from, to) of the decoder (global layer indices, as in the state names). The first stage
 * embeds input_ids and places the visual rows, later ones take `hidden_states_in`; the last stage applies the final
 * norm and the head (logits), earlier ones return `hidden_states_out` (graph-io.ts). Every stage computes its own
 * rotary tables from position_ids and declares the state inputs/outputs of its own layers only.
 */
export interface DecoderStage {
  from: number;
  to: number;
  first: boolean;
  last: boolean;
}

export interface ModelFamily<C extends FamilyConfig = FamilyConfig> {
  /** Human name, e.g. "Qwen2-VL". */
  name: string;
  /** config.json `model_type` values this family reads. */
  modelTypes: string[];
  parseConfig(raw: Record<string, unknown>): C;
  /**
   * Maps a checkpoint tensor name to the canonical (hub) name the graph builders claim, or null for a tensor
   * that carries nothing the model uses (said why in the family). The single place layouts are adapted.
   */
  sanitizeTensorName(name: string): string | null;
  buildVision(layers: Layers, weights: WeightMap, config: C): void;
  /**
   * The decoder graph: all layers (no `stage`: one graph, the model's decoder.onnx), or the stage of consecutive
   * layers `stage` describes when the converter splits the decoder (src/engine/decoder-stages.ts).
   */
  buildDecoder(layers: Layers, weights: WeightMap, config: C, stage?: DecoderStage): void;
  /**
   * Per decoder layer, in layer order, the conditional subgraphs (If / Loop nodes) its graph holds: a sparse MoE layer
   * has one per expert (src/onnx/moe.ts). onnxruntime's session creation is quadratic in their number within one graph,
   * so the converter splits decoders with many into stages (src/engine/decoder-stages.ts). Families without it (dense
   * decoders, a handful of Ifs) get one decoder graph.
   */
  decoderLayerSubgraphs?(config: C): number[];
  /**
   * The state each decoder layer keeps per sequence, in layer order: `{kind: "kv"}` for attention layers (fed as
   * past_key_values.i.key/value, new.i.key/value appended), `{kind: "recurrent", shapes}` for linear-attention layers
   * (past_state.i.<name> in, present_state.i.<name> replacing it); the decoder graph's state inputs and outputs must
   * match (graph-io.ts). `allKvLayers(config.text)` for decoders of attention layers only.
   */
  decoderState(config: C): LayerStateSpec[];
  /**
   * Per decoder layer, in layer order (as many as `decoderState`), what the cost estimate counts (bench/cost.ts): the
   * weights of its matrix products (`params`; `activeParams` when a token uses fewer, as in MoE layers: prefill FLOPs
   * and decode bytes count those) and its mixer (softmax attention with its heads, or a linear mixer's FLOPs and
   * scratch per token). Families without it are counted as Qwen2-VL decoders (q, k, v, o, gate/up/down; attention).
   */
  decoderCost?(config: C): DecoderLayerCost[];
  /**
   * The chat template the family's own code builds prompts with, for checkpoints that ship none (original-format
   * InternVL: the conversation.py template its config.json names). Undefined: such a checkpoint is refused.
   */
  defaultChatTemplate?(config: C): { template: string; source: string } | undefined;
  /**
   * The temporal-grounding / dense-captioning prompt the family was trained or documented with, the output format to
   * hold decoding to, and where its times count from (src/families/event-prompts.ts). Absent: the generic prompt
   * with the frames' times as text.
   */
  eventPrompt?: EventPromptBuilder;
  /** The request processor, configured from the checkpoint's preprocessor_config.json. */
  createProcessor(checkpointDir: string, config: C): FamilyProcessor;
}
