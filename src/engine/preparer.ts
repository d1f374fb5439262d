/**
 * Request preparation without running the model: the checkpoint's config, tokenizer, chat template and the
 * family's processor. `videolm inspect` and the server's plan view use it alone (no conversion, no sessions);
 * VideoModel uses it before encoding and decoding.
 *
 *   messages ─ media parts → frames → patches (family processor)
 *            ─ chat template → text → ids → placeholders expanded → 3-D positions
 */
import type { ProgressCallback } from "../util/progress.js";
import * as path from "node:path";
import { openCheckpoint, type Checkpoint } from "../checkpoint/checkpoint.js";
import { ConfigReader } from "../checkpoint/config-values.js";
import { readBoundedJsonObject } from "../checkpoint/json-file.js";
import { VideolmError } from "../errors.js";
import type { FamilyConfig, FamilyProcessor, ModelFamily } from "../families/family.js";
import { familyForModelType } from "../families/registry.js";
import { resolveGenerationOptions, validateGenerationOptions, type GenerationOptions } from "../generation/options.js";
import { ChatTemplate, specialTokenVariables } from "../text/chat-template.js";
import { TextTokenizer } from "../text/tokenizer.js";
import type { ChatRequestMessage, MediaOptions, PreparedVisual } from "./request.js";

/** Everything decided before the model runs: what `videolm inspect` shows. */
export interface PreparedRequest {
  promptText: string;
  inputIds: number[];
  /** [3][S] rotary positions (T, H, W rows). */
  positionIds: Int32Array;
  ropeDelta: number;
  visuals: PreparedVisual[];
}

export class RequestPreparer {
  private constructor(
    readonly checkpoint: Checkpoint,
    readonly family: ModelFamily<FamilyConfig>,
    readonly config: FamilyConfig,
    readonly tokenizer: TextTokenizer,
    readonly template: ChatTemplate,
    private readonly specialTokens: Record<string, unknown>,
    readonly generationConfig: Record<string, unknown> | undefined,
    readonly processor: FamilyProcessor,
  ) {}

  static async load(dir: string): Promise<RequestPreparer> {
    try {
      return await RequestPreparer.loadChecked(dir);
    } catch (e) {
      if (e instanceof VideolmError) throw e;
      // A checkpoint is untrusted input: whatever slipped past the validation below still ends as one line naming
      // the folder, not as "internal error … please report it".
      const message = String((e as Error)?.message ?? e).split("\n")[0].slice(0, 300);
      throw new VideolmError(`checkpoint ${dir} could not be loaded: ${message} (a corrupt or unsupported checkpoint?)`, { cause: e });
    }
  }

  private static async loadChecked(dir: string): Promise<RequestPreparer> {
    const ckpt = openCheckpoint(dir);
    const family = familyForModelType(ckpt.config.model_type, path.join(ckpt.dir, "config.json"));
    const config = family.parseConfig(ckpt.config);
    checkTensorsAgainstConfig(ckpt, config);
    const tokenizer = await TextTokenizer.load(ckpt.dir);
    checkTokenizerAgainstConfig(tokenizer, config);
    const template = await ChatTemplate.load(ckpt.dir);
    const optionalJson = (name: string, what: string) => readBoundedJsonObject(path.join(ckpt.dir, name), what, true);
    const tokenizerConfig = optionalJson("tokenizer_config.json", "tokenizer config");
    const specialTokens = tokenizerConfig ? specialTokenVariables(tokenizerConfig) : {};
    template.probe(specialTokens);
    const generationConfig = optionalJson("generation_config.json", "generation config");
    if (generationConfig) checkGenerationConfig(generationConfig, config.text.vocabSize);
    const preparer = new RequestPreparer(ckpt, family, config, tokenizer, template, specialTokens, generationConfig, family.createProcessor(ckpt.dir, config));
    // The defaults a request starts from must be valid on their own (a bad temperature names the file now).
    try {
      preparer.resolveOptions({});
    } catch (e) {
      if (e instanceof VideolmError && !e.message.startsWith("generation_config.json")) throw new VideolmError(`generation_config.json: ${e.message}`, { cause: e });
      throw e;
    }
    return preparer;
  }

  get dir(): string {
    return this.checkpoint.dir;
  }

  /** Maximum prompt + generated tokens. */
  get contextLength(): number {
    return this.config.text.maxPositionEmbeddings;
  }

