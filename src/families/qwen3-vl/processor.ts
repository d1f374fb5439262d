/**
 * Qwen3-VL request processing, as a difference from Qwen2-VL's (../qwen2-vl/processor.ts). Pipeline: the authors'
 * — qwen-vl-utils 0.0.14 with image_patch_size 16 (factor 32, `qwenVlUtilsDefaults(16)`) samples and resizes, then the
 * transformers 4.57.6 Qwen3VLProcessor normalises (mean = std = 0.5, from preprocessor_config.json) with
 * do_resize=False, patches (patch 16), and expands the prompt. What differs from Qwen2-VL:
 *   - images: the pixel bounds default to qwen-vl-utils' (4·32² … 16384·32²), not preprocessor_config's `size`
 *     (65 536 … on the hub), because qwen-vl-utils resizes and the HF processor runs with do_resize=False;
 *   - every visual carries the bilinear taps of the learned position embeddings (pos-embed.ts) for the vision graph;
 *   - video prompts are per-frame-pair blocks with text timestamps (prompt.ts). Seconds come from
 *     `_calculate_timestamps(frames_indices, fps)`: for a file, the sampled frame indices / the video's fps (qwen-vl-utils
 *     metadata) with `frameTimes: "reference"`, else (default) the frames' presentation times, which are those numbers
 *     on constant-frame-rate files and the true times on variable-rate ones (media/video.ts); for a list of frames, indices 0..n−1 of the padded list / its fps (qwen-vl-utils' fake metadata);
 *   - rotary positions: `get_rope_index` with each video split into frame-pair grids (1, h, w) (facts §2.7): time is
 *     carried only by the timestamp text.
 * Reference: transformers 4.57.6 models/qwen3_vl/processing_qwen3_vl.py, modeling_qwen3_vl.py `get_rope_index`;
 * qwen-vl-utils 0.0.14 vision_process.py `fetch_video` / `fetch_image`.
 */
import type { VisionBatch } from "../../engine/sessions.js";
import type { MediaOptions, VisualPlan } from "../../engine/request.js";
import { VideolmError } from "../../errors.js";
import type { TextTokenizer } from "../../text/tokenizer.js";
import { Qwen2VLProcessor, type QwenVLProcessorConfig } from "../qwen2-vl/processor.js";
import { expandPlaceholderIds } from "../qwen2-vl/prompt.js";
import { getRopeIndex } from "../qwen2-vl/rope-index.js";
import type { Qwen3VLVisionConfig } from "./config.js";
import { posEmbedTaps } from "./pos-embed.js";
import { expandVideoText, type PromptBlock, type VideoPromptLayout } from "./prompt.js";
import { frameGroupTimestamps } from "./timestamps.js";
import { POS_EMBED_INPUTS } from "./vision.js";

export class Qwen3VLProcessor extends Qwen2VLProcessor {
  /**
   * @param videoLayout where the timestamped frame blocks go (prompt.ts): "4.57" for Qwen3-VL (its authors' release),
   *   "5.x" for families released on transformers 5 (Qwen3.5/3.6), whose processor keeps an outer vision_start/end.
   */
  constructor(
    checkpointDir: string,
    readonly qwen3: QwenVLProcessorConfig<Qwen3VLVisionConfig>,
    readonly videoLayout: VideoPromptLayout = "4.57",
  ) {
    super(checkpointDir, qwen3);
  }

  /** Images: the pixel bounds default to qwen-vl-utils' (see the file comment), for planning and preparing alike. */
  protected override imagePixelBounds(part: { minPixels?: number; maxPixels?: number }, defaults: MediaOptions): { minPixels: number; maxPixels: number } {
    return {
      minPixels: part.minPixels ?? defaults.minPixels ?? this.sampling.imageMinPixels,
      maxPixels: part.maxPixels ?? defaults.maxPixels ?? this.sampling.imageMaxPixels,
    };
  }

  protected override extraVisionInputs(grid: readonly [number, number, number]): VisionBatch["extraInputs"] {
    const v = this.qwen3.vision;
    const taps = posEmbedTaps([grid[0], grid[1], grid[2]], v.numPositionEmbeddings, v.spatialMergeSize);
    const n = grid[0] * grid[1] * grid[2];
    return {
      [POS_EMBED_INPUTS.indices]: { data: taps.indices, dims: [4, n] },
      [POS_EMBED_INPUTS.weights]: { type: "float32", data: taps.weights, dims: [4, n] },
    };
  }

  override buildPrompt(promptText: string, tokenizer: TextTokenizer, visuals: readonly VisualPlan[]) {
    const c = this.qwen3;
    const videos = visuals.filter((v) => v.kind === "video");
    const text = expandVideoText(
      promptText,
      videos.map((v) => {
        const seconds = frameGroupTimestamps(v.timestamps ?? [], c.vision.spatialMergeSize);
        if (seconds.length !== v.grid[0]) {
          throw new VideolmError(`video ${v.source}: ${v.timestamps?.length ?? 0} frame times give ${seconds.length} timestamps for ${v.grid[0]} frame pairs`);
        }
        return seconds;
      }),
      this.videoLayout,
    );
    const blocks: PromptBlock[] = visuals.flatMap((v): PromptBlock[] => {
      const [t, h, w] = v.grid;
      return v.kind === "image" ? [{ kind: "image", grid: v.grid }] : Array.from({ length: t }, () => ({ kind: "video" as const, grid: [1, h, w] as const }));
    });
    const ids = expandPlaceholderIds(tokenizer.encode(text), blocks, { imageTokenId: c.imageTokenId, videoTokenId: c.videoTokenId, mergeSize: c.vision.spatialMergeSize });
    const { positionIds, ropeDelta } = getRopeIndex(ids, blocks, {
      spatialMergeSize: c.vision.spatialMergeSize,
      imageTokenId: c.imageTokenId,
      videoTokenId: c.videoTokenId,
      visionStartTokenId: c.visionStartTokenId,
    });
    return { inputIds: Array.from(ids), positionIds, ropeDelta };
  }
}
