/**
 * EVS token pruning (src/engine/evs.ts): the rule on hand-made inputs, the option's validation (library, CLI, server),
 * and that requests without pruning keep the pipeline. The goldens against the oracle are in test/evs-golden.test.ts.
 */
import { describe, expect, it } from "vitest";
import { mediaFlags } from "../src/cli/commands/run.js";
import { evsMaskFromScores, evsRetainedCount, evsRetentionMask, evsSelection, checkPruneRate } from "../src/engine/evs.js";
import { canPipeline } from "../src/engine/pipeline.js";
import type { PreparedRequest } from "../src/engine/preparer.js";
import type { VisualPlan } from "../src/engine/request.js";
import { dropFlags, dropPromptTokens } from "../src/engine/visual-selection.js";
import { selectsVisualRows, type FamilyProcessor } from "../src/families/family.js";
import { Qwen2VLProcessor } from "../src/families/qwen2-vl/processor.js";
import { parseChatRequest } from "../src/server/chat-request.js";
import { HttpError } from "../src/server/errors.js";

/** A video of `frames` frames of `perFrame` tokens (D values each): a fixed random background, small noise per frame. */
function video(frames: number, perFrame: number, D: number, seed = 1): Float32Array {
  let s = seed;
  const rnd = () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1;
  const base = Float32Array.from({ length: perFrame * D }, rnd);
  const out = new Float32Array(frames * perFrame * D);
  for (let f = 0; f < frames; f++) for (let i = 0; i < perFrame * D; i++) out[f * perFrame * D + i] = base[i] + 1e-3 * rnd();
  return out;
}

/** A distinct vector at token `tok` of frame `f` (an object passing by). */
function paint(embeds: Float32Array, perFrame: number, D: number, f: number, tok: number, seed: number): void {
  for (let d = 0; d < D; d++) embeds[(f * perFrame + tok) * D + d] = Math.sin(seed * 7.1 + d * 1.3) * 3;
}

const frameCounts = (mask: Uint8Array, perFrame: number) =>
  Array.from({ length: mask.length / perFrame }, (_, f) => mask.subarray(f * perFrame, (f + 1) * perFrame).reduce((a, b) => a + b, 0));

describe("EVS rule (vLLM compute_retention_mask)", () => {
  it("retained count: max(tokens per frame, int(total · (1 − q)))", () => {
    expect(evsRetainedCount(15, 5, 0.5)).toBe(37); // int(37.5)
    expect(evsRetainedCount(15, 5, 0.75)).toBe(18); // int(18.75)
    expect(evsRetainedCount(48, 4, 0.999)).toBe(48); // never below one frame
    expect(evsRetainedCount(48, 4, 0)).toBe(192);
    expect(evsRetainedCount(10, 1, 0.9)).toBe(10);
  });

  it("a static video prunes to one frame's worth: the first frame", () => {
    const [T, P, D] = [6, 12, 16];
    const mask = evsRetentionMask(video(T, P, D), T, P, D, 0.9);
    expect(frameCounts(mask, P)).toEqual([12, 0, 0, 0, 0, 0]);
  });

  it("a moving object's tokens survive, the static background is dropped", () => {
    const [T, P, D] = [4, 9, 16];
    const e = video(T, P, D, 3);
    // An object on token f + 2 of frame f: frame f differs from f − 1 at its old and its new place.
    for (let f = 0; f < T; f++) paint(e, P, D, f, f + 2, f + 1);
    // q = 0.5: keep 18 = frame 0 (9) + the 6 changed tokens + 3 more.
    const mask = evsRetentionMask(e, T, P, D, 0.5);
    expect(mask.reduce((a, b) => a + b, 0)).toBe(18);
    for (let f = 1; f < T; f++) {
      expect(mask[f * P + f + 2]).toBe(1); // where it arrived
      expect(mask[f * P + f + 1]).toBe(1); // where it left
    }
    // q = 0.75 keeps one frame's worth (9): frame 0 only, whatever moved.
    expect(frameCounts(evsRetentionMask(e, T, P, D, 0.75), P)).toEqual([9, 0, 0, 0]);
  });

  it("ties go to the lower index (torch.argsort stable=True, descending); the first frame always wins", () => {
    // 3 frames of 2 tokens: frame 0 = 255; the rest tie at 0.5, so the earliest win.
    expect(Array.from(evsMaskFromScores([255, 255, 0.5, 0.5, 0.5, 0.5], 3, 2, 0.5))).toEqual([1, 1, 1, 0, 0, 0]);
    expect(Array.from(evsMaskFromScores([255, 255, 0.1, 0.7, 0.5, 0.9], 3, 2, 1 / 3))).toEqual([1, 1, 0, 1, 0, 1]);
  });

  it("rate 0 keeps every token; scores stay in [0, 2] beyond frame 0", () => {
    const [T, P, D] = [3, 4, 8];
    expect(Array.from(evsRetentionMask(video(T, P, D), T, P, D, 0))).toEqual(new Array(12).fill(1));
  });

  it("a selection keeps the kept rows (and DeepStack rows) in order, compacts the prompt by keep-coordinates", () => {
    const [T, P, D] = [2, 4, 2];
    const embeds = Float32Array.from({ length: T * P * D }, (_, i) => i);
    // Frame 1: token 1 changed, the others equal frame 0; q = 0.3 keeps int(8 · 0.7) = 5: frame 0 and that token.
    embeds.set(embeds.subarray(0, P * D), P * D);
    embeds.set([5, -2], (P + 1) * D);
    const deep = Float32Array.from({ length: 2 * T * P * D }, (_, i) => 1000 + i);
    const v: VisualPlan = { kind: "video", source: "v", grid: [T, 4, 4], tokens: T * P, size: [56, 56], prune: 0.3 };
    const sel = evsSelection([{ embeds, deepstack: deep, deepstackLevels: 2 }], [v], 2);
    expect(Array.from(sel.keep[0])).toEqual([1, 1, 1, 1, 0, 1, 0, 0]);
    expect(Array.from(sel.rows[0])).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 5, -2]);
    expect(Array.from(sel.deepstack![0].data)).toEqual([1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1010, 1011, 1016, 1017, 1018, 1019, 1020, 1021, 1022, 1023, 1026, 1027]);
    expect(sel.report.units.map((u) => u.tokens)).toEqual([4, 1]);
    expect(sel.rule).toBe("keep-coordinates");
    // Prompt: [text, 8 pads, text]; keep-coordinates keeps each token's position, the delta grows by the dropped 3.
    const ids = [7, ...new Array(8).fill(9), 8];
    const S = ids.length;
    const pos = new Int32Array(3 * S);
    for (let a = 0; a < 3; a++) for (let i = 0; i < S; i++) pos[a * S + i] = i * (a + 1);
    const drop = dropFlags(ids, { imageTokenId: 10, videoTokenId: 9 }, [v], sel.keep);
    const out = dropPromptTokens({ inputIds: ids, positionIds: pos, ropeDelta: 0 }, drop, sel.rule);
    expect(out.inputIds).toEqual([7, 9, 9, 9, 9, 9, 8]);
    expect(Array.from(out.positionIds.subarray(0, 7))).toEqual([0, 1, 2, 3, 4, 6, 9]);
    expect(out.ropeDelta).toBe(3);
  });
});

