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
import { ConfigReader, LIMITS } from "../../checkpoint/config-values.js";
import { VideolmError } from "../../errors.js";
import { parseQwen2VLConfig, parseQwen2VLVisionConfig, type Qwen2VLConfig, type Qwen2VLTextConfig, type Qwen2VLVisionConfig } from "../qwen2-vl/config.js";

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
  const top = new ConfigReader(raw);
  const vis = top.object("vision_config");
  if (!vis) throw new VideolmError("config.json: vision_config is missing");
  const textRaw: Json = { ...raw, ...(top.object("text_config")?.obj ?? {}) };
  const text = new ConfigReader(textRaw);
  const textHidden = text.int("hidden_size", LIMITS.hiddenSize);
  const vision = parseQwen3VLVisionConfig(vis, textHidden, { deepstackLayers: text.int("num_hidden_layers", LIMITS.layers) });
  // The Qwen2-VL parser reads the text fields; its vision fields are replaced by Qwen3-VL's (same keys rewritten).
  const base = parseQwen2VLConfig({ ...raw, vision_config: { ...vis.obj, embed_dim: vision.embedDim, hidden_size: vision.outHiddenSize, mlp_ratio: vision.mlpRatio, hidden_act: vision.hiddenAct, patch_size: vision.patchSize, in_chans: vision.inChannels } });
  return { ...base, text: { ...base.text, attentionBias: text.bool("attention_bias", false) }, vision };
}

/**
 * Qwen3VLVisionConfig (also Qwen3.5's vision_config, which has no DeepStack: `deepstackLayers: null` leaves
 * `deepstack_visual_indexes` unread and empty). `textHidden` is the width the merger must output.
 */
export function parseQwen3VLVisionConfig(vis: ConfigReader, textHidden: number, options: { deepstackLayers: number | null }): Qwen3VLVisionConfig {
  // The Qwen2-VL parser reads vision `embed_dim`; Qwen3-VL names the ViT width `hidden_size` and the merger output
  // `out_hidden_size`. Qwen3VLVisionConfig defaults: gelu_pytorch_tanh, patch 16, in_channels 3. Read here under
  // their own names so that a bad value is reported under the key the user wrote.
  const embedDim = vis.int("hidden_size", LIMITS.hiddenSize);
  const outHiddenSize = vis.int("out_hidden_size", LIMITS.hiddenSize);
  if (outHiddenSize !== textHidden) {
    throw new VideolmError(`config.json: vision_config.out_hidden_size ${outHiddenSize} (the merger output) must equal the text hidden_size ${textHidden}`);
  }
  const intermediateSize = vis.int("intermediate_size", LIMITS.intermediateSize);
  const base = parseQwen2VLVisionConfig(
    new ConfigReader(
      {
        ...vis.obj,
        embed_dim: embedDim,
        hidden_size: outHiddenSize,
        mlp_ratio: intermediateSize / embedDim,
        hidden_act: vis.obj.hidden_act ?? "gelu_pytorch_tanh",
        patch_size: vis.obj.patch_size ?? 16,
        in_chans: vis.int("in_channels", LIMITS.channels, 3),
      },
      "config.json",
      "vision_config.",
    ),
    textHidden,
  );
  const deepstack =
    options.deepstackLayers == null ? [] : vis.intList("deepstack_visual_indexes", { min: 0, max: base.depth - 1 }, [8, 16, 24], { min: 0, max: base.depth });
  if (options.deepstackLayers != null && deepstack.length > options.deepstackLayers) {
    throw new VideolmError(`config.json: vision_config.deepstack_visual_indexes has ${deepstack.length} levels but the decoder only ${options.deepstackLayers} layers`);
  }
  const numPositionEmbeddings = vis.int("num_position_embeddings", { min: 1, max: 1 << 20 }, 2304);
  if (!Number.isInteger(Math.sqrt(numPositionEmbeddings))) throw new VideolmError(`config.json: vision_config.num_position_embeddings ${numPositionEmbeddings} is not a square`);
  return { ...base, mlpRatio: intermediateSize / embedDim, intermediateSize, numPositionEmbeddings, deepstackVisualIndexes: deepstack };
}
