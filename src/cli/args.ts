/**
 * Command-line flags shared by the commands: generation flags (the same on every command that generates),
 * media flags and model flags. Parsing is strict: an unknown flag or a malformed value is a one-line error.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { VideolmError } from "../errors.js";
import { closest } from "./suggest.js";
import type { GenerationOptions } from "../generation/options.js";
import { WEIGHT_PRECISIONS, type WeightPrecision } from "../onnx/layers.js";

export const MODEL_FLAGS = {
  model: { type: "string", short: "m" },
  dtype: { type: "string" },
  threads: { type: "string" },
  "cache-dir": { type: "string" },
} as const satisfies ParseArgsConfig["options"];

/** Vision pipelined with prefill (LoadOptions.pipeline, visionThreads); run and serve. */
export const PIPELINE_FLAGS = {
  pipeline: { type: "boolean" },
  "no-pipeline": { type: "boolean" },
  "vision-threads": { type: "string" },
} as const satisfies ParseArgsConfig["options"];

/** LoadOptions from --pipeline / --no-pipeline / --vision-threads (unset: the default by core count). */
export function pipelineFlags(flags: Flags): { pipeline?: boolean; visionThreads?: number } {
  if (flags.pipeline && flags["no-pipeline"]) throw new VideolmError("--pipeline and --no-pipeline contradict each other: give one");
  const visionThreads = numberFlag(flags, "vision-threads", { integer: true });
  if (visionThreads !== undefined && visionThreads < 1) throw new VideolmError(`--vision-threads expects a positive integer, got ${visionThreads}`);
  return {
    ...(flags.pipeline ? { pipeline: true } : flags["no-pipeline"] ? { pipeline: false } : {}),
    ...(visionThreads !== undefined ? { visionThreads } : {}),
  };
}

export const GENERATION_FLAGS = {
  "max-new-tokens": { type: "string" },
  temperature: { type: "string" },
  "top-k": { type: "string" },
  "top-p": { type: "string" },
  "repetition-penalty": { type: "string" },
  seed: { type: "string" },
  stop: { type: "string", multiple: true },
  logprobs: { type: "string" },
} as const satisfies ParseArgsConfig["options"];

export const MEDIA_FLAGS = {
  video: { type: "string", multiple: true },
  image: { type: "string", multiple: true },
  fps: { type: "string" },
  nframes: { type: "string" },
  "min-frames": { type: "string" },
  "max-frames": { type: "string" },
  "min-pixels": { type: "string" },
  "max-pixels": { type: "string" },
  "total-pixels": { type: "string" },
  "max-input-pixels": { type: "string" },
  start: { type: "string" },
  end: { type: "string" },
  "frame-times": { type: "string" },
  prune: { type: "string" },
  policy: { type: "string" },
  "policy-task": { type: "string" },
  "flash-relative": { type: "string" },
  "flash-absolute": { type: "string" },
  "no-flash": { type: "boolean" },
} as const satisfies ParseArgsConfig["options"];

export const COMMON_FLAGS = {
  json: { type: "boolean" },
  debug: { type: "boolean" },
  quiet: { type: "boolean", short: "q" },
  help: { type: "boolean", short: "h" },
} as const satisfies ParseArgsConfig["options"];

export type Flags = Record<string, string | boolean | string[] | undefined>;

export function parseFlags(argv: string[], options: ParseArgsConfig["options"], command: string): { flags: Flags; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
    return { flags: values as Flags, positionals };
  } catch (e) {
    const unknown = unknownOption(e);
    if (unknown !== undefined) {
      const suggestion = suggestFlag(unknown, options ?? {});
      throw new VideolmError(`${command}: unknown option ${unknown}${suggestion ? `; did you mean ${suggestion}?` : ""} (see videolm ${command} --help)`);
    }
    throw new VideolmError(`${command}: ${(e as Error).message.replace(/\s*\n\s*/g, " ")} (see videolm ${command} --help)`);
  }
}

/** The flag node's parseArgs refused as unknown (`--max-frame`, `-x`), or undefined for any other parse error. */
function unknownOption(e: unknown): string | undefined {
  if ((e as { code?: string })?.code !== "ERR_PARSE_ARGS_UNKNOWN_OPTION") return undefined;
  return /Unknown option '([^']+)'/.exec((e as Error).message)?.[1];
}

/** The known flag closest to a mistyped one: `--max-frame` → `--max-frames`, `--Model` → `--model`. */
export function suggestFlag(flag: string, options: NonNullable<ParseArgsConfig["options"]>): string | undefined {
  const long = Object.keys(options).map((k) => `--${k}`);
  if (/^-[^-]$/.test(flag)) {
    // A single-letter flag: a short option of another case (-M → -m), else nothing to guess from.
    const letter = flag[1].toLowerCase();
    const hit = Object.entries(options).find(([, o]) => o.short?.toLowerCase() === letter);
    return hit ? `-${hit[1].short}` : undefined;
  }
  // `-max-frames` (one dash) and `--max_frames` (underscores) are the same name misspelled.
  const normalized = `--${flag.replace(/^-+/, "").replace(/_/g, "-")}`;
  return closest(normalized, long);
}

export function numberFlag(flags: Flags, name: string, opts: { integer?: boolean } = {}): number | undefined {
  const raw = flags[name];
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (typeof raw !== "string" || raw.trim() === "" || !Number.isFinite(value) || (opts.integer && !Number.isInteger(value))) {
    throw new VideolmError(`--${name} expects ${opts.integer ? "an integer" : "a number"}, got ${JSON.stringify(raw)}`);
  }
  return value;
}

/** Generation options the user set explicitly (the rest come from the checkpoint / defaults). */
export function generationFlags(flags: Flags): Partial<GenerationOptions> {
  const out: Partial<GenerationOptions> = {};
  const set = <K extends keyof GenerationOptions>(k: K, v: GenerationOptions[K] | undefined) => {
    if (v !== undefined) out[k] = v;
  };
  set("maxNewTokens", numberFlag(flags, "max-new-tokens", { integer: true }));
  set("temperature", numberFlag(flags, "temperature"));
  set("topK", numberFlag(flags, "top-k", { integer: true }));
  set("topP", numberFlag(flags, "top-p"));
  set("repetitionPenalty", numberFlag(flags, "repetition-penalty"));
  set("seed", numberFlag(flags, "seed", { integer: true }));
  set("logprobs", numberFlag(flags, "logprobs", { integer: true }));
  if (flags.stop) out.stop = flags.stop as string[];
  return out;
}

export function precisionFlag(flags: Flags): WeightPrecision {
  const raw = (flags.dtype as string | undefined) ?? "fp32";
  if (!WEIGHT_PRECISIONS.includes(raw as WeightPrecision)) throw new VideolmError(`--dtype must be one of ${WEIGHT_PRECISIONS.join(", ")} (got ${raw})`);
  return raw as WeightPrecision;
}
