/**
 * A byte-at-a-time JSON recognizer that follows a compiled schema (json-schema.ts): a pushdown automaton whose stack
 * is a chain of immutable frames (object, array, string, number, literal), so stepping never mutates a state and a
 * token-trie walk can branch from any state for free. Non-determinism (anyOf, a number that may end or go on,
 * enum values that are prefixes of each other) is a set of such stacks ("threads").
 *
 * Every accepted prefix can still be completed to a valid document (no dead ends), with these exceptions that the
 * schema compiler cannot rule out: a string `pattern` that needs more characters than `maxLength` allows, or a
 * recursive schema whose only completions nest deeper than MAX_NESTING. Generation then stops with an error.
 *
 * Text shape (documented in docs/constrained-output.md):
 *   - at most MAX_WHITESPACE whitespace bytes (space, \t, \n, \r) before the value and between any two JSON tokens
 *     (so a model cannot loop on whitespace); none after the value: the document ends right after it;
 *   - strings: valid UTF-8, no raw control characters, the escapes \" \\ \/ \b \f \n \r \t and \uXXXX (not a
 *     surrogate; not inside strings with a `pattern`); lengths count code points;
 *   - numbers: -?(0|[1-9]d{0,15})(.d{1,16})?([eE][+-]?d{1,2})? (integers: no fraction or exponent).
 */
import { DEFAULT_MAX_STRING, MAX_NESTING, type AnyNode, type ArrayNode, type LiteralNode, type NumberNode, type ObjectNode, type SchemaNode, type StringNode } from "./json-schema.js";
import { LazyDfa, parseRegex } from "./regex.js";
import { utf8Step } from "./utf8.js";
import { VideolmError } from "../../errors.js";

/** Whitespace bytes allowed in one gap between JSON tokens (and before the value). */
export const MAX_WHITESPACE = 32;
/** Length of the longest key string of a free object (json_object, additionalProperties). */
export const MAX_FREE_KEY = 256;
/**
 * State keys clamp counters at this value: two states that differ only in counters ≥ KEY_CLAMP behave the same for
 * the next token as long as no token is longer than KEY_CLAMP − 1 bytes (token-table.ts drops longer tokens).
 */
export const KEY_CLAMP = 256;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const isWs = (b: number) => b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;
const clamp = (n: number) => (n >= KEY_CLAMP ? KEY_CLAMP : n);

const NUMBER_DFA = lazyOnce(() => LazyDfa.fromNode(parseRegex("-?(?:0|[1-9][0-9]{0,15})(?:\\.[0-9]{1,16})?(?:[eE][+-]?[0-9]{1,2})?").node));
const INTEGER_DFA = lazyOnce(() => LazyDfa.fromNode(parseRegex("-?(?:0|[1-9][0-9]{0,15})").node));
/** Numbers with a minimum/maximum: no exponent, so the values a prefix can still reach are a few intervals. */
const BOUNDED_NUMBER_DFA = lazyOnce(() => LazyDfa.fromNode(parseRegex("-?(?:0|[1-9][0-9]{0,15})(?:\\.[0-9]{1,16})?").node));
const MAX_INT_DIGITS = 16;
const MAX_FRACTION_DIGITS = 16;

function lazyOnce<T>(make: () => T): () => T {
  let value: T | undefined;
  return () => (value ??= make());
}

// Nodes shared by every schema for "any value" (ids below 0 never collide with compiled ones).
const enc = new TextEncoder();
const ANY: AnyNode = { id: -1, kind: "any" };
const ANY_OBJECT: ObjectNode = { id: -2, kind: "object", properties: [], additional: ANY };
const ANY_ARRAY: ArrayNode = { id: -3, kind: "array", items: ANY, min: 0, max: Infinity };
const ANY_STRING: StringNode = { id: -4, kind: "string", minLength: 0, maxLength: DEFAULT_MAX_STRING };
const ANY_NUMBER: NumberNode = { id: -5, kind: "number", integer: false };
const ANY_LITERAL: LiteralNode = { id: -6, kind: "literal", texts: ["true", "false", "null"].map((t) => enc.encode(t)) };
const FREE_KEY: StringNode = { id: -7, kind: "string", minLength: 0, maxLength: MAX_FREE_KEY };

export abstract class Frame {
  // `declare`: no class-field initializer (define semantics cost ~a third of a cold trie walk in V8, measured).
  declare private memoKey: string | undefined;
  constructor(
    /** The frame waiting for this one (in its "awaiting a child" phase); null for the document. */
    readonly parent: Frame | null,
    /** Containers (objects, arrays) on the stack up to and including this frame. */
    readonly depth: number,
  ) {}

