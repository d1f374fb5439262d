/**
 * Batch backends (dispatcher.ts Backend) over engines: a local model, which generates one item at a time while up to
 * `limit` items prepare their media beside it, and remote models (another `videolm serve`, vLLM, …), which take
 * `limit` items in flight each.
 */
import { VideolmError } from "../errors.js";
import type { Backend } from "./dispatcher.js";
import { runItem, serialQueue, type BatchEngine, type ItemAnswer, type ItemSettings } from "./engine.js";
import type { BatchItem } from "./items.js";

/**
 * A model in this process. A VideolmError is the item's fault (its video is corrupt or missing, an option does not
 * fit); anything else is the engine's, so the item gets one more attempt.
 */
export function localBackend(engine: BatchEngine, settings: ItemSettings, limit: number, name = "local"): Backend<BatchItem, ItemAnswer> {
  const serial = serialQueue();
  return {
    name,
    limit,
    run: (item, signal) => runItem(engine, item, settings, signal, serial),
    isBackendFault: (error) => !(error instanceof VideolmError),
  };
}

/**
 * A remote model, connected on first use (a backend that is down when the job starts fails its first items, which go
 * to the other backends, instead of stopping the job); a failed connection is tried again by the next item. The
 * backend failed (retry the item elsewhere) when it could not be reached, timed out or answered 5xx / 429 after its
 * own retries (an error with no `status`, or one of those); a 4xx answer or an error raised before sending (a local
 * file that cannot be read, an option refused) is the item's.
 */
export function remoteBackend(connect: () => Promise<BatchEngine>, settings: ItemSettings, limit: number, name: string): Backend<BatchItem, ItemAnswer> {
  let engine: Promise<BatchEngine> | undefined;
  const connected = () => {
    engine ??= connect();
    engine.catch(() => (engine = undefined));
    return engine;
  };
  return {
    name,
    limit,
    run: async (item, signal) => {
      let remote: BatchEngine;
      try {
        remote = await connected();
      } catch (e) {
        throw new NotConnected(e); // whatever the reason (down, not an OpenAI API, no model), the backend's fault
      }
      return runItem(remote, item, settings, signal);
    },
    isBackendFault: (e) => e instanceof NotConnected || isRemoteFault(e),
  };
}

/** A backend that could not be connected to: its message, and the backend's fault whatever the cause. */
class NotConnected extends VideolmError {
  constructor(cause: unknown) {
    super(cause instanceof Error ? cause.message : String(cause), { cause });
    this.name = "NotConnected";
  }
}

export function isRemoteFault(error: unknown): boolean {
  const e = error as { name?: string; status?: unknown };
  if (e?.name === "BackendError") {
    const status = typeof e.status === "number" ? e.status : undefined;
    return status === undefined || status >= 500 || status === 429 || status === 408;
  }
  return !(error instanceof VideolmError);
}
