/**
 * Validation of an OpenAI chat-completions request body into videolm's terms. Every wrong type or value is a 400
 * naming the field (`param`, e.g. `messages[0].content[1].video_url.fps`); unknown top-level fields are ignored (as
 * OpenAI-compatible servers do, since client libraries send extra ones), unknown content parts and unknown video
 * options are errors (a typo there would silently change what the model sees).
 *
 * Content parts:
 *   {"type": "text", "text": "…"}
 *   {"type": "image_url", "image_url": {"url": "https://… | data:image/…;base64,… | file://… | upload://id", "min_pixels"?, "max_pixels"?}}
 *   {"type": "video_url", "video_url": {"url": "…", "fps"?, "nframes"?, "min_frames"?, "max_frames"?, "min_pixels"?,
 *                                        "max_pixels"?, "total_pixels"?, "start"?, "end"?, "frame_times"?, "prune"?,
 *                                        "policy"?, "policy_task"?}}
 * (policy: "seed1.5" = Seed1.5-VL's frame-resolution sampling, policy_task: general | detail | motion | counting)
 * (prune: EVS token pruning, the fraction of the video's tokens to drop, in [0, 1); default 0 = none)
 * (start / end: seconds, as a number or as a string "75.5" / "1:15.5" / "0:01:15.5")
 * (video options may also sit beside "video_url" in the part, as in vLLM's qwen-vl-utils style.)
 */
import { checkPolicyOptions } from "../sampling/policy.js";
import type { GenerationOptions } from "../generation/options.js";
import type { MediaOptions } from "../engine/request.js";
import { badRequest } from "./errors.js";
import { API_SPELLING, OptionError } from "../option-error.js";
import { checkFrameOptions, checkPixelBounds } from "../sampling/qwen-vl-utils.js";
import { parseTimeValue } from "../util/time.js";
import { VideolmError } from "../errors.js";
import type { EventsTask } from "../events/types.js";
import { validateResponseFormat, type ResponseFormat } from "../generation/constrained/response-format.js";

export interface RequestLimits {
  /** Largest max_tokens accepted. */
  maxTokens: number;
  /** Most frames one request may sample (all videos together). */
  maxFrames: number;
  /** Largest per-frame pixel count a request may ask for (min_pixels / max_pixels). */
  maxFramePixels: number;
  /** Most image/video parts in one request. */
  maxMediaParts: number;
}

export interface WireMediaPart {
  kind: "image" | "video";
  url: string;
  options: MediaOptions;
  /** Where it sits in the request, for error messages. */
  param: string;
}
export type WirePart = { kind: "text"; text: string } | WireMediaPart;
export interface WireMessage {
  role: "system" | "user" | "assistant";
  content: string | WirePart[];
}

export interface ChatRequest {
  model?: string;
  messages: WireMessage[];
  stream: boolean;
  includeUsage: boolean;
  generation: Partial<GenerationOptions>;
  /** OpenAI logprobs=true: return logprobs; topLogprobs alternatives per token. */
  logprobs: boolean;
  topLogprobs: number;
  /** Extension for Thinking checkpoints: at most this many reasoning tokens (as `videolm run --thinking-budget`). */
  thinkingBudget?: number;
  /**
   * Extension for InternVL3.5-Flash checkpoints (as `--flash-relative` / `--flash-absolute` / `--no-flash`): `false`,
   * or `{relative?, absolute?}` in [0, 1] overriding the checkpoint's router thresholds for the whole request.
   */
  flash?: MediaOptions["flash"];
  /** response_format json_object / json_schema: generation held to valid JSON / the schema. */
  responseFormat?: ResponseFormat;
  /** response_format videolm_events: the answer parsed into events of the request's video (chat-events.ts). */
  events?: ChatEventsFormat;
}

