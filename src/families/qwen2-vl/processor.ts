/**
 * Qwen2-VL request processing, as the authors' pipeline does it: qwen-vl-utils samples and resizes the media,
 * then the transformers 4.57.6 Qwen2VLProcessor normalises, patches, and expands the placeholders; the 3-D
 * positions follow `Qwen2VLModel.get_rope_index`.
 */
import { splitVisionBatch } from "../vision-chunks.js";
import { describeSource, isRgbImage, stripUndefined } from "../media-parts.js";
import type { VisionBatch, VisionOutput } from "../../engine/sessions.js";
import { evsSelection } from "../../engine/evs.js";
import type { ProgressCallback } from "../../util/progress.js";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import type { ContentPart, MediaOptions, PlanLimit, PreparedVisual, VideoPart, VisualPlan } from "../../engine/request.js";
import { DEFAULT_FRAME_CACHE_BYTES, FrameCache } from "../../engine/frame-cache.js";
import { readImageHeader } from "../../engine/image-header.js";
import { ConfigReader, LIMITS } from "../../checkpoint/config-values.js";
import { readBoundedJsonObject } from "../../checkpoint/json-file.js";
import { VideolmError } from "../../errors.js";
import type { FamilyProcessor, VisualSelection } from "../family.js";
import { decodeImage } from "../../media/image.js";
import { fetchImage, loadFrameList } from "../../media/frame-list.js";
import { withLocalVideoFile } from "../../media/sources.js";
import { loadVideo, planVideo, type LoadedVideo } from "../../media/video.js";
import { patchifyFrames, visionPositionIds } from "../../processing/qwen2-vl-patches.js";
import type { RgbImage } from "../../processing/rgb-image.js";
import { smartResize } from "../../processing/smart-resize.js";
import { planVideoFrameSize, planVideoSampling, qwenVlUtilsDefaults, type SamplingDefaults, type VideoSamplingOptions, type VideoSamplingPlan } from "../../sampling/qwen-vl-utils.js";
import { checkPolicyOptions, describePolicyPlan, SAMPLING_POLICIES, seedOptionsOf } from "../../sampling/policy.js";
import type { SeedSamplingPlan } from "../../sampling/seed-1-5.js";
import type { TextTokenizer } from "../../text/tokenizer.js";
import type { Qwen2VLConfig, Qwen2VLVisionConfig } from "./config.js";
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

/** What the Qwen-VL processors read from a config: the vision shapes and the special token ids (no text shapes). */
export type QwenVLProcessorConfig<V extends Qwen2VLVisionConfig = Qwen2VLVisionConfig> = Pick<Qwen2VLConfig, "imageTokenId" | "videoTokenId" | "visionStartTokenId"> & { vision: V };

export class Qwen2VLProcessor implements FamilyProcessor {
  readonly pre: Qwen2VLPreprocessorConfig;
  readonly sampling: SamplingDefaults;
  /** Decoded, resized frames of recent videos by (source identity, plan): a second request skips decoding. */
  readonly frameCache = new FrameCache(DEFAULT_FRAME_CACHE_BYTES);

  constructor(
    checkpointDir: string,
    readonly config: QwenVLProcessorConfig,
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
      grid,
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
    return splitVisionBatch(batch, maxPatches, (grid) => this.extraVisionInputs(grid));
  }


  /** Per-image pixel bounds of a part (Qwen3-VL overrides the fallbacks). */
  protected imagePixelBounds(part: { minPixels?: number; maxPixels?: number }, defaults: MediaOptions): { minPixels: number; maxPixels: number } {
    return { minPixels: part.minPixels ?? defaults.minPixels ?? this.pre.minPixels, maxPixels: part.maxPixels ?? defaults.maxPixels ?? this.pre.maxPixels };
  }

  /** A video part's options over the request's, and the qwen-vl-utils sampling options they give. */
  private videoOptions(part: VideoPart, defaults: MediaOptions) {
    const { video: _video, type: _type, ...own } = part;
    const o: MediaOptions = { ...defaults, ...stripUndefined(own) };
    const sampling: VideoSamplingOptions = {
      nframes: o.nframes,
      minFrames: o.minFrames,
      maxFrames: o.maxFrames,
      videoStart: o.start,
      videoEnd: o.end,
      minPixels: o.minPixels,
      maxPixels: o.maxPixels,
      totalPixels: o.totalPixels,
    };
    // The server's --max-frames: a cap on top of whatever applies, never a default that raises it.
    let frameLimited = false;
    if (o.frameLimit !== undefined && o.nframes === undefined && o.frameLimit < (o.maxFrames ?? this.sampling.maxFrames)) {
      sampling.maxFrames = o.frameLimit;
      frameLimited = true;
    }
    // A named sampling policy (MediaOptions.policy) replaces qwen-vl-utils' frame and size choice (sampling/policy.ts).
    checkPolicyOptions(o);
    const seedPolicy = o.policy !== undefined ? seedOptionsOf(o) : undefined;
    return { o, sampling, frameLimited, own: stripUndefined(own) as MediaOptions, seedPolicy };
  }

