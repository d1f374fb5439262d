/**
 * Temporal-grounding ground truth in the formats people have:
 *   - Charades-STA text (jiyanggao/TALL `charades_sta_test.txt`): one query per line, `VIDEOID START END##sentence`,
 *     e.g. `3MSZA 24.3 30.4##person turn a light on.`;
 *   - a JSON list (or JSON lines) of `{video, caption, timestamp: [start, end]}` — the fields lmms-eval's charades_sta
 *     task reads (lmms_eval/tasks/charades_sta/utils.py: `doc["video"]`, `doc["caption"]`, `doc["timestamp"]`);
 *     `query` or `sentence` are accepted for `caption`, and an optional `duration`; the TimeLens rows of lmms-eval
 *     (lmms_eval/tasks/timelens/utils.py: `doc["video_path"]`, `doc["query"]`, `doc["span"]` = [[start, end], …], of
 *     which only the first pair is scored there, and so here);
 *   - a JSON object keyed by video, `{"VID": {"duration": d, "timestamps": [[s, e], …], "sentences": [...]}}` (the
 *     ActivityNet Captions layout, also used for Charades-STA by 2D-TAN/VSLNet-style releases).
 * Malformed input is a VideolmError naming the file and line (or JSON entry).
 */
import { readFileSync } from "node:fs";
import { VideolmError } from "../errors.js";

export interface GroundingAnnotation {
  /** The video's id as written (Charades ids like "3MSZA"; JSON files may carry a file name). */
  video: string;
  start: number;
  end: number;
  query: string;
  duration?: number;
  /** Where it came from, for messages: "line 12" or "entry 3". */
  origin: string;
}

export function readGroundingAnnotations(path: string): GroundingAnnotation[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new VideolmError(`cannot read the annotation file ${path}: ${(error as Error).message}`);
  }
  return parseGroundingAnnotations(text, path);
}

/** Parses any of the formats above (JSON when the text starts with "[" or "{"). */
export function parseGroundingAnnotations(text: string, fileName = "annotations"): GroundingAnnotation[] {
  const body = text.replace(/^\uFEFF/, "");
  const first = body.trimStart()[0];
  const annotations = first === "[" || first === "{" ? parseJsonAnnotations(body, fileName) : parseCharadesStaText(body, fileName);
  if (annotations.length === 0) throw new VideolmError(`${fileName}: no annotations found`);
  return annotations;
}

/** `VIDEOID START END##sentence` lines; blank lines skipped. A reversed span is swapped, as lmms-eval does. */
export function parseCharadesStaText(text: string, fileName = "annotations"): GroundingAnnotation[] {
  const annotations: GroundingAnnotation[] = [];
  text.split(/\r\n|\r|\n/).forEach((line, index) => {
    if (line.trim() === "") return;
    const where = `${fileName}:${index + 1}`;
    const separator = line.indexOf("##");
    if (separator < 0) throw new VideolmError(`${where}: expected "VIDEOID START END##sentence", found no "##" in ${preview(line)}`);
    const fields = line.slice(0, separator).trim().split(/\s+/);
    if (fields.length !== 3) throw new VideolmError(`${where}: expected "VIDEOID START END" before "##", found ${fields.length} field(s) in ${preview(line)}`);
    const [video, startText, endText] = fields;
    const start = seconds(startText, where, "start");
    const end = seconds(endText, where, "end");
    const query = line.slice(separator + 2).trim();
    if (!query) throw new VideolmError(`${where}: the sentence after "##" is empty`);
    annotations.push({ video, start: Math.min(start, end), end: Math.max(start, end), query, origin: `line ${index + 1}` });
  });
  return annotations;
}

