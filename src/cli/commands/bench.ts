/**
 * `videolm bench`: how fast this machine answers about a video, stage by stage, next to the bounds onnxruntime
 * reaches here on the same shapes. By default on a Qwen2-VL-2B-shaped checkpoint with random weights (generated
 * once into the cache); --model benches a real checkpoint.
 *
 * The parent process resolves and converts the checkpoint (with progress), then runs the measured load + answer
 * in a child process (so its peak memory is the run's alone), then measures the bounds.
 */
import { spawn } from "node:child_process";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { decodeBytesPerToken, bytesPerWeight, prefillFlops, visionFlops } from "../../bench/cost.js";
import { gemvBandwidth, matmulGflops } from "../../bench/bounds.js";
import { saveRates } from "../../bench/estimate.js";
import { measureRun, type BenchInput, type RunMetrics } from "../../bench/measure.js";
import { BENCH_SHAPE_NAMES, ensureBenchCheckpoint, type BenchShape } from "../../bench/presets.js";
import { defaultCacheRoot, ensureConverted, visionKernelFor } from "../../engine/convert.js";
import { DEFAULT_VISION_CHUNK_PATCHES } from "../../engine/model.js";
import { RequestPreparer } from "../../engine/preparer.js";
import { VideolmError } from "../../errors.js";
import type { Qwen2VLConfig } from "../../families/qwen2-vl/config.js";
import { visionChunkSteps } from "../../families/vision-chunks.js";
import { resolveModel } from "../../hub/resolve-model.js";
import { isFloatPrecision } from "../../onnx/layers.js";
import { stderrProgress } from "../../util/progress.js";
import { COMMON_FLAGS, MODEL_FLAGS, numberFlag, parseFlags, precisionFlag, type Flags } from "../args.js";

export const BENCH_HELP = `Usage: videolm bench [--shape ${BENCH_SHAPE_NAMES.join("|")} | --model DIR|REPO] [options]

Measures loading, vision encoding, prefill, time to first token, decode speed and peak memory for one question
about a video, and the bounds onnxruntime reaches on this machine for the same shapes (matmul GFLOP/s, weight
streaming GB/s), with each stage's fraction of its bound. The achieved rates (vision and prefill GFLOP/s, decode
GB/s) are saved per --dtype in the cache folder (machine-rates.json): videolm inspect, run and the server's plan
estimate a request's time from them.

  --shape NAME        random-weight checkpoint with a published model's shapes, generated once into the cache
                      (default qwen2-vl-2b: ~4.4 GB; qwen2-vl-7b: ~16.6 GB; qwen3-vl-2b: ~4.3 GB;
                      qwen3_5-2b: ~4.8 GB; qwen3_5-35b-a3b-4l: ~11.3 GB, Qwen3.5-35B-A3B's widths with 4 of
                      its 40 layers). Sources of each shape: src/bench/presets.ts
  -m, --model DIR     bench a real checkpoint instead (folder or Hugging Face repo id)
  --dtype fp32|fp16|int8|int4   weight precision (default int4)
  --threads N         CPU threads (default: all cores)
  --frames N          video frames (default 8)
  --size PX           frame side in pixels, kept as is (default 448)
  --tokens N          tokens to generate (default 32)
  --no-bounds         skip the bounds measurements
  --cache-dir DIR     cache for checkpoints and conversions (default $VIDEOLM_CACHE or ~/.cache/videolm)
  --json              one JSON object`;

const BENCH_FLAGS = {
  ...MODEL_FLAGS,
  ...COMMON_FLAGS,
  shape: { type: "string" },
  frames: { type: "string" },
  size: { type: "string" },
  tokens: { type: "string" },
  "no-bounds": { type: "boolean" },
  /** internal: run the measurement in this process and print RunMetrics as JSON */
  "measure-only": { type: "boolean" },
} as const;

export interface Bounds {
  visionGflops: number;
  prefillGflops: number;
  gemvGBps: number;
}

export interface BenchReport {
  model: string;
  input: BenchInput;
  run: RunMetrics;
  work?: { visionGflop: number; prefillGflop: number; decodeMBPerToken: number };
  bounds?: Bounds;
  /** Each stage's achieved rate ÷ its bound (1 = at the bound). */
  efficiency?: { vision: number; prefill: number; decode: number };
  /** Where the achieved rates were cached for cost estimates (bench/estimate.ts). */
  ratesFile?: string;
}

