/**
 * First-load conversion: checkpoint safetensors → ONNX graphs (vision.onnx, decoder.onnx — or decoder-0.onnx …
 * decoder-(n−1).onnx when the decoder is split into stages, decoder-stages.ts) with external weight data in the chosen
 * precision, written into a cache folder; manifest.json lists the decoder graphs. Later loads find the folder by its key and open
 * the graphs directly. The folder is built under a temporary name and renamed when complete, so an
 * interrupted conversion never leaves a half-written cache behind.
 */
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { Checkpoint } from "../checkpoint/checkpoint.js";
import { WeightMap } from "../checkpoint/weight-map.js";
import type { TensorInfo } from "../checkpoint/safetensors.js";
import { VideolmError } from "../errors.js";
import type { DecoderStage, FamilyConfig, ModelFamily } from "../families/family.js";
import { GraphBuilder } from "../onnx/graph.js";
import { Layers, type QuantizedKernel, type WeightPrecision } from "../onnx/layers.js";
import type { ProgressCallback } from "../util/progress.js";
import { describeStages, layersPerStageOverride, planDecoderStages } from "./decoder-stages.js";

/** Bump when the emitted graphs change, so stale caches are rebuilt. */
export const CONVERTER_VERSION = 11;

export interface ConvertedModel {
  dir: string;
  visionPath: string;
  /** The decoder's graphs in stage order: [decoder.onnx], or decoder-0.onnx … decoder-(n−1).onnx. */
  decoderPaths: string[];
}

export function defaultCacheRoot(): string {
  return process.env.VIDEOLM_CACHE ?? path.join(os.homedir(), ".cache", "videolm");
}

/**
 * Cache key: converter version, checkpoint identity (config + each weight file's name, size, mtime), precision, and
 * the decoder's stages when it has more than one (a single decoder graph keeps the key it always had).
 */
export function conversionKey(ckpt: Checkpoint, precision: WeightPrecision, stages?: readonly DecoderStage[]): string {
  const h = crypto.createHash("sha256");
  h.update(`v${CONVERTER_VERSION}|${precision}|${ckpt.dir}|${JSON.stringify(ckpt.config)}`);
  if (stages && stages.length > 1) h.update(`|stages:${describeStages(stages)}`);
  for (const f of ckpt.files) {
    const st = fs.statSync(f);
    h.update(`|${path.basename(f)}:${st.size}:${st.mtimeMs}`);
  }
  return h.digest("hex").slice(0, 16);
}

/** The decoder graphs' file names for these stages: decoder.onnx for one, decoder-i.onnx for several. */
export function decoderFileNames(stageCount: number): string[] {
  return stageCount === 1 ? ["decoder.onnx"] : Array.from({ length: stageCount }, (_, i) => `decoder-${i}.onnx`);
}

/** The graphs of a converted folder: the decoders its manifest lists (folders written before stages: decoder.onnx). */
export function convertedPaths(dir: string): ConvertedModel {
  let decoders = ["decoder.onnx"];
  try {
    const m = JSON.parse(fs.readFileSync(path.join(dir, "manifest.json"), "utf8")) as { decoders?: unknown };
    if (Array.isArray(m.decoders) && m.decoders.length > 0 && m.decoders.every((d) => typeof d === "string")) decoders = m.decoders as string[];
  } catch {
    // no manifest yet (being written) or unreadable: the single decoder
  }
  return { dir, visionPath: path.join(dir, "vision.onnx"), decoderPaths: decoders.map((d) => path.join(dir, d)) };
}

/**
 * The kernel of the vision tower's quantized products. Vision matmuls always have thousands of rows. int4 (the fast
 * precision) encodes with MLAS's integer GEMM on row-quantised activations and int8 weights: ~1.8× float32's
 * throughput, and closer to fp32 than int4 vision on the trained demo model. int8 (the faithful precision) keeps its
 * block-quantised 8-bit weights with float32 compute (accuracy level 1): the integer GEMM's 7-bit weights round more
 * than the tiny golden checkpoints' int8 gate allows (test/quantized-quality.test.ts). Measured in
 * docs/performance.md. (The decoder's products are dominated by single-row decode steps: MatMulNBits, accuracy 4.)
 */
export function visionKernelFor(precision: WeightPrecision): QuantizedKernel {
  return precision === "int4" ? "rowwise-int8" : "nbits-acc1";
}

/**
 * Returns the converted model for this checkpoint and precision, converting it first when not cached. The decoder is
 * split into stages as the family asks (decoder-stages.ts), or into stages of `layersPerStage` layers when given (else
 * $VIDEOLM_DECODER_LAYERS_PER_STAGE; for tests and benchmarks).
 */