function parseJsonAnnotations(text: string, fileName: string): GroundingAnnotation[] {
  const trimmed = text.trim();
  let entries: unknown[];
  try {
    if (trimmed.startsWith("{") && /}\s*\n\s*{/.test(trimmed)) entries = trimmed.split(/\r?\n/).filter((l) => l.trim()).map((l) => JSON.parse(l) as unknown);
    else {
      const value = JSON.parse(trimmed) as unknown;
      if (Array.isArray(value)) entries = value;
      else return fromVideoKeyedObject(value as Record<string, unknown>, fileName);
    }
  } catch (error) {
    if (error instanceof VideolmError) throw error;
    throw new VideolmError(`${fileName}: not valid JSON (${(error as Error).message})`);
  }
  return entries.map((entry, index) => fromRow(entry, `${fileName} entry ${index + 1}`, `entry ${index + 1}`));
}

function fromRow(entry: unknown, where: string, origin: string): GroundingAnnotation {
  if (entry === null || typeof entry !== "object" || Array.isArray(entry)) throw new VideolmError(`${where}: expected an object {video, caption, timestamp}`);
  const row = entry as Record<string, unknown>;
  const video = row.video ?? row.video_path ?? row.video_id ?? row.vid;
  if (typeof video !== "string" || !video) throw new VideolmError(`${where}: "video" must be a non-empty string`);
  const query = row.caption ?? row.query ?? row.sentence;
  if (typeof query !== "string" || !query.trim()) throw new VideolmError(`${where}: "caption" (or "query"/"sentence") must be a non-empty string`);
  let span = row.timestamp ?? row.timestamps ?? row.span;
  if (Array.isArray(span) && Array.isArray(span[0])) span = span[0]; // TimeLens: [[start, end], …], the first is scored
  const [start, end] = pair(span, where);
  const duration = optionalDuration(row.duration, where);
  return { video, start, end, query: query.trim(), ...(duration !== undefined ? { duration } : {}), origin };
}

function fromVideoKeyedObject(value: Record<string, unknown>, fileName: string): GroundingAnnotation[] {
  const annotations: GroundingAnnotation[] = [];
  for (const [video, entry] of Object.entries(value)) {
    const where = `${fileName} video "${video}"`;
    if (entry === null || typeof entry !== "object" || Array.isArray(entry)) throw new VideolmError(`${where}: expected {duration, timestamps, sentences}`);
    const row = entry as Record<string, unknown>;
    const { timestamps, sentences } = row;
    if (!Array.isArray(timestamps) || !Array.isArray(sentences)) throw new VideolmError(`${where}: "timestamps" and "sentences" must be lists`);
    if (timestamps.length !== sentences.length) throw new VideolmError(`${where}: ${timestamps.length} timestamps but ${sentences.length} sentences`);
    const duration = optionalDuration(row.duration, where);
    timestamps.forEach((span, i) => {
      const sentence = sentences[i];
      if (typeof sentence !== "string" || !sentence.trim()) throw new VideolmError(`${where} sentence ${i + 1}: must be a non-empty string`);
      const [start, end] = pair(span, `${where} timestamp ${i + 1}`);
      annotations.push({ video, start, end, query: sentence.trim(), ...(duration !== undefined ? { duration } : {}), origin: `${video} #${i + 1}` });
    });
  }
  return annotations;
}

function pair(value: unknown, where: string): [number, number] {
  if (!Array.isArray(value) || value.length !== 2 || !value.every((v) => typeof v === "number" && Number.isFinite(v) && v >= 0))
    throw new VideolmError(`${where}: "timestamp" must be [start, end] in seconds (two numbers ≥ 0)`);
  const [a, b] = value as number[];
  return [Math.min(a, b), Math.max(a, b)];
}

function optionalDuration(value: unknown, where: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "number" || !(value > 0) || !Number.isFinite(value)) throw new VideolmError(`${where}: "duration" must be a positive number of seconds`);
  return value;
}

function seconds(text: string, where: string, name: string): number {
  const value = /^\d+(?:\.\d+)?$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isFinite(value)) throw new VideolmError(`${where}: the ${name} time ${JSON.stringify(text)} is not a number of seconds`);
  return value;
}

function preview(line: string): string {
  return JSON.stringify(line.length > 60 ? `${line.slice(0, 60)}…` : line);
}
