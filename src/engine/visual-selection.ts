/**
 * Prompts whose visual token count is only known after the vision encoder ran: InternVL-Flash's resolution router
 * (a frame keeps 64 of its 256 slots), token pruning (EVS; VideoLLaMA3's DiffFP). The prompt is planned with every
 * slot, so the plan is an upper bound that fits the context; once the kept rows are known, the dropped placeholder
 * tokens are removed from the ids and from the positions here, by the family's rule:
 *
 *   keep-coordinates  every kept token keeps its planned position (M-RoPE (t, h, w) stays on the patch it came from,
 *                     text after the visual resumes where the unpruned layout would): the dropped columns are
 *                     removed and ropeDelta grows by their number, so generation continues at the same position;
 *   renumber          1-D families that compact (InternVL-Flash, VideoLLaMA3 as its reference does): every token
 *                     after a dropped one moves down by the number dropped before it, so positions stay contiguous.
 */
import { VideolmError } from "../errors.js";
import { selectsVisualRows, type FamilyConfig, type FamilyProcessor, type VisualSelectionReport } from "../families/family.js";
import type { MediaOptions, VisualPlan } from "./request.js";
import type { VisionOutput } from "./sessions.js";

export type PositionRule = "keep-coordinates" | "renumber";

export interface PromptLayout {
  inputIds: number[];
  /** [axes][S] */
  positionIds: Int32Array;
  ropeDelta: number;
}

/**
 * `layout` without the tokens whose `drop` flag is set (one flag per prompt token). Returns the layout unchanged
 * (the same object) when nothing is dropped.
 */
export function dropPromptTokens(layout: PromptLayout, drop: Uint8Array, rule: PositionRule): PromptLayout {
  const S = layout.inputIds.length;
  if (drop.length !== S) throw new VideolmError(`token selection covers ${drop.length} tokens, the prompt has ${S}`);
  if (S === 0 || layout.positionIds.length % S !== 0) throw new VideolmError(`position ids hold ${layout.positionIds.length} values for ${S} tokens`);
  const axes = layout.positionIds.length / S;
  let dropped = 0;
  for (let i = 0; i < S; i++) dropped += drop[i] ? 1 : 0;
  if (dropped === 0) return layout;
  const kept = S - dropped;
  const inputIds: number[] = [];
  const positionIds = new Int32Array(axes * kept);
  let before = 0; // tokens dropped before i
  let k = 0;
  for (let i = 0; i < S; i++) {
    if (drop[i]) {
      before++;
      continue;
    }
    inputIds.push(layout.inputIds[i]);
    const shift = rule === "renumber" ? before : 0;
    for (let a = 0; a < axes; a++) positionIds[a * kept + k] = layout.positionIds[a * S + i] - shift;
    k++;
  }
  // The next generated token: keep-coordinates continues where the unpruned prompt would (S + ropeDelta, so the delta
  // grows by the dropped count); renumber continues right after the compacted prompt.
  const ropeDelta = rule === "renumber" ? layout.ropeDelta : layout.ropeDelta + dropped;
  return { inputIds, positionIds, ropeDelta };
}

/**
 * Which placeholder holds which visual row — the engine's one rule (as the references scatter rows): the i-th image
 * fills the i-th image pads in prompt order, the i-th video the video pads; when images and videos share one placeholder
 * id (InternVL's <IMG_CONTEXT>) the visuals fill them in request order. `rows(i)` is how many rows visual i has.
 * Returns the placeholders' prompt indices (`positions`) and, per visual, each row's index into them (`targets`; −1
 * for rows beyond its placeholders, which are not used). More placeholders than rows is an error.
 */
export function placeholderTargets(
  inputIds: readonly number[],
  ids: { imageTokenId: number; videoTokenId: number },
  visuals: readonly { kind: "image" | "video" }[],
  rows: (visual: number) => number,
): { positions: Int32Array; targets: Int32Array[] } {
  const shared = ids.imageTokenId === ids.videoTokenId;
  const queues = { image: [] as number[], video: [] as number[] };
  visuals.forEach((v, i) => queues[shared ? "image" : v.kind].push(i));
  const targets = visuals.map((_, i) => new Int32Array(rows(i)).fill(-1));
  const positions: number[] = [];
  const cursor = { image: { q: 0, row: 0 }, video: { q: 0, row: 0 } };
  for (let t = 0; t < inputIds.length; t++) {
    const id = inputIds[t];
    if (id !== ids.imageTokenId && id !== ids.videoTokenId) continue;
    const cls = id === ids.imageTokenId ? "image" : "video";
    const c = cursor[cls];
    const visual = queues[cls][c.q];
    if (visual === undefined) throw new VideolmError(`the prompt has more ${shared ? "visual" : cls} placeholders than ${shared ? "visual" : cls} inputs`);
    targets[visual][c.row] = positions.length;
    positions.push(t);
    if (++c.row === targets[visual].length) {
      c.q++;
      c.row = 0;
    }
  }
  return { positions: Int32Array.from(positions), targets };
}

/**
 * The per-token drop flags of a prompt from each visual's kept placeholder rows (`keep[i]`, one flag per planned row
 * of visual i, request order), placeholders matched to visuals by `placeholderTargets`.
 */
export function dropFlags(
  inputIds: readonly number[],
  ids: { imageTokenId: number; videoTokenId: number },
  visuals: readonly { kind: "image" | "video" }[],
  keep: readonly Uint8Array[],
): Uint8Array {
  const { positions, targets } = placeholderTargets(inputIds, ids, visuals, (i) => keep[i].length);
  const drop = new Uint8Array(inputIds.length);
  targets.forEach((t, v) => t.forEach((k, r) => {
    if (k >= 0 && !keep[v][r]) drop[positions[k]] = 1;
  }));
  return drop;
}

/**
 * The prompt and visual rows after the family's selection (FamilyProcessor.selectVisualRows), from the planned prompt
 * and every visual's encoder output (request order); unchanged for families without one.
 */
export function applyVisualSelection(
  layout: PromptLayout,
  visuals: readonly VisualPlan[],
  outputs: readonly VisionOutput[],
  processor: FamilyProcessor,
  config: FamilyConfig,
  media: MediaOptions,
): { layout: PromptLayout; outputs: readonly VisionOutput[]; report?: VisualSelectionReport } {
  if (!processor.selectVisualRows || !selectsVisualRows(processor, visuals)) return { layout, outputs };
  const selection = processor.selectVisualRows(outputs, visuals, media);
  const drop = dropFlags(layout.inputIds, config, visuals, selection.keep);
  const rows = selection.rows.map((embeds, i): VisionOutput => {
    const ds = selection.deepstack?.[i];
    return ds && ds.levels > 0 ? { embeds, deepstack: ds.data, deepstackLevels: ds.levels } : { embeds, deepstackLevels: 0 };
  });
  return { layout: dropPromptTokens(layout, drop, selection.rule), outputs: rows, report: selection.report };
}
