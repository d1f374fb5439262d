import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { VideolmError } from "../src/errors.js";
import {
  DEFAULT_MAX_NEW_TOKENS,
  resolveGenerationOptions,
  validateGenerationOptions,
  type GenerationOptions,
} from "../src/generation/options.js";
import { Rng } from "../src/generation/rng.js";
import { Sampler, type SamplerOptions } from "../src/generation/sampler.js";

// Golden cases recorded from transformers 4.57.6 logits processors by tools/oracle/record_sampler.py.
interface Case {
  name: string;
  row: string;
  options: { temperature: number; topK: number; topP: number; repetitionPenalty: number };
  history: number[];
  processors: string[];
  greedyToken?: number;
  keptTokens?: number[];
  keptProbs?: number[];
}
const fixture = JSON.parse(
  readFileSync(new URL("./fixtures/sampler/sampler_cases.json", import.meta.url), "utf8"),
) as {
  vocab: number;
  rows: Record<string, number[]>;
  cases: Case[];
  rawLogprobs: { row: string; top5: { token: number; logprob: number }[]; all: number[] };
  rng: { seed: number; uint32: number[]; floatsFromSameStream: number[] }[];
  generationConfigs: {
    json: Record<string, unknown>;
    hf: { do_sample: boolean; temperature: number; top_k: number; top_p: number; repetition_penalty: number; max_new_tokens: number | null };
  }[];
};
const V = fixture.vocab;
const row = (name: string): Float32Array => Float32Array.from(fixture.rows[name]!);

/** The fixture row followed by `extra` huge logits that must be ignored (LM-head padding beyond the vocabulary). */
function paddedRow(name: string, extra: number): Float32Array {
  const r = new Float32Array(V + extra).fill(100);
  r.set(row(name));
  return r;
}

describe("Sampler vs Hugging Face logits processors (fixture)", () => {
  for (const c of fixture.cases) {
    for (const padded of [false, true]) {
      it(`${c.name}${padded ? " (row padded past vocab)" : ""}`, () => {
        const sampler = new Sampler({ ...c.options, seed: 1 }, V);
        const logits = padded ? paddedRow(c.row, 24) : row(c.row);
        if (c.greedyToken !== undefined) {
          expect(sampler.next(logits, c.history).token).toBe(c.greedyToken);
          return;
        }
        const d = sampler.distribution(logits, c.history);
        expect(d.tokens).toEqual(c.keptTokens);
        d.probs.forEach((p, j) => expect(Math.abs(p - c.keptProbs![j]!)).toBeLessThan(1e-6));
        // the token actually drawn is one of the survivors
        expect(c.keptTokens).toContain(sampler.next(logits, c.history).token);
      });
    }
  }

  it("covers every processor combination the fixture claims", () => {
    const combo = fixture.cases.find((c) => c.name === "combo")!;
    expect(combo.processors).toEqual([
      "RepetitionPenaltyLogitsProcessor",
      "TemperatureLogitsWarper",
      "TopKLogitsWarper",
      "TopPLogitsWarper",
    ]);
  });
});

describe("Sampler: greedy", () => {
  it("takes the argmax, lowest index on ties (torch.argmax)", () => {
    const s = new Sampler({ temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1 }, 6);
    expect(s.next(Float32Array.from([1, 3, -Infinity, 3, 2, 0]), []).token).toBe(1);
    expect(s.next(Float32Array.from([-Infinity, -Infinity, -5, -5, -Infinity, -Infinity]), []).token).toBe(2);
  });

  it("repetition penalty flips the argmax: positive scores divided, negative multiplied, once per distinct token", () => {
    const s = new Sampler({ temperature: 0, topK: 0, topP: 1, repetitionPenalty: 2 }, 3);
    // 4/2 = 2 < 3 → token 1 wins; repeating token 0 in history must not divide twice (2 would still lose to 3).
    expect(s.next(Float32Array.from([4, 3, -1]), [0, 0, 0]).token).toBe(1);
    // 3.5/2 = 1.75 > 1.7 — a second division (0.875) would make token 1 win.
    expect(s.next(Float32Array.from([3.5, 1.7, -1]), [0, 0]).token).toBe(0);
    // negative score: −0.1·2 = −0.2 < −0.15 → token 1
    expect(s.next(Float32Array.from([-0.1, -0.15, -3]), [0]).token).toBe(1);
  });

  it("rejects NaN logits with a VideolmError", () => {
    const s = new Sampler({ temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1 }, 4);
    expect(() => s.next(Float32Array.from([0, NaN, 1, 2]), [])).toThrow(VideolmError);
    const t = new Sampler({ temperature: 1, topK: 2, topP: 0.9, repetitionPenalty: 1 }, 4);
    expect(() => t.next(Float32Array.from([0, 1, 2, NaN]), [])).toThrow(/NaN/);
  });

  it("rejects a row shorter than the vocabulary", () => {
    const s = new Sampler({ temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1 }, 10);
    expect(() => s.next(new Float32Array(9), [])).toThrow(/at least the vocabulary size 10/);
  });
});