  /** Media → patches and prompt → ids and positions. */
  /** @param onProgress decoding progress of each video (frames received / frames sampled) */
  async prepare(messages: ChatRequestMessage[], media: MediaOptions = {}, signal?: AbortSignal, onProgress?: ProgressCallback): Promise<PreparedRequest> {
    if (!Array.isArray(messages) || messages.length === 0) throw new VideolmError("a request needs at least one message");
    const visuals: PreparedVisual[] = [];
    for (const message of messages) {
      if (typeof message.content === "string") continue;
      for (const part of message.content) {
        const visual = await this.processor.prepareVisual(part, media, signal, onProgress);
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

  /**
   * The chat template's output for `messages` (media parts as their placeholders), without touching any media:
   * the text `prepare` tokenizes, for checks that must come before the expensive work (the server's prompt limit).
   */
  renderPrompt(messages: ChatRequestMessage[]): string {
    const templateMessages = messages.map((m) => ({
      role: m.role,
      content: typeof m.content === "string" ? m.content : m.content.map((p) => (p.type === "text" ? { type: "text" as const, text: p.text } : { type: p.type })),
    }));
    return this.template.render(templateMessages, { addGenerationPrompt: true, specialTokens: this.specialTokens });
  }

  /** Explicit options, then the checkpoint's generation_config.json, then videolm's defaults; validated. */
  resolveOptions(explicit: Partial<GenerationOptions>): GenerationOptions {
    const options = resolveGenerationOptions(explicit, this.generationConfig);
    validateGenerationOptions(options);
    return options;
  }

  /** The eos ids: generation_config.json's, else config.json's, else <|im_end|>. */
  eosTokenIds(): number[] {
    const fromGeneration = this.generationConfig?.eos_token_id;
    const ids = fromGeneration === undefined ? this.config.eosTokenIds : Array.isArray(fromGeneration) ? (fromGeneration as number[]) : [fromGeneration as number];
    return ids.length > 0 ? ids : [this.tokenizer.tokenId("<|im_end|>")];
  }

  /** Throws the user-facing error when a prompt plus the requested tokens exceeds the context. */
  checkContext(promptTokens: number, maxNewTokens: number): void {
    if (promptTokens + maxNewTokens > this.contextLength) {
      throw new VideolmError(
        `the prompt has ${promptTokens} tokens and ${maxNewTokens} new tokens were requested, but the model's context is ${this.contextLength} tokens: ` +
          `lower --max-new-tokens, or use fewer frames / pixels (--fps, --max-frames, --max-pixels)`,
      );
    }
  }
}

/**
 * The Qwen-VL placeholder and marker tokens by the config.json key that gives their id: the tokenizer must map each
 * string to exactly that id, or the prompt's placeholders would never be found (or worse, found at other tokens).
 */
const VISION_TOKENS: [keyof FamilyConfig & string, string, string][] = [
  ["imageTokenId", "image_token_id", "<|image_pad|>"],
  ["videoTokenId", "video_token_id", "<|video_pad|>"],
  ["visionStartTokenId", "vision_start_token_id", "<|vision_start|>"],
];

/** tokenizer.json against config.json: every id it can produce indexes the embedding table; vision tokens agree. */
function checkTokenizerAgainstConfig(tokenizer: TextTokenizer, config: FamilyConfig): void {
  const vocab = config.text.vocabSize;
  if (tokenizer.maxTokenId >= vocab) {
    throw new VideolmError(
      `tokenizer.json: token id ${tokenizer.maxTokenId} (${JSON.stringify(tokenizer.idToToken(tokenizer.maxTokenId) ?? "?")}) is outside config.json vocab_size ${vocab}; the tokenizer does not belong to these weights`,
    );
  }
  for (const [field, key, token] of VISION_TOKENS) {
    const want = config[field] as number;
    const got = tokenizer.idToToken(want);
    let id: number | undefined;
    try {
      id = tokenizer.tokenId(token);
    } catch {
      id = undefined;
    }
    if (id !== want) {
      throw new VideolmError(
        `tokenizer.json: ${token} has id ${id ?? "(none)"} but config.json ${key} is ${want}${got !== undefined ? ` (${JSON.stringify(got)} in the tokenizer)` : ""}; the tokenizer's added_tokens do not match the config`,
      );
    }
  }
}

/** The config against the tensors that fix the shapes the processor and prompt rely on before conversion runs. */
function checkTensorsAgainstConfig(ckpt: Checkpoint, config: FamilyConfig): void {
  const { vocabSize, hiddenSize } = config.text;
  for (const [name, info] of ckpt.tensors) {
    if (name.endsWith("embed_tokens.weight") && (info.shape.length !== 2 || info.shape[0] !== vocabSize || info.shape[1] !== hiddenSize)) {
      throw new VideolmError(`config.json: vocab_size ${vocabSize} × hidden_size ${hiddenSize} does not match tensor ${name} [${info.shape}] in ${path.basename(info.file)}`);
    }
    const v = (config as unknown as { vision?: { embedDim?: number; inChannels?: number; temporalPatchSize?: number; patchSize?: number } }).vision;
    if (name.endsWith("patch_embed.proj.weight") && v?.patchSize !== undefined) {
      const want = [v.embedDim, v.inChannels, v.temporalPatchSize, v.patchSize, v.patchSize];
      if (info.shape.length !== 5 || info.shape.some((d, i) => d !== want[i])) {
        throw new VideolmError(
          `config.json: vision_config (width, in_channels, temporal_patch_size, patch_size, patch_size) = [${want}] does not match tensor ${name} [${info.shape}] in ${path.basename(info.file)}`,
        );
      }
    }
  }
}

/** generation_config.json's token ids (eos, pad, bos, decoder start) index the vocabulary. */
function checkGenerationConfig(raw: Record<string, unknown>, vocabSize: number): void {
  const r = new ConfigReader(raw, "generation_config.json");
  for (const key of ["eos_token_id", "pad_token_id", "bos_token_id", "decoder_start_token_id"]) r.intOrList(key, { min: 0, max: vocabSize - 1 });
}
