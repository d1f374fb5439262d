/**
 * A cheap, exact lower bound on the number of tokens a text encodes to, so that a prompt far over
 * --max-prompt-tokens is refused before it is tokenized (byte-level BPE on a multi-MiB text takes seconds; a long
 * run of one letter is the worst case, ~10 s per MiB with the Qwen tokenizer).
 *
 * Why it is a bound (for a `tokenizer.json` whose model is BPE, normalizer none / NFC / NFKC, and whose added
 * tokens neither strip nor are normalized — otherwise `fromTokenizerJson` gives a bound of 0, i.e. no check):
 *   - added tokens (`<|im_start|>`, `<|video_pad|>`) are split out first, one token each;
 *   - every other token covers at most L bytes of the normalized text, L = the longest vocabulary entry (byte-level
 *     BPE: one character per byte; other BPE vocabularies measured in UTF-8 bytes, which only over-estimates L), so a
 *     piece of B bytes has at least ceil(B / L) tokens;
 *   - with the Qwen2 pre-tokenizer (a Split on the regex below, then ByteLevel) no token crosses a pre-token
 *     boundary, and these positions are always boundaries: before and after every \p{N} character (each digit is a
 *     pre-token of its own) and after the last letter of a run of \p{L} (no alternative of the regex matches past
 *     it). Cutting the text only there gives segments that are unions of whole pre-tokens, each at least one token:
 *     tokens ≥ Σ max(1, ceil(bytes(segment) / L)). For prose that is about one per word (the true count is ~1.3 per
 *     word);
 *   - the letter run R that ends a segment lies in pre-tokens of the form (one optional leading character) + letters,
 *     so every token touching it decodes to that form (with partial UTF-8 characters only at its ends): with L_letters
 *     the longest such vocabulary entry (Qwen: 42 bytes, against L = 128, which is a run of spaces), R alone needs
 *     ceil(bytes(R) / L_letters) tokens. A 4 MiB run of one letter is refused by this (≥ 99 865 tokens).
 * The bound is computed on the rendered prompt (the chat template's output), which the tokenizer encodes as a whole;
 * visual placeholders only add tokens.
 */

/** The pre-tokenizer regex of the Qwen2 / Qwen2.5 / Qwen3 tokenizers (tokenizer.json's Split pattern). */
export const QWEN2_PRETOKENIZER_PATTERN = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/** One segment: a digit; non-letters then a letter run (group 1, ending where the run ends); or trailing non-letters. */
const SEGMENT = /\p{N}|[^\p{N}\p{L}]*(\p{L}+)|[^\p{N}\p{L}]+/gu;

/** A token that can lie in a pre-token "(one optional character) + letters": partial characters show as U+FFFD. */
const LETTER_TOKEN = /^[\s\S]?[\p{L}\uFFFD]+$/u;

/** GPT-2's byte-level alphabet: the character that stands for each byte in a byte-level BPE vocabulary. */
function byteLevelDecoder(): Map<string, number> {
  const bytes: number[] = [];
  for (let b = 33; b <= 126; b++) bytes.push(b);
  for (let b = 161; b <= 172; b++) bytes.push(b);
  for (let b = 174; b <= 255; b++) bytes.push(b);
  const chars = [...bytes];
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    if (!bytes.includes(b)) {
      bytes.push(b);
      chars.push(256 + extra++);
    }
  }
  return new Map(bytes.map((b, i) => [String.fromCodePoint(chars[i]), b]));
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

export class PromptBound {
  private readonly addedPattern: RegExp | null;

  private constructor(
    /** Longest vocabulary entry in bytes (0: no bound). */
    readonly maxTokenBytes: number,
    /** Longest entry of the form (optional character) + letters ("segments" mode; else maxTokenBytes). */
    readonly maxLetterTokenBytes: number,
    /** "segments": the Qwen2 pre-tokenizer is recognised; "bytes": only the byte-count bound; "none". */
    readonly mode: "segments" | "bytes" | "none",
    private readonly normalization: "NFC" | "NFKC" | null,
    added: string[],
  ) {
    const escaped = added.filter((s) => s.length > 0).sort((a, b) => b.length - a.length).map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
    this.addedPattern = escaped.length > 0 ? new RegExp(escaped.join("|"), "g") : null;
  }

  static none(): PromptBound {
    return new PromptBound(0, 0, "none", null, []);
  }

