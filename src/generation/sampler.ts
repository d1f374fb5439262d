/**
 * Next-token choice from one row of logits: the only per-token JavaScript on the decode hot path.
 *
 * Order and semantics follow Hugging Face transformers 4.57.6:
 *   `generation/utils.py::GenerationMixin._get_logits_processor` builds, in this order,
 *     RepetitionPenaltyLogitsProcessor (if repetition_penalty != 1; in greedy mode too)
 *     then, only when sampling (do_sample; here temperature > 0):
 *     TemperatureLogitsWarper (if != 1) → TopKLogitsWarper (if top_k != 0) → TopPLogitsWarper (if top_p < 1),
 *   each from `generation/logits_process.py`; `GenerationMixin._sample` then draws from softmax(scores)
 *   (torch.multinomial) or takes torch.argmax (first index on ties) when greedy.
 *
 * Performance rules (vocab ≈ 152k floats per step): O(V) passes only, no V-sized allocation per call (all buffers
 * are allocated once in the constructor), and no full sort: top-k is a k-heap selection; top-p first checks whether
 * the 64 highest tokens hold the nucleus, else buckets tokens by log-probability and sorts only the boundary bucket.
 *
 * Tokens at index ≥ vocabSize (padding rows of the LM head, e.g. 151 936 logits for a smaller tokenizer vocab)
 * are never chosen and are left out of every softmax, including the reported logprobs.
 *
 * Logprobs follow vLLM's default `logprobs_mode = "raw_logprobs"` (what OpenAI-style clients expect): the
 * log-softmax of the model's *unprocessed* logits (no repetition penalty, temperature, top-k/top-p), so they
 * describe the model, not the sampling settings, and stay finite for tokens the filters removed.
 *
 * Constrained decoding (src/generation/constrained): an optional allowed-token bitset sets every other token's
 * score to −∞ *before* the repetition penalty and the warpers (as vLLM / transformers apply grammar logits
 * processors first), so top-k / top-p choose among allowed tokens only. The raw logprobs stay raw: the chosen
 * token's logprob and the top alternatives are the model's unconstrained ones (alternatives may be disallowed).
 */
import { VideolmError, check } from "../errors.js";
import type { GenerationOptions } from "./options.js";
import { Rng } from "./rng.js";

export interface TokenLogprob {
  token: number;
  logprob: number;
}

export interface SampledToken {
  token: number;
  /** Raw log-softmax of the chosen token; NaN when the options did not ask for logprobs (see `Sampler.next`). */
  logprob: number;
  /** The `logprobs` most likely tokens by raw logit, best first (ties: lower id first); only when logprobs > 0. */
  top?: TokenLogprob[];
}

export type SamplerOptions = Pick<
  GenerationOptions,
  "temperature" | "topK" | "topP" | "repetitionPenalty" | "seed" | "logprobs"
>;

/** Top-p bucketing: buckets of 1/32 nat of log-probability; the last bucket holds everything below −64 nats. */
const BUCKETS_PER_NAT = 32;
const BUCKET_COUNT = 64 * BUCKETS_PER_NAT;
/** Top-p fast path: how many of the highest tokens to check for holding the whole nucleus. */
const NUCLEUS_PROBE = 64;

export class Sampler {
  readonly vocabSize: number;
  private readonly temperature: number;
  private readonly topK: number; // 0 = off (also when ≥ vocabSize: HF clamps to the row length)
  private readonly topP: number; // 1 = off
  private readonly penalty: number; // 1 = off
  private readonly logprobs: number | undefined;
  private readonly rng: Rng;

  // Reused buffers (allocated once).
  /** Masked copy of the row (constrained decoding; allocated on first use). */
  private masked: Float32Array | undefined;
  /** Penalised copy of the row (only used when penalty != 1). */
  private readonly penalized: Float32Array;
  /** Unnormalised probabilities, indexed by token id; valid only for the current candidates. */
  private readonly weights: Float64Array;
  /** Candidate token ids (first `candCount` entries) when `dense` is false. */
  private readonly cand: Int32Array;
  /** Marks tokens already penalised, so each distinct history token is penalised once (HF uses a mask). */
  private readonly seen: Uint8Array;
  private readonly bucketMass = new Float64Array(BUCKET_COUNT);
  /** Min-heap for k-largest selection: worst kept element at the root. */
  private readonly heapVal: Float64Array;
  private readonly heapIdx: Int32Array;

  // Result of the last `prepare`: the distribution to draw from.
  private dense = false; // true: all tokens 0..V-1 are candidates with weights[i]
  private candCount = 0;
  private total = 0;

