/**
 * Admission and ordering of model work.
 *
 * One model serves one generation at a time (`Lane` with one slot). Requests are admitted while fewer than
 * 1 + maxQueue of them are in flight (one running, maxQueue waiting); beyond that the server answers 429 at once
 * instead of letting latency grow without bound. A waiting request whose client goes away leaves the line.
 */
import { HttpError } from "./errors.js";

export class Admission {
  private inFlight = 0;
  constructor(readonly maxInFlight: number) {}

  get active(): number {
    return this.inFlight;
  }

  /** Takes a place or throws 429; call the returned function exactly once when the request is done. */
  enter(): () => void {
    if (this.inFlight >= this.maxInFlight) {
      throw new HttpError(429, `the server is busy: ${this.inFlight} requests are in flight (the limit is ${this.maxInFlight}, --max-queue); retry later`, "rate_limit_error", null, "queue_full");
    }
    this.inFlight++;
    let left = false;
    return () => {
      if (!left) {
        left = true;
        this.inFlight--;
      }
    };
  }
}

/** A FIFO with `slots` concurrent holders. */
export class Lane {
  private running = 0;
  private readonly waiting: { start: () => void; cancel: (reason: unknown) => void }[] = [];
  constructor(readonly slots: number) {}

  get busy(): number {
    return this.running;
  }
  get queued(): number {
    return this.waiting.length;
  }

  /** Runs `fn` when a slot is free; rejects without running it if `signal` aborts while waiting. */
  async run<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    await this.acquire(signal);
    try {
      return await fn();
    } finally {
      this.release();
    }
  }

  private acquire(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.running < this.slots) {
      this.running++;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const entry = {
        start: () => {
          signal?.removeEventListener("abort", onAbort);
          this.running++;
          resolve();
        },
        cancel: reject,
      };
      const onAbort = () => {
        const i = this.waiting.indexOf(entry);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(signal?.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.waiting.push(entry);
    });
  }

  private release(): void {
    this.running--;
    this.waiting.shift()?.start();
  }
}
