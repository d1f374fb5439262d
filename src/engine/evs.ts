/**
 * EVS (Efficient Video Sampling) token pruning, the rule vLLM implements: a video's post-merger tokens that barely
 * changed from the same spatial position one temporal patch earlier are dropped, the first temporal patch is always
 * kept whole, and the kept count is fixed from the rate before anything is scored.
 *
 * Reference: vllm-project/vllm `vllm/multimodal/evs.py` (stored commit 094f117823287790739d3022162a3f30f13d758b):
 *   - `compute_retained_tokens_count` (lines 17-36): R = max(tokens_per_frame, int(tokens_per_frame · T · (1 − q)));
 *   - `compute_retention_mask` (lines 39-93): embeddings [T, H/m, W/m, D]; dissimilarity of frame t > 0 =
 *     1 − cosine_similarity(frame t, frame t − 1) per token (torch.nn.functional.cosine_similarity, dim −1, eps 1e-8);
 *     frame 0 gets 255 (so it is always retained, R ≥ one frame); flat (T·H·W order) `argsort(descending=True,
 *     stable=True)`; the first R indices are kept (ties: the lower flat index first, as a stable sort keeps them).
 * Used by vllm/model_executor/models/qwen2_5_vl.py `_postprocess_video_embeds_evs` (stored commit
 * 002d181a55a03803d7d69547846630069d2378b8; and a later qwen3_vl.py's) on each video's merged embeddings, frames =
 * grid_t (temporal patches: a temporal patch is never split). Float note: scores are float32 as torch gives them up to
 * summation order; the masks equal the reference's whenever the kept/dropped boundary is not a near tie (the goldens'
 * smallest gap there is 3.7e-3).
 */
import { VideolmError } from "../errors.js";
import type { VisualSelection, VisualSelectionReport } from "../families/family.js";
import type { VisualPlan } from "./request.js";
import type { VisionOutput } from "./sessions.js";
import type { PositionRule } from "./visual-selection.js";

/** vLLM `compute_retained_tokens_count`: tokens kept of a video with `frames` temporal patches at pruning rate q. */
export function evsRetainedCount(tokensPerFrame: number, frames: number, q: number): number {
  // int(total · (1 − q)) in Python float64: truncation toward zero.
  return Math.max(tokensPerFrame, Math.trunc(tokensPerFrame * frames * (1 - q)));
}

/**
 * Tokens an EVS-pruned video keeps, known before the vision pass (compute_retained_tokens_count on its grid: one frame
 * = one temporal patch); undefined when the visual is not pruned.
 */
export function evsKeptTokens(v: Pick<VisualPlan, "kind" | "grid" | "tokens" | "prune">): number | undefined {
  if (v.kind !== "video" || !v.prune) return undefined;
  const frames = v.grid[0];
  return Math.min(v.tokens, evsRetainedCount(v.tokens / frames, frames, v.prune));
}

/** A pruning rate as requests give it: a finite number in [0, 1). */
export function checkPruneRate(q: unknown, name = "prune"): number {
  if (typeof q !== "number" || !Number.isFinite(q) || q < 0 || q >= 1) throw new VideolmError(`${name} must be a number in [0, 1) (the fraction of video tokens to drop), got ${JSON.stringify(q)}`);
  return q;
}

/**
 * Per-token dissimilarity to the previous frame (frame 0: 255), float32 as torch computes it:
 * cosine_similarity(x1, x2) = Σ (x1 / max(‖x1‖, eps)) · (x2 / max(‖x2‖, eps)), eps = 1e-8.
 * @param embeds [frames · tokensPerFrame, D], frame-major
 */
export function evsDissimilarity(embeds: Float32Array, frames: number, tokensPerFrame: number, D: number): Float32Array {
  const n = frames * tokensPerFrame;
  if (embeds.length !== n * D) throw new VideolmError(`EVS: ${embeds.length / D} rows for ${frames} frames of ${tokensPerFrame} tokens`);
  const norms = new Float64Array(n);
  for (let r = 0; r < n; r++) {
    let s = 0;
    for (let d = r * D; d < (r + 1) * D; d++) s += embeds[d] * embeds[d];
    norms[r] = Math.max(Math.fround(Math.sqrt(s)), 1e-8);
  }
  const out = new Float32Array(n);
  for (let i = 0; i < tokensPerFrame; i++) out[i] = 255;
  for (let r = tokensPerFrame; r < n; r++) {
    const p = r - tokensPerFrame;
    let dot = 0;
    for (let d = 0; d < D; d++) dot += Math.fround(embeds[r * D + d] / norms[r]) * Math.fround(embeds[p * D + d] / norms[p]);
    out[r] = Math.fround(1 - Math.fround(dot));
  }
  return out;
}

/**
 * vLLM `compute_retention_mask`: 1 for each kept token of a video ([frames · tokensPerFrame], frame-major). At q = 0
 * every token is kept.
 */
