/**
 * Time values as people write them (`--start` / `--end` on the command line, `start` / `end` strings in the HTTP
 * API): seconds (`3723.5`), `mm:ss(.frac)` (`62:03`) or `hh:mm:ss(.frac)` (`1:02:03.5`, `00:00:10`). In the colon
 * forms every field after the first is below 60 and has two digits (as ffmpeg and video players print times); the
 * first field is unbounded (`90:00` is 90 minutes).
 */
const SECONDS = /^\d+(\.\d*)?$|^\.\d+$/;
const CLOCK = /^(\d+):(\d{2})(?::(\d{2}))?(\.\d+)?$/;

/** The number of seconds `text` spells, or undefined when it is none of the accepted forms. */
export function parseTimeValue(text: string): number | undefined {
  const s = text.trim();
  if (SECONDS.test(s)) return Number(s);
  const m = CLOCK.exec(s);
  if (!m) return undefined;
  const [, a, b, c, frac] = m;
  const [h, min, sec] = c === undefined ? [0, Number(a), Number(b)] : [Number(a), Number(b), Number(c)];
  if (c !== undefined && min >= 60) return undefined;
  if (sec >= 60) return undefined;
  return h * 3600 + min * 60 + sec + (frac ? Number(frac) : 0);
}

