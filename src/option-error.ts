/**
 * Errors about options, worded in the caller's own names for them. The library calls an option `minPixels`, the
 * command line `--min-pixels`, the HTTP API `min_pixels`; an OptionError is written once as a function of a
 * spelling, its `message` uses the library's names, and the command line / server render it with theirs
 * (`messageFor`), so `videolm run --max-pixels 1000` is told about `--max-pixels`, not `maxPixels`.
 */
import { VideolmError } from "./errors.js";

/** How a caller names an option, from the library's key (`minPixels`, `nframes`, `start`). */
export type OptionSpelling = (key: string) => string;

/** The library's names: MediaOptions / GenerationOptions keys as they are. */
export const LIBRARY_SPELLING: OptionSpelling = (key) => key;
/** The command line's flags: `--min-pixels`. */
export const CLI_SPELLING: OptionSpelling = (key) => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
/** The HTTP API's fields: `min_pixels` (also qwen-vl-utils' names). */
export const API_SPELLING: OptionSpelling = (key) => key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

export class OptionError extends VideolmError {
  /**
   * @param options the library keys of the options the message is about
   * @param render the message, naming each option through the spelling it is given
   */
  constructor(
    readonly options: readonly string[],
    private readonly render: (name: OptionSpelling) => string,
  ) {
    super(render(LIBRARY_SPELLING));
    this.name = "OptionError";
  }

  /** The message with the options named as `spelling` names them. */
  spelled(spelling: OptionSpelling): string {
    return this.render(spelling);
  }
}

/** An error's message for a caller that spells options as `spelling` (an OptionError re-rendered; others as they are). */
export function messageFor(error: unknown, spelling: OptionSpelling): string {
  if (error instanceof OptionError) return error.spelled(spelling);
  return (error as Error)?.message ?? String(error);
}
