import { describe, expect, it } from "vitest";
import { dropFlags, dropPromptTokens } from "../src/engine/visual-selection.js";

describe("dropPromptTokens", () => {
  // 2 text, 4 placeholders (P), 2 text; 3 axes with M-RoPE-like coordinates, ropeDelta −2.
  const ids = [1, 2, 9, 9, 9, 9, 3, 4];
  const pos3 = Int32Array.from([
    ...[0, 1, 2, 2, 2, 2, 4, 5], // T
    ...[0, 1, 2, 2, 3, 3, 4, 5], // H
    ...[0, 1, 2, 3, 2, 3, 4, 5], // W
  ]);
  const drop = Uint8Array.from([0, 0, 0, 1, 1, 0, 0, 0]);

  it("keep-coordinates removes the dropped columns and continues generation at the unpruned position", () => {
    const out = dropPromptTokens({ inputIds: ids, positionIds: pos3, ropeDelta: -2 }, drop, "keep-coordinates");
    expect(out.inputIds).toEqual([1, 2, 9, 9, 3, 4]);
    expect(Array.from(out.positionIds)).toEqual([0, 1, 2, 2, 4, 5, 0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5]);
    // Next token: unpruned 8 + (−2) = 6; pruned 6 + ropeDelta must also be 6.
    expect(out.inputIds.length + out.ropeDelta).toBe(ids.length - 2);
  });

  it("renumber compacts 1-D positions to a contiguous range", () => {
    const pos1 = Int32Array.from([0, 1, 2, 3, 4, 5, 6, 7]);
    const out = dropPromptTokens({ inputIds: ids, positionIds: pos1, ropeDelta: 0 }, drop, "renumber");
    expect(Array.from(out.positionIds)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(out.ropeDelta).toBe(0);
  });

  it("returns the same layout when nothing is dropped, and refuses a mask of the wrong length", () => {
    const layout = { inputIds: ids, positionIds: pos3, ropeDelta: 0 };
    expect(dropPromptTokens(layout, new Uint8Array(8), "keep-coordinates")).toBe(layout);
    expect(() => dropPromptTokens(layout, new Uint8Array(7), "renumber")).toThrow(/covers 7 tokens/);
  });
});

describe("dropFlags", () => {
  it("matches placeholders to visuals per id, or in request order when images and videos share one id", () => {
    // ids: text 1, image pad 7, video pad 8. Request order: video (3 rows), image (2 rows); the prompt has the image first.
    const prompt = [1, 7, 7, 1, 8, 8, 8, 1];
    const visuals = [{ kind: "video" as const }, { kind: "image" as const }];
    const keep = [Uint8Array.from([1, 0, 1]), Uint8Array.from([0, 1])];
    expect(Array.from(dropFlags(prompt, { imageTokenId: 7, videoTokenId: 8 }, visuals, keep))).toEqual([0, 1, 0, 0, 0, 1, 0, 0]);
    // Shared id 7: the first 3 placeholders are the video's (request order), the next 2 the image's.
    const sharedPrompt = [1, 7, 7, 7, 1, 7, 7];
    expect(Array.from(dropFlags(sharedPrompt, { imageTokenId: 7, videoTokenId: 7 }, visuals, keep))).toEqual([0, 0, 1, 0, 0, 1, 0]);
    expect(() => dropFlags([7, 7, 7, 7, 7, 7], { imageTokenId: 7, videoTokenId: 7 }, visuals, keep)).toThrow(/more visual placeholders/);
  });
});
