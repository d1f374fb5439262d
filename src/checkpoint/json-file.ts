/**
 * Bounded reading of a checkpoint's JSON files. A checkpoint folder is untrusted input: a file may be huge, nested
 * 200,000 levels deep, or not an object at all. Every JSON file the loader reads goes through here, so that
 *   - its size is checked (fstat) before it is read whole — limits per file below;
 *   - JSON.parse (iterative in V8: 200,000 levels parse in ~0.1 s) is followed by an iterative depth check, so no
 *     later recursive walk (JSON.stringify, structuredClone, spreading into the tokenizer) can overflow the stack;
 *   - every failure is a one-line VideolmError naming the file.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { VideolmError } from "../errors.js";

const MiB = 1024 * 1024;

/** Largest accepted size per file name (bytes); other JSON files get DEFAULT_MAX_JSON_BYTES. */
export const MAX_JSON_BYTES: Record<string, number> = {
  "config.json": 16 * MiB,
  "generation_config.json": 1 * MiB,
  "preprocessor_config.json": 1 * MiB,
  "video_preprocessor_config.json": 1 * MiB,
  "tokenizer_config.json": 64 * MiB,
  "tokenizer.json": 256 * MiB,
  "chat_template.json": 1 * MiB,
  "model.safetensors.index.json": 64 * MiB,
};
export const DEFAULT_MAX_JSON_BYTES = 16 * MiB;
/** Largest chat_template.jinja (and chat template string anywhere) in characters. */
export const MAX_TEMPLATE_BYTES = 1 * MiB;
/**
 * Deepest accepted nesting of arrays/objects. Hugging Face files nest at most ~8 levels (tokenizer.json's
 * normalizer/pre-tokenizer sequences); 64 leaves room and keeps every recursive walk shallow.
 */
export const MAX_JSON_DEPTH = 64;

export function maxJsonBytes(file: string): number {
  return MAX_JSON_BYTES[path.basename(file)] ?? DEFAULT_MAX_JSON_BYTES;
}

/**
 * Reads a text file after checking its size. Returns undefined when it does not exist and `optional` is set.
 * `maxBytes` defaults to the per-name limit.
 */
export function readBoundedText(file: string, options: { optional?: boolean; maxBytes?: number; what?: string } = {}): string | undefined {
  const name = path.basename(file);
  const maxBytes = options.maxBytes ?? maxJsonBytes(file);
  let fd: number;
  try {
    fd = fs.openSync(file, "r");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (options.optional && code === "ENOENT") return undefined;
    throw new VideolmError(`${options.what ?? name} not found: ${file} (${code ?? (e as Error).message})`);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new VideolmError(`${name}: ${file} is not a regular file`);
    if (st.size > maxBytes) {
      throw new VideolmError(`${name}: the file has ${st.size} bytes, more than the ${maxBytes} videolm accepts for it (${file}); is it the right file?`);
    }
    const buf = Buffer.alloc(st.size);
    let read = 0;
    while (read < st.size) {
      const n = fs.readSync(fd, buf, read, st.size - read, read);
      if (n === 0) break;
      read += n;
    }
    return buf.toString("utf8", 0, read);
  } catch (e) {
    if (e instanceof VideolmError) throw e;
    throw new VideolmError(`${name}: cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  } finally {
    fs.closeSync(fd);
  }
}

/** A short, bounded description of a JSON value for error messages (never walks the value). */
export function describeJson(v: unknown): string {
  if (v === undefined) return "nothing";
  if (v === null) return "null";
  if (Array.isArray(v)) return v.length <= 4 && v.every((x) => x === null || typeof x !== "object") ? `[${v.map(describeJson).join(", ")}]` : `an array of ${v.length}`;
  if (typeof v === "object") return "an object";
  if (typeof v === "string") return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  return String(v);
}

/**
 * The dotted path of the first place where `value` nests deeper than `maxDepth`, or undefined. Iterative (an
 * explicit stack), so it is safe on any parsed value.
 */
export function findTooDeep(value: unknown, maxDepth = MAX_JSON_DEPTH): string | undefined {
  const stack: [unknown, number, string][] = [[value, 0, ""]];
  while (stack.length > 0) {
    const [v, depth, at] = stack.pop()!;
    if (v === null || typeof v !== "object") continue;
    if (depth >= maxDepth) return at || "(top level)";
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) if (v[i] !== null && typeof v[i] === "object") stack.push([v[i], depth + 1, depth < 8 ? `${at}[${i}]` : at]);
    } else {
      for (const k of Object.keys(v)) {
        const c = (v as Record<string, unknown>)[k];
        if (c !== null && typeof c === "object") stack.push([c, depth + 1, depth < 8 ? (at ? `${at}.${k}` : k) : at]);
      }
    }
  }
  return undefined;
}

/** Parses JSON text from `file` and checks its depth; `mustBeObject` also requires a top-level object. */
export function parseBoundedJson(text: string, file: string, mustBeObject = true): unknown {
  const name = path.basename(file);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    // V8's message quotes the text around the fault, newlines included: keep the error on one line.
    const reason = text.charCodeAt(0) === 0xfeff ? "it starts with a byte-order mark" : (e as Error).message.replace(/\r?\n/g, "\\n").replace(/\ufeff/g, "\\uFEFF");
    throw new VideolmError(`${name}: ${file} is not valid JSON (${reason}); re-download it`);
  }
  if (mustBeObject && (value === null || typeof value !== "object" || Array.isArray(value))) {
    throw new VideolmError(`${name}: expected a JSON object at the top level of ${file} (got ${describeJson(value)})`);
  }
  const deep = findTooDeep(value);
  if (deep !== undefined) throw new VideolmError(`${name}: ${deep} nests deeper than ${MAX_JSON_DEPTH} levels (${file}); no Hugging Face file does`);
  return value;
}

/** Reads and parses a JSON object file under the size and depth limits. */
export function readBoundedJsonObject(file: string, what?: string): Record<string, unknown>;
export function readBoundedJsonObject(file: string, what: string | undefined, optional: true): Record<string, unknown> | undefined;
export function readBoundedJsonObject(file: string, what?: string, optional = false): Record<string, unknown> | undefined {
  const text = readBoundedText(file, { optional, what });
  if (text === undefined) return undefined;
  return parseBoundedJson(text, file) as Record<string, unknown>;
}
