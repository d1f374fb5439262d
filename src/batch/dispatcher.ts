import { setMaxListeners } from "node:events";

/**
 * The work queue of a batch job, independent of how an item is run: items go to the least busy of several backends,
 * each with its own limit of items in flight; a failed item never stops the job.
 *
 *   items ──▶ queue ──▶ pick(least busy alive backend with a free slot) ──▶ backend.run(item)
 *                ▲                                                            │
 *                └── retry once, on another backend, when the backend failed ◀┘  (the input's fault: recorded as is)
 *
 * Failures are of two kinds, told apart by the backend (`isBackendFault`): the item's own (a corrupt video, a bad
 * option, a 4xx) is recorded at once — every backend would fail it alike; the backend's (connection refused, 5xx,
 * timeout) sends the item to another backend once (the same one when it is the only one alive) and counts against
 * the backend: after `deadAfter` backend faults in a row it gets no more items. When no backend is left alive the
 * job stops; the items not attempted are not recorded, so a resumed job runs them.
 */

export interface Backend<T, R> {
  /** Names the backend in results and messages (a URL, "local"). */
  readonly name: string;
  /** Items in flight on this backend at most (≥ 1). */
  readonly limit: number;
  run(item: T, signal: AbortSignal): Promise<R>;
  /** Whether an error thrown by run() is the backend's fault (retry elsewhere) rather than the item's. */
  isBackendFault(error: unknown): boolean;
}

export type Outcome<T, R> =
  | { ok: true; item: T; value: R; backend: string; attempts: number }
  | { ok: false; item: T; error: unknown; backend: string; attempts: number; /** the last attempt failed by the backend's fault */ backendFault: boolean };

export interface DispatchOptions<T, R> {
  /** Called once per item, in completion order, when it succeeded or failed for good. May be async (awaited). */
  onOutcome(outcome: Outcome<T, R>): void | Promise<void>;
  /** Called when an item starts on a backend (attempt ≥ 1). */
  onStart?(item: T, backend: string, attempt: number): void;
  /** Called when a backend is taken out of the job. */
  onBackendDead?(backend: string, error: unknown): void;
  /** Backend faults in a row after which a backend gets no more items (default 3). */
  deadAfter?: number;
  /** Attempts per item when its backend fails (default 2: the first and one retry). */
  maxAttempts?: number;
  /** Stops starting items; those in flight are aborted through their signal and not recorded. */
  signal?: AbortSignal;
}

export interface DispatchSummary {
  /** Items that reached onOutcome. */
  finished: number;
  /** Items never finished: the job stopped (signal, or every backend dead) before them. */
  notRun: number;
  /** Why the job stopped early, if it did. */
  stopped?: "aborted" | "no-backend";
  /** Items started per backend (attempts, retries included). */
  started: Record<string, number>;
}

interface BackendState<T, R> {
  backend: Backend<T, R>;
  active: number;
  started: number;
  faultsInARow: number;
  dead: boolean;
}

interface Pending<T> {
  item: T;
  attempts: number;
  /** Backends this item already failed on (a retry prefers another). */
  failedOn: Set<string>;
}

