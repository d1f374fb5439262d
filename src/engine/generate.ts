/**
 * The generation loop: chunked prefill of the prompt (with visual embeddings merged in), then one decoder call per
 * token with the decoder state (KV cache and/or recurrent state), sampling in JavaScript (the only per-token JS
 * work), streaming text.
 */
import type { VisualSelectionReport } from "../families/family.js";
import type { GenerationOptions } from "../generation/options.js";
import { Sampler } from "../generation/sampler.js";
import { StopStringMatcher } from "../generation/stop.js";
import type { TokenConstraint } from "../generation/constrained/token-mask.js";
import { VideolmError } from "../errors.js";
import type { DecoderState } from "./decoder-state.js";
import type { Decoder } from "./sessions.js";

/** A prompt ready for the decoder. */
export interface PreparedPrompt {
  inputIds: number[];
  /**
   * Absolute rotary positions of the prompt, [axes][S]: 3 axes (T, H, W) for M-RoPE families, 1 for plain 1-D RoPE
   * (InternVL); the family decides, the decoder graph's position_ids input says how many it takes.
   */
  positionIds: Int32Array;
  /** Generated token i (0-based) gets position S + i + ropeDelta on every axis. */
  ropeDelta: number;
  /** Rows of visual embeddings in prompt order and the prompt index each one replaces. */
  visualEmbeds: Float32Array;
  visualPositions: Int32Array;
  /** DeepStack decoders (Qwen3-VL): [levels, M, hidden] rows in the same order as `visualEmbeds`. */
  deepstackEmbeds?: Float32Array;
  deepstackLevels?: number;
  /**
   * Families that select visual rows after the vision pass (FamilyProcessor.selectVisualRows, e.g. InternVL-Flash's
   * router): what was decided; the ids and positions above are already the compacted prompt's.
   */
  selection?: VisualSelectionReport;
}

/**
 * Thinking-budget control (Qwen3 Thinking checkpoints): after `budget` tokens inside a `<think>` block the engine
 * closes it by forcing `forcedTokens` (the ids of "\n</think>\n\n") and goes on with the answer — the approach
 * documented for Qwen3 (QwenLM/Qwen3 README, "thinking budget").
 */
export interface ThinkingBudget {
  budget: number;
  startTokenId: number;
  endTokenId: number;
  forcedTokens: number[];
  /** The prompt already opened the block (the Thinking chat template ends with `<think>\n`). */
  insideAtStart: boolean;
}

export interface TokenEvent {
  token: number;
  /** Newly completed text (may be empty while a multi-byte character or a possible stop string is pending). */
  text: string;
  logprob: number;
  top?: { token: number; logprob: number }[];
  /** `text` split into thinking and answer (VideoModel.generate fills these; see src/text/thinking.ts). */
  reasoning?: string;
  answer?: string;
}

export interface GenerationResult {
  tokens: number[];
  logprobs: { token: number; logprob: number; top?: { token: number; logprob: number }[] }[];
  finishReason: "stop" | "length" | "aborted";
  prefillMs: number;
  /** Time from the start of prefill to the first sampled token. */
  firstTokenMs: number;
  decodeMs: number;
}

export interface TextStreamer {
  /** Feeds one token; returns the newly completed text. */
  push(token: number): string;
  /** Text still held back at the end. */
  flush(): string;
}

export interface GenerateArgs {
  decoder: Decoder;
  prompt: PreparedPrompt;
  options: GenerationOptions;
  eosTokenIds: number[];
  vocabSize: number;
  streamer: TextStreamer;
  onToken?: (event: TokenEvent) => void;
  signal?: AbortSignal;
  /** Prefill chunk length in tokens (bounds attention memory on long prompts). */
  prefillChunk?: number;
  thinking?: ThinkingBudget;
  /** Pipelined vision (pipeline.ts): see PrefillHooks. */
  prefillHooks?: PrefillHooks;
  /**
   * Constrained output (response_format, src/generation/constrained): each sampled token must keep the text valid.
   * The end-of-sequence tokens are allowed only once the text is complete, and generation stops by itself
   * (finishReason "stop", no end-of-sequence token appended) when the text is complete and nothing but the end may
   * follow. Running out of maxNewTokens first leaves incomplete text: finishReason "length". Not applied inside a
   * thinking block (the constraint starts with the answer).
   */
  constraint?: TokenConstraint;
}

/**
 * A prefill that runs while the prompt's visual rows are still being encoded (pipeline.ts): before each chunk it waits
 * until the rows of every placeholder in that chunk are in place. The chunk boundaries are the sequential path's, so
 * the decoder sees exactly the same inputs and the logits are bit-identical.
 */
export interface PrefillHooks {
  /** Resolves once the first `rows` rows of `visualEmbeds` (and of each DeepStack level) are filled. */
  visualsReady?: (rows: number) => Promise<void>;
  /** Called after each chunk with its start and end (performance.now()), for the overlap measurement. */
  onChunk?: (startedAt: number, endedAt: number) => void;
}

const DEFAULT_PREFILL_CHUNK = 512;

/**
 * Prefills `prompt` in chunks into `state` (empty); returns the logits of the last prompt position. The state's
 * next position continues the prompt's (S + ropeDelta).
 */
