/**
 * VideoLLaMA3 request processing, as transformers 5.18.0 does it (the authors' HF port; docs/video_llama_3-reference.md
 * §6–§9): VideoLlama3ImageProcessor, VideoLlama3VideoProcessor (sampling, per-clip resize budget, DiffFP token
 * pruning) and VideoLlama3Processor (placeholder expansion with `Time {t:.1f}s:` frame labels).
 *
 *   - images: smart_resize(factor = patch · image merge, size.shortest_edge, size.longest_edge of
 *     preprocessor_config.json), bicubic; normalised with image_mean / image_std (0.5); patches in raster order
 *     (merge 1: one token per 14×14 patch); the prompt gets h·w `<|image_pad|>`;
 *   - videos: frames sampled by VideoLlama3VideoProcessor.sample_frames (sampling.ts) at the request's fps / nframes,
 *     else video_preprocessor_config.json's `fps` (1 when absent: the reference's default `do_sample_frames=False`
 *     would take every frame of the file); one pixel budget for the clip (`size.longest_edge // T` per frame, factor
 *     patch · 2); patches in merge-block order (temporal patch 1: no frame pairing);
 *   - DiffFP (VP `_get_compression_mask`, §8): a merged token of frame f > 0 is kept iff the mean |difference| of its
 *     4·588 normalised values from the same token of frame f − 1, times 255, exceeds 0.1; a frame keeping none keeps
 *     its first token. Computed here on the normalised pixels; `use_token_compression: false` in
 *     video_preprocessor_config.json (or `useTokenCompression = false` on the processor) keeps every token;
 *   - prompt: each `<|video_pad|>` of the template becomes, per frame, `Time {t:.1f}s:` (Python's round-half-even
 *     formatting) + the frame's pads, frames joined by ","; positions 1-D 0 … S−1.
 *
 * The plan comes from headers, before any pixel is decoded, so it counts every video token (an upper bound); the
 * engine (engine/visual-selection.ts) runs the vision encoder on every frame (as the reference), then
 * `selectVisualRows` keeps the DiffFP rows (`video_embeds[mask]`), and the dropped placeholders leave the prompt with
 * positions renumbered contiguously — the reference's prompt, which holds only the kept pads (§5).
 *
 * Request options: `fps` / `nframes` (sample_frames' fps / num_frames), `minFrames` / `maxFrames` (over the checkpoint's
 * min_frames / max_frames), `start` / `end` (the clip the frames are sampled from), the server's frame limit (a cap on
 * max_frames); `minPixels` replaces size.shortest_edge, `totalPixels` size.longest_edge (the clip's budget), and
 * `maxPixels` caps each frame on top of `budget // T` (the reference has no such cap). Images: `minPixels` /
 * `maxPixels` replace the image processor's bounds.
 *
 * Frame times are the sampled frames' indices / the video's average fps (VideoMetadata.timestamps), or their
 * presentation times when they differ (`frameTimes: "presentation"`, the default, as the other families). A video
 * given as a list of frames is used as given (every frame, at the part's fps, else 1 as the reference without metadata), unless
 * frame options are given: then it is sampled like a file.
 */
