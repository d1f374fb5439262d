/**
 * Separates a `<think>…</think>` block from the answer in streamed text (Qwen3 Thinking checkpoints).
 *
 * The rule is the Qwen3-VL chat template's own split of an assistant turn (hub chat_template.json; facts §7.2):
 *   reasoning = text.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n')
 *   answer    = text.split('</think>')[-1].lstrip('\n')
 * applied incrementally. It works whether the opening tag was in the prompt (the Thinking template ends the generation
 * prompt with `<think>\n`: pass `startsInside`) or is generated; without a `</think>` the text is all reasoning when
 * the block was opened, else all answer. Text is held back only while it could still be the start of a tag or a
 * trailing newline that the rule strips.
 */

export interface ThinkingParts {
  reasoning: string;
  answer: string;
}

const OPEN = "<think>";
const CLOSE = "</think>";

type State = "before" | "reasoning" | "answer";

export class ThinkingSplitter {
  private state: State;
  private pending = "";
  /** Reasoning newlines held back (stripped if the block closes right after them). */
  private heldNewlines = "";
  private reasoningStarted = false;
  private answerStarted = false;
  private sawBlock: boolean;
  reasoning = "";
  answer = "";

  constructor(options: { startsInside?: boolean } = {}) {
    this.state = options.startsInside ? "reasoning" : "before";
    this.sawBlock = options.startsInside ?? false;
  }

  /** Whether a thinking block was opened (in the prompt or the output). */
  get hasReasoning(): boolean {
    return this.sawBlock;
  }

  /** Feeds newly decoded text; returns what is now known to be reasoning / answer. */
  push(text: string): ThinkingParts {
    this.pending += text;
    const out: ThinkingParts = { reasoning: "", answer: "" };
    for (;;) {
      if (this.state === "before") {
        // Only leading whitespace may precede an opening tag; anything else means there is no thinking block.
        const trimmed = this.pending.replace(/^\s+/, "");
        if (trimmed.startsWith(OPEN)) {
          this.pending = trimmed.slice(OPEN.length);
          this.state = "reasoning";
          this.sawBlock = true;
          continue;
        }
        if (trimmed.length === 0 || OPEN.startsWith(trimmed)) return out; // maybe the tag is still arriving
        this.state = "answer";
        continue;
      }
      if (this.state === "reasoning") {
        const at = this.pending.indexOf(CLOSE);
        if (at !== -1) {
          this.emitReasoning(this.pending.slice(0, at), out, true);
          this.pending = this.pending.slice(at + CLOSE.length);
          this.state = "answer";
          continue;
        }
        const keep = partialSuffix(this.pending, CLOSE);
        this.emitReasoning(this.pending.slice(0, this.pending.length - keep), out, false);
        this.pending = this.pending.slice(this.pending.length - keep);
        return out;
      }
      // answer
      let piece = this.pending;
      this.pending = "";
      if (!this.answerStarted) {
        piece = piece.replace(/^\n+/, "");
        if (piece.length === 0) return out;
        this.answerStarted = true;
      }
      out.answer += piece;
      this.answer += piece;
      return out;
    }
  }

  /** End of the stream: releases held-back text (an unfinished tag is plain text). */
  flush(): ThinkingParts {
    const out: ThinkingParts = { reasoning: "", answer: "" };
    const rest = this.pending;
    this.pending = "";
    if (this.state === "reasoning") this.emitReasoning(rest, out, true);
    else if (rest) {
      const piece = this.answerStarted ? rest : rest.replace(/^\n+/, "");
      if (this.state === "before" && piece.trim() === "") return out;
      out.answer += piece;
      this.answer += piece;
    }
    return out;
  }

  private emitReasoning(text: string, out: ThinkingParts, closing: boolean): void {
    let piece = this.heldNewlines + text;
    this.heldNewlines = "";
    if (!this.reasoningStarted) {
      piece = piece.replace(/^\n+/, "");
      if (piece.length === 0) return;
      this.reasoningStarted = true;
    }
    const trailing = /\n+$/.exec(piece)?.[0] ?? "";
    piece = piece.slice(0, piece.length - trailing.length);
    if (!closing) this.heldNewlines = trailing; // dropped if the block closes next (rstrip('\n'))
    out.reasoning += piece;
    this.reasoning += piece;
  }
}

/** Length of the longest suffix of `text` that is a proper prefix of `tag`. */
function partialSuffix(text: string, tag: string): number {
  for (let n = Math.min(tag.length - 1, text.length); n > 0; n--) if (text.endsWith(tag.slice(0, n))) return n;
  return 0;
}

/** The whole-text form of the rule (for finished text). */
export function splitThinking(text: string, startsInside = false): ThinkingParts & { hasReasoning: boolean } {
  const s = new ThinkingSplitter({ startsInside });
  s.push(text);
  s.flush();
  return { reasoning: s.reasoning, answer: s.answer, hasReasoning: s.hasReasoning };
}
