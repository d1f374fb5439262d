/**
 * Request preparation without running the model: the checkpoint's config, tokenizer, chat template and the
 * family's processor. `videolm inspect` and the server's plan view use it alone (no conversion, no sessions);
 * VideoModel uses it before encoding and decoding.
 *
 *   messages ─ media parts → frames → patches (family processor)
 *            ─ chat template → text → ids → placeholders expanded → positions (the family's rule)
 */
import type { ProgressCallback } from "../util/progress.js";
import * as path from "node:path";
import { openCheckpoint, type Checkpoint } from "../checkpoint/checkpoint.js";
import { ConfigReader } from "../checkpoint/config-values.js";
import { readBoundedJsonObject } from "../checkpoint/json-file.js";
import { VideolmError } from "../errors.js";
import { checkPruneRate } from "./evs.js";
import type { FamilyConfig, FamilyProcessor, ModelFamily } from "../families/family.js";
import { familyForModelType } from "../families/registry.js";
import { resolveGenerationOptions, validateGenerationOptions, type GenerationOptions } from "../generation/options.js";
import { ChatTemplate, specialTokenVariables } from "../text/chat-template.js";
import { TextTokenizer } from "../text/tokenizer.js";
import type { ChatRequestMessage, ContentPart, MediaOptions, PlanLimit, PreparedVisual, VideoPart, VisualPlan } from "./request.js";

/** Everything decided before the model runs, with the pixels the vision encoder consumes. */
export interface PreparedRequest {
  promptText: string;
  inputIds: number[];
  /** [axes][S] rotary positions: the family's (T, H, W rows for M-RoPE; one row for 1-D RoPE). */
  positionIds: Int32Array;
  ropeDelta: number;
  visuals: PreparedVisual[];
  /** The request's media options it was prepared with (what a family's selection after the vision pass reads). */
  media?: MediaOptions;
  /** Milliseconds: reading and decoding media (`decodeMs`, 0 on frame-cache hits) and the whole preparation. */
  timings?: { decodeMs: number; preprocessMs: number };
}

/**
 * The least room for an answer the defaults leave: when the prompt leaves less than this (or than the default
 * max_new_tokens, when that is smaller), videos without frame/pixel options of their own get fewer frames instead.
 */
export const MIN_DEFAULT_ANSWER_TOKENS = 128;

/** Planning options: the explicit max_new_tokens (else the defaults fit it), and a server's caps. */
export interface PlanOptions {
  /** max_new_tokens the caller asked for; undefined = the default, lowered to what the context leaves. */
  maxNewTokens?: number;
  /** Upper bound on the default max_new_tokens (the server's --max-tokens). */
  maxNewTokensCap?: number;
  /** Largest prompt accepted (the server's --max-prompt-tokens); the defaults fit under it as under the context. */
  maxPromptTokens?: number;
  signal?: AbortSignal;
}

/**
 * The plan of a request from headers alone (no pixel decoded): what `videolm inspect` shows, what `run` checks before
 * decoding or loading weights, and what the server's plan endpoint reports. Prompt ids and positions are final:
 * they depend only on the visuals' grids and timestamps.
 */
export interface RequestPlan {
  promptText: string;
  inputIds: number[];
  positionIds: Int32Array;
  ropeDelta: number;
  visuals: VisualPlan[];
  /** The messages with the options the defaults chose written into their video parts: `realise` decodes these. */
  messages: ChatRequestMessage[];
  maxNewTokens: number;
  contextLength: number;
  /** prompt + maxNewTokens ≤ context (and the prompt within maxPromptTokens when given). */
  fits: boolean;
  /** When it does not fit: what to change. */
  advice?: string;
  /** Every limit that shaped the plan: each visual's, and the request's (max_new_tokens lowered, frames fitted). */
  limits: PlanLimit[];
  /** Milliseconds the planning took. */
  planMs: number;
}

