/**
 * The results file of a batch job: JSONL, one line per finished item, appended as items finish. It is also the job's
 * state: a resumed job reads the ids already there and skips them.
 *
 * Crash safety. Each line is appended with one write(2) on a file opened O_APPEND and flushed with fdatasync before
 * the next item's line, so after a kill (even SIGKILL) the file holds whole lines, plus at worst — power loss, a full
 * disk — one incomplete last line. Opening the file for a resume repairs that: an unterminated last line is cut
 * off (its item runs again), never parsed as a result. A lock file beside it (`<file>.lock`, holding the pid) keeps
 * two jobs from appending to one file, which would run items twice.
 */
import * as fs from "node:fs";
import { VideolmError } from "../errors.js";
import type { EventsResult } from "../events/types.js";
import type { BatchTask } from "./items.js";

/** One line of the results file. `error` is set exactly when the item failed (then there is no answer). */
export interface ResultRecord {
  id: string;
  video: string;
  task: BatchTask;
  question?: string;
  query?: string;
  /** The model's answer (events and ground: its raw text). */
  answer?: string;
  /** events / ground: the parsed spans, with their duration and the parser's warnings. */
  events?: Pick<EventsResult, "events" | "duration" | "parsed" | "warnings">;
  /** Milliseconds: `totalMs` from the item's start on its backend to its answer, then the engine's own timings. */
  timings?: Record<string, number>;
  usage?: { promptTokens: number; completionTokens: number };
  finishReason?: string;
  /** Which backend ran it (the last one tried) and how many attempts it took. */
  backend: string;
  attempts: number;
  /** The failure, as a one-line message (never a stack trace). */
  error?: string;
  /**
   * Whose fault the failure was: "item" (its video, its options: every backend fails it alike) or "backend" (down,
   * 5xx, timeouts on every attempt). A resumed job runs "backend" failures again by itself.
   */
  errorKind?: "item" | "backend";
  /** ISO time the item finished. */
  finishedAt: string;
}

export interface OpenedResults {
  /** Ids with a result line, and whether the last line for that id is an error (and the backend's fault). */
  done: Map<string, DoneState>;
  /** Bytes of an incomplete last line cut off when opening (0 when the file was whole). */
  repairedBytes: number;
  /** Lines that are not a result (not JSON, no id): reported, ignored, their items run again. */
  badLines: number[];
}

export interface DoneState {
  error: boolean;
  backendError: boolean;
}

export class ResultsFile {
  private fd: number;
  private closed = false;

  private constructor(
    readonly file: string,
    fd: number,
    private readonly lockFile: string,
  ) {
    this.fd = fd;
  }

  /**
   * Opens (creating) the results file for appending, after taking its lock and repairing an incomplete last line;
   * returns what it already holds. A file used by a running job is refused.
   */
  static open(file: string): { results: ResultsFile } & OpenedResults {
    const lockFile = `${file}.lock`;
    takeLock(lockFile);
    try {
      const repairedBytes = repairTail(file);
      const { done, badLines } = readDone(file);
      const fd = fs.openSync(file, "a");
      return { results: new ResultsFile(file, fd, lockFile), done, repairedBytes, badLines };
    } catch (e) {
      fs.rmSync(lockFile, { force: true });
      throw e;
    }
  }

  /** Appends one result as one line, durably, before returning. */
  append(record: ResultRecord): void {
    if (this.closed) throw new Error("ResultsFile: closed");
    const line = Buffer.from(JSON.stringify(record) + "\n", "utf8");
    let written = 0;
    // One write for the whole line in practice; loop only for the (theoretical) short write.
    while (written < line.length) written += fs.writeSync(this.fd, line, written, line.length - written);
    fs.fdatasyncSync(this.fd);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    fs.closeSync(this.fd);
    fs.rmSync(this.lockFile, { force: true });
  }
}

