/**
 * Vision encoding pipelined with the decoder's prefill (InternVL3.5's "decoupled vision-language deployment", the
 * DESIGN's "stages are a pipeline"): a request's visuals are encoded chunk by chunk (the family's `visionChunks`,
 * whole temporal steps) on a worker thread with its own onnxruntime session, while the main thread prefills each
 * prompt chunk as soon as the rows of all its placeholders have arrived.
 *
 *   main thread                                   vision thread (vision-worker.ts)
 *   ───────────                                   ────────────────────────────────
 *   runVisionStage: post chunk 0, 1 (≤ depth) ──▶ encode chunk 0 ─▶ rows back (transferred)
 *   VisualStream.fill: scatter rows in prompt order     encode chunk 1 …
 *   prefill chunk k: await visualsReady(rows of chunk k), then decoder.forward (blocks this thread only)
 *
 * Exact: the prefill chunks are the sequential path's (generate.ts `prefill`, same boundaries), each fed the same rows
 * at the same positions, and the vision rows are those of the same graph through the same VisionEncoder; so the
 * logits are bit-identical to the sequential path at the same thread counts (test/pipeline.test.ts).
 *
 * Bounded: at most `depth` chunks are queued on the vision thread (their pixels copied for the transfer); the rows
 * land directly in the prompt's buffer. Only a visual the vision cache will keep is also assembled whole (for the
 * cache, as the sequential path does); a cache hit fills the visual's rows at once and skips the encoder.
 *
 * Why a thread: onnxruntime-node's `session.run` is synchronous on the JavaScript thread that calls it, so two
 * sessions on one thread never overlap. While the main thread is inside a prefill chunk it cannot post more work,
 * hence the queue of `depth` chunks on the vision side.
 */
import { placeholderTargets } from "./visual-selection.js";
import { createRequire } from "node:module";
import * as os from "node:os";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import { VideolmError } from "../errors.js";
import { selectsVisualRows, type FamilyConfig, type FamilyProcessor } from "../families/family.js";
import { concatFloat32 } from "../util/float32.js";
import type { ProgressCallback } from "../util/progress.js";
import type { PreparedPrompt } from "./generate.js";
import type { PreparedRequest } from "./preparer.js";
import type { PreparedVisual } from "./request.js";
import type { VisionBatch, VisionOutput } from "./sessions.js";
import type { VisionCache } from "./vision-cache.js";
import type { VisionWorkerData, VisionWorkerReply, VisionWorkerRequest } from "./vision-worker.js";

/** What the engine needs of a vision encoder: the main-thread VisionEncoder or the worker-backed one. */
export interface VisionRunner {
  encode(batch: VisionBatch): Promise<VisionOutput>;
  release(): Promise<void>;
}

/** A vision output with the interval (performance.now()) the vision thread spent on it. */
export type TimedVisionOutput = VisionOutput & { busy?: [number, number] };

/**
 * The hook for families whose prompt depends on the vision output (e.g. InternVL's ViR / Flash, which pick each
 * frame's token count from a quantile over all frames' features after the whole vision pass): their processor sets
 * `promptDependsOnVision`, and such requests take the sequential path (encode everything, then build the prompt, then
 * prefill). Read from the processor object; families that do not set it can be pipelined.
 */
export interface PipelineHooks {
  promptDependsOnVision?: boolean | ((prepared: PreparedRequest) => boolean);
}

/** Whether a request can be pipelined: it has visuals and its family's prompt does not wait for the vision output. */
export function canPipeline(processor: FamilyProcessor, prepared: PreparedRequest): boolean {
  if (prepared.visuals.length === 0) return false;
  // A family that selects rows after the whole vision pass (FamilyProcessor.selectVisualRows) waits for every visual;
  // one that selects only on request (EVS pruning) is pipelined when the request asks for none.
  if (selectsVisualRows(processor, prepared.visuals)) return false;
  const dep = (processor as FamilyProcessor & PipelineHooks).promptDependsOnVision;
  return !(typeof dep === "function" ? dep(prepared) : dep);
}