export function ensureConverted<C extends FamilyConfig>(
  ckpt: Checkpoint,
  family: ModelFamily<C>,
  config: C,
  precision: WeightPrecision,
  options: { cacheRoot?: string; onProgress?: ProgressCallback; layersPerStage?: number } = {},
): ConvertedModel {
  const root = path.join(options.cacheRoot ?? defaultCacheRoot(), "converted");
  const stages = planDecoderStages(family, config, layersPerStageOverride(options.layersPerStage));
  const name = `${path.basename(ckpt.dir)}-${precision}-${conversionKey(ckpt, precision, stages)}`;
  const finalDir = path.join(root, name);
  if (fs.existsSync(path.join(finalDir, "manifest.json"))) return convertedPaths(finalDir);

  try {
    fs.mkdirSync(root, { recursive: true });
  } catch (e) {
    throw new VideolmError(`cannot create the cache folder ${root}: ${(e as Error).message} (set VIDEOLM_CACHE to a writable folder)`);
  }
  const tmpDir = fs.mkdtempSync(path.join(root, `.${name}.tmp-`));
  try {
    const canonical = new Map<string, TensorInfo>();
    for (const [n, info] of ckpt.tensors) {
      const c = family.sanitizeTensorName(n);
      if (c !== null) canonical.set(c, info);
    }
    let done = 0;
    let total = 0;
    const weights = new WeightMap(canonical, ckpt.dir, (bytes) => {
      done += bytes;
      options.onProgress?.({ task: `Converting ${path.basename(ckpt.dir)} (${precision})`, done, total, unit: "bytes" });
    });
    total = weights.totalBytes();
    writeGraph(path.join(tmpDir, "vision.onnx"), "vision", precision, visionKernelFor(precision), (layers) => family.buildVision(layers, weights, config));
    const decoders = decoderFileNames(stages.length);
    if (stages.length === 1) {
      // One graph of all layers, built without a stage argument: the graph every conversion wrote before stages.
      writeGraph(path.join(tmpDir, decoders[0]), "decoder", precision, "nbits-acc4", (layers) => family.buildDecoder(layers, weights, config));
    } else {
      stages.forEach((stage, i) =>
        writeGraph(path.join(tmpDir, decoders[i]), `decoder_${i}`, precision, "nbits-acc4", (layers) => family.buildDecoder(layers, weights, config, stage)),
      );
    }
    weights.assertAllUsed();
    const manifest = {
      converterVersion: CONVERTER_VERSION,
      family: family.name,
      precision,
      checkpoint: ckpt.dir,
      decoders,
      ...(stages.length > 1 ? { decoderStages: describeStages(stages) } : {}),
      createdAt: new Date().toISOString(),
    };
    fs.writeFileSync(path.join(tmpDir, "manifest.json"), JSON.stringify(manifest, null, 2));
    try {
      fs.renameSync(tmpDir, finalDir);
    } catch {
      // Another process finished the same conversion first; use theirs.
      fs.rmSync(tmpDir, { recursive: true, force: true });
    }
    pruneOlderConversions(root, name, ckpt.dir, precision);
    return convertedPaths(finalDir);
  } catch (e) {
    fs.rmSync(tmpDir, { recursive: true, force: true });
    throw e;
  }
}

/**
 * Removes conversions of the same checkpoint folder and precision made by an older converter (they can never be used
 * again, and a 2B fp32 conversion is 8 GB). Conversions of other checkpoints, other precisions, or by this or a newer
 * converter are kept.
 */
export function pruneOlderConversions(root: string, keep: string, checkpointDir: string, precision: WeightPrecision): void {
  for (const entry of fs.readdirSync(root)) {
    if (entry === keep || entry.startsWith(".")) continue;
    const manifestPath = path.join(root, entry, "manifest.json");
    try {
      const m = JSON.parse(fs.readFileSync(manifestPath, "utf8")) as { converterVersion?: number; checkpoint?: string; precision?: string };
      if (m.checkpoint === checkpointDir && m.precision === precision && typeof m.converterVersion === "number" && m.converterVersion < CONVERTER_VERSION) {
        fs.rmSync(path.join(root, entry), { recursive: true, force: true });
      }
    } catch {
      // not a conversion folder (or unreadable): leave it alone
    }
  }
}

function writeGraph(file: string, name: string, precision: WeightPrecision, kernel: QuantizedKernel, build: (layers: Layers) => void): void {
  const g = new GraphBuilder(name, `${file}.data`);
  build(new Layers(g, precision, kernel));
  fs.writeFileSync(file, g.toBytes());
}