import { splitVisionBatch } from "../vision-chunks.js";
import { describeSource, frameList, isRgbImage, loadImage, stripUndefined, timesTable, videoUrl, type FrameListVideo } from "../media-parts.js";
import * as path from "node:path";
import type { VisionBatch, VisionOutput } from "../../engine/sessions.js";
import type { ContentPart, MediaOptions, MediaSource, PlanLimit, PreparedVisual, VideoPart, VisualPlan } from "../../engine/request.js";
import { DEFAULT_FRAME_CACHE_BYTES, FrameCache } from "../../engine/frame-cache.js";
import { readImageHeader } from "../../engine/image-header.js";
import { ConfigReader, LIMITS } from "../../checkpoint/config-values.js";
import { readBoundedJsonObject } from "../../checkpoint/json-file.js";
import { VideolmError } from "../../errors.js";
import type { FamilyProcessor, VisualSelection } from "../family.js";
import { decodeFrames } from "../../media/decode-frames.js";
import { frameSeconds, type FrameTable } from "../../media/frame-table.js";
import { probeVideo, type VideoProbe } from "../../media/probe.js";
import { withLocalVideoFile } from "../../media/sources.js";
import { patchifyFrames, visionPositionIds } from "../../processing/qwen2-vl-patches.js";
import { resizeBicubicAntialias } from "../../processing/resize.js";
import type { RgbImage } from "../../processing/rgb-image.js";
import type { TextTokenizer } from "../../text/tokenizer.js";
import type { ProgressCallback } from "../../util/progress.js";
import { formatSeconds1dp } from "../qwen3-vl/timestamps.js";
import { clipFrameSize, sampleFrames, videoLlama3SmartResize, type ClipBudget } from "./sampling.js";
import { MERGE_SIZE_INPUT } from "./vision.js";

/** What the processor needs from config.json (the family config provides it). */
export interface VideoLlama3ProcessorConfig {
  imageTokenId: number;
  videoTokenId: number;
  patchSize: number;
  /** LLM width: the rows of the vision outputs. */
  hiddenSize: number;
}

/** preprocessor_config.json / video_preprocessor_config.json fields the processor uses (class defaults when absent). */
export interface VideoLlama3ProcessorSettings {
  image: { minPixels: number; maxPixels: number; mergeSize: number; mean: [number, number, number]; std: [number, number, number] };
  video: {
    minPixels: number;
    /** size.longest_edge: the pixel budget of a whole clip. */
    clipPixels: number;
    mergeSize: number;
    mean: [number, number, number];
    std: [number, number, number];
    /** Sampling rate when the request gives neither fps nor nframes. */
    fps: number;
    minFrames: number;
    maxFrames: number;
    useTokenCompression: boolean;
  };
}

/** DiffFP constants (VP `_get_compression_mask` defaults; no config key sets them). */
export const DIFFFP_THRESHOLD = 0.1;
export const DIFFFP_MIN_TOKENS = 1;
/** IMAGENET_STANDARD_MEAN / _STD: the class defaults of both processors. */
const STANDARD_MEAN_STD: [number, number, number] = [0.5, 0.5, 0.5];

export function readVideoLlama3Settings(dir: string): VideoLlama3ProcessorSettings {
  const read = (file: string) => {
    const raw = readBoundedJsonObject(path.join(dir, file), undefined, true) ?? {};
    return new ConfigReader(raw, file);
  };
  const triple = (r: ConfigReader, key: string, positive: boolean): [number, number, number] => {
    const v = r.obj[key] ?? STANDARD_MEAN_STD;
    if (!Array.isArray(v) || v.length !== 3 || !v.every((x) => typeof x === "number" && Number.isFinite(x) && Math.abs(x) <= 1e6 && (!positive || x > 0))) {
      throw r.fail(key, `must list 3 ${positive ? "positive " : ""}numbers`, v);
    }
    return [v[0], v[1], v[2]];
  };
  const merge = (r: ConfigReader, fallback: number) => {
    const m = r.int("merge_size", LIMITS.mergeSize, fallback);
    // The bilinear 2× downscale equals a block mean only for m ∈ {1, 2} (vision.ts); other sizes are not implemented.
    if (m !== 1 && m !== 2) throw r.fail("merge_size", "must be 1 or 2 (the merges VideoLLaMA3 checkpoints use)", m);
    return m;
  };
  const sizes = (r: ConfigReader, min: number, max: number) => {
    const size = r.object("size");
    return {
      min: r.obj.min_pixels != null ? r.int("min_pixels", LIMITS.pixels) : size ? size.int("shortest_edge", LIMITS.pixels, min) : min,
      max: r.obj.max_pixels != null ? r.int("max_pixels", LIMITS.pixels) : size ? size.int("longest_edge", LIMITS.pixels, max) : max,
    };
  };
  const img = read("preprocessor_config.json");
  const vid = read("video_preprocessor_config.json");
  const tps = vid.int("temporal_patch_size", LIMITS.temporalPatchSize, 1);
  if (tps !== 1) throw vid.fail("temporal_patch_size", "must be 1 (VideoLLaMA3 patches frames one by one)", tps);
  const is = sizes(img, 3136, 1003520);
  const vs = sizes(vid, 100352, 602112);
  const maxFrames = vid.int("max_frames", { min: 1, max: 1 << 20 }, 180);
  return {
    // VideoLlama3ImageProcessor's class default merge_size is 1 (IP:85-104), as the released checkpoint's images.
    image: { minPixels: is.min, maxPixels: is.max, mergeSize: merge(img, 1), mean: triple(img, "image_mean", false), std: triple(img, "image_std", true) },
    video: {
      minPixels: vs.min,
      clipPixels: vs.max,
      mergeSize: merge(vid, 2),
      mean: triple(vid, "image_mean", false),
      std: triple(vid, "image_std", true),
      fps: vid.obj.fps == null ? 1 : vid.num("fps", { min: 0, max: 1000, exclusiveMin: true }),
      minFrames: vid.int("min_frames", { min: 1, max: maxFrames }, 4),
      maxFrames,
      useTokenCompression: vid.bool("use_token_compression", true),
    },
  };
}

