/**
 * The library's entry point: a loaded model that answers questions about images and videos.
 *
 *   VideoModel.load(dir) ─ open checkpoint, pick the family, convert (cached), create sessions, load tokenizer
 *   model.prepare(messages) ─ media → frames → patches; chat template → ids → placeholders → 3-D positions
 *   model.generate(messages) ─ prepare, encode visuals, prefill, decode (streamed)
 */
import { VideolmError } from "../errors.js";
import type { FamilyConfig } from "../families/family.js";
import type { GenerationOptions } from "../generation/options.js";
import type { WeightPrecision } from "../onnx/layers.js";
import { StreamingDecoder } from "../text/streaming-decoder.js";
import type { TextTokenizer } from "../text/tokenizer.js";
import type { ProgressCallback } from "../util/progress.js";
import { ensureConverted } from "./convert.js";
import { generate, type GenerationResult, type PreparedPrompt, type TokenEvent } from "./generate.js";
import { RequestPreparer, type PreparedRequest } from "./preparer.js";
import type { ChatRequestMessage, MediaOptions } from "./request.js";
import { createSession, Decoder, VisionEncoder } from "./sessions.js";

export interface LoadOptions {
  /** Weight precision of the converted graphs. Default fp32. */
  dtype?: WeightPrecision;
  threads?: number;
  /** Root of the conversion cache (default $VIDEOLM_CACHE or ~/.cache/videolm). */
  cacheDir?: string;
  onProgress?: ProgressCallback;
}


export interface GenerateRequest extends Partial<GenerationOptions> {
  messages: ChatRequestMessage[];
  /** The result of `prepare(messages, media)` when the caller has it already (skips preparing again). */
  prepared?: PreparedRequest;
  /** Defaults for every image/video part of this request (a part's own options win). */
  media?: MediaOptions;
  onToken?: (event: TokenEvent) => void;
  signal?: AbortSignal;
}

export interface GenerateResponse {
  text: string;
  tokens: number[];
  promptTokens: number;
  finishReason: GenerationResult["finishReason"];
  logprobs?: GenerationResult["logprobs"];
  options: GenerationOptions;
  timings: { visionMs: number; prefillMs: number; ttftMs: number; decodeMs: number; decodeTokensPerSecond: number; preprocessMs: number };
}

export class VideoModel {
  private constructor(
    readonly preparer: RequestPreparer,
    private readonly vision: VisionEncoder,
    readonly decoder: Decoder,
    readonly loadMs: number,
  ) {}

  static async load(dir: string, options: LoadOptions = {}): Promise<VideoModel> {
    const t0 = performance.now();
    return VideoModel.fromPreparer(await RequestPreparer.load(dir), options, t0);
  }

  /** Loads the weights for a checkpoint already opened for preparation (e.g. after checking a plan fits). */
  static async fromPreparer(preparer: RequestPreparer, options: LoadOptions = {}, t0 = performance.now()): Promise<VideoModel> {
    const { checkpoint, family, config } = preparer;
    const converted = ensureConverted(checkpoint, family, config, options.dtype ?? "fp32", { cacheRoot: options.cacheDir, onProgress: options.onProgress });
    const sessionOptions = { threads: options.threads };
    const [visionSession, decoderSession] = await Promise.all([createSession(converted.visionPath, sessionOptions), createSession(converted.decoderPath, sessionOptions)]);
    return new VideoModel(preparer, new VisionEncoder(visionSession, config.text.hiddenSize), new Decoder(decoderSession, config), performance.now() - t0);
  }

  get config(): FamilyConfig {
    return this.preparer.config;
  }
  get tokenizer(): TextTokenizer {
    return this.preparer.tokenizer;
  }
  get contextLength(): number {
    return this.preparer.contextLength;
  }

  /** Media → patches and prompt → ids and positions, without running the model. */
  prepare(messages: ChatRequestMessage[], media: MediaOptions = {}, signal?: AbortSignal): Promise<PreparedRequest> {
    return this.preparer.prepare(messages, media, signal);
  }

  async generate(request: GenerateRequest): Promise<GenerateResponse> {
    const { messages, media, onToken, signal, prepared: given, ...explicit } = request;
    const options = this.preparer.resolveOptions(explicit);
    const t0 = performance.now();
    const prepared = given ?? (await this.prepare(messages, media, signal));
    const preprocessMs = performance.now() - t0;
    const S = prepared.inputIds.length;
    this.preparer.checkContext(S, options.maxNewTokens);
    const tv = performance.now();
    const prompt = await this.encodeVisuals(prepared);
    const visionMs = performance.now() - tv;
    let text = "";
    const result = await generate({
      decoder: this.decoder,
      prompt,
      options,
      eosTokenIds: this.preparer.eosTokenIds(),
      vocabSize: this.config.text.vocabSize,
      streamer: new StreamingDecoder(this.tokenizer, { skipSpecialTokens: true }),
      onToken: (e) => {
        text += e.text;
        onToken?.(e);
      },
      signal,
    });
    const n = result.tokens.length;
    const firstDecodeStepMs = result.firstTokenMs - result.prefillMs;
    return {
      text,
      tokens: result.tokens,
      promptTokens: S,
      finishReason: result.finishReason,
      logprobs: options.logprobs !== undefined ? result.logprobs : undefined,
      options,
      timings: {
        preprocessMs,
        visionMs,
        prefillMs: result.prefillMs,
        ttftMs: visionMs + result.firstTokenMs,
        decodeMs: result.decodeMs,
        decodeTokensPerSecond: n > 1 ? ((n - 1) * 1000) / Math.max(1e-9, result.decodeMs - firstDecodeStepMs) : 0,
      },
    };
  }

  /** Runs the vision encoder on each visual and lays its rows out at the visual's placeholder positions. */
  async encodeVisuals(prepared: PreparedRequest): Promise<PreparedPrompt> {
    const D = this.config.text.hiddenSize;
    const ids = prepared.inputIds;
    const byKind = { image: [] as Float32Array[], video: [] as Float32Array[] };
    for (const v of prepared.visuals) byKind[v.kind].push(await this.vision.encode(v.batch));
    const positions: number[] = [];
    for (let i = 0; i < ids.length; i++) if (ids[i] === this.config.imageTokenId || ids[i] === this.config.videoTokenId) positions.push(i);
    const embeds = new Float32Array(positions.length * D);
    // The i-th image's rows fill the i-th run of image pads, the i-th video's the i-th run of video pads (as the reference scatters them).
    const cursor = { image: { index: 0, row: 0 }, video: { index: 0, row: 0 } };
    positions.forEach((p, k) => {
      const kind = ids[p] === this.config.imageTokenId ? "image" : "video";
      const c = cursor[kind];
      const source = byKind[kind][c.index];
      if (!source) throw new VideolmError(`the prompt has more ${kind} placeholders than ${kind} inputs`);
      embeds.set(source.subarray(c.row * D, (c.row + 1) * D), k * D);
      if (++c.row * D === source.length) {
        c.index++;
        c.row = 0;
      }
    });
    return { inputIds: ids, positionIds: prepared.positionIds, ropeDelta: prepared.ropeDelta, visualEmbeds: embeds, visualPositions: Int32Array.from(positions) };
  }

}
