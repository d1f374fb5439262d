/** Grounding (Charades-STA R1@IoU, mIoU) and dense-caption F1; expected values computed by hand in the comments. */
import { describe, expect, it } from "vitest";
import { denseCaptionF1, denseCaptionF1Micro, groundingMetrics, maximumMatching, temporalIoU } from "../src/events/metrics.js";
import type { Event } from "../src/events/types.js";

const span = (start: number, end: number, text = ""): Event => ({ start, end, text });

describe("temporalIoU", () => {
  const cases: [Event, Event, number][] = [
    [span(0, 10), span(5, 15), 5 / 15], // overlap 5, hull 15
    [span(0, 10), span(0, 10), 1],
    [span(0, 10), span(2, 4), 0.2],
    [span(0, 5), span(5, 10), 0], // touching
    [span(0, 5), span(7, 10), 0], // disjoint
    [span(3, 3), span(0, 10), 0], // a point has no length
    [span(3, 3), span(3, 3), 1],
  ];
  for (const [a, b, iou] of cases) {
    it(`[${a.start}, ${a.end}] vs [${b.start}, ${b.end}] = ${iou.toFixed(3)}`, () => {
      expect(temporalIoU(a, b)).toBeCloseTo(iou, 12);
      expect(temporalIoU(b, a)).toBeCloseTo(iou, 12);
    });
  }
});

describe("groundingMetrics", () => {
  it("counts R1 with IoU ≥ θ (inclusive), a missing prediction as IoU 0", () => {
    const truth = span(0, 10);
    const metrics = groundingMetrics([
      { predicted: span(0, 10), truth }, // 1
      { predicted: span(0, 5), truth }, // 0.5 exactly
      { predicted: span(3, 10), truth }, // 0.7 exactly
      { predicted: span(5, 15), truth }, // 1/3
      { predicted: undefined, truth }, // 0
    ]);
    expect(metrics.n).toBe(5);
    expect(metrics.r1["0.3"]).toBeCloseTo(4 / 5, 12);
    expect(metrics.r1["0.5"]).toBeCloseTo(3 / 5, 12);
    expect(metrics.r1["0.7"]).toBeCloseTo(2 / 5, 12);
    expect(metrics.mIoU).toBeCloseTo((1 + 0.5 + 0.7 + 1 / 3 + 0) / 5, 12);
  });

  it("is all zeros on no pairs", () => expect(groundingMetrics([])).toEqual({ n: 0, r1: { "0.3": 0, "0.5": 0, "0.7": 0 }, mIoU: 0 }));
});

describe("denseCaptionF1", () => {
  it("finds the maximum one-to-one matching where a greedy pass would not", () => {
    // A = [1, 11] matches X (9/11) and Y (9/11); B = [0, 7] matches only X (0.7; with Y 5/12 < 0.5).
    // Greedy in prediction order gives A→X and leaves B unmatched; the maximum matching is A→Y, B→X.
    const score = denseCaptionF1([span(1, 11), span(0, 7)], [span(0, 10), span(2, 12)], 0.5);
    expect(score).toEqual({ matched: 2, predicted: 2, truth: 2, precision: 1, recall: 1, f1: 1 });
  });

  it("counts a duplicate prediction once", () => {
    const score = denseCaptionF1([span(0, 10), span(0, 10)], [span(0, 10)]);
    expect(score.matched).toBe(1);
    expect(score.precision).toBeCloseTo(0.5, 12);
    expect(score.recall).toBe(1);
    expect(score.f1).toBeCloseTo(2 / 3, 12); // 2·0.5·1 / 1.5
  });

  it("applies the tIoU threshold inclusively and the optional text match", () => {
    expect(denseCaptionF1([span(0, 5)], [span(0, 10)], 0.5).matched).toBe(1); // IoU 0.5
    expect(denseCaptionF1([span(0, 5)], [span(0, 10)], 0.51).matched).toBe(0);
    const sameWords = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();
    expect(denseCaptionF1([span(0, 10, "A dog")], [span(0, 10, "a dog")], 0.5, sameWords).matched).toBe(1);
    expect(denseCaptionF1([span(0, 10, "A cat")], [span(0, 10, "a dog")], 0.5, sameWords).matched).toBe(0);
  });

  it("scores nothing predicted as 0, not NaN", () => {
    expect(denseCaptionF1([], [span(0, 1)])).toEqual({ matched: 0, predicted: 0, truth: 1, precision: 0, recall: 0, f1: 0 });
  });

  it("micro-averages over videos by summing counts", () => {
    // video 1: 2 of 2 matched; video 2: 1 prediction, 3 truths, none matched → P = 2/3, R = 2/5, F1 = 0.5.
    const score = denseCaptionF1Micro([
      { predicted: [span(0, 5), span(5, 10)], truth: [span(0, 5), span(5, 10)] },
      { predicted: [span(50, 60)], truth: [span(0, 1), span(2, 3), span(4, 5)] },
    ]);
    expect(score.matched).toBe(2);
    expect(score.precision).toBeCloseTo(2 / 3, 12);
    expect(score.recall).toBeCloseTo(2 / 5, 12);
    expect(score.f1).toBeCloseTo(0.5, 12);
  });
});

describe("maximumMatching", () => {
  it("matches a chain that needs two augmentations", () => {
    // left 0 → {0, 1}, left 1 → {0}, left 2 → {1, 2}: all three can be matched (0→1? then 2→2, 1→0).
    expect(maximumMatching([[0, 1], [0], [1, 2]], 3)).toBe(3);
    expect(maximumMatching([[0], [0], [0]], 1)).toBe(1);
    expect(maximumMatching([], 4)).toBe(0);
  });
});