/**
 * The DiffFP keep mask of one video's patch rows (VP `_get_compression_mask`): `pixelValues` [t·h·w, rowLength] in
 * merge-block order, so each merged token's m² patches are consecutive rows. Returns one flag per merged token,
 * frame-major, and the per-token scores d (mean |Δ| · 255; frame 0: Infinity).
 */
export function diffFpMask(pixelValues: Float32Array, grid: readonly [number, number, number], mergeSize: number): { keep: Uint8Array; scores: Float32Array } {
  const [t, h, w] = grid;
  const tokens = (h / mergeSize) * (w / mergeSize);
  const span = pixelValues.length / t / tokens; // m²·C·P·P values per merged token
  const keep = new Uint8Array(t * tokens);
  const scores = new Float32Array(t * tokens);
  const f32 = Math.fround;
  for (let k = 0; k < tokens; k++) {
    keep[k] = 1;
    scores[k] = Infinity;
  }
  for (let f = 1; f < t; f++) {
    let kept = 0;
    for (let k = 0; k < tokens; k++) {
      const a = (f * tokens + k) * span;
      const b = ((f - 1) * tokens + k) * span;
      let sum = 0;
      for (let i = 0; i < span; i++) sum += Math.abs(f32(pixelValues[a + i] - pixelValues[b + i]));
      const d = f32(f32(sum / span) * 255);
      scores[f * tokens + k] = d;
      if (d > DIFFFP_THRESHOLD) {
        keep[f * tokens + k] = 1;
        kept++;
      }
    }
    // Frames keeping fewer than min_tokens keep their first tokens (mask[f, :min_tokens] = True).
    if (kept < DIFFFP_MIN_TOKENS) for (let k = 0; k < DIFFFP_MIN_TOKENS && k < tokens; k++) keep[f * tokens + k] = 1;
  }
  return { keep, scores };
}

/** Frame rate of a list of frames whose part gives none: the reference's metadata-less default (P:165-171, timestamps = indices). */
const LIST_FPS = 1;

export class VideoLlama3Processor implements FamilyProcessor {
  readonly settings: VideoLlama3ProcessorSettings;
  /** DiffFP on (video_preprocessor_config.json `use_token_compression`); false keeps every video token. */
  useTokenCompression: boolean;
  /** Decoded, resized frames of recent videos by (source identity, sampled frames, size). */
  readonly frameCache = new FrameCache(DEFAULT_FRAME_CACHE_BYTES);
  /** The DiffFP masks computed in prepareVisual, by the batch they were computed from. */
  private readonly masks = new WeakMap<VisionBatch, Uint8Array>();

  constructor(
    checkpointDir: string,
    readonly cfg: VideoLlama3ProcessorConfig,
  ) {
    this.settings = readVideoLlama3Settings(checkpointDir);
    this.useTokenCompression = this.settings.video.useTokenCompression;
  }

