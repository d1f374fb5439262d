/**
 * VideoLLaMA3 config.json (model_type `video_llama_3`) → one typed config.
 * Reference: transformers 5.18.0 models/video_llama_3/configuration_video_llama_3.py — VideoLlama3Config
 * (`text_config` = a Qwen2 config, `vision_config` = VideoLlama3VisionConfig, `image_token_id`, `video_token_id`,
 * `tie_word_embeddings`); spec docs/video_llama_3-reference.md §1.
 * The language model is Qwen2 (q/k/v bias, 1-D RoPE); other text model types are refused. The vision fields are also
 * laid out as a Qwen2-VL vision config (temporal patch 1, merge 2 — the video merge; images use merge 1, processor.ts)
 * so the engine's plan and cost model read them as for the other families.
 */
import { ConfigReader, LIMITS } from "../../checkpoint/config-values.js";
import { describeJson } from "../../checkpoint/json-file.js";
import { VideolmError } from "../../errors.js";
import type { FamilyConfig } from "../family.js";
import { SUPPORTED_ACTIVATIONS, TEXT_HEAD_DIM_MULTIPLE, type Qwen2VLTextConfig, type Qwen2VLVisionConfig } from "../qwen2-vl/config.js";

type Json = Record<string, unknown>;

/** The SigLIP-style encoder (VideoLlama3VisionConfig) in the Qwen2-VL vision layout, plus its own fields. */
export interface VideoLlama3VisionConfig extends Qwen2VLVisionConfig {
  intermediateSize: number;
  layerNormEps: number;
  /** The 2-D (axial) rotary's theta (rope_parameters.rope_theta, 10000). */
  ropeTheta: number;
}

export interface VideoLlama3Config extends FamilyConfig {
  text: Qwen2VLTextConfig;
  vision: VideoLlama3VisionConfig;
}

export function parseVideoLlama3Config(raw: Json): VideoLlama3Config {
  const top = new ConfigReader(raw);
  const textReader = top.object("text_config");
  if (!textReader) throw new VideolmError("config.json: text_config is missing");
  const visReader = top.object("vision_config");
  if (!visReader) throw new VideolmError("config.json: vision_config is missing");
  const text = parseText(textReader);
  // VideoLlama3Config.__init__: a tied text config makes the whole model tied (C:87-91).
  if (top.obj.tie_word_embeddings === true) text.tieWordEmbeddings = true;
  const vocab = { min: 0, max: text.vocabSize - 1 };
  const vision = parseVision(visReader, text.hiddenSize);
  const imageTokenId = top.int("image_token_id", vocab, 151655);
  const videoTokenId = top.int("video_token_id", vocab, 151656);
  if (imageTokenId === videoTokenId) throw top.fail("video_token_id", `must differ from image_token_id ${imageTokenId}`, videoTokenId);
  const eos = textReader.intOrList("eos_token_id", vocab) ?? top.intOrList("eos_token_id", vocab);
  return {
    modelType: String(raw.model_type),
    text,
    vision,
    imageTokenId,
    videoTokenId,
    // No <|vision_start|> in this family's prompt; the field is unused (the tokenizer check reads visionTokens).
    visionStartTokenId: imageTokenId,
    eosTokenIds: eos ?? [151645],
    visionTokens: [
      { key: "image_token_id", token: "<|image_pad|>", id: imageTokenId },
      { key: "video_token_id", token: "<|video_pad|>", id: videoTokenId },
    ],
  };
}

/** rope_theta from `rope_parameters` (transformers 5.x) or the 4.x top-level key. */
function ropeTheta(r: ConfigReader, fallback: number): number {
  const params = r.object("rope_parameters") ?? r.object("rope_scaling");
  const bounds = { min: 0, max: 1e30, exclusiveMin: true };
  if (params && params.obj.rope_theta != null) return params.num("rope_theta", bounds);
  return r.num("rope_theta", bounds, fallback);
}

