/**
 * The library's entry point: a loaded model that answers questions about images and videos.
 *
 *   VideoModel.load(dir) ─ open checkpoint, pick the family, convert (cached), create sessions, load tokenizer
 *   model.prepare(messages) ─ media → frames → patches; chat template → ids → placeholders → 3-D positions
 *   model.generate(messages) ─ prepare, encode visuals, prefill, decode (streamed)
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { openCheckpoint, readJsonFile } from "../checkpoint/checkpoint.js";
import { VideolmError } from "../errors.js";
import type { FamilyConfig, FamilyProcessor, ModelFamily } from "../families/family.js";
import { familyForModelType } from "../families/registry.js";
import { resolveGenerationOptions, validateGenerationOptions, type GenerationOptions } from "../generation/options.js";
import type { WeightPrecision } from "../onnx/layers.js";
import { ChatTemplate, specialTokenVariables } from "../text/chat-template.js";
import { StreamingDecoder } from "../text/streaming-decoder.js";
import { TextTokenizer } from "../text/tokenizer.js";
import type { ProgressCallback } from "../util/progress.js";
import { ensureConverted } from "./convert.js";
import { generate, type GenerationResult, type PreparedPrompt, type TokenEvent } from "./generate.js";
import type { ChatRequestMessage, MediaOptions, PreparedVisual } from "./request.js";
import { createSession, Decoder, VisionEncoder } from "./sessions.js";

export interface LoadOptions {
  /** Weight precision of the converted graphs. Default fp32. */
  dtype?: WeightPrecision;
  threads?: number;
  /** Root of the conversion cache (default $VIDEOLM_CACHE or ~/.cache/videolm). */
  cacheDir?: string;
  onProgress?: ProgressCallback;
}

/** Everything decided before the model runs: what `videolm inspect` shows. */
export interface PreparedRequest {
  promptText: string;
  inputIds: number[];
  positionIds: Int32Array;
  ropeDelta: number;
  visuals: PreparedVisual[];
}

export interface GenerateRequest extends Partial<GenerationOptions> {
  messages: ChatRequestMessage[];
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
    readonly dir: string,
    readonly family: ModelFamily<FamilyConfig>,
    readonly config: FamilyConfig,
    readonly tokenizer: TextTokenizer,
    readonly template: ChatTemplate,
    private readonly specialTokens: Record<string, unknown>,
    private readonly generationConfig: Record<string, unknown> | undefined,
    private readonly processor: FamilyProcessor,
    private readonly vision: VisionEncoder,
    readonly decoder: Decoder,
    readonly loadMs: number,
  ) {}

  static async load(dir: string, options: LoadOptions = {}): Promise<VideoModel> {
    const t0 = performance.now();
    const ckpt = openCheckpoint(dir);
    const family = familyForModelType(ckpt.config.model_type, path.join(ckpt.dir, "config.json"));
    const config = family.parseConfig(ckpt.config);
    const tokenizer = await TextTokenizer.load(ckpt.dir);
    const template = await ChatTemplate.load(ckpt.dir);
    const tokenizerConfigFile = path.join(ckpt.dir, "tokenizer_config.json");
    const specialTokens = fs.existsSync(tokenizerConfigFile) ? specialTokenVariables(readJsonFile(tokenizerConfigFile, "tokenizer config")) : {};
    const generationConfigFile = path.join(ckpt.dir, "generation_config.json");
    const generationConfig = fs.existsSync(generationConfigFile) ? readJsonFile(generationConfigFile, "generation config") : undefined;
    const processor = family.createProcessor(ckpt.dir, config);
    const converted = ensureConverted(ckpt, family, config, options.dtype ?? "fp32", { cacheRoot: options.cacheDir, onProgress: options.onProgress });
    const sessionOptions = { threads: options.threads };
    const [visionSession, decoderSession] = await Promise.all([createSession(converted.visionPath, sessionOptions), createSession(converted.decoderPath, sessionOptions)]);
    return new VideoModel(
      ckpt.dir,
      family,
      config,
      tokenizer,
      template,
      specialTokens,
      generationConfig,
      processor,
      new VisionEncoder(visionSession, config.text.hiddenSize),
      new Decoder(decoderSession, config),
      performance.now() - t0,
    );
  }

  get contextLength(): number {
    return this.config.text.maxPositionEmbeddings;
  }

  /** Media → patches and prompt → ids and positions, without running the model. */
  async prepare(messages: ChatRequestMessage[], media: MediaOptions = {}, signal?: AbortSignal): Promise<PreparedRequest> {
    if (!Array.isArray(messages) || messages.length === 0) throw new VideolmError("a request needs at least one message");
    const visuals: PreparedVisual[] = [];
    for (const message of messages) {
      if (typeof message.content === "string") continue;
      for (const part of message.content) {
        const visual = await this.processor.prepareVisual(part, media, signal);
        if (visual) visuals.push(visual);
      }
    }
    const templateMessages = messages.map((m) => ({
      role: m.role,
      content: typeof m.content === "string" ? m.content : m.content.map((p) => (p.type === "text" ? { type: "text" as const, text: p.text } : { type: p.type })),
    }));
    const promptText = this.template.render(templateMessages, { addGenerationPrompt: true, specialTokens: this.specialTokens });
    const { inputIds, positionIds, ropeDelta } = this.processor.buildPrompt(promptText, this.tokenizer, visuals);
    return { promptText, inputIds, positionIds, ropeDelta, visuals };
  }

  /** Resolves generation options: explicit ones, then the checkpoint's generation_config.json, then defaults. */
  resolveOptions(explicit: Partial<GenerationOptions>): GenerationOptions {
    const options = resolveGenerationOptions(explicit, this.generationConfig);
    validateGenerationOptions(options);
    return options;
  }

  async generate(request: GenerateRequest): Promise<GenerateResponse> {
    const { messages, media, onToken, signal, ...explicit } = request;
    const options = this.resolveOptions(explicit);
    const t0 = performance.now();
    const prepared = await this.prepare(messages, media, signal);
    const preprocessMs = performance.now() - t0;
    const S = prepared.inputIds.length;
    if (S + options.maxNewTokens > this.contextLength) {
      throw new VideolmError(
        `the prompt has ${S} tokens and ${options.maxNewTokens} new tokens were requested, but the model's context is ${this.contextLength} tokens: ` +
          `lower --max-new-tokens, or use fewer frames / pixels (--fps, --max-frames, --max-pixels)`,
      );
    }
    const tv = performance.now();
    const prompt = await this.encodeVisuals(prepared);
    const visionMs = performance.now() - tv;
    let text = "";
    const result = await generate({
      decoder: this.decoder,
      prompt,
      options,
      eosTokenIds: this.eosTokenIds(),
      vocabSize: this.config.text.vocabSize,
      streamer: new StreamingDecoder(this.tokenizer, { skipSpecialTokens: true }),
      onToken: (e) => {
        text += e.text;
        onToken?.(e);
      },
      signal,
    });
    const n = result.tokens.length;
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
        decodeTokensPerSecond: n > 1 ? ((n - 1) * 1000) / Math.max(1e-9, result.decodeMs - (result.firstTokenMs - result.prefillMs)) : 0,
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

  private eosTokenIds(): number[] {
    const fromGeneration = this.generationConfig?.eos_token_id;
    const ids = fromGeneration === undefined ? this.config.eosTokenIds : Array.isArray(fromGeneration) ? (fromGeneration as number[]) : [fromGeneration as number];
    return ids.length > 0 ? ids : [this.tokenizer.tokenId("<|im_end|>")];
  }
}