/**
 * Default of LoadOptions.pipeline: on when the machine has at least this many cores. On the 2-core reference machine
 * the two stages only share the same two cores: the pipeline shortened the time to the first token by 5–13% (medians)
 * on a quiet machine at 8 frames and lengthened it under other load (docs/performance.md, "Vision pipelined with
 * prefill"), so it stays off there. 8 is not measured (no larger machine was available): where the stages have
 * cores to spare, overlapping them is what the pipeline is for; bench/pipeline.ts measures a machine.
 */
export const PIPELINE_MIN_CORES = 8;

export function pipelineByDefault(cores = os.availableParallelism()): boolean {
  return cores >= PIPELINE_MIN_CORES;
}

/** Chunks queued on the vision thread ahead of the one the main thread waits for. */
export const DEFAULT_PIPELINE_DEPTH = 2;

/** How to start the worker: its compiled .js beside this module, or under tsx from the .ts sources (as prep-pool.ts). */
function workerSource(): { file: string | URL; eval: boolean } {
  const here = import.meta.url;
  if (!/\.ts($|\?)/.test(here)) return { file: new URL("./vision-worker.js", here), eval: false };
  // Node 20 does not apply `--import tsx` to worker threads; load the entry through tsx's API instead.
  const entry = new URL("./vision-worker.ts", here.split("?")[0]).href;
  const require = createRequire(fileURLToPath(entry));
  const api = pathToFileURL(require.resolve("tsx/package.json").replace(/package\.json$/, "dist/esm/api/index.mjs")).href;
  return { file: `import(${JSON.stringify(api)}).then((m) => m.tsImport(${JSON.stringify(entry)}, ${JSON.stringify(entry)}))`, eval: true };
}

/** A copy of `a` in a buffer of its own (a chunk is a view into the whole video's pixels: never send all of them). */
function ownCopy<T extends Float32Array | Int32Array>(a: T): T {
  return a.slice() as T;
}

/**
 * The vision encoder on a worker thread (vision-worker.ts): same graph, same VisionEncoder, its own onnxruntime
 * session and thread pool. Jobs run in arrival order; the thread keeps the process alive only while jobs are pending.
 */
export class WorkerVisionEncoder implements VisionRunner {
  private readonly pending = new Map<number, { resolve: (o: TimedVisionOutput) => void; reject: (e: Error) => void }>();
  private nextId = 0;
  private dead: Error | undefined;
  private releasing: Promise<void> | undefined;

  private constructor(private readonly worker: Worker) {
    worker.unref();
    worker.on("message", (msg: VisionWorkerReply) => {
      if (msg.type !== "done" && msg.type !== "error") return;
      const p = this.pending.get(msg.id);
      this.pending.delete(msg.id);
      if (this.pending.size === 0) worker.unref();
      if (!p) return;
      if (msg.type === "error") p.reject(msg.videolm ? new VideolmError(msg.message) : new Error(msg.message));
      else p.resolve({ embeds: msg.embeds, deepstack: msg.deepstack, deepstackLevels: msg.deepstackLevels, ...(msg.extra ? { extra: msg.extra } : {}), busy: [msg.startedAt, msg.endedAt] });
    });
    const die = (err: Error) => {
      this.dead ??= err;
      for (const p of this.pending.values()) p.reject(this.dead);
      this.pending.clear();
    };
    worker.on("error", die);
    worker.on("exit", (code) => die(new VideolmError(`the vision thread exited (code ${code})`)));
  }

  /** Starts the thread and loads the vision graph there. */
  static start(file: string, options: { threads?: number; spinning?: boolean } = {}): Promise<WorkerVisionEncoder> {
    const source = workerSource();
    const workerData: VisionWorkerData = { file, threads: options.threads, spinning: options.spinning, timeOrigin: performance.timeOrigin };
    const worker = new Worker(source.file, { eval: source.eval, workerData, stdout: false, stderr: false, execArgv: [] });
    return new Promise((resolve, reject) => {
      // Only our own listeners are removed: the Worker's internal ones (newListener) start its message port.
      const off = () => {
        worker.off("error", fail);
        worker.off("exit", exited);
      };
      const fail = (err: Error) => {
        off();
        void worker.terminate();
        reject(err);
      };
      const exited = (code: number) => fail(new VideolmError(`the vision thread exited while loading ${file} (code ${code})`));
      worker.on("error", fail);
      worker.on("exit", exited);
      worker.once("message", (msg: VisionWorkerReply) => {
        if (msg.type === "init-error") return fail(new VideolmError(msg.message));
        off();
        resolve(new WorkerVisionEncoder(worker));
      });
    });
  }