  /** Feeds one byte: pushes the resulting stacks (their top frames) onto `out`; none when the byte is not allowed. */
  abstract step(b: number, out: Frame[]): void;
  /** Whether this frame may end here without a closing byte of its own (numbers, literals that are prefixes). */
  canEnd(): boolean {
    return false;
  }
  /** What this frame hands its parent when it ends (the property index of an object key). */
  result(): number {
    return 0;
  }
  /** This frame (in an awaiting phase) after its child ended with `result`. */
  resume(_result: number): Frame {
    throw new Error("internal: resume on a frame that awaits no child");
  }
  protected abstract localKey(): string;
  /** Identifies the whole stack's behaviour (counters clamped at KEY_CLAMP). */
  key(): string {
    return (this.memoKey ??= `${this.localKey()}|${this.parent ? this.parent.key() : ""}`);
  }

  /** Ends this frame and lets its parent read `b` (for frames that end without a closing byte). */
  protected handOver(b: number, out: Frame[]): void {
    if (this.parent) this.parent.resume(this.result()).step(b, out);
  }
}

/** Starts `node`'s value with its first byte `b`; `parent` awaits it. */
function enter(node: SchemaNode, parent: Frame, b: number, out: Frame[]): void {
  switch (node.kind) {
    case "any":
      for (const n of [ANY_OBJECT, ANY_ARRAY, ANY_STRING, ANY_NUMBER, ANY_LITERAL]) enter(n, parent, b, out);
      return;
    case "object":
      if (b === 0x7b && parent.depth < MAX_NESTING) out.push(new ObjectFrame(parent, parent.depth + 1, node, ObjectFrame.OPEN, 0, -1, "0".repeat(node.properties.length)));
      return;
    case "array":
      if (b === 0x5b && parent.depth < MAX_NESTING) out.push(new ArrayFrame(parent, parent.depth + 1, node, ArrayFrame.OPEN, 0, 0));
      return;
    case "string":
      if (b === QUOTE) out.push(StringFrame.open(parent, node));
      return;
    case "number": {
      const bounded = node.lower !== undefined || node.upper !== undefined;
      const dfa = node.integer ? INTEGER_DFA() : bounded ? BOUNDED_NUMBER_DFA() : NUMBER_DFA();
      new NumberFrame(parent, parent.depth, dfa, dfa.start, node, "").step(b, out);
      return;
    }
    case "literal":
      new LiteralFrame(parent, parent.depth, node.id, node.texts, allIndices(node.texts.length), 0).step(b, out);
      return;
    case "anyOf":
      for (const o of node.options) enter(o, parent, b, out);
      return;
  }
}

const indexCache = new Map<number, number[]>();
function allIndices(n: number): number[] {
  let hit = indexCache.get(n);
  if (!hit) {
    hit = Array.from({ length: n }, (_, i) => i);
    if (n <= 4096) indexCache.set(n, hit);
  }
  return hit;
}

/** The whole output: optional leading whitespace, then the root value, then nothing. */
export class DocumentFrame extends Frame {
  constructor(
    readonly root: SchemaNode,
    readonly done: boolean,
    readonly ws: number,
  ) {
    super(null, 0);
  }
  step(b: number, out: Frame[]): void {
    if (this.done) return;
    if (isWs(b)) {
      if (this.ws < MAX_WHITESPACE) out.push(new DocumentFrame(this.root, false, this.ws + 1));
      return;
    }
    enter(this.root, this, b, out);
  }
  override canEnd(): boolean {
    return this.done;
  }
  override resume(): Frame {
    return new DocumentFrame(this.root, true, 0);
  }
  protected localKey(): string {
    return this.done ? "D$" : `D${this.ws}`;
  }
}

export class ObjectFrame extends Frame {
  static readonly OPEN = 0; // after '{'
  static readonly KEY = 1; // awaiting the key (child)
  static readonly COLON = 2; // after the key
  static readonly VALUE_WS = 3; // after ':'
  static readonly VALUE = 4; // awaiting the value (child)
  static readonly AFTER = 5; // after a value
  static readonly COMMA = 6; // after ','

  constructor(
    parent: Frame | null,
    depth: number,
    readonly node: ObjectNode,
    readonly phase: number,
    readonly ws: number,
    /** The current member's property index (-1: a free key). */
    readonly prop: number,
    /** '1' per declared property already written. */
    readonly seen: string,
  ) {
    super(parent, depth);
  }

