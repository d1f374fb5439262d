/** The page's per-frame shading from usage.videolm_visual_tokens (src/web/pruning.js); expected values by hand. */
import { describe, expect, it } from "vitest";
// @ts-expect-error plain browser JavaScript module without type declarations
import { keptPerFrame, savingText } from "../src/web/pruning.js";

describe("keptPerFrame", () => {
  it("per frame (Flash: 64 of 256), only the asked visual's units, in index order", () => {
    const usage = {
      units: [
        { visual: 1, index: 1, tokens: 64 },
        { visual: 1, index: 0, tokens: 256 },
        { visual: 0, index: 0, tokens: 4 },
      ],
    };
    expect(keptPerFrame(usage, 1, 2)).toEqual([1, 0.25]);
  });
  it("per temporal patch (EVS on Qwen: a unit covers a frame pair)", () => {
    const usage = { units: [0, 1, 2].map((index) => ({ visual: 0, index, tokens: [15, 9, 0][index] })) };
    expect(keptPerFrame(usage, 0, 6)).toEqual([1, 1, 0.6, 0.6, 0, 0]);
  });
  it("nothing when the usage has no units for that visual or they do not divide the frames", () => {
    expect(keptPerFrame(undefined, 0, 4)).toBeUndefined();
    expect(keptPerFrame({ units: [] }, 0, 4)).toBeUndefined();
    expect(keptPerFrame({ units: [{ visual: 0, index: 0, tokens: 3 }, { visual: 0, index: 1, tokens: 3 }, { visual: 0, index: 2, tokens: 3 }] }, 0, 4)).toBeUndefined();
  });
});

describe("savingText", () => {
  it("planned → kept with the share saved and the method", () => {
    expect(savingText({ planned: 1536, kept: 960, method: "InternVL-Flash resolution router" })).toBe("1,536 → 960 visual tokens (−38%, InternVL-Flash resolution router)");
    expect(savingText(undefined)).toBe("");
  });
});
