/**
 * onnxruntime sessions for the converted graphs: the vision encoder (one grid per call) and the decoder
 * (a chunk of tokens per call, its per-layer state — KV cache and/or recurrent state — in a DecoderState; one session,
 * or one per decoder stage run in order, src/engine/decoder-stages.ts).
 */
import "../onnx/no-telemetry.js";
import * as ort from "onnxruntime-node";
import { VideolmError } from "../errors.js";
import type { FamilyConfig } from "../families/family.js";
import { DECODER_INPUTS, DECODER_LOGITS, DEEPSTACK_EMBEDS, HIDDEN_STATES_IN, HIDDEN_STATES_OUT, VISION_INPUTS, VISION_OUTPUT } from "../families/graph-io.js";
import { DecoderState, stateInputNames, stateOutputNames, type LayerStateSpec } from "./decoder-state.js";

export interface SessionOptions {
  /** Intra-op threads; default: onnxruntime's choice (all physical cores). */
  threads?: number;
  /**
   * Whether idle intra-op threads spin waiting for work (onnxruntime's default) or sleep. A decoder split into stages
   * has one thread pool per stage, run one after another: spinning pools steal the cores of the stage that runs
   * (bench/decoder-stages.ts, 10 one-layer stages of 256 experts, 2 threads: decode step 312 ms spinning, 26 ms not;
   * the same layers as one spinning session 71 ms).
   */
  spinning?: boolean;
}

export async function createSession(file: string, options: SessionOptions): Promise<ort.InferenceSession> {
  try {
    return await ort.InferenceSession.create(file, {
      executionProviders: ["cpu"],
      graphOptimizationLevel: "all",
      intraOpNumThreads: options.threads ?? 0,
      interOpNumThreads: 1,
      ...(options.spinning === false ? { extra: { session: { intra_op: { allow_spinning: "0" } } } } : {}),
    });
  } catch (e) {
    throw new VideolmError(`onnxruntime could not load ${file}: ${(e as Error).message.split("\n")[0]} (delete the cache folder to rebuild it)`);
  }
}

/** One visual input ready for the encoder: patches in the family's row layout and their grid. */
export interface VisionBatch {
  pixelValues: Float32Array; // [t·h·w, patchDim]
  grid: [number, number, number];
  /** (row, col) per patch, [t·h·w, 2]. */
  positionIds: Int32Array;
  /**
   * Family-specific int64 graph inputs by input name (documented by the family's vision builder), e.g. the
   * Qwen2.5-VL window-attention layout. Fed as given; absent for Qwen2-VL.
   */
  extraInputs?: Record<string, { dims: number[]; data: ArrayLike<number>; /** default int64 */ type?: "int64" | "float32" }>;
}

/** The vision encoder's output for one visual. */
export interface VisionOutput {
  /** Merged visual tokens [M, hidden]. */
  embeds: Float32Array;
  /** DeepStack graphs (Qwen3-VL): one feature set per level, [levels, M, hidden]; absent otherwise. */
  deepstack?: Float32Array;
  deepstackLevels: number;
  /**
   * Other outputs of the vision graph by name, rows along the first axis (e.g. InternVL-Flash's `gate_p0` [tiles] and
   * `visual_embeds_compressed` [tiles·64, D]): the family's `selectVisualRows` reads them. Absent when there are none.
   */
  extra?: Record<string, { data: Float32Array; dims: number[] }>;
}

/** Releases a session's native resources once; later runs fail inside onnxruntime, so callers check first. */
async function releaseSession(session: ort.InferenceSession, released: { done: boolean }): Promise<void> {
  if (released.done) return;
  released.done = true;
  await session.release();
}

export class VisionEncoder {
  private readonly released = { done: false };
  constructor(private readonly session: ort.InferenceSession) {}

  /** Frees the onnxruntime session (idempotent); the encoder cannot run afterwards. */
  release(): Promise<void> {
    return releaseSession(this.session, this.released);
  }

