/**
 * From a byte-level grammar to token masks: which vocabulary tokens keep the output valid in the current state.
 *
 * The allowed set is found by walking the vocabulary's byte trie (token-table.ts) depth-first while stepping the
 * grammar, pruning a branch as soon as a byte is rejected — so a token spanning several grammar elements (`"},{"`)
 * or ending inside a UTF-8 character is handled like any other byte string. Masks are cached per grammar state key
 * (state keys clamp counters, json-matcher.ts KEY_CLAMP), so a state seen before costs a map lookup. Inside a JSON
 * string without a pattern only the few thousand non-plain tokens are walked; the plain ones come from a
 * precomputed per-room mask (token-table.ts).
 *
 * The end-of-sequence tokens are allowed exactly when the grammar accepts the text so far; every other special or
 * added token is never allowed.
 */
import { VideolmError } from "../../errors.js";
import type { ByteTrie, TokenTable } from "./token-table.js";

/** A byte-level recognizer with immutable states. */
export interface ByteGrammar<S> {
  readonly initial: S;
  /** The state after `b`, or undefined when `b` is not allowed. */
  step(state: S, b: number): S | undefined;
  /** Whether the text so far is complete (may end here). */
  accepting(state: S): boolean;
  /** Equal keys ⇒ the same behaviour for the next token's bytes. */
  key(state: S): string;
  /** When the state is inside a JSON string that admits every plain token of ≤ room code points: room; else -1. */
  plainStringRoom(state: S): number;
}

export interface TokenMask {
  /** Allowed ids as a bitset (bit id & 31 of word id >>> 5), end-of-sequence ids included when complete. */
  bits: Uint32Array;
  /** Allowed ids other than end-of-sequence. */
  count: number;
}

/**
 * The walked masks of one grammar, by state key (shared by every request using the same response format), bounded in
 * bytes. A mask with few tokens (most structural states) is kept as its id list, others as bitsets (V/8 bytes).
 */
export class MaskCache {
  private readonly entries = new Map<string, { ids?: Int32Array; bits?: Uint32Array; count: number; bytes: number }>();
  private bytes = 0;
  constructor(readonly maxBytes = 8 * 2 ** 20) {}

  get(key: string, words: number, into: Uint32Array): TokenMask | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (e.bits) return { bits: e.bits, count: e.count };
    into.fill(0, 0, words);
    for (const id of e.ids!) into[id >>> 5] |= 1 << (id & 31);
    return { bits: into, count: e.count };
  }

  set(key: string, mask: TokenMask): void {
    const { bits, count } = mask;
    let entry: { ids?: Int32Array; bits?: Uint32Array; count: number; bytes: number };
    if ((count + 8) * 4 < bits.byteLength) {
      const ids: number[] = [];
      for (let w = 0; w < bits.length; w++) for (let v = bits[w]; v !== 0; v &= v - 1) ids.push(w * 32 + (31 - Math.clz32(v & -v)));
      entry = { ids: Int32Array.from(ids), count, bytes: ids.length * 4 + 64 };
    } else entry = { bits, count, bytes: bits.byteLength + 64 };
    while (this.bytes + entry.bytes > this.maxBytes && this.entries.size > 0) {
      const [oldest, e] = this.entries.entries().next().value!;
      this.entries.delete(oldest);
      this.bytes -= e.bytes;
    }
    this.entries.set(key, entry);
    this.bytes += entry.bytes;
  }

  get size(): number {
    return this.entries.size;
  }
}

/** Constrained decoding for one generation: the grammar state and the mask of the next step. */
export class TokenConstraint<S = unknown> {
  private state: S;
  private readonly eos: number[];
  /** Scratch masks: combined (walk ∪ plain) results, and cached id lists expanded. */
  private readonly scratch: Uint32Array;
  private readonly expanded: Uint32Array;

  constructor(
    readonly grammar: ByteGrammar<S>,
    readonly table: TokenTable,
    eosTokenIds: readonly number[],
    readonly cache: MaskCache = new MaskCache(),
  ) {
    this.state = grammar.initial;
    this.eos = eosTokenIds.filter((id) => id >= 0 && id < table.size);
    this.scratch = new Uint32Array(table.words);
    this.expanded = new Uint32Array(table.words);
  }

  /** Whether the output so far is complete. */
  isComplete(): boolean {
    return this.grammar.accepting(this.state);
  }

  /**
   * The tokens allowed next. The returned bits are valid until the next call (they may be a shared cached array:
   * do not modify).
   */
  mask(): TokenMask {
    const g = this.grammar;
    const key = g.key(this.state);
    let walked = this.cache.get(key, this.table.words, this.expanded);
    if (!walked) {
      const room = g.plainStringRoom(this.state);
      walked = this.walk(room >= 0 ? this.table.nonPlain : this.table.full);
      this.cache.set(key, walked);
    }
    const room = g.plainStringRoom(this.state);
    if (room < 0) return walked;
    // Inside a plain string: the walked non-plain tokens plus every plain token that fits.
    const plain = this.table.plainMask(room);
    const out = this.scratch;
    let count = 0;
    for (let w = 0; w < out.length; w++) {
      const v = walked.bits[w] | plain[w];
      out[w] = v;
      count += popcount(v);
    }
    for (const id of this.eos) if (out[id >>> 5] & (1 << (id & 31))) count--;
    return { bits: out, count };
  }

  /** Advances over a chosen token; throws when the token was not allowed (a bug: the sampler masks first). */
  advance(token: number): void {
    if (this.eos.includes(token)) {
      if (!this.isComplete()) throw new VideolmError(`constrained decoding: end of sequence before the output was complete`);
      return;
    }
    const bytes = token >= 0 && token < this.table.size ? this.table.bytes[token] : undefined;
    let s: S | undefined = bytes ? this.state : undefined;
    if (bytes) for (let i = 0; i < bytes.length && s !== undefined; i++) s = this.grammar.step(s, bytes[i]);
    if (s === undefined) throw new VideolmError(`constrained decoding: token ${token} does not keep the output valid`);
    this.state = s;
  }

  private walk(trie: ByteTrie): TokenMask {
    const bits = new Uint32Array(this.table.words);
    const g = this.grammar;
    let count = 0;
    const sameBytes = trie.sameBytes;
    const { byte, nextSibling, hasChild, token } = trie;
    // Depth-first over the trie; `visit` receives the state after the bytes of `node`'s path.
    const visit = (first: number, state: S): void => {
      for (let c = first; c !== -1; c = nextSibling[c]) {
        const next = g.step(state, byte[c]);
        if (next === undefined) continue;
        for (let id = token[c]; id !== -1; id = sameBytes[id]) {
          bits[id >>> 5] |= 1 << (id & 31);
          count++;
        }
        if (hasChild[c]) visit(c + 1, next);
      }
    };
    if (trie.hasChild[0]) visit(1, this.state);
    if (g.accepting(this.state)) for (const id of this.eos) bits[id >>> 5] |= 1 << (id & 31);
    return { bits, count };
  }
}

export function popcount(v: number): number {
  v = v - ((v >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (((v + (v >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}

export function hasBit(bits: Uint32Array, id: number): boolean {
  return (bits[id >>> 5] & (1 << (id & 31))) !== 0;
}