  /** From a parsed tokenizer.json; `none()` when the bound cannot be shown to hold for it. */
  static fromTokenizerJson(json: unknown): PromptBound {
    if (!isObject(json) || !isObject(json.model) || json.model.type !== "BPE" || !isObject(json.model.vocab)) return PromptBound.none();
    const model = json.model;
    const vocab = model.vocab as Json;
    // fuse_unk merges a run of unknown characters into one token of any length.
    if (model.fuse_unk === true && model.unk_token !== null && model.unk_token !== undefined) return PromptBound.none();
    let normalization: "NFC" | "NFKC" | null;
    if (json.normalizer === null || json.normalizer === undefined) normalization = null;
    else if (isObject(json.normalizer) && (json.normalizer.type === "NFC" || json.normalizer.type === "NFKC")) normalization = json.normalizer.type;
    else return PromptBound.none();
    const addedTokens = Array.isArray(json.added_tokens) ? json.added_tokens : [];
    const added: string[] = [];
    for (const t of addedTokens) {
      if (!isObject(t) || typeof t.content !== "string") return PromptBound.none();
      if (t.lstrip === true || t.rstrip === true || t.normalized === true) return PromptBound.none();
      added.push(t.content);
    }
    const pre = json.pre_tokenizer;
    const steps = isObject(pre) && pre.type === "Sequence" && Array.isArray(pre.pretokenizers) ? pre.pretokenizers : [pre];
    const byteLevel = steps.some((s) => isObject(s) && s.type === "ByteLevel");
    const qwen2 =
      steps.length === 2 &&
      isObject(steps[0]) &&
      steps[0].type === "Split" &&
      isObject(steps[0].pattern) &&
      steps[0].pattern.Regex === QWEN2_PRETOKENIZER_PATTERN &&
      steps[0].behavior === "Isolated" &&
      steps[0].invert !== true &&
      isObject(steps[1]) &&
      steps[1].type === "ByteLevel" &&
      steps[1].use_regex === false;
    let L = 0;
    let letters = 0;
    const decode = byteLevel ? byteLevelDecoder() : undefined;
    const utf8 = new TextDecoder("utf-8");
    for (const key of Object.keys(vocab)) {
      const chars = [...key];
      const n = decode ? chars.length : Buffer.byteLength(key);
      if (n > L) L = n;
      if (qwen2 && decode && n > letters) {
        const bytes = chars.map((c) => decode.get(c));
        // A character outside the byte alphabet: no claim about it, it counts as a letter token.
        if (bytes.some((b) => b === undefined) || LETTER_TOKEN.test(utf8.decode(Uint8Array.from(bytes as number[])))) letters = n;
      }
    }
    if (L === 0) return PromptBound.none();
    return new PromptBound(L, qwen2 ? letters || L : L, qwen2 ? "segments" : "bytes", normalization, added);
  }

  /**
   * A number of tokens that `text` certainly has at least (capped: counting stops once it passes `stopAbove`).
   */
  lowerBound(text: string, stopAbove = Infinity): number {
    if (this.mode === "none") return 0;
    let total = 0;
    const piece = (s: string) => {
      if (s.length === 0 || total > stopAbove) return;
      total += this.pieceBound(this.normalization ? s.normalize(this.normalization) : s, stopAbove - total);
    };
    if (!this.addedPattern) {
      piece(text);
      return total;
    }
    const re = new RegExp(this.addedPattern.source, "g");
    let last = 0;
    for (let m = re.exec(text); m !== null; m = re.exec(text)) {
      piece(text.slice(last, m.index));
      total += 1;
      last = m.index + m[0].length;
      if (total > stopAbove) return total;
    }
    piece(text.slice(last));
    return total;
  }

  private pieceBound(s: string, stopAbove: number): number {
    const L = this.maxTokenBytes;
    if (this.mode === "bytes") return Math.ceil(Buffer.byteLength(s) / L);
    // A UTF-16 unit is at most 3 UTF-8 bytes, so segments of ≤ L/3 units are one token at least, and no more is known.
    const short = Math.floor(L / 3);
    const shortLetters = Math.floor(this.maxLetterTokenBytes / 3);
    let n = 0;
    const re = new RegExp(SEGMENT.source, SEGMENT.flags);
    for (let m = re.exec(s); m !== null; m = re.exec(s)) {
      const seg = m[0];
      const run = m[1];
      let k = seg.length <= short ? 1 : Math.ceil(Buffer.byteLength(seg) / L);
      if (run !== undefined && run.length > shortLetters) k = Math.max(k, Math.ceil(Buffer.byteLength(run) / this.maxLetterTokenBytes));
      n += k;
      if (n > stopAbove) break;
    }
    return n;
  }
}
