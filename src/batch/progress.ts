/**
 * Progress of a batch job on stderr: done/total, failures, rate and ETA — one redrawn line on a terminal, a line
 * every few seconds elsewhere (logs) — and the summary at the end.
 */

export interface BatchCounts {
  /** Items of the job (skipped ones included). */
  total: number;
  /** Already in the results file when the job started. */
  skipped: number;
  ok: number;
  failed: number;
}

export function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/** items/min over this run's finished items, and the ETA of the rest (undefined until one item finished). */
export function rateAndEta(c: BatchCounts, elapsedMs: number): { perMinute: number; etaMs?: number } {
  const finished = c.ok + c.failed;
  const perMinute = elapsedMs > 0 ? (finished / elapsedMs) * 60_000 : 0;
  const left = c.total - c.skipped - finished;
  return { perMinute, ...(finished > 0 ? { etaMs: (left / finished) * elapsedMs } : {}) };
}

export function progressLine(c: BatchCounts, elapsedMs: number): string {
  const done = c.skipped + c.ok + c.failed;
  const { perMinute, etaMs } = rateAndEta(c, elapsedMs);
  const pct = c.total > 0 ? Math.floor((done / c.total) * 100) : 100;
  return `batch: ${done}/${c.total} (${pct}%)${c.failed ? `, ${c.failed} failed` : ""}, ${perMinute.toFixed(1)} items/min, elapsed ${formatDuration(elapsedMs)}${etaMs !== undefined ? `, ETA ${formatDuration(etaMs)}` : ""}`;
}

export function summaryLine(c: BatchCounts, elapsedMs: number, notRun: number): string {
  const { perMinute } = rateAndEta(c, elapsedMs);
  return `batch: ${c.ok} ok, ${c.failed} failed, ${c.skipped} skipped (done before)${notRun ? `, ${notRun} not run` : ""}; ${formatDuration(elapsedMs)}, ${perMinute.toFixed(1)} items/min`;
}

/** Renders progress on a stream: redraws on a TTY (at most every 200 ms), else a line at most every `everyMs`. */
export class ProgressReporter {
  private lastDraw = -Infinity;
  private drawn = false;

  constructor(
    private readonly stream: { write(s: string): unknown; isTTY?: boolean },
    private readonly everyMs = 5000,
    private readonly now: () => number = Date.now,
  ) {}

  update(c: BatchCounts, elapsedMs: number, force = false): void {
    const t = this.now();
    if (!force && t - this.lastDraw < (this.stream.isTTY ? 200 : this.everyMs)) return;
    this.lastDraw = t;
    if (this.stream.isTTY) {
      this.stream.write(`\r\x1b[2K${progressLine(c, elapsedMs)}`);
      this.drawn = true;
    } else this.stream.write(progressLine(c, elapsedMs) + "\n");
  }

  /** A line of its own (a failure, the summary), not overwritten by the next redraw. */
  line(text: string): void {
    if (this.drawn) this.stream.write("\r\x1b[2K");
    this.drawn = false;
    this.stream.write(text + "\n");
  }
}
