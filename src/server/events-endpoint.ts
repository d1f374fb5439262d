/**
 * `POST /v1/events`: a video's events — the span(s) where a query happens (grounding) or the list of what happens
 * (dense captions) — as JSON, SRT, WebVTT or CSV.
 *
 *   {"video": {"url": "upload://ID" | "https://…" | "data:…", "fps"?, "max_frames"?, "start"?, "end"?, …},
 *    "task": "grounding" | "dense", "query"?: "…" (grounding only), "max_tokens"?, "constrained"?,
 *    "format"?: "json" | "srt" | "vtt" | "csv", "model"?, "temperature"?, "top_p"?, "top_k"?, "seed"?, "repetition_penalty"?}
 *
 * A thin layer over chat completions: the body becomes a chat request with one user message holding the video and
 * `response_format: {type: "videolm_events", task, query, constrained}`, validated by the chat parser (so the video
 * options, URL schemes, SSRF guard, upload ids and limits are exactly chat's), run by the server's chat path (same
 * admission, queue, abort and counters) and its finished completion reshaped here. The prompt is the model family's
 * own for the task (chosen by the server, not the client).
 */
import type { ServerResponse } from "node:http";
import { EVENTS_FORMATS, formatEvents, type EventsFormat } from "../events/format.js";
import type { Event, EventsTask } from "../events/types.js";
import { parseChatRequest, type ChatRequest, type RequestLimits } from "./chat-request.js";
import { badRequest, HttpError } from "./errors.js";
import { sendJson } from "./http.js";
import type { ChatCompletionBody, ChatRoute } from "./server.js";

/** A chat request made from an events body, with what the answer needs to know. */
export interface EventsChatRequest extends ChatRequest {
  eventsTask: EventsTask;
  eventsQuery?: string;
  eventsFormat: EventsFormat;
}

/** Longest grounding query, in characters: a sentence, not a document (the prompt has its own token limit too). */
export const MAX_QUERY_CHARS = 1000;

const TASKS: EventsTask[] = ["grounding", "dense"];
/** Generation fields passed through to the chat request as they are (validated there). */
const PASSED = ["model", "max_tokens", "temperature", "top_p", "top_k", "seed", "repetition_penalty"];
const KNOWN = [...PASSED, "video", "task", "query", "constrained", "format"];

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const typeName = (v: unknown) => (v === null ? "null" : Array.isArray(v) ? "an array" : typeof v === "object" ? "an object" : `a ${typeof v}`);
const quote = (s: string) => JSON.stringify(s.length > 100 ? `${s.slice(0, 100)}…` : s);

function oneOf<T extends string>(v: unknown, param: string, allowed: readonly T[]): T {
  if (typeof v !== "string" || !allowed.includes(v as T)) {
    const got = typeof v === "string" ? quote(v) : typeName(v);
    throw badRequest(`${param} must be ${allowed.map((a) => `"${a}"`).join(", ")}; got ${got}`, param);
  }
  return v as T;
}

/** Where the chat parser names the video part; errors are renamed to this endpoint's `video`. */
const CHAT_VIDEO_PARAM = "messages[0].content[0].video_url";

/** The chat parser's error, worded for this endpoint's body (`video.fps`, not `messages[0].content[0].video_url.fps`). */
function renamed(err: unknown): unknown {
  if (!(err instanceof HttpError)) return err;
  const rename = (s: string) => s.split(CHAT_VIDEO_PARAM).join("video").split("messages[0].content[0]").join("video");
  return new HttpError(err.status, rename(err.message), err.type, err.param === null ? null : rename(err.param), err.code);
}

