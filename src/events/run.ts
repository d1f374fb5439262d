/**
 * Grounding and dense captioning on a model (`VideoModel.ground` / `VideoModel.events`): the checkpoint's or family's
 * events prompt (prompts.ts) after the video, generation held to the family's output format when it declares one
 * (`constrained`, default on then), and the answer parsed by the tolerant parser against the clip the model saw
 * (clip.ts): times from the clip's start, clamped to its duration, the raw text kept beside them.
 */
import type { GenerateRequest, GenerateResponse } from "../engine/model.js";
import type { RequestPreparer } from "../engine/preparer.js";
import type { ChatRequestMessage, MediaOptions, MediaSource, VideoPart, VisualPlan } from "../engine/request.js";
import { VideolmError } from "../errors.js";
import type { EventPrompt, EventResponseFormat } from "../families/event-prompts.js";
import type { GenerationOptions } from "../generation/options.js";
import type { ProgressCallback } from "../util/progress.js";
import { clipFrameTimes, clipOf, type ClipRange } from "./clip.js";
import { eventsResult } from "./parse.js";
import { eventPromptFor } from "./prompts.js";
import type { Event, EventsResult, EventsTask } from "./types.js";

/** A video: a path / URL / the file's bytes, or a video part with its own media options (fps, start, end, …). */
export type EventsVideo = MediaSource | VideoPart;

export interface EventsOptions extends Partial<GenerationOptions> {
  /** Media options of the video (its part's own options win). */
  media?: MediaOptions;
  /**
   * Hold generation to the output format the checkpoint or family declares (a JSON schema, JSON, or a regular
   * expression), so the answer always parses. Default: on when one is declared; asking for it when none is declared
   * adds a warning and generates freely.
   */
  constrained?: boolean;
  signal?: AbortSignal;
  onToken?: GenerateRequest["onToken"];
  /** Decoding and encoding progress of long videos. */
  onProgress?: ProgressCallback;
  thinkingBudget?: number;
}

/** An events result with how it was obtained. */
export interface EventsResponse<R extends GenerateResponse = GenerateResponse> extends EventsResult {
  /** The text asked after the video, and where its phrasing comes from. */
  prompt: string;
  promptSource: string;
  /** Whether generation was held to `responseFormat`. */
  constrained: boolean;
  responseFormat?: EventResponseFormat;
  /** The clip the times refer to: where it starts in the file and its length (= `duration`). */
  clip: ClipRange;
  /** The generation: tokens, timings, finish reason, reasoning of thinking checkpoints (the model's own response type). */
  response: R;
}

/** What runEvents needs of a model (VideoModel satisfies it; so does a RemoteModel with a planner). */
export interface EventsModel<R extends GenerateResponse = GenerateResponse> {
  readonly preparer: RequestPreparer;
  generate(request: GenerateRequest): Promise<R>;
}

/** The video as a part (a part given whole keeps its options). */
export function videoPart(video: EventsVideo): VideoPart {
  if (typeof video === "object" && video !== null && !Buffer.isBuffer(video) && !(video instanceof URL) && (video as VideoPart).type === "video") return video as VideoPart;
  if (typeof video !== "string" && !Buffer.isBuffer(video) && !(video instanceof URL)) throw new VideolmError("events: expected a video path, URL, Buffer or {type: \"video\", video, …} part");
  return { type: "video", video };
}

/** Re-plans until the prompt's frame times agree with the planned frames (fitting the context may drop frames). */
const MAX_PLAN_ROUNDS = 3;

