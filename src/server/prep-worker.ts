/**
 * The preparation worker (a worker_threads thread, started by prep-pool.ts): loads its own RequestPreparer from
 * the checkpoint folder and does a request's CPU-heavy work off the server's event loop — chat template rendering,
 * the prompt-limit bound (prompt-bound.ts), media decoding, resizing, patching, tokenization and the plan's
 * thumbnails. Results go back by structured clone with their typed arrays transferred.
 *
 * A request is planned first, from headers alone (RequestPreparer.plan: frames, sizes, tokens, the shared defaults
 * that fit the context, the cost estimate), and checked against the server's limits before any frame is decoded; a
 * chat request that does not fit is refused there. Then only the planned frames are decoded (the processor's frame
 * cache skips that for a video and plan seen before).
 *
 * Messages in:  {type: "prepare", id, messages, media, maxPromptTokens, …PrepareJobOptions} | {type: "abort", id}
 * Messages out: {type: "ready"} | {type: "init-error", message} | {type: "done", id, prepared, plan, thumbnails?}
 *               | {type: "error", id, error: WorkerError} | {type: "child", pid, alive}
 * ffmpeg/ffprobe children are reported ("child") so that the pool can kill them if it has to terminate the thread
 * (an abort reaches them through the AbortSignal first; terminating a thread does not end its child processes).
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { parentPort, workerData } from "node:worker_threads";
import { onChildProcess } from "../media/ffmpeg.js";
import { RequestPreparer, type RequestPlan } from "../engine/preparer.js";
import type { ChatRequestMessage, ContentPart, MediaOptions, PlanLimit } from "../engine/request.js";
import { costJson, planCost } from "../engine/plan-cost.js";
import type { WeightPrecision } from "../onnx/layers.js";
import { VideolmError } from "../errors.js";
import { API_SPELLING, messageFor } from "../option-error.js";
import { HttpError } from "./errors.js";
import { PromptBound } from "./prompt-bound.js";
import { encodeThumbnail, framesOfVisual, readNormalisation } from "./thumbnails.js";
import { planWithEventsPrompt, type EventsPromptRequest } from "./events-prompt.js";

export interface PrepWorkerData {
  dir: string;
}

/** What the server asks of one preparation besides the messages. */
export interface PrepareJobOptions {
  maxPromptTokens: number;
  /** Encode thumbnails of the frames (the plan endpoint). */
  thumbnails?: boolean;
  /** A plan request: limits that are exceeded are reported (`problem`) instead of refused, and frames are decoded for thumbnails. */
  forPlan?: boolean;
  /** The request's max_tokens, when it gave one; else the shared default, capped by maxNewTokensCap and the context. */
  maxNewTokens?: number;
  /** The server's --max-tokens. */
  maxNewTokensCap?: number;
  /** The server's --max-frames: a cap on each video's frames (said in the plan) and on the request's total. */
  maxFrames?: number;
  /** For the cost estimate: the served precision and the cache folder holding measured rates. */
  dtype?: WeightPrecision;
  cacheRoot?: string;
  /** /v1/events: write the checkpoint's / family's events prompt after the first video (events-prompt.ts). */
  eventsPrompt?: EventsPromptRequest;
}

export interface PrepareJob extends PrepareJobOptions {
  type: "prepare";
  id: number;
  messages: ChatRequestMessage[];
  media: MediaOptions;
  thumbnails: boolean;
}

/** The plan's facts the server reports and uses (plain data: crosses the thread boundary). */
export interface PlanSummary {
  maxNewTokens: number;
  limits: PlanLimit[];
  /** Set when a limit of the server or the context is exceeded (plan requests only; chat requests are refused). */
  problem?: string;
  cost: ReturnType<typeof costJson>;
  planMs: number;
}

/** An error as it crosses the thread boundary. */
export interface WorkerError {
  kind: "http" | "videolm" | "other";
  message: string;
  status?: number;
  type?: string;
  param?: string | null;
  code?: string | null;
  stack?: string;
}

const port = parentPort!;
const { dir } = workerData as PrepWorkerData;

// Report every ffmpeg / ffprobe child this thread starts, so the pool can kill them if it must terminate the thread.
onChildProcess((pid, alive) => port.postMessage({ type: "child", pid, alive }));

/** Buffers arrive as plain Uint8Arrays; the processors check Buffer.isBuffer. */
function rewrap(messages: ChatRequestMessage[]): ChatRequestMessage[] {
  const buf = (v: unknown) => (v instanceof Uint8Array && !Buffer.isBuffer(v) ? Buffer.from(v.buffer, v.byteOffset, v.byteLength) : v);
  return messages.map((m) =>
    typeof m.content === "string"
      ? m
      : {
          ...m,
          content: m.content.map((p): ContentPart => {
            if (p.type === "image") return { ...p, image: buf(p.image) as typeof p.image };
            if (p.type === "video") return { ...p, video: (Array.isArray(p.video) ? p.video.map(buf) : buf(p.video)) as typeof p.video };
            return p;
          }),
        },
  );
}

function describeError(err: unknown): WorkerError {
  if (err instanceof HttpError) return { kind: "http", message: err.message, status: err.status, type: err.type, param: err.param, code: err.code };
  // Option errors raised while planning (e.g. nframes above the clip's frame count) speak the API's names.
  if (err instanceof VideolmError) return { kind: "videolm", message: messageFor(err, API_SPELLING) };
  return { kind: "other", message: (err as Error)?.message ?? String(err), stack: (err as Error)?.stack };
}

