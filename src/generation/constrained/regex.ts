/**
 * A regular-expression subset compiled to a byte-level automaton (UTF-8), for constrained decoding.
 *
 * Syntax (JavaScript's; characters are code points, as with the u flag): literals; escapes `\d \D \s \S \w \W \n \r \t \f \v \0 \xHH \uHHHH` and
 * escaped punctuation; classes `[...]` / `[^...]` with ranges and the class escapes; `.` (any character except the
 * line terminators \n \r U+2028 U+2029, as in JS); groups `(...)`, `(?:...)`, `(?<name>...)`; alternation `|`;
 * quantifiers `? * + {m} {m,} {m,n}` (a lazy `?` suffix is accepted: it does not change the language).
 * Refused with a message: lookaround, backreferences, word boundaries, Unicode property escapes, flags, anchors
 * anywhere but the very start (`^`) and end (`$`).
 *
 * The pattern always matches the *whole* text (a leading `^` / trailing `$` is accepted and changes nothing);
 * JSON Schema's unanchored `pattern` search is built by the caller (json-schema.ts) by wrapping the AST.
 *
 * Compilation: AST → Thompson NFA over bytes (each character class becomes UTF-8 byte-range sequences, utf8.ts) →
 * a DFA built lazily by subset construction (one DFA state per reachable set of live NFA states, transitions filled
 * on first use). NFA states from which no match is reachable are dropped from every set, so the empty set — the dead
 * state — is reached as soon as a prefix cannot be completed: every live DFA state can still reach a match.
 * References: Russ Cox, "Regular Expression Matching Can Be Simple And Fast" (Thompson construction) and
 * "Regular Expression Matching: the Virtual Machine Approach"; RE2's lazy DFA (re2/dfa.cc).
 */
import { VideolmError } from "../../errors.js";
import { MAX_CODE_POINT, utf8Sequences } from "./utf8.js";

export type RegexNode =
  | { kind: "chars"; ranges: [number, number][] } // sorted, merged code point ranges (empty = matches nothing)
  | { kind: "concat"; parts: RegexNode[] }
  | { kind: "alt"; options: RegexNode[] }
  | { kind: "repeat"; node: RegexNode; min: number; max: number }; // max = Infinity: unbounded

/** Limits that keep hostile patterns cheap. */
export const REGEX_LIMITS = {
  patternChars: 4096,
  /** Largest m / n in {m,n}. */
  repeat: 1000,
  /** NFA states after expanding repetitions. */
  nfaStates: 200_000,
  /** DFA states built lazily per automaton (each holds a 256-entry transition row). */
  dfaStates: 20_000,
};

const DIGIT: [number, number][] = [[0x30, 0x39]];
const WORD: [number, number][] = [
  [0x30, 0x39],
  [0x41, 0x5a],
  [0x5f, 0x5f],
  [0x61, 0x7a],
];
// JS \s: WhiteSpace + LineTerminator (ECMA-262 CharacterClassEscape).
const SPACE: [number, number][] = normalize([
  [0x09, 0x0d],
  [0x20, 0x20],
  [0xa0, 0xa0],
  [0x1680, 0x1680],
  [0x2000, 0x200a],
  [0x2028, 0x2029],
  [0x202f, 0x202f],
  [0x205f, 0x205f],
  [0x3000, 0x3000],
  [0xfeff, 0xfeff],
]);
const LINE_TERMINATORS: [number, number][] = [
  [0x0a, 0x0a],
  [0x0d, 0x0d],
  [0x2028, 0x2029],
];