/** Each stage's achieved rate ÷ its bound: GFLOP/s for vision and prefill, tokens/s vs bytes ÷ GB/s for decode. */
export function stageEfficiency(work: NonNullable<BenchReport["work"]>, run: RunMetrics, bounds: Bounds): NonNullable<BenchReport["efficiency"]> {
  return {
    vision: ((work.visionGflop / run.visionMs) * 1000) / bounds.visionGflops,
    prefill: ((work.prefillGflop / run.prefillMs) * 1000) / bounds.prefillGflops,
    decode: run.decodeTokensPerSecond / ((bounds.gemvGBps * 1000) / work.decodeMBPerToken),
  };
}

function positive(flags: Flags, name: string, fallback: number): number {
  const v = numberFlag(flags, name, { integer: true }) ?? fallback;
  if (v < 1) throw new VideolmError(`--${name} must be at least 1`);
  return v;
}

function measureInChild(dir: string, flags: Flags, input: BenchInput, threads: number): Promise<RunMetrics> {
  const main = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "main.js");
  const args = [main, "bench", "--measure-only", "--model", dir, "--dtype", precisionFlag({ dtype: flags.dtype ?? "int4" }), "--threads", String(threads)];
  args.push("--frames", String(input.frames), "--size", String(input.size), "--tokens", String(input.tokens));
  if (flags["cache-dir"]) args.push("--cache-dir", flags["cache-dir"] as string);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => {
      if (code !== 0) return reject(new VideolmError(`the measured run failed (exit code ${code})`));
      resolve(JSON.parse(out) as RunMetrics);
    });
  });
}

const fmt = (n: number, digits = 1) => n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
const pct = (x: number) => `${Math.round(x * 100)}%`;

function printReport(r: BenchReport): void {
  const { run } = r;
  const lines = [
    `model: ${r.model} (${run.dtype}, ${run.threads > 0 ? `${run.threads} threads` : "threads: onnxruntime default"})`,
    `input: ${r.input.frames} frames of ${r.input.size}×${r.input.size} (grid ${run.grid.join("×")}), ${run.promptTokens} prompt tokens, ${run.generatedTokens} generated`,
    "",
    "stage            time        achieved           bound              of bound",
    `load             ${fmt(run.loadMs / 1000).padStart(7)} s`,
  ];
  const vRate = r.work ? (r.work.visionGflop / run.visionMs) * 1000 : undefined;
  const pRate = r.work ? (r.work.prefillGflop / run.prefillMs) * 1000 : undefined;
  const dRate = r.work ? (run.decodeTokensPerSecond * r.work.decodeMBPerToken) / 1000 : undefined;
  const row = (name: string, time: string, achieved?: string | false | 0, bound?: string | false | 0, eff?: number) =>
    `${name.padEnd(16)} ${time.padEnd(11)} ${(achieved || "").padEnd(18)} ${(bound || "").padEnd(18)} ${eff === undefined ? "" : pct(eff)}`;
  lines.push(row("vision", `${fmt(run.visionMs / 1000)} s`, vRate && `${fmt(vRate, 0)} GFLOP/s`, r.bounds && `${fmt(r.bounds.visionGflops, 0)} GFLOP/s`, r.efficiency?.vision));
  lines.push(row("prefill", `${fmt(run.prefillMs / 1000)} s`, pRate && `${fmt(pRate, 0)} GFLOP/s`, r.bounds && `${fmt(r.bounds.prefillGflops, 0)} GFLOP/s`, r.efficiency?.prefill));
  lines.push(row("first token", `${fmt(run.ttftMs / 1000)} s`));
  lines.push(
    row(
      "decode",
      `${fmt(run.decodeTokensPerSecond, 2)} tok/s`,
      dRate && `${fmt(dRate)} GB/s`,
      r.bounds && r.work && `${fmt((r.bounds.gemvGBps * 1000) / r.work.decodeMBPerToken, 2)} tok/s`,
      r.efficiency?.decode,
    ),
  );
  lines.push(`peak memory      ${fmt(run.peakRssBytes / 2 ** 30, 2)} GiB`);
  if (r.ratesFile) lines.push(`rates saved for cost estimates (videolm inspect, run, the server's plan): ${r.ratesFile}`);
  if (r.work) lines.push("", `work: vision ${fmt(r.work.visionGflop, 0)} GFLOP, prefill ${fmt(r.work.prefillGflop, 0)} GFLOP, decode ${fmt(r.work.decodeMBPerToken, 0)} MB read per token`);
  process.stdout.write(lines.join("\n") + "\n");
}

