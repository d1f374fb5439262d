/**
 * The library's entry point: a loaded model that answers questions about images and videos.
 *
 *   VideoModel.load(dir) ─ open checkpoint, pick the family, convert (cached), create sessions, load tokenizer
 *   model.prepare(messages) ─ media → frames → patches; chat template → ids → placeholders → positions
 *   model.generate(messages) ─ prepare, encode visuals, prefill, decode (streamed)
 */
import { VideolmError } from "../errors.js";
import type { FamilyConfig, VisualSelectionReport } from "../families/family.js";
import type { GenerationOptions } from "../generation/options.js";
import type { WeightPrecision } from "../onnx/layers.js";
import { StreamingDecoder } from "../text/streaming-decoder.js";
import { ThinkingSplitter } from "../text/thinking.js";
import type { TextTokenizer } from "../text/tokenizer.js";
import { delayedProgress, type ProgressCallback } from "../util/progress.js";
import { ensureConverted } from "./convert.js";
import { generate, type GenerationResult, type PrefillHooks, type PreparedPrompt, type ThinkingBudget, type TokenEvent } from "./generate.js";
import { RequestPreparer, type PreparedRequest } from "./preparer.js";
import type { ChatRequestMessage, MediaOptions } from "./request.js";
import { createSession, Decoder, VisionEncoder, type VisionBatch, type VisionOutput } from "./sessions.js";
import { VisionCache } from "./vision-cache.js";
import { applyVisualSelection, placeholderTargets } from "./visual-selection.js";
import { busyMs, canPipeline, encodeInChunks, overlapMs, pipelineByDefault, runVisionStage, VisualStream, WorkerVisionEncoder, type VisionRunner } from "./pipeline.js";
import { DEFAULT_MODEL_DIR, defaultModelAvailable } from "../hub/default-model.js";
import { ConstraintFactory } from "../generation/constrained/factory.js";
import type { ResponseFormat } from "../generation/constrained/response-format.js";
import { TokenTable } from "../generation/constrained/token-table.js";
import { runEvents, type EventsOptions, type EventsResponse, type EventsVideo } from "../events/run.js";

export interface LoadOptions {
  /** Weight precision of the converted graphs. Default fp32. */
  dtype?: WeightPrecision;
  threads?: number;
  /** Root of the conversion cache (default $VIDEOLM_CACHE or ~/.cache/videolm). */
  cacheDir?: string;
  onProgress?: ProgressCallback;
  /**
   * Bytes of vision embeddings kept for reuse: a follow-up question about the same visual with the same sampling
   * plan skips the vision encoder (VisionCache). Default 512 MiB; 0 disables.
   */
  visionCacheBytes?: number;
  /**
   * Videos are encoded in chunks of whole frame pairs with at most this many patches each (default 1024; at least
   * one frame pair per chunk). Besides bounding memory, ~1024-row matrix products run faster than 4096-row ones on
   * the 2-core reference machine (170 vs 121 GFLOP/s for the ViT MLP, docs/performance.md).
   */
  visionChunkPatches?: number;
  /**
   * Splits the decoder into stages of this many layers (one onnxruntime session each) instead of the family's own
   * plan (src/engine/decoder-stages.ts: one graph, or stages of at most 256 MoE experts); default
   * $VIDEOLM_DECODER_LAYERS_PER_STAGE, else the family's plan. For tests and benchmarks; converted separately.
   */
  decoderLayersPerStage?: number;
  /**
   * Pipelines vision encoding with prefill (src/engine/pipeline.ts): the vision encoder runs on a worker thread of
   * its own, and each prefill chunk starts as soon as the rows of its visual placeholders are encoded (outputs
   * bit-identical to the sequential path). Default: on with at least 8 cores (PIPELINE_MIN_CORES), off below — on
   * the 2-core reference machine the two stages only share two cores (docs/performance.md).
   */
  pipeline?: boolean;
  /**
   * Intra-op threads of the vision thread when pipelined (default: `threads`); the decoder keeps `threads`. Without
   * the pipeline both sessions use `threads`.
   */
  visionThreads?: number;
  /**
   * Whether idle onnxruntime threads spin waiting for work (onnxruntime's default) or sleep (SessionOptions.spinning).
   * Default: spin, except the stages of a staged decoder, which never spin. For benchmarks of the pipeline, whose two
   * stages' thread pools share the cores.
   */
  spinning?: boolean;
}


