/** Events: `{start, end, text}` spans in seconds, parsed from model text, written out, and scored. */
export type { Event, EventsResult, EventsTask, ParsedEvents } from "./types.js";
export { parseEvents, eventsResult, MAX_PARSE_CHARS, type ParseEventsOptions } from "./parse.js";
export { formatEvents, parseSrt, parseVtt, eventsTable, EVENTS_FORMATS, type EventsFormat } from "./format.js";