/** Video options whose presence means the caller chose the frames or their size (the defaults then never change them). */
const VIDEO_SHAPE_OPTIONS = ["fps", "nframes", "minFrames", "maxFrames", "minPixels", "maxPixels", "totalPixels"] as const;

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
    const template = await ChatTemplate.load(ckpt.dir, family.defaultChatTemplate?.(config));
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
    const t0 = performance.now();
    const visuals: PreparedVisual[] = [];
    let decodeMs = 0;
    for (const message of messages) {
      if (typeof message.content === "string") continue;
      for (const part of message.content) {
        checkPolicySupport(this.processor, part, media);
        const visual = withPrune(this.processor, await this.processor.prepareVisual(part, media, signal, onProgress), part, media);
        if (visual) {
          visuals.push(visual);
          decodeMs += visual.decodeMs ?? 0;
        }
      }
    }
    const promptText = this.renderPrompt(messages);
    const { inputIds, positionIds, ropeDelta } = this.processor.buildPrompt(promptText, this.tokenizer, visuals);
    return { promptText, inputIds, positionIds, ropeDelta, visuals, media, timings: { decodeMs, preprocessMs: performance.now() - t0 } };
  }

  /**
   * The plan of a request from headers alone: no pixel is decoded, whatever the media's length. Without frame or
   * pixel options of their own, videos and max_new_tokens follow the shared defaults, which fit the context by
   * construction: the default max_new_tokens is lowered to what the prompt leaves; when that is less than
   * MIN_DEFAULT_ANSWER_TOKENS, such videos get at most as many frames as fit (max_frames chosen here, said in
   * `limits` and written into `messages` so that `realise` decodes exactly this plan).
   */
  async plan(messages: ChatRequestMessage[], media: MediaOptions = {}, options: PlanOptions = {}): Promise<RequestPlan> {
    if (!Array.isArray(messages) || messages.length === 0) throw new VideolmError("a request needs at least one message");
    const t0 = performance.now();
    const { signal } = options;
    const context = this.contextLength;
    const promptCap = Math.min(context, options.maxPromptTokens ?? Infinity);
    const defaultNew = Math.min(this.resolveOptions({}).maxNewTokens, options.maxNewTokensCap ?? Infinity);
    const explicitNew = options.maxNewTokens;
    const floor = explicitNew ?? Math.min(defaultNew, MIN_DEFAULT_ANSWER_TOKENS);

    // Plan every visual part (remembering where it is, to rewrite its options when fitting).
    const entries: { message: number; part: number; visual: VisualPlan; shrinkable: boolean }[] = [];
    for (const [mi, message] of messages.entries()) {
      if (typeof message.content === "string") continue;
      for (const [pi, part] of message.content.entries()) {
        checkPolicySupport(this.processor, part, media);
        const visual = withPrune(this.processor, await this.processor.planVisual(part, media, signal), part, media);
        if (!visual) continue;
        const shrinkable = part.type === "video" && visual.resample !== undefined && VIDEO_SHAPE_OPTIONS.every((k) => (part as VideoPart)[k] === undefined && media[k] === undefined);
        entries.push({ message: mi, part: pi, visual, shrinkable });
      }
    }
    const promptText = this.renderPrompt(messages);
    let built = this.processor.buildPrompt(promptText, this.tokenizer, entries.map((e) => e.visual));
    let planned = messages;
    const limits: PlanLimit[] = [];

    // Fit: fewer frames for videos that follow the defaults, when the prompt leaves less than `floor` new tokens.
    const budget = Math.min(context - floor, promptCap);
    const shrink = entries.filter((e) => e.shrinkable);
    if (built.inputIds.length > budget && shrink.length > 0 && this.processor.gridWithMaxFrames) {
      const regrid = this.processor.gridWithMaxFrames.bind(this.processor);
      const merge = (this.config as unknown as { vision: { spatialMergeSize?: number } }).vision.spatialMergeSize ?? 2;
      const tokensOf = (g: [number, number, number]) => (g[0] * g[1] * g[2]) / (merge * merge);
      const fixed = built.inputIds.length - shrink.reduce((n, e) => n + e.visual.tokens, 0);
      const promptAt = (maxFrames: number) => fixed + shrink.reduce((n, e) => n + tokensOf(regrid(e.visual, maxFrames) ?? e.visual.grid), 0);
      const current = Math.max(...shrink.map((e) => e.visual.frameIndices?.length ?? 2));
      // The largest even frame cap whose prompt fits (text that grows with frames, e.g. Qwen3-VL timestamps, is
      // checked on the real prompt below and the cap lowered further if needed).
      let lo = 2;
      let hi = current;
      while (lo < hi) {
        const mid = Math.floor((lo + hi + 2) / 4) * 2;
        if (promptAt(mid) <= budget) lo = mid;
        else hi = mid - 2;
      }
      for (let maxFrames = lo; maxFrames >= 2; maxFrames -= 2) {
        const rewritten = messages.map((m) => ({ ...m, content: typeof m.content === "string" ? m.content : [...m.content] }));
        const visuals = entries.map((e) => e.visual);
        for (const e of shrink) {
          const content = rewritten[e.message].content as ContentPart[];
          content[e.part] = { ...(content[e.part] as VideoPart), maxFrames };
          const visual = withPrune(this.processor, await this.processor.planVisual(content[e.part], media, signal), content[e.part], media);
          visuals[entries.indexOf(e)] = visual!;
        }
        const rebuilt = this.processor.buildPrompt(promptText, this.tokenizer, visuals);
        if (rebuilt.inputIds.length <= budget || maxFrames === 2) {
          built = rebuilt;
          planned = rewritten;
          entries.forEach((e, i) => (e.visual = visuals[i]));
          for (const e of shrink) {
            for (const l of e.visual.limits ?? []) if (l.name === "max_frames" && l.value === maxFrames) l.source = "fit";
            e.visual.limits = (e.visual.limits ?? []).map((l) => (l.name === "max_frames" && l.source === "fit" ? { ...l, note: l.note.replace("(request)", "(fit)") } : l));
          }
          limits.push({
            name: "max_frames",
            value: maxFrames,
            source: "fit",
            note: `max_frames ${maxFrames} chosen so that the prompt (${built.inputIds.length} tokens) leaves at least ${floor} new tokens in the ${context}-token context${promptCap < context ? ` and stays within ${promptCap} prompt tokens` : ""} (give --max-frames / --fps / --max-pixels to choose yourself)`,
          });
          break;
        }
      }
    }

    const S = built.inputIds.length;
    let maxNewTokens = explicitNew ?? defaultNew;
    if (explicitNew === undefined && S + defaultNew > context && S < context) {
      maxNewTokens = Math.max(1, context - S);
      limits.push({ name: "max_new_tokens", value: maxNewTokens, source: "fit", note: `max_new_tokens lowered from ${defaultNew} to ${maxNewTokens}: what the ${context}-token context leaves after the ${S}-token prompt` });
    } else if (explicitNew === undefined && options.maxNewTokensCap !== undefined && options.maxNewTokensCap < this.resolveOptions({}).maxNewTokens) {
      limits.push({ name: "max_new_tokens", value: defaultNew, source: "server", note: `max_new_tokens ${defaultNew} (server --max-tokens)` });
    }
    const fits = S + maxNewTokens <= context && S <= promptCap;
    const advice = fits
      ? undefined
      : S > promptCap && promptCap < context
        ? `the prompt has ${S} tokens but at most ${promptCap} are accepted: use fewer frames or pixels (--fps / --max-frames, --max-pixels / --total-pixels)`
        : `needs ${S + maxNewTokens} tokens (${S} prompt + ${maxNewTokens} new) but the context is ${context}: lower --fps / --max-frames, --max-pixels / --total-pixels, or --max-new-tokens`;
    const visuals = entries.map((e) => e.visual);
    // A sampling policy decides frames and sizes itself: only its frame rate can be lowered.
    const policyAdvice = advice && visuals.some((v) => v.policy) ? `${advice} (videos sampled by a policy: a lower --fps, or leave the policy out)` : advice;
    limits.unshift(...visuals.flatMap((v) => (v.limits ?? []).filter((l) => l.source !== "fit")));
    return {
      promptText,
      inputIds: built.inputIds,
      positionIds: built.positionIds,
      ropeDelta: built.ropeDelta,
      visuals,
      messages: planned,
      maxNewTokens,
      contextLength: context,
      fits,
      ...(policyAdvice ? { advice: policyAdvice } : {}),
      limits,
      planMs: performance.now() - t0,
    };
  }

  /**
   * Decodes and patches what `plan` planned (its `messages`, with the options the defaults chose). Throws when the
   * media changed in between so that the result no longer matches the plan.
   */
  async realise(plan: RequestPlan, media: MediaOptions = {}, signal?: AbortSignal, onProgress?: ProgressCallback): Promise<PreparedRequest> {
    const prepared = await this.prepare(plan.messages, media, signal, onProgress);
    const same =
      prepared.inputIds.length === plan.inputIds.length &&
      prepared.visuals.length === plan.visuals.length &&
      prepared.visuals.every((v, i) => v.grid.every((d, k) => d === plan.visuals[i].grid[k]));
    if (!same) throw new VideolmError("the media changed between planning and decoding (different frames or sizes); run the request again");
    return prepared;
  }

  /**
   * The chat template's output for `messages` (media parts as their placeholders), without touching any media:
   * the text `prepare` tokenizes, for checks that must come before the expensive work (the server's prompt limit).
   */
  renderPrompt(messages: readonly ChatRequestMessage[]): string {
    const asText = this.processor.contentAsText?.bind(this.processor);
    const templateMessages = messages.map((m) => ({
      role: m.role,
      content:
        typeof m.content === "string"
          ? m.content
          : asText
            ? asText(m.content)
            : m.content.map((p) => (p.type === "text" ? { type: "text" as const, text: p.text } : { type: p.type })),
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
 * The placeholder and marker tokens by the config.json key that gives their id (the family's `visionTokens`, else
 * Qwen-VL's): the tokenizer must map each string to exactly that id, or the prompt's placeholders would never be found
 * (or worse, found at other tokens).
 */
function visionTokensOf(config: FamilyConfig): { key: string; token: string; id: number }[] {
  return (
    config.visionTokens ?? [
      { key: "image_token_id", token: "<|image_pad|>", id: config.imageTokenId },
      { key: "video_token_id", token: "<|video_pad|>", id: config.videoTokenId },
      { key: "vision_start_token_id", token: "<|vision_start|>", id: config.visionStartTokenId },
    ]
  );
}

/** tokenizer.json against config.json: every id it can produce indexes the embedding table; vision tokens agree. */
function checkTokenizerAgainstConfig(tokenizer: TextTokenizer, config: FamilyConfig): void {
  const vocab = config.text.vocabSize;
  if (tokenizer.maxTokenId >= vocab) {
    throw new VideolmError(
      `tokenizer.json: token id ${tokenizer.maxTokenId} (${JSON.stringify(tokenizer.idToToken(tokenizer.maxTokenId) ?? "?")}) is outside config.json vocab_size ${vocab}; the tokenizer does not belong to these weights`,
    );
  }
  for (const { key, token, id: want } of visionTokensOf(config)) {
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

/** A video part asking for a sampling policy (MediaOptions.policy) its family does not plan by is refused, not ignored. */
function checkPolicySupport(processor: FamilyProcessor, part: ContentPart, media: MediaOptions): void {
  if (part.type !== "video") return;
  const policy = part.policy ?? media.policy;
  if (policy === undefined || processor.samplingPolicies?.includes(policy)) return;
  throw new VideolmError(
    `sampling policy ${policy} is not available for ${processor.constructor.name.replace(/Processor$/, "")} checkpoints (the Qwen-VL families have it: Qwen2-VL, Qwen2.5-VL, Qwen3-VL, Qwen3.5); InternVL and VideoLLaMA3 sample by their own rules`,
  );
}

/**
 * A video's EVS rate (MediaOptions.prune: the part's over the request's) recorded on its plan, for the family's
 * selectVisualRows; absent at 0. Validated here so every family refuses the same bad values.
 */
function withPrune<V extends VisualPlan>(processor: FamilyProcessor, visual: V | null, part: ContentPart, media: MediaOptions): V | null {
  if (!visual || part.type !== "video") return visual;
  const rate = part.prune ?? media.prune;
  if (rate === undefined && visual.prune === undefined) return visual;
  const q = rate === undefined ? 0 : checkPruneRate(rate);
  if (q > 0 && !processor.evsPruning) {
    throw new VideolmError(
      `EVS token pruning (prune ${q}) is not available for ${processor.constructor.name.replace(/Processor$/, "")} checkpoints (Qwen2-VL, Qwen2.5-VL, Qwen3-VL, Qwen3.5 and plain InternVL have it; InternVL-Flash's router and VideoLLaMA3's DiffFP already choose the video tokens)`,
    );
  }
  // A copy: a family may hand out cached plan objects.
  const { prune: _old, ...rest } = visual;
  return (q > 0 ? { ...rest, prune: q } : rest) as V;
}