export async function prefill(decoder: Decoder, prompt: PreparedPrompt, state: DecoderState, chunkLen = DEFAULT_PREFILL_CHUNK, hooks: PrefillHooks = {}): Promise<Float32Array> {
  const S = prompt.inputIds.length;
  state.positionDelta = prompt.ropeDelta;
  const D = decoder.config.text.hiddenSize;
  let visualRow = 0;
  let logits: Float32Array = new Float32Array(0);
  for (let start = 0; start < S; start += chunkLen) {
    const end = Math.min(S, start + chunkLen);
    const firstRow = visualRow;
    while (visualRow < prompt.visualPositions.length && prompt.visualPositions[visualRow] < end) visualRow++;
    if (hooks.visualsReady && visualRow > 0) await hooks.visualsReady(visualRow);
    const startedAt = performance.now();
    const axes = decoder.positionAxes;
    const positionIds = new Int32Array(axes * (end - start));
    const levels = prompt.deepstackLevels ?? 0;
    let deepstackEmbeds: Float32Array | undefined;
    if (levels > 0 && prompt.deepstackEmbeds) {
      // [levels, M, D] → the rows of this chunk for every level.
      const M = prompt.visualPositions.length;
      const rows = visualRow - firstRow;
      deepstackEmbeds = new Float32Array(levels * rows * D);
      for (let l = 0; l < levels; l++) deepstackEmbeds.set(prompt.deepstackEmbeds.subarray((l * M + firstRow) * D, (l * M + visualRow) * D), l * rows * D);
    }
    for (let a = 0; a < axes; a++) positionIds.set(prompt.positionIds.subarray(a * S + start, a * S + end), a * (end - start));
    logits = await decoder.forward(
      {
        inputIds: prompt.inputIds.slice(start, end),
        positionIds,
        visualEmbeds: prompt.visualEmbeds.subarray(firstRow * D, visualRow * D),
        visualPositions: Array.from(prompt.visualPositions.subarray(firstRow, visualRow), (p) => p - start),
        deepstackEmbeds,
        logitsIndices: end === S ? [end - start - 1] : [],
      },
      state,
    );
    hooks.onChunk?.(startedAt, performance.now());
  }
  return logits;
}

export async function generate(args: GenerateArgs): Promise<GenerationResult> {
  const { decoder, prompt, options } = args;
  const S = prompt.inputIds.length;
  // The caller has checked the context (RequestPreparer.checkContext); the state holds prompt + new tokens.
  const state = decoder.createState(S + options.maxNewTokens);
  const sampler = new Sampler(options, args.vocabSize);
  const stopper = new StopStringMatcher(options.stop);
  const history = prompt.inputIds.slice();
  const tokens: number[] = [];
  const logprobs: GenerationResult["logprobs"] = [];

  const t0 = performance.now();
  let logits = await prefill(decoder, prompt, state, args.prefillChunk, args.prefillHooks);
  const prefillMs = performance.now() - t0;
  let firstTokenMs = 0;
  let finishReason: GenerationResult["finishReason"] = "length";
  const tDecode = performance.now();
  const think = args.thinking;
  let inside = think?.insideAtStart ?? false;
  let thinkingTokens = 0;
  let forced: number[] = [];
  let completedByConstraint = false;

  while (tokens.length < options.maxNewTokens) {
    if (args.signal?.aborted) {
      finishReason = "aborted";
      break;
    }
    if (think && inside && forced.length === 0 && thinkingTokens >= think.budget) forced = [...think.forcedTokens];
    const isForced = forced.length > 0;
    const constrained = args.constraint && !inside && !isForced ? args.constraint : undefined;
    let allowed: Uint32Array | undefined;
    if (constrained) {
      const mask = constrained.mask();
      if (mask.count === 0) {
        if (!constrained.isComplete()) throw new VideolmError("constrained decoding: no token can continue the output (the response format may be unsatisfiable)");
        finishReason = "stop"; // complete, and only the end may follow
        completedByConstraint = true;
        break;
      }
      allowed = mask.bits;
    }
    const step = isForced ? { token: forced.shift()!, logprob: 0, top: undefined } : sampler.next(logits, history, allowed);
    constrained?.advance(step.token);
    if (think) {
      if (step.token === think.startTokenId) inside = true;
      else if (step.token === think.endTokenId) inside = false;
      else if (inside && !isForced) thinkingTokens++;
    }
    if (tokens.length === 0) firstTokenMs = performance.now() - t0;
    tokens.push(step.token);
    history.push(step.token);
    logprobs.push({ token: step.token, logprob: step.logprob, top: step.top });
    if (args.eosTokenIds.includes(step.token)) {
      args.onToken?.({ ...step, text: finalText(args.streamer, stopper) });
      finishReason = "stop";
      break;
    }
    const { emit, stopped } = stopper.push(args.streamer.push(step.token));
    args.onToken?.({ ...step, text: emit });
    if (stopped) {
      finishReason = "stop";
      break;
    }
    if (tokens.length >= options.maxNewTokens) break;
    const pos = state.nextPosition(); // = S + tokens.length − 1 + ropeDelta
    logits = await decoder.forward({ inputIds: [step.token], positionIds: new Array<number>(decoder.positionAxes).fill(pos), logitsIndices: [0] }, state);
  }
  // The budget ran out exactly when the constrained text became complete with nothing but the end to follow: done.
  const c = args.constraint;
  if (finishReason === "length" && c && !inside && c.isComplete() && c.mask().count === 0) {
    finishReason = "stop";
    completedByConstraint = true;
  }
  if (finishReason !== "stop" || completedByConstraint) {
    const tail = finalText(args.streamer, stopper);
    if (tail) args.onToken?.({ token: -1, text: tail, logprob: 0 });
  }
  return { tokens, logprobs, finishReason, prefillMs, firstTokenMs, decodeMs: performance.now() - tDecode };
}

/** Text still held back by the detokenizer and the stop-string matcher when generation ends. */
function finalText(streamer: TextStreamer, stopper: StopStringMatcher): string {
  const rest = stopper.push(streamer.flush());
  return rest.stopped ? rest.emit : rest.emit + stopper.flush();
}