  private with(phase: number, ws = 0, prop = this.prop, seen = this.seen): ObjectFrame {
    return new ObjectFrame(this.parent, this.depth, this.node, phase, ws, prop, seen);
  }

  step(b: number, out: Frame[]): void {
    const phase = this.phase;
    if (isWs(b) && phase !== ObjectFrame.KEY && phase !== ObjectFrame.VALUE) {
      if (this.ws < MAX_WHITESPACE) out.push(this.with(phase, this.ws + 1));
      return;
    }
    switch (phase) {
      case ObjectFrame.OPEN:
        if (b === 0x7d) this.close(out);
        else if (b === QUOTE) this.startKey(out);
        return;
      case ObjectFrame.COMMA:
        if (b === QUOTE) this.startKey(out);
        return;
      case ObjectFrame.COLON:
        if (b === 0x3a) out.push(this.with(ObjectFrame.VALUE_WS));
        return;
      case ObjectFrame.VALUE_WS: {
        const props = this.node.properties;
        const valueNode = this.prop >= 0 ? props[this.prop].node : this.node.additional!;
        enter(valueNode, this.with(ObjectFrame.VALUE), b, out);
        return;
      }
      case ObjectFrame.AFTER:
        if (b === 0x2c && this.moreKeysPossible()) out.push(this.with(ObjectFrame.COMMA));
        else if (b === 0x7d) this.close(out);
        return;
    }
  }

  override resume(result: number): Frame {
    if (this.phase === ObjectFrame.KEY) return this.with(ObjectFrame.COLON, 0, result);
    // VALUE: the member is complete.
    const seen = this.prop >= 0 ? this.seen.slice(0, this.prop) + "1" + this.seen.slice(this.prop + 1) : this.seen;
    return this.with(ObjectFrame.AFTER, 0, -1, seen);
  }

  private seenAt(i: number): boolean {
    return this.seen.charCodeAt(i) === 0x31;
  }

  private moreKeysPossible(): boolean {
    const props = this.node.properties;
    if (props.length === 0) return this.node.additional !== null;
    for (let i = 0; i < props.length; i++) if (!this.seenAt(i)) return true;
    return false;
  }

  private close(out: Frame[]): void {
    const props = this.node.properties;
    for (let i = 0; i < props.length; i++) if (props[i].required && !this.seenAt(i)) return;
    out.push(this.parent!.resume(0));
  }

  private startKey(out: Frame[]): void {
    const props = this.node.properties;
    const awaiting = this.with(ObjectFrame.KEY, 0, -1);
    if (props.length === 0) {
      if (this.node.additional) out.push(StringFrame.open(awaiting, FREE_KEY, -1));
      return;
    }
    const unseen: number[] = [];
    for (let i = 0; i < props.length; i++) if (!this.seenAt(i)) unseen.push(i);
    if (unseen.length === 0) return;
    // The opening quote is byte 0 of every key text; it was just read.
    out.push(new LiteralFrame(awaiting, this.depth, this.node.id, props.map((p) => p.key), unseen, 1));
  }

  protected localKey(): string {
    return `O${this.node.id}.${this.phase}.${this.ws}.${this.prop}.${this.seen}`;
  }
}

export class ArrayFrame extends Frame {
  static readonly OPEN = 0; // after '['
  static readonly ITEM = 1; // awaiting an item (child)
  static readonly AFTER = 2; // after an item
  static readonly COMMA = 3; // after ','

  constructor(
    parent: Frame | null,
    depth: number,
    readonly node: ArrayNode,
    readonly phase: number,
    readonly ws: number,
    readonly count: number,
  ) {
    super(parent, depth);
  }

  private with(phase: number, ws = 0, count = this.count): ArrayFrame {
    return new ArrayFrame(this.parent, this.depth, this.node, phase, ws, count);
  }

  step(b: number, out: Frame[]): void {
    const phase = this.phase;
    if (isWs(b) && phase !== ArrayFrame.ITEM) {
      if (this.ws < MAX_WHITESPACE) out.push(this.with(phase, this.ws + 1));
      return;
    }
    switch (phase) {
      case ArrayFrame.OPEN:
        if (b === 0x5d) {
          if (this.node.min === 0) out.push(this.parent!.resume(0));
        } else if (this.node.max > 0) enter(this.node.items, this.with(ArrayFrame.ITEM), b, out);
        return;
      case ArrayFrame.COMMA:
        enter(this.node.items, this.with(ArrayFrame.ITEM), b, out);
        return;
      case ArrayFrame.AFTER:
        if (b === 0x2c && this.count < this.node.max) out.push(this.with(ArrayFrame.COMMA));
        else if (b === 0x5d && this.count >= this.node.min) out.push(this.parent!.resume(0));
        return;
    }
  }

