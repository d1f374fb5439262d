/**
 * InternVL (InternVL3 / InternVL3.5, HF `internvl` and original `internvl_chat` checkpoints) request processing, as
 * the authors' pipeline does it — the model card code of OpenGVLab/InternVL3_5-*, not transformers' processor:
 *   - images: `load_image(max_num=12)` → dynamic_preprocess tiling + thumbnail (tiling.ts), PIL bicubic resizes;
 *   - videos: `load_video` → get_index frame sampling (sampling.ts), one tile per frame (a size × size resize);
 *   - every tile: ToTensor + Normalize with the ImageNet mean/std (the model card's `build_transform`);
 *   - prompt: placeholders expanded in the text (prompt.ts), 1-D positions.
 * Tile size = the vision image size (`force_image_size` / vision_config.image_size, InternVLProcessorConfig.imageSize),
 * statistics = ImageNet, whatever video_preprocessor_config.json says: InternVL3.5-HF checkpoints were reported to ship
 * a video preprocessor config with other size / mean / std (384, CLIP; OpenGVLab/InternVL issue #1222, facts doc §4.2),
 * which the model was not trained with. preprocessor_config.json is read only for the tile limits of HF checkpoints
 * (GotOcr2's `min_patches` / `max_patches`, 1 / 12 when absent); the original format has them in config.json
 * (`max_dynamic_patch`, `use_thumbnail`), passed in `cfg`.
 *
 * What the vision graph gets (VisionBatch): grid [tiles, P, P] (P = imageSize / patchSize patches per side), and
 * pixelValues [tiles·P·P, 3·patch·patch]: the patches of each tile in row-major order, each row channel-major
 * (c, y, x) — a Conv2d(stride = patch) weight's flattening, so the patch embedding is one MatMul. Attention never
 * crosses a tile, so `visionChunks` splits by whole tiles. Tokens per tile = (P · downsampleRatio)² (256 at 448/14).
 *
 * Video options: `nframes` (exact), `fps` (frames per second of the clip), `minFrames` / `maxFrames`, `start` /
 * `end` (get_index's bound), the server's frame limit; default 16 frames (sampling.ts). Pixel options (minPixels,
 * maxPixels, totalPixels) do not apply: every frame is one tile. A video given as a list of frames is used as given
 * (every frame, in order); with frame options it is the source video at `fps` frames per second (default 1), sampled
 * like a file (listFramePlan). Frame times are the sampled frames' presentation
 * times (`frameTimes: "reference"`: index / average fps), for display only — InternVL's prompt has no times.
 */
import { splitVisionBatch } from "../vision-chunks.js";
import { describeSource, frameList, isRgbImage, loadImage, stripUndefined, timesTable, videoUrl } from "../media-parts.js";
import * as path from "node:path";
import type { VisionBatch, VisionOutput } from "../../engine/sessions.js";
import { evsSelection } from "../../engine/evs.js";
import type { ContentPart, MediaOptions, MediaSource, PlanLimit, PreparedVisual, VideoPart, VisualPlan } from "../../engine/request.js";
import { DEFAULT_FRAME_CACHE_BYTES, FrameCache } from "../../engine/frame-cache.js";
import { readImageHeader } from "../../engine/image-header.js";
import { ConfigReader } from "../../checkpoint/config-values.js";
import { readBoundedJsonObject } from "../../checkpoint/json-file.js";
import { VideolmError } from "../../errors.js";
import type { FamilyProcessor, VisualSelection } from "../family.js";
import { decodeFrames } from "../../media/decode-frames.js";
import { frameSeconds, type FrameTable } from "../../media/frame-table.js";
import { probeVideo, type VideoProbe } from "../../media/probe.js";
import { withLocalVideoFile } from "../../media/sources.js";
import type { RgbImage } from "../../processing/rgb-image.js";
import type { TextTokenizer } from "../../text/tokenizer.js";
import type { ProgressCallback } from "../../util/progress.js";
import { expandPromptText, promptTokensFromTokenizerConfig, type InternVLPromptTokens } from "./prompt.js";
import { planInternVLFrames, type InternVLFramePlan, type InternVLSamplingOptions } from "./sampling.js";
import { dynamicPreprocess, frameTile, tileCount } from "./tiling.js";