describe("EVS option", () => {
  it("library: a rate in [0, 1)", () => {
    expect(checkPruneRate(0)).toBe(0);
    expect(checkPruneRate(0.75)).toBe(0.75);
    for (const bad of [1, -0.1, Number.NaN, "0.5", Infinity]) expect(() => checkPruneRate(bad)).toThrow(/prune must be a number in \[0, 1\)/);
  });

  it("CLI: --prune RATE", () => {
    expect(mediaFlags({ prune: "0.5" }).prune).toBe(0.5);
    expect(mediaFlags({}).prune).toBeUndefined();
    expect(() => mediaFlags({ prune: "1" })).toThrow(/--prune must be a number in \[0, 1\)/);
    expect(() => mediaFlags({ prune: "x" })).toThrow(/--prune/);
  });

  it("server: video_url.prune (and beside video_url), 400 naming the field", () => {
    const LIMITS = { maxTokens: 4096, maxFrames: 256, maxFramePixels: 1_000_000, maxMediaParts: 8 };
    const body = (video: Record<string, unknown>) => ({ messages: [{ role: "user", content: [{ type: "video_url", video_url: { url: "upload://x", ...video } }, { type: "text", text: "?" }] }] });
    const options = (r: ReturnType<typeof parseChatRequest>) => (r.messages[0].content as unknown as { options: Record<string, unknown> }[])[0].options;
    expect(options(parseChatRequest(body({ prune: 0.75 }), LIMITS)).prune).toBe(0.75);
    for (const [bad, why] of [
      [1, /must be < 1/],
      [-0.5, /must be ≥ 0/],
      ["0.5", /must be a number/],
    ] as const) {
      let err: unknown;
      try {
        parseChatRequest(body({ prune: bad }), LIMITS);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(HttpError);
      expect((err as HttpError).status).toBe(400);
      expect((err as HttpError).param).toBe("messages[0].content[0].video_url.prune");
      expect((err as HttpError).message).toMatch(why);
    }
  });
});

describe("EVS and the pipeline", () => {
  const processor = Object.create(Qwen2VLProcessor.prototype) as FamilyProcessor;
  const plan = (prune?: number): VisualPlan => ({ kind: "video", source: "v", grid: [2, 4, 4], tokens: 8, size: [56, 56], ...(prune ? { prune } : {}) });
  const request = (...visuals: VisualPlan[]) => ({ visuals }) as unknown as PreparedRequest;

  it("the Qwen-VL processors select rows only for videos that ask for pruning", () => {
    expect(selectsVisualRows(processor, [plan()])).toBe(false);
    expect(selectsVisualRows(processor, [plan(0.5)])).toBe(true);
    expect(selectsVisualRows(processor, [{ ...plan(0.5), kind: "image" }])).toBe(false);
  });

  it("unpruned requests are pipelined, pruned ones wait for the whole vision pass", () => {
    expect(canPipeline(processor, request(plan()))).toBe(true);
    expect(canPipeline(processor, request(plan(), plan(0.25)))).toBe(false);
  });

  it("families that always select (no selectsVisualRows) never pipeline", () => {
    const always = { selectVisualRows: () => ({}) } as unknown as FamilyProcessor;
    expect(selectsVisualRows(always, [plan()])).toBe(true);
    expect(canPipeline(always, request(plan()))).toBe(false);
  });
});
