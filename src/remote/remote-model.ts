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
import { readFile, stat } from "node:fs/promises";
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

/** A video uploaded to a videolm backend; `key` (path, size, mtime) when it is kept for reuse. */
interface Upload {
  url: string;
  id: string;
  key?: string;
}

/** Uploaded files kept for follow-up requests (a videolm backend keeps uploads for hours: its --upload-ttl). */
const MAX_CACHED_UPLOADS = 32;

export class RemoteModel {
  private readonly uploadCache = new Map<string, Upload>();

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

  /** Removes the videos this model uploaded to a videolm backend (kept for reuse until now). */
  async dispose(): Promise<void> {
    const ids = [...this.uploadCache.values()].map((u) => u.id);
    this.uploadCache.clear();
    await Promise.all(ids.map((id) => this.client.request("DELETE", `/uploads/${encodeURIComponent(id)}`).then((r) => r.body?.cancel(), () => {})));
  }

  /** Keeps an upload for reuse; beyond MAX_CACHED_UPLOADS the oldest is forgotten and removed from the backend. */
  private remember(upload: Upload): void {
    this.uploadCache.set(upload.key!, upload);
    while (this.uploadCache.size > MAX_CACHED_UPLOADS) {
      const [oldest, u] = this.uploadCache.entries().next().value!;
      this.uploadCache.delete(oldest);
      this.deleteUpload(u.id);
    }
  }

  async generate(request: GenerateRequest): Promise<RemoteGenerateResponse> {
    // What is not a generation option is taken out; the rest (explicit options) goes to the backend.
    const { messages, media = {}, signal, prepared: given, ...rest } = request;
    const explicit: Partial<GenerationOptions> & Record<string, unknown> = { ...rest };
    for (const key of ["onToken", "thinkingBudget", "responseFormat", "onProgress", "prefillChunk"]) delete explicit[key];
    const options: GenerationOptions = this.preparer ? this.preparer.resolveOptions(explicit) : { ...DEFAULT_GENERATION_OPTIONS, ...explicit };
    const t0 = performance.now();
    const modelType = this.preparer?.config.modelType;
    let visuals: readonly VisualPlan[] | undefined;
    let prepared: PreparedRequest | undefined = given;
    if (this.kind !== "videolm" && this.kind !== "seed" && this.preparer) {
      if (sendsFrames(this.kind, modelType)) prepared ??= await this.preparer.prepare(messages, media, signal);
      visuals = prepared?.visuals ?? (await this.preparer.plan(messages, media, { signal })).visuals;
    }
    for (let attempt = 1; ; attempt++) {
      const uploads = this.kind === "videolm" ? await this.uploadLocalVideos(messages, signal) : new Map<unknown, Upload>();
      try {
        return await this.send(request, { explicit, options, modelType, visuals, prepared, uploads, t0 });
      } catch (e) {
        // A cached upload the backend no longer has (it restarted, or its upload lifetime passed): upload again, once.
        const stale = [...uploads.values()].filter((u) => u.key !== undefined);
        if (attempt > 1 || stale.length === 0 || !(e instanceof BackendError && e.status === 400 && /no upload/.test(e.message))) throw e;
        for (const u of stale) this.uploadCache.delete(u.key!);
      } finally {
        for (const u of uploads.values()) if (u.key === undefined) this.deleteUpload(u.id);
      }
    }
  }

  /** Builds the body for this backend kind and streams the answer. */
  private async send(
    request: GenerateRequest,
    ctx: { explicit: Partial<GenerationOptions>; options: GenerationOptions; modelType?: string; visuals?: readonly VisualPlan[]; prepared?: PreparedRequest; uploads: Map<unknown, Upload>; t0: number },
  ): Promise<RemoteGenerateResponse> {
    const { messages, media = {}, onToken, signal, prepared: given, thinkingBudget, responseFormat } = request;
    const { explicit, options, modelType, visuals, prepared, uploads, t0 } = ctx;
    {
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
    }
  }

  private deleteUpload(id: string): void {
    void this.client.request("DELETE", `/uploads/${encodeURIComponent(id)}`).then(
      (r) => r.body?.cancel(),
      () => {},
    );
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
   * videolm backends: each video that is a local file or bytes is uploaded (POST /v1/uploads) and referred to as
   * upload://ID; http(s) and data: URLs are passed as they are (the backend fetches them under its own media rules).
   * Files are kept there for reuse (uploadCache); bytes are removed after the request.
   */
  private async uploadLocalVideos(messages: GenerateRequest["messages"], signal?: AbortSignal): Promise<Map<unknown, Upload>> {
    const out = new Map<unknown, Upload>();
    const videos = messages.flatMap((m) => (typeof m.content === "string" ? [] : (m.content as ContentPart[]).filter((p): p is VideoPart => p.type === "video")));
    try {
      for (const part of videos) {
        const source = part.video;
        if (out.has(source) || frameList(source)) continue;
        const href = source instanceof URL ? source.href : source;
        if (typeof href === "string" && /^(https?|data):/i.test(href)) continue;
        const file = typeof href === "string" ? (/^file:/i.test(href) ? fileURLToPath(href) : href) : undefined;
        let data: Buffer;
        let key: string | undefined;
        try {
          if (file) {
            // A file already uploaded (same path, size and modification time) is referred to again: the backend's
            // frame cache then serves follow-up questions about it.
            const st = await stat(file);
            key = `${path.resolve(file)}\u0000${st.size}\u0000${st.mtimeMs}`;
            const cached = this.uploadCache.get(key);
            if (cached) {
              out.set(source as MediaSource, cached);
              continue;
            }
          }
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
        const upload: Upload = { url: answer.url, id: answer.id, ...(key !== undefined ? { key } : {}) };
        out.set(source as MediaSource, upload);
        if (key !== undefined) this.remember(upload);
      }
    } catch (e) {
      for (const u of out.values()) if (u.key === undefined) this.deleteUpload(u.id);
      throw e;
    }
    return out;
  }
}