/** What the processor needs from the checkpoint (the family config provides it; see config.ts). */
export interface InternVLProcessorConfig {
  /** Tile side in pixels (448): force_image_size / vision_config.image_size. */
  imageSize: number;
  patchSize: number;
  /** 0.5: pixel shuffle halves each side, so a tile gives (imageSize / patchSize · 0.5)² tokens. */
  downsampleRatio: number;
  /** `<IMG_CONTEXT>`. */
  imageTokenId: number;
  /** Most tiles per image (original config.json `max_dynamic_patch`; HF preprocessor_config.json `max_patches`). */
  maxDynamicPatch?: number;
  /** Append a whole-image thumbnail when an image has more than one tile (default true, as load_image). */
  useThumbnail?: boolean;
  /**
   * Original-format checkpoints: the chat template (a rendering of conversation.py's) takes each message's content as
   * one string, as `model.chat` builds it (`contentAsText`).
   */
  contentAsText?: boolean;
}

/** The model card's build_transform statistics (torchvision Normalize with these, as float32). */
export const IMAGENET_MEAN = [0.485, 0.456, 0.406] as const;
export const IMAGENET_STD = [0.229, 0.224, 0.225] as const;

/** Frame rate of a video given as a list of frames when the part does not say. */
const LIST_FPS = 1;

const f32 = Math.fround;

/** value of channel c for byte u: ToTensor (u / 255 in float32) then Normalize ((x − mean) / std in float32). */
function normalizationTable(): Float32Array {
  const lut = new Float32Array(3 * 256);
  for (let c = 0; c < 3; c++) {
    const mean = f32(IMAGENET_MEAN[c]);
    const std = f32(IMAGENET_STD[c]);
    for (let u = 0; u < 256; u++) lut[c * 256 + u] = f32(f32(f32(u / 255) - mean) / std);
  }
  return lut;
}

/**
 * Tiles (each size × size) → pixel rows [tiles·P·P, 3·patch·patch], patch-major per tile, (c, y, x) per row, and
 * (row, col) patch positions [tiles·P·P, 2].
 */
export function patchifyTiles(tiles: readonly RgbImage[], imageSize: number, patchSize: number): { pixelValues: Float32Array; positionIds: Int32Array; grid: [number, number, number] } {
  if (imageSize % patchSize !== 0) throw new VideolmError(`tile size ${imageSize} is not a multiple of the patch size ${patchSize}`);
  const P = imageSize / patchSize;
  const rowLen = 3 * patchSize * patchSize;
  const pixelValues = new Float32Array(tiles.length * P * P * rowLen);
  const positionIds = new Int32Array(tiles.length * P * P * 2);
  const lut = normalizationTable();
  let r = 0;
  for (const tile of tiles) {
    if (tile.width !== imageSize || tile.height !== imageSize) throw new VideolmError(`a tile is ${tile.width}×${tile.height}, expected ${imageSize}×${imageSize}`);
    const d = tile.data;
    for (let py = 0; py < P; py++) {
      for (let px = 0; px < P; px++, r++) {
        let o = r * rowLen;
        for (let c = 0; c < 3; c++) {
          const base = c * 256;
          for (let y = 0; y < patchSize; y++) {
            let i = ((py * patchSize + y) * imageSize + px * patchSize) * 3 + c;
            for (let x = 0; x < patchSize; x++, i += 3) pixelValues[o++] = lut[base + d[i]];
          }
        }
        positionIds[r * 2] = py;
        positionIds[r * 2 + 1] = px;
      }
    }
  }
  return { pixelValues, positionIds, grid: [tiles.length, P, P] };
}

/** HF checkpoints: GotOcr2ImageProcessor's tile limits from preprocessor_config.json (absent: the model card's 1 / 12). */
function readTileLimits(checkpointDir: string): { minPatches?: number; maxPatches?: number } {
  const raw = readBoundedJsonObject(path.join(checkpointDir, "preprocessor_config.json"), undefined, true);
  if (!raw) return {};
  const pre = new ConfigReader(raw, "preprocessor_config.json");
  const int = (key: string) => (raw[key] === undefined || raw[key] === null ? undefined : pre.int(key, { min: 1, max: 64 }));
  return { minPatches: int("min_patches"), maxPatches: int("max_patches") };
}

