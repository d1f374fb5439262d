/**
 * Request preparation without running the model: the checkpoint's config, tokenizer, chat template and the
 * family's processor. `videolm inspect` and the server's plan view use it alone (no conversion, no sessions);
 * VideoModel uses it before encoding and decoding.
 *
 *   messages ─ media parts → frames → patches (family processor)
 *            ─ chat template → text → ids → placeholders expanded → 3-D positions
 */
import type { ProgressCallback } from "../util/progress.js";
import * as fs from "node:fs";
import * as path from "node:path";
import { openCheckpoint, readJsonFile, type Checkpoint } from "../checkpoint/checkpoint.js";
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
    const ckpt = openCheckpoint(dir);
    const family = familyForModelType(ckpt.config.model_type, path.join(ckpt.dir, "config.json"));
    const config = family.parseConfig(ckpt.config);
    const tokenizer = await TextTokenizer.load(ckpt.dir);
    const template = await ChatTemplate.load(ckpt.dir);
    const optionalJson = (name: string, what: string) => {
      const file = path.join(ckpt.dir, name);
      return fs.existsSync(file) ? readJsonFile(file, what) : undefined;
    };
    const tokenizerConfig = optionalJson("tokenizer_config.json", "tokenizer config");
    const specialTokens = tokenizerConfig ? specialTokenVariables(tokenizerConfig) : {};
    const generationConfig = optionalJson("generation_config.json", "generation config");
    return new RequestPreparer(ckpt, family, config, tokenizer, template, specialTokens, generationConfig, family.createProcessor(ckpt.dir, config));
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