describe("Sampler: logprobs (raw log-softmax, vLLM raw_logprobs)", () => {
  it("matches torch.log_softmax of the unprocessed row, ignoring padding beyond the vocabulary", () => {
    const ref = fixture.rawLogprobs;
    for (const logits of [row(ref.row), paddedRow(ref.row, 24)]) {
      // temperature and penalty must not change the reported logprobs
      const s = new Sampler({ temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1.3, logprobs: 5 }, V);
      const r = s.next(logits, []);
      expect(r.top!.map((t) => t.token)).toEqual(ref.top5.map((t) => t.token));
      r.top!.forEach((t, j) => expect(t.logprob).toBeCloseTo(ref.top5[j]!.logprob, 9));
      expect(r.token).toBe(ref.top5[0]!.token);
      expect(r.logprob).toBeCloseTo(ref.top5[0]!.logprob, 9);
    }
    // Sampled tokens (temperature 3, penalty on) still report the raw model logprob of the chosen token.
    const hot = new Sampler({ temperature: 3, topK: 0, topP: 1, repetitionPenalty: 1.5, logprobs: 0, seed: 4 }, V);
    const seen = new Set<number>();
    for (let i = 0; i < 30; i++) {
      const r = hot.next(row(ref.row), [1, 2, 3]);
      seen.add(r.token);
      expect(r.logprob).toBeCloseTo(ref.all[r.token]!, 9);
      expect(r.top).toBeUndefined();
    }
    expect(seen.size).toBeGreaterThan(10);
  });

  it("top alternatives: ties ordered by lower id; logprob NaN when not requested", () => {
    const s = new Sampler({ temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, logprobs: 3 }, 5);
    const r = s.next(Float32Array.from([0, 1, 1, 1, 0]), []);
    expect(r.top!.map((t) => t.token)).toEqual([1, 2, 3]);
    // hand-derived: log(e / (3e + 2))
    expect(r.top![0]!.logprob).toBeCloseTo(Math.log(Math.E / (3 * Math.E + 2)), 12);
    const n = new Sampler({ temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1 }, 5);
    expect(n.next(Float32Array.from([0, 1, 1, 1, 0]), []).logprob).toBeNaN();
  });
});

/** Draws `n` tokens and returns the frequency of each id. */
function frequencies(opts: SamplerOptions, logits: Float32Array, vocab: number, n: number): number[] {
  const s = new Sampler(opts, vocab);
  const counts = new Array<number>(vocab).fill(0);
  for (let i = 0; i < n; i++) counts[s.next(logits, []).token]!++;
  return counts;
}

/** Each count within 5 standard deviations of its binomial expectation (false-failure odds ~1e-6 per bin). */
function expectFrequencies(counts: number[], expected: number[], n: number): void {
  expected.forEach((p, i) => {
    const sd = Math.sqrt(n * p * (1 - p));
    expect(Math.abs(counts[i]! - n * p), `token ${i}: ${counts[i]} draws, expected ${n * p}`).toBeLessThanOrEqual(
      5 * sd + 1e-9,
    );
  });
}

