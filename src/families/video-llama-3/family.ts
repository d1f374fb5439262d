/**
 * VideoLLaMA3 (model_type `video_llama_3`; the Hugging Face port of DAMO-NLP-SG's VideoLLaMA3, e.g.
 * lkhl/VideoLLaMA3-2B-Image-HF): a SigLIP-style encoder with 2-D RoPE attending within each frame, a bilinear 2×
 * downscale for video (none for images), a Linear-GELU-Linear projector, and a Qwen2 decoder with 1-D positions;
 * DiffFP prunes video tokens that did not change since the previous frame, and frames are labelled `Time {t}s:` in
 * the prompt. Files: config.ts, names.ts, vision.ts, text.ts, sampling.ts, processor.ts (sampling, per-clip resize,
 * patches, DiffFP, prompt; the selection after the vision pass).
 * Reference: transformers 5.18.0 models/video_llama_3/ (modeling, configuration, image/video processing, processing);
 * spec docs/video_llama_3-reference.md.
 */
import { allKvLayers } from "../../engine/decoder-state.js";
import type { ModelFamily } from "../family.js";
import { videoLlama3EventPrompt } from "../event-prompts.js";
import { parseVideoLlama3Config, type VideoLlama3Config } from "./config.js";
import { sanitizeVideoLlama3TensorName } from "./names.js";
import { VideoLlama3Processor } from "./processor.js";
import { buildVideoLlama3Decoder } from "./text.js";
import { buildVideoLlama3Vision } from "./vision.js";

export const videoLlama3: ModelFamily<VideoLlama3Config> = {
  name: "VideoLLaMA3",
  modelTypes: ["video_llama_3"],
  parseConfig: parseVideoLlama3Config,
  sanitizeTensorName: sanitizeVideoLlama3TensorName,
  buildVision: (layers, weights, cfg) => buildVideoLlama3Vision(layers, weights, cfg.vision),
  buildDecoder: (layers, weights, cfg, stage) => buildVideoLlama3Decoder(layers, weights, cfg, stage),
  decoderState: (cfg) => allKvLayers(cfg.text),
  eventPrompt: videoLlama3EventPrompt,
  createProcessor: (dir, cfg) => new VideoLlama3Processor(dir, { imageTokenId: cfg.imageTokenId, videoTokenId: cfg.videoTokenId, patchSize: cfg.vision.patchSize, hiddenSize: cfg.text.hiddenSize }),
};
