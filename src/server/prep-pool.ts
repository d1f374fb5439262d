/**
 * The server's side of the preparation worker (prep-worker.ts): one thread, one preparation at a time in arrival
 * order (the preparation lane), so the event loop stays free for /health, uploads, streaming and other clients
 * while a request's media are decoded and its prompt is rendered and tokenized.
 *
 *   abort (client gone)   the abort is passed into the worker (its AbortSignal kills ffmpeg); if the worker has not
 *                         answered within ABORT_GRACE_MS (it is busy in CPU work) the thread is terminated, the
 *                         children it reported are killed, and a fresh worker starts
 *   --prepare-timeout     the same, and the request gets 400 prepare_timeout
 *   a crash of the worker 503 preparer_unavailable for the request it was serving; a fresh worker serves the next
 */
import { Worker } from "node:worker_threads";
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { PreparedRequest } from "../engine/preparer.js";
import type { ChatRequestMessage, MediaOptions } from "../engine/request.js";
import { VideolmError } from "../errors.js";
import { HttpError, type OpenAIErrorType } from "./errors.js";
import type { PlanSummary, PrepareJob, PrepareJobOptions, PrepWorkerData, WorkerError } from "./prep-worker.js";
import { Lane } from "./queue.js";

/** How long an aborted preparation may take to stop by itself before its thread is terminated. */
export const ABORT_GRACE_MS = 1000;

export interface PrepareResult {
  prepared: PreparedRequest;
  /** The plan the worker made first (from headers alone) and checked before decoding: max_new_tokens, limits, cost. */
  plan: PlanSummary;
  thumbnails?: Buffer[][];
}

export interface PrepPoolOptions {
  /** Checkpoint folder the worker loads its RequestPreparer from. */
  dir: string;
  /** Wall-clock limit of one preparation (ms); 0 = none. */
  timeoutMs: number;
  log?: (line: string) => void;
}

type Reply =
  | { type: "ready" }
  | { type: "init-error"; message: string }
  | { type: "done"; id: number; prepared: PreparedRequest; plan: PlanSummary; thumbnails?: Uint8Array[][] }
  | { type: "error"; id: number; error: WorkerError }
  | { type: "child"; pid: number; alive: boolean };

/** How to start the worker: its compiled .js beside this module, or under tsx when running from the .ts sources. */
function workerSource(): { file: string | URL; eval: boolean } {
  const here = import.meta.url;
  if (!/\.ts($|\?)/.test(here)) return { file: new URL("./prep-worker.js", here), eval: false };
  // Node 20 does not apply `--import tsx` to worker threads; load the entry through tsx's API instead.
  const entry = new URL("./prep-worker.ts", here.split("?")[0]).href;
  const require = createRequire(fileURLToPath(entry));
  const api = pathToFileURL(require.resolve("tsx/package.json").replace(/package\.json$/, "dist/esm/api/index.mjs")).href;
  return { file: `import(${JSON.stringify(api)}).then((m) => m.tsImport(${JSON.stringify(entry)}, ${JSON.stringify(entry)}))`, eval: true };
}

function fromWorkerError(e: WorkerError): Error {
  if (e.kind === "http") return new HttpError(e.status ?? 400, e.message, e.type as OpenAIErrorType | undefined, e.param ?? null, e.code ?? null);
  if (e.kind === "videolm") return new VideolmError(e.message);
  const err = new Error(e.message);
  if (e.stack) err.stack = e.stack;
  return err;
}

class WorkerHandle {
  readonly worker: Worker;
  readonly ready: Promise<void>;
  /** Child processes (ffmpeg, ffprobe) the worker has started and not yet seen exit; and how many it started. */
  readonly children = new Set<number>();
  childrenStarted = 0;
  private readonly pending = new Map<number, { resolve: (r: Reply) => void; reject: (err: Error) => void }>();
  dead: Error | undefined;

  constructor(dir: string, onDeath: (handle: WorkerHandle, err: Error) => void) {
    const source = workerSource();
    const workerData: PrepWorkerData = { dir };
    this.worker = new Worker(source.file, { eval: source.eval, workerData, stdout: false, stderr: false, execArgv: [] });
    this.worker.unref();
    let settleReady: { resolve: () => void; reject: (err: Error) => void };
    this.ready = new Promise<void>((resolve, reject) => (settleReady = { resolve, reject }));
    this.ready.catch(() => {});
    this.worker.on("message", (msg: Reply) => {
      if (msg.type === "ready") settleReady.resolve();
      else if (msg.type === "init-error") settleReady.reject(new Error(`the preparation worker could not load the checkpoint: ${msg.message}`));
      else if (msg.type === "child") {
        if (msg.alive) {
          this.children.add(msg.pid);
          this.childrenStarted++;
        }
        else this.children.delete(msg.pid);
      } else {
        const p = this.pending.get(msg.id);
        this.pending.delete(msg.id);
        p?.resolve(msg);
      }
    });
    const die = (err: Error) => {
      if (this.dead) return;
      this.dead = err;
      settleReady.reject(err);
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
      this.killChildren();
      onDeath(this, err);
    };
    this.worker.on("error", (err) => die(err));
    this.worker.on("exit", (code) => die(new Error(`the preparation worker exited (code ${code})`)));
  }

  send(job: PrepareJob): Promise<Reply> {
    if (this.dead) return Promise.reject(this.dead);
    return new Promise<Reply>((resolve, reject) => {
      this.pending.set(job.id, { resolve, reject });
      this.worker.postMessage(job);
    });
  }

  isWorkingOn(id: number): boolean {
    return this.pending.has(id);
  }

