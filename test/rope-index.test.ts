import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { VideolmError } from "../src/errors.js";
import {
  decodePositionIds,
  decodeStepPosition,
  getRopeIndex,
  type RopeIndexOptions,
  type RopeVisual,
  type VideoTimeRule,
} from "../src/families/qwen2-vl/rope-index.js";

// Golden cases recorded from transformers 4.57.6 by tools/oracle/record_rope_index.py.
interface Case {
  name: string;
  model: "qwen2-vl" | "qwen2.5-vl";
  tokensPerSecond: number | null;
  rule: VideoTimeRule;
  ids: number[];
  visuals: RopeVisual[];
  positionIds: number[][];
  ropeDelta: number;
}
const fixture = JSON.parse(readFileSync(new URL("./fixtures/rope-index/cases.json", import.meta.url), "utf8")) as {
  meta: { tokens: { visionStart: number; visionEnd: number; imagePad: number; videoPad: number }; spatialMergeSize: number };
  cases: Case[];
};
const tokens = fixture.meta.tokens;
const baseOpts: RopeIndexOptions = {
  spatialMergeSize: fixture.meta.spatialMergeSize,
  imageTokenId: tokens.imagePad,
  videoTokenId: tokens.videoPad,
  visionStartTokenId: tokens.visionStart,
};
const optsFor = (c: Case): RopeIndexOptions => ({
  ...baseOpts,
  tokensPerSecond: c.tokensPerSecond ?? undefined,
  videoTimeRule: c.rule,
});

describe("getRopeIndex matches transformers 4.57.6 get_rope_index", () => {
  it("has enough recorded cases of both families and both time rules", () => {
    const count = (pred: (c: Case) => boolean) => fixture.cases.filter(pred).length;
    expect(count((c) => c.model === "qwen2-vl")).toBeGreaterThanOrEqual(30);
    expect(count((c) => c.model === "qwen2.5-vl" && c.rule === "hf-4.57")).toBeGreaterThanOrEqual(30);
    expect(count((c) => c.rule === "qwen-float")).toBeGreaterThanOrEqual(30);
  });

  for (const c of fixture.cases) {
    it(c.name, () => {
      const { positionIds, ropeDelta } = getRopeIndex(c.ids, c.visuals, optsFor(c));
      const S = c.ids.length;
      expect(positionIds.length).toBe(3 * S);
      const rows = [0, 1, 2].map((a) => Array.from(positionIds.subarray(a * S, (a + 1) * S)));
      expect(rows).toEqual(c.positionIds);
      expect(ropeDelta).toBe(c.ropeDelta);
    });
  }

  it("hand-derived: Qwen2.5-VL 4.57.6 truncates secondPerGrid 0.5 to 0, the float rule does not", () => {
    // x VS P×(3·1·1) VE x with grid (3, 2, 2), tps 2: temporal step = trunc(0.5)·2 = 0 vs trunc(k·0.5·2) = k.
    const ids = [7, tokens.visionStart, tokens.videoPad, tokens.videoPad, tokens.videoPad, tokens.visionEnd, 8];
    const visuals: RopeVisual[] = [{ kind: "video", grid: [3, 2, 2], secondPerGrid: 0.5 }];
    const hf = getRopeIndex(ids, visuals, { ...baseOpts, tokensPerSecond: 2 });
    expect(Array.from(hf.positionIds.subarray(0, 7))).toEqual([0, 1, 2, 2, 2, 3, 4]);
    const fl = getRopeIndex(ids, visuals, { ...baseOpts, tokensPerSecond: 2, videoTimeRule: "qwen-float" });
    expect(Array.from(fl.positionIds.subarray(0, 7))).toEqual([0, 1, 2, 3, 4, 5, 6]);
  });
});

describe("getRopeIndex input checks", () => {
  const ids = [1, tokens.visionStart, tokens.imagePad, tokens.visionEnd];
  it("rejects more grids than blocks", () => {
    const visuals: RopeVisual[] = [
      { kind: "image", grid: [1, 2, 2] },
      { kind: "image", grid: [1, 2, 2] },
    ];
    expect(() => getRopeIndex(ids, visuals, baseOpts)).toThrow(VideolmError);
  });
  it("rejects fewer grids than blocks", () => {
    expect(() => getRopeIndex(ids, [], baseOpts)).toThrow(/1 image and 0 video blocks/);
  });
  it("rejects a pad run that does not match the grid", () => {
    expect(() => getRopeIndex(ids, [{ kind: "image", grid: [1, 4, 4] }], baseOpts)).toThrow(/needs 4 pad tokens/);
  });
});

describe("decode positions", () => {
  it("continue at index + ropeDelta on all three axes", () => {
    const c = fixture.cases.find((x) => x.name === "facts-example-t4-qwen2.5-vl")!;
    const { ropeDelta, positionIds } = getRopeIndex(c.ids, c.visuals, optsFor(c));
    const S = c.ids.length;
    // Last prompt token sits at 11 (facts §3 example B); the first generated token continues at 12.
    expect(positionIds[S - 1]).toBe(11);
    expect(decodeStepPosition(S, ropeDelta)).toBe(12);
    expect(Array.from(decodePositionIds(S, 2, ropeDelta))).toEqual([12, 13, 12, 13, 12, 13]);
  });

  it("handles a 100k-token prompt quickly (O(S))", () => {
    // 50 videos of grid (6, 16, 16) → 384 pad tokens each, separated by 1,000 text tokens.
    const ids: number[] = [];
    const visuals: RopeVisual[] = [];
    for (let v = 0; v < 50; v++) {
      for (let j = 0; j < 1000; j++) ids.push(100 + j);
      ids.push(tokens.visionStart);
      for (let j = 0; j < 384; j++) ids.push(tokens.videoPad);
      ids.push(tokens.visionEnd);
      visuals.push({ kind: "video", grid: [6, 16, 16] });
    }
    const t0 = performance.now();
    const { positionIds, ropeDelta } = getRopeIndex(Int32Array.from(ids), visuals, baseOpts);
    expect(performance.now() - t0).toBeLessThan(500);
    // Per period of 1386 tokens the positions advance by 1001 (text + VS) + 8 (max(5, 7) + 1) + 1 (VE) = 1010.
    expect(positionIds[ids.length - 1]).toBe(50 * 1010 - 1);
    expect(ropeDelta).toBe(50 * 1010 - ids.length);
  });
});