  /**
   * The plan of an image or video part from headers alone — sampled frames, times, resized size, grid, tokens and the
   * limits that shaped them — without decoding a pixel. `prepareVisual` realises the same plan.
   */
  async planVisual(part: ContentPart, defaults: MediaOptions, signal?: AbortSignal): Promise<VisualPlan | null> {
    if (part.type === "text") return null;
    if (part.type === "image") {
      const source = describeSource(part.image);
      const header = isRgbImage(part.image) ? part.image : await readImageHeader(part.image, defaults.maxInputPixels, signal);
      const bounds = this.imagePixelBounds(part, defaults);
      const [h, w] = smartResize(header.height, header.width, { factor: this.sampling.factor, minPixels: bounds.minPixels, maxPixels: bounds.maxPixels });
      return this.planOf("image", source, 1, h, w);
    }
    if (part.type === "video") {
      const { video } = part;
      const { o, sampling, frameLimited, own, seedPolicy } = this.videoOptions(part, defaults);
      if (seedPolicy) refusePolicyForFrameList(video);
      if (Array.isArray(video) || isRawFrames(video)) {
        const list = Array.isArray(video) ? video.map((f) => (f instanceof URL ? fileURLToPath(f) : f)) : video.frames;
        const fps = Array.isArray(video) ? o.fps : (o.fps ?? video.fps);
        const sizes: { width: number; height: number }[] = [];
        for (const f of list) sizes.push(typeof f === "string" || Buffer.isBuffer(f) ? await readImageHeader(f, o.maxInputPixels, signal) : f);
        const plan = planFrameList(sizes, fps, sampling, this.sampling);
        return this.planOf("video", Array.isArray(video) ? `${video.length} frames` : `${video.frames.length} raw frames`, plan.count, plan.height, plan.width, {
          frameIndices: plan.frameIndices,
          timestamps: plan.timestamps,
          sampleFps: plan.sampleFps,
          secondPerGrid: this.config.vision.temporalPatchSize / plan.sampleFps,
        });
      }
      const source = describeSource(video);
      const url = video instanceof URL ? video.href : Buffer.isBuffer(video) ? `data:video/mp4;base64,${video.toString("base64")}` : video;
      const { probe, plan, policy } = await planVideo(url, { ...sampling, fps: o.fps, defaults: this.sampling, maxInputPixels: o.maxInputPixels, frameTimes: o.frameTimes, seedPolicy, signal });
      const frames = { frameCount: probe.frameCount, fps: probe.avgFps, width: probe.displayWidth, height: probe.displayHeight };
      return this.planOf("video", source, plan.nframes, plan.resizedHeight, plan.resizedWidth, {
        frameIndices: plan.frameIndices,
        timestamps: plan.timestamps,
        sampleFps: plan.sampleFps,
        secondPerGrid: this.config.vision.temporalPatchSize / plan.sampleFps,
        // A policy's plan is its own: no qwen-vl-utils limits, and not re-sampled with other limits to fit the context.
        ...(policy
          ? { policy, limits: policyLimits(policy) }
          : { limits: this.videoLimits(own, defaults, { ...sampling, fps: o.fps }, frameLimited, frames, plan), resample: { ...frames, options: { ...sampling, fps: o.fps } } }),
      });
    }
    throw new VideolmError(`unknown content part type ${JSON.stringify((part as { type?: unknown }).type)} (use text, image or video)`);
  }

  /**
   * The grid a planned video file would get with at most `maxFrames` frames (and, when given, at most `maxPixels`
   * pixels per frame), same options otherwise, from the probe facts kept in the plan: no I/O. Undefined for visuals
   * that cannot be re-sampled (images, frame lists) or when the options are not possible.
   */
  gridWithMaxFrames(plan: VisualPlan, maxFrames: number, maxPixels?: number): [number, number, number] | undefined {
    const r = plan.resample;
    if (!r) return undefined;
    const options: VideoSamplingOptions = { ...(r.options as VideoSamplingOptions), maxFrames, nframes: undefined };
    if (maxPixels !== undefined) {
      if (maxPixels < (options.minPixels ?? this.sampling.videoMinPixels)) return undefined;
      options.maxPixels = Math.min(maxPixels, options.maxPixels ?? Infinity);
    }
    try {
      const p = planVideoSampling(options, r, this.sampling);
      return this.gridOf(p.nframes, p.resizedHeight, p.resizedWidth);
    } catch {
      return undefined;
    }
  }

