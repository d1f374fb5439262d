/**
 * The events prompt of a /v1/events request, written where the request is planned (the preparation worker): the
 * checkpoint's or family's grounding / dense-captioning text (src/events/prompts.ts eventPromptFor) after the
 * request's first video. Families told their frames' times as text (Qwen2-VL, InternVL) have a prompt that depends on
 * the planned frames, and fitting the context may change the frames, so the request is re-planned until the prompt's
 * frame times agree with the plan — the same rounds as the library's runEvents (src/events/run.ts).
 */
import type { RequestPlan, RequestPreparer } from "../engine/preparer.js";
import type { ChatRequestMessage, ContentPart, MediaOptions, VideoPart } from "../engine/request.js";
import { VideolmError } from "../errors.js";
import { clipFrameTimes, clipOf } from "../events/clip.js";
import { eventPromptFor } from "../events/prompts.js";
import type { EventsTask } from "../events/types.js";
import type { EventPrompt } from "../families/event-prompts.js";

/** What the worker is asked to write (PrepareJobOptions.eventsPrompt). */
export interface EventsPromptRequest {
  task: EventsTask;
  query?: string;
}

/** As runEvents: re-plan at most this many times. */
const MAX_PLAN_ROUNDS = 3;

/** `messages` with `text` as a text part right after the first video part. */
export function withPromptAfterVideo(messages: ChatRequestMessage[], text: string): ChatRequestMessage[] {
  let done = false;
  return messages.map((m) => {
    if (done || typeof m.content === "string") return m;
    const at = m.content.findIndex((p) => p.type === "video");
    if (at < 0) return m;
    done = true;
    const content: ContentPart[] = [...m.content.slice(0, at + 1), { type: "text", text }, ...m.content.slice(at + 1)];
    return { ...m, content };
  });
}

/**
 * Plans `messages` with the events prompt after their first video: `plan(messages)` is the caller's planner (its
 * limits and signal). Returns the final plan (whose `messages` carry the prompt) and the prompt.
 */
export async function planWithEventsPrompt(
  preparer: Pick<RequestPreparer, "family" | "dir">,
  messages: ChatRequestMessage[],
  request: EventsPromptRequest,
  media: MediaOptions,
  plan: (messages: ChatRequestMessage[]) => Promise<RequestPlan>,
): Promise<{ plan: RequestPlan; prompt: EventPrompt }> {
  const promptFor = (frameTimes?: number[]) => eventPromptFor(preparer.family, preparer.dir, { task: request.task, query: request.query, frameTimes });
  let prompt = promptFor();
  let current = await plan(withPromptAfterVideo(messages, prompt.text));
  for (let round = 1; ; round++) {
    const visual = current.visuals.find((v) => v.kind === "video");
    const part = current.messages.flatMap((m) => (typeof m.content === "string" ? [] : m.content)).find((p): p is VideoPart => p.type === "video");
    if (!visual || !part) throw new VideolmError("an events request needs a video");
    const next = promptFor(clipFrameTimes(visual, clipOf(visual, { ...media, ...part })));
    // The plan holds `prompt`; after the last round it is kept even if its frame times are a re-plan behind.
    if (next.text === prompt.text || round >= MAX_PLAN_ROUNDS) return { plan: current, prompt };
    prompt = next;
    current = await plan(withPromptAfterVideo(messages, prompt.text));
  }
}