describe("Sampler: draws follow the filtered distribution (20 000 seeded draws)", () => {
  const N = 20_000;
  const p = [0.4, 0.25, 0.15, 0.1, 0.06, 0.04];
  // log-probabilities shifted by an arbitrary constant: softmax must not care
  const logits = Float32Array.from(p.map((x) => Math.log(x) + 3.7));
  const off = { topK: 0, topP: 1, repetitionPenalty: 1 };

  it("temperature 1: the softmax itself", () => {
    expectFrequencies(frequencies({ ...off, temperature: 1, seed: 11 }, logits, 6, N), p, N);
  });

  it("temperature 0.5: p² renormalised", () => {
    const q = p.map((x) => x * x);
    const z = q.reduce((a, b) => a + b);
    expectFrequencies(frequencies({ ...off, temperature: 0.5, seed: 12 }, logits, 6, N), q.map((x) => x / z), N);
  });

  it("top-k 3: the three largest renormalised", () => {
    const z = 0.4 + 0.25 + 0.15;
    const expected = [0.4 / z, 0.25 / z, 0.15 / z, 0, 0, 0];
    const counts = frequencies({ ...off, temperature: 1, topK: 3, seed: 13 }, logits, 6, N);
    expectFrequencies(counts, expected, N);
    expect(counts.slice(3)).toEqual([0, 0, 0]);
  });

  it("top-p 0.7: tokens whose preceding mass is < 0.7 (0.4, 0.25, 0.15) renormalised", () => {
    // descending masses before each token: 0, 0.4, 0.65, 0.8 … → keep the first three
    const z = 0.8;
    const counts = frequencies({ ...off, temperature: 1, topP: 0.7, seed: 14 }, logits, 6, N);
    expectFrequencies(counts, [0.4 / z, 0.25 / z, 0.15 / z, 0, 0, 0], N);
  });

  it("top-k 5 then top-p 0.5 over the renormalised top-5", () => {
    // after top-k 5 the mass is 0.96: 0.4/0.96 = 0.4167 < 0.5 → the second token is kept too, the third is not
    const counts = frequencies({ ...off, temperature: 1, topK: 5, topP: 0.5, seed: 15 }, logits, 6, N);
    expectFrequencies(counts, [0.4 / 0.65, 0.25 / 0.65, 0, 0, 0, 0], N);
  });

  it("same seed → same sequence; different seed → different sequence", () => {
    const flat = new Float32Array(1000); // uniform over 1000 tokens
    const run = (seed: number): number[] => {
      const s = new Sampler({ ...off, temperature: 1, seed }, 1000);
      return Array.from({ length: 50 }, () => s.next(flat, []).token);
    };
    expect(run(7)).toEqual(run(7));
    expect(run(7)).not.toEqual(run(8));
    const unseeded = (): number[] => {
      const s = new Sampler({ ...off, temperature: 1 }, 1000);
      return Array.from({ length: 50 }, () => s.next(flat, []).token);
    };
    expect(unseeded()).not.toEqual(unseeded());
  });
});

describe("Sampler: full-size vocabulary (151 936)", () => {
  const BIG = 151_936;
  // deterministic pseudo-random logits (independent of the sampler's Rng)
  const big = new Float32Array(BIG);
  let x = 12345;
  for (let i = 0; i < BIG; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    big[i] = ((x >>> 8) / 16777216) * 8 - 4; // uniform in [-4, 4)
  }
  big[777] = 9;
  big[150_000] = 8.5;

  /** HF TopPLogitsWarper by the book: full ascending sort, cumulative softmax, remove c ≤ 1 − top_p. */
  function referenceTopP(logits: Float32Array, temperature: number, topP: number): Set<number> {
    const ids = Array.from({ length: logits.length }, (_, i) => i).sort((a, b) => logits[a]! - logits[b]! || b - a);
    const max = logits[ids[ids.length - 1]!]!;
    const e = ids.map((i) => Math.exp((logits[i]! - max) / temperature));
    const z = e.reduce((a, b) => a + b);
    const kept = new Set<number>();
    let c = 0;
    ids.forEach((id, j) => {
      c += e[j]! / z;
      if (c > 1 - topP || j === ids.length - 1) kept.add(id);
    });
    return kept;
  }

  for (const [temperature, topP] of [
    [1, 0.9],
    [0.7, 0.5],
    [2, 0.3],
    [0.3, 0.5], // peaked: nucleus within the 64 highest tokens (fast path)
    [0.5, 0.999],
  ] as const) {
    it(`top-p ${topP} at temperature ${temperature} keeps the same set as a full sort`, () => {
      const d = new Sampler({ temperature, topK: 0, topP, repetitionPenalty: 1, seed: 3 }, BIG).distribution(big, []);
      const ref = referenceTopP(big, temperature, topP);
      expect(d.tokens.length).toBe(ref.size);
      expect(d.tokens.every((t) => ref.has(t))).toBe(true);
      expect(d.probs.reduce((a, b) => a + b)).toBeCloseTo(1, 9);
    });
  }

  it("top-k 50 keeps the 50 largest", () => {
    const d = new Sampler({ temperature: 1, topK: 50, topP: 1, repetitionPenalty: 1, seed: 3 }, BIG).distribution(big, []);
    const ref = Array.from(big.keys())
      .sort((a, b) => big[b]! - big[a]! || a - b)
      .slice(0, 50)
      .sort((a, b) => a - b);
    expect(d.tokens).toEqual(ref);
  });
});