  private gridOf(frames: number, height: number, width: number): [number, number, number] {
    const v = this.config.vision;
    return [Math.ceil(frames / v.temporalPatchSize), height / v.patchSize, width / v.patchSize];
  }

  private planOf(kind: "image" | "video", source: string, frames: number, height: number, width: number, extra: Partial<VisualPlan> = {}): VisualPlan {
    const grid = this.gridOf(frames, height, width);
    return { kind, source, grid, tokens: visualTokenCount(grid, this.config.vision.spatialMergeSize), size: [height, width], ...extra };
  }

  /** Which limits shaped a video's plan: frame count caps and floors, frame size caps and floors. */
  private videoLimits(
    own: MediaOptions,
    defaults: MediaOptions,
    sampling: VideoSamplingOptions,
    frameLimited: boolean,
    video: { frameCount: number; fps: number; width: number; height: number },
    plan: VideoSamplingPlan,
  ): PlanLimit[] {
    const d = this.sampling;
    const base = qwenVlUtilsDefaults(this.config.vision.patchSize);
    const whose = (key: keyof MediaOptions, checkpointValue: number, defaultValue: number): PlanLimit["source"] =>
      own[key] !== undefined || defaults[key] !== undefined ? "request" : checkpointValue !== defaultValue ? "checkpoint" : "default";
    const limits: PlanLimit[] = [];
    if (sampling.nframes === undefined) {
      const fps = sampling.fps ?? d.fps;
      const wanted = (plan.range.count / video.fps) * fps;
      const maxFrames = sampling.maxFrames ?? d.maxFrames;
      const minFrames = sampling.minFrames ?? d.minFrames;
      if (wanted > maxFrames && plan.nframes <= maxFrames && plan.nframes < Math.min(plan.range.count, Math.floor(wanted))) {
        const source = frameLimited ? "server" : whose("maxFrames", d.maxFrames, base.maxFrames);
        const name = frameLimited ? "frame_limit" : "max_frames";
        limits.push({ name, value: maxFrames, source, note: `${name} ${maxFrames} (${source}): ${Math.floor(wanted)} frames at ${+fps.toFixed(3)} fps capped to ${plan.nframes}` });
      } else if (wanted < minFrames && plan.nframes >= Math.min(minFrames, plan.range.count) && plan.nframes > Math.floor(wanted)) {
        const source = whose("minFrames", d.minFrames, base.minFrames);
        limits.push({ name: "min_frames", value: minFrames, source, note: `min_frames ${minFrames} (${source}): ${Math.floor(wanted)} frames at ${+fps.toFixed(3)} fps raised to ${plan.nframes}` });
      }
    }
    if (sampling.videoStart !== undefined || sampling.videoEnd !== undefined) {
      limits.push({ name: "range", value: plan.range.count, source: "request", note: `clip range frames ${plan.range.start}–${plan.range.end} (start/end)` });
    }
    const pixels = video.width * video.height;
    if (pixels > plan.maxPixels) {
      const userMax = sampling.maxPixels;
      const perFrameDefault = Math.max(d.videoMaxPixels, Math.trunc(plan.minPixels * 1.05));
      const byUser = userMax !== undefined && userMax <= plan.maxPixels;
      const byTotal = !byUser && plan.maxPixels < perFrameDefault;
      const [name, source] = byUser
        ? (["max_pixels", "request"] as const)
        : byTotal
          ? (["total_pixels", whose("totalPixels", d.videoTotalPixels, base.videoTotalPixels)] as const)
          : (["max_pixels", whose("maxPixels", d.videoMaxPixels, base.videoMaxPixels)] as const);
      const value = name === "total_pixels" ? (sampling.totalPixels ?? d.videoTotalPixels) : plan.maxPixels;
      limits.push({ name, value: Math.round(value), source, note: `${name} ${Math.round(value)} (${source}): ${video.width}×${video.height} frames resized to ${plan.resizedWidth}×${plan.resizedHeight}` });
    } else if (pixels < plan.minPixels) {
      const source = whose("minPixels", d.videoMinPixels, base.videoMinPixels);
      limits.push({ name: "min_pixels", value: plan.minPixels, source, note: `min_pixels ${plan.minPixels} (${source}): ${video.width}×${video.height} frames enlarged to ${plan.resizedWidth}×${plan.resizedHeight}` });
    }
    return limits;
  }

