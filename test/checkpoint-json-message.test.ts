/** A checkpoint JSON file that does not parse is named in one line (V8's message quotes the text, line breaks too). */
import { describe, expect, it } from "vitest";
import { parseBoundedJson } from "../src/checkpoint/json-file.js";

function messageOf(text: string): string {
  try {
    parseBoundedJson(text, "/ckpt/tokenizer_config.json");
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error("parsed");
}

describe("invalid checkpoint JSON", () => {
  it("a fault next to a line break stays on one line", () => {
    const m = messageOf('{\n  "add_bos": fals+,\n  "add_eos": false\n}');
    expect(m).not.toMatch(/[\r\n]/);
    expect(m).toMatch(/^tokenizer_config\.json: \/ckpt\/tokenizer_config\.json is not valid JSON \(.*\); re-download it$/);
  });

  it("a byte-order mark is named as such", () => {
    expect(messageOf('\ufeff{"a": 1}')).toMatch(/not valid JSON \(it starts with a byte-order mark\)/);
  });
});
