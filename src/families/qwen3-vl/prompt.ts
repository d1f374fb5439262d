/**
 * Qwen3-VL prompt expansion, as a difference from Qwen2-VL (../qwen2-vl/prompt.ts): a video is no longer one block
 * but one block per frame pair, each preceded by its timestamp text, in the transformers 4.57.6 layout — the chat
 * template's whole `<|vision_start|><|video_pad|><|vision_end|>` is replaced (no extra outer pair; 5.x keeps one):
 *
 *   <0.2 seconds><|vision_start|><|video_pad|>×(h·w/4)<|vision_end|><1.2 seconds><|vision_start|>…<|vision_end|>…
 *
 * Reference: transformers 4.57.6 models/qwen3_vl/processing_qwen3_vl.py `Qwen3VLProcessor.__call__`. Facts §2.6.
 *
 * The timestamp text is spliced in at the *text* level (it must tokenize in context: a preceding ":" and "<" can form
 * one BPE token), with a single pad per frame block; the pads are then repeated on the ids, which is exact because
 * pad strings are added tokens (see ../qwen2-vl/prompt.ts).
 */
import { VideolmError } from "../../errors.js";
import type { Grid } from "../qwen2-vl/prompt.js";
import { timestampText } from "./timestamps.js";

const VISION_START = "<|vision_start|>";
const VISION_END = "<|vision_end|>";
const VIDEO_PAD = "<|video_pad|>";

/**
 * Where the timestamped frame blocks go. "4.57": they replace the chat template's whole
 * `<|vision_start|><|video_pad|><|vision_end|>` (transformers 4.57.6, the Qwen3-VL authors' release). "5.x": they
 * replace only `<|video_pad|>`, leaving an outer `<|vision_start|>` … `<|vision_end|>` pair around them (transformers
 * ≥ 5.0 `Qwen3VLProcessor.replace_video_token`, qwen3_vl/processing_qwen3_vl.py:81-107 in 5.18 — the authors' release
 * for Qwen3.5/3.6, docs/qwen3_5-reference.md §9).
 */
export type VideoPromptLayout = "4.57" | "5.x";

/** One block of the expanded prompt, in prompt order (for ids and rotary positions). */
export interface PromptBlock {
  kind: "image" | "video";
  /** Images: their grid. Video frame pairs: (1, h, w) — get_rope_index splits video grids this way. */
  grid: Grid;
}

/**
 * Replaces the i-th video's `<|vision_start|><|video_pad|><|vision_end|>` (or, as the reference's fallback, a bare
 * `<|video_pad|>`) with its timestamped frame blocks, each holding one pad. `videoTimestamps[i]` lists the seconds
 * of the i-th video's frame pairs (one per temporal grid step).
 */
export function expandVideoText(text: string, videoTimestamps: readonly (readonly number[])[], layout: VideoPromptLayout = "4.57"): string {
  // 5.x (`Qwen3VLProcessor.replace_video_token`) replaces the pad alone, so the template's own
  // <|vision_start|> … <|vision_end|> stays around the frame blocks; 4.57.6 replaces the whole triple.
  const triple = layout === "5.x" ? VIDEO_PAD : VISION_START + VIDEO_PAD + VISION_END;
  let out = "";
  let rest = text;
  for (const [i, seconds] of videoTimestamps.entries()) {
    const frames = seconds.map((t) => timestampText(t) + VISION_START + "\u0000" + VISION_END).join("");
    // The reference replaces the first remaining occurrence in the whole text; placeholders already produced carry
    // a marker instead of the pad, so they are never matched again.
    const at = rest.indexOf(triple);
    const atPad = rest.indexOf(VIDEO_PAD);
    if (at === -1 && atPad === -1) throw new VideolmError(`prompt has ${i} <|video_pad|> placeholder(s) but ${videoTimestamps.length} video input(s) were given`);
    const [pos, len] = at !== -1 ? [at, triple.length] : [atPad, VIDEO_PAD.length];
    out += rest.slice(0, pos) + frames;
    rest = rest.slice(pos + len);
  }
  if (rest.includes(VIDEO_PAD)) throw new VideolmError(`prompt has more <|video_pad|> placeholders than the ${videoTimestamps.length} video input(s) given`);
  return (out + rest).replaceAll("\u0000", VIDEO_PAD);
}
