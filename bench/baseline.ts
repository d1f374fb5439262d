/**
 * Baseline bench (not a test): vision encoding, prefill and decode on a Qwen2-VL-2B-shaped checkpoint with
 * random weights that this script generates (never committed; ~4.4 GB bf16 under .cache/bench/).
 *
 *   npm run bench -- [--dtype fp32|int8|int4] [--frames 16] [--size 448] [--tokens 32] [--threads N]
 *
 * Prints one line per phase and a JSON summary. The speed issue compares these figures against the reference.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { VideoModel } from "../src/engine/model.js";
import type { RgbImage } from "../src/processing/rgb-image.js";
import { qwen2VlWeightSpec, qwenTokenizerJsonPath, repoRoot, writeSafetensors, type Qwen2VlShapeConfig } from "../src/testing/tiny-checkpoint.js";
import { stderrProgress } from "../src/util/progress.js";
import type { WeightPrecision } from "../src/onnx/layers.js";

/** Qwen/Qwen2-VL-2B-Instruct config.json (shapes and ids; weights are random). */
const QWEN2_VL_2B = {
  architectures: ["Qwen2VLForConditionalGeneration"],
  model_type: "qwen2_vl",
  hidden_size: 1536,
  intermediate_size: 8960,
  num_attention_heads: 12,
  num_key_value_heads: 2,
  num_hidden_layers: 28,
  hidden_act: "silu",
  rms_norm_eps: 1e-6,
  rope_theta: 1000000.0,
  max_position_embeddings: 32768,
  rope_scaling: { type: "mrope", mrope_section: [16, 24, 24] },
  vocab_size: 151936,
  tie_word_embeddings: true,
  use_sliding_window: false,
  bos_token_id: 151643,
  eos_token_id: 151645,
  vision_start_token_id: 151652,
  vision_end_token_id: 151653,
  vision_token_id: 151654,
  image_token_id: 151655,
  video_token_id: 151656,
  torch_dtype: "bfloat16",
  vision_config: { depth: 32, embed_dim: 1280, mlp_ratio: 4, num_heads: 16, in_chans: 3, hidden_size: 1536, patch_size: 14, spatial_merge_size: 2, temporal_patch_size: 2 },
};

const { values } = parseArgs({
  options: {
    dtype: { type: "string", default: "int4" },
    frames: { type: "string", default: "16" },
    size: { type: "string", default: "448" },
    tokens: { type: "string", default: "32" },
    threads: { type: "string" },
  },
});

async function ensureCheckpoint(): Promise<string> {
  const dir = path.join(repoRoot(), ".cache", "bench", "qwen2-vl-2b-random");
  if (fs.existsSync(path.join(dir, "model.safetensors"))) return dir;
  fs.mkdirSync(dir, { recursive: true });
  const fixture = path.join(repoRoot(), "test/fixtures/qwen2-vl/qwen2-vl-tiny");
  for (const f of ["chat_template.json", "preprocessor_config.json", "tokenizer_config.json", "generation_config.json"]) fs.copyFileSync(path.join(fixture, f), path.join(dir, f));
  fs.copyFileSync(qwenTokenizerJsonPath(), path.join(dir, "tokenizer.json"));
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(QWEN2_VL_2B, null, 2));
  const progress = stderrProgress();
  const tmp = path.join(dir, "model.safetensors.partial");
  await writeSafetensors(qwen2VlWeightSpec(QWEN2_VL_2B as unknown as Qwen2VlShapeConfig, 2024), tmp, {
    onProgress: (done, total) => progress({ task: "Generating random Qwen2-VL-2B weights", done, total, unit: "bytes" }),
  });
  fs.renameSync(tmp, path.join(dir, "model.safetensors"));
  return dir;
}

/** Moving gradient frames (content does not matter for timing, only the shapes). */
function syntheticFrames(count: number, size: number): RgbImage[] {
  return Array.from({ length: count }, (_, f) => {
    const data = new Uint8Array(size * size * 3);
    for (let i = 0; i < size * size; i++) {
      data[i * 3] = (i + f * 7) & 255;
      data[i * 3 + 1] = (i >> 8) & 255;
      data[i * 3 + 2] = (f * 31) & 255;
    }
    return { width: size, height: size, data };
  });
}

const dir = await ensureCheckpoint();
const tLoad = performance.now();
const model = await VideoModel.load(dir, { dtype: values.dtype as WeightPrecision, threads: values.threads ? Number(values.threads) : undefined, onProgress: stderrProgress() });
const loadMs = performance.now() - tLoad;
const frames = syntheticFrames(Number(values.frames), Number(values.size));
const side = Number(values.size);
const maxNew = Number(values.tokens);
const run = () =>
  model.generate({
    messages: [{ role: "user", content: [{ type: "video", video: { frames, fps: 2 }, minPixels: side * side, maxPixels: side * side }, { type: "text", text: "Describe this video." }] }],
    temperature: 0,
    maxNewTokens: maxNew,
    stop: [],
  });
await run(); // warm-up (first-run allocations, thread pool)
const r = await run();
const summary = {
  model: "Qwen2-VL-2B-shaped (random weights)",
  dtype: values.dtype,
  frames: frames.length,
  frameSize: side,
  promptTokens: r.promptTokens,
  generatedTokens: r.tokens.length,
  loadMs: Math.round(loadMs),
  visionMs: Math.round(r.timings.visionMs),
  prefillMs: Math.round(r.timings.prefillMs),
  prefillTokensPerSecond: Math.round((r.promptTokens * 1000) / r.timings.prefillMs),
  ttftMs: Math.round(r.timings.ttftMs),
  decodeTokensPerSecond: Number(r.timings.decodeTokensPerSecond.toFixed(2)),
};
console.log(`vision: ${summary.visionMs} ms for ${frames.length} frames of ${side}×${side}`);
console.log(`prefill: ${summary.prefillMs} ms for ${r.promptTokens} tokens (${summary.prefillTokensPerSecond} tokens/s)`);
console.log(`decode: ${summary.decodeTokensPerSecond} tokens/s over ${r.tokens.length} tokens`);
console.log(JSON.stringify(summary));
