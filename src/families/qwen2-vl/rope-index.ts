/**
 * 3-D rotary (M-RoPE) position ids of a prompt for the Qwen2-VL text decoder, and the Qwen2.5-VL variant.
 *
 * Reference (ported exactly, batch size 1, attention mask all ones):
 *   transformers 4.57.6 `models/qwen2_vl/modeling_qwen2_vl.py: Qwen2VLModel.get_rope_index`
 *   transformers 4.57.6 `models/qwen2_5_vl/modeling_qwen2_5_vl.py: Qwen2_5_VLModel.get_rope_index`
 *
 * Rules:
 *   - text: consecutive positions, the same on all 3 axes;
 *   - a visual block (the run of `<|image_pad|>`/`<|video_pad|>` tokens) starting at position s:
 *       T = s + temporal index, H = s + merged row, W = s + merged col (row-major over the merged grid);
 *   - after a block, text resumes at (max position of that block) + 1;
 *   - ropeDelta = max position + 1 − sequence length; generated token at absolute index i gets i + ropeDelta.
 * Temporal index of grid step k: Qwen2-VL: k. Qwen2.5-VL: images 0; videos trunc(k · secondPerGrid · tokensPerSecond),
 * where 4.57.6 first casts secondPerGrid to an integer (see `VideoTimeRule`).
 *
 * Which visual a block belongs to follows the reference: the i-th image block takes the i-th image grid and the
 * i-th video block the i-th video grid; only a `<|vision_start|>` directly followed by a pad token counts.
 */
import { VideolmError, check } from "../../errors.js";

export type VisualKind = "image" | "video";

export interface RopeVisual {
  kind: VisualKind;
  /** Patch grid [t, h, w] before spatial merging (`image_grid_thw` / `video_grid_thw` row). */
  grid: readonly [number, number, number];
  /** Qwen2.5-VL videos only: seconds covered by one temporal grid step (`second_per_grid_ts`); default 1.0. */
  secondPerGrid?: number;
}

/**
 * How Qwen2.5-VL scales video time steps.
 * - "hf-4.57": transformers 4.57.6 does `torch.as_tensor(second_per_grid_t, dtype=int64)` before multiplying, so
 *   secondPerGrid is truncated to an integer first (0.5 → 0, 1.25 → 1). This is the oracle and the default.
 * - "qwen-float": Qwen's training code (qwen-vl-finetune rope2d `get_rope_index_25`) multiplies in float32 and
 *   truncates the product: trunc(f32(f32(k · spg) · tps)). Same result whenever secondPerGrid is an integer.
 */
export type VideoTimeRule = "hf-4.57" | "qwen-float";

export interface RopeIndexOptions {
  spatialMergeSize: number;
  imageTokenId: number;
  videoTokenId: number;
  visionStartTokenId: number;
  /** Qwen2.5-VL `vision_config.tokens_per_second`; undefined selects the Qwen2-VL rule (temporal index = k). */
  tokensPerSecond?: number;
  /** Only used when tokensPerSecond is set. Default "hf-4.57". */
  videoTimeRule?: VideoTimeRule;
}

export interface RopeIndex {
  /** Length 3·S, layout [3][S]: rows T, H, W. */
  positionIds: Int32Array;
  /** max position + 1 − S (≤ 0). */
  ropeDelta: number;
}

/** Counts visual blocks the way the reference does: `<|vision_start|>` immediately followed by a pad token. */
function countVisualBlocks(ids: ArrayLike<number>, opts: RopeIndexOptions): { images: number; videos: number } {
  let images = 0;
  let videos = 0;
  for (let i = 0; i + 1 < ids.length; i++) {
    if (ids[i] !== opts.visionStartTokenId) continue;
    const next = ids[i + 1];
    if (next === opts.imageTokenId) images++;
    else if (next === opts.videoTokenId) videos++;
  }
  return { images, videos };
}

/** Temporal step multiplier for one visual, or null for the Qwen2-VL rule (index k itself). */
function secondsScale(visual: RopeVisual, opts: RopeIndexOptions): number | null {
  if (opts.tokensPerSecond === undefined) return null;
  if (visual.kind === "image") return 0; // the reference sets second_per_grid_t = 0 for images
  // second_per_grid_ts arrives as a float32 tensor (BatchFeature of a python list).
  const spg = Math.fround(visual.secondPerGrid ?? 1.0);
  return (opts.videoTimeRule ?? "hf-4.57") === "hf-4.57" ? Math.trunc(spg) : spg;
}

/**
 * Port of `get_rope_index` (see file header). O(S): the reference's `input_tokens.index(token, st)` searches are
 * replaced by two forward-only cursors, valid because `st` never decreases.
 */