/** Runs every item on the backends; resolves when all are finished or the job stopped. */
export async function dispatch<T, R>(items: Iterable<T>, backends: Backend<T, R>[], options: DispatchOptions<T, R>): Promise<DispatchSummary> {
  if (backends.length === 0) throw new Error("dispatch: no backends");
  for (const b of backends) if (!(Number.isInteger(b.limit) && b.limit >= 1)) throw new Error(`dispatch: backend ${b.name} has limit ${b.limit}`);
  const deadAfter = options.deadAfter ?? 3;
  const maxAttempts = options.maxAttempts ?? 2;
  const states: BackendState<T, R>[] = backends.map((backend) => ({ backend, active: 0, started: 0, faultsInARow: 0, dead: false }));
  const source = items[Symbol.iterator]();
  const retries: Pending<T>[] = [];
  let sourceDone = false;
  let finished = 0;
  let notRun = 0;
  const inFlight = new Set<Promise<void>>();
  const abort = new AbortController();
  setMaxListeners(0, abort.signal); // every item in flight listens to it
  const onAbort = () => abort.abort(options.signal?.reason);
  options.signal?.addEventListener("abort", onAbort, { once: true });

  const alive = () => states.filter((s) => !s.dead);
  const next = (): Pending<T> | undefined => {
    if (sourceDone) return undefined;
    const r = source.next();
    if (r.done) {
      sourceDone = true;
      return undefined;
    }
    return { item: r.value, attempts: 0, failedOn: new Set() };
  };

  /**
   * The backend for an item: among alive backends with a free slot, those the item has not failed on first, then the
   * lowest share of its limit in use, then the fewest items started so far (so equal backends take turns), then the
   * order given.
   */
  const pick = (p: Pending<T>): BackendState<T, R> | undefined => {
    const free = alive().filter((s) => s.active < s.backend.limit);
    const fresh = free.filter((s) => !p.failedOn.has(s.backend.name));
    // A retry waits for a backend it has not failed on while one is alive, even if busy; it returns to its old one only
    // when that is the only one left.
    const untried = alive().some((s) => !p.failedOn.has(s.backend.name));
    const candidates = fresh.length > 0 ? fresh : untried ? [] : free;
    let best: BackendState<T, R> | undefined;
    for (const s of candidates) {
      if (!best) best = s;
      else {
        const load = s.active / s.backend.limit - best.active / best.backend.limit;
        if (load < 0 || (load === 0 && s.started < best.started)) best = s;
      }
    }
    return best;
  };

  const runOne = async (p: Pending<T>, s: BackendState<T, R>) => {
    s.active++;
    s.started++;
    p.attempts++;
    options.onStart?.(p.item, s.backend.name, p.attempts);
    let outcome: Outcome<T, R> | undefined;
    try {
      const value = await s.backend.run(p.item, abort.signal);
      s.faultsInARow = 0;
      outcome = { ok: true, item: p.item, value, backend: s.backend.name, attempts: p.attempts };
    } catch (error) {
      if (abort.signal.aborted) {
        notRun++; // stopped by the caller: not an outcome of the item
      } else if (s.backend.isBackendFault(error)) {
        s.faultsInARow++;
        if (!s.dead && s.faultsInARow >= deadAfter) {
          s.dead = true;
          options.onBackendDead?.(s.backend.name, error);
        }
        p.failedOn.add(s.backend.name);
        if (p.attempts < maxAttempts && alive().length > 0) retries.push(p);
        else if (alive().length === 0 && p.attempts < maxAttempts) notRun++; // no backend left to retry on: left for a resume
        else outcome = { ok: false, item: p.item, error, backend: s.backend.name, attempts: p.attempts, backendFault: true };
      } else {
        s.faultsInARow = 0; // the backend answered: it is healthy
        outcome = { ok: false, item: p.item, error, backend: s.backend.name, attempts: p.attempts, backendFault: false };
      }
    } finally {
      s.active--;
    }
    if (outcome) {
      await options.onOutcome(outcome);
      finished++;
    }
  };

  try {
    for (;;) {
      if (abort.signal.aborted || alive().length === 0) break;
      // Retries first (each to a backend it has not failed on, when one is alive), then new items while slots are free.
      const start = (p: Pending<T>, s: BackendState<T, R>) => {
        const task = runOne(p, s).finally(() => inFlight.delete(task));
        inFlight.add(task);
      };
      for (const p of retries.splice(0)) {
        const s = abort.signal.aborted ? undefined : pick(p);
        if (s) start(p, s);
        else retries.push(p); // waits for a slot on a backend it has not failed on
      }
      while (!abort.signal.aborted && !sourceDone && alive().some((s) => s.active < s.backend.limit)) {
        const p = next();
        if (!p) break;
        start(p, pick(p)!); // a new item has failed nowhere: any free slot takes it
      }
      // Nothing in flight after starting what could start: every item is finished (with alive backends, a free
      // slot always exists when nothing runs, so no item can be left waiting).
      if (inFlight.size === 0) break;
      await Promise.race(inFlight);
    }
    await Promise.allSettled([...inFlight]);
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
  }
  // Whatever was never started.
  notRun += retries.length;
  if (!sourceDone) for (let r = source.next(); !r.done; r = source.next()) notRun++;
  const stopped = abort.signal.aborted ? "aborted" : alive().length === 0 && notRun > 0 ? "no-backend" : undefined;
  return { finished, notRun, ...(stopped ? { stopped } : {}), started: Object.fromEntries(states.map((s) => [s.backend.name, s.started])) };
}