function transferables(value: unknown, out = new Set<ArrayBuffer>(), depth = 0): Set<ArrayBuffer> {
  if (depth > 8 || value === null || typeof value !== "object") return out;
  if (ArrayBuffer.isView(value)) {
    if (value.buffer instanceof ArrayBuffer) out.add(value.buffer);
    return out;
  }
  for (const v of Array.isArray(value) ? value : Object.values(value)) transferables(v, out, depth + 1);
  return out;
}

/** The server's limits and the context, on the plan: the same errors the server has always answered. */
function checkPlan(plan: RequestPlan, job: PrepareJob): void {
  const frames = plan.visuals.reduce((n, v) => n + (v.kind === "video" ? (v.frameIndices?.length ?? 0) : 0), 0);
  if (job.maxFrames !== undefined && frames > job.maxFrames) {
    throw new HttpError(400, `the request samples ${frames} video frames; the server's limit is ${job.maxFrames} per request (--max-frames): lower fps / max_frames`, "invalid_request_error", "messages", "limit_exceeded");
  }
  const S = plan.inputIds.length;
  if (S > job.maxPromptTokens) {
    throw new HttpError(400, `the prompt has ${S} tokens; the server's limit is ${job.maxPromptTokens} (--max-prompt-tokens): use fewer frames or pixels (fps, max_frames, max_pixels)`, "invalid_request_error", "messages", "limit_exceeded");
  }
  if (S + plan.maxNewTokens > plan.contextLength) {
    throw new VideolmError(
      `the prompt has ${S} tokens and ${plan.maxNewTokens} new tokens were requested, but the model's context is ${plan.contextLength} tokens: ` +
        `lower --max-new-tokens, or use fewer frames / pixels (--fps, --max-frames, --max-pixels)`,
    );
  }
}

async function main(): Promise<void> {
  let preparer: RequestPreparer;
  let bound: PromptBound;
  try {
    preparer = await RequestPreparer.load(dir);
    try {
      bound = PromptBound.fromTokenizerJson(JSON.parse(readFileSync(path.join(preparer.dir, "tokenizer.json"), "utf8")));
    } catch {
      bound = PromptBound.none();
    }
  } catch (err) {
    port.postMessage({ type: "init-error", message: (err as Error)?.message ?? String(err) });
    return;
  }
  const normalisation = readNormalisation(preparer.dir);
  const running = new Map<number, AbortController>();

  const prepare = async (job: PrepareJob, signal: AbortSignal) => {
    const promptText = preparer.renderPrompt(job.messages);
    const atLeast = bound.lowerBound(promptText, job.maxPromptTokens);
    if (atLeast > job.maxPromptTokens) {
      throw new HttpError(
        400,
        `the prompt has more than ${job.maxPromptTokens} tokens (its ${Buffer.byteLength(promptText)} bytes of text alone are at least ${atLeast >= job.maxPromptTokens ? job.maxPromptTokens + 1 : atLeast}); the server's limit is ${job.maxPromptTokens} (--max-prompt-tokens): send less text`,
        "invalid_request_error",
        "messages",
        "limit_exceeded",
      );
    }
    // Plan from headers alone and check it before decoding anything.
    const media: MediaOptions = { ...job.media, ...(job.maxFrames !== undefined ? { frameLimit: job.maxFrames } : {}) };
    const planOf = (messages: ChatRequestMessage[]) => preparer.plan(messages, media, { maxNewTokens: job.maxNewTokens, maxNewTokensCap: job.maxNewTokensCap, maxPromptTokens: job.maxPromptTokens, signal });
    const messages = rewrap(job.messages);
    const plan = job.eventsPrompt ? (await planWithEventsPrompt(preparer, messages, job.eventsPrompt, media, planOf)).plan : await planOf(messages);
    const cost = planCost(preparer, plan, { dtype: job.dtype, cacheRoot: job.cacheRoot, weightsLoaded: true });
    let problem: string | undefined;
    try {
      checkPlan(plan, job);
    } catch (err) {
      if (!job.forPlan) throw err;
      problem = messageFor(err, API_SPELLING);
    }
    const prepared = await preparer.realise(plan, media, signal);
    const summary: PlanSummary = { maxNewTokens: plan.maxNewTokens, limits: plan.limits, ...(problem ? { problem } : {}), cost: costJson(cost), planMs: plan.planMs };
    let thumbnails: Uint8Array[][] | undefined;
    if (job.thumbnails) {
      thumbnails = [];
      for (const v of prepared.visuals) {
        const encoded: Uint8Array[] = [];
        for (const f of framesOfVisual(v, normalisation) ?? []) {
          if (signal.aborted) throw signal.reason;
          const jpeg = await encodeThumbnail(f);
          encoded.push(new Uint8Array(jpeg.buffer.slice(jpeg.byteOffset, jpeg.byteOffset + jpeg.byteLength)));
        }
        thumbnails.push(encoded);
      }
    }
    return { prepared, plan: summary, thumbnails };
  };

  port.on("message", (msg: PrepareJob | { type: "abort"; id: number }) => {
    if (msg.type === "abort") {
      running.get(msg.id)?.abort(new Error("aborted"));
      return;
    }
    const controller = new AbortController();
    running.set(msg.id, controller);
    prepare(msg, controller.signal).then(
      (result) => {
        running.delete(msg.id);
        port.postMessage({ type: "done", id: msg.id, ...result }, [...transferables(result)]);
      },
      (err) => {
        running.delete(msg.id);
        port.postMessage({ type: "error", id: msg.id, error: describeError(err) });
      },
    );
  });
  port.postMessage({ type: "ready" });
}

void main();
