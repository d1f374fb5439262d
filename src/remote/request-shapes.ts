/**
 * The chat-completion body each backend kind gets for a planned request (docs/remote-backends.md says why each):
 *
 *   videolm  video_url = the media (upload://ID, or the http(s)/data: URL as given) + videolm's per-part options
 *            (fps, max_frames, …, the plan's fitted max_frames included), so the remote plans exactly the same
 *   vllm     Qwen2-VL / Qwen2.5-VL: video_url = "data:video/jpeg;base64,F1,F2,…" (the planned frames, JPEG) and
 *            top-level mm_processor_kwargs {"fps": [sample fps per video]} — the Qwen2.5-VL README's
 *            `prepare_message_for_vllm` (QwenLM/Qwen2.5-VL README "For videos, you can use the chat API as
 *            follows", as kept in QwenLM/Qwen3-VL@d2240f1 README.md lines 800–884): vLLM then samples nothing
 *            and second_per_grid = temporal_patch_size / fps keeps the time-aligned M-RoPE ids.
 *            Qwen3-VL / Qwen3.5: video_url = the video itself and mm_processor_kwargs {"fps": F,
 *            "do_sample_frames": true} — QwenLM/Qwen3-VL@9658872 README.md lines 934–977, "Video Request Example"
 *            (vLLM started with --media-io-kwargs '{"video": {"num_frames": -1}}'); video/jpeg
 *            frames carry no metadata there and fail (QwenLM/Qwen3-VL#1643, #1762); the timestamps come from the
 *            file. F is the plan's sampling rate, so vLLM samples as many frames as the plan.
 *            Other families: the planned frames as "video/jpeg", no processor kwargs.
 *   sglang, openai
 *            each planned frame as an image_url (data:image/jpeg), after a text part with its time "[t second]"
 *            (Seed1.5-VL's convention: OpenAI documents none for video frames)
 *   seed     the frames Seed1.5-VL's own sampling picks (the seed1.5 policy: seed-frames.ts), each as the text
 *            f'[{timestamp} second]' then an image_url with "detail": "high", exactly as
 *            ByteDance-Seed/Seed1.5-VL@f952f84 GradioDemo/infer.py `construct_messages` builds them
 */
import { readFile } from "node:fs/promises";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import type { ChatRequestMessage, ContentPart, ImagePart, MediaOptions, MediaSource, PreparedVisual, VideoPart, VisualPlan } from "../engine/request.js";
import { VideolmError } from "../errors.js";
import { frameList, isRgbImage } from "../families/media-parts.js";
import type { ResponseFormat } from "../generation/constrained/response-format.js";
import type { GenerationOptions } from "../generation/options.js";
import type { RgbImage } from "../processing/rgb-image.js";
import { framesOfVisual, type Normalisation } from "../server/thumbnails.js";
import type { BackendKind } from "./backend-kind.js";
import { frameJpeg } from "./frame-jpeg.js";
import { seedVideoParts } from "./seed-frames.js";

/** Families whose vLLM processor reads the time of each frame from the file (Qwen3-VL's timestamps). */
const VIDEO_FILE_FAMILIES = new Set(["qwen3_vl", "qwen3_vl_moe", "qwen3_5"]);
/** Families whose vLLM processor takes pre-sampled frames plus their fps (time-aligned M-RoPE from fps). */
const FPS_FRAME_FAMILIES = new Set(["qwen2_vl", "qwen2_5_vl"]);