  encode(batch: VisionBatch): Promise<TimedVisionOutput> {
    if (this.dead) return Promise.reject(this.dead);
    if (this.releasing) return Promise.reject(new VideolmError("the vision encoder's session was released (the model was disposed)"));
    const id = this.nextId++;
    const sent: VisionBatch = { ...batch, pixelValues: ownCopy(batch.pixelValues), positionIds: ownCopy(batch.positionIds) };
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.ref();
      const msg: VisionWorkerRequest = { type: "encode", id, batch: sent };
      this.worker.postMessage(msg, [sent.pixelValues.buffer as ArrayBuffer, sent.positionIds.buffer as ArrayBuffer]);
    });
  }

  /** Releases the session (after the queued jobs) and ends the thread; idempotent. */
  release(): Promise<void> {
    this.releasing ??= (async () => {
      if (!this.dead) {
        this.worker.ref();
        await new Promise<void>((resolve) => {
          this.worker.on("message", (msg: VisionWorkerReply) => msg.type === "released" && resolve());
          this.worker.once("exit", () => resolve());
          this.worker.postMessage({ type: "release" } satisfies VisionWorkerRequest);
        });
      }
      this.dead ??= new VideolmError("the vision encoder's session was released (the model was disposed)");
      await this.worker.terminate();
    })();
    return this.releasing;
  }
}

/** Where each row of each visual goes: `targets[v][r]` is the index (into the prompt's visual rows) of visual v's row r. */
export function visualRowTargets(ids: readonly number[], config: FamilyConfig, visuals: readonly PreparedVisual[]): { positions: Int32Array; targets: Int32Array[] } {
  // The sequential path's rule (visual-selection.ts placeholderTargets), over each visual's planned rows.
  return placeholderTargets(ids, config, visuals, (i) => visuals[i].tokens);
}

/**
 * The prompt whose visual rows arrive while it is prefilled: buffers of the whole prompt's rows, filled visual by
 * visual, chunk by chunk; `ready(n)` resolves once rows 0..n−1 (in prompt order) are all filled.
 */
export class VisualStream {
  readonly prompt: PreparedPrompt;
  private readonly filled: Uint8Array;
  private readyRows = 0;
  private waiters: { rows: number; resolve: () => void; reject: (e: Error) => void }[] = [];
  private failure: Error | undefined;
  private readonly D: number;
  private readonly M: number;
  readonly targets: Int32Array[];

  constructor(prepared: PreparedRequest, config: FamilyConfig, readonly deepstackLevels: number) {
    this.D = config.text.hiddenSize;
    const { positions, targets } = visualRowTargets(prepared.inputIds, config, prepared.visuals);
    this.targets = targets;
    this.M = positions.length;
    this.filled = new Uint8Array(this.M);
    this.prompt = {
      inputIds: prepared.inputIds,
      positionIds: prepared.positionIds,
      ropeDelta: prepared.ropeDelta,
      visualEmbeds: new Float32Array(this.M * this.D),
      visualPositions: positions,
      ...(deepstackLevels > 0 ? { deepstackEmbeds: new Float32Array(deepstackLevels * this.M * this.D), deepstackLevels } : {}),
    };
  }

  /** Rows filled so far, as a prefix in prompt order. */
  get rowsReady(): number {
    return this.readyRows;
  }