export async function runEvents<R extends GenerateResponse>(
  model: EventsModel<R>,
  video: EventsVideo,
  task: EventsTask,
  query: string | undefined,
  options: EventsOptions = {},
): Promise<EventsResponse<R>> {
  if (task === "grounding" && !query?.trim()) throw new VideolmError("ground: give a query, e.g. model.ground(video, \"the red circle is visible\")");
  const { media = {}, constrained: wantConstrained, signal, onToken, onProgress, thinkingBudget, ...generation } = options;
  const preparer = model.preparer;
  preparer.resolveOptions(generation); // validates the generation options before any media is read
  const part = videoPart(video);
  const promptFor = (frameTimes?: number[]) => eventPromptFor(preparer.family, preparer.dir, { task, query, frameTimes });
  const messagesWith = (text: string): ChatRequestMessage[] => [{ role: "user", content: [part, { type: "text", text }] }];

  let prompt: EventPrompt = promptFor();
  let plan = await preparer.plan(messagesWith(prompt.text), media, { maxNewTokens: generation.maxNewTokens, signal });
  let clip: ClipRange = { start: 0, duration: 0 };
  for (let round = 0; ; round++) {
    const planned = plan.messages[0].content as VideoPart[];
    const visual = plan.visuals[0];
    if (!visual || visual.kind !== "video") throw new VideolmError("events: the request holds no video");
    const options = { ...media, ...planned[0] };
    clip = clipOf(visual, options);
    const next = promptFor(clipFrameTimes(visual, clip));
    // Stable, or out of rounds: the planned text stays (a few frame times off is better than an unplanned prompt).
    if (next.text === prompt.text || round + 1 >= MAX_PLAN_ROUNDS) break;
    prompt = next;
    plan = await preparer.plan(messagesWith(prompt.text), media, { maxNewTokens: generation.maxNewTokens, signal });
  }
  if (!plan.fits) throw new VideolmError(`events: this request ${plan.advice ?? "does not fit the model's context"}`);

  const constrained = (wantConstrained ?? prompt.responseFormat !== undefined) && prompt.responseFormat !== undefined;
  const prepared = await preparer.realise(plan, media, signal, onProgress);
  const response = await model.generate({
    messages: plan.messages,
    prepared,
    media,
    ...generation,
    maxNewTokens: plan.maxNewTokens,
    signal,
    onToken,
    onProgress,
    thinkingBudget,
    ...(constrained ? { responseFormat: prompt.responseFormat } : {}),
  });
  const result = parseAnswer(response.text, { task, query, clip, timeOrigin: prompt.timeOrigin });
  if (wantConstrained && !prompt.responseFormat) result.warnings.unshift("constrained output was asked for, but this checkpoint declares no output format for this task: generated without constraint");
  return {
    ...result,
    prompt: prompt.text,
    promptSource: prompt.source,
    constrained,
    ...(prompt.responseFormat ? { responseFormat: prompt.responseFormat } : {}),
    clip,
    response,
  };
}

/**
 * The events of an answer about `clip`. Times the model counts from the file's start (timeOrigin "source") are
 * parsed against the file's time up to the clip's end, then moved to the clip's start and clamped again.
 */
export function parseAnswer(text: string, o: { task: EventsTask; query?: string; clip: ClipRange; timeOrigin: EventPrompt["timeOrigin"] }): EventsResult {
  const { clip } = o;
  if (o.timeOrigin === "clip" || clip.start === 0) return eventsResult(text, { task: o.task, query: o.query, duration: clip.duration });
  const inFile = eventsResult(text, { task: o.task, query: o.query, duration: clip.start + clip.duration });
  const warnings = [...inFile.warnings];
  const events: Event[] = [];
  for (const e of inFile.events) {
    const start = e.start - clip.start;
    const end = e.end - clip.start;
    if (end <= 0) {
      warnings.push(`event "${clip1(e.text)}" (${fmt(e.start)}–${fmt(e.end)} s in the file) ends before the clip's start at ${fmt(clip.start)} s: dropped`);
      continue;
    }
    if (start < 0) warnings.push(`event "${clip1(e.text)}" starts at ${fmt(e.start)} s in the file, before the clip's start at ${fmt(clip.start)} s: start clamped to 0`);
    events.push({ ...e, start: Math.max(0, start), end });
  }
  return { ...inFile, events, duration: clip.duration, parsed: inFile.parsed, warnings };
}

/**
 * The spans in a free answer about the request's first video (`videolm run --events`): parsed as dense captions
 * against that video's clip (the part's options over the request's), times moved as the family counts them.
 * Undefined when the request holds no video.
 */
export function answerEvents(
  text: string,
  preparer: Pick<RequestPreparer, "family" | "dir">,
  request: { visuals: readonly VisualPlan[]; messages: readonly ChatRequestMessage[]; media?: MediaOptions },
): EventsResult | undefined {
  const visual = request.visuals.find((v) => v.kind === "video");
  const part = request.messages.flatMap((m) => (typeof m.content === "string" ? [] : m.content)).find((p): p is VideoPart => p.type === "video");
  if (!visual || !part) return undefined;
  const clip = clipOf(visual, { ...request.media, ...part });
  const { timeOrigin } = eventPromptFor(preparer.family, preparer.dir, { task: "dense" });
  return parseAnswer(text, { task: "dense", clip, timeOrigin });
}

const fmt = (t: number) => String(Math.round(t * 100) / 100);
const clip1 = (s: string) => (s.length > 40 ? `${s.slice(0, 40)}…` : s);
