/**
 * The question from standard input: `echo "what color?" | videolm run clip.mp4`, or `videolm run clip.mp4 -`.
 */
import { VideolmError } from "../errors.js";

/** Standard input as far as this module needs it (process.stdin, or a stream in tests). */
export type QuestionInput = AsyncIterable<Buffer | string> & { isTTY?: boolean };

/** Most bytes read as a question (a prompt this long would not fit any supported model's context anyway). */
export const MAX_STDIN_QUESTION_BYTES = 4 * 2 ** 20;

/**
 * Reads all of `input` as UTF-8 text, trimmed. `onWaiting` runs once if nothing has arrived after `waitHintMs` (to say
 * on stderr what videolm is waiting for, when stdin is a pipe that stays open).
 */
export async function readQuestion(input: QuestionInput, opts: { onWaiting?: () => void; waitHintMs?: number } = {}): Promise<string> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  const timer = opts.onWaiting ? setTimeout(opts.onWaiting, opts.waitHintMs ?? 3000) : undefined;
  timer?.unref?.();
  try {
    for await (const chunk of input) {
      clearTimeout(timer);
      const b = typeof chunk === "string" ? Buffer.from(chunk, "utf8") : chunk;
      bytes += b.length;
      if (bytes > MAX_STDIN_QUESTION_BYTES) throw new VideolmError(`the question on stdin is longer than ${MAX_STDIN_QUESTION_BYTES / 2 ** 20} MiB`);
      chunks.push(b);
    }
  } finally {
    clearTimeout(timer);
  }
  return Buffer.concat(chunks).toString("utf8").trim();
}
