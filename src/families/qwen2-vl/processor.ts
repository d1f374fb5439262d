/**
 * Qwen2-VL request processing, as the authors' pipeline does it: qwen-vl-utils samples and resizes the media,
 * then the transformers 4.57.6 Qwen2VLProcessor normalises, patches, and expands the placeholders; the 3-D
 * positions follow `Qwen2VLModel.get_rope_index`.
 */
import type { VisionBatch } from "../../engine/sessions.js";
import type { ProgressCallback } from "../../util/progress.js";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import type { ContentPart, MediaOptions, PreparedVisual } from "../../engine/request.js";
import { ConfigReader, LIMITS } from "../../checkpoint/config-values.js";
import { readBoundedJsonObject } from "../../checkpoint/json-file.js";
import { VideolmError } from "../../errors.js";
import type { FamilyProcessor } from "../family.js";
import { decodeImage } from "../../media/image.js";
import { fetchImage, loadFrameList } from "../../media/frame-list.js";
import { withLocalVideoFile } from "../../media/sources.js";
import { loadVideo } from "../../media/video.js";
import { patchifyFrames, visionPositionIds } from "../../processing/qwen2-vl-patches.js";
import type { RgbImage } from "../../processing/rgb-image.js";
import { qwenVlUtilsDefaults, type SamplingDefaults } from "../../sampling/qwen-vl-utils.js";
import type { TextTokenizer } from "../../text/tokenizer.js";
import type { Qwen2VLConfig } from "./config.js";
import { expandPlaceholderIds, visualTokenCount } from "./prompt.js";
import { getRopeIndex } from "./rope-index.js";

/** preprocessor_config.json fields the processor uses (Qwen2VLImageProcessor; hub defaults). */
export interface Qwen2VLPreprocessorConfig {
  minPixels: number;
  maxPixels: number;
  mean: [number, number, number];
  std: [number, number, number];
}