  override resume(): Frame {
    return this.with(ArrayFrame.AFTER, 0, this.count + 1);
  }

  protected localKey(): string {
    const need = clamp(Math.max(0, this.node.min - this.count));
    const room = this.node.max === Infinity ? "i" : clamp(this.node.max - this.count);
    return `A${this.node.id}.${this.phase}.${this.ws}.${need}.${room}`;
  }
}

/** The decoded bytes of the short escapes \" \\ \/ \b \f \n \r \t, by escape letter. */
const SHORT_ESCAPES = new Map<number, number>([
  [0x22, 0x22],
  [0x5c, 0x5c],
  [0x2f, 0x2f],
  [0x62, 0x08],
  [0x66, 0x0c],
  [0x6e, 0x0a],
  [0x72, 0x0d],
  [0x74, 0x09],
]);

function hexValue(b: number): number {
  if (b >= 0x30 && b <= 0x39) return b - 0x30;
  if (b >= 0x61 && b <= 0x66) return b - 0x57;
  if (b >= 0x41 && b <= 0x46) return b - 0x37;
  return -1;
}

/** Inside a string, after the opening quote. */
export class StringFrame extends Frame {
  constructor(
    parent: Frame | null,
    depth: number,
    readonly node: StringNode,
    /** Code points so far. */
    readonly count: number,
    /** 0: plain; 1: after '\'; 2..5: after '\u' and (esc − 2) hex digits. */
    readonly esc: number,
    /** Value of the hex digits read after '\u'. */
    readonly code: number,
    /** utf8.ts validator state (0 at a character boundary). */
    readonly utf8: number,
    /** State of node.pattern's DFA over the decoded bytes (0 without a pattern). */
    readonly dfa: number,
    /** What the string hands its parent (-1 for a free object key). */
    readonly res: number,
  ) {
    super(parent, depth);
  }

  static open(parent: Frame, node: StringNode, res = 0): StringFrame {
    return new StringFrame(parent, parent.depth, node, 0, 0, 0, 0, node.pattern ? node.pattern.start : 0, res);
  }

  /** Whether the state reads any plain character (no escape or partial character pending, no pattern). */
  get plain(): boolean {
    return this.esc === 0 && this.utf8 === 0 && !this.node.pattern;
  }

  /** Code points that may still be added. */
  get room(): number {
    return this.node.maxLength - this.count;
  }

  private next(count: number, esc: number, code: number, utf8: number, dfa: number): StringFrame {
    return new StringFrame(this.parent, this.depth, this.node, count, esc, code, utf8, dfa, this.res);
  }

  /** The pattern DFA after the decoded bytes, or -1 (dead); 0 without a pattern. */
  private feed(bytes: number[]): number {
    const p = this.node.pattern;
    if (!p) return 0;
    let s = this.dfa;
    for (const x of bytes) {
      s = p.step(s, x);
      if (s < 0) return -1;
    }
    return s;
  }

  step(b: number, out: Frame[]): void {
    const node = this.node;
    if (this.esc === 1) {
      const decoded = SHORT_ESCAPES.get(b);
      if (decoded !== undefined) {
        const d = this.feed([decoded]);
        if (d >= 0) out.push(this.next(this.count + 1, 0, 0, 0, d));
      } else if (b === 0x75 && !node.pattern) out.push(this.next(this.count, 2, 0, 0, 0));
      return;
    }
    if (this.esc >= 2) {
      const h = hexValue(b);
      if (h < 0) return;
      const code = this.code * 16 + h;
      if (this.esc === 3 && code >= 0xd8 && code <= 0xdf) return; // \uD8xx..\uDFxx: surrogates are not allowed
      if (this.esc < 5) out.push(this.next(this.count, this.esc + 1, code, 0, 0));
      else out.push(this.next(this.count + 1, 0, 0, 0, 0));
      return;
    }
    if (this.utf8 !== 0) {
      const u = utf8Step(this.utf8, b);
      if (u < 0) return;
      const d = this.feed([b]);
      if (d >= 0) out.push(this.next(this.count, 0, 0, u, d));
      return;
    }
    if (b === QUOTE) {
      if (this.count >= node.minLength && (!node.pattern || node.pattern.isAccepting(this.dfa))) out.push(this.parent!.resume(this.res));
      return;
    }
    if (this.count >= node.maxLength) return;
    if (b === BACKSLASH) {
      // Only when some escape can follow: without a pattern always; with one, a short escape must keep it alive.
      if (node.pattern) {
        let ok = false;
        for (const decoded of SHORT_ESCAPES.values()) if (this.feed([decoded]) >= 0) ok = true;
        if (!ok) return;
      }
      out.push(this.next(this.count, 1, 0, 0, this.dfa));
      return;
    }
    if (b < 0x20) return;
    const u = utf8Step(0, b);
    if (u < 0) return;
    const d = this.feed([b]);
    if (d >= 0) out.push(this.next(this.count + 1, 0, 0, u, d));
  }

