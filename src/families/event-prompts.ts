/**
 * How each family is asked *when* things happen (issue 19): the temporal-grounding and dense-captioning prompts the
 * family's authors published, the output format to constrain decoding to when the family's trained answer is JSON,
 * and where the family's times count from. A family exposes them as `ModelFamily.eventPrompt`; a checkpoint may
 * override the phrasing (`videolm_events` in its video_preprocessor_config.json, src/events/prompts.ts).
 *
 * Sources (verbatim texts, collected in the research notes):
 *   - Qwen2.5-VL: QwenLM/Qwen2.5-VL @ f0af299 cookbooks/video_understanding.ipynb, cell 12 ("3. Video Grounding":
 *     "Give the query: '…', when does the described content occur in the video?", answered "The given query happens
 *     in 64.0 - 72.0 seconds.") and cell 14 ("4. Structured Video Captioning": the JSON / 'mm:ss.ff' sentence,
 *     answered with a fenced list of {start_time, end_time, description}).
 *   - Qwen3-VL: QwenLM/Qwen3-VL @ 9658872 cookbooks/video_understanding.ipynb cell 13 (the same dense sentence,
 *     answered with a JSON object keyed "mm:ss.ff - mm:ss.ff"); no temporal-grounding prompt is published
 *     (QwenLM/Qwen3-VL#1696, #1718), so the Qwen2.5-VL sentence is used with the time format asked for, as the
 *     maintainers advise (QwenLM/Qwen3-VL#950: "specify the desired time format in the prompt").
 *   - TimeChat (RenShuhuai-Andy/TimeChat#33 grounding; TimeIT dense sentence, TimeChat#20) for families with no
 *     published prompt (Qwen2-VL, InternVL, VideoLLaMA3), and InternVideo2 / TimeChat's frame-time sentence
 *     ("The video contains 8 frames sampled at 0.0, 0.5, … seconds.", lmms-eval models/simple/internvideo2.py:140)
 *     for families whose prompt carries no time at all (Qwen2-VL, InternVL).
 */
import type { EventsTask } from "../events/types.js";
import type { ResponseFormat } from "../generation/constrained/response-format.js";

/** A constraint on the generated text (GenerateRequest.responseFormat): valid JSON, JSON matching a schema, or a regex. */
export type EventResponseFormat = Exclude<ResponseFormat, { type: "text" }>;

export interface EventPromptRequest {
  task: EventsTask;
  /** Grounding: what to find, as the user gave it. */
  query?: string;
  /** Seconds of each sampled frame from the start of the clip the model sees (for families told times as text). */
  frameTimes?: readonly number[];
}

export interface EventPrompt {
  /** The user text that follows the video. */
  text: string;
  /** The format the family's trained answer has, when decoding can be held to it (JSON); absent: free text. */
  responseFormat?: EventResponseFormat;
  /**
   * Where the model's times count from: "clip" = the first sampled frame of the clip (Qwen2.5-VL's time-aligned
   * positions start at 0, Qwen2-VL counts frames, times given as text here are the clip's); "source" = the video
   * file's start (Qwen3-VL's `<t seconds>` and VideoLLaMA3's `Time t s:` frame labels are the frames' own times, so
   * with `start` the model answers in the file's time).
   */
  timeOrigin: "clip" | "source";
  /** Where the phrasing comes from, for people (`videolm events --json`, docs). */
  source: string;
}

/** A family's prompts; `request.task` says which. */
export type EventPromptBuilder = (request: EventPromptRequest) => EventPrompt;

/** The grounding query as it goes inside quotes: trimmed, one line, without the user's trailing period. */
export function cleanQuery(query: string | undefined): string {
  return (query ?? "").replace(/\s+/g, " ").trim().replace(/[.。]+$/, "");
}

/** mm:ss.ff, the time format the Qwen dense prompt asks for ("01:35.60"). */
export const MM_SS_FF_PATTERN = "^[0-9]{2}:[0-9]{2}\\.[0-9]{2}$";

/**
 * The Qwen2.5-VL cookbook's dense answer as a JSON schema: a list of {start_time, end_time, description}, times as
 * mm:ss.ff (the cookbook's own parser reads them with strptime('%M:%S.%f')).
 */
export const QWEN_DENSE_SCHEMA: Record<string, unknown> = {
  type: "array",
  items: {
    type: "object",
    properties: {
      start_time: { type: "string", pattern: MM_SS_FF_PATTERN },
      end_time: { type: "string", pattern: MM_SS_FF_PATTERN },
      description: { type: "string" },
    },
    required: ["start_time", "end_time", "description"],
    additionalProperties: false,
  },
};

/** Qwen2.5-VL / Qwen3-VL cookbook dense-captioning sentence (verbatim, straight quotes as in @ f0af299 cell 14). */
export const QWEN_DENSE_PROMPT =
  "Localize a series of activity events in the video, output the start and end timestamp for each event, and describe each event with sentences. Provide the result in json format with 'mm:ss.ff' format for time depiction.";

