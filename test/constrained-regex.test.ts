/**
 * The regex subset of constrained decoding (src/generation/constrained/regex.ts): hand-written accept/reject tables,
 * checked against the byte-level lazy DFA, plus prefix liveness (a prefix is alive exactly when some completion
 * matches) and the refusals.
 */
import { describe, expect, it } from "vitest";
import { VideolmError } from "../src/errors.js";
import { compileFullMatch, compileSearch, dfaMatches, LazyDfa } from "../src/generation/constrained/regex.js";
import { utf8Sequences } from "../src/generation/constrained/utf8.js";

const table: [string, string[], string[]][] = [
  ["from \\d+\\.\\d to \\d+\\.\\d seconds", ["from 2.0 to 4.5 seconds", "from 12.0 to 104.5 seconds"], ["from 2 to 4.5 seconds", "from 2.0 to 4.5 second", "from 2.0 to 4.55 seconds", "from .0 to 4.5 seconds", " from 2.0 to 4.5 seconds"]],
  ["abc", ["abc"], ["", "ab", "abcd", "xabc"]],
  ["a|bc|", ["a", "bc", ""], ["b", "abc"]],
  ["(ab)+c?", ["ab", "abab", "ababc"], ["", "a", "abc c", "c"]],
  ["(?:x|y){2,3}", ["xy", "yyx"], ["x", "xyxy"]],
  ["a{3}", ["aaa"], ["aa", "aaaa"]],
  ["a{2,}", ["aa", "aaaaaaa"], ["a", ""]],
  ["a*?b", ["b", "aab"], ["a", "ba"]],
  ["[a-c0-2_]+", ["a", "cab_012"], ["d", "3", "", "A"]],
  ["[^a-c]", ["d", "é", "😀", "\n"], ["a", "b", "", "dd"]],
  ["[-a]", ["-", "a"], ["b"]],
  ["[a-]", ["-", "a"], ["b"]],
  ["\\w\\W\\s\\S", ["a! x", "_-\tz", "9 \u3000é"], ["a a a", "!! x"]],
  ["\\D\\d", ["x1"], ["11", "x"]],
  [".", ["a", "é", "😀", "\u00a0"], ["\n", "\r", "\u2028", "ab", ""]],
  ["[\\d.]+", ["1.5", "..."], ["1,5"]],
  ["\\u00e9\\x41", ["éA"], ["e\u0301A"]],
  ["^(?:yes|no)$", ["yes", "no"], ["yesno", "maybe"]],
  ["\\$\\^\\.\\*\\(\\[\\{", ["$^.*([{"], ["$"]],
  ["\\\\$", ["\\"], ["\\\\"]],
  ["[^]", ["a", "\n"], [""]],
  ["[]", [], ["", "a"]],
  ["(?<n>ab)c", ["abc"], ["ab"]],
  ["é{2}", ["éé"], ["é"]],
  ["[α-ω]+", ["αβγ", "ω"], ["a", "Ω"]],
  ["[\\u0800-\\uffff]", ["\u0800", "中", "\uffff"], ["\u07ff", "😀"]],
];

describe("regex → byte DFA (full match)", () => {
  for (const [pattern, accept, reject] of table) {
    it(pattern, () => {
      const dfa = compileFullMatch(pattern);
      for (const t of accept) expect(dfaMatches(dfa, t), `${JSON.stringify(t)} should match`).toBe(true);
      for (const t of reject) expect(dfaMatches(dfa, t), `${JSON.stringify(t)} should not match`).toBe(false);
      // Agrees with JavaScript's own engine, anchored; with the u flag, as characters are code points here.
      const js = new RegExp(`^(?:${pattern.replace(/^\^/, "").replace(/(?<!\\)\$$/, "")})$`, "u");
      for (const t of [...accept, ...reject]) expect(dfaMatches(dfa, t), `${JSON.stringify(t)} vs JS`).toBe(js.test(t));
    });
  }

  it("a prefix is alive exactly when some completion matches (no dead ends)", () => {
    const dfa = compileFullMatch("ab(c|d{2})e|xy[]"); // "x" leads nowhere: `[]` matches nothing
    const alive = (text: string) => {
      let s = dfa.start;
      for (const b of Buffer.from(text)) if ((s = dfa.step(s, b)) < 0) return false;
      return true;
    };
    for (const p of ["", "a", "ab", "abc", "abd", "abdd", "abdde", "abce"]) expect(alive(p), p).toBe(true);
    for (const p of ["b", "abe", "abde", "abddd", "abcee", "x"]) expect(alive(p), p).toBe(false);
  });

  it("partial UTF-8: a multi-byte character is followed byte by byte and invalid continuations are dead", () => {
    const dfa = compileFullMatch(".");
    const euro = Buffer.from("€"); // e2 82 ac
    let s = dfa.step(dfa.start, euro[0]);
    expect(s).toBeGreaterThanOrEqual(0);
    expect(dfa.isAccepting(s)).toBe(false);
    expect(dfa.step(s, 0x41)).toBe(LazyDfa.DEAD); // not a continuation byte
    s = dfa.step(dfa.step(s, euro[1]), euro[2]);
    expect(dfa.isAccepting(s)).toBe(true);
    expect(dfa.step(dfa.start, 0xc0)).toBe(LazyDfa.DEAD); // overlong lead byte
    expect(dfa.step(dfa.step(dfa.start, 0xed), 0xa0)).toBe(LazyDfa.DEAD); // surrogate D800
    expect(dfa.step(dfa.start, 0xf5)).toBe(LazyDfa.DEAD); // above U+10FFFF
  });
});