  private get videoFactor(): number {
    return this.cfg.patchSize * this.settings.video.mergeSize;
  }

  /** Tokens one frame of a video of this size gives (before DiffFP). */
  private tokensPerFrame(height: number, width: number): number {
    return (height / this.videoFactor) * (width / this.videoFactor);
  }

  private imagePlan(source: string, width: number, height: number, part: { minPixels?: number; maxPixels?: number }, defaults: MediaOptions): VisualPlan {
    const s = this.settings.image;
    const p = this.cfg.patchSize;
    const [h, w] = videoLlama3SmartResize(height, width, p * s.mergeSize, part.minPixels ?? defaults.minPixels ?? s.minPixels, part.maxPixels ?? defaults.maxPixels ?? s.maxPixels);
    const grid: [number, number, number] = [1, h / p, w / p];
    return { kind: "image", source, grid, tokens: (grid[1] * grid[2]) / (s.mergeSize * s.mergeSize), size: [h, w] };
  }

  /** A video part's options over the request's. */
  private videoOptions(part: VideoPart, defaults: MediaOptions): MediaOptions {
    const { video: _video, type: _type, ...own } = part;
    return { ...defaults, ...stripUndefined(own) };
  }

  private budget(o: MediaOptions): ClipBudget {
    const v = this.settings.video;
    return { minPixels: o.minPixels ?? v.minPixels, clipPixels: o.totalPixels ?? v.clipPixels, ...(o.maxPixels !== undefined ? { maxPixels: o.maxPixels } : {}) };
  }

  /** Frame indices of a clip of `total` frames at `fps`, by the reference's sample_frames, within start/end. */
  private sample(total: number, fps: number, o: MediaOptions): { indices: number[]; range: { start: number; count: number }; limits: PlanLimit[] } {
    const v = this.settings.video;
    let start = 0;
    let end = total - 1;
    if (o.start !== undefined || o.end !== undefined) {
      start = Math.min(total - 1, Math.max(0, Math.ceil((o.start ?? 0) * fps)));
      end = Math.min(total - 1, o.end !== undefined ? Math.floor(o.end * fps) : total - 1);
      if (end < start) throw new VideolmError(`the clip range ${o.start ?? 0}–${o.end} s holds no frame of this ${total}-frame video`);
    }
    const count = end - start + 1;
    const limits: PlanLimit[] = [];
    let maxFrames = o.maxFrames ?? v.maxFrames;
    let frameLimited = false;
    if (o.frameLimit !== undefined && o.nframes === undefined && o.frameLimit < maxFrames) {
      maxFrames = o.frameLimit;
      frameLimited = true;
    }
    const sampleFps = o.fps ?? v.fps;
    const indices = sampleFrames(count, fps, o.nframes !== undefined ? { numFrames: o.nframes, minFrames: 1, maxFrames } : { fps: sampleFps, minFrames: o.minFrames ?? v.minFrames, maxFrames }).map((i) => i + start);
    if (o.nframes === undefined) {
      const wanted = Math.floor((count / fps) * sampleFps);
      if (wanted > maxFrames && indices.length <= maxFrames) {
        const name = frameLimited ? "frame_limit" : "max_frames";
        const source = frameLimited ? "server" : o.maxFrames !== undefined ? "request" : "checkpoint";
        limits.push({ name, value: maxFrames, source, note: `${name} ${maxFrames} (${source}): ${wanted} frames at ${+sampleFps.toFixed(3)} fps capped to ${indices.length}` });
      } else if (wanted < indices.length) {
        const source = o.minFrames !== undefined ? "request" : "checkpoint";
        limits.push({ name: "min_frames", value: o.minFrames ?? v.minFrames, source, note: `min_frames ${o.minFrames ?? v.minFrames} (${source}): ${wanted} frames at ${+sampleFps.toFixed(3)} fps raised to ${indices.length}` });
      }
    }
    if (o.start !== undefined || o.end !== undefined) limits.push({ name: "range", value: count, source: "request", note: `clip range frames ${start}–${end} (start/end)` });
    return { indices, range: { start, count }, limits };
  }

