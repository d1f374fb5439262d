/**
 * Progress reporting for long work (conversion, decoding, encoding). Library code reports through a
 * `ProgressCallback`; the CLI renders it on stderr (a bar on a TTY, occasional lines otherwise).
 */
export interface ProgressEvent {
  task: string;
  done: number;
  total: number;
  unit?: "bytes" | "frames" | "tokens" | "items";
}
export type ProgressCallback = (event: ProgressEvent) => void;

function formatAmount(n: number, unit?: ProgressEvent["unit"]): string {
  if (unit === "bytes") {
    if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(2)} GiB`;
    if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
    return `${(n / 1024).toFixed(0)} KiB`;
  }
  return String(n);
}

/** A stderr renderer: redraws one line on a TTY; elsewhere prints at most every 10%. */
export function stderrProgress(stream: NodeJS.WriteStream = process.stderr): ProgressCallback {
  let lastTask = "";
  let lastDecile = -1;
  let lastDraw = 0;
  return (e) => {
    const frac = e.total > 0 ? Math.min(1, e.done / e.total) : 1;
    const finished = e.done >= e.total;
    if (stream.isTTY) {
      const now = Date.now();
      if (!finished && e.task === lastTask && now - lastDraw < 100) return;
      lastDraw = now;
      lastTask = e.task;
      const width = 24;
      const filled = Math.round(frac * width);
      const bar = "█".repeat(filled) + "░".repeat(width - filled);
      stream.write(`\r\x1b[2K${e.task} ${bar} ${(frac * 100).toFixed(0).padStart(3)}% ${formatAmount(e.done, e.unit)}/${formatAmount(e.total, e.unit)}`);
      if (finished) stream.write("\n");
      return;
    }
    const decile = Math.floor(frac * 10);
    if (e.task !== lastTask) lastDecile = -1;
    lastTask = e.task;
    if (decile === lastDecile && !finished) return;
    lastDecile = decile;
    if (finished && decile === 10 && lastDecile === 10 && e.done > e.total) return;
    stream.write(`${e.task}: ${(frac * 100).toFixed(0)}% (${formatAmount(e.done, e.unit)}/${formatAmount(e.total, e.unit)})\n`);
  };
}

/**
 * Passes events on only once a task has run for `delayMs` (then every event, incl. the final one), so work that
 * is usually quick (decoding a short clip, encoding a few frames) prints nothing, and long work still shows progress.
 */
export function delayedProgress(inner: ProgressCallback, delayMs = 1000, now: () => number = Date.now): ProgressCallback {
  const started = new Map<string, number>();
  return (e) => {
    if (!started.has(e.task)) started.set(e.task, now());
    if (now() - started.get(e.task)! >= delayMs) inner(e);
  };
}