  constructor(opts: SamplerOptions, vocabSize: number) {
    check(Number.isSafeInteger(vocabSize) && vocabSize > 0, `Sampler: vocabSize must be a positive integer, got ${vocabSize}.`);
    this.vocabSize = vocabSize;
    this.temperature = opts.temperature;
    this.topK = opts.topK > 0 && opts.topK < vocabSize ? opts.topK : 0;
    this.topP = opts.topP;
    this.penalty = opts.repetitionPenalty;
    this.logprobs = opts.logprobs;
    this.rng = new Rng(opts.seed);
    check(this.temperature >= 0 && Number.isFinite(this.temperature), `Sampler: temperature must be ≥ 0, got ${this.temperature}.`);
    check(this.topP > 0 && this.topP <= 1, `Sampler: top_p must be in (0, 1], got ${this.topP}.`);
    check(this.penalty > 0 && Number.isFinite(this.penalty), `Sampler: repetition_penalty must be > 0, got ${this.penalty}.`);

    this.penalized = new Float32Array(this.penalty !== 1 ? vocabSize : 0);
    this.weights = new Float64Array(vocabSize);
    this.cand = new Int32Array(vocabSize);
    this.seen = new Uint8Array(this.penalty !== 1 ? vocabSize : 0);
    const heapCap = Math.max(this.topK, this.logprobs ?? 0, NUCLEUS_PROBE);
    this.heapVal = new Float64Array(heapCap);
    this.heapIdx = new Int32Array(heapCap);
  }

  /**
   * Chooses the next token from one row of logits (length ≥ vocabSize). `history` = prompt + generated ids, used by
   * the repetition penalty. `logprob` (and `top`) are computed only when the options set `logprobs` (0 = chosen
   * token only); otherwise `logprob` is NaN, saving one exp pass over the vocabulary.
   */
  next(logits: Float32Array, history: ArrayLike<number>, allowed?: Uint32Array): SampledToken {
    this.prepare(allowed ? this.applyMask(logits, allowed) : logits, history);
    const token = this.draw();
    if (this.logprobs === undefined) return { token, logprob: Number.NaN };
    const lse = this.rawLogSumExp(logits);
    const result: SampledToken = { token, logprob: logits[token]! - lse };
    if (this.logprobs > 0) {
      const n = this.selectLargest(logits, this.logprobs);
      const top: TokenLogprob[] = [];
      for (let j = 0; j < n; j++) top.push({ token: this.heapIdx[j]!, logprob: this.heapVal[j]! - lse });
      result.top = top;
    }
    return result;
  }

  /**
   * The distribution `next` would draw from, after every processor/warper: the surviving tokens (ascending id) and
   * their probabilities. For tests and debugging; allocates.
   */
  distribution(logits: Float32Array, history: ArrayLike<number>, allowed?: Uint32Array): { tokens: number[]; probs: number[] } {
    this.prepare(allowed ? this.applyMask(logits, allowed) : logits, history);
    const pairs: [number, number][] = [];
    if (this.dense) {
      for (let i = 0; i < this.vocabSize; i++) pairs.push([i, this.weights[i]! / this.total]);
    } else {
      for (let j = 0; j < this.candCount; j++) {
        const t = this.cand[j]!;
        pairs.push([t, this.weights[t]! / this.total]);
      }
    }
    pairs.sort((a, b) => a[0] - b[0]);
    return { tokens: pairs.map((p) => p[0]), probs: pairs.map((p) => p[1]) };
  }

  // ---------------------------------------------------------------------------------------------------------------

  /** A copy of the row with −∞ for every token whose bit in `allowed` (bit i & 31 of word i >>> 5) is clear. */
  private applyMask(logits: Float32Array, allowed: Uint32Array): Float32Array {
    const V = this.vocabSize;
    if (logits.length < V)
      throw new VideolmError(`Sampler: logits row has ${logits.length} entries, expected at least the vocabulary size ${V}.`);
    const out = (this.masked ??= new Float32Array(V));
    for (let w = 0; w * 32 < V; w++) {
      const bits = w < allowed.length ? allowed[w]! : 0;
      const end = Math.min(V, w * 32 + 32);
      if (bits === 0) out.fill(-Infinity, w * 32, end);
      else for (let i = w * 32; i < end; i++) out[i] = (bits >>> (i & 31)) & 1 ? logits[i]! : -Infinity;
    }
    return out;
  }

