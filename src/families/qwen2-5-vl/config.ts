/**
 * Qwen2.5-VL config.json → typed config.
 * Reference: transformers 4.57.6 models/qwen2_5_vl/configuration_qwen2_5_vl.py (Qwen2_5_VLVisionConfig,
 * Qwen2_5_VLTextConfig).
 *
 * Differences from Qwen2-VL (src/families/qwen2-vl/config.ts):
 *   - text: identical (flat hub layout or `text_config`), parsed by parseQwen2VLConfig;
 *   - vision_config: `hidden_size` is the ViT width (Qwen2-VL calls it `embed_dim` and uses `hidden_size` for the
 *     merger output), `out_hidden_size` is the merger output (= LLM hidden), `intermediate_size` replaces
 *     `mlp_ratio` (SwiGLU MLP), plus `window_size`, `fullatt_block_indexes` and `tokens_per_second`.
 */
import { ConfigReader, LIMITS } from "../../checkpoint/config-values.js";
import { describeJson } from "../../checkpoint/json-file.js";
import { VideolmError } from "../../errors.js";
import { parseQwen2VLConfig, type Qwen2VLConfig, type Qwen2VLVisionConfig } from "../qwen2-vl/config.js";

export interface Qwen2_5VLVisionConfig extends Qwen2VLVisionConfig {
  /** SwiGLU MLP width (gate/up/down). `mlpRatio` is kept only to satisfy the shared shape (= intermediate/embed). */
  intermediateSize: number;
  /** Window side in pixels (112 on every hub checkpoint): windows of window/merge/patch merged tokens per side. */
  windowSize: number;
  /** Blocks that attend over the whole frame; all others attend within their window. */
  fullAttBlockIndexes: number[];
  /** Temporal rotary steps per second of video (hub configs: 2). */
  tokensPerSecond: number;
}

export interface Qwen2_5VLConfig extends Qwen2VLConfig {
  vision: Qwen2_5VLVisionConfig;
}

type Json = Record<string, unknown>;

export function parseQwen2_5VLConfig(raw: Json): Qwen2_5VLConfig {
  const vis = new ConfigReader(raw, "config.json").object("vision_config");
  if (!vis) throw new VideolmError("config.json: vision_config is missing");
  // Class defaults of Qwen2_5_VLVisionConfig where a key is absent; read here under their own names so that a bad
  // value is reported under the key the user wrote, before the renamed copies reach the Qwen2-VL parser.
  const embedDim = vis.int("hidden_size", LIMITS.hiddenSize, 3584);
  const intermediateSize = vis.int("intermediate_size", LIMITS.intermediateSize, 3420);
  const outHiddenSize = vis.int("out_hidden_size", LIMITS.hiddenSize, 3584);
  const depth = vis.int("depth", LIMITS.visionDepth, 32);
  const numHeads = vis.int("num_heads", LIMITS.heads, 16);
  const text = new ConfigReader({ ...raw, ...((raw.text_config as Json | undefined) ?? {}) });
  const textHidden = text.int("hidden_size", LIMITS.hiddenSize);
  if (outHiddenSize !== textHidden) {
    throw new VideolmError(`config.json: vision_config.out_hidden_size ${outHiddenSize} (the merger output) must equal the text hidden_size ${textHidden}`);
  }
  // The text side and the shared vision keys go through the Qwen2-VL parser, with the vision widths renamed to
  // its vocabulary (embed_dim = ViT width, hidden_size = merger output).
  const base = parseQwen2VLConfig({
    ...raw,
    vision_config: {
      ...vis.obj,
      embed_dim: embedDim,
      hidden_size: outHiddenSize,
      mlp_ratio: intermediateSize / embedDim,
      hidden_act: vis.obj.hidden_act ?? "silu",
      depth,
      num_heads: numHeads,
    },
  });
  const full = vis.obj.fullatt_block_indexes ?? [7, 15, 23, 31];
  if (!Array.isArray(full) || full.length > base.vision.depth || !full.every((i) => Number.isInteger(i) && i >= 0 && i < base.vision.depth)) {
    throw new VideolmError(`config.json: vision_config.fullatt_block_indexes must list block numbers below depth ${base.vision.depth} (got ${describeJson(full)})`);
  }
  const vision: Qwen2_5VLVisionConfig = {
    ...base.vision,
    intermediateSize,
    windowSize: vis.int("window_size", { min: 1, max: 1 << 16 }, 112),
    fullAttBlockIndexes: full as number[],
    // 4 is the 4.57.6 class default when the key is absent (hub configs all set 2).
    tokensPerSecond: vis.num("tokens_per_second", { min: 0, max: 1e6, exclusiveMin: true }, 4),
  };
  const unit = vision.spatialMergeSize * vision.patchSize;
  if (!(vision.windowSize >= unit)) {
    throw new VideolmError(`config.json: vision_config.window_size ${vision.windowSize} must be at least patch_size × spatial_merge_size = ${unit}`);
  }
  return { ...base, vision };
}
