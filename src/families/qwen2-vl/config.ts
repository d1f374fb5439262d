/**
 * Qwen2-VL config.json → typed config. Reads both the hub layout (text fields at the top level) and the
 * transformers ≥ 4.52 layout (text fields under `text_config`); unknown keys are ignored.
 * Reference: transformers 4.57.6 models/qwen2_vl/configuration_qwen2_vl.py.
 */
import { ConfigReader, LIMITS } from "../../checkpoint/config-values.js";
import { describeJson } from "../../checkpoint/json-file.js";
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

/** Activations the graph builders emit (src/onnx/layers.ts `activation`). */
export const SUPPORTED_ACTIVATIONS = ["silu", "quick_gelu", "gelu", "gelu_pytorch_tanh"] as const;

/**
 * The text head width must be a multiple of 8: prefill attention and rotary run on onnxruntime's
 * GroupQueryAttention / RotaryEmbedding contrib kernels, which reject other head sizes at run time
 * ("head_size must be a multiple of 8"). Every published Qwen-VL checkpoint has head_dim 128.
 */
export const TEXT_HEAD_DIM_MULTIPLE = 8;

export function parseQwen2VLConfig(raw: Json): Qwen2VLConfig {
  const top = new ConfigReader(raw);
  const textConfig = top.object("text_config");
  const text = new ConfigReader({ ...raw, ...(textConfig?.obj ?? {}) }, "config.json", "");
  const vis = top.object("vision_config");
  if (!vis) throw new VideolmError("config.json: vision_config is missing");
  const hiddenSize = text.int("hidden_size", LIMITS.hiddenSize);
  const numHeads = text.int("num_attention_heads", LIMITS.heads);
  if (text.obj.head_dim == null && hiddenSize % numHeads !== 0) {
    throw new VideolmError(`config.json: hidden_size ${hiddenSize} must be a multiple of num_attention_heads ${numHeads} (head_dim = hidden_size / num_attention_heads)`);
  }
  const headDim = text.int("head_dim", LIMITS.headDim, hiddenSize / numHeads);
  if (headDim % TEXT_HEAD_DIM_MULTIPLE !== 0) {
    throw new VideolmError(
      `config.json: head_dim ${headDim} (hidden_size / num_attention_heads) is not a multiple of ${TEXT_HEAD_DIM_MULTIPLE}; ` +
        `videolm's decoder attention runs on onnxruntime's GroupQueryAttention, which requires it (every published Qwen-VL checkpoint has 128)`,
    );
  }
  const numKvHeads = text.int("num_key_value_heads", { min: 1, max: numHeads }, numHeads);
  if (numHeads % numKvHeads !== 0) {
    throw new VideolmError(`config.json: num_attention_heads ${numHeads} is not a multiple of num_key_value_heads ${numKvHeads}`);
  }
  const ropeScalingRaw = text.obj.rope_scaling ?? text.obj.rope_parameters ?? raw.rope_scaling;
  const ropeKey = text.obj.rope_scaling != null ? "rope_scaling" : text.obj.rope_parameters != null ? "rope_parameters" : "rope_scaling";
  if (ropeScalingRaw == null || typeof ropeScalingRaw !== "object" || Array.isArray(ropeScalingRaw)) {
    throw new VideolmError(`config.json: ${ropeKey}.mrope_section must list 3 integers (got ${describeJson(ropeScalingRaw)} for ${ropeKey})`);
  }
  const rope = new ConfigReader(ropeScalingRaw as Json, "config.json", `${ropeKey}.`);
  const section = rope.intList("mrope_section", { min: 0, max: headDim / 2 }, undefined, { min: 3, max: 3 });
  if (section[0] + section[1] + section[2] !== headDim / 2) {
    throw new VideolmError(`config.json: ${ropeKey}.mrope_section ${JSON.stringify(section)} must sum to head_dim/2 = ${headDim / 2}`);
  }
  if (text.obj.use_sliding_window === true) throw new VideolmError("config.json: use_sliding_window=true is not supported");
  const ropeTheta = text.obj.rope_theta != null ? text.num("rope_theta", { min: 0, max: 1e30, exclusiveMin: true }) : rope.num("rope_theta", { min: 0, max: 1e30, exclusiveMin: true }, 1e6);
  const vocabSize = text.int("vocab_size", LIMITS.vocabSize);
  const tokenId = { min: 0, max: vocabSize - 1 };
  const eos = top.intOrList("eos_token_id", tokenId) ?? text.intOrList("eos_token_id", tokenId);
  const config: Qwen2VLConfig = {
    modelType: String(raw.model_type),
    text: {
      hiddenSize,
      intermediateSize: text.int("intermediate_size", LIMITS.intermediateSize),
      numLayers: text.int("num_hidden_layers", LIMITS.layers),
      numHeads,
      numKvHeads,
      headDim,
      hiddenAct: text.str("hidden_act", "silu", SUPPORTED_ACTIVATIONS),
      rmsNormEps: text.num("rms_norm_eps", { min: 0, max: 1, exclusiveMin: true }, 1e-6),
      ropeTheta,
      mropeSection: [section[0], section[1], section[2]],
      vocabSize,
      maxPositionEmbeddings: text.int("max_position_embeddings", LIMITS.contextLength, 32768),
      tieWordEmbeddings: top.obj.tie_word_embeddings != null ? top.bool("tie_word_embeddings", false) : text.bool("tie_word_embeddings", false),
    },
    vision: parseQwen2VLVisionConfig(vis, hiddenSize),
    imageTokenId: top.int("image_token_id", tokenId, 151655),
    videoTokenId: top.int("video_token_id", tokenId, 151656),
    visionStartTokenId: top.int("vision_start_token_id", tokenId, 151652),
    visionEndTokenId: top.int("vision_end_token_id", tokenId, 151653),
    eosTokenIds: eos ?? [],
  };
  if (config.vision.outHiddenSize !== hiddenSize) {
    throw new VideolmError(`config.json: vision_config.hidden_size ${config.vision.outHiddenSize} (the merger output) must equal the text hidden_size ${hiddenSize}`);
  }
  return config;
}