  /** Puts rows [row, row + m) of visual `v` (m = the output's rows) at their prompt rows. */
  fill(v: number, row: number, out: VisionOutput): void {
    const { D, M } = this;
    const m = out.embeds.length / D;
    const levels = this.deepstackLevels;
    if (out.deepstackLevels !== levels) throw new VideolmError(`the vision encoder returned ${out.deepstackLevels} DeepStack levels, the decoder takes ${levels} (delete the cache folder to rebuild it)`);
    const targets = this.targets[v];
    if (row + m > targets.length) throw new VideolmError(`visual ${v + 1} encoded to more rows than its ${targets.length} prompt tokens`);
    for (let r = 0; r < m; r++) {
      const k = targets[row + r];
      if (k < 0) continue; // more rows than placeholders: the sequential path ignores them too
      this.prompt.visualEmbeds.set(out.embeds.subarray(r * D, (r + 1) * D), k * D);
      for (let l = 0; l < levels; l++) this.prompt.deepstackEmbeds!.set(out.deepstack!.subarray((l * m + r) * D, (l * m + r + 1) * D), (l * M + k) * D);
      this.filled[k] = 1;
    }
    while (this.readyRows < M && this.filled[this.readyRows]) this.readyRows++;
    this.waiters = this.waiters.filter((w) => {
      if (w.rows > this.readyRows) return true;
      w.resolve();
      return false;
    });
  }

  ready(rows: number): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (rows <= this.readyRows) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ rows, resolve, reject }));
  }

  /** The vision stage failed (or was stopped): every wait rejects with `err`. */
  fail(err: Error): void {
    this.failure ??= err;
    for (const w of this.waiters) w.reject(this.failure);
    this.waiters = [];
  }

  /** After the vision stage: every placeholder must have its row. */
  checkComplete(): void {
    if (this.readyRows < this.M) this.fail(new VideolmError(`the prompt has ${this.M} visual placeholders, the visuals gave ${this.readyRows} rows`));
  }
}

export interface VisionStageOptions {
  vision: VisionRunner;
  processor: FamilyProcessor;
  cache: VisionCache;
  chunkPatches: number;
  hiddenSize: number;
  depth?: number;
  onProgress?: ProgressCallback;
  signal?: AbortSignal;
  /** Set by the caller when the prefill failed: no more chunks are started. */
  stopped?: () => boolean;
  /** Every encoder call's busy interval (performance.now()), for the overlap measurement. */
  onChunk?: (startedAt: number, endedAt: number) => void;
}

/**
 * Encodes the request's visuals in prompt order, chunk by chunk, filling `stream` as rows arrive; a cached visual is
 * filled at once. At most `depth` chunks are in flight.
 */
export async function runVisionStage(stream: VisualStream, visuals: readonly PreparedVisual[], o: VisionStageOptions): Promise<void> {
  const depth = Math.max(1, o.depth ?? DEFAULT_PIPELINE_DEPTH);
  const check = () => {
    if (o.signal?.aborted) throw new VideolmError("aborted");
    if (o.stopped?.()) throw new VideolmError("the prefill stopped");
  };
  // Prompt order: by each visual's first row (the sequential path's scatter, applied as rows arrive).
  const order = visuals.map((_, i) => i).filter((i) => stream.targets[i].length > 0 && stream.targets[i][0] >= 0);
  order.sort((a, b) => stream.targets[a][0] - stream.targets[b][0]);
  const levels = stream.deepstackLevels;

  const encodeStreaming = async (v: number, keep: boolean): Promise<VisionOutput | undefined> => {
    const { kind, batch } = visuals[v];
    const chunks = o.processor.visionChunks?.(batch, o.chunkPatches) ?? [batch];
    const total = batch.grid[0];
    let done = 0;
    const progress = chunks.length > 1 ? o.onProgress : undefined;
    progress?.({ task: `Encoding ${kind}`, done, total, unit: "frames" });
    const inflight: Promise<TimedVisionOutput>[] = [];
    const issue = (i: number) => {
      if (i < chunks.length && inflight[i] === undefined) {
        check();
        inflight[i] = o.vision.encode(chunks[i]);
        inflight[i].catch(() => {}); // awaited in order below; a later chunk's failure must not go unhandled meanwhile
      }
    };
    const outs: VisionOutput[] = [];
    let row = 0;
    for (let i = 0; i < chunks.length; i++) {
      for (let j = i; j < i + depth; j++) issue(j);
      const out = await inflight[i];
      if (out.busy) o.onChunk?.(out.busy[0], out.busy[1]);
      stream.fill(v, row, out);
      row += out.embeds.length / o.hiddenSize;
      if (keep) outs.push(out);
      done += chunks[i].grid[0];
      progress?.({ task: `Encoding ${kind}`, done, total, unit: "frames" });
    }
    if (row !== stream.targets[v].length) throw new VideolmError(`visual ${v + 1} encoded to ${row} rows, its prompt has ${stream.targets[v].length} tokens`);
    return keep ? assemble(outs, o.hiddenSize) : undefined;
  };

  for (const v of order) {
    check();
    const { batch } = visuals[v];
    const bytes = stream.targets[v].length * o.hiddenSize * 4 * (1 + levels);
    if (o.cache.maxBytes > 0 && bytes <= o.cache.maxBytes) {
      let streamed = false;
      const out = await o.cache.getOrEncode(batch, async () => {
        streamed = true;
        return (await encodeStreaming(v, true))!;
      });
      if (!streamed) stream.fill(v, 0, out); // a cache hit: the whole visual at once
    } else {
      await encodeStreaming(v, false); // too large to cache: never assembled whole
    }
  }
  stream.checkComplete();
}

