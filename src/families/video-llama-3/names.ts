/**
 * VideoLLaMA3 checkpoint tensor names → the canonical names the builders claim (the one place names are adapted).
 * transformers 5.18.0 has no conversion mapping for this family: hub tensors are named as
 * VideoLlama3ForConditionalGeneration's modules (docs/video_llama_3-reference.md §2):
 *   model.language_model.*   → model.*         the Qwen2 decoder as the shared Qwen decoder builder claims it (text.ts)
 *   model.vision_model.*     → vision_model.*  the encoder (vision.ts)
 *   model.projector.*        → projector.*     the Linear-GELU-Linear projector (vision.ts)
 *   lm_head.weight           unchanged
 * Names matching no rule are returned unchanged: the WeightMap then reports them as unused, naming them.
 */
export function sanitizeVideoLlama3TensorName(name: string): string {
  if (name.startsWith("model.language_model.")) return "model." + name.slice("model.language_model.".length);
  if (name.startsWith("model.vision_model.") || name.startsWith("model.projector.")) return name.slice("model.".length);
  return name;
}
