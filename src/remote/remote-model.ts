/**
 * A model served elsewhere, behind the same `generate()` as the local VideoModel: videolm plans (and, where the
 * backend needs frames, samples and decodes) the request locally by the served family's rules, sends what that
 * backend kind expects (request-shapes.ts) and streams the answer back through `onToken`.
 *
 *   const model = await RemoteModel.connect("http://gpu-box:8000", { planner: "Qwen2.5-VL-7B-Instruct" });
 *   const { text } = await model.generate({ messages, onToken: (e) => process.stdout.write(e.text) });
 *
 * The family whose rules plan the request comes from a local checkpoint folder (`planner`, CLI `--model`): its
 * config.json, tokenizer and processor files, the same as `videolm inspect` reads (the weights are never loaded). A
 * `videolm serve` backend plans by its own checkpoint and needs none; a Seed1.5-VL backend's videos are sampled by
 * Seed1.5-VL's own rule (the seed1.5 policy) and need none either.
 */
import { readFile } from "node:fs/promises";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import type { GenerateRequest, GenerateResponse } from "../engine/model.js";
import { RequestPreparer, type PreparedRequest } from "../engine/preparer.js";
import type { ContentPart, MediaSource, VideoPart, VisualPlan } from "../engine/request.js";
import { VideolmError } from "../errors.js";
import { frameList } from "../families/media-parts.js";
import { DEFAULT_GENERATION_OPTIONS, type GenerationOptions } from "../generation/options.js";
import { readNormalisation } from "../server/thumbnails.js";
import { BackendClient, BackendError, DEFAULT_API_KEY_ENV, type BackendClientOptions } from "./backend-client.js";
import { kindFromModels, listRemoteModels, type BackendKind, type RemoteModelInfo } from "./backend-kind.js";
import { buildChatBody, sendsFrames } from "./request-shapes.js";

export interface ConnectOptions extends BackendClientOptions {
  /** What the backend is (default "auto": GET /v1/models says; see backend-kind.ts). */
  kind?: BackendKind | "auto";
  /** The model id the backend serves (the body's `model`); default: the first one GET /v1/models lists. */
  model?: string;
  /** The checkpoint whose family rules plan requests: a RequestPreparer, or a checkpoint folder (CLI `--model`). */
  planner?: RequestPreparer | string;
  /** Environment variable holding the API key when `apiKey` is not given (default VIDEOLM_BACKEND_API_KEY). */
  apiKeyEnv?: string;
}

/** One entry of the backend's logprobs (OpenAI's shape: the token's text, its logprob, the alternatives). */
export interface RemoteLogprob {
  token: string;
  logprob: number;
  top: { token: string; logprob: number }[];
}

export interface RemoteGenerateResponse extends GenerateResponse {
  /** The backend that answered. Token ids are the backend's own and not sent: `tokens` is empty, counts are here. */
  remote: { backend: string; kind: BackendKind; model: string; completionTokens: number; logprobs?: RemoteLogprob[] };
}

export class RemoteModel {
  private constructor(
    readonly client: BackendClient,
    readonly kind: BackendKind,
    /** The model id requests name. */
    readonly remoteModel: string,
    /** The planning checkpoint (absent for a videolm backend given none). */
    readonly preparer: RequestPreparer | undefined,
  ) {}

  /** "host:port" of the backend, the way messages name it. */
  get backend(): string {
    return this.client.label;
  }

  static async connect(url: string, options: ConnectOptions = {}): Promise<RemoteModel> {
    const apiKey = options.apiKey ?? process.env[options.apiKeyEnv ?? DEFAULT_API_KEY_ENV];
    const client = new BackendClient(url, { ...options, apiKey });
    let kind = options.kind ?? "auto";
    let model = options.model;
    if (kind === "auto" || model === undefined) {
      let models: RemoteModelInfo[] = [];
      try {
        models = await listRemoteModels(client);
      } catch (e) {
        // Hosted APIs may not list models (404 / 405): then the kind is "openai" and the model must be named. Any other
        // failure (a refused key, a dead server) is the answer.
        if (!(e instanceof BackendError && (e.status === 404 || e.status === 405))) throw e;
      }
      if (kind === "auto") kind = kindFromModels(models);
      model ??= models[0]?.id;
      if (model === undefined) throw new VideolmError(`backend ${client.label} lists no models (GET /models): name the model with --backend-model`);
    }
    const preparer = typeof options.planner === "string" ? await RequestPreparer.load(options.planner) : options.planner;
    if (!preparer && kind !== "videolm" && kind !== "seed") {
      throw new VideolmError(
        `backend kind ${kind}: videolm plans the request by the served model's family rules; give --model with the checkpoint folder or repo id of the model the backend serves (its config, tokenizer and processor files)`,
      );
    }
    return new RemoteModel(client, kind, model, preparer);
  }

