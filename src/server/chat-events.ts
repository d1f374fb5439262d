/**
 * Chat completions with `response_format: {"type": "videolm_events", "task"?, "query"?, "constrained"?}`: the answer
 * is also parsed into events of the request's (first) video — `message.events` ([{start, end, text}], seconds from the
 * start of the clip the model saw, clamped to its length) and `message.videolm_events` ({task, query?, parsed,
 * warnings, duration, constrained}) beside `content`; when streaming, both arrive in the final chunk's `delta`.
 * `constrained` (default: on when the checkpoint or family declares an output format for the task) holds generation
 * to that format (src/events/prompts.ts). The messages stay the client's own: /v1/events (events-endpoint.ts) is the
 * route that writes the family's prompt.
 */
import type { PreparedRequest, RequestPreparer } from "../engine/preparer.js";
import type { ChatRequestMessage, VideoPart } from "../engine/request.js";
import type { EventResponseFormat } from "../families/event-prompts.js";
import { clipOf } from "../events/clip.js";
import { eventPromptFor } from "../events/prompts.js";
import { parseAnswer } from "../events/run.js";
import type { Event } from "../events/types.js";
import type { ChatEventsFormat } from "./chat-request.js";

/** How an events request generates: the format it is held to (when constrained) and where the family's times count from. */
export interface ChatEventsPlan {
  format: ChatEventsFormat;
  responseFormat?: EventResponseFormat;
  constrained: boolean;
  timeOrigin: "clip" | "source";
}

export function chatEventsPlan(preparer: Pick<RequestPreparer, "family" | "dir">, format: ChatEventsFormat): ChatEventsPlan {
  const prompt = eventPromptFor(preparer.family, preparer.dir, { task: format.task, query: format.query });
  const constrained = (format.constrained ?? prompt.responseFormat !== undefined) && prompt.responseFormat !== undefined;
  return { format, ...(constrained ? { responseFormat: prompt.responseFormat } : {}), constrained, timeOrigin: prompt.timeOrigin };
}

/** The fields an events answer adds to the message (or the final chunk's delta). */
export interface ChatEventsFields {
  events: Event[];
  videolm_events: { task: ChatEventsFormat["task"]; query?: string; parsed: boolean; warnings: string[]; duration: number; constrained: boolean };
}

/** The answer's events against the request's first video (its clip: the part's start / end, the file's length). */
export function chatEventsFields(text: string, plan: ChatEventsPlan, prepared: Pick<PreparedRequest, "visuals">, messages: readonly ChatRequestMessage[]): ChatEventsFields {
  const visual = prepared.visuals.find((v) => v.kind === "video");
  const part = messages.flatMap((m) => (typeof m.content === "string" ? [] : m.content)).find((p): p is VideoPart => p.type === "video");
  const clip = visual && part ? clipOf(visual, part) : { start: 0, duration: 0 };
  const { task, query } = plan.format;
  const result = parseAnswer(text, { task, query, clip, timeOrigin: plan.timeOrigin });
  const warnings = [...result.warnings];
  if (!plan.constrained && plan.format.constrained) warnings.unshift("constrained output was asked for, but this checkpoint declares no output format for this task: generated without constraint");
  return {
    events: result.events,
    videolm_events: { task, ...(query !== undefined ? { query } : {}), parsed: result.parsed, warnings, duration: result.duration, constrained: plan.constrained },
  };
}
