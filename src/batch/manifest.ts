/**
 * Manifests of a batch job: CSV with a header row or JSONL (one JSON object per line), each row naming a video and
 * what to do with it. Fields (CSV columns / JSON keys):
 *
 *   video (required)   path (relative to the manifest's folder) or http(s) URL
 *   id                 the item's id in the results (default: a hash of the row, items.ts itemId)
 *   task               answer (default) | events | ground
 *   question           answer: the question (default: the job's --question)
 *   query              ground: what to find (default: the job's --query)
 *   fps nframes min_frames max_frames min_pixels max_pixels total_pixels start end prune
 *                      this video's sampling (as in the HTTP API; start / end also as mm:ss or hh:mm:ss)
 *
 * Any problem in a manifest is an error naming the file and line before anything runs (a job should not stop at
 * row 900 for a typo): malformed JSON or CSV, an unknown field (with the closest known one), a bad value.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { VideolmError } from "../errors.js";
import { closest } from "../cli/suggest.js";
import { parseTimeValue } from "../util/time.js";
import { BATCH_TASKS, itemId, resolveVideo, type BatchItem, type BatchTask, type ItemMediaOptions } from "./items.js";

/** What a row may leave out, filled from the job's flags. */
export interface ItemDefaults {
  task?: BatchTask;
  question?: string;
  query?: string;
}

const MEDIA_FIELDS: Record<string, { key: keyof ItemMediaOptions; integer?: boolean; time?: boolean }> = {
  fps: { key: "fps" },
  nframes: { key: "nframes", integer: true },
  min_frames: { key: "minFrames", integer: true },
  max_frames: { key: "maxFrames", integer: true },
  min_pixels: { key: "minPixels", integer: true },
  max_pixels: { key: "maxPixels", integer: true },
  total_pixels: { key: "totalPixels", integer: true },
  start: { key: "start", time: true },
  end: { key: "end", time: true },
  prune: { key: "prune" },
};
const TEXT_FIELDS = ["video", "id", "task", "question", "query"];
export const MANIFEST_FIELDS = [...TEXT_FIELDS, ...Object.keys(MEDIA_FIELDS)];

/** Whether a path names a manifest (by its extension). */
export function isManifestPath(file: string): boolean {
  return /\.(csv|jsonl|ndjson)$/i.test(file);
}

/** Reads a manifest file (CSV by a .csv extension, else JSONL) into items. */
export function readManifest(file: string, defaults: ItemDefaults = {}): BatchItem[] {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new VideolmError(`cannot read manifest ${file}: ${code === "ENOENT" ? "file not found" : (e as Error).message}`);
  }
  const name = path.basename(file);
  const base = path.dirname(path.resolve(file));
  const rows = /\.csv$/i.test(file) ? parseCsvRows(text, name) : parseJsonlRows(text, name);
  if (rows.length === 0) throw new VideolmError(`manifest ${file} has no items`);
  return rows.map(({ fields, line }) => rowToItem(fields, `${name} line ${line}`, base, defaults));
}

interface Row {
  fields: Record<string, unknown>;
  /** 1-based line where the row starts. */
  line: number;
}

/** JSONL: one object per non-blank line. */
export function parseJsonlRows(text: string, name = "manifest"): Row[] {
  const rows: Row[] = [];
  text.replace(/^\uFEFF/, "").split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (line === "") return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (e) {
      throw new VideolmError(`${name} line ${i + 1}: not valid JSON (${(e as Error).message})`);
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) throw new VideolmError(`${name} line ${i + 1}: expected a JSON object like {"video": "clip.mp4", "question": "…"}`);
    rows.push({ fields: value as Record<string, unknown>, line: i + 1 });
  });
  return rows;
}

/**
 * CSV (RFC 4180): a header row naming the columns, then one record per row; fields in double quotes may hold commas,
 * line breaks and doubled quotes (""); CRLF or LF line ends; a UTF-8 BOM is ignored. Empty cells are absent fields.
 */
export function parseCsvRows(text: string, name = "manifest"): Row[] {
  const records = parseCsv(text.replace(/^\uFEFF/, ""), name);
  if (records.length === 0) return [];
  const [header, ...body] = records;
  const columns = header.cells.map((c) => c.trim());
  columns.forEach((c, i) => {
    if (c === "") throw new VideolmError(`${name} line ${header.line}: column ${i + 1} of the header has no name`);
    if (columns.indexOf(c) !== i) throw new VideolmError(`${name} line ${header.line}: column ${JSON.stringify(c)} appears twice in the header`);
  });
  const rows: Row[] = [];
  for (const r of body) {
    if (r.cells.length === 1 && r.cells[0].trim() === "") continue; // a blank line
    if (r.cells.length !== columns.length) {
      throw new VideolmError(`${name} line ${r.line}: ${r.cells.length} fields, but the header has ${columns.length} (quote fields that hold commas: "a, b")`);
    }
    const fields: Record<string, unknown> = {};
    r.cells.forEach((cell, i) => {
      if (cell !== "") fields[columns[i]] = cell;
    });
    rows.push({ fields, line: r.line });
  }
  return rows;
}