describe("JSON Schema pattern semantics (unanchored search)", () => {
  const cases: [string, string[], string[]][] = [
    ["\\d", ["1", "a1b", "x9"], ["", "abc"]],
    ["^ab", ["ab", "abxyz"], ["xab"]],
    ["ab$", ["ab", "xxab"], ["abx"]],
    ["^[a-z]+$", ["abc"], ["ab1", ""]],
  ];
  for (const [pattern, accept, reject] of cases) {
    it(pattern, () => {
      const dfa = compileSearch(pattern);
      const js = new RegExp(pattern, "u");
      for (const t of accept) expect(dfaMatches(dfa, t)).toBe(true);
      for (const t of reject) expect(dfaMatches(dfa, t)).toBe(false);
      for (const t of [...accept, ...reject]) expect(dfaMatches(dfa, t)).toBe(js.test(t));
    });
  }
});

describe("refusals name the problem", () => {
  const refused: [string, RegExp][] = [
    ["(?=a)", /lookahead/],
    ["(?<=a)b", /lookbehind|lookahead/],
    ["(a)\\1", /backreference/],
    ["\\bword", /word boundar/],
    ["\\p{L}", /Unicode property/],
    ["a^b", /anchor/],
    ["^a|b$", /top-level '\|'/],
    ["*a", /nothing to repeat/],
    ["a**", /nothing to repeat/],
    ["a{2000}", /above 1000/],
    ["a{3,2}", /out of order/],
    ["(ab", /missing '\)'/],
    ["ab)", /unmatched/],
    ["[ab", /missing '\]'/],
    ["[z-a]", /out of order/],
    ["a{", /quantifier/],
    ["\\", /lone backslash/],
    ["\\q", /unknown escape/],
    ["(.{1000}){1000}", /too large/],
  ];
  for (const [pattern, message] of refused) {
    it(pattern, () => {
      let error: unknown;
      try {
        compileFullMatch(pattern);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(VideolmError);
      expect((error as Error).message).toMatch(message);
    });
  }
});

describe("utf8Sequences", () => {
  it("encodes exactly the code points of a range, skipping surrogates", () => {
    for (const [lo, hi] of [
      [0, 0x10ffff],
      [0x7f, 0x801],
      [0xd7ff, 0xe000],
      [0x1f600, 0x1f64f],
      [0x3b1, 0x3c9],
    ]) {
      const seqs = utf8Sequences(lo, hi);
      const matches = (bytes: Buffer) => seqs.some((s) => s.length === bytes.length && s.every(([a, b], i) => bytes[i] >= a && bytes[i] <= b));
      // Every code point in a sample inside the range matches; every sampled one outside (or a surrogate) does not.
      for (let k = 0; k < 2000; k++) {
        const cp = Math.floor((k / 2000) * 0x110000);
        if (cp >= 0xd800 && cp <= 0xdfff) continue;
        expect(matches(Buffer.from(String.fromCodePoint(cp))), cp.toString(16)).toBe(cp >= lo && cp <= hi);
      }
      for (const cp of [lo, hi, lo - 1, hi + 1]) {
        if (cp < 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) continue;
        expect(matches(Buffer.from(String.fromCodePoint(cp))), cp.toString(16)).toBe(cp >= lo && cp <= hi);
      }
    }
  });
});
