/**
 * Mutations of JSON values for the fuzz harness (API request bodies and checkpoint JSON files alike): hostile
 * replacement values, key deletion and insertion, type swaps, deep nesting, and raw-text damage of the serialised
 * form. Everything is a pure function of a seeded RNG, so a failing case is reproduced by its seed.
 */
import type { SeededRng } from "../../synth/rng.js";

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Literal text to emit, on the serialiser's stack (distinct from any JSON value). */
class Literal {
  constructor(readonly text: string) {}
}

/** JSON text of `value`, iteratively: JSON.stringify overflows the stack on the deeply nested values made here. */
export function stringifyJson(value: Json): string {
  const out: string[] = [];
  const stack: (Json | Literal)[] = [value];
  while (stack.length) {
    const v = stack.pop()!;
    if (v instanceof Literal) out.push(v.text);
    else if (Array.isArray(v)) {
      out.push("[");
      stack.push(new Literal("]"));
      for (let i = v.length - 1; i >= 0; i--) {
        stack.push(v[i]);
        if (i > 0) stack.push(new Literal(","));
      }
    } else if (v && typeof v === "object") {
      out.push("{");
      stack.push(new Literal("}"));
      const entries = Object.entries(v);
      for (let i = entries.length - 1; i >= 0; i--) {
        stack.push(entries[i][1]);
        stack.push(new Literal(`${i > 0 ? "," : ""}${JSON.stringify(entries[i][0])}:`));
      }
    } else out.push(JSON.stringify(v) ?? "null");
  }
  return out.join("");
}

/** Nested arrays `depth` deep, built iteratively (a recursive builder would itself overflow the stack). */
export function deepArray(depth: number, leaf: Json = 0): Json {
  let v: Json = leaf;
  for (let i = 0; i < depth; i++) v = [v];
  return v;
}

/** Nested objects `depth` deep under `key`. */
export function deepObject(depth: number, key = "a", leaf: Json = 0): Json {
  let v: Json = leaf;
  for (let i = 0; i < depth; i++) v = { [key]: v };
  return v;
}

/** Values that break parsers, validators and allocators: wrong types, extremes, special tokens, deep nesting. */
export function hostileValue(rng: SeededRng): Json {
  const pick = rng.int(0, 31);
  switch (pick) {
    case 0: return null;
    case 1: return true;
    case 2: return 0;
    case 3: return -1;
    case 4: return 1e308;
    case 5: return -1e308;
    case 6: return 2 ** 53 + 2;
    case 7: return 0.5;
    case 8: return 2 ** 31;
    case 9: return "";
    case 10: return "x".repeat(rng.int(1000, 100_000));
    case 11: return "\u0000\ud800\udfff\uffff";
    case 12: return [];
    case 13: return {};
    case 14: return deepArray(rng.int(100, 20_000));
    case 15: return deepObject(rng.int(100, 20_000), rng.pick(["type", "role", "content", "url", "a"]));
    case 16: return "NaN";
    case 17: return "1e999";
    case 18: return Array.from({ length: rng.int(100, 5000) }, (_, i) => i);
    case 19: return "<|im_start|>system\n<|vision_start|><|video_pad|><|image_pad|><|im_end|>".repeat(rng.int(1, 500));
    case 20: return "{{ messages }}{% for m in messages %}{{ m }}{% endfor %}";
    case 21: return "../../../../../../etc/passwd";
    case 22: return "file:///etc/passwd";
    case 23: return "http://127.0.0.1:1/x.mp4";
    case 24: return "data:video/mp4;base64,AAAA";
    case 25: return "upload://upl_000000000000000000000000";
    case 26: return "%ZZ%00%2e%2e/";
    case 27: return -0;
    case 28: return 1e-320;
    case 29: return "🎬".repeat(rng.int(1, 20_000));
    case 30: return Object.fromEntries(Array.from({ length: rng.int(10, 2000) }, (_, i) => [`k${i}`, i]));
    default: return rng.int(-1_000_000, 1_000_000_000);
  }
}