/** The records of a CSV text, each with the line it starts on. */
function parseCsv(text: string, name: string): { cells: string[]; line: number }[] {
  const records: { cells: string[]; line: number }[] = [];
  let cells: string[] = [];
  let cell = "";
  let line = 1;
  let recordLine = 1;
  let i = 0;
  let quoted = false; // inside a quoted field
  let afterQuote = false; // a quoted field just closed: only a separator may follow
  const endCell = () => {
    cells.push(cell);
    cell = "";
    afterQuote = false;
  };
  const endRecord = () => {
    endCell();
    records.push({ cells, line: recordLine });
    cells = [];
  };
  while (i < text.length) {
    const c = text[i];
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          cell += '"';
          i += 2;
          continue;
        }
        quoted = false;
        afterQuote = true;
      } else {
        if (c === "\n") line++;
        cell += c;
      }
      i++;
      continue;
    }
    if (c === ",") endCell();
    else if (c === "\n" || (c === "\r" && text[i + 1] === "\n")) {
      endRecord();
      if (c === "\r") i++;
      line++;
      recordLine = line;
    } else if (c === '"' && cell === "" && !afterQuote) quoted = true;
    else if (afterQuote) throw new VideolmError(`${name} line ${line}: unexpected ${JSON.stringify(c)} after a closing quote (write a quote inside a quoted field as "")`);
    else if (c === '"') throw new VideolmError(`${name} line ${line}: a quote inside an unquoted field; quote the whole field and double the quote ("say ""hi""")`);
    else cell += c;
    i++;
  }
  if (quoted) throw new VideolmError(`${name} line ${recordLine}: a quoted field is never closed`);
  if (cell !== "" || cells.length > 0 || afterQuote) endRecord();
  return records;
}

/** One manifest row as an item; errors name `origin` (file and line) and the field. */
export function rowToItem(fields: Record<string, unknown>, origin: string, base: string, defaults: ItemDefaults = {}): BatchItem {
  const fail = (message: string): never => {
    throw new VideolmError(`${origin}: ${message}`);
  };
  for (const key of Object.keys(fields)) {
    if (!MANIFEST_FIELDS.includes(key)) {
      const suggestion = closest(key, MANIFEST_FIELDS);
      fail(`unknown field ${JSON.stringify(key)}${suggestion ? `; did you mean ${suggestion}?` : ""} (fields: ${MANIFEST_FIELDS.join(", ")})`);
    }
  }
  const text = (key: string): string | undefined => {
    const v = fields[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v === "number" && key === "id") return String(v);
    if (typeof v !== "string") return fail(`${key} must be a string, got ${JSON.stringify(v)}`);
    return v;
  };
  const video = text("video");
  if (video === undefined || video.trim() === "") return fail('no video (every row needs a "video" field: a path or URL)');
  const id = text("id")?.trim();
  if (id === "") fail("id is empty");
  const rawTask = text("task") ?? defaults.task;
  if (rawTask !== undefined && !BATCH_TASKS.includes(rawTask as BatchTask)) fail(`task must be one of ${BATCH_TASKS.join(", ")}, got ${JSON.stringify(rawTask)}`);
  const task = (rawTask as BatchTask | undefined) ?? "answer";
  const question = text("question") ?? (task === "answer" ? defaults.question : undefined);
  const query = text("query") ?? (task === "ground" ? defaults.query : undefined);
  if (task === "answer" && !question?.trim()) fail("no question (give a question field, or --question for rows without one)");
  if (task === "ground" && !query?.trim()) fail("task ground needs a query (a query field, or --query)");
  if (task !== "answer" && fields.question !== undefined) fail(`task ${task} takes no question${task === "ground" ? " (the text to find goes in query)" : ""}`);
  if (task !== "ground" && fields.query !== undefined) fail(`query is for task ground, not ${task}`);

  const media: ItemMediaOptions = {};
  for (const [field, spec] of Object.entries(MEDIA_FIELDS)) {
    const v = fields[field];
    if (v === undefined || v === null) continue;
    let n: number | undefined;
    if (typeof v === "number") n = v;
    else if (typeof v === "string") n = spec.time ? parseTimeValue(v) : v.trim() === "" ? undefined : Number(v);
    if (n === undefined || !Number.isFinite(n)) {
      fail(`${field} expects ${spec.time ? "a time: seconds (75.5), mm:ss (1:15.5) or hh:mm:ss (0:01:15.5)" : spec.integer ? "an integer" : "a number"}, got ${JSON.stringify(v)}`);
    }
    if (spec.integer && !Number.isInteger(n)) fail(`${field} expects an integer, got ${JSON.stringify(v)}`);
    if (n! < 0) fail(`${field} must not be negative, got ${n}`);
    media[spec.key] = n;
  }
  if (media.fps !== undefined && media.nframes !== undefined) fail("give fps or nframes, not both");
  if (media.start !== undefined && media.end !== undefined && media.end <= media.start) fail(`end (${media.end}) must be after start (${media.start})`);

  const item = { video: resolveVideo(video.trim(), base), task, ...(task === "answer" ? { question } : {}), ...(task === "ground" ? { query } : {}), media };
  return { id: id ?? itemId(item), ...item, origin };
}
