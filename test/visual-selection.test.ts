import { describe, expect, it } from "vitest";
import { dropPromptTokens } from "../src/engine/visual-selection.js";

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