  /** The merged visual tokens [t·h·w / merge², hidden] and, for DeepStack graphs, the per-level features. */
  async encode(batch: VisionBatch): Promise<VisionOutput> {
    if (this.released.done) throw new VideolmError("the vision encoder's session was released (the model was disposed)");
    const n = batch.grid[0] * batch.grid[1] * batch.grid[2];
    const patchDim = batch.pixelValues.length / n;
    const feeds: Record<string, ort.Tensor> = {
      [VISION_INPUTS.pixelValues]: new ort.Tensor("float32", batch.pixelValues, [n, patchDim]),
      [VISION_INPUTS.posIds]: new ort.Tensor("int64", BigInt64Array.from(batch.positionIds, (v) => BigInt(v)), [n, 2]),
      [VISION_INPUTS.grid]: new ort.Tensor("int64", BigInt64Array.from(batch.grid, (v) => BigInt(v)), [3]),
    };
    for (const [name, t] of Object.entries(batch.extraInputs ?? {})) {
      feeds[name] = t.type === "float32" ? new ort.Tensor("float32", Float32Array.from(t.data), t.dims) : new ort.Tensor("int64", BigInt64Array.from(t.data, (v) => BigInt(v)), t.dims);
    }
    // Only the inputs the graph declares (InternVL's tower takes pixel rows alone: no rotary position ids).
    const declared = new Set(this.session.inputNames);
    for (const name of Object.keys(feeds)) if (!declared.has(name)) delete feeds[name];
    const out = await this.session.run(feeds);
    const ds = this.session.outputNames.includes(DEEPSTACK_EMBEDS) ? out[DEEPSTACK_EMBEDS] : undefined;
    const others = this.session.outputNames.filter((n) => n !== VISION_OUTPUT && n !== DEEPSTACK_EMBEDS);
    const extra = others.length > 0 ? Object.fromEntries(others.map((n) => [n, { data: out[n].data as Float32Array, dims: [...out[n].dims] }])) : undefined;
    return { embeds: out[VISION_OUTPUT].data as Float32Array, deepstack: ds?.data as Float32Array | undefined, deepstackLevels: ds ? ds.dims[0] : 0, ...(extra ? { extra } : {}) };
  }
}

/** A chunk of tokens for one decoder call. */
export interface DecoderChunk {
  inputIds: ArrayLike<number>;
  /** Absolute rotary positions, layout [axes][S] (Decoder.positionAxes: 3 for M-RoPE, 1 for 1-D RoPE). */
  positionIds: ArrayLike<number>;
  /** Visual embeddings [M, hidden] that replace the tokens at `visualPositions` (chunk-relative). */
  visualEmbeds?: Float32Array;
  visualPositions?: ArrayLike<number>;
  /** DeepStack decoders: [levels, M, hidden] added at `visualPositions` after the first layers (zeros when absent). */
  deepstackEmbeds?: Float32Array;
  /** Chunk-relative positions whose logits to return. */
  logitsIndices: ArrayLike<number>;
}

/**
 * The decoder: one session, or one per stage (consecutive layers; the first embeds the tokens, each later one takes
 * the previous one's `hidden_states_out` as `hidden_states_in`, the last returns the logits). Each session is fed only
 * the inputs it declares; the stages' outputs are merged and taken into the state once per call.
 */
export class Decoder {
  /** DeepStack levels the graph takes (`deepstack_embeds` [levels, M, hidden]); 0 when it has no such input. */
  readonly deepstackLevels: number;
  /**
   * Rotary position axes the graph takes (`position_ids` [axes, 1, S]): 3 for M-RoPE families (T, H, W), 1 for plain
   * 1-D RoPE. Read from the graph, so a family's positions and its decoder cannot disagree silently.
   */
  readonly positionAxes: number;
  private readonly sessions: readonly ort.InferenceSession[];

  constructor(
    /** The decoder's session, or its stages' sessions in layer order. */
    sessions: ort.InferenceSession | readonly ort.InferenceSession[],
    readonly config: FamilyConfig,
    /** The state each decoder layer keeps (the family's `decoderState`). */
    readonly stateSpecs: readonly LayerStateSpec[],
  ) {
    this.sessions = Array.isArray(sessions) ? sessions : [sessions as ort.InferenceSession];
    if (this.sessions.length === 0) throw new Error("a decoder needs at least one session");
    const rebuild = "(delete the cache folder to rebuild it)";
    const inputs = new Set(this.sessions.flatMap((s) => s.inputNames));
    const outputs = new Set(this.sessions.flatMap((s) => s.outputNames));
    const missing = [...stateInputNames(stateSpecs).filter((n) => !inputs.has(n)), ...stateOutputNames(stateSpecs).filter((n) => !outputs.has(n))];
    if (missing.length > 0) throw new VideolmError(`the decoder graph does not match its family's state layers: no ${missing.slice(0, 3).join(", ")}${missing.length > 3 ? ", …" : ""} ${rebuild}`);
    // The chain: every stage but the first takes hidden states, every stage but the last returns them, the last the logits.
    this.sessions.forEach((s, i) => {
      const last = i === this.sessions.length - 1;
      if (i > 0 !== s.inputNames.includes(HIDDEN_STATES_IN) || !last !== s.outputNames.includes(HIDDEN_STATES_OUT) || (last && !s.outputNames.includes(DECODER_LOGITS))) {
        throw new VideolmError(`decoder stage ${i} of ${this.sessions.length} does not fit the chain (hidden states in from the previous stage, out to the next, logits from the last) ${rebuild}`);
      }
    });
    const meta = this.sessions.flatMap((s) => s.inputMetadata ?? []).find((m) => m.name === DEEPSTACK_EMBEDS);
    this.deepstackLevels = meta && meta.isTensor && typeof meta.shape[0] === "number" ? meta.shape[0] : 0;
    const pos = this.sessions.flatMap((s) => s.inputMetadata ?? []).find((m) => m.name === DECODER_INPUTS.positionIds);
    this.positionAxes = pos && pos.isTensor && typeof pos.shape[0] === "number" ? pos.shape[0] : 3;
  }