export class InternVLProcessor implements FamilyProcessor {
  /** Decoded tiles of recent videos by (source identity, sampled frames): a second request skips decoding. */
  readonly frameCache = new FrameCache(DEFAULT_FRAME_CACHE_BYTES);
  readonly minNum: number;
  readonly maxNum: number;
  readonly useThumbnail: boolean;
  /** Patches per tile side (imageSize / patchSize). */
  readonly patchesPerSide: number;
  readonly tokensPerTile: number;
  /** The template's placeholders and the expansion's markers (tokenizer_config.json extra_special_tokens; prompt.ts). */
  readonly promptTokens: InternVLPromptTokens;

  constructor(
    checkpointDir: string,
    readonly cfg: InternVLProcessorConfig,
  ) {
    const { imageSize, patchSize, downsampleRatio } = cfg;
    if (!Number.isInteger(imageSize) || !Number.isInteger(patchSize) || imageSize < 1 || patchSize < 1 || imageSize % patchSize !== 0) {
      throw new VideolmError(`InternVL tile size ${imageSize} must be a positive multiple of the patch size ${patchSize}`);
    }
    this.patchesPerSide = imageSize / patchSize;
    const side = this.patchesPerSide * downsampleRatio;
    if (!(downsampleRatio > 0) || !Number.isInteger(side)) {
      throw new VideolmError(`downsample_ratio ${downsampleRatio} must divide the ${this.patchesPerSide} patches per tile side into whole tokens`);
    }
    this.tokensPerTile = side * side;
    const limits = cfg.maxDynamicPatch === undefined ? readTileLimits(checkpointDir) : {};
    this.minNum = limits.minPatches ?? 1;
    this.maxNum = cfg.maxDynamicPatch ?? limits.maxPatches ?? 12;
    if (this.minNum > this.maxNum) throw new VideolmError(`tile limits: min_patches ${this.minNum} exceeds max_patches ${this.maxNum}`);
    this.useThumbnail = cfg.useThumbnail ?? true;
    this.promptTokens = promptTokensFromTokenizerConfig(readBoundedJsonObject(path.join(checkpointDir, "tokenizer_config.json"), undefined, true));
    if (cfg.contentAsText) {
      const t = this.promptTokens;
      this.contentAsText = (parts) => parts.map((p) => (p.type === "text" ? p.text : p.type === "image" ? `${t.context}\n` : `${t.video}\n`)).join("");
    }
  }

  private tiling() {
    return { minNum: this.minNum, maxNum: this.maxNum, useThumbnail: this.useThumbnail };
  }

  private gridOf(tiles: number): [number, number, number] {
    return [tiles, this.patchesPerSide, this.patchesPerSide];
  }

  private planOf(kind: "image" | "video", source: string, tiles: number, size: [number, number], extra: Partial<VisualPlan> = {}): VisualPlan {
    return { kind, source, grid: this.gridOf(tiles), tokens: tiles * this.tokensPerTile, size, ...extra };
  }

  private toVisual(plan: VisualPlan, tiles: RgbImage[]): PreparedVisual {
    const { pixelValues, positionIds, grid } = patchifyTiles(tiles, this.cfg.imageSize, this.cfg.patchSize);
    return { ...plan, grid, batch: { pixelValues, positionIds, grid } };
  }

  /** A video part's sampling options over the request's (the server's frame limit never raises an explicit count). */
  private samplingOptions(part: VideoPart, defaults: MediaOptions): { o: MediaOptions; sampling: InternVLSamplingOptions } {
    const { video: _video, type: _type, ...rest } = part;
    const own = stripUndefined(rest) as MediaOptions;
    const o: MediaOptions = { ...defaults, ...own };
    const sampling: InternVLSamplingOptions = { nframes: o.nframes, fps: o.fps, minFrames: o.minFrames, maxFrames: o.maxFrames, frameLimit: o.frameLimit, start: o.start, end: o.end };
    return { o, sampling };
  }

