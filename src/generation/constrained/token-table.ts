/**
 * The vocabulary as byte strings, arranged for constrained decoding: a byte trie of every token that may appear in
 * constrained text, and a second trie of the "non-plain" tokens (see below), plus bitset helpers.
 *
 * Byte-level BPE (GPT-2 / Qwen): each vocabulary entry spells one byte per character through GPT-2's
 * `bytes_to_unicode` alphabet (openai/gpt-2 `src/encoder.py`; transformers `models/gpt2/tokenization_gpt2.py`);
 * inverting it gives a token's exact bytes, also for a token holding part of a multi-byte character. Added tokens
 * (`<|im_end|>`, `<|video_pad|>`, `<think>`, …) are never part of constrained text: they are left out (the end of
 * sequence is handled separately, token-mask.ts). Ids without a token (LM-head padding) are left out too, and so
 * are tokens longer than KEY_CLAMP − 1 bytes (none in Qwen's vocabulary, whose longest is 128 bytes).
 *
 * "Plain" tokens are valid, complete UTF-8 with no '"', '\' or control byte: inside a JSON string without a pattern
 * every plain token is allowed as long as its code points fit the string's room, so for such states the mask is
 * the precomputed set "plain with ≤ room code points" plus a trie walk over the other tokens only (a few thousand),
 * instead of the whole vocabulary (token-mask.ts).
 */
import { VideolmError } from "../../errors.js";
import type { TextTokenizer } from "../../text/tokenizer.js";
import { KEY_CLAMP } from "./json-matcher.js";
import { utf8Step } from "./utf8.js";

/**
 * A byte trie in depth-first order: node 0 is the root; a node's first child is the next node (when `hasChild`),
 * and its other children follow through `nextSibling`. `byte[n]` labels the edge into n.
 */
export class ByteTrie {
  readonly byte: Uint8Array;
  readonly nextSibling: Int32Array;
  readonly hasChild: Uint8Array;
  /** First token whose bytes end at this node (-1: none); more through `sameBytes`. */
  readonly token: Int32Array;
  readonly nodeCount: number;

  constructor(
    entries: { id: number; bytes: Uint8Array }[],
    /** Next token id with the same bytes (-1: none), indexed by id. */
    readonly sameBytes: Int32Array,
  ) {
    // Sort by bytes through strings of one char per byte, each followed by its id in three chars ≥ U+0100: the
    // engine's native string sort is far faster than a comparator over byte arrays. Tokens with the same bytes end up
    // adjacent; a token's extensions sort before it (their next char is < U+0100), which the construction below allows.
    const keys: string[] = [];
    let capacity = 1;
    for (const { id, bytes } of entries) {
      if (bytes.length === 0) continue;
      keys.push(latin1(bytes) + String.fromCharCode(0x100 + (id >>> 16), 0x100 + ((id >>> 8) & 255), 0x100 + (id & 255)));
      capacity += bytes.length;
    }
    keys.sort();
    const byte = new Uint8Array(capacity);
    const nextSibling = new Int32Array(capacity).fill(-1);
    const hasChild = new Uint8Array(capacity);
    const token = new Int32Array(capacity).fill(-1);
    // path[d] = node at depth d on the current branch; lastChild[d] = the latest child of path[d].
    const path = [0];
    const lastChild = [-1];
    let count = 1;
    let prev = "";
    let prevLength = 0;
    let prevId = -1;
    for (const k of keys) {
      const length = k.length - 3;
      const id = ((k.charCodeAt(length) - 0x100) << 16) | ((k.charCodeAt(length + 1) - 0x100) << 8) | (k.charCodeAt(length + 2) - 0x100);
      let common = 0;
      while (common < prevLength && common < length && prev.charCodeAt(common) === k.charCodeAt(common)) common++;
      if (common === length && length === prevLength) {
        sameBytes[prevId] = id; // same bytes as the previous token (ids ascending)
        prevId = id;
        continue;
      }
      path.length = common + 1;
      lastChild.length = common + 1;
      for (let d = common; d < length; d++) {
        const n = count++;
        byte[n] = k.charCodeAt(d);
        const parent = path[d];
        if (lastChild[d] >= 0) nextSibling[lastChild[d]] = n;
        else hasChild[parent] = 1;
        lastChild[d] = n;
        path.push(n);
        lastChild.push(-1);
      }
      // (Reached again when a shorter token follows its extensions: the node already exists on the path.)
      token[path[length]] = id;
      prev = k;
      prevLength = length;
      prevId = id;
    }
    this.byte = byte.subarray(0, count);
    this.nextSibling = nextSibling.subarray(0, count);
    this.hasChild = hasChild.subarray(0, count);
    this.token = token.subarray(0, count);
    this.nodeCount = count;
  }
}

/** One char per byte, as a flat string (tokens are < KEY_CLAMP bytes, well within the argument limit). */
function latin1(b: Uint8Array): string {
  return String.fromCharCode.apply(null, b as unknown as number[]);
}