  override result(): number {
    return this.res;
  }

  protected localKey(): string {
    const need = clamp(Math.max(0, this.node.minLength - this.count));
    return `S${this.node.id}.${need}.${clamp(this.room)}.${this.esc}.${this.code}.${this.utf8}.${this.dfa}.${this.res}`;
  }
}

export class NumberFrame extends Frame {
  constructor(
    parent: Frame | null,
    depth: number,
    readonly dfa: LazyDfa,
    readonly state: number,
    readonly node: NumberNode,
    /** The text so far (kept only for bounded numbers). */
    readonly text: string,
  ) {
    super(parent, depth);
  }

  private get bounded(): boolean {
    return this.node.lower !== undefined || this.node.upper !== undefined;
  }

  step(b: number, out: Frame[]): void {
    const s = this.dfa.step(this.state, b);
    if (s >= 0) {
      if (!this.bounded) out.push(new NumberFrame(this.parent, this.depth, this.dfa, s, this.node, ""));
      else {
        const text = this.text + String.fromCharCode(b);
        if (canReachRange(text, this.node)) out.push(new NumberFrame(this.parent, this.depth, this.dfa, s, this.node, text));
      }
    }
    if (this.canEnd()) this.handOver(b, out);
  }

  override canEnd(): boolean {
    return this.dfa.isAccepting(this.state) && (!this.bounded || inRange(Number(this.text), this.node));
  }

  protected localKey(): string {
    return `N${this.node.integer ? "i" : "n"}${this.node.id}.${this.state}.${this.text}`;
  }
}

function inRange(v: number, node: NumberNode): boolean {
  const { lower, upper } = node;
  if (lower && (lower.exclusive ? !(v > lower.value) : !(v >= lower.value))) return false;
  if (upper && (upper.exclusive ? !(v < upper.value) : !(v <= upper.value))) return false;
  return true;
}

/**
 * Whether some completion of the number prefix `text` (no exponent; at most MAX_INT_DIGITS integer digits and
 * MAX_FRACTION_DIGITS fraction digits) lies within the node's bounds. The completions' magnitudes are a union of
 * intervals: integer digits D (k of them) can grow to D·10^j … (D+1)·10^j for j ≤ 16 − k; after the point, the
 * digits so far fix [I.f, I.f + 10^−m). Each is tested against the bounds as a closed interval with its exact end
 * points where they are reachable.
 */
function canReachRange(text: string, node: NumberNode): boolean {
  const negative = text.startsWith("-");
  const body = negative ? text.slice(1) : text;
  // Magnitude intervals [lo, hi] (hi included; values in between reachable in steps far below any bound's scale).
  const magnitudes: [number, number][] = [];
  const dot = body.indexOf(".");
  const fractionStep = node.integer ? 1 : 10 ** -MAX_FRACTION_DIGITS;
  if (body === "") magnitudes.push([0, 10 ** MAX_INT_DIGITS - fractionStep]);
  else if (dot < 0) {
    if (body === "0") magnitudes.push([0, node.integer ? 0 : 1 - fractionStep]);
    else {
      const d = Number(body);
      for (let j = 0; j <= MAX_INT_DIGITS - body.length; j++) magnitudes.push([d * 10 ** j, (d + 1) * 10 ** j - fractionStep]);
    }
  } else {
    const m = body.length - dot - 1;
    const base = Number(body.slice(0, dot) + "." + (body.slice(dot + 1) || "0"));
    magnitudes.push([base, m >= MAX_FRACTION_DIGITS ? base : base + 10 ** -m - fractionStep]);
  }
  return magnitudes.some(([lo, hi]) => {
    const [a, b] = negative ? [-hi, -lo] : [lo, hi];
    // Some v in [a, b] within the bounds: a strictly-above lower bound needs b > value (and similarly above).
    const { lower, upper } = node;
    if (lower && (lower.exclusive ? !(b > lower.value) : !(b >= lower.value))) return false;
    if (upper && (upper.exclusive ? !(a < upper.value) : !(a <= upper.value))) return false;
    // With an integer type, the part of [a, b] inside the bounds must hold an integer.
    if (node.integer) {
      const from = Math.max(a, lower ? (lower.exclusive ? Math.floor(lower.value) + 1 : Math.ceil(lower.value)) : a);
      const to = Math.min(b, upper ? (upper.exclusive ? Math.ceil(upper.value) - 1 : Math.floor(upper.value)) : b);
      return Math.ceil(from) <= Math.floor(to);
    }
    return true;
  });
}

