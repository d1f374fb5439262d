/**
 * InternVL config.json → one typed config, from either checkpoint format:
 *   - Hugging Face (model_type `internvl`, `OpenGVLab/InternVL3_5-*-HF`): transformers 4.57.6
 *     models/internvl/configuration_internvl.py — InternVLConfig (`text_config`, `vision_config`, `image_token_id`,
 *     `downsample_ratio`, `projector_hidden_act`, `vision_feature_layer`, `vision_feature_select_strategy`) and
 *     InternVLVisionConfig;
 *   - the original GitHub format (model_type `internvl_chat`, InternVLChatModel: OpenGVLab/InternVL3_5-*,
 *     InternVL3-*): configuration_internvl_chat.py (`llm_config`, `vision_config` = InternVisionConfig,
 *     `downsample_ratio`, `force_image_size`, `select_layer`, `ps_version`, `template`, `max_dynamic_patch`,
 *     `use_thumbnail`), whose keys transformers' convert_internvl_weights_to_hf.py `get_internvl_config` renames
 *     (`qkv_bias` → `attention_bias`, `qk_normalization` → `use_qk_norm`; image_token_id 151667 for Qwen2 LLMs).
 * The language model is the text config's: Qwen2 (InternVL2.5 / 3: q/k/v bias), Qwen3 (InternVL3.5 1B–38B:
 * QK-norm, no bias) or Qwen3-MoE (InternVL3.5-30B-A3B); other LLMs (GPT-OSS, Llama, InternLM2, Phi-3) are refused.
 * The vision fields are also laid out as a Qwen2-VL vision config (temporal patch 1, merge 2) so the engine's plan and
 * cost model read them as for the other families.
 */
import { parseFlashConfig, type FlashConfig } from "./flash.js";
import { ConfigReader, LIMITS } from "../../checkpoint/config-values.js";
import { describeJson } from "../../checkpoint/json-file.js";
import { VideolmError } from "../../errors.js";
import type { FamilyConfig } from "../family.js";
import type { InternVLProcessorConfig } from "./processor.js";
import { SUPPORTED_ACTIVATIONS, TEXT_HEAD_DIM_MULTIPLE, type Qwen2VLTextConfig, type Qwen2VLVisionConfig } from "../qwen2-vl/config.js";

type Json = Record<string, unknown>;

/** The language models InternVL checkpoints pair with InternViT, by text config model_type. */
export type InternVLLlm = "qwen2" | "qwen3" | "qwen3_moe";

export interface InternVLTextConfig extends Qwen2VLTextConfig {
  llm: InternVLLlm;
  /** q/k/v projections carry a bias (Qwen2: always; Qwen3: `attention_bias`). */
  attentionBias: boolean;
  /** Qwen3: RMSNorm over head_dim on q and k (`q_norm`, `k_norm`). */
  qkNorm: boolean;
}

/** Qwen3-MoE's sparse feed-forward (configuration_qwen3_moe.py, modeling_qwen3_moe.py Qwen3MoeSparseMoeBlock). */
export interface InternVLMoeConfig {
  numExperts: number;
  numExpertsPerTok: number;
  moeIntermediateSize: number;
  decoderSparseStep: number;
  mlpOnlyLayers: number[];
  normTopkProb: boolean;
}

/** InternViT (InternVLVisionConfig) in the Qwen2-VL vision layout the engine reads, plus its own fields. */
export interface InternVLVisionConfig extends Qwen2VLVisionConfig {
  intermediateSize: number;
  normType: "layer_norm" | "rms_norm";
  layerNormEps: number;
  /** q/k/v bias (HF `attention_bias`, original `qkv_bias`). */
  attentionBias: boolean;
  /** InternViT-6B: RMSNorm over the whole q / k width (HF `use_qk_norm`, original `qk_normalization`). */
  qkNorm: boolean;
  /** Tile side in pixels (448): the learned position table has (imageSize / patchSize)² + 1 rows. */
  imageSize: number;
  /**
   * HF `use_mean_pooling: false`: the checkpoint has a final LayerNorm (`vision_tower.layernorm`), applied to the last
   * hidden state only (InternVLVisionModel.forward), i.e. when all layers run.
   */
  finalLayerNorm: boolean;
  /**
   * How many encoder layers run: the features are hidden_states[k] (k = `vision_feature_layer` / `select_layer`,
   * hidden_states[0] = the embeddings), so layers ≥ k are not needed (their tensors are claimed and dropped).
   */
  featureLayers: number;
  /** 1 / downsample_ratio: the pixel-shuffle block side (2 for downsample_ratio 0.5). */
  shuffle: number;
  projectorAct: string;
}

