/**
 * The events prompt for a checkpoint: the checkpoint's own phrasing when it declares one (`videolm_events` in its
 * video_preprocessor_config.json, as the demo model does), else its family's (ModelFamily.eventPrompt,
 * src/families/event-prompts.ts), else the generic prompt with the frames' times as text.
 *
 * The checkpoint block (all keys optional):
 *   "videolm_events": {"grounding": "when is the {query} visible?", "dense": "list the events.",
 *                      "groundingFormat": {"type": "regex", "pattern": "…"}, "denseFormat": {"type": "regex", …}}
 * `{query}` is replaced by the user's query normalised to how such a small model was trained: lower-case, without
 * trailing punctuation, and without a leading article when the template already has one before `{query}`
 * ("The red circle." in "when is the {query} visible?" → "when is the red circle visible?").
 */
import * as path from "node:path";
import { readBoundedJsonObject } from "../checkpoint/json-file.js";
import { VideolmError } from "../errors.js";
import type { EventPrompt, EventPromptRequest, EventResponseFormat } from "../families/event-prompts.js";
import { timesAsTextEventPrompt } from "../families/event-prompts.js";
import { validateResponseFormat } from "../generation/constrained/response-format.js";
import type { FamilyConfig, ModelFamily } from "../families/family.js";
import type { EventsTask } from "./types.js";

/** What a checkpoint declares under `videolm_events`. */
export interface CheckpointEventPrompts {
  grounding?: string;
  dense?: string;
  groundingFormat?: EventResponseFormat;
  denseFormat?: EventResponseFormat;
}

const FILE = "video_preprocessor_config.json";
const cache = new Map<string, CheckpointEventPrompts | null>();

/** A declared format, checked as an API request's is (validateResponseFormat: schema keywords, pattern syntax, sizes). */
function checkFormat(v: unknown, key: string): EventResponseFormat {
  const where = `${FILE}: videolm_events.${key}`;
  let format;
  try {
    format = validateResponseFormat(v);
  } catch (e) {
    throw new VideolmError((e as Error).message.replace(/^response_format/, where));
  }
  if (format.type === "text") throw new VideolmError(`${where}: "text" is no constraint; leave the key out`);
  return format;
}

/** The checkpoint's `videolm_events` block, read once per folder; null when it has none. */
export function checkpointEventPrompts(checkpointDir: string): CheckpointEventPrompts | null {
  const key = path.resolve(checkpointDir);
  if (cache.has(key)) return cache.get(key)!;
  const raw = readBoundedJsonObject(path.join(checkpointDir, FILE), undefined, true)?.videolm_events;
  let out: CheckpointEventPrompts | null = null;
  if (raw !== undefined && raw !== null) {
    if (typeof raw !== "object" || Array.isArray(raw)) throw new VideolmError(`${FILE}: videolm_events must be an object {grounding, dense, groundingFormat, denseFormat}`);
    const o = raw as Record<string, unknown>;
    out = {};
    for (const k of ["grounding", "dense"] as const) {
      if (o[k] === undefined) continue;
      if (typeof o[k] !== "string" || !(o[k] as string).trim()) throw new VideolmError(`${FILE}: videolm_events.${k} must be a non-empty string`);
      out[k] = o[k] as string;
    }
    if (out.grounding !== undefined && !out.grounding.includes("{query}")) throw new VideolmError(`${FILE}: videolm_events.grounding must contain {query}`);
    for (const k of ["groundingFormat", "denseFormat"] as const) if (o[k] !== undefined) out[k] = checkFormat(o[k], k);
  }
  cache.set(key, out);
  return out;
}

/** The user's query as a checkpoint template takes it (file comment). */
export function normaliseQuery(template: string, query: string): string {
  let q = query.replace(/\s+/g, " ").trim().toLowerCase().replace(/[\s.?!。？！]+$/, "");
  if (/\b(the|a|an) \{query\}/i.test(template)) q = q.replace(/^(the|a|an) /, "");
  return q;
}

/** The prompt for one events request on a checkpoint of `family` in `checkpointDir`. */
export function eventPromptFor(family: ModelFamily<FamilyConfig>, checkpointDir: string, request: EventPromptRequest): EventPrompt {
  const familyPrompt = (family.eventPrompt ?? timesAsTextEventPrompt)(request);
  const own = checkpointEventPrompts(checkpointDir);
  const template = own?.[request.task];
  if (!own || template === undefined) return familyPrompt;
  const format = own[formatKey(request.task)];
  return {
    text: request.task === "grounding" ? template.split("{query}").join(normaliseQuery(template, request.query ?? "")) : template,
    ...(format ? { responseFormat: format } : {}),
    timeOrigin: familyPrompt.timeOrigin,
    source: `${FILE} videolm_events.${request.task}`,
  };
}

const formatKey = (task: EventsTask): "groundingFormat" | "denseFormat" => (task === "grounding" ? "groundingFormat" : "denseFormat");