  /** Runs the processors/warpers; leaves the distribution in (dense | cand[0..candCount)), weights, total. */
  private prepare(logits: Float32Array, history: ArrayLike<number>): void {
    const V = this.vocabSize;
    if (logits.length < V)
      throw new VideolmError(`Sampler: logits row has ${logits.length} entries, expected at least the vocabulary size ${V}.`);

    const s = this.penalty !== 1 ? this.applyRepetitionPenalty(logits, history) : logits;

    if (this.temperature === 0) {
      // Greedy: torch.argmax, first index among equal maxima.
      const best = argmax(s, V);
      this.setSingle(best);
      return;
    }

    const invT = 1 / this.temperature;
    const weights = this.weights;

    if (this.topK > 0) {
      // TopKLogitsWarper: remove scores < (k-th largest); equal scores survive. Temperature does not change the order.
      const n = this.selectLargest(s, this.topK);
      const kth = this.heapVal[n - 1]!;
      const max = this.heapVal[0]!;
      assertFiniteMax(max);
      // Collect first, then exponentiate: a call-free collection loop is much faster in V8 (see `firstAbove`).
      const cand = this.cand;
      let count = 0;
      // (−∞ scores are skipped: with a constraint mask fewer than k tokens may be allowed; they would weigh 0.)
      for (let i = 0; i < V; i++) if (s[i]! >= kth && s[i]! > -Infinity) cand[count++] = i;
      let total = 0;
      for (let j = 0; j < count; j++) {
        const t = cand[j]!;
        const w = expNonPositive((s[t]! - max) * invT);
        weights[t] = w;
        total += w;
      }
      this.dense = false;
      this.candCount = count;
      this.total = total;
      if (this.topP < 1) this.applyTopP(s, total);
      return;
    }

    // No top-k: softmax over the whole row.
    const max = s[argmax(s, V)]!;
    assertFiniteMax(max);

    let total = 0;
    for (let i = 0; i < V; i++) {
      const w = expNonPositive((s[i]! - max) * invT);
      weights[i] = w;
      total += w;
    }
    if (this.topP >= 1) {
      this.dense = true;
      this.total = total;
      return;
    }

    // Top-p without top-k (TopPLogitsWarper, see `applyTopP` for the rule), without a full sort.
    // Fast path (peaked distributions, the usual case): if the NUCLEUS_PROBE highest tokens already hold top_p of
    // the mass, the nucleus is among them (every other token has at least that mass above it).
    const cand = this.cand;
    const probe = this.selectLargest(s, Math.min(NUCLEUS_PROBE, V));
    let probeMass = 0;
    for (let j = 0; j < probe; j++) probeMass += weights[this.heapIdx[j]!]!;
    if (probeMass >= this.topP * total) {
      cand.set(this.heapIdx.subarray(0, probe));
      this.dense = false;
      this.candCount = probe;
      this.applyTopP(s, total);
      return;
    }

    // Flat distributions: bucket tokens by log-probability below the max (1/32 nat wide). With lastBucket the
    // first bucket at which the cumulative mass reaches top_p·Z:
    //   - tokens in earlier buckets are all kept (the mass above each of them is < top_p·Z);
    //   - tokens in later buckets are all removed (the mass above each is ≥ top_p·Z);
    //   - only the tokens of lastBucket itself are sorted, to find where inside it the nucleus ends.
    const bucketMass = this.bucketMass;
    bucketMass.fill(0);
    const scale = invT * BUCKETS_PER_NAT;
    for (let i = 0; i < V; i++) {
      const b = (max - s[i]!) * scale; // ≥ 0
      bucketMass[b < BUCKET_COUNT ? b | 0 : BUCKET_COUNT - 1]! += weights[i]!;
    }
    const need = this.topP * total;
    let lastBucket = 0;
    let cum = bucketMass[0]!;
    while (cum < need && lastBucket < BUCKET_COUNT - 1) cum += bucketMass[++lastBucket]!;
    // bucket(i) < lastBucket ⇔ (max − s_i)·scale < lastBucket; bucket(i) = lastBucket ⇔ … < lastBucket + 1
    // (the same product as above, so the same decisions; the final bucket is open-ended).
    const upper = lastBucket === BUCKET_COUNT - 1 ? Infinity : lastBucket + 1;
    let nSure = 0;
    let nEdge = 0; // boundary-bucket tokens, stored from the end of `cand` backwards
    for (let i = 0; i < V; i++) {
      const b = (max - s[i]!) * scale;
      if (b < lastBucket) cand[nSure++] = i;
      else if (b < upper) cand[V - 1 - nEdge++] = i;
    }
    let sureMass = 0;
    for (let j = 0; j < nSure; j++) sureMass += weights[cand[j]!]!;
    cand.copyWithin(nSure, V - nEdge, V); // boundary tokens follow the sure ones
    this.dense = false;
    this.candCount = nSure + nEdge;
    this.applyTopP(s, total, nSure, sureMass);
  }