const disposedError = () => new VideolmError("this model was disposed (VideoModel.dispose()); load it again with VideoModel.load()");

/** Default of LoadOptions.visionChunkPatches. */
export const DEFAULT_VISION_CHUNK_PATCHES = 1024;

export interface GenerateRequest extends Partial<GenerationOptions> {
  messages: ChatRequestMessage[];
  /** The result of `prepare(messages, media)` when the caller has it already (skips preparing again). */
  prepared?: PreparedRequest;
  /** Defaults for every image/video part of this request (a part's own options win). */
  media?: MediaOptions;
  onToken?: (event: TokenEvent) => void;
  signal?: AbortSignal;
  /** Thinking checkpoints: at most this many tokens inside `<think>…</think>`, then the block is closed (ThinkingBudget). */
  thinkingBudget?: number;
  /** Progress of encoding visuals that take more than one chunk (long videos). */
  onProgress?: ProgressCallback;
  /** Prefill chunk length in tokens (default 512); for tests that need several chunks on a short prompt. */
  prefillChunk?: number;
  /**
   * Constrained output: the answer must be JSON (json_object), JSON matching a schema (json_schema) or match a regex
   * (src/generation/constrained, docs/constrained-output.md). Checked with validateResponseFormat; {type:"text"} or
   * absent: unconstrained (bit-identical to no constraint). If maxNewTokens runs out first, the text is incomplete and
   * finishReason is "length".
   */
  responseFormat?: ResponseFormat;
}

/** What the pipeline did (GenerateResponse.timings.pipeline): each stage's busy time and how much of it overlapped. */
export interface PipelineTimings {
  /** Time the vision thread spent encoding (the sum of its chunks). */
  visionBusyMs: number;
  /** Time the decoder spent in prefill chunks (not counting waits for rows). */
  prefillBusyMs: number;
  /** Time both ran at once; overlapMs / min(visionBusyMs, prefillBusyMs) is the overlap achieved. */
  overlapMs: number;
  /** Vision chunks encoded (0 when every visual came from the vision cache). */
  visionChunks: number;
}

export interface GenerateResponse {
  /** The answer (without a thinking block). */
  text: string;
  /** Thinking checkpoints: the `<think>…</think>` content, when the prompt or the output opened such a block. */
  reasoning?: string;
  tokens: number[];
  promptTokens: number;
  finishReason: GenerationResult["finishReason"];
  logprobs?: GenerationResult["logprobs"];
  options: GenerationOptions;
  /**
   * Milliseconds (and tokens/s). `preprocessMs`: preparing the request (media decoding, resizing, patching, prompt),
   * also when it was prepared before `generate` (`prepared.timings`); `mediaDecodeMs`: the part of it spent reading
   * and decoding media (≈ 0 when the frames came from the frame cache); `decodeMs`: generating the tokens.
   * Pipelined (LoadOptions.pipeline): `visionMs` runs from the start to the last visual row, `prefillMs` from the
   * start of generation to the end of prefill (the two overlap), `ttftMs` from the start to the first token.
   */
  timings: { visionMs: number; prefillMs: number; ttftMs: number; decodeMs: number; decodeTokensPerSecond: number; preprocessMs: number; mediaDecodeMs?: number };
  /** Pipelined requests: how busy each stage was and how much they overlapped. */
  pipeline?: PipelineTimings;
  /**
   * Families that decide visual tokens after the vision pass (InternVL-Flash's router): per tile/frame what was
   * decided, and the planned vs kept token counts (`promptTokens` is the compacted prompt's).
   */
  visualTokens?: VisualSelectionReport;
}

export class VideoModel {
  /** The precision and cache folder it was loaded with (for cost estimates: bench/estimate.ts). */
  dtype: WeightPrecision = "fp32";
  cacheDir: string | undefined;
  /** Set by dispose(): every later call fails with a clear error. */
  private disposed = false;
  /** Calls that run the sessions now; dispose() waits for them before releasing the sessions. */
  private readonly running = new Set<Promise<unknown>>();
  /** Constrained output: the vocabulary's token table (built on first use) and compiled response formats. */
  private readonly constraints = new ConstraintFactory(
    () => TokenTable.fromTokenizer(this.tokenizer, this.config.text.vocabSize),
    () => this.preparer.eosTokenIds(),
  );