/** Cuts an unterminated last line off the file; returns the bytes removed. */
export function repairTail(file: string): number {
  let fd: number;
  try {
    fd = fs.openSync(file, "r+");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return 0;
    throw new VideolmError(`cannot open results file ${file}: ${(e as Error).message}`);
  }
  try {
    const size = fs.fstatSync(fd).size;
    if (size === 0) return 0;
    // Read backwards in blocks until the last newline.
    const block = Buffer.alloc(64 * 1024);
    let end = size;
    while (end > 0) {
      const start = Math.max(0, end - block.length);
      const n = fs.readSync(fd, block, 0, end - start, start);
      const nl = block.subarray(0, n).lastIndexOf(0x0a);
      if (nl >= 0) {
        const keep = start + nl + 1;
        if (keep < size) fs.ftruncateSync(fd, keep);
        return size - keep;
      }
      end = start;
    }
    fs.ftruncateSync(fd, 0); // not one whole line
    return size;
  } finally {
    fs.closeSync(fd);
  }
}

/** The ids in a results file (the last line for an id decides whether it failed). */
export function readDone(file: string): Pick<OpenedResults, "done" | "badLines"> {
  const done = new Map<string, DoneState>();
  const badLines: number[] = [];
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return { done, badLines };
    throw new VideolmError(`cannot read results file ${file}: ${(e as Error).message}`);
  }
  text.split("\n").forEach((line, i) => {
    if (line.trim() === "") return;
    try {
      const r = JSON.parse(line) as Partial<ResultRecord>;
      if (typeof r.id !== "string") throw new Error("no id");
      done.set(r.id, { error: r.error !== undefined, backendError: r.error !== undefined && r.errorKind === "backend" });
    } catch {
      badLines.push(i + 1);
    }
  });
  return { done, badLines };
}

/** All records of a results file, the last per id, in file order (for the CSV). */
export function readRecords(file: string): ResultRecord[] {
  const byId = new Map<string, ResultRecord>();
  for (const line of fs.readFileSync(file, "utf8").split("\n")) {
    if (line.trim() === "") continue;
    try {
      const r = JSON.parse(line) as ResultRecord;
      if (typeof r.id !== "string") continue;
      byId.delete(r.id); // a later line (a retried failure) replaces the earlier one and moves to its place
      byId.set(r.id, r);
    } catch {
      // reported by readDone
    }
  }
  return [...byId.values()];
}

function takeLock(lockFile: string): void {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(lockFile, `${process.pid}\n`, { flag: "wx" });
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw new VideolmError(`cannot create lock file ${lockFile}: ${(e as Error).message}`);
    }
    const pid = Number(fs.readFileSync(lockFile, "utf8").trim());
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && processAlive(pid)) {
      throw new VideolmError(`another batch job (pid ${pid}) is writing ${lockFile.replace(/\.lock$/, "")}; wait for it, or remove ${lockFile} if that process is not videolm`);
    }
    fs.rmSync(lockFile, { force: true }); // left by a job that was killed
  }
  throw new VideolmError(`cannot take the lock ${lockFile}`);
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

const CSV_COLUMNS = ["id", "video", "task", "question", "query", "answer", "events", "error", "backend", "attempts", "total_ms", "prompt_tokens", "completion_tokens", "finish_reason", "finished_at"];

/** The results as CSV (RFC 4180; events as a JSON array in one cell), one row per item. */
export function recordsToCsv(records: ResultRecord[]): string {
  const cell = (v: unknown): string => {
    if (v === undefined || v === null) return "";
    const s = typeof v === "string" ? v : typeof v === "number" ? String(v) : JSON.stringify(v);
    return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  const rows = records.map((r) =>
    [r.id, r.video, r.task, r.question, r.query, r.answer, r.events?.events, r.error, r.backend, r.attempts, r.timings?.totalMs, r.usage?.promptTokens, r.usage?.completionTokens, r.finishReason, r.finishedAt]
      .map(cell)
      .join(","),
  );
  return [CSV_COLUMNS.join(","), ...rows].join("\r\n") + "\r\n";
}

/** Writes the CSV through a temporary file and a rename, so a reader never sees half of it. */
export function writeCsv(file: string, records: ResultRecord[]): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, recordsToCsv(records));
  fs.renameSync(tmp, file);
}