  private limitsOf(plan: InternVLFramePlan, sampling: InternVLSamplingOptions): PlanLimit[] {
    const limits: PlanLimit[] = [];
    const l = plan.limitedBy;
    if (l) {
      const source = l.name === "frame_limit" ? "server" : "request";
      const verb = l.name === "min_frames" ? "raised" : "capped";
      limits.push({ name: l.name, value: l.value, source, note: `${l.name} ${l.value} (${source}): ${l.wanted} frames ${verb} to ${plan.frameIndices.length}` });
    }
    if (sampling.start !== undefined || sampling.end !== undefined) {
      limits.push({ name: "range", value: plan.range.count, source: "request", note: `clip range frames ${plan.range.start}–${plan.range.end} (start/end)` });
    }
    return limits;
  }

  async planVisual(part: ContentPart, defaults: MediaOptions, signal?: AbortSignal): Promise<VisualPlan | null> {
    if (part.type === "text") return null;
    if (part.type === "image") {
      const header = isRgbImage(part.image) ? part.image : await readImageHeader(part.image, defaults.maxInputPixels, signal);
      return this.imagePlan(describeSource(part.image), header.width, header.height);
    }
    if (part.type === "video") {
      const { o, sampling } = this.samplingOptions(part, defaults);
      const list = frameList(part.video);
      if (list) {
        const fps = list.fps ?? o.fps ?? LIST_FPS;
        return this.listPlan(list.label, listFramePlan(list.frames.length, fps, sampling), fps, sampling);
      }
      const source = describeSource(part.video);
      const url = videoUrl(part.video as MediaSource);
      return withLocalVideoFile(url, { signal }, async (file) => {
        const probe = await probeVideo(file.path, { signal, maxInputPixels: o.maxInputPixels }, file.label);
        const plan = planInternVLFrames(probe.frameCount, probe.avgFps, sampling);
        const table = await timesTable(file.path, probe, o, signal);
        return this.filePlan(source, probe, plan, table, sampling, o);
      });
    }
    throw new VideolmError(`unknown content part type ${JSON.stringify((part as { type?: unknown }).type)} (use text, image or video)`);
  }

  private imagePlan(source: string, width: number, height: number): VisualPlan {
    const tiles = tileCount(width, height, this.cfg.imageSize, this.tiling());
    return this.planOf("image", source, tiles, [this.cfg.imageSize, this.cfg.imageSize]);
  }

  private listPlan(source: string, plan: InternVLFramePlan, fps: number, sampling: InternVLSamplingOptions): VisualPlan {
    const s = this.cfg.imageSize;
    return this.planOf("video", source, plan.frameIndices.length, [s, s], {
      frameIndices: plan.frameIndices,
      timestamps: plan.frameIndices.map((i) => i / fps),
      sampleFps: plan.frameIndices.length / (plan.range.count / fps),
      limits: this.limitsOf(plan, sampling),
    });
  }

  private filePlan(source: string, probe: VideoProbe, plan: InternVLFramePlan, table: FrameTable | undefined, sampling: InternVLSamplingOptions, o: MediaOptions): VisualPlan {
    const s = this.cfg.imageSize;
    const fps = probe.avgFps;
    const reference = plan.frameIndices.map((i) => i / fps);
    let timestamps = reference;
    let span = plan.range.count / fps;
    if (table && (o.frameTimes ?? "presentation") === "presentation") {
      const unit = table.timeBase[0] / table.timeBase[1] + 1e-9;
      timestamps = plan.frameIndices.map((i, k) => (Math.abs(frameSeconds(table, i) - reference[k]) <= unit ? reference[k] : frameSeconds(table, i)));
      const real = frameSeconds(table, plan.range.end) - frameSeconds(table, plan.range.start);
      if (plan.range.count > 1 && real > 0 && Math.abs(real - (plan.range.count - 1) / fps) > unit) span = (real * plan.range.count) / (plan.range.count - 1);
    }
    return this.planOf("video", source, plan.frameIndices.length, [s, s], {
      frameIndices: plan.frameIndices,
      timestamps,
      sampleFps: plan.frameIndices.length / span,
      limits: this.limitsOf(plan, sampling),
      resample: { frameCount: probe.frameCount, fps, width: probe.displayWidth, height: probe.displayHeight, options: { ...sampling } },
    });
  }