  private videoPlan(source: string, frames: number, height: number, width: number, o: MediaOptions, extra: Partial<VisualPlan>): VisualPlan {
    const [h, w] = clipFrameSize(height, width, frames, this.videoFactor, this.budget(o));
    const p = this.cfg.patchSize;
    const grid: [number, number, number] = [frames, h / p, w / p];
    return { kind: "video", source, grid, tokens: frames * this.tokensPerFrame(h, w), size: [h, w], ...extra };
  }

  async planVisual(part: ContentPart, defaults: MediaOptions, signal?: AbortSignal): Promise<VisualPlan | null> {
    if (part.type === "text") return null;
    if (part.type === "image") {
      const header = isRgbImage(part.image) ? part.image : await readImageHeader(part.image, defaults.maxInputPixels, signal);
      return this.imagePlan(describeSource(part.image), header.width, header.height, part, defaults);
    }
    if (part.type === "video") {
      const o = this.videoOptions(part, defaults);
      const list = frameList(part.video);
      if (list) {
        const sizes: { width: number; height: number }[] = [];
        for (const f of list.frames) sizes.push(isRgbImage(f) ? f : await readImageHeader(f, o.maxInputPixels, signal));
        return this.listPlan(list, sizes, o).plan;
      }
      const url = videoUrl(part.video as MediaSource);
      return withLocalVideoFile(url, { signal }, async (file) => {
        const probe = await probeVideo(file.path, { signal, maxInputPixels: o.maxInputPixels }, file.label);
        const table = await timesTable(file.path, probe, o, signal);
        return this.filePlan(describeSource(part.video), probe, table, o);
      });
    }
    throw new VideolmError(`unknown content part type ${JSON.stringify((part as { type?: unknown }).type)} (use text, image or video)`);
  }

  private listPlan(list: FrameListVideo, sizes: readonly { width: number; height: number }[], o: MediaOptions): { plan: VisualPlan; indices: number[] } {
    const fps = o.fps ?? list.fps ?? LIST_FPS;
    if (!(fps > 0)) throw new VideolmError(`the frame rate of a list of frames must be positive (got ${fps})`);
    const chosen = [o.nframes, o.minFrames, o.maxFrames, o.start, o.end].some((x) => x !== undefined) || (o.frameLimit !== undefined && sizes.length > o.frameLimit);
    // As given (every frame, the reference's do_sample_frames=False), or sampled like a file at `fps` when frame options are given.
    const sampled = chosen ? this.sample(sizes.length, fps, { ...o, fps: o.nframes === undefined ? fps : undefined }) : undefined;
    const indices = sampled?.indices ?? sizes.map((_, i) => i);
    const { width, height } = sizes[indices[0]];
    if (!indices.every((i) => sizes[i].width === width && sizes[i].height === height)) throw new VideolmError("all frames of a video must have the same size; give frames of one size");
    const plan = this.videoPlan(list.label, indices.length, height, width, o, {
      frameIndices: indices,
      timestamps: indices.map((i) => i / fps),
      sampleFps: fps,
      ...(sampled && sampled.limits.length > 0 ? { limits: sampled.limits } : {}),
    });
    return { plan, indices };
  }

  private filePlan(source: string, probe: VideoProbe, table: FrameTable | undefined, o: MediaOptions): VisualPlan {
    const fps = probe.avgFps;
    const { indices, range, limits } = this.sample(probe.frameCount, fps, o);
    // VideoMetadata.timestamps: index / fps; presentation times where they differ by more than one tick.
    const reference = indices.map((i) => i / fps);
    let timestamps = reference;
    if (table && (o.frameTimes ?? "presentation") === "presentation") {
      const unit = table.timeBase[0] / table.timeBase[1] + 1e-9;
      timestamps = indices.map((i, k) => (Math.abs(frameSeconds(table, i) - reference[k]) <= unit ? reference[k] : frameSeconds(table, i)));
    }
    const span = range.count / fps;
    return this.videoPlan(source, indices.length, probe.displayHeight, probe.displayWidth, o, {
      frameIndices: indices,
      timestamps,
      sampleFps: indices.length / span,
      ...(limits.length > 0 ? { limits } : {}),
      resample: { frameCount: probe.frameCount, fps, width: probe.displayWidth, height: probe.displayHeight, options: pickNumbers(o) },
    });
  }