export interface InternVLConfig extends FamilyConfig {
  /** Which checkpoint layout the tensors have (family.ts sanitizes both to the Hugging Face names). */
  format: "hf" | "original";
  text: InternVLTextConfig;
  vision: InternVLVisionConfig;
  moe?: InternVLMoeConfig;
  /**
   * What the processor (processor.ts) needs: tile side and patch in pixels, downsample ratio, the `<IMG_CONTEXT>` id,
   * and the original format's tiling limits (`max_dynamic_patch`, `use_thumbnail`; HF checkpoints keep them in
   * preprocessor_config.json, which the processor reads).
   */
  processor: InternVLProcessorConfig;
  /** InternVL3.5-Flash (original format, `flash_mode`): the resolution router's thresholds (flash.ts); else undefined. */
  flash?: FlashConfig;
  /** Original format: config.json `template`, the conversation.py template `model.chat` builds prompts with. */
  conversationTemplate?: string;
}

/**
 * `<IMG_CONTEXT>` when config.json does not say: the ids the InternVL tokenizers give it. The tokenizers add `<img>`,
 * `</img>`, `<IMG_CONTEXT>` in that order after the base vocabulary's added tokens (convert_internvl_weights_to_hf.py
 * `write_tokenizer`): Qwen2.5's ends at 151664 → 151665–151667 (the script's image_token_id 151667); Qwen3's has
 * `<think>` / `</think>` at 151667–151668 → 151669–151671 (InternVL3_5-*-HF config.json image_token_id 151671).
 * The tokenizer check on load (preparer.ts) verifies the ids against tokenizer.json.
 */
const IMG_CONTEXT_BY_LLM: Record<InternVLLlm, number> = { qwen2: 151667, qwen3: 151671, qwen3_moe: 151671 };
/** `<img>` is two ids before `<IMG_CONTEXT>` in both tokenizers (see above); no config key holds it. */
export const IMG_START_OFFSET = -2;