  /**
   * The grid a planned video file would get with at most `maxFrames` frames, from the probe facts kept in the plan
   * (no I/O). Undefined for images and frame lists, and when `maxPixels` is below one tile (a tile cannot shrink).
   */
  gridWithMaxFrames(plan: VisualPlan, maxFrames: number, maxPixels?: number): [number, number, number] | undefined {
    const r = plan.resample;
    if (!r) return undefined;
    if (maxPixels !== undefined && maxPixels < this.cfg.imageSize * this.cfg.imageSize) return undefined;
    try {
      const p = planInternVLFrames(r.frameCount, r.fps, { ...(r.options as InternVLSamplingOptions), nframes: undefined, maxFrames });
      return this.gridOf(p.frameIndices.length);
    } catch {
      return undefined;
    }
  }

  async prepareVisual(part: ContentPart, defaults: MediaOptions, signal?: AbortSignal, onProgress?: ProgressCallback): Promise<PreparedVisual | null> {
    if (part.type === "text") return null;
    const s = this.cfg.imageSize;
    if (part.type === "image") {
      const t0 = performance.now();
      const image = isRgbImage(part.image) ? part.image : await loadImage(part.image, defaults.maxInputPixels, signal);
      const tiles = dynamicPreprocess(image, s, this.tiling());
      const decodeMs = performance.now() - t0;
      return { ...this.toVisual(this.imagePlan(describeSource(part.image), image.width, image.height), tiles), decodeMs };
    }
    if (part.type === "video") {
      const { o, sampling } = this.samplingOptions(part, defaults);
      const list = frameList(part.video);
      const t0 = performance.now();
      if (list) {
        const fps = list.fps ?? o.fps ?? LIST_FPS;
        const plan = listFramePlan(list.frames.length, fps, sampling);
        const tiles: RgbImage[] = [];
        const byIndex = new Map<number, RgbImage>();
        for (const i of plan.frameIndices) {
          let tile = byIndex.get(i);
          if (!tile) {
            const f = list.frames[i];
            const frame = isRgbImage(f) ? f : await loadImage(f, o.maxInputPixels, signal);
            tile = frameTile(frame, s);
            byIndex.set(i, tile);
          }
          tiles.push(tile);
        }
        return { ...this.toVisual(this.listPlan(list.label, plan, fps, sampling), tiles), decodeMs: performance.now() - t0 };
      }
      const source = describeSource(part.video);
      const video = part.video as MediaSource;
      return withLocalVideoFile(videoUrl(video), { signal }, async (file) => {
        const probe = await probeVideo(file.path, { signal, maxInputPixels: o.maxInputPixels }, file.label);
        const plan = planInternVLFrames(probe.frameCount, probe.avgFps, sampling);
        const table = await timesTable(file.path, probe, o, signal);
        const key = FrameCache.key(video, { kind: "internvl-video", indices: plan.frameIndices, size: s, rotation: probe.rotation });
        let tiles = this.frameCache.get(key);
        let decodeMs = 0;
        if (!tiles) {
          const t1 = performance.now();
          tiles = await decodeFrames(file.path, {
            indices: plan.frameIndices,
            width: probe.width,
            height: probe.height,
            rotation: probe.rotation,
            demuxer: probe.demuxer,
            maxInputPixels: o.maxInputPixels,
            // The model card's dynamic_preprocess(max_num=1): PIL's bicubic resize of the whole frame to one tile.
            resize: { height: s, width: s, fn: (img) => frameTile(img, s) },
            label: file.label,
            signal,
            onProgress: onProgress && ((done: number, total: number) => onProgress({ task: `Decoding ${source}`, done, total, unit: "frames" as const })),
            table,
            frameCount: probe.frameCount,
          });
          decodeMs = performance.now() - t1;
          this.frameCache.set(key, tiles);
        }
        return { ...this.toVisual(this.filePlan(source, probe, plan, table, sampling, o), tiles), decodeMs };
      });
    }
    throw new VideolmError(`unknown content part type ${JSON.stringify((part as { type?: unknown }).type)} (use text, image or video)`);
  }

