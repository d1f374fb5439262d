/**
 * The token-count lower bound (src/server/prompt-bound.ts) against the real Qwen tokenizer: never above the true
 * count, on ordinary and hostile text, and close enough on prose to refuse a multi-MiB prompt before tokenizing it.
 */
import { readFileSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { PromptBound } from "../src/server/prompt-bound.js";
import { TextTokenizer } from "../src/text/tokenizer.js";
import { qwenTokenizerJsonPath } from "../src/testing/tiny-checkpoint.js";

let tok: TextTokenizer;
let bound: PromptBound;
beforeAll(async () => {
  const json = JSON.parse(readFileSync(qwenTokenizerJsonPath(), "utf8"));
  tok = TextTokenizer.fromJson(json, {});
  bound = PromptBound.fromTokenizerJson(json);
});

/** A deterministic pseudo-random generator (tests must not depend on Math.random). */
function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function randomText(seed: number, n: number, alphabet: string[]): string {
  const r = rng(seed);
  let out = "";
  for (let i = 0; i < n; i++) out += alphabet[Math.floor(r() * alphabet.length)];
  return out;
}

const README = readFileSync(new URL("../README.md", import.meta.url), "utf8");
const ALPHABETS: Record<string, string[]> = {
  ascii: [...Array(95)].map((_, i) => String.fromCharCode(32 + i)),
  words: ["the ", "cat", " sat", "'s", "'S", "don't ", "\n", "\r\n", "  ", "\t", "12", "3.5", "<|im_start|>", "<|video_pad|>", "é", "e\u0301", "ﬁ", "ＡＢ", "日本語", "😀", "👩‍👩‍👧", "\u0928\u093f", "-->", "...", " ?!", "k\u212a"],
  unicode: ["a", "Z", "ß", "ı", "İ", "ǅ", "\u0301", "\u200d", "\u00a0", "\u2028", "\u3000", "٣", "Ⅻ", "½", "가", "\u1100\u1161\u11a8", "𝔘", "\ud83d", "\udc00", "\u0000", "\u007f"],
};

describe("PromptBound on the Qwen tokenizer", () => {
  it("recognises the Qwen2 pre-tokenizer, the longest token (128 spaces) and the longest letter token", () => {
    expect(bound.mode).toBe("segments");
    expect(bound.maxTokenBytes).toBe(128);
    expect(bound.maxLetterTokenBytes).toBe(42); // ".translatesAutoresizingMaskIntoConstraints"
  });

  const cases: [string, () => string][] = [
    ["README prose", () => README],
    ["a run of one letter", () => "a".repeat(50_000)],
    ["runs of letters after punctuation", () => "!!!!!abc".repeat(2000) + ".x".repeat(3000) + "'s".repeat(3000) + " " + "z".repeat(20_000)],
    ["a run of CJK letters", () => "日本語の文章".repeat(5000)],
    ["a run of long words", () => "translatesAutoresizingMaskIntoConstraints ".repeat(2000) + ".translatesAutoresizingMaskIntoConstraints".repeat(1000)],
    ["a run of accented letters (decomposed)", () => "e\u0301".repeat(20_000)],
    ["a run of spaces", () => " ".repeat(50_000)],
    ["newlines and spaces", () => " \n".repeat(10_000) + "\n".repeat(5000) + "\t \t".repeat(3000)],
    ["digits", () => "1234567890".repeat(3000)],
    ["chat markup", () => "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n".repeat(500)],
    ...[1, 2, 3, 4, 5].flatMap((seed): [string, () => string][] => [
      [`random ASCII #${seed}`, () => randomText(seed, 20_000, ALPHABETS.ascii)],
      [`random words #${seed}`, () => randomText(seed, 5000, ALPHABETS.words)],
      [`random unicode #${seed}`, () => randomText(seed, 20_000, ALPHABETS.unicode)],
    ]),
  ];
  for (const [name, make] of cases) {
    it(`never exceeds the true count: ${name}`, () => {
      const text = make();
      const actual = tok.encode(text).length;
      const b = bound.lowerBound(text);
      expect(b).toBeLessThanOrEqual(actual);
      expect(b).toBeGreaterThan(0);
    });
  }

  it("is within a factor 2 of the true count on prose", () => {
    const actual = tok.encode(README).length;
    expect(bound.lowerBound(README)).toBeGreaterThan(actual / 2);
  });

  it("refuses a 4 MiB run of one letter by the letter-token bound", () => {
    expect(bound.lowerBound("a".repeat(4 * 1024 ** 2), 32768)).toBeGreaterThan(32768);
  });

  it("stops counting past the limit, fast, on a 4 MiB prompt", () => {
    const text = README.repeat(Math.ceil((4 * 1024 ** 2) / README.length));
    const t0 = performance.now();
    const b = bound.lowerBound(text, 32768);
    expect(b).toBeGreaterThan(32768);
    expect(performance.now() - t0).toBeLessThan(1000);
  });

  it("gives no bound for tokenizers it cannot reason about", () => {
    const json = JSON.parse(readFileSync(qwenTokenizerJsonPath(), "utf8"));
    expect(PromptBound.fromTokenizerJson({ ...json, normalizer: { type: "Lowercase" } }).lowerBound("x".repeat(1000))).toBe(0);
    expect(PromptBound.fromTokenizerJson({ ...json, model: { ...json.model, type: "WordPiece" } }).lowerBound("x".repeat(1000))).toBe(0);
    expect(PromptBound.fromTokenizerJson({ ...json, added_tokens: [{ content: "<x>", lstrip: true }] }).lowerBound("x".repeat(1000))).toBe(0);
    const bytesOnly = PromptBound.fromTokenizerJson({ ...json, pre_tokenizer: { type: "ByteLevel", use_regex: true } });
    expect(bytesOnly.mode).toBe("bytes");
    expect(bytesOnly.lowerBound("x".repeat(1280))).toBe(10);
  });
});