  abort(id: number): void {
    if (!this.dead) this.worker.postMessage({ type: "abort", id });
  }

  killChildren(): void {
    for (const pid of this.children) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    this.children.clear();
  }

  async terminate(): Promise<void> {
    this.killChildren();
    await this.worker.terminate();
    this.killChildren();
  }
}

export class PrepPool {
  private readonly lane = new Lane(1);
  private current: WorkerHandle;
  private nextId = 1;
  private closed = false;
  /** Workers started (1 + restarts), for /health and tests. */
  started = 0;

  private constructor(private readonly options: PrepPoolOptions) {
    this.current = this.spawn();
  }

  /** Starts the worker and waits until it has loaded the checkpoint. */
  static async start(options: PrepPoolOptions): Promise<PrepPool> {
    const pool = new PrepPool(options);
    try {
      await pool.current.ready;
    } catch (err) {
      await pool.close();
      throw err;
    }
    return pool;
  }

  get busy(): number {
    return this.lane.busy;
  }
  get queued(): number {
    return this.lane.queued;
  }

  private spawn(): WorkerHandle {
    this.started++;
    return new WorkerHandle(this.options.dir, (handle, err) => {
      if (this.closed || handle !== this.current) return;
      this.options.log?.(`error: ${err.message}; starting a new preparation worker`);
      this.current = this.spawn();
    });
  }

  /** Replaces the current worker (it is stuck or its job must stop now). */
  private async restart(): Promise<void> {
    const old = this.current;
    this.current = this.spawn();
    await old.terminate();
  }

  /**
   * Renders, bounds and tokenizes the prompt and prepares the media of `messages` in the worker, in turn with other
   * requests. Rejects with `signal.reason` when the client goes away, 400 prepare_timeout past the time limit,
   * 503 when the worker fails.
   */
  prepare(messages: ChatRequestMessage[], media: MediaOptions, opts: PrepareJobOptions, signal: AbortSignal): Promise<PrepareResult> {
    return this.lane.run(() => this.runJob(messages, media, opts, signal), signal);
  }

  private async runJob(messages: ChatRequestMessage[], media: MediaOptions, opts: PrepareJobOptions, signal: AbortSignal): Promise<PrepareResult> {
    if (this.closed) throw new HttpError(503, "the server is shutting down", "server_error", null, "preparer_unavailable");
    const handle = this.current;
    try {
      await handle.ready;
    } catch (err) {
      throw new HttpError(503, `the request could not be prepared: ${(err as Error).message}; retry`, "server_error", null, "preparer_unavailable");
    }
    if (signal.aborted) throw signal.reason;
    const id = this.nextId++;
    const job: PrepareJob = { type: "prepare", id, messages, media, ...opts, thumbnails: opts.thumbnails ?? false };
    // Abort or time limit: stop waiting, ask the worker to stop, and terminate it if it has not within the grace time.
    let stopping: "abort" | "timeout" | undefined;
    let grace: NodeJS.Timeout | undefined;
    let giveUp!: (err: Error) => void;
    const gaveUp = new Promise<never>((_, reject) => (giveUp = reject));
    const stop = (why: "abort" | "timeout") => {
      if (stopping) return;
      stopping = why;
      handle.abort(id);
      giveUp(why === "timeout" ? this.timeoutError() : (signal.reason as Error));
      grace = setTimeout(() => {
        if (handle === this.current && !handle.dead && handle.isWorkingOn(id)) {
          this.options.log?.(`preparation ${why === "timeout" ? "timed out" : "aborted"} and did not stop within ${ABORT_GRACE_MS} ms: restarting the preparation worker`);
          void this.restart();
        }
      }, ABORT_GRACE_MS);
    };
    const onAbort = () => stop("abort");
    signal.addEventListener("abort", onAbort, { once: true });
    const limit = this.options.timeoutMs > 0 ? setTimeout(() => stop("timeout"), this.options.timeoutMs) : undefined;
    try {
      const reply = await Promise.race([handle.send(job), gaveUp]);
      if (reply.type === "error") throw fromWorkerError(reply.error);
      if (reply.type !== "done") throw new Error(`unexpected reply ${reply.type}`);
      const thumbnails = reply.thumbnails?.map((list) => list.map((u) => Buffer.from(u.buffer, u.byteOffset, u.byteLength)));
      return { prepared: reply.prepared, plan: reply.plan, thumbnails };
    } catch (err) {
      if (stopping === "timeout") throw this.timeoutError();
      if (signal.aborted) throw signal.reason;
      if (err instanceof HttpError || err instanceof VideolmError) throw err;
      if (handle.dead === err) {
        throw new HttpError(503, `the request could not be prepared: the preparation worker stopped (${(err as Error).message}); retry`, "server_error", null, "preparer_unavailable");
      }
      throw err;
    } finally {
      clearTimeout(limit);
      signal.removeEventListener("abort", onAbort);
      // The lane moves on only when the worker is free again: it answered, or it was replaced.
      if (stopping) await this.settled(handle, id);
      clearTimeout(grace);
    }
  }

  /** Waits until `handle` is no longer working on job `id` (it answered, died or was replaced). */
  private async settled(handle: WorkerHandle, id: number): Promise<void> {
    while (handle === this.current && !handle.dead && handle.isWorkingOn(id)) await new Promise((r) => setTimeout(r, 10));
  }

  private timeoutError(): HttpError {
    return new HttpError(
      400,
      `preparing the request took longer than the server's limit of ${this.options.timeoutMs / 1000} s (--prepare-timeout): send shorter text, fewer or shorter videos, or fewer frames`,
      "invalid_request_error",
      "messages",
      "prepare_timeout",
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.current.terminate();
  }
}