  /**
   * Original format: the content as `model.chat` builds its question — each image `<image>\n` and each video
   * `Frame{i}: <image>\n` per frame before the text, in part order (docs/internvl-flash-reference.md §8). Written
   * with the placeholders the HF template emits for the same parts (`<IMG_CONTEXT>\n`, `<video>\n`), which
   * buildPrompt expands to exactly that text: a video's frame lines joined by "\n" plus the part's "\n".
   */
  contentAsText?(parts: readonly ContentPart[]): string;

  /** EVS pruning (engine/evs.ts) for videos that ask for it: each frame is one tile of `tokensPerTile` tokens. */
  readonly evsPruning: boolean = true;

  /** Selects rows only for videos that ask for EVS pruning; other requests keep the pipeline. */
  selectsVisualRows(visuals: readonly VisualPlan[]): boolean {
    return visuals.some((v) => v.kind === "video" && (v.prune ?? 0) > 0);
  }

  /**
   * EVS on each video that asks for it, frame by frame (a frame is one tile: tokens per frame = tokensPerTile, the
   * pixel-shuffled rows compared with the same row of the previous frame). 1-D positions: "renumber", as vLLM's
   * InternVL-style nano_nemotron_vl, which builds each frame's placeholder from its kept count (positions contiguous).
   */
  selectVisualRows(outputs: readonly VisionOutput[], visuals: readonly VisualPlan[], _media: MediaOptions): VisualSelection {
    return evsSelection(outputs, visuals, 1 / this.cfg.downsampleRatio, "renumber");
  }

  /** The rendered template with its placeholders expanded (prompt.ts), tokenized; positions 0 … S−1. */
  buildPrompt(promptText: string, tokenizer: TextTokenizer, visuals: readonly VisualPlan[]): { inputIds: number[]; positionIds: Int32Array; ropeDelta: number } {
    const text = expandPromptText(promptText, visuals.map((v) => ({ kind: v.kind, tiles: v.grid[0] })), this.tokensPerTile, this.promptTokens);
    const inputIds = tokenizer.encode(text);
    const expected = visuals.reduce((n, v) => n + v.grid[0] * this.tokensPerTile, 0);
    let found = 0;
    for (const id of inputIds) if (id === this.cfg.imageTokenId) found++;
    if (found !== expected) {
      const ctx = this.promptTokens.context;
      throw new VideolmError(`the prompt holds ${found} ${ctx} tokens where the visuals need ${expected}: the tokenizer does not map ${ctx} to image_token_id ${this.cfg.imageTokenId}, or the text contains it`);
    }
    const positionIds = new Int32Array(inputIds.length);
    for (let i = 0; i < positionIds.length; i++) positionIds[i] = i;
    return { inputIds, positionIds, ropeDelta: 0 };
  }

  /** The batch split into batches of whole tiles with at most `maxPatches` patches each (at least one tile). */
  visionChunks(batch: VisionBatch, maxPatches: number): VisionBatch[] {
    return splitVisionBatch(batch, maxPatches);
  }

}


/**
 * The frames of a video given as a list: every frame, in order, as the caller chose them (the Qwen families do the
 * same), unless frame options are given (nframes, min/max frames, start/end) or the list is longer than the server's
 * frame limit — then the list is sampled like a file at `fps` frames per second (get_index, sampling.ts). Sampling a
 * list by default would repeat frames: get_index(6, 6) takes frame 2 twice and never frame 5.
 */
function listFramePlan(frameCount: number, fps: number, sampling: InternVLSamplingOptions): InternVLFramePlan {
  const chosen = [sampling.nframes, sampling.minFrames, sampling.maxFrames, sampling.start, sampling.end].some((v) => v !== undefined);
  if (!chosen && frameCount >= 1 && frameCount <= (sampling.frameLimit ?? Infinity)) {
    return { frameIndices: Array.from({ length: frameCount }, (_, i) => i), range: { start: 0, end: frameCount - 1, count: frameCount } };
  }
  return planInternVLFrames(frameCount, fps, { ...sampling, fps: undefined });
}