  private constructor(
    readonly preparer: RequestPreparer,
    /** The vision encoder: on the main thread, or on a worker thread of its own when pipelined. */
    readonly vision: VisionRunner,
    readonly decoder: Decoder,
    readonly loadMs: number,
    /** Emptied (replaced by a disabled cache) by dispose(). */
    public visionCache: VisionCache,
    readonly visionChunkPatches: number,
    /** Whether requests with visuals are pipelined (LoadOptions.pipeline). */
    readonly pipelined: boolean,
  ) {}

  /**
   * Opens a checkpoint folder (Hugging Face layout), converting it on first use; without a folder, the built-in demo
   * model (models/videolm-demo, see docs/demo-model.md).
   */
  static load(options?: LoadOptions): Promise<VideoModel>;
  static load(dir: string | undefined, options?: LoadOptions): Promise<VideoModel>;
  static async load(dirOrOptions?: string | LoadOptions, maybeOptions?: LoadOptions): Promise<VideoModel> {
    const t0 = performance.now();
    const [dir, options] = typeof dirOrOptions === "object" && dirOrOptions !== null ? [undefined, dirOrOptions] : [dirOrOptions, maybeOptions ?? {}];
    if (dir !== undefined && typeof dir !== "string") throw new VideolmError(`VideoModel.load: expected a checkpoint folder path, got ${typeof dir}`);
    if (dir === undefined && !defaultModelAvailable()) {
      throw new VideolmError(`VideoModel.load: no checkpoint folder given and the built-in demo model is missing (${DEFAULT_MODEL_DIR}); pass a folder`);
    }
    return VideoModel.fromPreparer(await RequestPreparer.load(dir ?? DEFAULT_MODEL_DIR), options, t0);
  }

  /** Loads the weights for a checkpoint already opened for preparation (e.g. after checking a plan fits). */
  static async fromPreparer(preparer: RequestPreparer, options: LoadOptions = {}, t0 = performance.now()): Promise<VideoModel> {
    const { checkpoint, family, config } = preparer;
    const converted = ensureConverted(checkpoint, family, config, options.dtype ?? "fp32", {
      cacheRoot: options.cacheDir,
      onProgress: options.onProgress,
      layersPerStage: options.decoderLayersPerStage,
    });
    const sessionOptions = { threads: options.threads, ...(options.spinning === false ? { spinning: false } : {}) };
    const pipelined = options.pipeline ?? pipelineByDefault();
    // Pipelined, the vision graph is loaded on its own thread (pipeline.ts), not here.
    const visionThread = pipelined ? WorkerVisionEncoder.start(converted.visionPath, { threads: options.visionThreads ?? options.threads, spinning: options.spinning }) : undefined;
    visionThread?.catch(() => {}); // awaited below, after the decoder's sessions
    // All graphs at once (a decoder split into stages has one per stage; decoder-stages.ts says why); progress for a
    // staged decoder when creating its sessions takes more than a second.
    const files = pipelined ? [...converted.decoderPaths] : [converted.visionPath, ...converted.decoderPaths];
    let created = 0;
    const progress = options.onProgress && converted.decoderPaths.length > 1 ? delayedProgress(options.onProgress) : undefined;
    const report = () => progress?.({ task: "Creating onnxruntime sessions", done: created, total: files.length, unit: "items" });
    report();
    // A staged decoder's sessions do not spin (SessionOptions.spinning: their thread pools would compete).
    const staged = converted.decoderPaths.length > 1;
    const results = await Promise.allSettled(
      files.map(async (f, i) => {
        const s = await createSession(f, { ...sessionOptions, ...(staged && (pipelined || i > 0) ? { spinning: false } : {}) });
        created++;
        report();
        return s;
      }),
    );
    const sessions = results.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    const vision = await Promise.allSettled([visionThread]).then(([r]) => r);
    if (failed || vision.status === "rejected") {
      await Promise.all([...sessions.map((s) => s.release()), ...(vision.status === "fulfilled" && vision.value ? [vision.value.release()] : [])]);
      throw failed ? failed.reason : (vision as PromiseRejectedResult).reason;
    }
    const decoderSessions = pipelined ? sessions : sessions.slice(1);
    const visionRunner: VisionRunner = vision.value ?? new VisionEncoder(sessions[0]);
    const visionCache = new VisionCache(options.visionCacheBytes ?? 512 * 2 ** 20);
    const chunkPatches = options.visionChunkPatches ?? DEFAULT_VISION_CHUNK_PATCHES;
    let decoder: Decoder;
    try {
      decoder = new Decoder(decoderSessions, config, family.decoderState(config));
    } catch (e) {
      await Promise.all([...sessions.map((s) => s.release()), ...(vision.value ? [vision.value.release()] : [])]);
      throw e;
    }
    const model = new VideoModel(preparer, visionRunner, decoder, performance.now() - t0, visionCache, chunkPatches, pipelined);
    model.dtype = options.dtype ?? "fp32";
    model.cacheDir = options.cacheDir;
    return model;
  }