  /** Nothing to release (no sessions here); for symmetry with VideoModel. */
  async dispose(): Promise<void> {}

  async generate(request: GenerateRequest): Promise<RemoteGenerateResponse> {
    const { messages, media = {}, onToken, signal, prepared: given, thinkingBudget, responseFormat, ...explicit } = request;
    delete (explicit as Record<string, unknown>).onProgress;
    delete (explicit as Record<string, unknown>).prefillChunk;
    const options: GenerationOptions = this.preparer ? this.preparer.resolveOptions(explicit) : { ...DEFAULT_GENERATION_OPTIONS, ...explicit };
    const t0 = performance.now();
    const modelType = this.preparer?.config.modelType;
    let visuals: readonly VisualPlan[] | undefined;
    let prepared: PreparedRequest | undefined = given;
    if (this.kind !== "videolm" && this.kind !== "seed" && this.preparer) {
      if (sendsFrames(this.kind, modelType)) prepared ??= await this.preparer.prepare(messages, media, signal);
      visuals = prepared?.visuals ?? (await this.preparer.plan(messages, media, { signal })).visuals;
    }
    const uploads = this.kind === "videolm" ? await this.uploadLocalVideos(messages, signal) : new Map<unknown, { url: string; id: string }>();
    try {
      const body = await buildChatBody({
        kind: this.kind,
        model: this.remoteModel,
        modelType,
        messages,
        visuals,
        media,
        generation: explicit,
        thinkingBudget,
        responseFormat,
        onUnconstrained: (message) => this.client.log(message),
        uploaded: new Map([...uploads].map(([k, v]) => [k, v.url])),
        normalisation: this.preparer ? readNormalisation(this.preparer.dir) : undefined,
        signal,
      });
      const preprocessMs = given?.timings?.preprocessMs ?? performance.now() - t0;
      return await this.stream(body, options, preprocessMs, prepared?.timings?.decodeMs ?? 0, onToken, signal);
    } finally {
      for (const { id } of uploads.values()) void this.client.request("DELETE", `/uploads/${encodeURIComponent(id)}`).then((r) => r.body?.cancel(), () => {});
    }
  }