export function parseInternVLConfig(raw: Json): InternVLConfig {
  const top = new ConfigReader(raw);
  const modelType = String(raw.model_type);
  const original = modelType === "internvl_chat";
  const textKey = original ? "llm_config" : "text_config";
  const textReader = top.object(textKey);
  if (!textReader) throw new VideolmError(`config.json: ${textKey} is missing`);
  const visReader = top.object("vision_config");
  if (!visReader) throw new VideolmError("config.json: vision_config is missing");

  const text = parseText(textReader, textKey);
  const vocab = { min: 0, max: text.vocabSize - 1 };
  // Original format: downsample_ratio, force_image_size, select_layer, ps_version (InternVLChatConfig); HF:
  // downsample_ratio, vision_feature_layer, vision_feature_select_strategy, projector_hidden_act.
  const downsample = top.num("downsample_ratio", { min: 0, max: 1, exclusiveMin: true }, 0.5);
  if (downsample !== 0.5) throw top.fail("downsample_ratio", "must be 0.5 (the 2×2 pixel shuffle every InternVL checkpoint uses; videolm implements no other)", downsample);
  let featureLayer: number;
  let projectorAct = "gelu";
  if (original) {
    const ps = top.str("ps_version", "v1");
    // ps_version v1 is the pixel shuffle without the final transpose (InternVL 1.5 era); the HF port implements v2 only.
    if (ps !== "v2") throw top.fail("ps_version", 'must be "v2" (the pixel shuffle transformers ports; "v1" checkpoints are not supported)', ps);
    featureLayer = top.int("select_layer", { min: -1024, max: 1024 }, -1);
    for (const lora of ["use_backbone_lora", "use_llm_lora"]) if (top.obj[lora] != null && top.obj[lora] !== 0 && top.obj[lora] !== false) throw top.fail(lora, "must be 0 (merge LoRA adapters into the weights first)", top.obj[lora]);
  } else {
    featureLayer = top.int("vision_feature_layer", { min: -1024, max: 1024 }, -1);
    const strategy = top.str("vision_feature_select_strategy", "default");
    // "full" keeps the CLS token, whose P² + 1 rows cannot form the square the pixel shuffle needs (get_image_features).
    if (strategy !== "default") throw top.fail("vision_feature_select_strategy", 'must be "default" (the CLS token dropped)', strategy);
    projectorAct = top.str("projector_hidden_act", "gelu", SUPPORTED_ACTIVATIONS);
  }
  const vision = parseVision(visReader, original, text.hiddenSize, featureLayer, projectorAct);
  if (original && top.obj.force_image_size != null) {
    const force = top.int("force_image_size", { min: 1, max: 1 << 14 });
    // InternVLChatModel runs the ViT at force_image_size, interpolating the position table when it differs from
    // vision_config.image_size; every published checkpoint has both at 448.
    if (force !== vision.imageSize) throw top.fail("force_image_size", `must equal vision_config.image_size ${vision.imageSize} (a resized position table is not supported)`, force);
  }

  const imageTokenId = original ? top.int("image_token_id", vocab, IMG_CONTEXT_BY_LLM[text.llm]) : top.int("image_token_id", vocab, 151667);
  const imgStart = imageTokenId + IMG_START_OFFSET;
  const eos = textReader.intOrList("eos_token_id", vocab) ?? top.intOrList("eos_token_id", vocab);
  return {
    modelType,
    format: original ? "original" : "hf",
    text,
    vision,
    moe: text.llm === "qwen3_moe" ? parseMoe(textReader, text.numLayers) : undefined,
    imageTokenId,
    videoTokenId: imageTokenId,
    visionStartTokenId: imgStart,
    eosTokenIds: eos ?? [151645],
    visionTokens: [
      { key: original ? "image_token_id (the <IMG_CONTEXT> id of the LLM's InternVL tokenizer)" : "image_token_id", token: "<IMG_CONTEXT>", id: imageTokenId },
      { key: "image_token_id - 2 (<img>, </img>, <IMG_CONTEXT> are consecutive added tokens)", token: "<img>", id: imgStart },
    ],
    ...(original && parseFlashConfig(raw) ? { flash: parseFlashConfig(raw) } : {}),
    ...(original && typeof raw.template === "string" ? { conversationTemplate: raw.template } : {}),
    processor: {
      imageSize: vision.imageSize,
      patchSize: vision.patchSize,
      downsampleRatio: downsample,
      imageTokenId,
      ...(original ? { maxDynamicPatch: top.int("max_dynamic_patch", { min: 1, max: 64 }, 12), useThumbnail: top.bool("use_thumbnail", true), contentAsText: true } : {}),
    },
  };
}

/** The LLM type: `model_type`, else (original llm_config) the class in `architectures[0]`. */
function llmType(text: ConfigReader, key: string): InternVLLlm {
  const arch = Array.isArray(text.obj.architectures) ? String(text.obj.architectures[0]) : undefined;
  const byArch: Record<string, string> = { Qwen2ForCausalLM: "qwen2", Qwen3ForCausalLM: "qwen3", Qwen3MoeForCausalLM: "qwen3_moe", GptOssForCausalLM: "gpt_oss", LlamaForCausalLM: "llama", InternLM2ForCausalLM: "internlm2", Phi3ForCausalLM: "phi3" };
  // HF InternVLConfig defaults a text_config without model_type to qwen2.
  const type = typeof text.obj.model_type === "string" ? text.obj.model_type : arch !== undefined ? (byArch[arch] ?? arch) : "qwen2";
  if (type === "qwen2" || type === "qwen3" || type === "qwen3_moe") return type;
  if (type === "gpt_oss") throw new VideolmError(`config.json: ${key}.model_type "gpt_oss" (InternVL3.5-GPT-OSS-20B) is not supported: videolm has no GPT-OSS decoder (sink attention, alternating sliding window, MXFP4 experts)`);
  throw new VideolmError(`config.json: ${key}.model_type ${describeJson(type)} is not supported; videolm runs InternVL with Qwen2, Qwen3 and Qwen3-MoE language models`);
}