  /** The number of sessions (decoder stages). */
  get stageCount(): number {
    return this.sessions.length;
  }

  private readonly released = { done: false };

  /** Frees the onnxruntime sessions (idempotent); the decoder cannot run afterwards. */
  async release(): Promise<void> {
    if (this.released.done) return;
    this.released.done = true;
    await Promise.all(this.sessions.map((s) => s.release()));
  }

  /** A fresh (empty) state for one sequence of at most `capacity` positions. */
  createState(capacity: number): DecoderState {
    return new DecoderState(this.stateSpecs, capacity);
  }

  /** Runs one chunk, taking its new state into `state` (KV appended, recurrent replaced); returns logits [K, vocab]. */
  async forward(chunk: DecoderChunk, state: DecoderState): Promise<Float32Array> {
    if (this.released.done) throw new VideolmError("the decoder's sessions were released (the model was disposed)");
    const S = chunk.inputIds.length;
    if (chunk.positionIds.length !== this.positionAxes * S) throw new VideolmError(`position ids hold ${chunk.positionIds.length} values, expected ${this.positionAxes}×${S} (the family's positions do not match its decoder graph)`);
    state.checkRoom(S);
    const total = state.length + S;
    const D = this.config.text.hiddenSize;
    const visual = chunk.visualEmbeds ?? new Float32Array(0);
    const visualPositions = chunk.visualPositions ?? [];
    const i64 = (a: ArrayLike<number>) => BigInt64Array.from(a as ArrayLike<number>, (v) => BigInt(v));
    const feeds: Record<string, ort.Tensor> = {
      [DECODER_INPUTS.inputIds]: new ort.Tensor("int64", i64(chunk.inputIds), [1, S]),
      [DECODER_INPUTS.visualEmbeds]: new ort.Tensor("float32", visual, [visual.length / D, D]),
      [DECODER_INPUTS.visualPositions]: new ort.Tensor("int64", i64(visualPositions), [visualPositions.length, 1]),
      [DECODER_INPUTS.positionIds]: new ort.Tensor("int64", i64(chunk.positionIds), [this.positionAxes, 1, S]),
      [DECODER_INPUTS.seqlensK]: new ort.Tensor("int32", Int32Array.from([total - 1]), [1]),
      [DECODER_INPUTS.totalSequenceLength]: new ort.Tensor("int32", Int32Array.from([total]), []),
      [DECODER_INPUTS.logitsIndices]: new ort.Tensor("int64", i64(chunk.logitsIndices), [chunk.logitsIndices.length]),
    };
    if (this.deepstackLevels > 0) {
      const M = visualPositions.length;
      const ds = chunk.deepstackEmbeds ?? new Float32Array(this.deepstackLevels * M * D);
      if (ds.length !== this.deepstackLevels * M * D) throw new VideolmError(`deepstack features hold ${ds.length} values, expected ${this.deepstackLevels}×${M}×${D}`);
      feeds[DEEPSTACK_EMBEDS] = new ort.Tensor("float32", ds, [this.deepstackLevels, M, D]);
    }
    Object.assign(feeds, state.feeds());
    // The graph attends over the KV cache (its past inputs, read in place) plus the chunk, and returns only the chunk's
    // own keys/values, which the state appends (graph-io.ts newKey explains why not the full present outputs);
    // recurrent layers return their whole new state, which replaces the old.
    // Stages: each runs on the inputs it declares and the previous stage's hidden states; the state is updated once,
    // from all stages' outputs, after the last.
    const out: Record<string, ort.Tensor> = {};
    let hidden: ort.Tensor | undefined;
    for (const session of this.sessions) {
      const own: Record<string, ort.Tensor> = {};
      for (const name of session.inputNames) {
        const t = name === HIDDEN_STATES_IN ? hidden : feeds[name];
        if (!t) throw new VideolmError(`the decoder graph takes an input ${name} the engine does not feed (delete the cache folder to rebuild it)`);
        own[name] = t;
      }
      Object.assign(out, await session.run(own));
      hidden = out[HIDDEN_STATES_OUT];
    }
    state.update(out, S);
    return out[DECODER_LOGITS].data as Float32Array;
  }
}