  /**
   * TopPLogitsWarper on the current candidates. `total` = the softmax denominator over every token that survived the
   * earlier warpers (the whole row without top-k); tokens outside the candidates lie below the nucleus.
   *
   * HF sorts ascending, takes the cumulative softmax c_j (including token j) and removes tokens with c_j ≤ 1 − top_p,
   * always keeping the most likely one. c_j = 1 − (mass of tokens sorted above j), so walking in descending order we
   * keep a token while 1 − massBefore > 1 − top_p.
   */
  private applyTopP(s: ArrayLike<number>, total: number, nSure = 0, sureMass = 0): void {
    // cand[0..nSure) are known to be kept (mass `sureMass`); cand[nSure..candCount) are sorted and walked.
    const n = this.candCount;
    // Descending by score; ties by id (torch.sort's tie order is unspecified; this makes ours deterministic).
    const order = this.cand.subarray(nSure, n);
    order.sort((a, b) => s[b]! - s[a]! || a - b);
    const weights = this.weights;
    const floor = 1 - this.topP;
    let before = sureMass;
    let kept = nSure;
    while (kept < n) {
      if (kept > 0 && !(1 - before / total > floor)) break;
      before += weights[this.cand[kept]!]!;
      kept++;
    }
    this.candCount = kept;
    this.total = before;
  }

  /** RepetitionPenaltyLogitsProcessor: each distinct history token's score x → x < 0 ? x·p : x/p (float32, as torch). */
  private applyRepetitionPenalty(logits: Float32Array, history: ArrayLike<number>): Float32Array {
    const V = this.vocabSize;
    const out = this.penalized;
    out.set(logits.subarray(0, V));
    const p = this.penalty;
    const seen = this.seen;
    for (let j = 0; j < history.length; j++) {
      const t = history[j]!;
      if (t >= 0 && t < V && seen[t] === 0) {
        seen[t] = 1;
        const x = out[t]!;
        out[t] = x < 0 ? x * p : x / p;
      }
    }
    for (let j = 0; j < history.length; j++) {
      const t = history[j]!;
      if (t >= 0 && t < V) seen[t] = 0;
    }
    return out;
  }

  /**
   * Selects the n largest of row[0..V) (n ≤ heap capacity; ties: lower index first) into heapVal/heapIdx[0..n),
   * sorted best first. Returns n (= min(n, V)). O(V log n) worst case, ~O(V) on real logits.
   */
  private selectLargest(row: ArrayLike<number>, want: number): number {
    const V = this.vocabSize;
    const n = Math.min(want, V);
    const hv = this.heapVal;
    const hi = this.heapIdx;
    // Heap order: root = worst kept = smallest value, and among equal values the largest index.
    for (let i = 0; i < n; i++) {
      const v = row[i]!;
      if (v !== v) nanLogit(i);
      // sift up
      let c = i;
      while (c > 0) {
        const p = (c - 1) >> 1;
        if (hv[p]! < v || (hv[p] === v && hi[p]! > i)) break;
        hv[c] = hv[p]!;
        hi[c] = hi[p]!;
        c = p;
      }
      hv[c] = v;
      hi[c] = i;
    }
    // Only values above the current root enter the heap; `firstAbove` is a call-free loop that V8 compiles ~4× faster
    // than the same test inline next to the heap update (measured). An equal value with a larger index is worse than
    // the root, so it is skipped.
    for (let i = firstAbove(row, n, V, hv[0]!); i < V; i = firstAbove(row, i + 1, V, hv[0]!)) {
      const v = row[i]!;
      if (v !== v) nanLogit(i);
      siftDown(hv, hi, n, v, i);
    }
    // Heap-sort in place: repeatedly move the worst to the end → array ends up best first.
    for (let end = n - 1; end > 0; end--) {
      const v = hv[end]!;
      const idx = hi[end]!;
      hv[end] = hv[0]!;
      hi[end] = hi[0]!;
      siftDown(hv, hi, end, v, idx);
    }
    return n;
  }

  /** log Σ exp(raw logits[0..V)), for raw logprobs. */
  private rawLogSumExp(logits: Float32Array): number {
    const V = this.vocabSize;
    const max = logits[argmax(logits, V)]!;
    let sum = 0;
    for (let i = 0; i < V; i++) sum += expNonPositive(logits[i]! - max);
    return max + Math.log(sum);
  }

  private setSingle(token: number): void {
    this.dense = false;
    this.cand[0] = token;
    this.candCount = 1;
    this.weights[token] = 1;
    this.total = 1;
  }