  /** Loads (or takes from the frame cache), samples and patches an image/video part: the plan, realised. */
  async prepareVisual(part: ContentPart, defaults: MediaOptions, signal?: AbortSignal, onProgress?: ProgressCallback): Promise<PreparedVisual | null> {
    if (part.type === "text") return null;
    if (part.type === "image") {
      const source = describeSource(part.image);
      const t0 = performance.now();
      const image = isRgbImage(part.image) ? part.image : await loadImage(part.image, defaults.maxInputPixels, signal);
      // qwen-vl-utils fetch_image (the authors' pipeline); the processor's own resize is then the identity.
      const resized = fetchImage(image, this.imagePixelBounds(part, defaults), this.sampling);
      const decodeMs = performance.now() - t0;
      // One frame: patchifyFrames repeats it to fill the temporal patch (two identical frames), as the reference.
      return { ...this.toVisual("image", source, [resized]), decodeMs };
    }
    if (part.type === "video") {
      const { video } = part;
      const { o, sampling, frameLimited, own, seedPolicy } = this.videoOptions(part, defaults);
      if (seedPolicy) refusePolicyForFrameList(video);
      let loaded: { frames: RgbImage[]; frameIndices: number[]; timestamps: number[]; sampleFps: number };
      let source: string;
      let limits: PlanLimit[] | undefined;
      let resample: VisualPlan["resample"];
      let policy: SeedSamplingPlan | undefined;
      const t0 = performance.now();
      let decodeMs: number;
      if (Array.isArray(video)) {
        loaded = await loadFrameList(video.map((f) => (f instanceof URL ? fileURLToPath(f) : f)), o.fps, sampling, this.sampling, { maxInputPixels: o.maxInputPixels });
        source = `${video.length} frames`;
        decodeMs = performance.now() - t0;
      } else if (isRawFrames(video)) {
        loaded = await loadFrameList(video.frames, o.fps ?? video.fps, sampling, this.sampling);
        source = `${video.frames.length} raw frames`;
        decodeMs = 0;
      } else {
        source = describeSource(video);
        const url = video instanceof URL ? video.href : Buffer.isBuffer(video) ? `data:video/mp4;base64,${video.toString("base64")}` : video;
        const loadOptions = {
          ...sampling,
          fps: o.fps,
          defaults: this.sampling,
          maxInputPixels: o.maxInputPixels,
          frameTimes: o.frameTimes,
          seedPolicy,
          signal,
          onProgress: onProgress && ((done: number, total: number) => onProgress({ task: `Decoding ${source}`, done, total, unit: "frames" as const })),
        };
        // A local file or in-memory bytes: probe (cheap), then reuse the frames decoded for the same plan before.
        const cacheable = this.frameCache.maxBytes > 0 && FrameCache.key(video, "") !== undefined;
        const planned = cacheable ? await planVideo(url, loadOptions) : undefined;
        const key = planned && FrameCache.key(video, { kind: "video", indices: planned.plan.frameIndices, size: [planned.plan.resizedHeight, planned.plan.resizedWidth], rotation: planned.probe.rotation });
        const cached = this.frameCache.get(key);
        let result: LoadedVideo | undefined;
        if (cached && planned) {
          result = { ...planned, frames: cached, frameIndices: planned.plan.frameIndices, timestamps: planned.plan.timestamps, sampleFps: planned.plan.sampleFps };
          decodeMs = 0;
        } else {
          const t1 = performance.now();
          result = await loadVideo(url, loadOptions);
          decodeMs = performance.now() - t1;
          this.frameCache.set(key, result.frames);
        }
        loaded = result;
        const frames = { frameCount: result.probe.frameCount, fps: result.probe.avgFps, width: result.probe.displayWidth, height: result.probe.displayHeight };
        policy = result.policy;
        if (policy) {
          limits = policyLimits(policy);
        } else {
          limits = this.videoLimits(own, defaults, { ...sampling, fps: o.fps }, frameLimited, frames, result.plan);
          resample = { ...frames, options: { ...sampling, fps: o.fps } };
        }
      }
      return {
        ...this.toVisual("video", source, loaded.frames, {
          frameIndices: loaded.frameIndices,
          timestamps: loaded.timestamps,
          sampleFps: loaded.sampleFps,
          secondPerGrid: this.config.vision.temporalPatchSize / loaded.sampleFps,
          ...(limits ? { limits } : {}),
          ...(resample ? { resample } : {}),
          ...(policy ? { policy } : {}),
        }),
        decodeMs,
      };
    }
    throw new VideolmError(`unknown content part type ${JSON.stringify((part as { type?: unknown }).type)} (use text, image or video)`);
  }

