/**
 * Qwen2.5-VL request processing.
 * Reference: transformers 4.57.6 models/qwen2_5_vl/processing_qwen2_5_vl.py (Qwen2_5_VLProcessor.__call__) and
 * modeling_qwen2_5_vl.py (Qwen2_5_VLModel.get_rope_index); facts doc §1.10.
 *
 * Differences from Qwen2-VL (src/families/qwen2-vl/processor.ts), which does the rest (qwen-vl-utils sampling and
 * resize, patchify, placeholder expansion):
 *   - every video carries `second_per_grid_ts = temporal_patch_size / fps` with fps = qwen-vl-utils' sample_fps
 *     (the Qwen2-VL processor already records it as PreparedVisual.secondPerGrid);
 *   - temporal rotary ids of video step k are trunc(k · second_per_grid · tokens_per_second) (getRopeIndex with
 *     `tokensPerSecond`), images use 0 for every step;
 *   - each visual also carries its window-attention layout (window.ts) as extra vision-graph inputs.
 */
import type { VisionBatch } from "../../engine/sessions.js";
import type { VisualPlan } from "../../engine/request.js";
import type { TextTokenizer } from "../../text/tokenizer.js";
import { Qwen2VLProcessor } from "../qwen2-vl/processor.js";
import { expandPlaceholderIds } from "../qwen2-vl/prompt.js";
import { getRopeIndex, type RopeVisual, type VideoTimeRule } from "../qwen2-vl/rope-index.js";
import type { Qwen2_5VLConfig } from "./config.js";
import { WINDOW_INPUTS } from "./vision.js";
import { windowPlan } from "./window.js";

/**
 * The time rule the engine uses unless told otherwise: "qwen-float", i.e. trunc(k · spg · tps) in float.
 *
 * Why not the oracle's rule ("hf-4.57", which casts second_per_grid to an integer first)? The checkpoints were
 * trained with Qwen's own code (qwen-vl-finetune rope2d `get_rope_index_25`, float multiply), vLLM does the same,
 * and the point of Qwen2.5-VL's time-aligned ids is that one second of video is `tokens_per_second` temporal
 * steps whatever fps was sampled. The 4.57.6 cast breaks that for any fractional second_per_grid: qwen-vl-utils'
 * sample_fps is rarely exactly 2 (e.g. 1.96 → spg 1.02 → 1), and above 2 fps (spg < 1) every frame gets the same
 * temporal id, i.e. time is discarded. Both rules agree whenever second_per_grid is an integer (the golden tests
 * use such fps values; test/qwen2_5-vl-golden.test.ts also replays a fractional case with "hf-4.57").
 */
export const DEFAULT_VIDEO_TIME_RULE: VideoTimeRule = "qwen-float";

export interface Qwen2_5VLProcessorOptions {
  videoTimeRule?: VideoTimeRule;
}

export class Qwen2_5VLProcessor extends Qwen2VLProcessor {
  readonly videoTimeRule: VideoTimeRule;

  constructor(
    checkpointDir: string,
    override readonly config: Qwen2_5VLConfig,
    options: Qwen2_5VLProcessorOptions = {},
  ) {
    super(checkpointDir, config);
    this.videoTimeRule = options.videoTimeRule ?? DEFAULT_VIDEO_TIME_RULE;
  }

  protected override extraVisionInputs(grid: readonly [number, number, number]): VisionBatch["extraInputs"] {
    const v = this.config.vision;
    const plan = windowPlan([grid[0], grid[1], grid[2]], { patchSize: v.patchSize, spatialMergeSize: v.spatialMergeSize, windowSize: v.windowSize });
    return {
      [WINDOW_INPUTS.gather]: { dims: [plan.numWindows, plan.windowLen], data: plan.gather },
      [WINDOW_INPUTS.scatter]: { dims: [plan.scatter.length], data: plan.scatter },
      [WINDOW_INPUTS.lengths]: { dims: [plan.numWindows], data: plan.lengths },
    };
  }

  /** The rotary inputs of the visuals: grids, and for videos the seconds per temporal grid step. */
  ropeVisuals(visuals: readonly VisualPlan[]): RopeVisual[] {
    return visuals.map((v) => ({ kind: v.kind, grid: v.grid, secondPerGrid: v.kind === "video" ? v.secondPerGrid : undefined }));
  }

  override buildPrompt(promptText: string, tokenizer: TextTokenizer, visuals: readonly VisualPlan[]) {
    const c = this.config;
    const rendered = tokenizer.encode(promptText);
    const ropeVisuals = this.ropeVisuals(visuals);
    const expanded = expandPlaceholderIds(rendered, ropeVisuals, { imageTokenId: c.imageTokenId, videoTokenId: c.videoTokenId, mergeSize: c.vision.spatialMergeSize });
    const { positionIds, ropeDelta } = getRopeIndex(expanded, ropeVisuals, {
      spatialMergeSize: c.vision.spatialMergeSize,
      imageTokenId: c.imageTokenId,
      videoTokenId: c.videoTokenId,
      visionStartTokenId: c.visionStartTokenId,
      tokensPerSecond: c.vision.tokensPerSecond,
      videoTimeRule: this.videoTimeRule,
    });
    return { inputIds: Array.from(expanded), positionIds, ropeDelta };
  }
}