  /** Inverse-CDF draw from the prepared distribution. */
  private draw(): number {
    if (!this.dense && this.candCount === 1) return this.cand[0]!; // greedy / single survivor: no RNG draw
    const u = this.rng.nextFloat() * this.total;
    const weights = this.weights;
    let cum = 0;
    if (this.dense) {
      let last = 0;
      for (let i = 0; i < this.vocabSize; i++) {
        const w = weights[i]!;
        if (w > 0) {
          cum += w;
          last = i;
          if (cum > u) return i;
        }
      }
      return last; // u within rounding of total
    }
    let last = this.cand[0]!;
    for (let j = 0; j < this.candCount; j++) {
      const t = this.cand[j]!;
      const w = weights[t]!;
      if (w > 0) {
        cum += w;
        last = t;
        if (cum > u) return t;
      }
    }
    return last;
  }
}

/** First index in [start, end) whose value is > threshold or NaN; `end` if none. */
function firstAbove(row: ArrayLike<number>, start: number, end: number, threshold: number): number {
  for (let i = start; i < end; i++) if (!(row[i]! <= threshold)) return i;
  return end;
}

/** torch.argmax over row[0..V): first index of the maximum; throws on NaN. */
function argmax(row: ArrayLike<number>, V: number): number {
  let best = 0;
  let bestVal = row[0]!;
  if (bestVal !== bestVal) nanLogit(0);
  for (let i = firstAbove(row, 1, V, bestVal); i < V; i = firstAbove(row, i + 1, V, bestVal)) {
    const v = row[i]!;
    if (v !== v) nanLogit(i);
    best = i;
    bestVal = v;
  }
  return best;
}

/** Moves (v, idx) down from the root of a heap of size n (root = worst), replacing the root. */
function siftDown(hv: Float64Array, hi: Int32Array, n: number, v: number, idx: number): void {
  let p = 0;
  for (;;) {
    let c = 2 * p + 1;
    if (c >= n) break;
    // pick the worse child
    const r = c + 1;
    if (r < n && (hv[r]! < hv[c]! || (hv[r] === hv[c] && hi[r]! > hi[c]!))) c = r;
    // stop when (v, idx) is worse than the worse child
    if (v < hv[c]! || (v === hv[c] && idx > hi[c]!)) break;
    hv[p] = hv[c]!;
    hi[p] = hi[c]!;
    p = c;
  }
  hv[p] = v;
  hi[p] = idx;
}

// exp(x) for x ≤ 0, relative error < 3e-14 (measured against Math.exp over [−700, 0]), ~2.5× faster than Math.exp
// in V8 here. Table method: x = (k/N)·ln2 + r with |r| ≤ ln2/(2N), exp(x) = 2^(k>>8) · 2^((k&255)/N) · e^r,
// e^r by a degree-5 Taylor polynomial (truncation error < r^6/720 ≈ 1e-20).
const EXP_N = 256;
const EXP_LOG2E_N = EXP_N / Math.LN2;
const EXP_LN2_N_HI = Math.fround(Math.LN2 / EXP_N); // short high part: k·HI is exact for |k| < 2^29
const EXP_LN2_N_LO = Math.LN2 / EXP_N - EXP_LN2_N_HI;
const EXP_FRACTION = Float64Array.from({ length: EXP_N }, (_, j) => Math.pow(2, j / EXP_N));
const EXP_INTEGER = Float64Array.from({ length: 1100 }, (_, m) => Math.pow(2, -m)); // 2^−m down to subnormals

function expNonPositive(x: number): number {
  if (!(x > -745)) return 0; // Math.exp underflows to 0 below ≈ −745.13; also x = −∞
  // round to nearest (ties down) for x ≤ 0; `| 0` truncates, which V8 does without a call (Math.round may not)
  const k = (x * EXP_LOG2E_N - 0.5) | 0;
  const r = x - k * EXP_LN2_N_HI - k * EXP_LN2_N_LO;
  const p = 1 + r * (1 + r * (1 / 2 + r * (1 / 6 + r * (1 / 24 + r * (1 / 120)))));
  return EXP_FRACTION[k & (EXP_N - 1)]! * EXP_INTEGER[-(k >> 8)]! * p;
}

function nanLogit(i: number): never {
  throw new VideolmError(
    `Sampler: the logits row contains NaN (at token ${i}); the decoder produced invalid output — try --dtype fp32.`,
  );
}

function assertFiniteMax(max: number): void {
  if (!Number.isFinite(max))
    throw new VideolmError(
      `Sampler: the largest logit is ${max}; cannot form a distribution — the decoder produced invalid output, try --dtype fp32.`,
    );
}
