/**
 * Generation options: what the user may set, the defaults, and how a checkpoint's `generation_config.json` feeds in.
 *
 * Precedence (highest first):
 *   1. options the user set explicitly (library call / CLI flag / HTTP request field);
 *   2. the checkpoint's `generation_config.json`, read the way Hugging Face `model.generate()` reads it:
 *      `GenerationConfig(**json)`, so a key it lacks takes GenerationConfig's own default
 *      (transformers 4.57.6 `generation/configuration_utils.py::GenerationConfig.__init__`:
 *      do_sample=False, temperature=1.0, top_k=50, top_p=1.0, repetition_penalty=1.0);
 *      `do_sample: false` (or absent) means greedy, i.e. temperature 0 here;
 *   3. videolm defaults (no generation_config.json): greedy, no top-k / top-p / repetition penalty,
 *      512 new tokens.
 *
 * Why 512 new tokens: answers about a video (descriptions, lists of events with timestamps) often run past
 * 256 tokens; at CPU decode speeds 512 tokens is still well under a minute for 2B-class models.
 * `max_length` in generation_config.json counts the prompt too, so it is not used; `max_new_tokens` is.
 *
 * Why an explicit temperature > 0 turns sampling on even when the checkpoint says `do_sample: false`:
 * "temperature 0 = greedy" is the one switch the CLI and the OpenAI-compatible API have, so a user who asks for
 * temperature 0.7 wants sampling. top_k / top_p then come from the checkpoint file, else GenerationConfig's
 * defaults (top_k 50), exactly what `model.generate(do_sample=True, temperature=0.7)` would use.
 */
import { VideolmError } from "../errors.js";

export interface GenerationOptions {
  /** Upper bound on generated tokens (≥ 1). */
  maxNewTokens: number;
  /** Softmax temperature; 0 = greedy decoding (argmax, lowest index on ties). */
  temperature: number;
  /** Keep only the k highest-scoring tokens (ties with the k-th are kept, as in HF); 0 = off. */
  topK: number;
  /** Nucleus sampling mass in (0, 1]; 1 = off. */
  topP: number;
  /** HF repetition penalty (> 0); 1 = off. Applies in greedy mode too, as in HF. */
  repetitionPenalty: number;
  /** PRNG seed (non-negative safe integer); undefined = seeded from the OS's random source. */
  seed?: number;
  /** Stop strings: generation ends when the generated text contains one; it is not emitted. */
  stop: string[];
  /**
   * Log-probabilities: undefined = not requested; n ≥ 0 = return the chosen token's logprob and the n most likely
   * alternatives per step (0..20, as the OpenAI API's `top_logprobs`).
   */
  logprobs?: number;
}

export const DEFAULT_MAX_NEW_TOKENS = 512;
export const MAX_LOGPROBS = 20;

/** videolm's defaults when the checkpoint has no generation_config.json. */
export const DEFAULT_GENERATION_OPTIONS: Readonly<GenerationOptions> = Object.freeze({
  maxNewTokens: DEFAULT_MAX_NEW_TOKENS,
  temperature: 0,
  topK: 0,
  topP: 1,
  repetitionPenalty: 1,
  stop: [],
});

/** Hugging Face GenerationConfig defaults for keys missing from a generation_config.json (transformers 4.57.6). */
const HF_GENERATION_CONFIG_DEFAULTS = { temperature: 1.0, top_k: 50, top_p: 1.0, repetition_penalty: 1.0 } as const;

/** The CLI flag that sets each option, named in error messages so the user knows what to change. */
const FLAG: Record<keyof GenerationOptions, string> = {
  maxNewTokens: "--max-new-tokens",
  temperature: "--temperature",
  topK: "--top-k",
  topP: "--top-p",
  repetitionPenalty: "--repetition-penalty",
  seed: "--seed",
  stop: "--stop",
  logprobs: "logprobs",
};

function invalid(name: keyof GenerationOptions, value: unknown, rule: string): VideolmError {
  return new VideolmError(
    `Invalid generation option ${name} (${FLAG[name]}) = ${JSON.stringify(value) ?? String(value)}: ${rule}.`,
  );
}

const isNumber = (v: unknown): v is number => typeof v === "number" && !Number.isNaN(v);