  get config(): FamilyConfig {
    return this.preparer.config;
  }
  get tokenizer(): TextTokenizer {
    return this.preparer.tokenizer;
  }
  get contextLength(): number {
    return this.preparer.contextLength;
  }

  /** Media → patches and prompt → ids and positions, without running the model. */
  prepare(messages: ChatRequestMessage[], media: MediaOptions = {}, signal?: AbortSignal): Promise<PreparedRequest> {
    if (this.disposed) return Promise.reject(disposedError());
    return this.preparer.prepare(messages, media, signal);
  }

  /** Whether dispose() was called. */
  get isDisposed(): boolean {
    return this.disposed;
  }

  /**
   * Frees the model: releases its onnxruntime sessions (the native weights and buffers) and empties the vision cache.
   * Calls already running finish first; any later call fails with a VideolmError. Calling it again does nothing.
   */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.visionCache = new VisionCache(0);
    await Promise.allSettled([...this.running]);
    await Promise.all([this.vision.release(), this.decoder.release()]);
  }

  /** Runs `work` as a call that dispose() waits for (a rejected promise once disposed). */
  private track<T>(work: () => Promise<T>): Promise<T> {
    if (this.disposed) return Promise.reject(disposedError());
    const p = work();
    this.running.add(p);
    const done = () => this.running.delete(p);
    p.then(done, done);
    return p;
  }

  generate(request: GenerateRequest): Promise<GenerateResponse> {
    return this.track(() => this.generateNow(request));
  }

  /**
   * Temporal grounding: the span(s) of `video` where `query` happens, as events in seconds from the start of the clip
   * the model saw (after `start`), with the model's own words in `raw` (src/events/run.ts). The prompt is the
   * checkpoint's or its family's (src/families/event-prompts.ts); `options.constrained` holds the answer to the
   * format the family declares.
   */
  ground(video: EventsVideo, query: string, options?: EventsOptions): Promise<EventsResponse> {
    return runEvents(this, video, "grounding", query, options);
  }

  /** Dense captioning: every event of `video` with its start, end and description (see `ground`). */
  events(video: EventsVideo, options?: EventsOptions): Promise<EventsResponse> {
    return runEvents(this, video, "dense", undefined, options);
  }

  private async generateNow(request: GenerateRequest): Promise<GenerateResponse> {
    const { messages, media, onToken, signal, prepared: given, thinkingBudget, onProgress, prefillChunk, responseFormat, ...explicit } = request;
    const options = this.preparer.resolveOptions(explicit);
    const constraint = responseFormat === undefined ? undefined : this.constraints.create(responseFormat);
    const t0 = performance.now();
    const prepared = given ?? (await this.preparer.prepare(messages, media, signal));
    const preprocessMs = given?.timings?.preprocessMs ?? performance.now() - t0;
    const S = prepared.inputIds.length;
    this.preparer.checkContext(S, options.maxNewTokens);
    const thinking = this.thinkingControl(prepared.inputIds, thinkingBudget);
    const splitter = new ThinkingSplitter({ startsInside: thinking.insideAtStart });
    const run = (prompt: PreparedPrompt, prefillHooks?: PrefillHooks) =>
      generate({
        decoder: this.decoder,
        prompt,
        options,
        eosTokenIds: this.preparer.eosTokenIds(),
        vocabSize: this.config.text.vocabSize,
        streamer: new StreamingDecoder(this.tokenizer, { skipSpecialTokens: true }),
        onToken: (e) => {
          const parts = splitter.push(e.text); // always, even without a listener: the response's text comes from here
          onToken?.({ ...e, ...parts });
        },
        signal,
        thinking: thinking.budget,
        prefillChunk,
        prefillHooks,
        constraint,
      });
    const tv = performance.now();
    let visionMs: number;
    let ttftMs: number;
    let result: GenerationResult;
    let pipeline: PipelineTimings | undefined;
    let selection: PreparedPrompt["selection"];
    let promptTokens = S;
    if (this.pipelined && canPipeline(this.preparer.processor, prepared)) {
      const p = await this.pipelinedRun(prepared, run, onProgress, signal);
      ({ result, pipeline } = p);
      visionMs = p.visionEndedAt - tv;
      ttftMs = p.generationStartedAt - tv + result.firstTokenMs; // firstTokenMs counts from the start of generation
    } else {
      const prompt = await this.encodeVisualsNow(prepared, onProgress, signal);
      selection = prompt.selection;
      promptTokens = prompt.inputIds.length;
      visionMs = performance.now() - tv;
      result = await run(prompt);
      ttftMs = visionMs + result.firstTokenMs;
    }
    const tail = splitter.flush(); // text held back while it could still be a tag or a stripped newline
    if (tail.reasoning || tail.answer) onToken?.({ token: -1, text: "", logprob: 0, ...tail });
    const n = result.tokens.length;
    const firstDecodeStepMs = result.firstTokenMs - result.prefillMs;
    return {
      text: splitter.answer,
      ...(splitter.hasReasoning ? { reasoning: splitter.reasoning } : {}),
      tokens: result.tokens,
      promptTokens,
      ...(selection ? { visualTokens: selection } : {}),
      finishReason: result.finishReason,
      logprobs: options.logprobs !== undefined ? result.logprobs : undefined,
      options,
      timings: {
        preprocessMs,
        mediaDecodeMs: prepared.timings?.decodeMs ?? 0,
        visionMs,
        prefillMs: result.prefillMs,
        ttftMs,
        decodeMs: result.decodeMs,
        decodeTokensPerSecond: n > 1 ? ((n - 1) * 1000) / Math.max(1e-9, result.decodeMs - firstDecodeStepMs) : 0,
      },
      ...(pipeline ? { pipeline } : {}),
    };
  }

  /**
   * The vision stage (pipeline.ts runVisionStage, on the vision thread) and generation (prefill waiting for each
   * chunk's rows) at once. The vision stage stops when generation fails; generation fails when the vision stage does.
   */
  private async pipelinedRun(
    prepared: PreparedRequest,
    run: (prompt: PreparedPrompt, hooks: PrefillHooks) => Promise<GenerationResult>,
    onProgress?: ProgressCallback,
    signal?: AbortSignal,
  ): Promise<{ result: GenerationResult; pipeline: PipelineTimings; visionEndedAt: number; generationStartedAt: number }> {
    const stream = new VisualStream(prepared, this.config, this.decoder.deepstackLevels);
    const visionBusy: [number, number][] = [];
    const prefillBusy: [number, number][] = [];
    let stopped = false;
    let visionEndedAt = 0;
    const stage = runVisionStage(stream, prepared.visuals, {
      vision: this.vision,
      processor: this.preparer.processor,
      cache: this.visionCache,
      chunkPatches: this.visionChunkPatches,
      hiddenSize: this.config.text.hiddenSize,
      onProgress,
      signal,
      stopped: () => stopped,
      onChunk: (s, e) => visionBusy.push([s, e]),
    }).then(
      () => void (visionEndedAt = performance.now()),
      (e: Error) => {
        stream.fail(e);
        throw e;
      },
    );
    stage.catch(() => {}); // handled below; must not count as unhandled while generation still runs
    let result: GenerationResult;
    const tRun = performance.now();
    try {
      result = await run(stream.prompt, { visualsReady: (rows) => stream.ready(rows), onChunk: (s, e) => prefillBusy.push([s, e]) });
    } catch (e) {
      stopped = true;
      // The vision stage's own error is the cause when it failed first (the prefill only saw it through ready()).
      await stage.catch((visionError: unknown) => {
        throw visionError;
      });
      throw e;
    }
    await stage;
    const pipeline = { visionBusyMs: busyMs(visionBusy), prefillBusyMs: busyMs(prefillBusy), overlapMs: overlapMs(visionBusy, prefillBusy), visionChunks: visionBusy.length };
    return { result, pipeline, visionEndedAt, generationStartedAt: tRun };
  }

  /**
   * Whether the prompt left a `<think>` block open (Thinking chat templates end with `<think>\n`), and the budget
   * control when a budget is asked for.
   */
  private thinkingControl(promptIds: readonly number[], budget: number | undefined): { insideAtStart: boolean; budget?: ThinkingBudget } {
    const id = (t: string) => {
      try {
        return this.tokenizer.tokenId(t);
      } catch {
        return undefined;
      }
    };
    const start = id("<think>");
    const end = id("</think>");
    if (start === undefined || end === undefined) {
      if (budget !== undefined) throw new VideolmError("--thinking-budget: this checkpoint's tokenizer has no <think> / </think> tokens");
      return { insideAtStart: false };
    }
    const insideAtStart = promptIds.lastIndexOf(start) > promptIds.lastIndexOf(end);
    if (budget === undefined) return { insideAtStart };
    if (!Number.isInteger(budget) || budget < 0) throw new VideolmError(`thinking budget must be a non-negative integer, got ${budget}`);
    const forcedTokens = this.tokenizer.encode("\n</think>\n\n");
    return { insideAtStart, budget: { budget, startTokenId: start, endTokenId: end, forcedTokens, insideAtStart } };
  }

  /**
   * One visual through the vision encoder, in chunks of whole temporal steps when the family can split it (exact:
   * attention never crosses a frame pair), concatenating the merged rows and, for DeepStack, each level's rows.
   */
  private encodeInChunks(kind: string, batch: VisionBatch, onProgress?: ProgressCallback, signal?: AbortSignal): Promise<VisionOutput> {
    return encodeInChunks(this.vision, this.preparer.processor, batch, this.visionChunkPatches, this.config.text.hiddenSize, { kind, onProgress, signal });
  }


  /** Runs the vision encoder on each visual and lays its rows out at the visual's placeholder positions. */
  encodeVisuals(prepared: PreparedRequest, onProgress?: ProgressCallback, signal?: AbortSignal): Promise<PreparedPrompt> {
    return this.track(() => this.encodeVisualsNow(prepared, onProgress, signal));
  }

  private async encodeVisualsNow(prepared: PreparedRequest, onProgress?: ProgressCallback, signal?: AbortSignal): Promise<PreparedPrompt> {
    const D = this.config.text.hiddenSize;
    const encoded: VisionOutput[] = [];
    for (const v of prepared.visuals) encoded.push(await this.visionCache.getOrEncode(v.batch, () => this.encodeInChunks(v.kind, v.batch, onProgress, signal)));
    // Families that decide rows after the vision pass (InternVL-Flash's router) compact the planned prompt here.
    const planned = { inputIds: prepared.inputIds, positionIds: prepared.positionIds, ropeDelta: prepared.ropeDelta };
    const { layout, outputs, report } = applyVisualSelection(planned, prepared.visuals, encoded, this.preparer.processor, this.config, prepared.media ?? {});
    const ids = layout.inputIds;
    // Each visual's rows at its placeholders (visual-selection.ts placeholderTargets: the references' scatter order).
    const { positions, targets } = placeholderTargets(ids, this.config, prepared.visuals, (i) => outputs[i].embeds.length / D);
    const M = positions.length;
    const levels = outputs.length > 0 ? outputs[outputs.length - 1].deepstackLevels : 0;
    const embeds = new Float32Array(M * D);
    // DeepStack: [levels, M, D], rows in the same (sequence) order as `embeds` (the reference's visual_pos_masks order).
    const deepstack = levels > 0 ? new Float32Array(levels * M * D) : undefined;
    const filled = new Uint8Array(M);
    outputs.forEach((source, v) => {
      const rows = targets[v].length;
      targets[v].forEach((k, r) => {
        if (k < 0) return; // rows beyond the visual's placeholders are not used
        embeds.set(source.embeds.subarray(r * D, (r + 1) * D), k * D);
        if (deepstack) for (let l = 0; l < levels; l++) deepstack.set(source.deepstack!.subarray((l * rows + r) * D, (l * rows + r + 1) * D), (l * M + k) * D);
        filled[k] = 1;
      });
    });
    const unfilled = filled.indexOf(0);
    if (unfilled >= 0) throw new VideolmError(`the prompt has more visual placeholders than visual rows (token ${positions[unfilled]})`);
    return {
      inputIds: ids,
      positionIds: layout.positionIds,
      ropeDelta: layout.ropeDelta,
      visualEmbeds: embeds,
      visualPositions: positions,
      ...(deepstack ? { deepstackEmbeds: deepstack, deepstackLevels: levels } : {}),
      ...(report ? { selection: report } : {}),
    };
  }

}