/**
 * One visual through the vision encoder, in chunks of whole temporal steps when the family can split it (exact:
 * attention never crosses a step), the chunks' rows (and DeepStack / extra outputs) concatenated (`assemble`).
 */
export async function encodeInChunks(
  runner: VisionRunner,
  processor: FamilyProcessor,
  batch: VisionBatch,
  chunkPatches: number,
  D: number,
  opts: { kind?: string; onProgress?: ProgressCallback; signal?: AbortSignal } = {},
): Promise<VisionOutput> {
  const chunks = processor.visionChunks?.(batch, chunkPatches) ?? [batch];
  if (chunks.length === 1) return runner.encode(batch);
  const outs: VisionOutput[] = [];
  const total = batch.grid[0];
  let done = 0;
  const report = () => opts.onProgress?.({ task: `Encoding ${opts.kind ?? "video"}`, done, total, unit: "frames" });
  report();
  for (const chunk of chunks) {
    if (opts.signal?.aborted) throw new VideolmError("aborted");
    outs.push(await runner.encode(chunk));
    done += chunk.grid[0];
    report();
  }
  return assemble(outs, D);
}

/** A visual's chunk outputs as one output (rows concatenated; DeepStack [levels, ΣM_i, D]). */
export function assemble(outs: VisionOutput[], D: number): VisionOutput {
  if (outs.length === 1) return outs[0];
  const embeds = concatFloat32(outs.map((o) => o.embeds));
  const levels = outs[0].deepstackLevels;
  // Other outputs (VisionOutput.extra) are rows along their first axis: concatenated chunk after chunk.
  const names = Object.keys(outs[0].extra ?? {});
  const extra = names.length
    ? Object.fromEntries(
        names.map((n) => {
          const parts = outs.map((o) => o.extra![n]);
          return [n, { data: concatFloat32(parts.map((t) => t.data)), dims: [parts.reduce((k, t) => k + t.dims[0], 0), ...parts[0].dims.slice(1)] }];
        }),
      )
    : undefined;
  if (levels === 0) return { embeds, deepstackLevels: 0, ...(extra ? { extra } : {}) };
  const M = embeds.length / D;
  const deepstack = new Float32Array(levels * M * D);
  let row = 0;
  for (const o of outs) {
    const m = o.embeds.length / D;
    for (let l = 0; l < levels; l++) deepstack.set(o.deepstack!.subarray(l * m * D, (l + 1) * m * D), (l * M + row) * D);
    row += m;
  }
  return { embeds, deepstack, deepstackLevels: levels, ...(extra ? { extra } : {}) };
}

/** Total time two sets of intervals overlap (each set's intervals are disjoint: one thread each). */
export function overlapMs(a: readonly [number, number][], b: readonly [number, number][]): number {
  let total = 0;
  for (const [s1, e1] of a) for (const [s2, e2] of b) total += Math.max(0, Math.min(e1, e2) - Math.max(s1, s2));
  return total;
}

export const busyMs = (intervals: readonly [number, number][]): number => intervals.reduce((n, [s, e]) => n + (e - s), 0);