export function evsRetentionMask(embeds: Float32Array, frames: number, tokensPerFrame: number, D: number, q: number): Uint8Array {
  const n = frames * tokensPerFrame;
  if (evsRetainedCount(tokensPerFrame, frames, q) >= n) return new Uint8Array(n).fill(1);
  return evsMaskFromScores(evsDissimilarity(embeds, frames, tokensPerFrame, D), frames, tokensPerFrame, q);
}

/** The top-k step of `compute_retention_mask` on given dissimilarities ([frames · tokensPerFrame], frame 0 = 255). */
export function evsMaskFromScores(dis: ArrayLike<number>, frames: number, tokensPerFrame: number, q: number): Uint8Array {
  const n = frames * tokensPerFrame;
  if (dis.length !== n) throw new VideolmError(`EVS: ${dis.length} scores for ${frames} frames of ${tokensPerFrame} tokens`);
  const keep = new Uint8Array(n);
  const retain = Math.min(n, evsRetainedCount(tokensPerFrame, frames, q));
  const order = Array.from({ length: n }, (_, i) => i);
  // Stable descending sort (Array.prototype.sort is stable): equal scores keep ascending index order, as torch's
  // argsort(stable=True) does. NaN (never from finite embeddings) sorts last.
  order.sort((a, b) => (dis[b] > dis[a] ? 1 : dis[b] < dis[a] ? -1 : 0));
  for (let k = 0; k < retain; k++) keep[order[k]] = 1;
  return keep;
}

/**
 * EVS over a request's visuals (for a family's selectVisualRows): every video with `prune` > 0 keeps the rows of its
 * retention mask (frames = grid t, i.e. temporal patches / InternVL frame tiles, tokens per frame = h·w / merge²), in
 * placeholder order; images and unpruned videos keep every row. `rule`: "keep-coordinates" for M-RoPE families (vLLM's
 * recompute_mrope_positions gives each kept token its unpruned (t, h, w)), "renumber" for 1-D ones (vLLM's
 * nano_nemotron_vl builds the prompt from the kept counts, so 1-D positions stay contiguous).
 */
export function evsSelection(outputs: readonly VisionOutput[], visuals: readonly VisualPlan[], mergeSize: number, rule: PositionRule = "keep-coordinates"): VisualSelection {
  const rows: Float32Array[] = [];
  const keep: Uint8Array[] = [];
  const deepstack: { data: Float32Array; levels: number }[] = [];
  const units: VisualSelectionReport["units"] = [];
  const rates = new Set<number>();
  let planned = 0;
  let kept = 0;
  visuals.forEach((v, i) => {
    const out = outputs[i];
    const n = v.tokens;
    if (n === 0 || out.embeds.length % n !== 0) throw new VideolmError(`the vision encoder gave ${out.embeds.length} values for visual ${i}, its plan has ${n} rows`);
    const D = out.embeds.length / n;
    planned += n;
    const q = v.kind === "video" ? (v.prune ?? 0) : 0;
    const [t, h, w] = v.grid;
    const perFrame = (h * w) / (mergeSize * mergeSize);
    if (q <= 0) {
      rows.push(out.embeds);
      keep.push(new Uint8Array(n).fill(1));
      deepstack.push({ data: out.deepstack ?? new Float32Array(0), levels: out.deepstackLevels });
      kept += n;
      return;
    }
    if (t * perFrame !== n) throw new VideolmError(`EVS: visual ${i} plans ${n} tokens, its grid ${v.grid.join("×")} gives ${t * perFrame}`);
    rates.add(q);
    const mask = evsRetentionMask(out.embeds, t, perFrame, D, q);
    const k = mask.reduce((a, b) => a + b, 0);
    rows.push(gatherRows(out.embeds, mask, k, D, 1));
    deepstack.push({ data: out.deepstackLevels > 0 && out.deepstack ? gatherRows(out.deepstack, mask, k, D, out.deepstackLevels) : new Float32Array(0), levels: out.deepstackLevels > 0 ? out.deepstackLevels : 0 });
    keep.push(mask);
    kept += k;
    for (let f = 0; f < t; f++) {
      let c = 0;
      for (let r = f * perFrame; r < (f + 1) * perFrame; r++) c += mask[r];
      units.push({ visual: i, index: f, score: c / perFrame, reduced: c < perFrame, tokens: c });
    }
  });
  const parameters: Record<string, number> = {};
  if (rates.size === 1) parameters.rate = [...rates][0];
  return { rows, keep, deepstack, rule, report: { method: "EVS (vLLM)", plannedTokens: planned, keptTokens: kept, units, parameters, scoreName: "kept fraction" } };
}

/** The rows of `mask` from [levels, n, D] (levels = 1: [n, D]). */
function gatherRows(src: Float32Array, mask: Uint8Array, k: number, D: number, levels: number): Float32Array {
  const n = mask.length;
  const out = new Float32Array(levels * k * D);
  for (let l = 0; l < levels; l++) {
    let o = 0;
    for (let r = 0; r < n; r++) if (mask[r]) out.set(src.subarray((l * n + r) * D, (l * n + r + 1) * D), (l * k + o++) * D);
  }
  return out;
}