/** `response_format: {"type": "videolm_events", …}` as read. */
export interface ChatEventsFormat {
  task: EventsTask;
  /** Grounding: the query, used as the text of spans the model gave no words for. */
  query?: string;
  /** Hold the answer to the family's declared format (default: on when it declares one). */
  constrained?: boolean;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const typeName = (v: unknown) => (v === null ? "null" : Array.isArray(v) ? "an array" : typeof v === "object" ? "an object" : `a ${typeof v}`);
/**
 * A client value for an error message: strings quoted and clipped, other scalars as they are, arrays and objects by
 * their kind only — never a JSON.stringify of a structure the client chose (it may be nested thousands deep).
 */
const describe = (v: unknown) =>
  typeof v === "string" ? JSON.stringify(v.length > 100 ? `${v.slice(0, 100)}…` : v)
  : typeof v === "number" || typeof v === "boolean" || v === null ? String(v)
  : v === undefined ? "nothing"
  : typeName(v);

function num(v: unknown, param: string, rule: { integer?: boolean; min?: number; exclusiveMin?: number; max?: number; exclusiveMax?: number }): number {
  if (typeof v !== "number" || !Number.isFinite(v)) throw badRequest(`${param} must be a number, got ${typeName(v)}`, param);
  if (rule.integer && !Number.isSafeInteger(v)) throw badRequest(`${param} must be an integer, got ${v}`, param);
  if (rule.min !== undefined && v < rule.min) throw badRequest(`${param} must be ≥ ${rule.min}, got ${v}`, param);
  if (rule.exclusiveMin !== undefined && v <= rule.exclusiveMin) throw badRequest(`${param} must be > ${rule.exclusiveMin}, got ${v}`, param);
  if (rule.max !== undefined && v > rule.max) throw badRequest(`${param} must be ≤ ${rule.max}, got ${v}`, param);
  if (rule.exclusiveMax !== undefined && v >= rule.exclusiveMax) throw badRequest(`${param} must be < ${rule.exclusiveMax}, got ${v}`, param);
  return v;
}

function optional<T>(body: Record<string, unknown>, key: string, read: (v: unknown, param: string) => T): T | undefined {
  const v = body[key];
  return v === undefined || v === null ? undefined : read(v, key);
}

/** start / end: a number of seconds, or a string in seconds, "mm:ss" or "hh:mm:ss" (src/util/time.ts). */
function timeValue(v: unknown, param: string): unknown {
  if (typeof v !== "string") return v;
  const seconds = parseTimeValue(v);
  if (seconds === undefined || !Number.isFinite(seconds)) {
    throw badRequest(`${param} must be a number of seconds or a time string ("75.5", "1:15.5", "0:01:15.5"), got ${describe(v)}`, param);
  }
  return seconds;
}

/** snake_case option → MediaOptions key, with its rule. */
const VIDEO_OPTIONS: Record<string, [Exclude<keyof MediaOptions, "frameTimes" | "flash" | "policy" | "policyTask">, { integer?: boolean; min?: number; exclusiveMin?: number; exclusiveMax?: number }]> = {
  fps: ["fps", { exclusiveMin: 0 }],
  nframes: ["nframes", { integer: true, min: 1 }],
  min_frames: ["minFrames", { integer: true, min: 1 }],
  max_frames: ["maxFrames", { integer: true, min: 1 }],
  min_pixels: ["minPixels", { integer: true, min: 1 }],
  max_pixels: ["maxPixels", { integer: true, min: 1 }],
  total_pixels: ["totalPixels", { integer: true, min: 1 }],
  start: ["start", { min: 0 }],
  video_start: ["start", { min: 0 }],
  end: ["end", { exclusiveMin: 0 }],
  video_end: ["end", { exclusiveMin: 0 }],
  // EVS token pruning (MediaOptions.prune): the fraction of the video's tokens to drop.
  prune: ["prune", { min: 0, exclusiveMax: 1 }],
};
/**
 * Every video option: the numeric ones above, `frame_times` ("presentation" | "reference", as --frame-times), and a
 * sampling policy: `policy` ("seed1.5") with `policy_task` (as --policy / --policy-task; checked by checkPolicyOptions).
 */
const VIDEO_OPTION_NAMES = [...Object.keys(VIDEO_OPTIONS), "frame_times", "policy", "policy_task"];
const IMAGE_OPTIONS = ["min_pixels", "max_pixels"];

function readMediaOptions(fields: Record<string, unknown>, allowed: string[], ignore: string[], param: string, limits: RequestLimits): MediaOptions {
  const out: MediaOptions = {};
  for (const [key, value] of Object.entries(fields)) {
    if (ignore.includes(key) || value === undefined || value === null) continue;
    if (!allowed.includes(key)) throw badRequest(`${param}.${key}: unknown option (known: ${allowed.join(", ")})`, `${param}.${key}`, "unknown_option");
    if (key === "frame_times") {
      if (value !== "presentation" && value !== "reference") throw badRequest(`${param}.frame_times must be "presentation" or "reference", got ${describe(value)}`, `${param}.frame_times`);
      out.frameTimes = value;
      continue;
    }
    if (key === "policy" || key === "policy_task") {
      if (typeof value !== "string") throw badRequest(`${param}.${key} must be a string, got ${describe(value)}`, `${param}.${key}`);
      if (key === "policy") out.policy = value as MediaOptions["policy"];
      else out.policyTask = value as MediaOptions["policyTask"];
      continue;
    }
    const [name, rule] = VIDEO_OPTIONS[key];
    out[name] = num(name === "start" || name === "end" ? timeValue(value, `${param}.${key}`) : value, `${param}.${key}`, rule);
  }
  if (out.fps !== undefined && out.nframes !== undefined) throw badRequest(`${param}: give fps or nframes, not both`, `${param}.nframes`);
  if (out.start !== undefined && out.end !== undefined && out.end <= out.start) throw badRequest(`${param}: end (${out.end}) must be after start (${out.start})`, `${param}.end`);
  for (const key of ["nframes", "minFrames", "maxFrames"] as const) {
    if ((out[key] ?? 0) > limits.maxFrames) throw badRequest(`${param}: ${API_SPELLING(key)} = ${out[key]} is more than the server's limit of ${limits.maxFrames} frames per request (--max-frames)`, param, "limit_exceeded");
  }
  for (const key of ["minPixels", "maxPixels"] as const) {
    if ((out[key] ?? 0) > limits.maxFramePixels) throw badRequest(`${param}: ${API_SPELLING(key)} = ${out[key]} is more than the server's limit of ${limits.maxFramePixels} pixels per frame (--max-frame-pixels)`, param, "limit_exceeded");
  }
  if ((out.totalPixels ?? 0) > limits.maxFramePixels * limits.maxFrames) {
    throw badRequest(`${param}: total_pixels = ${out.totalPixels} is more than the server allows (--max-frames × --max-frame-pixels = ${limits.maxFramePixels * limits.maxFrames})`, param, "limit_exceeded");
  }
  return out;
}

/**
 * The sampling rules no media can satisfy (min_pixels above max_pixels, nframes 1, max_frames 1), refused before the
 * media is fetched, with the library's OptionError worded in this API's names (`min_pixels`, not `minPixels`).
 */
function checkOptionRules(options: MediaOptions, param: string): void {
  try {
    checkPolicyOptions(options);
    checkPixelBounds(options);
    checkFrameOptions(options);
  } catch (e) {
    if (e instanceof OptionError) throw badRequest(`${param}: ${e.spelled(API_SPELLING)}`, `${param}.${API_SPELLING(e.options[0])}`);
    throw e;
  }
}

function readUrlField(v: unknown, param: string): { url: string; fields: Record<string, unknown> } {
  if (typeof v === "string") return { url: v, fields: {} };
  if (!isObject(v)) throw badRequest(`${param} must be an object with a "url", got ${typeName(v)}`, param);
  if (typeof v.url !== "string" || v.url.length === 0) throw badRequest(`${param}.url must be a non-empty string`, `${param}.url`);
  return { url: v.url, fields: v };
}

function readPart(part: unknown, param: string, limits: RequestLimits): WirePart {
  if (!isObject(part)) throw badRequest(`${param} must be an object, got ${typeName(part)}`, param);
  switch (part.type) {
    case "text":
      if (typeof part.text !== "string") throw badRequest(`${param}.text must be a string, got ${typeName(part.text)}`, `${param}.text`);
      return { kind: "text", text: part.text };
    case "image_url": {
      const { url, fields } = readUrlField(part.image_url, `${param}.image_url`);
      const options = readMediaOptions(fields, IMAGE_OPTIONS, ["url", "detail"], `${param}.image_url`, limits);
      checkOptionRules(options, `${param}.image_url`);
      return { kind: "image", url, options, param: `${param}.image_url.url` };
    }
    case "video_url": {
      const { url, fields } = readUrlField(part.video_url, `${param}.video_url`);
      const inner = readMediaOptions(fields, VIDEO_OPTION_NAMES, ["url", "detail"], `${param}.video_url`, limits);
      const outer = readMediaOptions(part, VIDEO_OPTION_NAMES, ["type", "video_url"], param, limits);
      const options = { ...outer, ...inner };
      checkOptionRules(options, `${param}.video_url`);
      return { kind: "video", url, options, param: `${param}.video_url.url` };
    }
    default:
      throw badRequest(
        `${param}.type: unsupported content part type ${part.type === undefined ? "(missing)" : describe(part.type)} (use "text", "image_url" or "video_url")`,
        `${param}.type`,
        "unsupported_content_type",
      );
  }
}

function readMessages(v: unknown, limits: RequestLimits): WireMessage[] {
  if (!Array.isArray(v)) throw badRequest(`messages must be an array of messages, got ${typeName(v)}`, "messages");
  if (v.length === 0) throw badRequest("messages must contain at least one message", "messages");
  let mediaParts = 0;
  const out = v.map((m, i): WireMessage => {
    const param = `messages[${i}]`;
    if (!isObject(m)) throw badRequest(`${param} must be an object, got ${typeName(m)}`, param);
    const role = m.role === "developer" ? "system" : m.role;
    if (role !== "system" && role !== "user" && role !== "assistant") {
      throw badRequest(`${param}.role must be "system", "user" or "assistant", got ${describe(m.role)}`, `${param}.role`);
    }
    if (typeof m.content === "string") return { role, content: m.content };
    if (m.content === null && role === "assistant") return { role, content: "" };
    if (!Array.isArray(m.content)) throw badRequest(`${param}.content must be a string or an array of content parts, got ${typeName(m.content)}`, `${param}.content`);
    const parts = m.content.map((p, j) => readPart(p, `${param}.content[${j}]`, limits));
    const media = parts.filter((p) => p.kind !== "text");
    if (media.length > 0 && role !== "user") throw badRequest(`${param}: images and videos can only be sent in user messages`, `${param}.content`);
    mediaParts += media.length;
    return { role, content: parts };
  });
  if (mediaParts > limits.maxMediaParts) throw badRequest(`the request has ${mediaParts} images/videos; the server's limit is ${limits.maxMediaParts} (--max-media-parts)`, "messages", "limit_exceeded");
  return out;
}

const UNSUPPORTED = ["tools", "tool_choice", "functions", "function_call", "audio", "modalities", "prediction"];

export function parseChatRequest(body: unknown, limits: RequestLimits): ChatRequest {
  if (!isObject(body)) throw badRequest(`the request body must be a JSON object, got ${typeName(body)}`);
  for (const key of UNSUPPORTED) if (body[key] !== undefined && body[key] !== null) throw badRequest(`${key} is not supported by videolm serve`, key, "unsupported_parameter");
  const model = optional(body, "model", (v, p) => {
    if (typeof v !== "string") throw badRequest(`${p} must be a string, got ${typeName(v)}`, p);
    return v;
  });
  const messages = readMessages(body.messages, limits);
  const bool = (v: unknown, p: string) => {
    if (typeof v !== "boolean") throw badRequest(`${p} must be true or false, got ${typeName(v)}`, p);
    return v;
  };
  const stream = optional(body, "stream", bool) ?? false;
  let includeUsage = false;
  if (body.stream_options !== undefined && body.stream_options !== null) {
    if (!isObject(body.stream_options)) throw badRequest("stream_options must be an object", "stream_options");
    includeUsage = body.stream_options.include_usage === undefined ? false : bool(body.stream_options.include_usage, "stream_options.include_usage");
  }
  const n = optional(body, "n", (v, p) => num(v, p, { integer: true, min: 1 }));
  if (n !== undefined && n !== 1) throw badRequest("n must be 1 (one answer per request)", "n", "unsupported_parameter");
  for (const key of ["frequency_penalty", "presence_penalty"]) {
    const v = optional(body, key, (x, p) => num(x, p, {}));
    if (v !== undefined && v !== 0) throw badRequest(`${key} is not supported (use repetition_penalty)`, key, "unsupported_parameter");
  }
  const format = optional(body, "response_format", readResponseFormat);
  if (format?.events && !messages.some((m) => typeof m.content !== "string" && m.content.some((p) => p.kind === "video"))) {
    throw badRequest('response_format videolm_events needs a video in the request (a "video_url" content part): event times are seconds of that video', "response_format");
  }
  const generation: Partial<GenerationOptions> = {};
  const maxTokens = optional(body, "max_completion_tokens", (v, p) => num(v, p, { integer: true, min: 1 })) ?? optional(body, "max_tokens", (v, p) => num(v, p, { integer: true, min: 1 }));
  if (maxTokens !== undefined) {
    if (maxTokens > limits.maxTokens) throw badRequest(`max_tokens = ${maxTokens} is more than the server's limit of ${limits.maxTokens} (--max-tokens)`, "max_tokens", "limit_exceeded");
    generation.maxNewTokens = maxTokens;
  }
  generation.temperature = optional(body, "temperature", (v, p) => num(v, p, { min: 0, max: 2 }));
  generation.topP = optional(body, "top_p", (v, p) => num(v, p, { exclusiveMin: 0, max: 1 }));
  generation.topK = optional(body, "top_k", (v, p) => num(v, p, { integer: true, min: 0 }));
  generation.repetitionPenalty = optional(body, "repetition_penalty", (v, p) => num(v, p, { exclusiveMin: 0 }));
  generation.seed = optional(body, "seed", (v, p) => num(v, p, { integer: true, min: 0 }));
  generation.stop = optional(body, "stop", (v, p) => {
    const list = typeof v === "string" ? [v] : v;
    if (!Array.isArray(list) || list.some((s) => typeof s !== "string" || s.length === 0)) throw badRequest(`${p} must be a non-empty string or an array of them`, p);
    if (list.length > 16) throw badRequest(`${p}: at most 16 stop strings`, p);
    return list as string[];
  });
  const logprobs = optional(body, "logprobs", bool) ?? false;
  const topLogprobs = optional(body, "top_logprobs", (v, p) => num(v, p, { integer: true, min: 0, max: 20 }));
  if (topLogprobs !== undefined && !logprobs) throw badRequest("top_logprobs requires logprobs: true", "top_logprobs");
  if (logprobs) generation.logprobs = topLogprobs ?? 0;
  const thinkingBudget = optional(body, "thinking_budget", (v, p) => num(v, p, { integer: true, min: 0 }));
  const flash = optional(body, "flash", readFlash);
  return {
    model,
    messages,
    stream,
    includeUsage,
    generation,
    logprobs,
    topLogprobs: topLogprobs ?? 0,
    thinkingBudget,
    ...(flash !== undefined ? { flash } : {}),
    ...(format?.responseFormat ? { responseFormat: format.responseFormat } : {}),
    ...(format?.events ? { events: format.events } : {}),
  };
}

const EVENTS_FORMAT_KEYS = ["type", "task", "query", "constrained"];
const RESPONSE_FORMAT_TYPES = '"text", "json_object", "json_schema", "regex" or "videolm_events"';

/**
 * `response_format`: {"type": "text"} (the default); {"type": "json_object"} or {"type": "json_schema", "json_schema":
 * {"name"?, "schema", "strict"?}} (OpenAI's shapes) and the extension {"type": "regex", "pattern"} (validated by
 * validateResponseFormat): generation held to valid JSON / the schema / the pattern; {"type": "videolm_events", "task"?: "grounding" | "dense", "query"?, "constrained"?}: the answer parsed
 * into events of the request's video (src/server/chat-events.ts).
 */
function readResponseFormat(v: unknown, param: string): { responseFormat?: ResponseFormat; events?: ChatEventsFormat } | undefined {
  if (!isObject(v)) throw badRequest(`${param} must be an object {"type": ${RESPONSE_FORMAT_TYPES}}, got ${typeName(v)}`, param);
  switch (v.type) {
    case "text":
      return undefined;
    case "videolm_events": {
      for (const key of Object.keys(v)) {
        if (!EVENTS_FORMAT_KEYS.includes(key)) throw badRequest(`${param}.${key}: unknown field of videolm_events (known: ${EVENTS_FORMAT_KEYS.join(", ")})`, `${param}.${key}`, "unknown_parameter");
      }
      const task = v.task ?? "dense";
      if (task !== "grounding" && task !== "dense") throw badRequest(`${param}.task must be "grounding" or "dense", got ${describe(task)}`, `${param}.task`);
      let query: string | undefined;
      if (v.query !== undefined && v.query !== null) {
        if (typeof v.query !== "string") throw badRequest(`${param}.query must be a string, got ${typeName(v.query)}`, `${param}.query`);
        if (task !== "grounding") throw badRequest(`${param}.query is only for task "grounding"`, `${param}.query`);
        query = v.query.trim() || undefined;
        if (query && query.length > 1000) throw badRequest(`${param}.query is ${query.length} characters; at most 1000`, `${param}.query`, "limit_exceeded");
      }
      let constrained: boolean | undefined;
      if (v.constrained !== undefined && v.constrained !== null) {
        if (typeof v.constrained !== "boolean") throw badRequest(`${param}.constrained must be true or false, got ${typeName(v.constrained)}`, `${param}.constrained`);
        constrained = v.constrained;
      }
      return { events: { task, ...(query !== undefined ? { query } : {}), ...(constrained !== undefined ? { constrained } : {}) } };
    }
    case "json_object":
    case "json_schema":
    case "regex":
      try {
        return { responseFormat: validateResponseFormat(v) };
      } catch (e) {
        if (e instanceof VideolmError) throw badRequest(e.message.replace(/^response_format/, param), param);
        throw e;
      }
    default:
      throw badRequest(`${param}.type must be ${RESPONSE_FORMAT_TYPES}, got ${v.type === undefined ? "nothing" : describe(v.type)}`, `${param}.type`, "unsupported_parameter");
  }
}

/** `flash`: false, or {relative?, absolute?} with numbers in [0, 1] and no other key. */
function readFlash(v: unknown, param: string): MediaOptions["flash"] {
  if (v === false) return false;
  if (!isObject(v)) throw badRequest(`${param} must be false or an object {relative, absolute}, got ${typeName(v)}`, param);
  const out: { relative?: number; absolute?: number } = {};
  for (const [key, value] of Object.entries(v)) {
    if (key !== "relative" && key !== "absolute") throw badRequest(`${param}.${key}: unknown option (known: relative, absolute)`, `${param}.${key}`, "unknown_option");
    if (value !== undefined && value !== null) out[key] = num(value, `${param}.${key}`, { min: 0, max: 1 });
  }
  return out;
}
