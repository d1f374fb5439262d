/**
 * InternVL checkpoint tensor names → the canonical names the builders claim (the one place names are adapted):
 *   vision_tower.*             InternViT (vision.ts), transformers 4.57.6 InternVLVisionModel module names
 *   multi_modal_projector.*    the projector (vision.ts)
 *   model.*, lm_head.weight    the language model as the shared Qwen decoder builder claims it (text.ts)
 *
 * Hugging Face format (model_type `internvl`): tensors are named as InternVLForConditionalGeneration's modules
 * (`model.vision_tower.*`, `model.multi_modal_projector.*`, `model.language_model.*`, `lm_head.weight`) or in the
 * legacy layout its `_checkpoint_conversion_mapping` reads (`vision_tower.*`, `multi_modal_projector.*`,
 * `language_model.model.*`, `language_model.lm_head.weight`; modeling_internvl.py InternVLForConditionalGeneration).
 *
 * Original format (model_type `internvl_chat`, InternVLChatModel): `vision_model.*`, `mlp1.*`, `language_model.*`,
 * renamed by the rules of transformers' models/internvl/convert_internvl_weights_to_hf.py
 * (ORIGINAL_TO_CONVERTED_KEY_MAPPING_VISION / _MULTI, applied in that order). One rule differs: the fused
 * `attn.qkv` the script splits into q_proj / k_proj / v_proj rows [:E], [E:2E], [2E:] becomes `attention.qkv`, which
 * the vision builder claims as one matrix (its attention multiplies q, k, v as one fused product either way).
 * Names matching no rule are returned unchanged: the WeightMap then reports them as unused, naming them.
 */

/** convert_internvl_weights_to_hf.py ORIGINAL_TO_CONVERTED_KEY_MAPPING_VISION, for the part after `vision_model.`. */
const VISION_RULES: [RegExp, string][] = [
  [/^embeddings\.class_embedding$/, "embeddings.cls_token"], // r"class_embedding" → r"cls_token"
  [/^embeddings\.position_embedding$/, "embeddings.position_embeddings"], // r"position_embedding" → r"position_embeddings"
  [/^embeddings\.patch_embedding\./, "embeddings.patch_embeddings.projection."], // r"patch_embedding" → r"patch_embeddings.projection"
  [/^encoder\.layers\./, "encoder.layer."], // r"layers" → r"layer"
  [/\.ls(\d+)$/, ".lambda_$1"], // r"ls(\d+)" → r"lambda_\1" (layer scale)
  [/\.attn\.proj\./, ".attention.projection_layer."], // r"attn.proj" → r"attention.projection_layer"
  [/\.attn\.(qkv|q_norm|k_norm)\./, ".attention.$1."], // r"attn" → r"attention" (qkv kept fused, see above)
  [/\.norm1\./, ".layernorm_before."], // r"norm1" → r"layernorm_before"
  [/\.norm2\./, ".layernorm_after."], // r"norm2" → r"layernorm_after"
];

/** convert_internvl_weights_to_hf.py ORIGINAL_TO_CONVERTED_KEY_MAPPING_MULTI: the projector `mlp1` Sequential. */
const PROJECTOR_RULES: [RegExp, string][] = [
  [/^mlp1\.0\./, "multi_modal_projector.layer_norm."], // nn.LayerNorm(4C)
  [/^mlp1\.1\./, "multi_modal_projector.linear_1."], // nn.Linear(4C, D)
  [/^mlp1\.3\./, "multi_modal_projector.linear_2."], // nn.Linear(D, D) (mlp1.2 is the GELU)
];

export function sanitizeInternVLTensorName(name: string): string {
  // Language model: HF module names, the legacy layout, and the original InternVLChatModel (whose `language_model`
  // is a Qwen2/Qwen3(-MoE)ForCausalLM: `language_model.model.*`, `language_model.lm_head.weight`).
  if (name.startsWith("model.language_model.")) return "model." + name.slice("model.language_model.".length);
  if (name.startsWith("language_model.model.")) return "model." + name.slice("language_model.model.".length);
  if (name === "language_model.lm_head.weight") return "lm_head.weight";
  // Vision tower and projector, HF format.
  if (name.startsWith("model.vision_tower.") || name.startsWith("model.multi_modal_projector.")) return name.slice("model.".length);
  // Original format.
  if (name.startsWith("vision_model.")) {
    let rest = name.slice("vision_model.".length);
    for (const [re, to] of VISION_RULES) rest = rest.replace(re, to);
    return "vision_tower." + rest;
  }
  for (const [re, to] of PROJECTOR_RULES) if (re.test(name)) return name.replace(re, to);
  return name;
}