  /** The grid a planned video file would get with at most `maxFrames` frames (and `maxPixels` per frame), without I/O. */
  gridWithMaxFrames(plan: VisualPlan, maxFrames: number, maxPixels?: number): [number, number, number] | undefined {
    const r = plan.resample;
    if (!r) return undefined;
    try {
      const o: MediaOptions = { ...(r.options as MediaOptions), nframes: undefined, maxFrames, ...(maxPixels !== undefined ? { maxPixels: Math.min(maxPixels, r.options.maxPixels ?? Infinity) } : {}) };
      const { indices } = this.sample(r.frameCount, r.fps, o);
      const [h, w] = clipFrameSize(r.height, r.width, indices.length, this.videoFactor, this.budget(o));
      return [indices.length, h / this.cfg.patchSize, w / this.cfg.patchSize];
    } catch {
      return undefined;
    }
  }

  /** Patches of an image (merge 1) or video (merge 2) and, for videos, the DiffFP mask kept for selectVisualRows. */
  private toVisual(plan: VisualPlan, frames: RgbImage[]): PreparedVisual {
    const s = plan.kind === "image" ? this.settings.image : this.settings.video;
    const m = s.mergeSize;
    const { pixelValues, grid } = patchifyFrames(frames, { patchSize: this.cfg.patchSize, temporalPatchSize: 1, mergeSize: m, mean: s.mean, std: s.std });
    const batch: VisionBatch = { pixelValues, grid, positionIds: visionPositionIds(grid, m), extraInputs: mergeInput(m) };
    if (plan.kind === "video") this.masks.set(batch, diffFpMask(pixelValues, grid, m).keep);
    return { ...plan, grid, batch };
  }

  private resizeTo(plan: VisualPlan) {
    const [h, w] = plan.size;
    return (img: RgbImage) => resizeBicubicAntialias(img, h, w);
  }

  async prepareVisual(part: ContentPart, defaults: MediaOptions, signal?: AbortSignal, onProgress?: ProgressCallback): Promise<PreparedVisual | null> {
    if (part.type === "text") return null;
    const t0 = performance.now();
    if (part.type === "image") {
      const image = isRgbImage(part.image) ? part.image : await loadImage(part.image, defaults.maxInputPixels, signal);
      const plan = this.imagePlan(describeSource(part.image), image.width, image.height, part, defaults);
      const frame = this.resizeTo(plan)(image);
      return { ...this.toVisual(plan, [frame]), decodeMs: performance.now() - t0 };
    }
    if (part.type === "video") {
      const o = this.videoOptions(part, defaults);
      const list = frameList(part.video);
      if (list) {
        const images: RgbImage[] = [];
        for (const f of list.frames) images.push(isRgbImage(f) ? f : await loadImage(f, o.maxInputPixels, signal));
        const { plan, indices } = this.listPlan(list, images, o);
        const resize = this.resizeTo(plan);
        return { ...this.toVisual(plan, indices.map((i) => resize(images[i]))), decodeMs: performance.now() - t0 };
      }
      const source = describeSource(part.video);
      const video = part.video as MediaSource;
      return withLocalVideoFile(videoUrl(video), { signal }, async (file) => {
        const probe = await probeVideo(file.path, { signal, maxInputPixels: o.maxInputPixels }, file.label);
        const table = await timesTable(file.path, probe, o, signal);
        const plan = this.filePlan(source, probe, table, o);
        const indices = plan.frameIndices!;
        const [h, w] = plan.size;
        const key = FrameCache.key(video, { kind: "video-llama-3", indices, size: [h, w], rotation: probe.rotation });
        let frames = this.frameCache.get(key);
        let decodeMs = 0;
        if (!frames) {
          const t1 = performance.now();
          frames = await decodeFrames(file.path, {
            indices,
            width: probe.width,
            height: probe.height,
            rotation: probe.rotation,
            demuxer: probe.demuxer,
            maxInputPixels: o.maxInputPixels,
            resize: { height: h, width: w, fn: this.resizeTo(plan) },
            label: file.label,
            signal,
            onProgress: onProgress && ((done: number, total: number) => onProgress({ task: `Decoding ${source}`, done, total, unit: "frames" as const })),
            table,
            frameCount: probe.frameCount,
          });
          decodeMs = performance.now() - t1;
          this.frameCache.set(key, frames);
        }
        return { ...this.toVisual(plan, frames), decodeMs };
      });
    }
    throw new VideolmError(`unknown content part type ${JSON.stringify((part as { type?: unknown }).type)} (use text, image or video)`);
  }

