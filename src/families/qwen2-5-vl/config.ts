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

function num(obj: Json, key: string, fallback?: number): number {
  const v = obj[key] ?? fallback;
  if (typeof v !== "number" || !Number.isFinite(v)) throw new VideolmError(`config.json: vision_config.${key} must be a number (got ${JSON.stringify(v)})`);
  return v;
}

export function parseQwen2_5VLConfig(raw: Json): Qwen2_5VLConfig {
  const vis = raw.vision_config as Json | undefined;
  if (!vis || typeof vis !== "object") throw new VideolmError("config.json: vision_config is missing");
  const embedDim = num(vis, "hidden_size", 3584); // class defaults of Qwen2_5_VLVisionConfig where a key is absent
  const intermediateSize = num(vis, "intermediate_size", 3420);
  // The text side and the shared vision keys go through the Qwen2-VL parser, with the vision widths renamed to
  // its vocabulary (embed_dim = ViT width, hidden_size = merger output).
  const base = parseQwen2VLConfig({
    ...raw,
    vision_config: {
      ...vis,
      embed_dim: embedDim,
      hidden_size: num(vis, "out_hidden_size", 3584),
      mlp_ratio: intermediateSize / embedDim,
      hidden_act: vis.hidden_act ?? "silu",
      depth: num(vis, "depth", 32),
      num_heads: num(vis, "num_heads", 16),
    },
  });
  const full = vis.fullatt_block_indexes ?? [7, 15, 23, 31];
  if (!Array.isArray(full) || !full.every((i) => Number.isInteger(i) && i >= 0 && i < base.vision.depth)) {
    throw new VideolmError(`config.json: vision_config.fullatt_block_indexes must list block numbers below depth ${base.vision.depth} (got ${JSON.stringify(full)})`);
  }
  const vision: Qwen2_5VLVisionConfig = {
    ...base.vision,
    intermediateSize,
    windowSize: num(vis, "window_size", 112),
    fullAttBlockIndexes: full as number[],
    // 4 is the 4.57.6 class default when the key is absent (hub configs all set 2).
    tokensPerSecond: num(vis, "tokens_per_second", 4),
  };
  const unit = vision.spatialMergeSize * vision.patchSize;
  if (!(vision.windowSize >= unit)) {
    throw new VideolmError(`config.json: vision_config.window_size ${vision.windowSize} must be at least patch_size × spatial_merge_size = ${unit}`);
  }
  return { ...base, vision };
}