export function getRopeIndex(
  inputIds: ArrayLike<number>,
  visuals: readonly RopeVisual[],
  opts: RopeIndexOptions,
): RopeIndex {
  const S = inputIds.length;
  const merge = opts.spatialMergeSize;
  check(Number.isInteger(merge) && merge > 0, `spatial_merge_size must be a positive integer, got ${merge}`);
  const positionIds = new Int32Array(3 * S); // [3][S]
  if (S === 0) return { positionIds, ropeDelta: 0 };

  const imageVisuals = visuals.filter((v) => v.kind === "image");
  const videoVisuals = visuals.filter((v) => v.kind === "video");
  const blocks = countVisualBlocks(inputIds, opts);
  check(
    blocks.images === imageVisuals.length && blocks.videos === videoVisuals.length,
    () =>
      `prompt has ${blocks.images} image and ${blocks.videos} video blocks (<|vision_start|> + pad token) but ` +
      `${imageVisuals.length} image and ${videoVisuals.length} video grids were given; ` +
      `expand each placeholder once per visual input`,
  );

  const rowT = positionIds.subarray(0, S);
  const rowH = positionIds.subarray(S, 2 * S);
  const rowW = positionIds.subarray(2 * S, 3 * S);
  const writeText = (from: number, length: number, startPos: number): void => {
    for (let j = 0; j < length; j++) {
      const p = startPos + j;
      rowT[from + j] = p;
      rowH[from + j] = p;
      rowW[from + j] = p;
    }
  };

  let st = 0; // first token not yet assigned
  let lastMax = -1; // max position of the last block written (reference: llm_pos_ids_list[-1].max())
  let imageCursor = 0;
  let videoCursor = 0;
  let imageIndex = 0;
  let videoIndex = 0;
  const total = imageVisuals.length + videoVisuals.length;
  for (let n = 0; n < total; n++) {
    // Next image / video pad at or after st; S + 1 when none remain (as the reference's len(input_tokens) + 1).
    let edImage = S + 1;
    if (imageIndex < imageVisuals.length) {
      if (imageCursor < st) imageCursor = st;
      while (imageCursor < S && inputIds[imageCursor] !== opts.imageTokenId) imageCursor++;
      check(imageCursor < S, `image block ${imageIndex + 1} expected after token ${st} but no <|image_pad|> follows`);
      edImage = imageCursor;
    }
    let edVideo = S + 1;
    if (videoIndex < videoVisuals.length) {
      if (videoCursor < st) videoCursor = st;
      while (videoCursor < S && inputIds[videoCursor] !== opts.videoTokenId) videoCursor++;
      check(videoCursor < S, `video block ${videoIndex + 1} expected after token ${st} but no <|video_pad|> follows`);
      edVideo = videoCursor;
    }
    const isImage = edImage < edVideo;
    const visual = isImage ? imageVisuals[imageIndex++] : videoVisuals[videoIndex++];
    const ed = isImage ? edImage : edVideo;
    const padId = isImage ? opts.imageTokenId : opts.videoTokenId;

    const [t, h, w] = visual.grid;
    const gridT = t;
    const gridH = Math.floor(h / merge);
    const gridW = Math.floor(w / merge);
    check(
      Number.isInteger(gridT) && gridT >= 1 && gridH >= 1 && gridW >= 1,
      () => `${visual.kind} grid [${visual.grid.join(", ")}] gives an empty merged grid (spatial_merge_size ${merge})`,
    );
    const count = gridT * gridH * gridW;
    // The reference assumes the pad run has exactly `count` tokens; verify it instead of mis-assigning.
    let run = 0;
    while (ed + run < S && inputIds[ed + run] === padId) run++;
    check(
      run === count,
      () =>
        `${visual.kind} grid [${visual.grid.join(", ")}] needs ${count} pad tokens but the prompt has ${run} ` +
        `at token ${ed}; placeholder expansion and grids disagree`,
    );

    const textLen = ed - st;
    const stIdx = lastMax + 1;
    writeText(st, textLen, stIdx);

    const base = stIdx + textLen;
    const scale = secondsScale(visual, opts);
    const tps = opts.tokensPerSecond ?? 0;
    let maxT = 0;
    let idx = ed;
    // Visual tokens in order (t, row, col), row-major over the merged grid: shape [gridT, gridH, gridW].
    for (let k = 0; k < gridT; k++) {
      // float32 arithmetic as torch: int64 arange · float32 scalar → float32, then · tokens_per_second, then .long().
      const tk = scale === null ? k : Math.trunc(Math.fround(Math.fround(k * scale) * tps));
      if (tk > maxT) maxT = tk;
      const posT = base + tk;
      for (let r = 0; r < gridH; r++) {
        const posH = base + r;
        for (let c = 0; c < gridW; c++) {
          rowT[idx] = posT;
          rowH[idx] = posH;
          rowW[idx] = base + c;
          idx++;
        }
      }
    }
    lastMax = base + Math.max(maxT, gridH - 1, gridW - 1);
    st = ed + count;
  }

  if (st < S) {
    const stIdx = lastMax + 1;
    writeText(st, S - st, stIdx);
    lastMax = stIdx + (S - st) - 1;
  }
  // Positions grow monotonically block by block, so the last block's max is the overall max.
  return { positionIds, ropeDelta: lastMax + 1 - S };
}

/** Position (same on T, H, W) of the token at absolute sequence index `index` during decoding. */
export function decodeStepPosition(index: number, ropeDelta: number): number {
  return index + ropeDelta;
}

/**
 * Position ids for `count` tokens starting at absolute index `start` (decode steps or a later prefill chunk
 * of pure text): length 3·count, layout [3][count].
 */
export function decodePositionIds(start: number, count: number, ropeDelta: number): Int32Array {
  if (!Number.isInteger(start) || !Number.isInteger(count) || count < 0) {
    throw new VideolmError(`decodePositionIds needs integer start/count, got start=${start} count=${count}`);
  }
  const out = new Int32Array(3 * count);
  for (let j = 0; j < count; j++) {
    const p = start + j + ropeDelta;
    out[j] = p;
    out[count + j] = p;
    out[2 * count + j] = p;
  }
  return out;
}
