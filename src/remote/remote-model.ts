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
import type { ChatRequestMessage, ContentPart, MediaSource, VideoPart, VisualPlan } from "../engine/request.js";
import { VideolmError } from "../errors.js";
import { runEvents, videoPart, type EventsOptions, type EventsResponse, type EventsVideo } from "../events/run.js";
import type { Event, EventsResult, EventsTask } from "../events/types.js";
import { frameList } from "../families/media-parts.js";
import { DEFAULT_GENERATION_OPTIONS, type GenerationOptions } from "../generation/options.js";
import { readNormalisation } from "../server/thumbnails.js";
import { BackendClient, BackendError, DEFAULT_API_KEY_ENV, type BackendClientOptions } from "./backend-client.js";
import { kindFromModels, listRemoteModels, type BackendKind, type RemoteModelInfo } from "./backend-kind.js";
import { buildChatBody, sendsFrames, videolmVideoOptions } from "./request-shapes.js";

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

/**
 * Events / grounding on a backend: with a planner, runEvents' whole EventsResponse; from a videolm backend's
 * POST /v1/events (no planner), the EventsResult and the generation (the prompt and clip stay the backend's).
 */
export type RemoteEventsResponse = EventsResult & Partial<Omit<EventsResponse, keyof EventsResult | "response">> & { response: RemoteGenerateResponse };

