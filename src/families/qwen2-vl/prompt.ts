/**
 * Qwen2-VL prompt: the chat template renders one `<|image_pad|>` / `<|video_pad|>` per visual input, and the
 * processor repeats each one `t·h·w / merge²` times (one token per merged 2×2 patch group).
 *
 * Reference: transformers 4.57.6 `models/qwen2_vl/processing_qwen2_vl.py: Qwen2VLProcessor.__call__` — in the
 * text, the i-th `<|image_pad|>` becomes `image_grid_thw[i].prod() // merge_size**2` copies (videos likewise with
 * `video_grid_thw`), then the text is tokenized.
 * Here the expansion runs on token ids after tokenizing the rendered template. That is exact: the pad strings are
 * added tokens, which the tokenizer splits out before BPE, so a run of N pad strings tokenizes to N pad ids and
 * the text on either side tokenizes the same with one pad or N (proved on ids against the Python processor in
 * test/text-prompt.test.ts). `expandPlaceholderText` is the literal text form, kept for that proof and debugging.
 */
import { VideolmError } from "../../errors.js";
import type { RopeVisual } from "./rope-index.js";

export type Grid = readonly [number, number, number];

export interface PlaceholderIds {
  imageTokenId: number;
  videoTokenId: number;
  /** vision_config.spatial_merge_size (2 for Qwen2-VL). */
  mergeSize: number;
}

/** Number of LLM tokens for one visual: t·h·w // merge² (Python floor division, as the reference). */
export function visualTokenCount(grid: Grid, mergeSize: number): number {
  const [t, h, w] = grid;
  for (const v of grid) {
    if (!Number.isInteger(v) || v < 1) throw new VideolmError(`visual grid [${grid.join(", ")}] must be positive integers`);
  }
  return Math.floor((t * h * w) / (mergeSize * mergeSize));
}

function splitByKind(visuals: readonly Pick<RopeVisual, "kind" | "grid">[]): { images: Grid[]; videos: Grid[] } {
  const images: Grid[] = [];
  const videos: Grid[] = [];
  for (const v of visuals) (v.kind === "image" ? images : videos).push(v.grid);
  return { images, videos };
}

function checkCounts(found: number, given: number, kind: "image" | "video", placeholder: string): void {
  if (found !== given) {
    throw new VideolmError(
      `prompt has ${found} ${placeholder} placeholder(s) but ${given} ${kind} input(s) were given; ` +
        `each ${kind} needs exactly one {"type": "${kind}"} content part`,
    );
  }
}

/**
 * Expands each image/video pad id into its token count. `visuals` may list images and videos in any interleaving:
 * the i-th image pad takes the i-th image, the i-th video pad the i-th video (as the reference).
 */
export function expandPlaceholderIds(
  ids: ArrayLike<number>,
  visuals: readonly Pick<RopeVisual, "kind" | "grid">[],
  opts: PlaceholderIds,
): Int32Array {
  const { images, videos } = splitByKind(visuals);
  let imagePads = 0;
  let videoPads = 0;
  for (let i = 0; i < ids.length; i++) {
    if (ids[i] === opts.imageTokenId) imagePads++;
    else if (ids[i] === opts.videoTokenId) videoPads++;
  }
  checkCounts(imagePads, images.length, "image", "<|image_pad|>");
  checkCounts(videoPads, videos.length, "video", "<|video_pad|>");

  const imageCounts = images.map((g) => visualTokenCount(g, opts.mergeSize));
  const videoCounts = videos.map((g) => visualTokenCount(g, opts.mergeSize));
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  const outLength = ids.length - imagePads - videoPads + sum(imageCounts) + sum(videoCounts);

  const out = new Int32Array(outLength);
  let o = 0;
  let imageIndex = 0;
  let videoIndex = 0;
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (id === opts.imageTokenId) {
      const n = imageCounts[imageIndex++];
      out.fill(id, o, o + n);
      o += n;
    } else if (id === opts.videoTokenId) {
      const n = videoCounts[videoIndex++];
      out.fill(id, o, o + n);
      o += n;
    } else {
      out[o++] = id;
    }
  }
  return out;
}

export interface PlaceholderStrings {
  imageToken?: string;
  videoToken?: string;
  mergeSize: number;
}

function countOccurrences(text: string, needle: string): number {
  let n = 0;
  for (let at = text.indexOf(needle); at !== -1; at = text.indexOf(needle, at + needle.length)) n++;
  return n;
}

/** The reference's text-level expansion (same errors as `expandPlaceholderIds`). */
export function expandPlaceholderText(
  text: string,
  visuals: readonly Pick<RopeVisual, "kind" | "grid">[],
  opts: PlaceholderStrings,
): string {
  const imageToken = opts.imageToken ?? "<|image_pad|>";
  const videoToken = opts.videoToken ?? "<|video_pad|>";
  const { images, videos } = splitByKind(visuals);
  checkCounts(countOccurrences(text, imageToken), images.length, "image", imageToken);
  checkCounts(countOccurrences(text, videoToken), videos.length, "video", videoToken);
  let imageIndex = 0;
  let videoIndex = 0;
  // One left-to-right pass over both tokens; equivalent to the reference's replace(…, 1) loops per kind.
  let out = "";
  let pos = 0;
  for (;;) {
    const nextImage = text.indexOf(imageToken, pos);
    const nextVideo = text.indexOf(videoToken, pos);
    if (nextImage === -1 && nextVideo === -1) break;
    const isImage = nextVideo === -1 || (nextImage !== -1 && nextImage < nextVideo);
    const at = isImage ? nextImage : nextVideo;
    const token = isImage ? imageToken : videoToken;
    const n = isImage
      ? visualTokenCount(images[imageIndex++], opts.mergeSize)
      : visualTokenCount(videos[videoIndex++], opts.mergeSize);
    out += text.slice(pos, at) + token.repeat(n);
    pos = at + token.length;
  }
  return out + text.slice(pos);
}