  /** EVS pruning (engine/evs.ts) for videos that ask for it. */
  readonly evsPruning: boolean = true;

  /** Named sampling policies its videos can be planned by (MediaOptions.policy; sampling/policy.ts). */
  readonly samplingPolicies: readonly string[] = SAMPLING_POLICIES;

  /** EVS pruning runs only for videos that ask for it (VisualPlan.prune); other requests keep the pipeline. */
  selectsVisualRows(visuals: readonly VisualPlan[]): boolean {
    return visuals.some((v) => v.kind === "video" && (v.prune ?? 0) > 0);
  }

  /**
   * EVS (engine/evs.ts, vLLM's rule) on each video that asks for it: its post-merger rows are compared with the same
   * position one temporal patch (frame pair) earlier. vLLM's prompt for such a video holds exactly the retained count
   * of video pads: one block for Qwen2.5-VL (qwen2_5_vl.py); for Qwen3-VL it lumps them into the first frame's
   * placeholder and, after the vision pass, fills the whole video span with each frame's timestamp text and its kept
   * rows (qwen3_vl.py `_create_final_video_embeddings`), which is this compacted prompt. The planned prompt is compacted
   * to the kept pads, each kept token keeping its planned (t, h, w) position.
   */
  selectVisualRows(outputs: readonly VisionOutput[], visuals: readonly VisualPlan[], _media: MediaOptions): VisualSelection {
    return evsSelection(outputs, visuals, this.config.vision.spatialMergeSize);
  }

  buildPrompt(promptText: string, tokenizer: TextTokenizer, visuals: readonly VisualPlan[]) {
    const c = this.config;
    const rendered = tokenizer.encode(promptText);
    const ropeVisuals = visuals.map((v) => ({ kind: v.kind, grid: v.grid }));
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

/**
 * The plan of a video given as a list of frames, from their sizes (headers) alone: what loadFrameList (media/
 * frame-list.ts, qwen-vl-utils' list branch of fetch_video) does to the pixels — fetch_image's smart_resize of every
 * frame within the image bounds, padding to the temporal factor, the video per-frame budget — applied to sizes.
 */
function planFrameList(sizes: readonly { width: number; height: number }[], fps: number | undefined, options: VideoSamplingOptions, defaults: SamplingDefaults) {
  if (sizes.length === 0) throw new VideolmError("a video given as a list of frames needs at least one frame");
  if (options.nframes !== undefined || options.videoStart !== undefined || options.videoEnd !== undefined) {
    throw new VideolmError("nframes / start / end apply to video files; a list of frames is used as given (pass fewer frames instead)");
  }
  const sampleFps = fps ?? 2.0;
  if (!(sampleFps > 0)) throw new VideolmError(`the frame rate of a list of frames must be positive (got ${fps})`);
  const fetched = sizes.map((s) =>
    smartResize(s.height, s.width, { factor: defaults.factor, minPixels: options.minPixels ?? defaults.imageMinPixels, maxPixels: options.maxPixels ?? defaults.imageMaxPixels }),
  );
  const [h0, w0] = fetched[0];
  if (!fetched.every(([h, w]) => h === h0 && w === w0)) throw new VideolmError("all frames of a video must have the same size after resizing; give frames of one size");
  const count = Math.ceil(sizes.length / defaults.frameFactor) * defaults.frameFactor;
  const size = planVideoFrameSize(options, h0, w0, count, defaults);
  const frameIndices = Array.from({ length: count }, (_, i) => i);
  return { count, height: size.height, width: size.width, frameIndices, timestamps: frameIndices.map((i) => i / sampleFps), sampleFps };
}

/** A policy samples a video file; a list of frames (or raw frames) is used as given. */
function refusePolicyForFrameList(video: VideoPart["video"]): void {
  if (Array.isArray(video) || isRawFrames(video)) {
    throw new VideolmError("a sampling policy (policy seed1.5) samples video files; a list of frames is used as given: pass a video file, or leave the policy out");
  }
}

/** The limit that shaped a policy's plan from outside: the server's frame limit, when it capped the count. */
function policyLimits(p: SeedSamplingPlan): PlanLimit[] {
  if (!p.frameLimited) return [];
  return [{ name: "frame_limit", value: p.frameIndices.length, source: "server", note: `frame_limit ${p.frameIndices.length} (server): ${describePolicyPlan(p)}` }];
}

function isRawFrames(x: unknown): x is { frames: RgbImage[]; fps: number } {
  return typeof x === "object" && x !== null && Array.isArray((x as { frames?: unknown }).frames);
}




