/**
 * VideoLLaMA3's language model: a plain Qwen2 (transformers 5.18.0 models/qwen2/modeling_qwen2.py; VideoLlama3Model
 * builds it with AutoModel.from_config(text_config)), written as the shared Qwen decoder builder
 * (../qwen2-vl/text.ts) with 1-D RoPE: `position_ids` [1, 1, S] (positionAxes 1), q/k/v with bias, no QK-norm.
 * Positions are contiguous over the compacted prompt (docs/video_llama_3-reference.md §5): the processor plans
 * 0 … S−1 and the DiffFP selection renumbers them (processor.ts). Visual rows arrive through the same
 * `visual_embeds` / `visual_positions` scatter (VideoLlama3Model.forward's masked_scatter).
 */
import type { WeightMap } from "../../checkpoint/weight-map.js";
import type { Layers } from "../../onnx/layers.js";
import type { DecoderStage } from "../family.js";
import { buildQwen2VLDecoder, chunkedMrope } from "../qwen2-vl/text.js";
import type { VideoLlama3Config } from "./config.js";

export function buildVideoLlama3Decoder(layers: Layers, weights: WeightMap, cfg: VideoLlama3Config, stage?: DecoderStage): void {
  const t = cfg.text;
  // A tied checkpoint may still hold lm_head.weight (ignored by the reference's tie_weights); claimed, not used.
  const last = stage ? stage.last : true;
  if (last && t.tieWordEmbeddings && weights.has("lm_head.weight")) weights.info("lm_head.weight", [t.vocabSize, t.hiddenSize]);
  buildQwen2VLDecoder(layers, weights, t, chunkedMrope, { attentionBias: true, positionAxes: 1 }, stage);
}
