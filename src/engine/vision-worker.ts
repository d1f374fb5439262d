/**
 * The vision stage's thread (worker_threads; started by WorkerVisionEncoder in pipeline.ts): its own onnxruntime
 * session of the vision graph, run through the same VisionEncoder as on the main thread (same feeds, same graph), so
 * its rows are the main thread's rows. onnxruntime-node's `session.run` blocks the JavaScript thread that calls it;
 * on this thread it blocks only this thread, so the decoder's prefill on the main thread runs at the same time.
 *
 * Messages in:  {type: "encode", id, batch: VisionBatch} (arrays transferred) | {type: "release"}
 * Messages out: {type: "ready"} | {type: "init-error", message} | {type: "done", id, embeds, deepstack?,
 *               deepstackLevels, startedAt, endedAt} (arrays transferred; times in the main thread's
 *               performance.now() clock, see timeOrigin) | {type: "error", id, message, videolm} | {type: "released"}
 * Jobs run one at a time in arrival order (the main side bounds how many it queues).
 */
import { parentPort, workerData } from "node:worker_threads";
import { VideolmError } from "../errors.js";
import { createSession, VisionEncoder, type VisionBatch, type VisionOutput } from "./sessions.js";

export interface VisionWorkerData {
  /** The converted vision graph. */
  file: string;
  threads?: number;
  spinning?: boolean;
  /** The main thread's performance.timeOrigin: job times are reported on its clock. */
  timeOrigin: number;
}

export type VisionWorkerRequest = { type: "encode"; id: number; batch: VisionBatch } | { type: "release" };

export type VisionWorkerReply =
  | { type: "ready" }
  | { type: "init-error"; message: string }
  | { type: "done"; id: number; embeds: Float32Array; deepstack?: Float32Array; deepstackLevels: number; extra?: VisionOutput["extra"]; startedAt: number; endedAt: number }
  | { type: "error"; id: number; message: string; videolm: boolean }
  | { type: "released" };

const port = parentPort!;
const data = workerData as VisionWorkerData;
/** This thread's performance.now() → the main thread's. */
const shift = performance.timeOrigin - data.timeOrigin;

/** An output array as its own buffer (transferable without dragging a larger one along). */
function own(a: Float32Array): Float32Array {
  return a.byteOffset === 0 && a.byteLength === a.buffer.byteLength && a.buffer instanceof ArrayBuffer ? a : a.slice();
}

async function main(): Promise<void> {
  let encoder: VisionEncoder;
  try {
    encoder = new VisionEncoder(await createSession(data.file, { threads: data.threads, spinning: data.spinning }));
  } catch (e) {
    port.postMessage({ type: "init-error", message: (e as Error).message } satisfies VisionWorkerReply);
    return;
  }
  port.postMessage({ type: "ready" } satisfies VisionWorkerReply);
  // One job at a time: onnxruntime runs them back to back however many are queued.
  let chain = Promise.resolve();
  port.on("message", (msg: VisionWorkerRequest) => {
    chain = chain.then(async () => {
      if (msg.type === "release") {
        await encoder.release();
        port.postMessage({ type: "released" } satisfies VisionWorkerReply);
        return;
      }
      const startedAt = performance.now() + shift;
      try {
        const out = await encoder.encode(msg.batch);
        const embeds = own(out.embeds);
        const deepstack = out.deepstack ? own(out.deepstack) : undefined;
        // Other graph outputs (VisionOutput.extra, e.g. InternVL-Flash's gate and 64-token rows) travel too.
        const extra = out.extra ? Object.fromEntries(Object.entries(out.extra).map(([name, t]) => [name, { data: own(t.data), dims: t.dims }])) : undefined;
        const reply: VisionWorkerReply = { type: "done", id: msg.id, embeds, deepstack, deepstackLevels: out.deepstackLevels, extra, startedAt, endedAt: performance.now() + shift };
        const transfer = [embeds, ...(deepstack ? [deepstack] : []), ...Object.values(extra ?? {}).map((t) => t.data)].map((a) => a.buffer as ArrayBuffer);
        port.postMessage(reply, transfer);
      } catch (e) {
        port.postMessage({ type: "error", id: msg.id, message: (e as Error).message, videolm: e instanceof VideolmError } satisfies VisionWorkerReply);
      }
    });
  });
}

void main();
