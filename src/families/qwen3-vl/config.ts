/**
 * Qwen3-VL config.json → typed config, as a difference from Qwen2-VL's parser.
 * Reference: transformers 4.57.6 models/qwen3_vl/configuration_qwen3_vl.py (Qwen3VLConfig, Qwen3VLTextConfig,
 * Qwen3VLVisionConfig). What differs from Qwen2-VL:
 *   - text fields live under `text_config` (read by the Qwen2-VL parser already), `head_dim` is explicit,
 *     `attention_bias` (false on the hub) replaces Qwen2's always-on q/k/v bias; rope_scaling's `mrope_interleaved` is
 *     not read because 4.57.6 Qwen3VLTextRotaryEmbedding interleaves unconditionally;
 *   - vision_config: `hidden_size` is the ViT width (Qwen2-VL: `embed_dim`), `intermediate_size` the MLP width,
 *     `out_hidden_size` the merger output, plus `num_position_embeddings` (learned 2-D table) and
 *     `deepstack_visual_indexes`.
 */
import { VideolmError } from "../../errors.js";
import { parseQwen2VLConfig, type Qwen2VLConfig, type Qwen2VLTextConfig, type Qwen2VLVisionConfig } from "../qwen2-vl/config.js";

export interface Qwen3VLVisionConfig extends Qwen2VLVisionConfig {
  intermediateSize: number;
  /** Rows of `pos_embed` (a square grid: 2304 = 48²). */
  numPositionEmbeddings: number;
  /** ViT blocks whose output feeds a DeepStack merger, in order. */
  deepstackVisualIndexes: number[];
}

export interface Qwen3VLTextConfig extends Qwen2VLTextConfig {
  attentionBias: boolean;
}

export interface Qwen3VLConfig extends Qwen2VLConfig {
  text: Qwen3VLTextConfig;
  vision: Qwen3VLVisionConfig;
}

type Json = Record<string, unknown>;

export function parseQwen3VLConfig(raw: Json): Qwen3VLConfig {
  const vis = raw.vision_config as Json | undefined;
  if (!vis || typeof vis !== "object") throw new VideolmError("config.json: vision_config is missing");
  const textRaw: Json = { ...raw, ...((raw.text_config as Json | undefined) ?? {}) };
  // The Qwen2-VL parser reads vision `embed_dim`; Qwen3-VL names the ViT width `hidden_size` and the merger output
  // `out_hidden_size`. Qwen3VLVisionConfig defaults: gelu_pytorch_tanh, patch 16, in_channels 3.
  const num = (obj: Json, key: string, fallback?: number): number => {
    const v = obj[key] ?? fallback;
    if (typeof v !== "number" || !Number.isFinite(v)) throw new VideolmError(`config.json: vision_config.${key} must be a number (got ${JSON.stringify(v)})`);
    return v;
  };
  const embedDim = num(vis, "hidden_size");
  const base = parseQwen2VLConfig({
    ...raw,
    vision_config: {
      ...vis,
      embed_dim: embedDim,
      hidden_size: num(vis, "out_hidden_size"),
      hidden_act: vis.hidden_act ?? "gelu_pytorch_tanh",
      patch_size: vis.patch_size ?? 16,
      in_chans: vis.in_channels ?? 3,
    },
  });
  const deepstack = (vis.deepstack_visual_indexes ?? [8, 16, 24]) as unknown;
  if (!Array.isArray(deepstack) || !deepstack.every((i) => Number.isInteger(i) && i >= 0 && i < base.vision.depth)) {
    throw new VideolmError(`config.json: vision_config.deepstack_visual_indexes must list block indices below depth ${base.vision.depth}`);
  }
  if (deepstack.length > base.text.numLayers) throw new VideolmError("config.json: more DeepStack levels than decoder layers");
  const numPositionEmbeddings = num(vis, "num_position_embeddings", 2304);
  if (!Number.isInteger(Math.sqrt(numPositionEmbeddings))) throw new VideolmError(`config.json: vision_config.num_position_embeddings ${numPositionEmbeddings} is not a square`);
  const intermediateSize = num(vis, "intermediate_size");
  return {
    ...base,
    text: { ...base.text, attentionBias: textRaw.attention_bias === true },
    vision: { ...base.vision, mlpRatio: intermediateSize / embedDim, intermediateSize, numPositionEmbeddings, deepstackVisualIndexes: deepstack as number[] },
  };
}