/** Qwen2Config (transformers 5.18 models/qwen2/configuration_qwen2.py) as the shared decoder's text config. */
function parseText(text: ConfigReader): Qwen2VLTextConfig {
  const type = text.obj.model_type ?? "qwen2";
  if (type !== "qwen2") throw new VideolmError(`config.json: text_config.model_type ${describeJson(type)} is not supported; videolm runs VideoLLaMA3 with a Qwen2 language model`);
  const hiddenSize = text.int("hidden_size", LIMITS.hiddenSize);
  const numHeads = text.int("num_attention_heads", LIMITS.heads);
  if (text.obj.head_dim == null && hiddenSize % numHeads !== 0) throw text.fail("hidden_size", `must be a multiple of num_attention_heads ${numHeads}`, hiddenSize);
  const headDim = text.int("head_dim", LIMITS.headDim, hiddenSize / numHeads);
  if (headDim % TEXT_HEAD_DIM_MULTIPLE !== 0) throw text.fail("head_dim", `must be a multiple of ${TEXT_HEAD_DIM_MULTIPLE} (onnxruntime's GroupQueryAttention)`, headDim);
  const numKvHeads = text.int("num_key_value_heads", { min: 1, max: numHeads }, numHeads);
  if (numHeads % numKvHeads !== 0) throw text.fail("num_key_value_heads", `must divide num_attention_heads ${numHeads}`, numKvHeads);
  if (text.obj.use_sliding_window === true) throw text.fail("use_sliding_window", "must be false (sliding-window attention is not supported)", true);
  const rope = text.object("rope_parameters") ?? text.object("rope_scaling");
  const kind = rope ? (rope.obj.rope_type ?? rope.obj.type ?? "default") : "default";
  if (kind !== "default") throw (rope ?? text).fail("rope_type", 'must be "default" (other RoPE scalings are not supported)', kind);
  return {
    hiddenSize,
    intermediateSize: text.int("intermediate_size", LIMITS.intermediateSize),
    numLayers: text.int("num_hidden_layers", LIMITS.layers),
    numHeads,
    numKvHeads,
    headDim,
    hiddenAct: text.str("hidden_act", "silu", SUPPORTED_ACTIVATIONS),
    rmsNormEps: text.num("rms_norm_eps", { min: 0, max: 1, exclusiveMin: true }, 1e-6),
    ropeTheta: ropeTheta(text, 10000),
    // 1-D RoPE: every frequency on the one position axis (the decoder's positionAxes 1 ignores the split).
    mropeSection: [headDim / 2, 0, 0],
    vocabSize: text.int("vocab_size", LIMITS.vocabSize),
    maxPositionEmbeddings: text.int("max_position_embeddings", LIMITS.contextLength, 32768),
    tieWordEmbeddings: text.bool("tie_word_embeddings", false),
  };
}

/** VideoLlama3VisionConfig (C:29-60): SigLIP-base defaults; real checkpoints override them. */
function parseVision(vis: ConfigReader, textHidden: number): VideoLlama3VisionConfig {
  const hidden = vis.int("hidden_size", LIMITS.hiddenSize, 768);
  const heads = vis.int("num_attention_heads", LIMITS.heads, 12);
  if (hidden % heads !== 0) throw vis.fail("hidden_size", `must be a multiple of num_attention_heads ${heads}`, hidden);
  // The 2-D rotary gives each axis head_dim/4 frequencies.
  if ((hidden / heads) % 4 !== 0) throw vis.fail("hidden_size", `/ num_attention_heads must be a multiple of 4 (2-D rotary embedding), got head_dim ${hidden / heads}`, hidden);
  const intermediate = vis.int("intermediate_size", LIMITS.intermediateSize, 3072);
  const rope = vis.object("rope_parameters");
  const ropeType = rope ? String(rope.obj.rope_type ?? "axial") : "axial";
  if (ropeType !== "axial") throw rope!.fail("rope_type", 'must be "axial" (VideoLlama3VisionRotaryEmbedding raises otherwise)', ropeType);
  return {
    depth: vis.int("num_hidden_layers", LIMITS.visionDepth, 12),
    embedDim: hidden,
    numHeads: heads,
    mlpRatio: intermediate / hidden,
    intermediateSize: intermediate,
    hiddenAct: vis.str("hidden_act", "gelu_pytorch_tanh", SUPPORTED_ACTIVATIONS),
    inChannels: vis.int("num_channels", LIMITS.channels, 3),
    patchSize: vis.int("patch_size", LIMITS.patchSize, 16),
    spatialMergeSize: 2,
    temporalPatchSize: 1,
    outHiddenSize: textHidden,
    layerNormEps: vis.num("layer_norm_eps", { min: 0, max: 1, exclusiveMin: true }, 1e-6),
    ropeTheta: ropeTheta(vis, 10000),
  };
}