export function parseEventsRequest(body: unknown, limits: RequestLimits): EventsChatRequest {
  if (!isObject(body)) throw badRequest(`the request body must be a JSON object, got ${typeName(body)}`);
  for (const key of Object.keys(body)) {
    if (!KNOWN.includes(key)) throw badRequest(`${quote(key)} is not a field of /v1/events (known: ${KNOWN.join(", ")})`, key, "unknown_parameter");
  }
  if (body.video === undefined || body.video === null) throw badRequest('video is required: {"url": "upload://ID" | "https://…" | "data:…", "fps"?, "max_frames"?, …}', "video");
  if (!isObject(body.video) && typeof body.video !== "string") throw badRequest(`video must be an object {"url": …, options} or a URL string, got ${typeName(body.video)}`, "video");
  if (body.task === undefined || body.task === null) throw badRequest('task is required: "grounding" (with a query) or "dense" (every event)', "task");
  const task = oneOf(body.task, "task", TASKS);
  const format = body.format === undefined || body.format === null ? "json" : oneOf(body.format, "format", EVENTS_FORMATS);
  let query: string | undefined;
  if (task === "grounding") {
    if (body.query === undefined || body.query === null) throw badRequest('task "grounding" needs a query: what to find, e.g. "the red ball is visible"', "query");
    if (typeof body.query !== "string") throw badRequest(`query must be a string, got ${typeName(body.query)}`, "query");
    query = body.query.trim();
    if (!query) throw badRequest("query is empty", "query");
    if (query.length > MAX_QUERY_CHARS) throw badRequest(`query is ${query.length} characters; at most ${MAX_QUERY_CHARS}`, "query", "limit_exceeded");
  } else if (body.query !== undefined && body.query !== null) {
    throw badRequest('query is only for task "grounding" (task "dense" lists every event)', "query");
  }
  if (body.constrained !== undefined && body.constrained !== null && typeof body.constrained !== "boolean") {
    throw badRequest(`constrained must be true or false, got ${typeName(body.constrained)}`, "constrained");
  }
  const chatBody: Record<string, unknown> = {
    messages: [{ role: "user", content: [{ type: "video_url", video_url: body.video }] }],
    response_format: { type: "videolm_events", task, ...(query !== undefined ? { query } : {}), ...(typeof body.constrained === "boolean" ? { constrained: body.constrained } : {}) },
  };
  for (const key of PASSED) if (body[key] !== undefined) chatBody[key] = body[key];
  let chat: ChatRequest;
  try {
    chat = parseChatRequest(chatBody, limits);
  } catch (err) {
    throw renamed(err);
  }
  return { ...chat, stream: false, eventsTask: task, ...(query !== undefined ? { eventsQuery: query } : {}), eventsFormat: format };
}

/** What the chat path adds to the assistant message under response_format videolm_events. */
interface EventsMessage {
  content: string;
  events?: Event[];
  videolm_events?: { parsed: boolean; warnings: string[]; duration: number; task: EventsTask };
}

/** The finished completion as this endpoint's answer. */
export function eventsBody(completion: ChatCompletionBody, request: EventsChatRequest) {
  const choice = completion.choices[0];
  const message = choice.message as unknown as EventsMessage;
  const meta = message.videolm_events;
  // The chat path always adds these under response_format videolm_events; their absence is a fault of the server.
  if (!meta || !Array.isArray(message.events)) throw new Error("the chat completion carries no videolm_events (response_format not applied)");
  return {
    object: "videolm.events" as const,
    id: completion.id.replace(/^chatcmpl-/, "events-"),
    created: completion.created,
    model: completion.model,
    task: request.eventsTask,
    ...(request.eventsQuery !== undefined ? { query: request.eventsQuery } : {}),
    duration: meta.duration,
    events: message.events,
    raw: message.content,
    parsed: meta.parsed,
    warnings: meta.warnings,
    finish_reason: choice.finish_reason,
    usage: completion.usage,
    videolm_timings: completion.videolm_timings,
  };
}

/** Content-Type of each subtitle / table format (SubRip has no registered type; application/x-subrip is the usual one). */
const CONTENT_TYPES: Record<Exclude<EventsFormat, "json">, string> = {
  srt: "application/x-subrip; charset=utf-8",
  vtt: "text/vtt; charset=utf-8",
  csv: "text/csv; charset=utf-8; header=present",
};

/**
 * JSON: the whole answer. SRT / VTT / CSV: the events as that file (formatEvents, the CLI's --format), with what the
 * file cannot say in headers — whether anything parsed, the clip's duration, the number of parser warnings.
 */
export function respondEvents(res: ServerResponse, completion: ChatCompletionBody, request: EventsChatRequest): void {
  const body = eventsBody(completion, request);
  if (request.eventsFormat === "json") return sendJson(res, 200, body);
  const data = Buffer.from(formatEvents(body.events, request.eventsFormat));
  res.writeHead(200, {
    "Content-Type": CONTENT_TYPES[request.eventsFormat],
    "Content-Length": String(data.length),
    "X-Videolm-Events-Parsed": String(body.parsed),
    "X-Videolm-Events-Duration": String(body.duration),
    "X-Videolm-Events-Warnings": String(body.warnings.length),
  });
  res.end(data);
}

export const EVENTS_ROUTE: ChatRoute<EventsChatRequest> = {
  parse: parseEventsRequest,
  respond: respondEvents,
  // The family's (or checkpoint's) prompt for the task goes after the video where the request is planned.
  prepareJob: (request) => ({ eventsPrompt: { task: request.eventsTask, ...(request.eventsQuery !== undefined ? { query: request.eventsQuery } : {}) } }),
};
