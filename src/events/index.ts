/** Events: `{start, end, text}` spans in seconds, parsed from model text, written out, and scored. */
export type { Event, EventsResult, EventsTask, ParsedEvents } from "./types.js";
export { parseEvents, eventsResult, MAX_PARSE_CHARS, type ParseEventsOptions } from "./parse.js";
export { formatEvents, parseSrt, parseVtt, eventsTable, EVENTS_FORMATS, type EventsFormat } from "./format.js";
export {
  temporalIoU,
  groundingMetrics,
  denseCaptionF1,
  denseCaptionF1Micro,
  GROUNDING_THRESHOLDS,
  type GroundingMetrics,
  type DetectionScore,
} from "./metrics.js";
export { parseGroundingAnnotations, readGroundingAnnotations, parseCharadesStaText, type GroundingAnnotation } from "./charades.js";