  /**
   * The rendered template with its placeholders expanded (P:152-181), tokenized; positions 0 … S−1. Each video pad
   * becomes per frame `Time {t:.1f}s:` + one pad, frames joined by ","; after tokenizing, each image pad is repeated
   * to the image's tokens and each frame's pad to the frame's (every planned) tokens. Exact: the pads are added tokens
   * the tokenizer splits out before BPE, so the text around a run of pads tokenizes the same whatever its length (≥ 1,
   * and DiffFP keeps at least one token per frame).
   */
  buildPrompt(promptText: string, tokenizer: TextTokenizer, visuals: readonly VisualPlan[]): { inputIds: number[]; positionIds: Int32Array; ropeDelta: number } {
    const IMAGE = "<|image_pad|>";
    const VIDEO = "<|video_pad|>";
    const images = visuals.filter((v) => v.kind === "image");
    const videos = visuals.filter((v) => v.kind === "video");
    const count = (s: string) => promptText.split(s).length - 1;
    const [ni, nv] = [count(IMAGE), count(VIDEO)];
    if (ni !== images.length || nv !== videos.length) {
      throw new VideolmError(
        `the prompt has ${ni} ${IMAGE} and ${nv} ${VIDEO} placeholder(s) but ${images.length} image(s) and ${videos.length} video(s) were given; each needs exactly one {"type": "image"} / {"type": "video"} content part`,
      );
    }
    let v = 0;
    const text = promptText.split(VIDEO).reduce((out, piece, i) => {
      if (i === 0) return piece;
      const video = videos[v++];
      const times = video.timestamps ?? video.frameIndices ?? Array.from({ length: video.grid[0] }, (_, k) => k);
      if (times.length !== video.grid[0]) throw new VideolmError(`video ${v} has ${times.length} frame times for ${video.grid[0]} frames`);
      return out + times.map((t) => `Time ${formatSeconds1dp(t)}s:${VIDEO}`).join(",") + piece;
    }, "");
    const ids = tokenizer.encode(text);
    const { imageTokenId, videoTokenId } = this.cfg;
    const inputIds: number[] = [];
    let image = 0;
    let video = 0;
    let frame = 0;
    for (const id of ids) {
      if (id === imageTokenId) {
        const plan = images[image++];
        if (!plan) throw new VideolmError(`the prompt holds more ${IMAGE} tokens than images: the text contains ${IMAGE}`);
        for (let k = 0; k < plan.tokens; k++) inputIds.push(id);
      } else if (id === videoTokenId) {
        const plan = videos[video];
        if (!plan) throw new VideolmError(`the prompt holds more ${VIDEO} tokens than video frames: the text contains ${VIDEO}`);
        const perFrame = plan.tokens / plan.grid[0];
        for (let k = 0; k < perFrame; k++) inputIds.push(id);
        if (++frame === plan.grid[0]) {
          video++;
          frame = 0;
        }
      } else inputIds.push(id);
    }
    if (image !== images.length || video !== videos.length) {
      throw new VideolmError(`the tokenizer does not map ${IMAGE} / ${VIDEO} to image_token_id ${imageTokenId} / video_token_id ${videoTokenId}`);
    }
    const positionIds = new Int32Array(inputIds.length);
    for (let i = 0; i < positionIds.length; i++) positionIds[i] = i;
    return { inputIds, positionIds, ropeDelta: 0 };
  }