/** Every path (keys / indices) to a value inside `root`, iteratively, at most `limit` of them. */
export function paths(root: Json, limit = 10_000): (string | number)[][] {
  const out: (string | number)[][] = [];
  const stack: { v: Json; p: (string | number)[] }[] = [{ v: root, p: [] }];
  while (stack.length && out.length < limit) {
    const { v, p } = stack.pop()!;
    out.push(p);
    if (p.length > 64) continue;
    if (Array.isArray(v)) v.forEach((c, i) => stack.push({ v: c, p: [...p, i] }));
    else if (v && typeof v === "object") for (const [k, c] of Object.entries(v)) stack.push({ v: c, p: [...p, k] });
  }
  return out;
}

function parentOf(root: Json, p: (string | number)[]): Json | undefined {
  let v: Json = root;
  for (const k of p.slice(0, -1)) {
    if (v === null || typeof v !== "object") return undefined;
    v = (v as Record<string | number, Json>)[k];
  }
  return v;
}

/** Applies one structural mutation to a deep copy of `value`; returns the copy and a short description. */
export function mutateJson(value: Json, rng: SeededRng): { value: Json; what: string } {
  const root = JSON.parse(stringifyJson(value)) as Json;
  const all = paths(root);
  const p = rng.pick(all);
  const op = rng.int(0, 5);
  if (p.length === 0) {
    return op < 3 ? { value: hostileValue(rng), what: "replace the whole value" } : { value: [root], what: "wrap the whole value in an array" };
  }
  const parent = parentOf(root, p) as Record<string | number, Json>;
  const key = p[p.length - 1];
  const where = p.join(".");
  switch (op) {
    case 0:
    case 1:
    case 2:
      parent[key] = hostileValue(rng);
      return { value: root, what: `${where} = hostile` };
    case 3:
      if (Array.isArray(parent)) parent.splice(Number(key), 1);
      else delete parent[key];
      return { value: root, what: `delete ${where}` };
    case 4: {
      const v = parent[key];
      parent[key] = typeof v === "string" ? rng.int(-5, 5) : typeof v === "number" ? String(v) : Array.isArray(v) ? { 0: v[0] ?? null } : v && typeof v === "object" ? [v] : "text";
      return { value: root, what: `swap the type of ${where}` };
    }
    default: {
      const v = parent[key];
      if (Array.isArray(v)) {
        const n = rng.int(2, 300);
        const text = stringifyJson(v[0] ?? null);
        parent[key] = Array.from({ length: n }, () => JSON.parse(text) as Json);
        return { value: root, what: `${where}: ${n} copies of its first element` };
      }
      if (v && typeof v === "object") {
        (v as Record<string, Json>)[rng.pick(["__proto__", "constructor", "unknown_field", "toString", ""])] = hostileValue(rng);
        return { value: root, what: `${where}: an unknown key` };
      }
      parent[key] = deepArray(rng.int(1000, 50_000), v);
      return { value: root, what: `${where} nested deep` };
    }
  }
}

/** Damage to the serialised text: truncation, byte flips, duplicated keys, invalid UTF-8, a BOM. */
export function mutateText(text: string, rng: SeededRng): { data: Buffer; what: string } {
  const bytes = Buffer.from(text, "utf8");
  switch (rng.int(0, 6)) {
    case 0:
      return { data: bytes.subarray(0, rng.int(0, bytes.length)), what: "truncated" };
    case 1: {
      const out = Buffer.from(bytes);
      for (let i = rng.int(1, 8); i > 0 && out.length; i--) out[rng.int(0, out.length - 1)] = rng.int(0, 255);
      return { data: out, what: "bytes flipped" };
    }
    case 2:
      return { data: Buffer.from(text.replace(/^\{/, '{"model":"x","model":1,'), "utf8"), what: "duplicate keys" };
    case 3:
      return { data: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), bytes]), what: "BOM" };
    case 4: {
      const at = rng.int(0, bytes.length);
      return { data: Buffer.concat([bytes.subarray(0, at), Buffer.from([0xc3, 0x28, 0xff, 0xfe]), bytes.subarray(at)]), what: "invalid UTF-8" };
    }
    case 5:
      return { data: Buffer.from(text + text, "utf8"), what: "two JSON values" };
    default:
      return { data: Buffer.from(`[${text}]`, "utf8"), what: "wrapped in an array" };
  }
}
