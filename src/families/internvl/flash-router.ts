/**
 * InternVL3.5-Flash's decision, per request: which tiles get 64 tokens instead of 256, and the rows and placeholders
 * that follow from it. Spec: docs/internvl-flash-reference.md §4 (decision) and §5 (compaction); the released
 * `InternVLChatModel.generate_flash` / `compress_visual_tokens_in_sentence` (LMDeploy's port L552-608, L679-681).
 *
 *   rq       = torch.quantile(p0 over every tile of the request, q)      linear interpolation, float32
 *   compress = p0 > rq  &&  p0 >= absolute                                 strict, then non-strict
 *   a compressed tile keeps the first 64 of its 256 placeholders and takes its 64 mlp2 rows; positions are then
 *   renumbered 0..N'−1 over the compacted prompt (engine/visual-selection.ts "renumber")
 */
import { VideolmError } from "../../errors.js";

/** torch's lerp in float32 (aten lerp kernel: weight < 0.5 ? a + w·(b − a) : b − (b − a)·(1 − w)). */
function lerpF32(a: number, b: number, w: number): number {
  const f = Math.fround;
  const diff = f(b - a);
  return w < 0.5 ? f(a + f(w * diff)) : f(b - f(diff * f(1 - w)));
}

/**
 * `torch.quantile(values, q)` (interpolation "linear") on float32 values: sort ascending, rank q·(n − 1), lerp between
 * the neighbours (aten/src/ATen/native/Sorting.cpp quantile_compute: ranks = q * (n − 1), below = floor, weight =
 * ranks − below, lerp).
 */
export function quantileLinear(values: readonly number[], q: number): number {
  if (values.length === 0) throw new VideolmError("quantile of no values");
  const sorted = values.map((v) => Math.fround(v)).sort((a, b) => a - b);
  const rank = Math.fround(Math.fround(q) * (sorted.length - 1));
  const below = Math.floor(rank);
  const above = Math.min(sorted.length - 1, Math.ceil(rank));
  return lerpF32(sorted[below], sorted[above], Math.fround(rank - below));
}

export interface FlashThresholds {
  /** The quantile q in [0, 1] over the request's tiles. */
  relative: number;
  /** The floor p0 must reach. */
  absolute: number;
}

export interface FlashDecision {
  /** Per tile, request order: compress to 64 tokens. */
  compress: boolean[];
  /** The relative quantile's value (rq). */
  quantile: number;
}

/** The decision rule over every tile of one request (images' tiles, thumbnails and video frames: one population). */
export function decideFlash(p0: readonly number[], t: FlashThresholds): FlashDecision {
  if (p0.length === 0) return { compress: [], quantile: NaN };
  const rq = quantileLinear(p0, t.relative);
  return { compress: p0.map((p) => Math.fround(p) > rq && Math.fround(p) >= Math.fround(t.absolute)), quantile: rq };
}

/** Placeholder rows per tile in the plain layout, and what a compressed tile keeps. */
export const FLASH_TILE_TOKENS = 256;
export const FLASH_COMPRESSED_TOKENS = 64;

/**
 * One visual's rows after the decision: `rows` [kept, D] in placeholder order and `keep` per planned placeholder row
 * (tiles·256): a compressed tile keeps rows 0..63 of its block, filled with its 64 mlp2 rows.
 */
export function compactVisual(
  full: Float32Array,
  compressed: Float32Array,
  compress: readonly boolean[],
  D: number,
): { rows: Float32Array; keep: Uint8Array } {
  const tiles = compress.length;
  if (full.length !== tiles * FLASH_TILE_TOKENS * D || compressed.length !== tiles * FLASH_COMPRESSED_TOKENS * D) {
    throw new VideolmError(`Flash vision outputs do not match ${tiles} tiles (${full.length / D} and ${compressed.length / D} rows)`);
  }
  const kept = compress.reduce((n, c) => n + (c ? FLASH_COMPRESSED_TOKENS : FLASH_TILE_TOKENS), 0);
  const rows = new Float32Array(kept * D);
  const keep = new Uint8Array(tiles * FLASH_TILE_TOKENS);
  let at = 0;
  compress.forEach((c, k) => {
    const n = c ? FLASH_COMPRESSED_TOKENS : FLASH_TILE_TOKENS;
    const source = c ? compressed.subarray(k * n * D, (k + 1) * n * D) : full.subarray(k * n * D, (k + 1) * n * D);
    rows.set(source, at * D);
    keep.fill(1, k * FLASH_TILE_TOKENS, k * FLASH_TILE_TOKENS + n);
    at += n;
  });
  return { rows, keep };
}

/** Vision outputs of one visual that the router reads (graph names: flash.ts FLASH_OUTPUTS). */
export interface FlashVisualOutput {
  /** [tiles·256, D] */
  embeds: Float32Array;
  /** [tiles·64, D] */
  compressed: Float32Array;
  /** [tiles] */
  p0: Float32Array;
}

export interface FlashSelection {
  rows: Float32Array[];
  keep: Uint8Array[];
  decision: FlashDecision;
  /** Per tile, request order. */
  tiles: { visual: number; index: number; p0: number; compressed: boolean }[];
}

/** The router over one request's visuals (request order): decide over all their tiles, then compact each visual. */
export function selectFlashRows(visuals: readonly FlashVisualOutput[], t: FlashThresholds, D: number): FlashSelection {
  const tiles = visuals.flatMap((v, visual) => Array.from(v.p0, (p0, index) => ({ visual, index, p0 })));
  const decision = decideFlash(
    tiles.map((x) => x.p0),
    t,
  );
  let at = 0;
  const rows: Float32Array[] = [];
  const keep: Uint8Array[] = [];
  for (const v of visuals) {
    const compress = decision.compress.slice(at, at + v.p0.length);
    at += v.p0.length;
    const c = compactVisual(v.embeds, v.compressed, compress, D);
    rows.push(c.rows);
    keep.push(c.keep);
  }
  return { rows, keep, decision, tiles: tiles.map((x, i) => ({ ...x, compressed: decision.compress[i] })) };
}