export async function benchCommand(argv: string[]): Promise<number> {
  const { flags } = parseFlags(argv, BENCH_FLAGS, "bench");
  if (flags.help) {
    process.stdout.write(BENCH_HELP + "\n");
    return 0;
  }
  const dtype = precisionFlag({ dtype: flags.dtype ?? "int4" });
  const input: BenchInput = { frames: positive(flags, "frames", 8), size: positive(flags, "size", 448), tokens: positive(flags, "tokens", 32) };
  const threads = numberFlag(flags, "threads", { integer: true }) ?? 0;
  const cacheDir = flags["cache-dir"] as string | undefined;
  if (flags["measure-only"]) {
    process.stdout.write(JSON.stringify(await measureRun(flags.model as string, dtype, threads, input, cacheDir)) + "\n");
    return 0;
  }
  if (flags.model && flags.shape) throw new VideolmError("bench: give --model or --shape, not both");
  const progress = flags.quiet ? undefined : stderrProgress();
  const shape = (flags.shape as string | undefined) ?? "qwen2-vl-2b";
  if (!flags.model && !BENCH_SHAPE_NAMES.includes(shape as BenchShape)) throw new VideolmError(`--shape must be one of ${BENCH_SHAPE_NAMES.join(", ")} (got ${shape})`);
  const root = cacheDir ?? defaultCacheRoot();
  const dir = flags.model ? await resolveModel(flags.model as string, { onProgress: progress }) : await ensureBenchCheckpoint(shape as BenchShape, path.join(root, "bench"), progress);

  const preparer = await RequestPreparer.load(dir);
  ensureConverted(preparer.checkpoint, preparer.family, preparer.config, dtype, { cacheRoot: cacheDir, onProgress: progress });
  if (!flags.quiet) process.stderr.write("videolm: measuring load + one answer…\n");
  const run = await measureInChild(dir, flags, input, threads);
  const report: BenchReport = { model: flags.model ? dir : `${shape} (random weights)`, input, run };

  if (preparer.config.modelType === "qwen2_vl") {
    const config = preparer.config as Qwen2VLConfig;
    report.work = {
      visionGflop: visionFlops(config, run.grid) / 1e9,
      prefillGflop: prefillFlops(config, run.promptTokens) / 1e9,
      decodeMBPerToken: decodeBytesPerToken(config, dtype, run.promptTokens + run.generatedTokens / 2) / 1e6,
    };
    // The achieved rates become this machine's rates for cost estimates (inspect, run, the server's plan).
    const w = report.work;
    if (run.visionMs > 0 && run.prefillMs > 0 && run.decodeTokensPerSecond > 0) {
      report.ratesFile = saveRates(
        dtype,
        { visionGflops: (w.visionGflop / run.visionMs) * 1000, prefillGflops: (w.prefillGflop / run.prefillMs) * 1000, decodeGBps: (run.decodeTokensPerSecond * w.decodeMBPerToken) / 1000 },
        { threads: run.threads, model: report.model },
        cacheDir,
      );
    }
    if (!flags["no-bounds"]) {
      if (!flags.quiet) process.stderr.write("videolm: measuring the bounds (onnxruntime matmul and weight streaming on the same shapes)…\n");
      const t = config.text;
      const v = config.vision;
      // rows per vision call: the engine encodes in chunks of whole frame pairs (engine/model.ts)
      const patches = Math.min(run.grid[0], visionChunkSteps(run.grid, DEFAULT_VISION_CHUNK_PATCHES)) * run.grid[1] * run.grid[2];
      const visionPrecision = isFloatPrecision(dtype) ? "fp32" : dtype; // engine/convert.ts: the vision tower at the chosen precision
      const boundThreads = threads || 0;
      report.bounds = {
        visionGflops: await matmulGflops(patches, v.embedDim, v.embedDim * v.mlpRatio, visionPrecision, boundThreads, visionKernelFor(dtype)),
        prefillGflops: await matmulGflops(run.promptTokens, t.hiddenSize, t.intermediateSize, dtype, boundThreads),
        gemvGBps: await gemvBandwidth(t.hiddenSize, t.intermediateSize, dtype, boundThreads, bytesPerWeight(dtype)),
      };
      report.efficiency = stageEfficiency(report.work, run, report.bounds);
    }
  } else if (!flags.quiet) {
    process.stderr.write(`videolm: bounds are computed for qwen2_vl checkpoints only; showing timings for ${preparer.config.modelType}\n`);
  }
  if (flags.json) process.stdout.write(JSON.stringify(report) + "\n");
  else printReport(report);
  return 0;
}
