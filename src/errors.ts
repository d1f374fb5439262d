/**
 * A failure the user can act on. The CLI prints `message` as one line (no stack trace unless --debug);
 * the message names the file / tensor / limit involved and what to do about it.
 */
export class VideolmError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "VideolmError";
  }
}

/** Throws a VideolmError with `message` when `condition` is false. */
export function check(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) throw new VideolmError(typeof message === "string" ? message : message());
}