  /** Sends the body and gathers the streamed answer. */
  private async stream(
    body: Record<string, unknown>,
    options: GenerationOptions,
    preprocessMs: number,
    mediaDecodeMs: number,
    onToken: GenerateRequest["onToken"],
    signal: AbortSignal | undefined,
  ): Promise<RemoteGenerateResponse> {
    const tSend = performance.now();
    let firstAt: number | undefined;
    let lastAt = tSend;
    let text = "";
    let reasoning = "";
    let finish: string | undefined;
    let usage: { prompt_tokens?: number; completion_tokens?: number } | undefined;
    const logprobs: RemoteLogprob[] = [];
    let aborted = false;
    try {
      await this.client.streamEvents(
        "/chat/completions",
        body,
        (event) => {
          if (event.usage && typeof event.usage === "object") usage = event.usage as typeof usage;
          const choice = (event.choices as Record<string, unknown>[] | undefined)?.[0];
          if (!choice) return;
          // A streamed chunk has `delta`; a backend that answered in one piece has `message`.
          const delta = (choice.delta ?? choice.message ?? {}) as { content?: unknown; reasoning_content?: unknown; reasoning?: unknown };
          const content = typeof delta.content === "string" ? delta.content : "";
          const thought = typeof delta.reasoning_content === "string" ? delta.reasoning_content : typeof delta.reasoning === "string" ? delta.reasoning : "";
          const lp = ((choice.logprobs as { content?: unknown } | null)?.content ?? []) as { token: string; logprob: number; top_logprobs?: { token: string; logprob: number }[] }[];
          for (const e of lp) logprobs.push({ token: e.token, logprob: e.logprob, top: (e.top_logprobs ?? []).map((t) => ({ token: t.token, logprob: t.logprob })) });
          if (content || thought) {
            firstAt ??= performance.now();
            lastAt = performance.now();
            text += content;
            reasoning += thought;
            onToken?.({ token: -1, text: thought + content, logprob: lp[0]?.logprob ?? 0, answer: content, ...(thought ? { reasoning: thought } : {}) });
          }
          if (typeof choice.finish_reason === "string") finish = choice.finish_reason;
        },
        signal,
      );
    } catch (e) {
      if (!signal?.aborted) throw e;
      aborted = true;
    }
    const completionTokens = usage?.completion_tokens ?? logprobs.length;
    const ttftMs = (firstAt ?? lastAt) - tSend;
    const decodeMs = lastAt - (firstAt ?? lastAt);
    return {
      text,
      ...(reasoning ? { reasoning } : {}),
      tokens: [],
      promptTokens: usage?.prompt_tokens ?? 0,
      finishReason: aborted ? "aborted" : finish === "length" ? "length" : "stop",
      logprobs: undefined,
      options,
      timings: {
        preprocessMs,
        mediaDecodeMs,
        visionMs: 0,
        prefillMs: 0,
        ttftMs: preprocessMs + ttftMs,
        decodeMs,
        decodeTokensPerSecond: completionTokens > 1 && decodeMs > 0 ? ((completionTokens - 1) * 1000) / decodeMs : 0,
      },
      remote: { backend: this.backend, kind: this.kind, model: this.remoteModel, completionTokens, ...(options.logprobs !== undefined ? { logprobs } : {}) },
    };
  }

  /**
   * videolm backends: each video that is a local file or bytes goes up once per request (POST /v1/uploads), and is
   * referred to as upload://ID; http(s) and data: URLs are passed as they are (the backend fetches them under its own
   * media rules). Removed again after the request.
   */
  private async uploadLocalVideos(messages: GenerateRequest["messages"], signal?: AbortSignal): Promise<Map<unknown, { url: string; id: string }>> {
    const out = new Map<unknown, { url: string; id: string }>();
    const videos = messages.flatMap((m) => (typeof m.content === "string" ? [] : (m.content as ContentPart[]).filter((p): p is VideoPart => p.type === "video")));
    try {
      for (const part of videos) {
        const source = part.video;
        if (out.has(source) || frameList(source)) continue;
        const href = source instanceof URL ? source.href : source;
        if (typeof href === "string" && /^(https?|data):/i.test(href)) continue;
        const file = typeof href === "string" ? (/^file:/i.test(href) ? fileURLToPath(href) : href) : undefined;
        let data: Buffer;
        try {
          data = file ? await readFile(file) : (source as Buffer);
        } catch (e) {
          throw new VideolmError(`${file}: cannot read the video (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
        }
        const name = file ? path.basename(file) : "video.mp4";
        const response = await this.client.request("POST", `/uploads?filename=${encodeURIComponent(name)}`, {
          body: () => data as unknown as BodyInit, // a Buffer is a Uint8Array, which fetch sends as it is
          headers: { "Content-Type": "video/mp4" },
          signal,
        });
        const answer = (await this.client.readJson(response)) as { id?: unknown; url?: unknown };
        if (typeof answer.url !== "string" || typeof answer.id !== "string") throw new BackendError(`backend ${this.backend}: POST /uploads did not answer an upload object (is it a videolm serve?)`, this.backend);
        out.set(source as MediaSource, { url: answer.url, id: answer.id });
      }
    } catch (e) {
      for (const { id } of out.values()) void this.client.request("DELETE", `/uploads/${encodeURIComponent(id)}`).then((r) => r.body?.cancel(), () => {});
      throw e;
    }
    return out;
  }
}