  /** The batch split into batches of whole frames with at most `maxPatches` patches each (at least one frame). */
  visionChunks(batch: VisionBatch, maxPatches: number): VisionBatch[] {
    return splitVisionBatch(batch, maxPatches);
  }


  /**
   * DiffFP after the vision pass (VideoLlama3Model.forward: `video_embeds[video_compression_mask]`): every video's
   * kept rows and per-frame report; images keep every row. `visuals` are the prepared visuals (with their batches).
   */
  selectVisualRows(outputs: readonly VisionOutput[], visuals: readonly VisualPlan[], _media: MediaOptions): VisualSelection {
    const D = this.cfg.hiddenSize;
    const rows: Float32Array[] = [];
    const keep: Uint8Array[] = [];
    const units: VisualSelection["report"]["units"] = [];
    let planned = 0;
    let kept = 0;
    visuals.forEach((v, i) => {
      const embeds = outputs[i].embeds;
      const n = embeds.length / D;
      if (n !== v.tokens) throw new VideolmError(`the vision encoder gave ${n} rows for visual ${i}, its plan has ${v.tokens}`);
      planned += n;
      if (v.kind === "image" || !this.useTokenCompression) {
        rows.push(embeds);
        keep.push(new Uint8Array(n).fill(1));
        kept += n;
        return;
      }
      const mask = this.maskOf(v);
      const out = new Float32Array(mask.reduce((a, b) => a + b, 0) * D);
      let o = 0;
      for (let r = 0; r < n; r++) if (mask[r]) out.set(embeds.subarray(r * D, (r + 1) * D), o++ * D);
      rows.push(out);
      keep.push(mask);
      kept += o;
      const perFrame = n / v.grid[0];
      for (let f = 0; f < v.grid[0]; f++) {
        let k = 0;
        for (let r = f * perFrame; r < (f + 1) * perFrame; r++) k += mask[r];
        units.push({ visual: i, index: f, score: k / perFrame, reduced: k < perFrame, tokens: k });
      }
    });
    return {
      rows,
      keep,
      rule: "renumber",
      report: {
        method: this.useTokenCompression ? "VideoLLaMA3 DiffFP" : "VideoLLaMA3 DiffFP (off)",
        plannedTokens: planned,
        keptTokens: kept,
        units,
        parameters: this.useTokenCompression ? { threshold: DIFFFP_THRESHOLD, min_tokens: DIFFFP_MIN_TOKENS } : {},
        scoreName: "kept fraction",
      },
    };
  }

  /** The mask prepareVisual computed for this visual's batch; recomputed from its pixels if the batch was copied. */
  private maskOf(v: VisualPlan): Uint8Array {
    const batch = (v as Partial<PreparedVisual>).batch;
    if (!batch) throw new VideolmError("DiffFP needs the prepared video's pixels (a plan has none)");
    let mask = this.masks.get(batch);
    if (!mask) {
      mask = diffFpMask(batch.pixelValues, batch.grid, this.settings.video.mergeSize).keep;
      this.masks.set(batch, mask);
    }
    return mask;
  }
}

function mergeInput(m: number): VisionBatch["extraInputs"] {
  return { [MERGE_SIZE_INPUT]: { dims: [1], data: [m] } };
}









/** The numeric options of a plan (what `resample` keeps to re-plan without I/O). */
function pickNumbers(o: MediaOptions): Record<string, number | undefined> {
  const keys = ["fps", "nframes", "minFrames", "maxFrames", "minPixels", "maxPixels", "totalPixels", "start", "end", "frameLimit"] as const;
  return Object.fromEntries(keys.filter((k) => o[k] !== undefined).map((k) => [k, o[k] as number]));
}
