/**
 * What a batch job needs of a model, local or remote, and how one item is run on it. VideoModel fits (generate,
 * prepare, events, ground); a remote model with the same `generate()` surface fits too. Tasks a model does not offer
 * (events / ground on an engine without them) fail that item with a message saying so.
 */
import type { GenerateRequest, GenerateResponse } from "../engine/model.js";
import type { PreparedRequest } from "../engine/preparer.js";
import type { ChatRequestMessage, MediaOptions, VideoPart } from "../engine/request.js";
import { VideolmError } from "../errors.js";
import type { EventsResult } from "../events/types.js";
import type { GenerationOptions } from "../generation/options.js";
import type { BatchItem } from "./items.js";
import type { ResultRecord } from "./results.js";

/** The parts of a generation a result records. */
export type EngineResponse = Pick<GenerateResponse, "text" | "tokens" | "promptTokens" | "finishReason"> & { timings?: Partial<GenerateResponse["timings"]> };

export interface EngineEventsOptions extends Partial<GenerationOptions> {
  media?: MediaOptions;
  signal?: AbortSignal;
}

/** An events / grounding result and the generation behind it (VideoModel.events / ground: EventsResponse). */
export type EngineEvents = EventsResult & { response?: EngineResponse };

export interface BatchEngine {
  generate(request: GenerateRequest): Promise<EngineResponse>;
  /** Local models: preparation on its own, so the next item's media decoding overlaps this one's generation. */
  prepare?(messages: ChatRequestMessage[], media?: MediaOptions, signal?: AbortSignal): Promise<PreparedRequest>;
  events?(video: VideoPart, options?: EngineEventsOptions): Promise<EngineEvents>;
  ground?(video: VideoPart, query: string, options?: EngineEventsOptions): Promise<EngineEvents>;
}

/** The job-wide settings every item runs with (its own media options win over `media`). */
export interface ItemSettings {
  generation: Partial<GenerationOptions>;
  media: MediaOptions;
}

/** What running an item produced: the fields of its result line that come from the model. */
export type ItemAnswer = Pick<ResultRecord, "answer" | "events" | "timings" | "usage" | "finishReason">;

/** The messages of an answer item: the video (with its own options) then the question. */
export function answerMessages(item: BatchItem): ChatRequestMessage[] {
  return [{ role: "user", content: [videoPart(item), { type: "text", text: item.question ?? "" }] }];
}

export function videoPart(item: BatchItem): VideoPart {
  return { type: "video", video: item.video, ...item.media };
}

/**
 * Runs one item. `serial` wraps the part that must not run beside another item on the same model (a local model's
 * generation); preparing media runs outside it, so the next item's decoding overlaps this one's generation.
 */
export async function runItem(engine: BatchEngine, item: BatchItem, settings: ItemSettings, signal: AbortSignal, serial: <T>(work: () => Promise<T>) => Promise<T> = (w) => w()): Promise<ItemAnswer> {
  const t0 = performance.now();
  const { generation, media } = settings;
  if (item.task === "answer") {
    const messages = answerMessages(item);
    const prepared = engine.prepare ? await engine.prepare(messages, media, signal) : undefined;
    const response = await serial(() => engine.generate({ messages, media, ...(prepared ? { prepared } : {}), ...generation, signal }));
    return { answer: response.text, ...fromResponse(response, t0) };
  }
  const method = item.task === "events" ? engine.events : engine.ground;
  if (!method) throw new VideolmError(`this backend cannot run task ${item.task} (it offers answer only)`);
  const options: EngineEventsOptions = { media, ...generation, signal };
  const result = await serial(() => (item.task === "events" ? engine.events!(videoPart(item), options) : engine.ground!(videoPart(item), item.query ?? "", options)));
  const { events, duration, parsed, warnings } = result;
  return {
    answer: result.raw,
    events: { events, duration, parsed, warnings },
    ...(result.response ? fromResponse(result.response, t0) : { timings: { totalMs: round(performance.now() - t0) } }),
  };
}

function fromResponse(r: EngineResponse, t0: number): Pick<ItemAnswer, "timings" | "usage" | "finishReason"> {
  const timings: Record<string, number> = { totalMs: round(performance.now() - t0) };
  for (const [k, v] of Object.entries(r.timings ?? {})) if (typeof v === "number" && Number.isFinite(v)) timings[k] = round(v);
  return { timings, usage: { promptTokens: r.promptTokens, completionTokens: r.tokens.length }, finishReason: r.finishReason };
}

const round = (x: number) => Math.round(x * 10) / 10;

/** A promise chain that runs one piece of work at a time (a local model generates one request at a time). */
export function serialQueue(): <T>(work: () => Promise<T>) => Promise<T> {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(work: () => Promise<T>) => {
    const run = tail.then(work, work);
    tail = run.catch(() => {});
    return run;
  };
}
