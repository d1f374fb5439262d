/**
 * OpenAI logprob entries for token ids: the token's text and its raw UTF-8 bytes. Byte-level BPE vocabularies
 * (GPT-2 / Qwen) spell each byte as one printable character (`bytes_to_unicode` in GPT-2's encoder.py, also in
 * transformers `models/gpt2/tokenization_gpt2.py`); inverting that mapping gives the token's exact bytes, even
 * for a token that holds only part of a multi-byte character.
 */
import type { TextTokenizer } from "./tokenizer.js";

let unicodeToByte: Map<string, number> | undefined;

function byteDecoder(): Map<string, number> {
  if (unicodeToByte) return unicodeToByte;
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  unicodeToByte = new Map(bs.map((b, i) => [String.fromCodePoint(cs[i]), b]));
  return unicodeToByte;
}

export interface TokenLogprob {
  token: string;
  logprob: number;
  bytes: number[];
}

export class TokenInfo {
  private readonly cache = new Map<number, { token: string; bytes: number[] }>();
  constructor(private readonly tokenizer: TextTokenizer) {}

  describe(id: number): { token: string; bytes: number[] } {
    let hit = this.cache.get(id);
    if (!hit) {
      const piece = this.tokenizer.idToToken(id) ?? "";
      const decoder = byteDecoder();
      const chars = [...piece];
      const bytes = chars.every((c) => decoder.has(c)) ? chars.map((c) => decoder.get(c)!) : [...Buffer.from(this.tokenizer.decode([id]), "utf8")];
      hit = { token: Buffer.from(bytes).toString("utf8"), bytes };
      if (this.cache.size < 65536) this.cache.set(id, hit);
    }
    return hit;
  }

  entry(id: number, logprob: number): TokenLogprob {
    return { ...this.describe(id), logprob };
  }
}
