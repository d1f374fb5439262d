/**
 * Qwen2-VL config.json → typed config. Reads both the hub layout (text fields at the top level) and the
 * transformers ≥ 4.52 layout (text fields under `text_config`); unknown keys are ignored.
 * Reference: transformers 4.57.6 models/qwen2_vl/configuration_qwen2_vl.py.
 */
import { VideolmError } from "../../errors.js";

export interface Qwen2VLVisionConfig {
  depth: number;
  embedDim: number;
  numHeads: number;
  mlpRatio: number;
  hiddenAct: string;
  inChannels: number;
  patchSize: number;
  spatialMergeSize: number;
  temporalPatchSize: number;
  /** Width of the merger output = the LLM hidden size. */
  outHiddenSize: number;
}

export interface Qwen2VLTextConfig {
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  hiddenAct: string;
  rmsNormEps: number;
  ropeTheta: number;
  /** Frequencies per axis (T, H, W); sums to headDim / 2. */
  mropeSection: [number, number, number];
  vocabSize: number;
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
}

export interface Qwen2VLConfig {
  modelType: string;
  text: Qwen2VLTextConfig;
  vision: Qwen2VLVisionConfig;
  imageTokenId: number;
  videoTokenId: number;
  visionStartTokenId: number;
  visionEndTokenId: number;
  eosTokenIds: number[];
}

type Json = Record<string, unknown>;

function num(obj: Json, key: string, where: string, fallback?: number): number {
  const v = obj[key] ?? fallback;
  if (typeof v !== "number" || !Number.isFinite(v)) throw new VideolmError(`config.json: ${where}${key} must be a number (got ${JSON.stringify(v)})`);
  return v;
}

export function parseQwen2VLConfig(raw: Json): Qwen2VLConfig {
  const text: Json = { ...raw, ...((raw.text_config as Json | undefined) ?? {}) };
  const vis = raw.vision_config as Json | undefined;
  if (!vis || typeof vis !== "object") throw new VideolmError("config.json: vision_config is missing");
  const hiddenSize = num(text, "hidden_size", "");
  const numHeads = num(text, "num_attention_heads", "");
  const headDim = typeof text.head_dim === "number" ? text.head_dim : hiddenSize / numHeads;
  const ropeScaling = (text.rope_scaling ?? text.rope_parameters ?? raw.rope_scaling) as Json | undefined;
  const section = ropeScaling?.mrope_section as number[] | undefined;
  if (!Array.isArray(section) || section.length !== 3) throw new VideolmError("config.json: rope_scaling.mrope_section must list 3 integers");
  if (section[0] + section[1] + section[2] !== headDim / 2) {
    throw new VideolmError(`config.json: mrope_section ${JSON.stringify(section)} must sum to head_dim/2 = ${headDim / 2}`);
  }
  if (text.use_sliding_window === true) throw new VideolmError("config.json: use_sliding_window=true is not supported");
  const ropeTheta = typeof text.rope_theta === "number" ? text.rope_theta : num(ropeScaling ?? {}, "rope_theta", "rope_scaling.", 1e6);
  const eos = raw.eos_token_id ?? text.eos_token_id;
  const config: Qwen2VLConfig = {
    modelType: String(raw.model_type),
    text: {
      hiddenSize,
      intermediateSize: num(text, "intermediate_size", ""),
      numLayers: num(text, "num_hidden_layers", ""),
      numHeads,
      numKvHeads: num(text, "num_key_value_heads", "", numHeads),
      headDim,
      hiddenAct: String(text.hidden_act ?? "silu"),
      rmsNormEps: num(text, "rms_norm_eps", "", 1e-6),
      ropeTheta,
      mropeSection: [section[0], section[1], section[2]],
      vocabSize: num(text, "vocab_size", ""),
      maxPositionEmbeddings: num(text, "max_position_embeddings", "", 32768),
      tieWordEmbeddings: Boolean(raw.tie_word_embeddings ?? text.tie_word_embeddings ?? false),
    },
    vision: {
      depth: num(vis, "depth", "vision_config."),
      embedDim: num(vis, "embed_dim", "vision_config."),
      numHeads: num(vis, "num_heads", "vision_config."),
      mlpRatio: num(vis, "mlp_ratio", "vision_config.", 4),
      hiddenAct: String(vis.hidden_act ?? "quick_gelu"),
      inChannels: num(vis, "in_chans", "vision_config.", num(vis, "in_channels", "vision_config.", 3)),
      patchSize: num(vis, "patch_size", "vision_config.", 14),
      spatialMergeSize: num(vis, "spatial_merge_size", "vision_config.", 2),
      temporalPatchSize: num(vis, "temporal_patch_size", "vision_config.", 2),
      outHiddenSize: num(vis, "hidden_size", "vision_config.", hiddenSize),
    },
    imageTokenId: num(raw, "image_token_id", "", 151655),
    videoTokenId: num(raw, "video_token_id", "", 151656),
    visionStartTokenId: num(raw, "vision_start_token_id", "", 151652),
    visionEndTokenId: num(raw, "vision_end_token_id", "", 151653),
    eosTokenIds: eos === undefined ? [] : Array.isArray(eos) ? (eos as number[]) : [eos as number],
  };
  if (config.text.numHeads % config.text.numKvHeads !== 0) {
    throw new VideolmError(`config.json: num_attention_heads ${numHeads} is not a multiple of num_key_value_heads ${config.text.numKvHeads}`);
  }
  if (config.vision.embedDim % config.vision.numHeads !== 0) throw new VideolmError("config.json: vision embed_dim is not a multiple of num_heads");
  return config;
}
