/**
 * Stop strings on streamed text, and the end-of-sequence test.
 *
 * Streaming means text is emitted as it is decoded, so the matcher must never emit characters that might turn out
 * to be the start of a stop string (emitting and then retracting is impossible on a stream). It therefore holds back
 * the longest suffix of the text seen so far that is a proper prefix of some stop string, and releases it as soon as
 * the next delta rules the match out (or at `flush`, when generation ended for another reason).
 *
 * Semantics (as vLLM / the OpenAI API): generation stops as soon as the text contains a stop string; the text up to
 * (not including) the stop string is output, the stop string and anything after it are dropped. When one delta
 * completes several stop strings, the occurrence that starts earliest wins. Matching is on UTF-16 code units, exact
 * and case-sensitive.
 *
 * Why a match can never start inside text already emitted: everything before the held-back suffix was emitted, and
 * a stop string starting at position p with the text ending before it is complete would make text[p..] a prefix of
 * that stop string, longer than the held suffix — but the held suffix is the longest such.
 */
import { check } from "../errors.js";

export interface StopPushResult {
  /** Text that is now safe to show (never retracted). */
  emit: string;
  /** True once a stop string has been seen: stop generating; later pushes emit nothing. */
  stopped: boolean;
}

export class StopStringMatcher {
  private readonly stops: string[];
  /** Held-back text: a suffix of the output that is a proper prefix of some stop string. */
  private pending = "";
  private done = false;
  /** The stop string that ended generation, if any. */
  matched: string | undefined;

  constructor(stops: readonly string[]) {
    check(
      stops.every((s) => typeof s === "string" && s.length > 0),
      "Stop strings must be non-empty strings (check --stop).",
    );
    this.stops = [...new Set(stops)];
  }

  get stopped(): boolean {
    return this.done;
  }

  /** Feeds the next decoded text delta. */
  push(delta: string): StopPushResult {
    if (this.done) return { emit: "", stopped: true };
    const text = this.pending + delta;
    if (this.stops.length === 0) return { emit: text, stopped: false };

    // Earliest complete occurrence of any stop string. Only text from `pending` on can contain one (see file comment).
    let at = -1;
    for (const stop of this.stops) {
      const i = text.indexOf(stop);
      if (i >= 0 && (at < 0 || i < at)) {
        at = i;
        this.matched = stop;
      }
    }
    if (at >= 0) {
      this.done = true;
      this.pending = "";
      return { emit: text.slice(0, at), stopped: true };
    }

    const hold = this.longestStopPrefixSuffix(text);
    this.pending = text.slice(text.length - hold);
    return { emit: text.slice(0, text.length - hold), stopped: false };
  }

  /** Generation ended without a stop string (eos / max tokens): release what was held back. */
  flush(): string {
    const rest = this.done ? "" : this.pending;
    this.pending = "";
    return rest;
  }

  /** Length of the longest suffix of `text` that is a proper prefix of some stop string. */
  private longestStopPrefixSuffix(text: string): number {
    let best = 0;
    for (const stop of this.stops) {
      for (let len = Math.min(stop.length - 1, text.length); len > best; len--) {
        if (text.endsWith(stop.slice(0, len))) {
          best = len;
          break;
        }
      }
    }
    return best;
  }
}

/** True when `token` is one of the end-of-sequence ids (generation_config.json `eos_token_id`, int or list). */
export function isEos(token: number, eosIds: number | readonly number[] | ReadonlySet<number>): boolean {
  if (typeof eosIds === "number") return token === eosIds;
  if (eosIds instanceof Set) return eosIds.has(token);
  return (eosIds as readonly number[]).includes(token);
}