/** `vision_config` (Qwen2VLVisionConfig): the ViT and merger shapes; `hidden_size` defaults to the text width. */
export function parseQwen2VLVisionConfig(vis: ConfigReader, textHiddenSize: number): Qwen2VLVisionConfig {
  const embedDim = vis.int("embed_dim", LIMITS.hiddenSize);
  const visionHeads = vis.int("num_heads", LIMITS.heads);
  if (embedDim % visionHeads !== 0) {
    throw new VideolmError(`config.json: vision_config.embed_dim ${embedDim} is not a multiple of vision_config.num_heads ${visionHeads}`);
  }
  // The 2-D vision rotary gives each of the two axes head_dim/4 frequencies (VisionRotaryEmbedding(head_dim/2)).
  if ((embedDim / visionHeads) % 4 !== 0) {
    throw new VideolmError(`config.json: vision head_dim = embed_dim / num_heads = ${embedDim / visionHeads} must be a multiple of 4 (2-D rotary embedding)`);
  }
  const mlpRatio = vis.num("mlp_ratio", { min: 0, max: 64, exclusiveMin: true }, 4);
  if (Math.abs(embedDim * mlpRatio - Math.round(embedDim * mlpRatio)) > 1e-6) throw vis.fail("mlp_ratio", `× embed_dim ${embedDim} must be an integer`, mlpRatio);
  const inChannels = vis.obj.in_chans != null ? vis.int("in_chans", LIMITS.channels) : vis.int("in_channels", LIMITS.channels, 3);
  return {
    depth: vis.int("depth", LIMITS.visionDepth),
    embedDim,
    numHeads: visionHeads,
    mlpRatio,
    hiddenAct: vis.str("hidden_act", "quick_gelu", SUPPORTED_ACTIVATIONS),
    inChannels,
    patchSize: vis.int("patch_size", LIMITS.patchSize, 14),
    spatialMergeSize: vis.int("spatial_merge_size", LIMITS.mergeSize, 2),
    temporalPatchSize: vis.int("temporal_patch_size", LIMITS.temporalPatchSize, 2),
    outHiddenSize: vis.int("hidden_size", LIMITS.hiddenSize, textHiddenSize),
  };
}