/** Qwen2Config / Qwen3Config / Qwen3MoeConfig (transformers 4.57.6) as the shared decoder's text config. */
function parseText(text: ConfigReader, key: string): InternVLTextConfig {
  const llm = llmType(text, key);
  const hiddenSize = text.int("hidden_size", LIMITS.hiddenSize);
  const numHeads = text.int("num_attention_heads", LIMITS.heads);
  if (text.obj.head_dim == null && hiddenSize % numHeads !== 0) throw text.fail("hidden_size", `must be a multiple of num_attention_heads ${numHeads}`, hiddenSize);
  // Qwen2/Qwen3(-MoE)Attention: getattr(config, "head_dim", hidden_size // num_attention_heads).
  const headDim = text.int("head_dim", LIMITS.headDim, hiddenSize / numHeads);
  if (headDim % TEXT_HEAD_DIM_MULTIPLE !== 0) throw text.fail("head_dim", `must be a multiple of ${TEXT_HEAD_DIM_MULTIPLE} (onnxruntime's GroupQueryAttention)`, headDim);
  const numKvHeads = text.int("num_key_value_heads", { min: 1, max: numHeads }, numHeads);
  if (numHeads % numKvHeads !== 0) throw text.fail("num_key_value_heads", `must divide num_attention_heads ${numHeads}`, numKvHeads);
  if (text.obj.use_sliding_window === true) throw text.fail("use_sliding_window", "must be false (sliding-window attention is not supported)", true);
  const maxPositionEmbeddings = text.int("max_position_embeddings", LIMITS.contextLength, 32768);
  checkRopeScaling(text);
  return {
    llm,
    attentionBias: llm === "qwen2" ? true : text.bool("attention_bias", false),
    qkNorm: llm !== "qwen2",
    hiddenSize,
    intermediateSize: text.int("intermediate_size", LIMITS.intermediateSize, llm === "qwen3_moe" ? 6144 : undefined),
    numLayers: text.int("num_hidden_layers", LIMITS.layers),
    numHeads,
    numKvHeads,
    headDim,
    hiddenAct: text.str("hidden_act", "silu", SUPPORTED_ACTIVATIONS),
    rmsNormEps: text.num("rms_norm_eps", { min: 0, max: 1, exclusiveMin: true }, 1e-6),
    ropeTheta: text.num("rope_theta", { min: 0, max: 1e30, exclusiveMin: true }, 10000),
    // 1-D RoPE: every frequency on the one position axis (the decoder's positionAxes 1 ignores the split).
    mropeSection: [headDim / 2, 0, 0],
    vocabSize: text.int("vocab_size", LIMITS.vocabSize),
    maxPositionEmbeddings,
    tieWordEmbeddings: text.bool("tie_word_embeddings", false),
  };
}

/**
 * rope_scaling: absent / "default", or "dynamic" (InternVL2.5 / 3 Qwen2 configs), which in transformers 4.57.6
 * (modeling_rope_utils.py `_compute_dynamic_ntk_parameters`, `dynamic_rope_update`) leaves inv_freq unchanged up to
 * max_position_embeddings positions — the context videolm allows. Other kinds (linear, yarn, longrope) are refused.
 */
function checkRopeScaling(text: ConfigReader): void {
  const rs = text.object("rope_scaling");
  if (!rs) return;
  const kind = rs.obj.rope_type ?? rs.obj.type ?? "default";
  if (kind !== "default" && kind !== "dynamic") throw rs.fail("rope_type", 'must be "default" or "dynamic" (other RoPE scalings are not supported)', kind);
}

function parseMoe(text: ConfigReader, numLayers: number): InternVLMoeConfig {
  const numExperts = text.int("num_experts", { min: 1, max: 4096 }, 128);
  return {
    numExperts,
    numExpertsPerTok: text.int("num_experts_per_tok", { min: 1, max: numExperts }, 8),
    moeIntermediateSize: text.int("moe_intermediate_size", LIMITS.intermediateSize, 768),
    decoderSparseStep: text.int("decoder_sparse_step", LIMITS.layers, 1),
    mlpOnlyLayers: text.intList("mlp_only_layers", { min: 0, max: numLayers - 1 }, [], { min: 0, max: numLayers }),
    normTopkProb: text.bool("norm_topk_prob", false),
  };
}