/** The Qwen cookbook's grounding sentence (verbatim with the query in place). */
export function qwenGroundingPrompt(query: string | undefined): string {
  return `Give the query: '${cleanQuery(query)}', when does the described content occur in the video?`;
}

/**
 * Qwen2.5-VL: the cookbook's prompts. Grounding without a time format, as in the cookbook cell whose documented answer
 * is in seconds ("The given query happens in 64.0 - 72.0 seconds."); dense captions as the cookbook's JSON list,
 * held to its schema. Time-aligned rotary positions count from the clip's first frame.
 */
export const qwen2_5VLEventPrompt: EventPromptBuilder = ({ task, query }) =>
  task === "grounding"
    ? { text: qwenGroundingPrompt(query), timeOrigin: "clip", source: "QwenLM/Qwen2.5-VL cookbooks/video_understanding.ipynb (Video Grounding)" }
    : {
        text: QWEN_DENSE_PROMPT,
        responseFormat: { type: "json_schema", json_schema: { name: "dense_captions", schema: QWEN_DENSE_SCHEMA, strict: true } },
        timeOrigin: "clip",
        source: "QwenLM/Qwen2.5-VL cookbooks/video_understanding.ipynb (Structured Video Captioning)",
      };

/**
 * Qwen3-VL, Qwen3-VL-MoE, Qwen3.5: the frames carry `<t seconds>` text (the source's times). Grounding: the Qwen
 * sentence asking for seconds (none is published for Qwen3-VL); dense captions: the cookbook's sentence, held to valid
 * JSON only — Qwen3-VL answers it with an object keyed by "mm:ss.ff - mm:ss.ff" (cookbook cell 13), not the list
 * Qwen2.5-VL writes, and the parser reads both.
 */
export const qwen3VLEventPrompt: EventPromptBuilder = ({ task, query }) =>
  task === "grounding"
    ? {
        text: `${qwenGroundingPrompt(query)} Answer with the start and end time in seconds.`,
        timeOrigin: "source",
        source: "QwenLM/Qwen2.5-VL cookbook grounding sentence + a time format (QwenLM/Qwen3-VL#950); Qwen3-VL publishes none",
      }
    : { text: QWEN_DENSE_PROMPT, responseFormat: { type: "json_object" }, timeOrigin: "source", source: "QwenLM/Qwen3-VL cookbooks/video_understanding.ipynb (cell 13)" };

/** TimeChat's grounding prompt (RenShuhuai-Andy/TimeChat#33). */
export function timeChatGroundingPrompt(query: string | undefined): string {
  return `Localize the visual content described by the given textual query '${cleanQuery(query)}' in the video, and output the start and end timestamps in seconds.`;
}

/** TimeIT's dense-captioning prompt as TimeChat uses it (TimeChat#20), verbatim. */
export const TIMECHAT_DENSE_PROMPT =
  "Localize a series of activity events in the video, output the start and end timestamp for each event, and describe each event with sentences. The output format of each predicted event should be like: ' start - end seconds, event description '. An specific example is : ' 90.0 - 102.0 seconds, spread margarine on two slices of white bread in the video '.";

/** "The video contains 8 frames sampled at 0.0, 0.5, … seconds." (InternVideo2 in lmms-eval; TimeChat). */
export function frameTimesSentence(frameTimes: readonly number[]): string {
  return `The video contains ${frameTimes.length} frames sampled at ${frameTimes.map((t) => (Math.round(t * 10) / 10).toFixed(1)).join(", ")} seconds.`;
}

/**
 * Families whose prompt tells the model nothing about time (Qwen2-VL: frame-pair positions; InternVL: `Frame{i}:`
 * labels): the frames' clip times as a sentence before TimeChat's prompt. Only events requests add it, so ordinary
 * requests keep the family's reference prompt.
 */
export const timesAsTextEventPrompt: EventPromptBuilder = ({ task, query, frameTimes }) => {
  const times = frameTimes?.length ? `${frameTimesSentence(frameTimes)}\n` : "";
  return {
    text: times + (task === "grounding" ? timeChatGroundingPrompt(query) : TIMECHAT_DENSE_PROMPT),
    timeOrigin: "clip",
    source: "TimeChat prompts (TimeChat#33, #20) after InternVideo2's frame-time sentence (lmms-eval internvideo2.py)",
  };
};

/** VideoLLaMA3: its `Time t s:` frame labels carry the source's times; TimeChat's prompts (none is published). */
export const videoLlama3EventPrompt: EventPromptBuilder = ({ task, query }) => ({
  text: task === "grounding" ? timeChatGroundingPrompt(query) : TIMECHAT_DENSE_PROMPT,
  timeOrigin: "source",
  source: "TimeChat prompts (TimeChat#33, #20); VideoLLaMA3 publishes none",
});