export interface ShapeInput {
  kind: BackendKind;
  /** The model id the backend serves (the body's `model`). */
  model: string;
  /** config.json model_type of the planning checkpoint (vLLM's shape depends on the family). */
  modelType?: string;
  messages: ChatRequestMessage[];
  /** Every image/video part's plan, in message order; PreparedVisuals (with pixels) for the kinds that send frames. */
  visuals?: readonly (VisualPlan | PreparedVisual)[];
  /** Request-wide media options (each part's own options win), as for the local engine. */
  media: MediaOptions;
  generation: Partial<GenerationOptions>;
  thinkingBudget?: number;
  /** Constrained output: json_object / json_schema as OpenAI's response_format (every kind); a regex where supported. */
  responseFormat?: ResponseFormat;
  /** Told when a constraint cannot be sent to this kind (the answer is then generated without it). */
  onUnconstrained?: (message: string) => void;
  /** videolm: the URL each local media source was uploaded to (upload://ID). */
  uploaded?: ReadonlyMap<unknown, string>;
  /** The checkpoint's pixel normalisation (to recover frames from prepared pixels). */
  normalisation?: Normalisation;
  signal?: AbortSignal;
}

/** Whether a kind sends the planned frames (and so needs them decoded locally). */
export function sendsFrames(kind: BackendKind, modelType?: string): boolean {
  if (kind === "videolm" || kind === "seed") return false; // seed: sampled by its own policy (seed-frames.ts)
  return !(kind === "vllm" && modelType !== undefined && VIDEO_FILE_FAMILIES.has(modelType));
}

/** Seed1.5-VL's frame time text: Python's `f'[{round(t, 1)} second]'` (a float: "0.0", "1.5", "12.0"). */
export function secondText(seconds: number): string {
  const r = Math.round(seconds * 10) / 10;
  return `[${Number.isInteger(r) ? r.toFixed(1) : String(r)} second]`;
}

const SNAKE: Record<string, string> = {
  fps: "fps",
  nframes: "nframes",
  minFrames: "min_frames",
  maxFrames: "max_frames",
  minPixels: "min_pixels",
  maxPixels: "max_pixels",
  totalPixels: "total_pixels",
  start: "start",
  end: "end",
  frameTimes: "frame_times",
  prune: "prune",
  policy: "policy",
  policyTask: "policy_task",
};

/** A video part's options for videolm's wire format: the request's media defaults under the part's own. */
export function videolmVideoOptions(part: VideoPart, media: MediaOptions): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, wire] of Object.entries(SNAKE)) {
    const v = (part as unknown as Record<string, unknown>)[key] ?? (media as Record<string, unknown>)[key];
    if (v !== undefined) out[wire] = v;
  }
  return out;
}