export function normalize(ranges: [number, number][]): [number, number][] {
  const sorted = ranges.filter(([a, b]) => a <= b).sort((x, y) => x[0] - y[0]);
  const out: [number, number][] = [];
  for (const [a, b] of sorted) {
    const last = out[out.length - 1];
    if (last && a <= last[1] + 1) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}

export function complement(ranges: [number, number][]): [number, number][] {
  const out: [number, number][] = [];
  let next = 0;
  for (const [a, b] of normalize(ranges)) {
    if (a > next) out.push([next, a - 1]);
    next = b + 1;
  }
  if (next <= MAX_CODE_POINT) out.push([next, MAX_CODE_POINT]);
  return out;
}

const chars = (ranges: [number, number][]): RegexNode => ({ kind: "chars", ranges: normalize(ranges) });
export const literalNode = (text: string): RegexNode => ({ kind: "concat", parts: [...text].map((c) => chars([[c.codePointAt(0)!, c.codePointAt(0)!]])) });
export const ANY_CHAR: RegexNode = chars([[0, MAX_CODE_POINT]]);

export interface ParsedRegex {
  node: RegexNode;
  /** Whether the pattern began with `^` / ended with `$` (JSON Schema patterns are unanchored without them). */
  anchoredStart: boolean;
  anchoredEnd: boolean;
}

/** Parses `pattern` (see the file comment for the subset); throws VideolmError naming what is unsupported. */
export function parseRegex(pattern: string, what = "regex"): ParsedRegex {
  if (typeof pattern !== "string") throw new VideolmError(`${what}: the pattern must be a string`);
  if (pattern.length > REGEX_LIMITS.patternChars) throw new VideolmError(`${what}: the pattern is longer than ${REGEX_LIMITS.patternChars} characters`);
  return new Parser(pattern, what).parse();
}

class Parser {
  private readonly cps: number[];
  private pos = 0;
  private topLevelAlternatives = 1;

  constructor(
    readonly pattern: string,
    readonly what: string,
  ) {
    this.cps = [...pattern].map((c) => c.codePointAt(0)!);
  }

  private fail(message: string): never {
    throw new VideolmError(`${this.what} ${JSON.stringify(this.pattern)}: ${message} (at character ${this.pos + 1})`);
  }

  private peek(offset = 0): number | undefined {
    return this.cps[this.pos + offset];
  }

  private is(ch: string, offset = 0): boolean {
    return this.cps[this.pos + offset] === ch.codePointAt(0);
  }

  parse(): ParsedRegex {
    let end = this.cps.length;
    const anchoredStart = this.is("^");
    if (anchoredStart) this.pos = 1;
    // A trailing `$` is an anchor unless it is escaped (an odd number of backslashes before it).
    let anchoredEnd = false;
    if (end > this.pos && this.cps[end - 1] === 0x24) {
      let slashes = 0;
      while (end - 2 - slashes >= this.pos && this.cps[end - 2 - slashes] === 0x5c) slashes++;
      if (slashes % 2 === 0) {
        anchoredEnd = true;
        end--;
      }
    }
    this.cps.length = end;
    const node = this.alternation(true);
    if (this.pos < this.cps.length) this.fail(this.is(")") ? "unmatched ')'" : "unexpected character");
    // In `^a|b$` each anchor binds to one alternative only; refuse rather than anchor the whole pattern.
    if ((anchoredStart || anchoredEnd) && this.topLevelAlternatives > 1) this.fail("anchors next to a top-level '|' are ambiguous; wrap the alternatives in a group: ^(?:a|b)$");
    return { node, anchoredStart, anchoredEnd };
  }

  private alternation(top = false): RegexNode {
    const options = [this.sequence()];
    while (this.is("|")) {
      this.pos++;
      options.push(this.sequence());
    }
    if (top) this.topLevelAlternatives = options.length;
    return options.length === 1 ? options[0] : { kind: "alt", options };
  }

  private sequence(): RegexNode {
    const parts: RegexNode[] = [];
    while (this.pos < this.cps.length && !this.is("|") && !this.is(")")) parts.push(this.quantified());
    return parts.length === 1 ? parts[0] : { kind: "concat", parts };
  }

  private quantified(): RegexNode {
    let node = this.atom();
    for (;;) {
      let min: number;
      let max: number;
      if (this.is("*")) [min, max] = [0, Infinity];
      else if (this.is("+")) [min, max] = [1, Infinity];
      else if (this.is("?")) [min, max] = [0, 1];
      else if (this.is("{")) {
        const q = this.braces();
        if (!q) this.fail("'{' must start a quantifier {m}, {m,} or {m,n}; escape it as \\{ for a literal brace");
        [min, max] = q;
        node = { kind: "repeat", node, min, max };
        if (this.is("?")) this.pos++; // lazy: same language
        if (this.is("*") || this.is("+") || this.is("?") || this.is("{")) this.fail("nothing to repeat");
        return node;
      } else return node;
      this.pos++;
      node = { kind: "repeat", node, min, max };
      if (this.is("?")) this.pos++; // lazy
      if (this.is("*") || this.is("+") || this.is("?") || this.is("{")) this.fail("nothing to repeat (possessive and doubled quantifiers are not supported)");
      return node;
    }
  }

  /** `{m}`, `{m,}`, `{m,n}` at pos; returns undefined (pos unchanged) when it is not a quantifier. */
  private braces(): [number, number] | undefined {
    const m = /^\{(\d+)(,(\d*))?\}/.exec(String.fromCodePoint(...this.cps.slice(this.pos, this.pos + 24)));
    if (!m) return undefined;
    const min = Number(m[1]);
    const max = m[2] === undefined ? min : m[3] === "" ? Infinity : Number(m[3]);
    if (min > REGEX_LIMITS.repeat || (max !== Infinity && max > REGEX_LIMITS.repeat)) this.fail(`repetition counts above ${REGEX_LIMITS.repeat} are not supported`);
    if (max < min) this.fail(`numbers out of order in {${min},${max}}`);
    this.pos += m[0].length;
    return [min, max];
  }

  private atom(): RegexNode {
    const c = this.peek()!;
    const ch = String.fromCodePoint(c);
    switch (ch) {
      case "(": {
        this.pos++;
        if (this.is("?")) {
          if (this.is(":", 1)) this.pos += 2;
          else if (this.is("<", 1) && !this.is("=", 2) && !this.is("!", 2)) {
            const close = this.cps.indexOf(0x3e, this.pos);
            if (close < 0) this.fail("unterminated group name");
            this.pos = close + 1;
          } else this.fail("lookahead, lookbehind and inline flags are not supported");
        }
        const inner = this.alternation();
        if (!this.is(")")) this.fail("missing ')'");
        this.pos++;
        return inner;
      }
      case "[":
        return this.charClass();
      case ".":
        this.pos++;
        return chars(complement(LINE_TERMINATORS));
      case "\\":
        return chars(this.escape(false));
      case "^":
      case "$":
        return this.fail(`the anchor '${ch}' is supported only at the start ('^') or end ('$') of the whole pattern`);
      case "*":
      case "+":
      case "?":
        return this.fail("nothing to repeat");
      case "{":
        return this.fail("'{' must follow something to repeat; escape it as \\{ for a literal brace");
      case ")":
        return this.fail("unmatched ')'");
      default:
        this.pos++;
        return chars([[c, c]]);
    }
  }

  /** An escape at pos (pos on the backslash); returns its code point ranges. */
  private escape(inClass: boolean): [number, number][] {
    this.pos++;
    const c = this.peek();
    if (c === undefined) this.fail("the pattern ends with a lone backslash");
    const ch = String.fromCodePoint(c);
    this.pos++;
    const single = (cp: number): [number, number][] => [[cp, cp]];
    switch (ch) {
      case "d":
        return DIGIT;
      case "D":
        return complement(DIGIT);
      case "w":
        return WORD;
      case "W":
        return complement(WORD);
      case "s":
        return SPACE;
      case "S":
        return complement(SPACE);
      case "n":
        return single(0x0a);
      case "r":
        return single(0x0d);
      case "t":
        return single(0x09);
      case "f":
        return single(0x0c);
      case "v":
        return single(0x0b);
      case "0":
        if (this.peek() !== undefined && this.peek()! >= 0x30 && this.peek()! <= 0x39) this.fail("octal escapes are not supported");
        return single(0);
      case "b":
        if (inClass) return single(0x08);
        return this.fail("word boundaries (\\b) are not supported");
      case "B":
        return this.fail("word boundaries (\\B) are not supported");
      case "x":
        return single(this.hex(2));
      case "u":
        if (this.is("{")) this.fail("\\u{...} needs the u flag, which is not supported; use \\uHHHH");
        return single(this.hex(4));
      case "p":
      case "P":
        return this.fail("Unicode property escapes (\\p{...}) are not supported");
      case "k":
        return this.fail("named backreferences are not supported");
      case "c":
        return this.fail("control escapes (\\cX) are not supported");
      default:
        if (c >= 0x31 && c <= 0x39) this.fail("backreferences are not supported");
        if ((c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)) this.fail(`unknown escape \\${ch}`);
        return single(c); // escaped punctuation or any other character stands for itself
    }
  }

  private hex(n: number): number {
    const digits = String.fromCodePoint(...this.cps.slice(this.pos, this.pos + n));
    if (digits.length !== n || !/^[0-9a-fA-F]+$/.test(digits)) this.fail(`expected ${n} hex digits`);
    this.pos += n;
    return parseInt(digits, 16);
  }

  private charClass(): RegexNode {
    this.pos++; // [
    const negated = this.is("^");
    if (negated) this.pos++;
    const ranges: [number, number][] = [];
    while (!this.is("]")) {
      if (this.pos >= this.cps.length) this.fail("missing ']'");
      const lo = this.classAtom();
      if (this.is("-") && !this.is("]", 1) && this.pos + 1 < this.cps.length) {
        this.pos++;
        const hi = this.classAtom();
        if (lo.length !== 1 || hi.length !== 1 || lo[0][0] !== lo[0][1] || hi[0][0] !== hi[0][1]) this.fail("a class escape cannot be a range end");
        if (hi[0][0] < lo[0][0]) this.fail("range out of order in character class");
        ranges.push([lo[0][0], hi[0][0]]);
      } else ranges.push(...lo);
    }
    this.pos++; // ]
    return chars(negated ? complement(ranges) : ranges);
  }

  private classAtom(): [number, number][] {
    if (this.is("\\")) return this.escape(true);
    const c = this.peek()!;
    this.pos++;
    return [[c, c]];
  }
}

// ------------------------------------------------------------------------------------------------------------------
// Thompson NFA over bytes.

/** NFA: per state either byte-range edges or ε-edges; state `accept` is the single accepting state. */
export class ByteNfa {
  /** Byte-range edges [lo, hi, target] per state. */
  readonly edges: number[][] = [];
  /** ε-edges per state. */
  readonly eps: number[][] = [];
  accept = -1;

  newState(): number {
    if (this.edges.length >= REGEX_LIMITS.nfaStates) throw new VideolmError(`the pattern is too large (more than ${REGEX_LIMITS.nfaStates} automaton states after expanding repetitions)`);
    this.edges.push([]);
    this.eps.push([]);
    return this.edges.length - 1;
  }

  /** Builds the states matching `node` followed by state `next`; returns the entry state. */
  build(node: RegexNode, next: number): number {
    switch (node.kind) {
      case "chars": {
        const start = this.newState();
        for (const [lo, hi] of node.ranges) {
          for (const seq of utf8Sequences(lo, hi)) {
            // start -seq[0]-> s1 -seq[1]-> ... -> next
            let from = start;
            for (let i = 0; i < seq.length; i++) {
              const to = i === seq.length - 1 ? next : this.newState();
              this.edges[from].push(seq[i][0], seq[i][1], to);
              from = to;
            }
          }
        }
        return start;
      }
      case "concat": {
        let s = next;
        for (let i = node.parts.length - 1; i >= 0; i--) s = this.build(node.parts[i], s);
        return s;
      }
      case "alt": {
        const start = this.newState();
        for (const o of node.options) this.eps[start].push(this.build(o, next));
        return start;
      }
      case "repeat": {
        let tail: number;
        if (node.max === Infinity) {
          const loop = this.newState();
          this.eps[loop].push(this.build(node.node, loop), next);
          tail = loop;
        } else {
          tail = next;
          for (let i = node.min; i < node.max; i++) {
            const opt = this.newState();
            this.eps[opt].push(this.build(node.node, tail), next);
            tail = opt;
          }
        }
        for (let i = 0; i < node.min; i++) tail = this.build(node.node, tail);
        return tail;
      }
    }
  }
}

/**
 * A DFA over bytes built lazily from a ByteNfa. States are small integers; `DEAD` (-1) is the dead state. Every other
 * state can still reach a match (non-live NFA states are dropped), so "not dead" means "still completable".
 */
export class LazyDfa {
  static readonly DEAD = -1;
  readonly start: number;
  private readonly nfa: ByteNfa;
  private readonly live: Uint8Array;
  private readonly sets: Int32Array[] = [];
  private readonly accepting: boolean[] = [];
  /** 256 entries per state: -2 = not computed, -1 = dead, else the target state. */
  private trans = new Int32Array(0);
  private readonly index = new Map<string, number>();

  constructor(nfa: ByteNfa, start: number) {
    this.nfa = nfa;
    this.live = liveStates(nfa);
    this.start = this.stateOf(this.closure([start]));
  }

  /** Compiles a parsed pattern matching the whole text. */
  static fromNode(node: RegexNode): LazyDfa {
    const nfa = new ByteNfa();
    nfa.accept = nfa.newState();
    const start = nfa.build(node, nfa.accept);
    return new LazyDfa(nfa, start);
  }

  get stateCount(): number {
    return this.sets.length;
  }

  isAccepting(state: number): boolean {
    return state >= 0 && this.accepting[state];
  }

  step(state: number, byte: number): number {
    const k = state * 256 + byte;
    const t = this.trans[k];
    if (t !== -2) return t;
    return this.compute(state, byte);
  }

  /** Whether any byte leads to a live state (i.e. the text may continue). */
  canContinue(state: number): boolean {
    for (let b = 0; b < 256; b++) if (this.step(state, b) >= 0) return true;
    return false;
  }

  private compute(state: number, byte: number): number {
    const targets: number[] = [];
    for (const s of this.sets[state]) {
      const e = this.nfa.edges[s];
      for (let i = 0; i < e.length; i += 3) if (byte >= e[i] && byte <= e[i + 1]) targets.push(e[i + 2]);
    }
    const set = this.closure(targets);
    const next = set.length === 0 ? LazyDfa.DEAD : this.stateOf(set);
    this.trans[state * 256 + byte] = next;
    return next;
  }

  /** ε-closure of `seeds`, live states only, sorted. */
  private closure(seeds: number[]): Int32Array {
    const seen = new Set<number>();
    const stack = seeds.filter((s) => this.live[s]);
    for (const s of stack) seen.add(s);
    while (stack.length > 0) {
      const s = stack.pop()!;
      for (const t of this.nfa.eps[s]) {
        if (!seen.has(t) && this.live[t]) {
          seen.add(t);
          stack.push(t);
        }
      }
    }
    // Keep only states with byte edges, plus the accept state: ε-only states carry no information after closure.
    const kept = [...seen].filter((s) => this.nfa.edges[s].length > 0 || s === this.nfa.accept);
    return Int32Array.from(kept.sort((a, b) => a - b));
  }

  private stateOf(set: Int32Array): number {
    const key = set.join(",");
    const hit = this.index.get(key);
    if (hit !== undefined) return hit;
    const id = this.sets.length;
    if (id >= REGEX_LIMITS.dfaStates) throw new VideolmError(`the pattern needs more than ${REGEX_LIMITS.dfaStates} automaton states; simplify it`);
    this.index.set(key, id);
    this.sets.push(set);
    this.accepting.push(set.includes(this.nfa.accept));
    if (this.trans.length < (id + 1) * 256) {
      const grown = new Int32Array(Math.max(256, this.trans.length * 2, (id + 1) * 256)).fill(-2);
      grown.set(this.trans);
      this.trans = grown;
    }
    return id;
  }
}

/** NFA states from which the accepting state is reachable (reverse reachability). */
function liveStates(nfa: ByteNfa): Uint8Array {
  const n = nfa.edges.length;
  const reverse: number[][] = Array.from({ length: n }, () => []);
  for (let s = 0; s < n; s++) {
    const e = nfa.edges[s];
    for (let i = 0; i < e.length; i += 3) reverse[e[i + 2]].push(s);
    for (const t of nfa.eps[s]) reverse[t].push(s);
  }
  const live = new Uint8Array(n);
  const stack = [nfa.accept];
  live[nfa.accept] = 1;
  while (stack.length > 0) {
    const s = stack.pop()!;
    for (const p of reverse[s]) {
      if (!live[p]) {
        live[p] = 1;
        stack.push(p);
      }
    }
  }
  return live;
}

/** Pattern for {type:"regex"}: the whole output matches (`^`/`$` optional). */
export function compileFullMatch(pattern: string, what = "regex"): LazyDfa {
  return LazyDfa.fromNode(parseRegex(pattern, what).node);
}

/**
 * JSON Schema `pattern` semantics (ECMA-262 `RegExp.prototype.test`, unanchored search): without `^` any text may
 * come before the match, without `$` any text may follow it.
 */
export function compileSearch(pattern: string, what = "pattern"): LazyDfa {
  const { node, anchoredStart, anchoredEnd } = parseRegex(pattern, what);
  const anything: RegexNode = { kind: "repeat", node: ANY_CHAR, min: 0, max: Infinity };
  const parts = [...(anchoredStart ? [] : [anything]), node, ...(anchoredEnd ? [] : [anything])];
  return LazyDfa.fromNode({ kind: "concat", parts });
}

/** Whether the DFA matches the whole of `text` (for tests and checks). */
export function dfaMatches(dfa: LazyDfa, text: string): boolean {
  let s = dfa.start;
  for (const b of Buffer.from(text, "utf8")) {
    s = dfa.step(s, b);
    if (s < 0) return false;
  }
  return dfa.isAccepting(s);
}
