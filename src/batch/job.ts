/**
 * A batch job: the items not yet in the results file go through the dispatcher to the backends; each finished item
 * is appended to the results file as it finishes (results.ts), with progress on the way and a summary at the end.
 */
import { VideolmError } from "../errors.js";
import { dispatch, type Backend, type DispatchSummary } from "./dispatcher.js";
import type { ItemAnswer } from "./engine.js";
import type { BatchItem } from "./items.js";
import { ProgressReporter, summaryLine, type BatchCounts } from "./progress.js";
import { readRecords, ResultsFile, writeCsv, type ResultRecord } from "./results.js";

export interface BatchJobOptions {
  /** The JSONL results file (created, or resumed). */
  output: string;
  /** Also write the results as CSV here at the end (from the whole JSONL, resumed runs included). */
  csv?: string;
  /**
   * Run items again whose last result is an error of the item's own (default: skipped like the items answered; errors
   * that were the backends' fault always run again).
   */
  retryFailed?: boolean;
  /** Progress and messages (default: stderr); undefined writes nothing. */
  log?: { write(s: string): unknown; isTTY?: boolean };
  /** Non-TTY progress line interval (default 5 s). */
  progressEveryMs?: number;
  signal?: AbortSignal;
  /** Backend faults in a row before a backend is dropped (dispatcher deadAfter). */
  deadAfter?: number;
}

export interface BatchJobSummary extends BatchCounts {
  notRun: number;
  wallMs: number;
  itemsPerMinute: number;
  /** Attempts started per backend. */
  started: DispatchSummary["started"];
  stopped?: DispatchSummary["stopped"];
  /** Bytes of an incomplete last line cut from the results file when resuming. */
  repairedBytes: number;
}

/** One line, no stack trace: what a result records as `error`. */
export function errorMessage(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const oneLine = message.replace(/\s*[\r\n]+\s*/g, " ").trim();
  return error instanceof VideolmError ? oneLine : `internal error: ${oneLine}`;
}

export async function runBatchJob(items: BatchItem[], backends: Backend<BatchItem, ItemAnswer>[], options: BatchJobOptions): Promise<BatchJobSummary> {
  const { results, done, repairedBytes, badLines } = ResultsFile.open(options.output);
  const reporter = options.log ? new ProgressReporter(options.log, options.progressEveryMs) : undefined;
  const t0 = performance.now();
  try {
    if (repairedBytes > 0) reporter?.line(`batch: ${options.output}: cut off an incomplete last line (${repairedBytes} bytes, left by an interrupted write); its item runs again`);
    if (badLines.length > 0) reporter?.line(`batch: ${options.output}: ignoring ${badLines.length} line(s) that are not results (line ${badLines.slice(0, 5).join(", ")}${badLines.length > 5 ? ", …" : ""})`);
    const todo = items.filter((item) => {
      const d = done.get(item.id);
      return d === undefined || d.backendError || (options.retryFailed === true && d.error);
    });
    const counts: BatchCounts = { total: items.length, skipped: items.length - todo.length, ok: 0, failed: 0 };
    const elapsed = () => performance.now() - t0;
    if (done.size > 0) reporter?.line(`batch: resuming ${options.output}: ${counts.skipped} of ${items.length} items already done, ${todo.length} to run`);
    const summary = await dispatch(todo, backends, {
      signal: options.signal,
      deadAfter: options.deadAfter,
      onBackendDead: (name, error) => reporter?.line(`batch: backend ${name} taken out of the job after repeated failures: ${errorMessage(error)}`),
      onOutcome: (o) => {
        const { item } = o;
        const base = {
          id: item.id,
          video: item.video,
          task: item.task,
          ...(item.question !== undefined ? { question: item.question } : {}),
          ...(item.query !== undefined ? { query: item.query } : {}),
        };
        let record: ResultRecord;
        if (o.ok) {
          record = { ...base, ...o.value, backend: o.backend, attempts: o.attempts, finishedAt: new Date().toISOString() };
          counts.ok++;
        } else {
          record = { ...base, error: errorMessage(o.error), errorKind: o.backendFault ? "backend" : "item", backend: o.backend, attempts: o.attempts, finishedAt: new Date().toISOString() };
          counts.failed++;
          reporter?.line(`batch: ${item.id} (${item.origin}) failed: ${record.error}`);
        }
        results.append(record);
        reporter?.update(counts, elapsed());
      },
    });
    const wallMs = elapsed();
    reporter?.update(counts, wallMs, true);
    if (summary.stopped === "no-backend") reporter?.line(`batch: every backend failed; ${summary.notRun} item(s) not run: run the same command again to resume`);
    if (summary.stopped === "aborted") reporter?.line(`batch: stopped; ${summary.notRun} item(s) not run: run the same command again to resume`);
    reporter?.line(summaryLine(counts, wallMs, summary.notRun));
    if (options.csv) writeCsv(options.csv, readRecords(options.output));
    return {
      ...counts,
      notRun: summary.notRun,
      wallMs,
      itemsPerMinute: wallMs > 0 ? ((counts.ok + counts.failed) / wallMs) * 60_000 : 0,
      started: summary.started,
      ...(summary.stopped ? { stopped: summary.stopped } : {}),
      repairedBytes,
    };
  } finally {
    results.close();
  }
}