/** One of several fixed byte strings (enum/const values, true/false/null, declared object keys). */
export class LiteralFrame extends Frame {
  constructor(
    parent: Frame | null,
    depth: number,
    readonly nodeId: number,
    readonly texts: Uint8Array[],
    /** Indices of the texts that match so far. */
    readonly candidates: number[],
    /** Bytes matched. */
    readonly pos: number,
  ) {
    super(parent, depth);
  }

  step(b: number, out: Frame[]): void {
    const pos = this.pos;
    const next: number[] = [];
    let ended = -1;
    let longer = false;
    for (const i of this.candidates) {
      const t = this.texts[i];
      if (t.length > pos && t[pos] === b) {
        next.push(i);
        if (t.length === pos + 1) ended = i;
        else longer = true;
      }
    }
    if (next.length > 0) {
      // Ended and nothing longer matches: return to the parent now rather than keep a finished frame.
      if (ended >= 0 && !longer) out.push(this.parent!.resume(ended));
      else out.push(new LiteralFrame(this.parent, this.depth, this.nodeId, this.texts, next, pos + 1));
    }
    if (this.canEnd()) this.handOver(b, out);
  }

  override canEnd(): boolean {
    return this.result() >= 0;
  }

  override result(): number {
    for (const i of this.candidates) if (this.texts[i].length === this.pos) return i;
    return -1;
  }

  protected localKey(): string {
    return `L${this.nodeId}.${this.pos}.${this.candidates.join(",")}`;
  }
}

// ------------------------------------------------------------------------------------------------------------------

/** A matcher state: the live stacks (usually one). */
export type JsonState = Frame[];

export function initialJsonState(root: SchemaNode): JsonState {
  return [new DocumentFrame(root, false, 0)];
}

/**
 * Stacks followed at once at most: nested ambiguous anyOfs multiply them, so a hostile schema could make every byte
 * cost thousands of steps; past this the request fails with a clear error instead.
 */
export const MAX_THREADS = 512;

/** The state after byte `b`, or undefined when no stack accepts it. */
export function stepJson(state: JsonState, b: number): JsonState | undefined {
  const out: Frame[] = [];
  for (const f of state) f.step(b, out);
  if (out.length === 0) return undefined;
  if (out.length === 1) return out;
  const unique = dedupe(out);
  if (unique.length > MAX_THREADS) throw new VideolmError(`response_format: the schema's anyOf alternatives are too ambiguous to follow (more than ${MAX_THREADS} readings of the same text at once); make the alternatives distinguishable early`);
  return unique;
}

function dedupe(frames: Frame[]): Frame[] {
  const seen = new Set<string>();
  return frames.filter((f) => {
    const k = f.key();
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** Whether the text so far is a complete document. */
export function jsonAccepting(state: JsonState): boolean {
  for (const top of state) {
    let f: Frame = top;
    while (f.canEnd() && f.parent) f = f.parent.resume(f.result());
    if (f.parent === null && f.canEnd()) return true;
  }
  return false;
}

export function jsonStateKey(state: JsonState): string {
  return state.length === 1 ? state[0].key() : state.map((f) => f.key()).sort().join("‖");
}

/** For the plain-string fast path (token-mask.ts): the room left when the state is one plain string, else -1. */
export function jsonPlainStringRoom(state: JsonState): number {
  if (state.length !== 1) return -1;
  const f = state[0];
  return f instanceof StringFrame && f.plain ? f.room : -1;
}