const CLIP_MEAN: [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
const CLIP_STD: [number, number, number] = [0.26862954, 0.26130258, 0.27577711];

export function readQwen2VLPreprocessorConfig(dir: string): Qwen2VLPreprocessorConfig {
  const raw = readBoundedJsonObject(path.join(dir, "preprocessor_config.json"), undefined, true) ?? {};
  const pre = new ConfigReader(raw, "preprocessor_config.json");
  const size = pre.object("size") ?? new ConfigReader({}, "preprocessor_config.json", "size.");
  const minPixels = raw.min_pixels != null ? pre.int("min_pixels", LIMITS.pixels) : size.int("shortest_edge", LIMITS.pixels, 56 * 56);
  const maxPixels = raw.max_pixels != null ? pre.int("max_pixels", LIMITS.pixels) : size.int("longest_edge", LIMITS.pixels, 28 * 28 * 1280);
  if (minPixels > maxPixels) throw new VideolmError(`preprocessor_config.json: min_pixels ${minPixels} must not exceed max_pixels ${maxPixels}`);
  const triple = (key: string, fallback: [number, number, number], positive: boolean): [number, number, number] => {
    const v = raw[key] ?? fallback;
    if (!Array.isArray(v) || v.length !== 3 || !v.every((x) => typeof x === "number" && Number.isFinite(x) && Math.abs(x) <= 1e6 && (!positive || x > 0))) {
      throw pre.fail(key, `must list 3 ${positive ? "positive " : ""}numbers`, v);
    }
    return [v[0], v[1], v[2]];
  };
  return { minPixels, maxPixels, mean: triple("image_mean", CLIP_MEAN, false), std: triple("image_std", CLIP_STD, true) };
}

/**
 * A checkpoint may carry its own video sampling defaults in `video_preprocessor_config.json` under
 * `videolm_sampling` ({fps, min_pixels, max_pixels, min_frames, max_frames}): the demo model was trained at 4 fps on
 * ≤ 112×112 frames, and `videolm run clip.mp4 …` must sample as it was trained. Only that block is read: the
 * standard transformers fields of hub checkpoints are not what the authors' pipeline (qwen-vl-utils) samples with.
 */
export function withCheckpointSampling(checkpointDir: string, base: SamplingDefaults): SamplingDefaults {
  const file = path.join(checkpointDir, "video_preprocessor_config.json");
  const raw = readBoundedJsonObject(file, undefined, true);
  const own = raw && new ConfigReader(raw, "video_preprocessor_config.json").object("videolm_sampling");
  if (!own) return base;
  const num = (key: string, fallback: number) => (own.obj[key] === undefined ? fallback : own.num(key, { min: 0, max: key.endsWith("pixels") ? LIMITS.pixels.max : 1e6, exclusiveMin: true }));
  return {
    ...base,
    fps: num("fps", base.fps),
    videoMinPixels: num("min_pixels", base.videoMinPixels),
    videoMaxPixels: num("max_pixels", base.videoMaxPixels),
    minFrames: num("min_frames", base.minFrames),
    maxFrames: num("max_frames", base.maxFrames),
  };
}

export class Qwen2VLProcessor implements FamilyProcessor {
  readonly pre: Qwen2VLPreprocessorConfig;
  readonly sampling: SamplingDefaults;

  constructor(
    checkpointDir: string,
    readonly config: Qwen2VLConfig,
  ) {
    this.pre = readQwen2VLPreprocessorConfig(checkpointDir);
    this.sampling = withCheckpointSampling(checkpointDir, qwenVlUtilsDefaults(config.vision.patchSize));
  }

  private patchOptions() {
    const v = this.config.vision;
    return { patchSize: v.patchSize, temporalPatchSize: v.temporalPatchSize, mergeSize: v.spatialMergeSize, mean: this.pre.mean, std: this.pre.std };
  }

  private toVisual(kind: "image" | "video", source: string, frames: RgbImage[], extra: Partial<PreparedVisual> = {}): PreparedVisual {
    const { pixelValues, grid } = patchifyFrames(frames, this.patchOptions());
    const merge = this.config.vision.spatialMergeSize;
    return {
      kind,
      source,
      batch: { pixelValues, grid, positionIds: visionPositionIds(grid, merge), extraInputs: this.extraVisionInputs(grid) },
      tokens: visualTokenCount(grid, merge),
      size: [frames[0].height, frames[0].width],
      ...extra,
    };
  }

  /** Family-specific vision graph inputs for a grid (none for Qwen2-VL); also called for each chunk of a video. */
  protected extraVisionInputs(_grid: readonly [number, number, number]): VisionBatch["extraInputs"] {
    return undefined;
  }

  /**
   * A visual split into batches of whole temporal steps with at most `maxPatches` patches each (at least one step).
   * Exact: the vision towers of every Qwen-VL family attend only within a temporal step (cu_seqlens per frame pair
   * in modeling_qwen2_vl.py / modeling_qwen2_5_vl.py / modeling_qwen3_vl.py), so chunk outputs concatenate to the
   * whole visual's output.
   */
  visionChunks(batch: VisionBatch, maxPatches: number): VisionBatch[] {
    const [t, h, w] = batch.grid;
    const perStep = h * w;
    const stepsPerChunk = visionChunkSteps(batch.grid, maxPatches);
    if (t <= stepsPerChunk) return [batch];
    const rowLength = batch.pixelValues.length / (t * perStep);
    const chunks: VisionBatch[] = [];
    for (let start = 0; start < t; start += stepsPerChunk) {
      const steps = Math.min(stepsPerChunk, t - start);
      const grid: [number, number, number] = [steps, h, w];
      const rows = [start * perStep, (start + steps) * perStep];
      chunks.push({
        pixelValues: batch.pixelValues.subarray(rows[0] * rowLength, rows[1] * rowLength),
        positionIds: batch.positionIds.subarray(rows[0] * 2, rows[1] * 2),
        grid,
        extraInputs: this.extraVisionInputs(grid),
      });
    }
    return chunks;
  }

  async prepareVisual(part: ContentPart, defaults: MediaOptions, signal?: AbortSignal, onProgress?: ProgressCallback): Promise<PreparedVisual | null> {
    if (part.type === "text") return null;
    if (part.type === "image") {
      const source = describeSource(part.image);
      const image = isRgbImage(part.image) ? part.image : await loadImage(part.image, defaults.maxInputPixels, signal);
      // qwen-vl-utils fetch_image (the authors' pipeline); the processor's own resize is then the identity.
      const resized = fetchImage(image, { minPixels: part.minPixels ?? defaults.minPixels ?? this.pre.minPixels, maxPixels: part.maxPixels ?? defaults.maxPixels ?? this.pre.maxPixels }, this.sampling);
      // One frame: patchifyFrames repeats it to fill the temporal patch (two identical frames), as the reference.
      return this.toVisual("image", source, [resized]);
    }
    if (part.type === "video") {
      const { video, type: _type, ...own } = part;
      const o: MediaOptions = { ...defaults, ...stripUndefined(own) };
      const sampling = {
        nframes: o.nframes,
        minFrames: o.minFrames,
        maxFrames: o.maxFrames,
        videoStart: o.start,
        videoEnd: o.end,
        minPixels: o.minPixels,
        maxPixels: o.maxPixels,
        totalPixels: o.totalPixels,
      };
      let loaded: { frames: RgbImage[]; frameIndices: number[]; timestamps: number[]; sampleFps: number };
      let source: string;
      if (Array.isArray(video)) {
        loaded = await loadFrameList(video.map((f) => (f instanceof URL ? fileURLToPath(f) : f)), o.fps, sampling, this.sampling, { maxInputPixels: o.maxInputPixels });
        source = `${video.length} frames`;
      } else if (isRawFrames(video)) {
        loaded = await loadFrameList(video.frames, o.fps ?? video.fps, sampling, this.sampling);
        source = `${video.frames.length} raw frames`;
      } else {
        source = describeSource(video);
        const url = video instanceof URL ? video.href : Buffer.isBuffer(video) ? `data:video/mp4;base64,${video.toString("base64")}` : video;
        loaded = await loadVideo(url, {
          ...sampling,
          fps: o.fps,
          defaults: this.sampling,
          maxInputPixels: o.maxInputPixels,
          signal,
          onProgress: onProgress && ((done, total) => onProgress({ task: `Decoding ${source}`, done, total, unit: "frames" })),
        });
      }
      return this.toVisual("video", source, loaded.frames, {
        frameIndices: loaded.frameIndices,
        timestamps: loaded.timestamps,
        sampleFps: loaded.sampleFps,
        secondPerGrid: this.config.vision.temporalPatchSize / loaded.sampleFps,
      });
    }
    throw new VideolmError(`unknown content part type ${JSON.stringify((part as { type?: unknown }).type)} (use text, image or video)`);
  }

  buildPrompt(promptText: string, tokenizer: TextTokenizer, visuals: PreparedVisual[]) {
    const c = this.config;
    const rendered = tokenizer.encode(promptText);
    const ropeVisuals = visuals.map((v) => ({ kind: v.kind, grid: v.batch.grid }));
    const expanded = expandPlaceholderIds(rendered, ropeVisuals, { imageTokenId: c.imageTokenId, videoTokenId: c.videoTokenId, mergeSize: c.vision.spatialMergeSize });
    const { positionIds, ropeDelta } = getRopeIndex(expanded, ropeVisuals, {
      spatialMergeSize: c.vision.spatialMergeSize,
      imageTokenId: c.imageTokenId,
      videoTokenId: c.videoTokenId,
      visionStartTokenId: c.visionStartTokenId,
    });
    return { inputIds: Array.from(expanded), positionIds, ropeDelta };
  }
}

/**
 * Decodes an image from a path, a Buffer, or a file:// / http(s):// / data: URL (fetched with the video limits); its
 * header is checked against `maxInputPixels` before decoding.
 */
async function loadImage(source: string | URL | Buffer, maxInputPixels: number | undefined, signal?: AbortSignal): Promise<RgbImage> {
  if (Buffer.isBuffer(source)) return decodeImage(source, { maxInputPixels });
  const text = source instanceof URL ? source.href : source;
  if (!/^(https?|data|file):/i.test(text)) return decodeImage(text, { maxInputPixels });
  return withLocalVideoFile(text, { signal }, (file) => decodeImage(file.path, { maxInputPixels, label: file.label }));
}

function isRawFrames(x: unknown): x is { frames: RgbImage[]; fps: number } {
  return typeof x === "object" && x !== null && Array.isArray((x as { frames?: unknown }).frames);
}

function isRgbImage(x: unknown): x is RgbImage {
  return typeof x === "object" && x !== null && "data" in x && "width" in x && "height" in x && !(x instanceof URL) && !Buffer.isBuffer(x);
}

function describeSource(x: unknown): string {
  if (typeof x === "string") return x.startsWith("data:") ? `data: URL (${x.length} chars)` : x;
  if (x instanceof URL) return x.href;
  if (Buffer.isBuffer(x)) return `<${x.length} bytes>`;
  return "<raw frames>";
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Temporal steps (frame pairs) per vision chunk of at most `maxPatches` patches: at least one (see visionChunks). */
export function visionChunkSteps(grid: [number, number, number], maxPatches: number): number {
  return Math.max(1, Math.floor(maxPatches / (grid[1] * grid[2])));
}
