/**
 * Scores for events against ground truth.
 *
 * Grounding follows the Charades-STA convention as lmms-eval computes it (lmms_eval/tasks/charades_sta/eval_tvg.py,
 * `iou` and `__main__`): IoU = max(0, min(ends) − max(starts)) / (max(ends) − min(starts)); R1@θ is the fraction of
 * queries whose top-1 predicted span has IoU ≥ θ, for θ ∈ {0.3, 0.5, 0.7}; mIoU is the mean IoU. A query with no
 * readable prediction scores IoU 0 (lmms-eval substitutes a span 10–20 s past the truth, which has IoU 0).
 *
 * Dense captioning is scored as event detection: a prediction matches a ground-truth event when their IoU ≥ tIoU
 * (and, optionally, `textMatch` accepts the pair); each event is matched at most once, and the matching is a
 * maximum-cardinality bipartite matching (augmenting paths), so the count of matched pairs is the largest possible —
 * not the order-dependent greedy pass. Precision = matched / predicted, recall = matched / truth, F1 their harmonic
 * mean. This is stricter than ActivityNet Captions' densevid_eval (ranjaykrishna/densevid_eval `evaluate.py`), whose
 * precision and recall count any prediction overlapping any truth, so duplicate predictions all count there and
 * only once here.
 */
import type { Event } from "./types.js";

type Span = Pick<Event, "start" | "end">;

/** Temporal IoU of two spans; two identical zero-length spans have IoU 1, any other zero-length union 0. */
export function temporalIoU(a: Span, b: Span): number {
  const intersection = Math.max(0, Math.min(a.end, b.end) - Math.max(a.start, b.start));
  const union = Math.max(a.end, b.end) - Math.min(a.start, b.start);
  if (!(union > 0)) return a.start === b.start && a.end === b.end ? 1 : 0;
  return intersection / union;
}

export const GROUNDING_THRESHOLDS = ["0.3", "0.5", "0.7"] as const;

export interface GroundingMetrics {
  n: number;
  /** R1@IoU θ: the fraction of queries (0–1) whose top-1 prediction has IoU ≥ θ. */
  r1: Record<(typeof GROUNDING_THRESHOLDS)[number], number>;
  /** Mean IoU (0–1). */
  mIoU: number;
}

/** Charades-STA metrics over (top-1 prediction, truth) pairs; an undefined prediction counts as IoU 0. Empty input: zeros. */
export function groundingMetrics(pairs: readonly { predicted: Span | undefined; truth: Span }[]): GroundingMetrics {
  const ious = pairs.map(({ predicted, truth }) => (predicted ? temporalIoU(predicted, truth) : 0));
  const n = ious.length;
  const fraction = (threshold: number) => (n === 0 ? 0 : ious.filter((iou) => iou >= threshold).length / n);
  return {
    n,
    r1: { "0.3": fraction(0.3), "0.5": fraction(0.5), "0.7": fraction(0.7) },
    mIoU: n === 0 ? 0 : ious.reduce((sum, iou) => sum + iou, 0) / n,
  };
}

export interface DetectionScore {
  /** Predictions matched one-to-one to ground-truth events. */
  matched: number;
  predicted: number;
  truth: number;
  /** matched / predicted (0 when nothing was predicted). */
  precision: number;
  /** matched / truth (0 when there is no truth). */
  recall: number;
  /** Harmonic mean of precision and recall (0 when both are 0). */
  f1: number;
}

/** Event F1 at a tIoU threshold with one-to-one maximum matching (see the module comment). */
export function denseCaptionF1(
  predicted: readonly Event[],
  truth: readonly Event[],
  tIoU = 0.5,
  textMatch?: (predictedText: string, truthText: string) => boolean,
): DetectionScore {
  const candidates = predicted.map((p) =>
    truth.flatMap((t, j) => (temporalIoU(p, t) >= tIoU && (!textMatch || textMatch(p.text, t.text)) ? [j] : [])),
  );
  return score(maximumMatching(candidates, truth.length), predicted.length, truth.length);
}

/** Micro average over videos: matched, predicted and truth counts summed before precision/recall/F1. */
export function denseCaptionF1Micro(
  videos: readonly { predicted: readonly Event[]; truth: readonly Event[] }[],
  tIoU = 0.5,
  textMatch?: (predictedText: string, truthText: string) => boolean,
): DetectionScore {
  let matched = 0;
  let predictedCount = 0;
  let truthCount = 0;
  for (const { predicted, truth } of videos) {
    const one = denseCaptionF1(predicted, truth, tIoU, textMatch);
    matched += one.matched;
    predictedCount += one.predicted;
    truthCount += one.truth;
  }
  return score(matched, predictedCount, truthCount);
}

function score(matched: number, predicted: number, truth: number): DetectionScore {
  const precision = predicted === 0 ? 0 : matched / predicted;
  const recall = truth === 0 ? 0 : matched / truth;
  const f1 = precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
  return { matched, predicted, truth, precision, recall, f1 };
}

/**
 * Size of a maximum bipartite matching (Kuhn's augmenting paths): `candidates[i]` lists the right-side indices left
 * vertex i may match. O(V·E), ample for the tens of events a video has.
 */
export function maximumMatching(candidates: readonly (readonly number[])[], rightCount: number): number {
  const matchOfRight = new Array<number>(rightCount).fill(-1);
  let size = 0;
  for (let left = 0; left < candidates.length; left++) {
    const visited = new Array<boolean>(rightCount).fill(false);
    if (augment(left, candidates, matchOfRight, visited)) size++;
  }
  return size;
}

function augment(left: number, candidates: readonly (readonly number[])[], matchOfRight: number[], visited: boolean[]): boolean {
  for (const right of candidates[left]) {
    if (visited[right]) continue;
    visited[right] = true;
    if (matchOfRight[right] === -1 || augment(matchOfRight[right], candidates, matchOfRight, visited)) {
      matchOfRight[right] = left;
      return true;
    }
  }
  return false;
}