/** EventsOptions' generation fields POST /v1/events takes, by their wire names (src/server/events-endpoint.ts PASSED). */
const EVENTS_ENDPOINT_FIELDS: Record<string, string> = { maxNewTokens: "max_tokens", temperature: "temperature", topP: "top_p", topK: "top_k", seed: "seed", repetitionPenalty: "repetition_penalty" };

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
    return this.withUploads(messages, signal, (uploads) => this.send(request, { explicit, options, modelType, visuals, prepared, uploads, t0 }));
  }

  /**
   * Runs `work` with the request's local videos uploaded (videolm backends; other kinds get none). A cached upload the
   * backend no longer has (it restarted, or its upload lifetime passed) is uploaded again, once.
   */
  private async withUploads<T>(messages: ChatRequestMessage[], signal: AbortSignal | undefined, work: (uploads: Map<unknown, Upload>) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const uploads = this.kind === "videolm" ? await this.uploadLocalVideos(messages, signal) : new Map<unknown, Upload>();
      try {
        return await work(uploads);
      } catch (e) {
        const stale = [...uploads.values()].filter((u) => u.key !== undefined);
        if (attempt > 1 || stale.length === 0 || !(e instanceof BackendError && e.status === 400 && /no upload/.test(e.message))) throw e;
        for (const u of stale) this.uploadCache.delete(u.key!);
      } finally {
        for (const u of uploads.values()) if (u.key === undefined) this.deleteUpload(u.id);
      }
    }
  }

  /** Dense captions of the video on the backend (VideoModel.events' result; see `eventsOn`). */
  events(video: EventsVideo, options: EventsOptions = {}): Promise<RemoteEventsResponse> {
    return this.eventsOn(video, "dense", undefined, options);
  }

  /** The span(s) where `query` happens, on the backend (VideoModel.ground's result; see `eventsOn`). */
  ground(video: EventsVideo, query: string, options: EventsOptions = {}): Promise<RemoteEventsResponse> {
    return this.eventsOn(video, "grounding", query, options);
  }

  /**
   * With a planner: runEvents as on a local model (the family's prompt with the planned frames' times, the output
   * format held by the backend's constrained decoding where its kind has it, the answer parsed here). Without one
   * (a videolm backend): the backend's own POST /v1/events, which plans, prompts and parses by its checkpoint.
   */
  private eventsOn(video: EventsVideo, task: EventsTask, query: string | undefined, options: EventsOptions): Promise<RemoteEventsResponse> {
    if (this.preparer) return runEvents({ preparer: this.preparer, generate: (r) => this.generate(r) }, video, task, query, options);
    if (this.kind !== "videolm") throw new VideolmError(`events on backend kind ${this.kind} are planned and parsed here: give --model with the checkpoint the backend serves`);
    return this.eventsEndpoint(video, task, query, options);
  }

  /** POST /v1/events on a videolm backend (src/server/events-endpoint.ts): one JSON answer, not streamed. */
  private async eventsEndpoint(video: EventsVideo, task: EventsTask, query: string | undefined, options: EventsOptions): Promise<RemoteEventsResponse> {
    if (task === "grounding" && !query?.trim()) throw new VideolmError("ground: give a query, e.g. model.ground(video, \"the red circle is visible\")");
    const { media = {}, constrained, signal, onToken, onProgress: _progress, thinkingBudget, ...generation } = options;
    const fields: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(generation)) {
      if (value === undefined) continue;
      const wire = EVENTS_ENDPOINT_FIELDS[key];
      if (!wire) throw new VideolmError(`events on backend ${this.backend} without --model: the backend's /v1/events does not take ${key}; give --model to plan here, or leave it out`);
      fields[wire] = value;
    }
    if (thinkingBudget !== undefined) throw new VideolmError(`events on backend ${this.backend} without --model: the backend's /v1/events does not take a thinking budget`);
    const part = videoPart(video);
    const messages: ChatRequestMessage[] = [{ role: "user", content: [part] }];
    const t0 = performance.now();
    const answer = await this.withUploads(messages, signal, async (uploads) => {
      const source = part.video;
      const url = uploads.get(source)?.url ?? (source instanceof URL ? source.href : source);
      if (typeof url !== "string") throw new VideolmError("backend kind videolm: a video given as a list of frames cannot be sent over the API; give a video file or URL");
      const body = {
        model: this.remoteModel,
        video: { url, ...videolmVideoOptions(part, media) },
        task,
        ...(query !== undefined ? { query } : {}),
        ...(constrained !== undefined ? { constrained } : {}),
        ...fields,
      };
      const response = await this.client.request("POST", "/events", { body: () => JSON.stringify(body), headers: { "Content-Type": "application/json" }, signal });
      return (await this.client.readJson(response)) as Record<string, unknown>;
    });
    if (typeof answer.raw !== "string" || !Array.isArray(answer.events) || typeof answer.duration !== "number") {
      throw new BackendError(`backend ${this.backend}: POST /events did not answer a videolm.events object (is it a videolm serve?)`, this.backend);
    }
    const usage = (answer.usage ?? {}) as { prompt_tokens?: number; completion_tokens?: number };
    const t = (answer.videolm_timings ?? {}) as Record<string, number | undefined>;
    const text = answer.raw;
    if (text) onToken?.({ token: -1, text, logprob: 0, answer: text });
    const finish = answer.finish_reason === "length" ? "length" : "stop";
    const remoteOptions = { ...DEFAULT_GENERATION_OPTIONS, ...generation };
    return {
      task,
      ...(query !== undefined ? { query } : {}),
      events: answer.events as Event[],
      raw: text,
      duration: answer.duration,
      parsed: answer.parsed === true,
      warnings: Array.isArray(answer.warnings) ? (answer.warnings as string[]) : [],
      response: {
        text,
        tokens: [],
        promptTokens: usage.prompt_tokens ?? 0,
        finishReason: finish,
        logprobs: undefined,
        options: remoteOptions,
        timings: {
          preprocessMs: t.preprocess_ms ?? 0,
          mediaDecodeMs: t.media_decode_ms ?? 0,
          visionMs: t.vision_ms ?? 0,
          prefillMs: 0,
          ttftMs: t.ttft_ms ?? performance.now() - t0,
          decodeMs: 0,
          decodeTokensPerSecond: t.decode_tokens_per_second ?? 0,
        },
        remote: { backend: this.backend, kind: this.kind, model: this.remoteModel, completionTokens: usage.completion_tokens ?? 0 },
      },
    };
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
