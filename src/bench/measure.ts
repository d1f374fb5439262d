/**
 * One measured run for `videolm bench`: load a checkpoint (already converted), answer one question about
 * synthetic frames, and report each stage's time and the process's peak resident memory. Runs in a process of
 * its own (the bench command spawns it) so that the peak memory is that of loading and answering only.
 */
import { VideoModel } from "../engine/model.js";
import type { PreparedRequest } from "../engine/preparer.js";
import type { ChatRequestMessage } from "../engine/request.js";
import type { WeightPrecision } from "../onnx/layers.js";
import type { RgbImage } from "../processing/rgb-image.js";

export interface BenchInput {
  frames: number;
  /** Frames are size × size pixels and kept at that size (min = max pixels). */
  size: number;
  /** Tokens to generate (greedy; the bench never stops early on a stop string). */
  tokens: number;
}

export interface RunMetrics {
  dtype: WeightPrecision;
  threads: number;
  promptTokens: number;
  generatedTokens: number;
  grid: [number, number, number];
  loadMs: number;
  visionMs: number;
  prefillMs: number;
  ttftMs: number;
  decodeTokensPerSecond: number;
  peakRssBytes: number;
}

/** Moving gradient frames: the content does not matter for timing, only the shapes. */
export function syntheticFrames(count: number, size: number): RgbImage[] {
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

/** The bench's request: the frames as a 2 fps video at their own size, then a short question. */
export function benchMessages(input: BenchInput): ChatRequestMessage[] {
  const side = input.size;
  return [
    {
      role: "user",
      content: [
        { type: "video", video: { frames: syntheticFrames(input.frames, side), fps: 2 }, minPixels: side * side, maxPixels: side * side },
        { type: "text", text: "Describe this video." },
      ],
    },
  ];
}

export async function measureRun(dir: string, dtype: WeightPrecision, threads: number, input: BenchInput, cacheDir?: string): Promise<RunMetrics> {
  const t0 = performance.now();
  const model = await VideoModel.load(dir, { dtype, threads, cacheDir });
  const loadMs = performance.now() - t0;
  const prepared: PreparedRequest = await model.prepare(benchMessages(input));
  const r = await model.generate({ messages: [], prepared, temperature: 0, maxNewTokens: input.tokens, stop: [] });
  return {
    dtype,
    threads,
    promptTokens: r.promptTokens,
    generatedTokens: r.tokens.length,
    grid: prepared.visuals[0].batch.grid,
    loadMs,
    visionMs: r.timings.visionMs,
    prefillMs: r.timings.prefillMs,
    ttftMs: r.timings.ttftMs,
    decodeTokensPerSecond: r.timings.decodeTokensPerSecond,
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
  };
}