/** An int or an [h, w] pair of equal ints (InternVLVisionConfig accepts both for image_size / patch_size). */
function squareSize(vis: ConfigReader, key: string, fallback: number): number {
  const v = vis.obj[key];
  if (Array.isArray(v)) {
    const [h, w] = vis.intList(key, { min: 1, max: 1 << 14 }, undefined, { min: 2, max: 2 });
    if (h !== w) throw vis.fail(key, "must be square", v);
    return h;
  }
  return vis.int(key, { min: 1, max: 1 << 14 }, fallback);
}

/**
 * InternVLVisionConfig (HF) or InternVisionConfig (original; its class defaults are InternViT-6B's and its keys
 * `qkv_bias`, `qk_normalization`), checked against what the graph builds.
 */
function parseVision(vis: ConfigReader, original: boolean, textHidden: number, featureLayer: number, projectorAct: string): InternVLVisionConfig {
  const hidden = vis.int("hidden_size", LIMITS.hiddenSize, original ? 3200 : 1024);
  const heads = vis.int("num_attention_heads", LIMITS.heads, original ? 25 : 16);
  if (hidden % heads !== 0) throw vis.fail("hidden_size", `must be a multiple of num_attention_heads ${heads}`, hidden);
  const depth = vis.int("num_hidden_layers", LIMITS.visionDepth, original ? 48 : 24);
  const intermediate = vis.int("intermediate_size", LIMITS.intermediateSize, original ? 12800 : 4096);
  const imageSize = squareSize(vis, "image_size", original ? 224 : 448);
  const patchSize = squareSize(vis, "patch_size", 14);
  const side = imageSize / patchSize;
  if (!Number.isInteger(side) || side % 2 !== 0) throw vis.fail("image_size", `/ patch_size ${patchSize} must be an even number of patches (the 2×2 pixel shuffle)`, imageSize);
  const normType = vis.str("norm_type", original ? "rms_norm" : "layer_norm", ["layer_norm", "rms_norm"]) as "layer_norm" | "rms_norm";
  if (!original && vis.obj.use_absolute_position_embeddings === false) throw vis.fail("use_absolute_position_embeddings", "must be true (InternViT's learned position table)", false);
  if (!original && vis.obj.use_mask_token === true) throw vis.fail("use_mask_token", "must be false (masked image modelling is a pre-training feature)", true);
  // hidden_states[k]: index 0 is the embeddings, i the output of layer i−1; negative k counts from the end (−1 = last).
  if (featureLayer < -(depth + 1) || featureLayer > depth) throw new VideolmError(`config.json: ${original ? "select_layer" : "vision_feature_layer"} must be in [${-(depth + 1)}, ${depth}] for ${depth} vision layers (got ${featureLayer})`);
  const featureLayers = featureLayer < 0 ? depth + 1 + featureLayer : featureLayer;
  return {
    depth,
    embedDim: hidden,
    numHeads: heads,
    mlpRatio: intermediate / hidden,
    intermediateSize: intermediate,
    hiddenAct: vis.str("hidden_act", "gelu", SUPPORTED_ACTIVATIONS),
    inChannels: vis.int("num_channels", LIMITS.channels, 3),
    patchSize,
    spatialMergeSize: 2,
    temporalPatchSize: 1,
    outHiddenSize: textHidden,
    normType,
    layerNormEps: vis.num("layer_norm_eps", { min: 0, max: 1, exclusiveMin: true }, 1e-6),
    attentionBias: original ? vis.bool("qkv_bias", false) : vis.bool("attention_bias", false),
    qkNorm: original ? vis.bool("qk_normalization", true) : vis.bool("use_qk_norm", false),
    imageSize,
    finalLayerNorm: !original && !vis.bool("use_mean_pooling", true),
    featureLayers,
    shuffle: 2,
    projectorAct,
  };
}