export class TokenTable {
  /** Mask width: ids 0..size-1 (the logits row length considered). */
  readonly size: number;
  /** Uint32 words per mask. */
  readonly words: number;
  /** Bytes per id (undefined: never allowed in constrained text). */
  readonly bytes: (Uint8Array | undefined)[];
  readonly full: ByteTrie;
  readonly nonPlain: ByteTrie;
  /** Code points of a plain token, -1 for others. */
  readonly plainChars: Int32Array;
  readonly maxPlainChars: number;
  private readonly plainMasks = new Map<number, Uint32Array>();

  constructor(bytes: (Uint8Array | undefined)[], size = bytes.length) {
    this.size = size;
    this.words = (size + 31) >>> 5;
    this.bytes = bytes.slice(0, size).map((b) => (b && b.length > 0 && b.length < KEY_CLAMP ? b : undefined));
    this.plainChars = new Int32Array(size).fill(-1);
    const all: { id: number; bytes: Uint8Array }[] = [];
    const other: { id: number; bytes: Uint8Array }[] = [];
    let maxPlain = 0;
    this.bytes.forEach((b, id) => {
      if (!b) return;
      all.push({ id, bytes: b });
      const n = plainCodePoints(b);
      if (n >= 0) {
        this.plainChars[id] = n;
        maxPlain = Math.max(maxPlain, n);
      } else other.push({ id, bytes: b });
    });
    this.maxPlainChars = maxPlain;
    this.full = new ByteTrie(all, new Int32Array(size).fill(-1));
    this.nonPlain = new ByteTrie(other, new Int32Array(size).fill(-1));
  }

  /** From strings (UTF-8) or byte arrays by id; for tests and non-tokenizer uses. */
  static fromStrings(tokens: (string | Uint8Array | undefined)[], size = tokens.length): TokenTable {
    const enc = new TextEncoder();
    return new TokenTable(tokens.map((t) => (typeof t === "string" ? enc.encode(t) : t)), size);
  }

  /**
   * From a checkpoint's tokenizer: ids 0..size-1 (`size` = the logits row length, which may exceed the tokenizer's
   * vocabulary). Needs a byte-level BPE tokenizer (every Qwen-based family).
   */
  static fromTokenizer(tokenizer: Pick<TextTokenizer, "idToToken" | "addedTokenIds" | "byteLevel" | "source">, size: number): TokenTable {
    if (!tokenizer.byteLevel) {
      throw new VideolmError(`constrained output (response_format) needs a byte-level BPE tokenizer (GPT-2/Qwen style); ${tokenizer.source} is not one`);
    }
    const decoder = byteDecoder();
    const bytes: (Uint8Array | undefined)[] = new Array(size);
    for (let id = 0; id < size; id++) {
      if (tokenizer.addedTokenIds.has(id)) continue;
      const piece = tokenizer.idToToken(id);
      if (piece === undefined) continue;
      const out = new Uint8Array(piece.length);
      let n = 0;
      let ok = true;
      for (let i = 0; i < piece.length; i++) {
        const b = decoder[piece.charCodeAt(i)];
        if (b === undefined || b < 0) {
          ok = false;
          break;
        }
        out[n++] = b;
      }
      if (ok) bytes[id] = out.subarray(0, n);
    }
    return new TokenTable(bytes, size);
  }

  /** Plain tokens with at most `room` code points (cached per room; room ≥ maxPlainChars shares one mask). */
  plainMask(room: number): Uint32Array {
    const r = Math.min(room, this.maxPlainChars);
    let m = this.plainMasks.get(r);
    if (!m) {
      m = new Uint32Array(this.words);
      const chars = this.plainChars;
      for (let id = 0; id < this.size; id++) {
        const c = chars[id];
        if (c >= 0 && c <= r) m[id >>> 5] |= 1 << (id & 31);
      }
      this.plainMasks.set(r, m);
    }
    return m;
  }
}

/** Code points of `b` when it is plain (valid complete UTF-8, no '"', '\', or byte < 0x20), else -1. */
function plainCodePoints(b: Uint8Array): number {
  let state = 0;
  let n = 0;
  for (const x of b) {
    if (state === 0) {
      if (x < 0x20 || x === 0x22 || x === 0x5c) return -1;
      n++;
    }
    state = utf8Step(state, x);
    if (state < 0) return -1;
  }
  return state === 0 ? n : -1;
}

let byteDecoderTable: Int16Array | undefined;

/** GPT-2 `bytes_to_unicode` inverted: char code → byte, -1 for characters outside the alphabet. */
function byteDecoder(): Int16Array {
  if (byteDecoderTable) return byteDecoderTable;
  const table = new Int16Array(512).fill(-1);
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  let shifted = 0;
  for (let b = 0; b < 256; b++) {
    if (printable(b)) table[b] = b;
    else table[256 + shifted++] = b;
  }
  return (byteDecoderTable = table);
}