describe("Rng (splitmix32 → xoshiro128**)", () => {
  it("matches an independent Python port of the reference algorithm", () => {
    for (const ref of fixture.rng) {
      const r = new Rng(ref.seed);
      expect(Array.from({ length: 8 }, () => r.nextUint32())).toEqual(ref.uint32);
      const f = new Rng(ref.seed);
      expect(Array.from({ length: 4 }, () => f.nextFloat())).toEqual(ref.floatsFromSameStream);
    }
  });

  it("floats are in [0, 1) with mean ≈ 1/2 and variance ≈ 1/12", () => {
    const r = new Rng(99);
    const n = 100_000;
    let sum = 0;
    let sq = 0;
    let outside = 0;
    for (let i = 0; i < n; i++) {
      const u = r.nextFloat();
      if (!(u >= 0 && u < 1)) outside++;
      sum += u;
      sq += u * u;
    }
    expect(outside).toBe(0);
    const mean = sum / n;
    expect(Math.abs(mean - 0.5)).toBeLessThan(5 * Math.sqrt(1 / 12 / n));
    expect(Math.abs(sq / n - mean * mean - 1 / 12)).toBeLessThan(0.002);
  });
});

describe("generation options", () => {
  it("defaults without a generation_config.json: greedy, 512 new tokens, filters off", () => {
    expect(resolveGenerationOptions(undefined)).toEqual({
      maxNewTokens: DEFAULT_MAX_NEW_TOKENS,
      temperature: 0,
      topK: 0,
      topP: 1,
      repetitionPenalty: 1,
      stop: [],
    });
    expect(DEFAULT_MAX_NEW_TOKENS).toBe(512);
  });

  it("reads generation_config.json the way HF GenerationConfig does (missing keys → HF defaults)", () => {
    for (const { json, hf } of fixture.generationConfigs) {
      const o = resolveGenerationOptions({}, json);
      expect(o.temperature).toBe(hf.do_sample ? hf.temperature : 0);
      if (hf.do_sample) {
        expect(o.topK).toBe(hf.top_k);
        expect(o.topP).toBe(hf.top_p);
      }
      expect(o.repetitionPenalty).toBe(hf.repetition_penalty);
      expect(o.maxNewTokens).toBe(hf.max_new_tokens ?? DEFAULT_MAX_NEW_TOKENS);
    }
  });

  it("explicit options override the checkpoint; temperature > 0 samples with the checkpoint's top-k/top-p", () => {
    const ck = { do_sample: false, top_p: 0.8, repetition_penalty: 1.05 };
    const o = resolveGenerationOptions({ temperature: 0.7, seed: 5, stop: ["\n\n"], topK: undefined }, ck);
    expect(o).toEqual({
      maxNewTokens: 512,
      temperature: 0.7,
      topK: 50, // HF GenerationConfig default, as model.generate(do_sample=True) would use
      topP: 0.8,
      repetitionPenalty: 1.05,
      seed: 5,
      stop: ["\n\n"],
    });
    const g = resolveGenerationOptions({ temperature: 0, repetitionPenalty: 1 }, { do_sample: true, temperature: 0.3 });
    expect([g.temperature, g.repetitionPenalty]).toEqual([0, 1]);
  });

  it("rejects malformed generation_config.json values naming the key", () => {
    expect(() => resolveGenerationOptions({}, { temperature: "hot", do_sample: true })).toThrow(/"temperature"/);
    expect(() => resolveGenerationOptions({}, [1])).toThrow(/generation_config\.json/);
  });

  const valid: GenerationOptions = { maxNewTokens: 10, temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1, stop: [] };
  const bad: [Partial<GenerationOptions>, RegExp][] = [
    [{ temperature: -0.1 }, /temperature \(--temperature\)/],
    [{ temperature: Number.NaN }, /temperature/],
    [{ topP: 0 }, /topP \(--top-p\)/],
    [{ topP: 1.01 }, /topP/],
    [{ topK: -1 }, /topK \(--top-k\)/],
    [{ topK: 2.5 }, /topK/],
    [{ repetitionPenalty: 0 }, /repetitionPenalty \(--repetition-penalty\)/],
    [{ maxNewTokens: 0 }, /maxNewTokens \(--max-new-tokens\)/],
    [{ seed: -1 }, /seed \(--seed\)/],
    [{ stop: [""] }, /stop \(--stop\)/],
    [{ logprobs: 21 }, /logprobs/],
  ];
  for (const [patch, re] of bad) {
    it(`rejects ${JSON.stringify(patch)}`, () => {
      expect(() => validateGenerationOptions({ ...valid, ...patch })).toThrow(VideolmError);
      expect(() => validateGenerationOptions({ ...valid, ...patch })).toThrow(re);
      expect(() => resolveGenerationOptions(patch)).toThrow(re);
    });
  }
  it("accepts the boundaries", () => {
    expect(() =>
      validateGenerationOptions({ ...valid, temperature: 0, topP: 1, topK: 0, maxNewTokens: 1, seed: 0, logprobs: 20 }),
    ).not.toThrow();
  });
});
