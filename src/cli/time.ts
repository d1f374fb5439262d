/** `--start` / `--end`: a time value (src/util/time.ts) or a one-line error naming the flag and the accepted forms. */
import { VideolmError } from "../errors.js";
import { parseTimeValue } from "../util/time.js";

export { parseTimeValue };

/** The flag's value in seconds; a malformed one is a one-line error naming the flag and the accepted forms. */
export function timeFlag(name: string, raw: unknown): number | undefined {
  if (raw === undefined) return undefined;
  const seconds = typeof raw === "string" ? parseTimeValue(raw) : undefined;
  if (seconds === undefined || !Number.isFinite(seconds)) {
    throw new VideolmError(`--${name} expects a time: seconds (75.5), mm:ss (1:15.5) or hh:mm:ss (0:01:15.5); got ${JSON.stringify(raw)}`);
  }
  return seconds;
}
