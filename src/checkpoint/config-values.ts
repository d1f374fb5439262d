/**
 * Typed, range-checked reads of checkpoint JSON values (config.json, preprocessor_config.json, …). Every number a
 * family reads goes through one of these, so a hostile or broken value fails at load with one line naming the file
 * and the key: `config.json: vision_config.temporal_patch_size must be an integer in [1, 16] (got 0)`.
 *
 * The ranges are sanity bounds far outside every published checkpoint (so a real model never trips them) and far
 * inside what would allocate gigabytes or loop for minutes before the weights' own shape checks run.
 */
import { VideolmError } from "../errors.js";
import { describeJson } from "./json-file.js";

type Json = Record<string, unknown>;

export interface IntRange {
  min: number;
  max: number;
}

/** Reads values of one JSON object; `prefix` is the key path of the object (`vision_config.`), `file` its file name. */
export class ConfigReader {
  constructor(
    readonly obj: Json,
    readonly file = "config.json",
    readonly prefix = "",
  ) {}

  fail(key: string, what: string, got: unknown): VideolmError {
    return new VideolmError(`${this.file}: ${this.prefix}${key} ${what} (got ${describeJson(got)})`);
  }

  /** An integer in [min, max]; `fallback` when the key is absent or null. */
  int(key: string, range: IntRange, fallback?: number): number {
    const v = this.obj[key] ?? fallback;
    // JSON integers written as 2.0 parse to 2 and pass; 2.5, "2", true, 1e400 (Infinity) do not.
    if (typeof v !== "number" || !Number.isInteger(v) || v < range.min || v > range.max) {
      throw this.fail(key, range.max === Number.MAX_SAFE_INTEGER ? `must be an integer ≥ ${range.min}` : `must be an integer in [${range.min}, ${range.max}]`, v);
    }
    return v;
  }

  /** A finite number with min < v (exclusive) or min ≤ v (inclusive) and v ≤ max. */
  num(key: string, bounds: { min: number; max: number; exclusiveMin?: boolean }, fallback?: number): number {
    const v = this.obj[key] ?? fallback;
    const low = bounds.exclusiveMin ? (x: number) => x > bounds.min : (x: number) => x >= bounds.min;
    if (typeof v !== "number" || !Number.isFinite(v) || !low(v) || v > bounds.max) {
      throw this.fail(key, `must be a number in ${bounds.exclusiveMin ? "(" : "["}${bounds.min}, ${bounds.max}]`, v);
    }
    return v;
  }

  bool(key: string, fallback: boolean): boolean {
    const v = this.obj[key] ?? fallback;
    if (typeof v !== "boolean") throw this.fail(key, "must be true or false", v);
    return v;
  }

  /** A string from `allowed` (when given). */
  str(key: string, fallback: string, allowed?: readonly string[]): string {
    const v = this.obj[key] ?? fallback;
    if (typeof v !== "string") throw this.fail(key, "must be a string", v);
    if (allowed && !allowed.includes(v)) throw this.fail(key, `must be one of ${allowed.join(", ")}`, v);
    return v;
  }

  /** A list of integers each in `range` (length in `length` when given). */
  intList(key: string, range: IntRange, fallback?: number[], length?: IntRange): number[] {
    const v = this.obj[key] ?? fallback;
    const lengthOk = (n: number) => !length || (n >= length.min && n <= length.max);
    if (!Array.isArray(v) || !lengthOk(v.length) || !v.every((x) => typeof x === "number" && Number.isInteger(x) && x >= range.min && x <= range.max)) {
      const count = length ? (length.min === length.max ? `${length.min} ` : `${length.min}–${length.max} `) : "";
      throw this.fail(key, `must list ${count}integers in [${range.min}, ${range.max}]`, v);
    }
    return v as number[];
  }

  /** An integer or a list of integers (eos_token_id style), each in range. */
  intOrList(key: string, range: IntRange): number[] | undefined {
    const v = this.obj[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v === "number") return [this.int(key, range)];
    return this.intList(key, range, undefined, { min: 0, max: 1024 });
  }

  /** A nested object, or undefined when absent (null counts as absent); anything else fails. */
  object(key: string): ConfigReader | undefined {
    const v = this.obj[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "object" || Array.isArray(v)) throw this.fail(key, "must be an object", v);
    return new ConfigReader(v as Json, this.file, `${this.prefix}${key}.`);
  }
}

/** Sanity bounds shared by the families' config parsers (see the file header). */
export const LIMITS = {
  hiddenSize: { min: 1, max: 65536 },
  intermediateSize: { min: 1, max: 1 << 20 },
  layers: { min: 1, max: 1024 },
  heads: { min: 1, max: 1024 },
  headDim: { min: 2, max: 1024 },
  vocabSize: { min: 1, max: 1 << 24 },
  contextLength: { min: 1, max: 1 << 24 },
  tokenId: { min: 0, max: (1 << 24) - 1 },
  visionDepth: { min: 1, max: 1024 },
  channels: { min: 1, max: 16 },
  patchSize: { min: 1, max: 256 },
  mergeSize: { min: 1, max: 16 },
  temporalPatchSize: { min: 1, max: 16 },
  /** Frame pixel bounds of the processors: 2^26 = 8192² pixels (hub max_pixels: 12,845,056 ≈ 3584²). */
  pixels: { min: 1, max: 1 << 26 },
} as const satisfies Record<string, IntRange>;