function mimeOf(file: string, kind: "image" | "video"): string {
  const ext = path.extname(file).toLowerCase();
  const table: Record<string, string> =
    kind === "image"
      ? { ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp", ".bmp": "image/bmp", ".gif": "image/gif", ".tif": "image/tiff", ".tiff": "image/tiff" }
      : { ".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime", ".webm": "video/webm", ".mkv": "video/x-matroska", ".avi": "video/x-msvideo" };
  return table[ext] ?? (kind === "image" ? "image/png" : "video/mp4");
}

/** The URL a backend can read for a media source: remote URLs as given, local files and bytes inline (data:). */
async function mediaUrl(source: MediaSource | RgbImage, kind: "image" | "video"): Promise<string> {
  if (isRgbImage(source)) return jpegDataUrl(source, "png");
  if (Buffer.isBuffer(source)) return `data:${kind === "image" ? "image/png" : "video/mp4"};base64,${source.toString("base64")}`;
  const s = source instanceof URL ? source.href : source;
  if (/^(https?|data):/i.test(s)) return s;
  const file = /^file:/i.test(s) ? fileURLToPath(s) : s;
  let data: Buffer;
  try {
    data = await readFile(file);
  } catch (e) {
    throw new VideolmError(`${file}: cannot read the ${kind} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return `data:${mimeOf(file, kind)};base64,${data.toString("base64")}`;
}

async function jpegDataUrl(frame: RgbImage, format: "jpeg" | "png" = "jpeg"): Promise<string> {
  return `data:image/${format};base64,${(await frameJpeg(frame, format)).toString("base64")}`;
}

/** The planned frames of a prepared video as JPEG bytes (base64), with their times. */
async function plannedFrames(visual: VisualPlan | PreparedVisual | undefined, input: ShapeInput): Promise<{ base64: string[]; times: number[] }> {
  if (!visual || !("batch" in visual)) throw new VideolmError(`backend kind ${input.kind} sends the planned frames, but the request was not prepared (internal: visuals without pixels)`);
  const frames = framesOfVisual(visual, input.normalisation ?? { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
  if (!frames) {
    throw new VideolmError(`backend kind ${input.kind}: the frames of a ${input.modelType ?? "this family's"} video cannot be recovered from its pixels; use --backend-kind videolm, or a Qwen-VL checkpoint to plan`);
  }
  const base64 = await Promise.all(frames.map(async (f) => (await jpegDataUrl(f)).slice("data:image/jpeg;base64,".length)));
  const times = visual.timestamps ?? frames.map((_, i) => i / (visual.sampleFps ?? 1));
  return { base64, times };
}

/** The generation fields of the body for a kind: the OpenAI ones for every kind, the extensions where understood. */
function generationFields(input: ShapeInput): Record<string, unknown> {
  const g = input.generation;
  const out: Record<string, unknown> = {};
  if (g.maxNewTokens !== undefined) out.max_tokens = g.maxNewTokens;
  if (g.temperature !== undefined) out.temperature = g.temperature;
  if (g.topP !== undefined) out.top_p = g.topP;
  if (g.seed !== undefined) out.seed = g.seed;
  if (g.stop !== undefined && g.stop.length > 0) out.stop = g.stop;
  if (g.logprobs !== undefined) {
    out.logprobs = true;
    out.top_logprobs = g.logprobs;
  }
  // top_k and repetition_penalty: videolm's and vLLM's / SGLang's extra sampling parameters. Hosted OpenAI-style APIs
  // refuse unknown fields: there a neutral value is left out and any other is an error.
  const extended = input.kind === "videolm" || input.kind === "vllm" || input.kind === "sglang";
  for (const [key, wire, neutral] of [
    ["topK", "top_k", 0],
    ["repetitionPenalty", "repetition_penalty", 1],
  ] as const) {
    const v = g[key];
    if (v === undefined) continue;
    if (extended) out[wire] = v;
    else if (v !== neutral) throw new VideolmError(`${wire} is not part of the OpenAI API that backend kind ${input.kind} speaks; leave it unset`);
  }
  if (input.thinkingBudget !== undefined) {
    if (input.kind !== "videolm") throw new VideolmError(`--thinking-budget is a videolm extension; backend kind ${input.kind} does not take it`);
    out.thinking_budget = input.thinkingBudget;
  }
  if (input.kind === "videolm" && input.media.flash !== undefined) out.flash = input.media.flash;
  // Constrained output: json_object / json_schema are OpenAI's response_format everywhere. A regex is videolm's own
  // response_format type; vLLM takes it as structured_outputs.regex (docs.vllm.ai features/structured_outputs: the
  // guided_regex field it replaced was removed in v0.12.0); other kinds have no documented field and generate
  // unconstrained (said through `onUnconstrained`, e.g. the events endpoint's regex still parses the answer).
  const format = input.responseFormat;
  if (format && format.type !== "text") {
    if (format.type !== "regex" || input.kind === "videolm") out.response_format = format;
    else if (input.kind === "vllm") out.structured_outputs = { regex: format.pattern };
    else input.onUnconstrained?.(`backend kind ${input.kind} has no regex-constrained output: generating unconstrained`);
  }
  return out;
}

/** The full chat-completion body (always streamed: the answer arrives as server-sent events). */
export async function buildChatBody(input: ShapeInput): Promise<Record<string, unknown>> {
  const { media } = input;
  let visualIndex = 0;
  const fpsList: number[] = [];
  const fileFps: number[] = [];
  const messages = [];
  for (const message of input.messages) {
    if (typeof message.content === "string") {
      messages.push({ role: message.role, content: message.content });
      continue;
    }
    const content: Record<string, unknown>[] = [];
    for (const part of message.content as ContentPart[]) {
      if (part.type === "text") {
        content.push({ type: "text", text: part.text });
        continue;
      }
      const visual = input.visuals?.[visualIndex++];
      if (part.type === "image") content.push(await imagePart(part, input));
      else content.push(...(await videoParts(part, visual, input, media, fpsList, fileFps)));
    }
    messages.push({ role: message.role, content });
  }
  const body: Record<string, unknown> = { model: input.model, messages, ...generationFields(input), stream: true, stream_options: { include_usage: true } };
  if (fpsList.length > 0) body.mm_processor_kwargs = { fps: fpsList };
  if (fileFps.length > 0) {
    if (fileFps.some((f) => Math.abs(f - fileFps[0]) > 1e-9)) {
      throw new VideolmError("vLLM takes one fps per request for Qwen3-VL videos (mm_processor_kwargs), but the plan samples these videos at different rates; ask about one video at a time, or give them the same --fps");
    }
    body.mm_processor_kwargs = { fps: fileFps[0], do_sample_frames: true };
  }
  return body;
}

async function imagePart(part: ImagePart, input: ShapeInput): Promise<Record<string, unknown>> {
  const url = input.uploaded?.get(part.image) ?? (await mediaUrl(part.image, "image"));
  const image: Record<string, unknown> = { url };
  if (input.kind === "videolm") {
    if (part.minPixels !== undefined) image.min_pixels = part.minPixels;
    if (part.maxPixels !== undefined) image.max_pixels = part.maxPixels;
  }
  if (input.kind === "seed") image.detail = "high";
  return { type: "image_url", image_url: image };
}

async function videoParts(
  part: VideoPart,
  visual: VisualPlan | PreparedVisual | undefined,
  input: ShapeInput,
  media: MediaOptions,
  fpsList: number[],
  fileFps: number[],
): Promise<Record<string, unknown>[]> {
  const { kind } = input;
  if (kind === "videolm") {
    if (frameList(part.video)) throw new VideolmError("backend kind videolm: a video given as a list of frames cannot be sent over the API; give a video file or URL");
    const url = input.uploaded?.get(part.video) ?? (await mediaUrl(part.video as MediaSource, "video"));
    return [{ type: "video_url", video_url: { url, ...videolmVideoOptions(part, media) } }];
  }
  if (kind === "vllm" && input.modelType !== undefined && VIDEO_FILE_FAMILIES.has(input.modelType)) {
    if (frameList(part.video)) throw new VideolmError("backend kind vllm (Qwen3-VL family): the video must be a file or URL (vLLM reads the frame times from it)");
    if ((part.start ?? media.start) !== undefined || (part.end ?? media.end) !== undefined) {
      throw new VideolmError("backend kind vllm (Qwen3-VL family): vLLM cannot cut a video by time (--start / --end); cut the clip first");
    }
    if (!visual?.sampleFps) throw new VideolmError("backend kind vllm: the plan has no sampling rate for this video");
    fileFps.push(visual.sampleFps);
    return [{ type: "video_url", video_url: { url: await mediaUrl(part.video as MediaSource, "video") } }];
  }
  if (kind === "seed") return (await seedVideoParts(part, media, input.signal)).parts;
  const { base64, times } = await plannedFrames(visual, input);
  if (kind === "vllm") {
    if (input.modelType !== undefined && FPS_FRAME_FAMILIES.has(input.modelType)) fpsList.push(visual!.sampleFps ?? 2);
    return [{ type: "video_url", video_url: { url: `data:video/jpeg;base64,${base64.join(",")}` } }];
  }
  return base64.flatMap((b, i) => [
    { type: "text", text: secondText(times[i] ?? 0) },
    { type: "image_url", image_url: { url: `data:image/jpeg;base64,${b}` } },
  ]);
}
