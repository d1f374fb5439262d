/**
 * Incremental detokenization for streamed generation.
 *
 * A byte-level BPE token may carry only part of a UTF-8 character (an emoji is often 2–4 tokens), and decoders
 * like Metaspace treat the first token of a text differently, so decoding one token at a time is wrong.
 * Approach (the one text-generation-inference and vLLM use): keep two offsets into the generated ids,
 *   prefixOffset … readOffset   tokens whose text was already emitted (a small context window),
 *   readOffset   … end          tokens not yet emitted.
 * After each token decode ids[prefixOffset:] and ids[prefixOffset:readOffset]; the new text is the difference.
 * If the new text ends in U+FFFD the last character is (probably) incomplete, so hold it back until a later token
 * completes it; `flush()` releases whatever is still held at the end of generation.
 */
import type { DecodeOptions, TextTokenizer } from "./tokenizer.js";

const REPLACEMENT_CHAR = "\uFFFD";

export class StreamingDecoder {
  private readonly ids: number[] = [];
  private prefixOffset = 0;
  private readOffset = 0;
  private emitted = "";

  constructor(
    private readonly tokenizer: Pick<TextTokenizer, "decode">,
    private readonly options: DecodeOptions = {},
  ) {}

  /** Adds one generated token id; returns the newly completed text (possibly ""). */
  push(id: number): string {
    this.ids.push(id);
    const prefixText = this.tokenizer.decode(this.ids.slice(this.prefixOffset, this.readOffset), this.options);
    const newText = this.tokenizer.decode(this.ids.slice(this.prefixOffset), this.options);
    if (newText.length > prefixText.length && !newText.endsWith(REPLACEMENT_CHAR)) {
      // prefixText decoded to whole characters earlier, so it is a prefix of newText.
      const delta = newText.slice(prefixText.length);
      this.prefixOffset = this.readOffset;
      this.readOffset = this.ids.length;
      this.emitted += delta;
      return delta;
    }
    return "";
  }

  /** Text still held back (an incomplete character at the end of generation); call once when generation ends. */
  flush(): string {
    if (this.readOffset === this.ids.length) return "";
    const prefixText = this.tokenizer.decode(this.ids.slice(this.prefixOffset, this.readOffset), this.options);
    const newText = this.tokenizer.decode(this.ids.slice(this.prefixOffset), this.options);
    this.prefixOffset = this.readOffset;
    this.readOffset = this.ids.length;
    const delta = newText.length > prefixText.length ? newText.slice(prefixText.length) : "";
    this.emitted += delta;
    return delta;
  }

  /** All text emitted so far (concatenation of the deltas). */
  get text(): string {
    return this.emitted;
  }

  /** All token ids pushed so far. */
  get tokenIds(): readonly number[] {
    return this.ids;
  }
}