/** Throws a VideolmError naming the first out-of-range option. */
export function validateGenerationOptions(o: GenerationOptions): void {
  if (!isNumber(o.maxNewTokens) || !Number.isSafeInteger(o.maxNewTokens) || o.maxNewTokens < 1)
    throw invalid("maxNewTokens", o.maxNewTokens, "must be an integer ≥ 1");
  if (!isNumber(o.temperature) || !Number.isFinite(o.temperature) || o.temperature < 0)
    throw invalid("temperature", o.temperature, "must be a finite number ≥ 0 (0 = greedy)");
  if (!isNumber(o.topK) || !Number.isSafeInteger(o.topK) || o.topK < 0)
    throw invalid("topK", o.topK, "must be an integer ≥ 0 (0 = off)");
  if (!isNumber(o.topP) || !(o.topP > 0 && o.topP <= 1))
    throw invalid("topP", o.topP, "must be in (0, 1] (1 = off)");
  if (!isNumber(o.repetitionPenalty) || !Number.isFinite(o.repetitionPenalty) || o.repetitionPenalty <= 0)
    throw invalid("repetitionPenalty", o.repetitionPenalty, "must be a finite number > 0 (1 = off)");
  if (o.seed !== undefined && (!isNumber(o.seed) || !Number.isSafeInteger(o.seed) || o.seed < 0))
    throw invalid("seed", o.seed, "must be a non-negative integer ≤ 2^53−1");
  if (!Array.isArray(o.stop) || o.stop.some((s) => typeof s !== "string" || s.length === 0))
    throw invalid("stop", o.stop, "must be a list of non-empty strings");
  if (o.logprobs !== undefined && (!Number.isSafeInteger(o.logprobs) || o.logprobs < 0 || o.logprobs > MAX_LOGPROBS))
    throw invalid("logprobs", o.logprobs, `must be an integer in 0..${MAX_LOGPROBS}`);
}

/** The sampling-related fields of a generation_config.json, with HF's defaults filled in. */
interface CheckpointSampling {
  doSample: boolean;
  temperature: number;
  topK: number;
  topP: number;
  repetitionPenalty: number;
  maxNewTokens?: number;
}

function readCheckpointSampling(json: unknown): CheckpointSampling {
  if (typeof json !== "object" || json === null || Array.isArray(json))
    throw new VideolmError("generation_config.json: expected a JSON object at the top level; fix or delete the file.");
  const g = json as Record<string, unknown>;
  // `null` is how HF serialises "unset"; treat it like a missing key.
  const num = (key: string, fallback: number): number => {
    const v = g[key];
    if (v === undefined || v === null) return fallback;
    if (!isNumber(v)) throw new VideolmError(`generation_config.json: "${key}" must be a number, got ${JSON.stringify(v)}.`);
    return v;
  };
  const doSample = g.do_sample;
  if (doSample !== undefined && doSample !== null && typeof doSample !== "boolean")
    throw new VideolmError(`generation_config.json: "do_sample" must be true or false, got ${JSON.stringify(doSample)}.`);
  const maxNew = g.max_new_tokens;
  return {
    doSample: doSample === true,
    temperature: num("temperature", HF_GENERATION_CONFIG_DEFAULTS.temperature),
    topK: num("top_k", HF_GENERATION_CONFIG_DEFAULTS.top_k),
    topP: num("top_p", HF_GENERATION_CONFIG_DEFAULTS.top_p),
    repetitionPenalty: num("repetition_penalty", HF_GENERATION_CONFIG_DEFAULTS.repetition_penalty),
    maxNewTokens: maxNew === undefined || maxNew === null ? undefined : num("max_new_tokens", DEFAULT_MAX_NEW_TOKENS),
  };
}

/**
 * Full, validated options: explicit user options over the checkpoint's generation_config.json (parsed JSON; pass
 * undefined/null when the checkpoint has none) over videolm defaults. See the file comment for the rules.
 * A user field set to `undefined` counts as not set.
 */
export function resolveGenerationOptions(
  userOptions: Partial<GenerationOptions> | undefined,
  generationConfigJson?: unknown,
): GenerationOptions {
  const user = Object.fromEntries(
    Object.entries(userOptions ?? {}).filter(([, v]) => v !== undefined),
  ) as Partial<GenerationOptions>;

  const base: GenerationOptions = { ...DEFAULT_GENERATION_OPTIONS, stop: [] };
  if (generationConfigJson !== undefined && generationConfigJson !== null) {
    const ck = readCheckpointSampling(generationConfigJson);
    // HF applies the repetition penalty as a logits *processor*, in greedy mode too.
    base.repetitionPenalty = ck.repetitionPenalty;
    // top_k / top_p matter whenever sampling ends up on (checkpoint do_sample, or user temperature > 0).
    base.topK = ck.topK;
    base.topP = ck.topP;
    // HF's TemperatureLogitsWarper rejects 0; a checkpoint saying do_sample with temperature 0 is treated as greedy.
    base.temperature = ck.doSample ? ck.temperature : 0;
    if (ck.maxNewTokens !== undefined) base.maxNewTokens = ck.maxNewTokens;
  }
  const resolved: GenerationOptions = { ...base, ...user, stop: [...(user.stop ?? base.stop)] };
  validateGenerationOptions(resolved);
  return resolved;
}
