/**
 * `videolm serve`: one loaded model behind an OpenAI-compatible HTTP API, plus the web app.
 *
 *   GET  /                          the web app (static files from src/web, or dist/web when built)
 *   GET  /health                    status, queue and counters
 *   GET  /v1/models, /v1/models/ID  the served model
 *   POST /v1/chat/completions       OpenAI chat completions (JSON or `stream: true` server-sent events)
 *   POST /v1/events                 a video's events (grounding / dense captions) as JSON, SRT, VTT or CSV: a chat
 *                                   completion with response_format videolm_events underneath (events-endpoint.ts)
 *   POST /v1/uploads                raw video body → {id, url: "upload://ID", …}; DELETE /v1/uploads/ID
 *   POST /v1/plan                   the sampling plan of a request (frames, times, sizes, tokens) without running it
 *   GET  /v1/plans/ID/visuals/V/frames/F.jpg   thumbnail of a sampled frame, as the model sees it
 *
 * A request's body is read whole (bounded by --max-body-bytes and --body-timeout; headers by --headers-timeout)
 * before it is admitted, so a slow or unfinished body never holds a place in the queue. Work then flows through
 * `Admission` (at most 1 + --max-queue requests in flight, 429 beyond), the preparation worker (prep-pool.ts: media
 * decoding, template, tokenization and thumbnails on a worker thread, one request at a time, --prepare-timeout) and
 * the generation lane (one generation at a time). The event loop only routes, validates and streams, so /health and
 * other clients answer while a request is prepared. A client that disconnects aborts its request wherever it is
 * (download, decoding, waiting, generating). Every request builds its own prompt, KV cache and sampler, so nothing
 * carries over from one request to the next.
 */
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { GenerateRequest, GenerateResponse } from "../engine/model.js";
import type { RequestPreparer } from "../engine/preparer.js";
import type { MediaOptions } from "../engine/request.js";
import type { TokenEvent } from "../engine/generate.js";
import { parseChatRequest, type ChatRequest, type RequestLimits } from "./chat-request.js";
import { badRequest, errorBody, HttpError, toHttpError } from "./errors.js";
import { answerClientError, BodyBudget, formatBytes, readJson, sendError, sendJson, SseStream } from "./http.js";
import { relabel, resolveMessages, type MediaPolicy } from "./media.js";
import type { WeightPrecision } from "../onnx/layers.js";
import { PrepPool } from "./prep-pool.js";
import type { PrepareJobOptions } from "./prep-worker.js";
import { Admission, Lane } from "./queue.js";
import { TokenInfo, type TokenLogprob } from "./token-info.js";
import { UPLOAD_SCHEME, UploadStore } from "./uploads.js";
import { evsKeptTokens } from "../engine/evs.js";
import { EVENTS_ROUTE } from "./events-endpoint.js";
import { chatEventsFields, chatEventsPlan } from "./chat-events.js";

/** What the server needs of a model (VideoModel satisfies it). */
export interface ServedModel {
  readonly preparer: RequestPreparer;
  /** For the plan's cost estimate (default fp32, the default cache folder). */
  readonly dtype?: WeightPrecision;
  readonly cacheDir?: string;
  generate(request: GenerateRequest): Promise<GenerateResponse>;
}

export interface ServerOptions extends RequestLimits {
  host: string;
  port: number;
  /** The id clients send as `model` (default: the checkpoint folder's name). */
  modelName?: string;
  /** Requests waiting beyond the one being served. */
  maxQueue: number;
  /** Largest prompt (text + visual tokens). */
  maxPromptTokens: number;
  maxBodyBytes: number;
  /** Bytes of JSON bodies being received at once, all connections together (default 4 × maxBodyBytes); 429 beyond. */
  maxBodyBytesInFlight?: number;
  /** A JSON request body must arrive whole within this time (ms); 408 otherwise. Uploads: the longest pause. */
  bodyTimeoutMs: number;
  /** Uploads slower than this on average (bytes/s, judged after bodyTimeoutMs) are cut with 408. */
  uploadMinBytesPerSecond: number;
  /** The request line and headers must arrive within this time (ms); Node answers 408 and closes otherwise. */
  headersTimeoutMs: number;
  /** Wall-clock limit of one request's preparation (media decoding, template, tokenization) in ms; 0 = none. */
  prepareTimeoutMs: number;
  /** Largest stored width × height of an image or video frame; larger media is refused before decoding. */
  maxInputPixels: number;
  maxUploadBytes: number;
  maxUploadTotalBytes: number;
  uploadTtlMs: number;
  maxMediaBytes: number;
  mediaTimeoutMs: number;
  allowPrivateMedia: boolean;
  allowedMediaDir?: string;
  /** Folder of the web app's files (default: found next to this module). */
  webDir?: string;
  /** One line per request (default: stderr). */
  log?: (line: string) => void;
}

export const DEFAULT_SERVER_OPTIONS: Omit<ServerOptions, "allowedMediaDir" | "modelName" | "webDir" | "log" | "maxBodyBytesInFlight"> = {
  host: "127.0.0.1",
  port: 8080,
  maxQueue: 8,
  maxTokens: 4096,
  maxFrames: 256,
  maxFramePixels: 1280 * 28 * 28,
  maxMediaParts: 8,
  maxPromptTokens: 32768,
  maxBodyBytes: 64 * 1024 ** 2,
  bodyTimeoutMs: 30_000,
  uploadMinBytesPerSecond: 32 * 1024,
  headersTimeoutMs: 10_000,
  prepareTimeoutMs: 60_000,
  maxInputPixels: 50_000_000, // the media code's DEFAULT_MAX_INPUT_PIXELS
  maxUploadBytes: 512 * 1024 ** 2,
  maxUploadTotalBytes: 4 * 1024 ** 3,
  uploadTtlMs: 6 * 3600_000,
  maxMediaBytes: 256 * 1024 ** 2,
  mediaTimeoutMs: 60_000,
  allowPrivateMedia: false,
};

/**
 * A route that runs a chat completion: how it reads its body into a chat request, and how it answers with the
 * finished (non-streamed) completion. /v1/chat/completions answers OpenAI's body as it is; /v1/events
 * (events-endpoint.ts) reshapes it. Both share admission, the queue, aborts, limits and counters (chat()).
 */
export interface ChatRoute<R extends ChatRequest = ChatRequest> {
  parse(body: unknown, limits: RequestLimits): R;
  respond(res: ServerResponse, completion: ChatCompletionBody, request: R): void;
  /** What the route adds to the request's preparation (/v1/events: the family's events prompt, written in the worker). */
  prepareJob?(request: R): Partial<PrepareJobOptions>;
}

/** The JSON body of a finished chat completion (what /v1/chat/completions answers without `stream`). */
export interface ChatCompletionBody {
  id: string;
  created: number;
  model: string;
  object: "chat.completion";
  choices: { index: number; message: { role: "assistant"; content: string; reasoning_content?: string } & Record<string, unknown>; logprobs: unknown; finish_reason: string }[];
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number } & Record<string, unknown>;
  videolm_timings: Record<string, number>;
}

const CHAT_COMPLETIONS_ROUTE: ChatRoute = { parse: parseChatRequest, respond: (res, completion) => sendJson(res, 200, completion) };

export interface ServerStats {
  completed: number;
  aborted: number;
  failed: number;
  rejected: number;
}

interface StoredPlan {
  thumbnails: Buffer[][];
}

/** The path of a request target (origin-form `/p?q`, or absolute-form `http://h/p?q`) and its query; undefined when malformed. */
function splitTarget(target: string): { path: string; query: URLSearchParams } | undefined {
  let rest = target;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(rest)) {
    try {
      const u = new URL(rest);
      rest = u.pathname + u.search;
    } catch {
      return undefined;
    }
  }
  const q = rest.indexOf("?");
  const p = q < 0 ? rest : rest.slice(0, q);
  if (!p.startsWith("/") || p.startsWith("//")) return undefined;
  return { path: p, query: new URLSearchParams(q < 0 ? "" : rest.slice(q + 1)) };
}

/** A path segment, percent-decoded; undefined when it is not valid percent-encoded UTF-8. */
function decodeSegment(s: string): string | undefined {
  try {
    return decodeURIComponent(s);
  } catch {
    return undefined;
  }
}

/** At most `max` characters of client text for a message. */
const clip = (s: string, max = 200) => (s.length > max ? `${s.slice(0, max)}…` : s);

const WEB_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".ico": "image/x-icon",
};

function findWebDir(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  for (const dir of [path.join(here, "../web"), path.join(here, "../../src/web")]) {
    try {
      if (readdirSync(dir).includes("index.html")) return dir;
    } catch {
      // try the next
    }
  }
  return path.join(here, "../web");
}

/** Web app files, read once at start (so no request path ever reaches the file system). */
function loadWebFiles(dir: string): Map<string, { type: string; data: Buffer }> {
  const files = new Map<string, { type: string; data: Buffer }>();
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch {
    return files;
  }
  for (const name of names) {
    const type = WEB_TYPES[path.extname(name)];
    if (type && /^[\w.-]+$/.test(name)) files.set(`/${name}`, { type, data: readFileSync(path.join(dir, name)) });
  }
  const index = files.get("/index.html");
  if (index) files.set("/", index);
  return files;
}

const WEB_HEADERS = {
  "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; style-src 'self'; script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "no-referrer",
  "Cache-Control": "no-cache",
};

export class VideolmServer {
  readonly stats: ServerStats = { completed: 0, aborted: 0, failed: 0, rejected: 0 };
  readonly modelName: string;
  private readonly admission: Admission;
  private readonly genLane = new Lane(1);
  private readonly bodyBudget: BodyBudget;
  private readonly http: http.Server;
  private readonly web: Map<string, { type: string; data: Buffer }>;
  private readonly plans = new Map<string, StoredPlan>();
  private readonly inFlight = new Set<AbortController>();
  private readonly tokenInfo: TokenInfo;
  private readonly log: (line: string) => void;
  private readonly created = Math.floor(Date.now() / 1000);

  private constructor(
    readonly model: ServedModel,
    readonly options: ServerOptions,
    readonly uploads: UploadStore,
    private readonly prep: PrepPool,
    log: (line: string) => void,
  ) {
    this.modelName = options.modelName ?? path.basename(path.resolve(model.preparer.dir));
    this.admission = new Admission(1 + options.maxQueue);
    this.bodyBudget = new BodyBudget(options.maxBodyBytesInFlight ?? 4 * options.maxBodyBytes);
    this.web = loadWebFiles(options.webDir ?? findWebDir());
    this.tokenInfo = new TokenInfo(model.preparer.tokenizer);
    this.log = log;
    // Slow headers are cut by Node (408 and close) after headersTimeout; bodies by the server's own watch (watchBody),
    // which knows a JSON body from an upload. The connections check runs often enough for the limit to be exact-ish.
    this.http = http.createServer(
      { headersTimeout: options.headersTimeoutMs, requestTimeout: 0, connectionsCheckingInterval: Math.max(100, Math.min(1000, options.headersTimeoutMs / 4)) },
      (req, res) => void this.handle(req, res),
    );
    this.http.keepAliveTimeout = 5_000;
    this.http.on("clientError", answerClientError);
  }

  static async start(model: ServedModel, options: Partial<ServerOptions> = {}): Promise<VideolmServer> {
    const full: ServerOptions = { ...DEFAULT_SERVER_OPTIONS, ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) };
    const log = full.log ?? ((line: string) => process.stderr.write(line + "\n"));
    const prep = await PrepPool.start({ dir: model.preparer.dir, timeoutMs: full.prepareTimeoutMs, log });
    let uploads: UploadStore | undefined;
    try {
      uploads = await UploadStore.create({ maxBytes: full.maxUploadBytes, maxTotalBytes: full.maxUploadTotalBytes, ttlMs: full.uploadTtlMs });
      const server = new VideolmServer(model, full, uploads, prep, log);
      await new Promise<void>((resolve, reject) => {
        server.http.once("error", reject);
        server.http.listen(full.port, full.host, () => {
          server.http.off("error", reject);
          resolve();
        });
      });
      return server;
    } catch (err) {
      uploads?.close();
      await prep.close();
      throw err;
    }
  }

  get address(): AddressInfo {
    return this.http.address() as AddressInfo;
  }

  get url(): string {
    const { address, port, family } = this.address;
    return `http://${family === "IPv6" ? `[${address}]` : address}:${port}`;
  }

  /** Stops listening, aborts requests in flight, removes uploads. */
  async close(): Promise<void> {
    for (const c of this.inFlight) c.abort(new Error("server shutting down"));
    const closed = new Promise<void>((resolve) => this.http.close(() => resolve()));
    this.http.closeAllConnections();
    await closed;
    await this.prep.close();
    this.uploads.close();
    this.plans.clear();
  }

  health() {
    return {
      status: "ok",
      model: this.modelName,
      queue: { in_flight: this.admission.active, generating: this.genLane.busy, waiting: this.genLane.queued + this.prep.queued, max_queue: this.options.maxQueue },
      uploads: this.uploads.count,
      requests: { ...this.stats },
    };
  }

  private modelObject() {
    return { id: this.modelName, object: "model", created: this.created, owned_by: "videolm", context_length: this.model.preparer.contextLength, family: this.model.preparer.family.name };
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const t0 = performance.now();
    res.on("finish", () => this.log(`${req.method} ${clip(req.url?.split("?")[0] ?? "", 120)} ${res.statusCode} ${Math.round(performance.now() - t0)} ms`));
    this.watchBody(req, res, req.method === "POST" && req.url?.split("?")[0] === "/v1/uploads" ? "upload" : "json");
    try {
      await this.route(req, res);
    } catch (err) {
      const e = toHttpError(err);
      if (e.status >= 500) this.log(`error: ${(err as Error)?.stack ?? String(err)}`);
      if (e.status === 429) this.stats.rejected++;
      if (!res.headersSent) sendError(res, e);
      else res.end();
    }
  }

  /**
   * Cuts a request whose body has not arrived in time (408, connection closed): a JSON body (or any body but an
   * upload's) must be complete within --body-timeout; an upload may pause at most that long and must average
   * uploadMinBytesPerSecond once that time has passed. Requests without a body are complete at once.
   */
  private watchBody(req: IncomingMessage, res: ServerResponse, kind: "json" | "upload"): void {
    if (req.complete) return;
    const { bodyTimeoutMs, uploadMinBytesPerSecond } = this.options;
    const socket = req.socket;
    const t0 = Date.now();
    const start = socket.bytesRead;
    let last = start;
    let lastChange = t0;
    const timer = setInterval(
      () => {
        if (req.complete || socket.destroyed) return clearInterval(timer);
        const now = Date.now();
        if (socket.bytesRead !== last) {
          last = socket.bytesRead;
          lastChange = now;
        }
        let why: string | undefined;
        const secs = `${bodyTimeoutMs / 1000} s`;
        if (kind === "json" && now - t0 > bodyTimeoutMs) why = `the request body did not arrive within ${secs} (--body-timeout)`;
        else if (kind === "upload" && now - lastChange > bodyTimeoutMs) why = `the upload stalled: no data for ${secs} (--body-timeout)`;
        else if (kind === "upload" && now - t0 > bodyTimeoutMs && ((last - start) * 1000) / (now - t0) < uploadMinBytesPerSecond) {
          why = `the upload is slower than the server's minimum of ${formatBytes(uploadMinBytesPerSecond)}/s`;
        }
        if (!why) return;
        clearInterval(timer);
        if (!res.headersSent) {
          sendError(res, new HttpError(408, why, "invalid_request_error", null, "request_timeout"));
          res.once("finish", () => socket.destroy());
          setTimeout(() => socket.destroy(), 1000).unref();
        } else socket.destroy();
      },
      Math.max(50, Math.min(1000, bodyTimeoutMs / 4)),
    );
    timer.unref();
    res.once("close", () => clearInterval(timer));
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const target = splitTarget(req.url ?? "/");
    if (!target) throw new HttpError(400, `malformed request path ${JSON.stringify(clip(req.url ?? "", 100))}`, "invalid_request_error", null, "invalid_path");
    const p = target.path;
    const method = req.method ?? "GET";
    const allow = (...methods: string[]) => {
      if (!methods.includes(method)) {
        res.setHeader("Allow", methods.join(", "));
        throw new HttpError(405, `${method} is not allowed on ${p} (use ${methods.join(" or ")})`, "invalid_request_error", null, "method_not_allowed");
      }
    };
    if (p === "/health") {
      allow("GET", "HEAD");
      return sendJson(res, 200, this.health());
    }
    if (p === "/v1/models") {
      allow("GET");
      return sendJson(res, 200, { object: "list", data: [this.modelObject()] });
    }
    if (p.startsWith("/v1/models/")) {
      allow("GET");
      const id = decodeSegment(p.slice("/v1/models/".length));
      if (id === undefined) throw new HttpError(400, `malformed model id in the path (bad percent-encoding): ${JSON.stringify(clip(p, 100))}`, "invalid_request_error", null, "invalid_path");
      if (id !== this.modelName) throw this.unknownModel(id);
      return sendJson(res, 200, this.modelObject());
    }
    if (p === "/v1/chat/completions") {
      allow("POST");
      return this.chat(req, res, CHAT_COMPLETIONS_ROUTE);
    }
    if (p === "/v1/events") {
      allow("POST");
      return this.chat(req, res, EVENTS_ROUTE);
    }
    if (p === "/v1/uploads") {
      allow("POST");
      return this.upload(req, res, target.query);
    }
    let m = /^\/v1\/uploads\/([\w-]+)$/.exec(p);
    if (m) {
      allow("DELETE", "GET");
      const upload = this.uploads.get(m[1]);
      if (!upload) throw new HttpError(404, `no upload ${m[1]} on this server`, "invalid_request_error", null, "upload_not_found");
      if (method === "DELETE") await this.uploads.remove(upload.id);
      return sendJson(res, 200, method === "DELETE" ? { id: upload.id, object: "upload", deleted: true } : this.uploadObject(upload));
    }
    if (p === "/v1/plan") {
      allow("POST");
      return this.plan(req, res);
    }
    m = /^\/v1\/plans\/(plan_[0-9a-f]+)\/visuals\/(\d+)\/frames\/(\d+)\.jpg$/.exec(p);
    if (m) {
      allow("GET");
      const thumb = this.plans.get(m[1])?.thumbnails[Number(m[2])]?.[Number(m[3])];
      if (!thumb) throw new HttpError(404, "no such plan thumbnail (plans are kept for the most recent requests only)", "invalid_request_error", null, "not_found");
      res.writeHead(200, { "Content-Type": "image/jpeg", "Content-Length": thumb.length, "Cache-Control": "private, max-age=3600" });
      res.end(thumb);
      return;
    }
    const file = this.web.get(p);
    if (file && (method === "GET" || method === "HEAD")) {
      res.writeHead(200, { "Content-Type": file.type, "Content-Length": file.data.length, ...WEB_HEADERS });
      res.end(method === "HEAD" ? undefined : file.data);
      return;
    }
    throw new HttpError(404, `no route ${clip(method, 20)} ${clip(p, 100)} (the API is under /v1: /v1/chat/completions, /v1/models)`, "invalid_request_error", null, "not_found");
  }

  private unknownModel(id: string): HttpError {
    return new HttpError(404, `the model ${JSON.stringify(clip(id, 100))} does not exist on this server (it serves ${JSON.stringify(this.modelName)})`, "invalid_request_error", "model", "model_not_found");
  }

  /** Takes an admission slot and an abort controller tied to the client's connection. */
  private begin(res: ServerResponse): { signal: AbortSignal; end: () => void } {
    const leave = this.admission.enter();
    const controller = new AbortController();
    this.inFlight.add(controller);
    const onClose = () => {
      if (!res.writableFinished) controller.abort(new Error("client disconnected"));
    };
    res.on("close", onClose);
    if (res.destroyed || res.socket?.destroyed) onClose(); // gone while its body was being parsed
    return {
      signal: controller.signal,
      end: () => {
        leave();
        this.inFlight.delete(controller);
      },
    };
  }

  private mediaPolicy(): MediaPolicy {
    const o = this.options;
    return { allowPrivate: o.allowPrivateMedia, allowedMediaDir: o.allowedMediaDir, maxMediaBytes: o.maxMediaBytes, mediaTimeoutMs: o.mediaTimeoutMs, uploads: this.uploads };
  }

  /**
   * Server-wide media settings of every request (wire requests cannot set these: unknown options are a 400). The
   * frame defaults are the checkpoint's, as on the command line; --max-frames caps them (PrepareJobOptions.maxFrames).
   */
  private mediaDefaults(): MediaOptions {
    return { maxInputPixels: this.options.maxInputPixels };
  }

  /** Reads and validates a chat request's body: before admission, so an unfinished body holds no place in the queue. */
  private async readChatRequest<R extends ChatRequest>(req: IncomingMessage, route: ChatRoute<R>): Promise<R> {
    const body = await readJson(req, this.options.maxBodyBytes, "--max-body-bytes", this.bodyBudget);
    const request = route.parse(body, this.options);
    if (request.model !== undefined && request.model !== this.modelName) throw this.unknownModel(request.model);
    return request;
  }

  /**
   * Resolves a request's media, then plans it in the worker from headers alone (the shared defaults, the server's
   * limits and the cost estimate) and, when it fits (or for a plan), decodes what was planned. All errors here are
   * plain HTTP errors.
   */
  private async prepare(request: ChatRequest, signal: AbortSignal, { forPlan = false, job = {} as Partial<PrepareJobOptions> } = {}) {
    const resolved = await resolveMessages(request.messages, this.mediaPolicy(), signal);
    try {
      const preparer = this.model.preparer;
      const explicit = request.generation;
      const options = preparer.resolveOptions(explicit);
      const { prepared, plan, thumbnails } = await this.prep.prepare(
        resolved.messages,
        { ...this.mediaDefaults(), ...(request.flash !== undefined ? { flash: request.flash } : {}) },
        {
          maxPromptTokens: this.options.maxPromptTokens,
          thumbnails: forPlan,
          forPlan,
          maxNewTokens: explicit.maxNewTokens,
          maxNewTokensCap: this.options.maxTokens,
          maxFrames: this.options.maxFrames,
          dtype: this.model.dtype,
          cacheRoot: this.model.cacheDir,
          ...job,
        },
        signal,
      );
      options.maxNewTokens = plan.maxNewTokens;
      return { request, resolved, prepared, plan, thumbnails: thumbnails ?? [], options, problem: plan.problem };
    } catch (err) {
      await resolved.cleanup();
      throw relabelError(err, resolved.labels);
    }
  }

  private async chat<R extends ChatRequest>(req: IncomingMessage, res: ServerResponse, route: ChatRoute<R>): Promise<void> {
    let parsed: R;
    try {
      parsed = await this.readChatRequest(req, route);
    } catch (err) {
      if (toHttpError(err).status !== 429) this.stats.failed++;
      throw err;
    }
    const { signal, end } = this.begin(res);
    let sse: SseStream | undefined;
    try {
      const { request, resolved, prepared, options } = await this.prepare(parsed, signal, { job: route.prepareJob?.(parsed) });
      try {
        const id = `chatcmpl-${randomBytes(12).toString("hex")}`;
        const created = Math.floor(Date.now() / 1000);
        const head = { id, created, model: this.modelName, system_fingerprint: "videolm" };
        const logprobEntry = (e: TokenEvent) => ({
          ...this.tokenInfo.entry(e.token, e.logprob),
          top_logprobs: (e.top ?? []).slice(0, request.topLogprobs).map((t) => this.tokenInfo.entry(t.token, t.logprob)),
        });
        if (request.stream) {
          sse = new SseStream(res);
          sse.open();
          sse.send({ ...head, object: "chat.completion.chunk", choices: [{ index: 0, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }] });
        }
        const stream = sse;
        // response_format: json_object / json_schema (held to it) or videolm_events (held to the family's format when
        // constrained; the answer parsed into events, chat-events.ts).
        const eventsPlan = request.events ? chatEventsPlan(this.model.preparer, request.events) : undefined;
        const responseFormat = request.responseFormat ?? eventsPlan?.responseFormat;
        const result = await this.genLane.run(
          () =>
            this.model.generate({
              messages: resolved.messages,
              prepared,
              ...options,
              thinkingBudget: request.thinkingBudget,
              ...(responseFormat ? { responseFormat } : {}),
              signal,
              onToken: stream
                ? (e) => {
                    const lp = request.logprobs && e.token >= 0 ? { content: [logprobEntry(e)] } : null;
                    // Thinking checkpoints: the engine splits the text into reasoning and answer (OpenAI-compatible
                    // servers stream the former as `reasoning_content`).
                    const split = e as TokenEvent & { reasoning?: string; answer?: string };
                    const content = split.answer ?? split.text;
                    const delta = split.reasoning ? { content, reasoning_content: split.reasoning } : { content };
                    if (content || split.reasoning || lp) stream.send({ ...head, object: "chat.completion.chunk", choices: [{ index: 0, delta, logprobs: lp, finish_reason: null }] });
                  }
                : undefined,
            }),
          signal,
        );
        if (result.finishReason === "aborted" || signal.aborted) {
          this.stats.aborted++;
          res.destroy();
          return;
        }
        this.stats.completed++;
        const visual = result.visualTokens;
        const usage = {
          prompt_tokens: result.promptTokens,
          completion_tokens: result.tokens.length,
          total_tokens: result.promptTokens + result.tokens.length,
          // Families that decide visual tokens in the vision pass (InternVL-Flash): planned vs kept, per frame/tile.
          ...(visual ? { videolm_visual_tokens: { method: visual.method, planned: visual.plannedTokens, kept: visual.keptTokens, units: visual.units } } : {}),
        };
        const timings = { preprocess_ms: result.timings.preprocessMs, media_decode_ms: result.timings.mediaDecodeMs ?? 0, vision_ms: result.timings.visionMs, ttft_ms: result.timings.ttftMs, decode_tokens_per_second: result.timings.decodeTokensPerSecond };
        const eventsFields = eventsPlan ? chatEventsFields(result.text, eventsPlan, prepared, resolved.messages) : undefined;
        if (stream) {
          stream.send({ ...head, object: "chat.completion.chunk", choices: [{ index: 0, delta: { ...eventsFields }, logprobs: null, finish_reason: result.finishReason }], usage });
          if (request.includeUsage) stream.send({ ...head, object: "chat.completion.chunk", choices: [], usage });
          stream.done();
          return;
        }
        const reasoning = (result as GenerateResponse & { reasoning?: string }).reasoning;
        const logprobs = request.logprobs
          ? {
              content: (result.logprobs ?? []).map((l) => ({
                ...this.tokenInfo.entry(l.token, l.logprob),
                top_logprobs: (l.top ?? []).slice(0, request.topLogprobs).map((t) => this.tokenInfo.entry(t.token, t.logprob)),
              })) as (TokenLogprob & { top_logprobs: TokenLogprob[] })[],
            }
          : null;
        route.respond(res, {
          ...head,
          object: "chat.completion",
          choices: [{ index: 0, message: { role: "assistant", content: result.text, ...(reasoning ? { reasoning_content: reasoning } : {}), ...eventsFields }, logprobs, finish_reason: result.finishReason }],
          usage,
          videolm_timings: timings,
        }, parsed);
      } finally {
        await resolved.cleanup();
      }
    } catch (err) {
      if (signal.aborted) {
        this.stats.aborted++;
        res.destroy();
        return;
      }
      const e = toHttpError(err);
      if (e.status === 429) this.stats.rejected++;
      else this.stats.failed++;
      if (e.status >= 500) this.log(`error: ${(err as Error)?.stack ?? String(err)}`);
      if (sse) {
        // Headers are gone: report in-band, as OpenAI does for errors during a stream.
        sse.send(errorBody(e));
        sse.done();
      } else sendError(res, e);
    } finally {
      end();
    }
  }

  private uploadObject(u: { id: string; filename: string; bytes: number; contentType: string; createdAt: number }) {
    return { id: u.id, object: "upload", url: `${UPLOAD_SCHEME}${u.id}`, filename: u.filename, bytes: u.bytes, content_type: u.contentType, created_at: Math.floor(u.createdAt / 1000) };
  }

  private async upload(req: IncomingMessage, res: ServerResponse, query: URLSearchParams): Promise<void> {
    const type = String(req.headers["content-type"] ?? "");
    if (/^(multipart\/form-data|application\/(x-www-form-urlencoded|json))/i.test(type)) {
      throw badRequest(`send the video file itself as the request body (Content-Type video/*), not ${type.split(";")[0]}`, null, "invalid_content_type");
    }
    const filename = query.get("filename") ?? String(req.headers["x-filename"] ?? "upload");
    const upload = await this.uploads.receive(req, filename);
    sendJson(res, 201, this.uploadObject(upload));
  }

  private async plan(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const parsed = await this.readChatRequest(req, CHAT_COMPLETIONS_ROUTE);
    const { signal, end } = this.begin(res);
    try {
      // A plan that does not fit the context or the prompt limit is still a plan: it is reported with fits: false
      // (except a text so long that its token count is over the limit by the cheap bound: that is refused).
      const { request, resolved, prepared, plan, thumbnails, options, problem } = await this.prepare(parsed, signal, { forPlan: true });
      try {
        const id = `plan_${randomBytes(10).toString("hex")}`;
        this.plans.set(id, { thumbnails });
        while (this.plans.size > 16) this.plans.delete(this.plans.keys().next().value!);
        const mediaUrls = request.messages.flatMap((m) => (typeof m.content === "string" ? [] : m.content.flatMap((p) => (p.kind === "text" ? [] : [p.url]))));
        sendJson(res, 200, {
          id,
          object: "videolm.plan",
          model: this.modelName,
          prompt_tokens: prepared.inputIds.length,
          max_new_tokens: options.maxNewTokens,
          context_length: this.model.preparer.contextLength,
          fits: problem === undefined,
          ...(problem ? { problem } : {}),
          limits: plan.limits.map((l) => ({ name: l.name, value: l.value, source: l.source, note: l.note })),
          estimate: plan.cost,
          timings: { plan_ms: Math.round(plan.planMs * 10) / 10, preprocess_ms: Math.round((prepared.timings?.preprocessMs ?? 0) * 10) / 10, media_decode_ms: Math.round((prepared.timings?.decodeMs ?? 0) * 10) / 10 },
          visuals: prepared.visuals.map((v, i) => ({
            kind: v.kind,
            source: (mediaUrls[i] ?? v.source).slice(0, 200),
            width: v.size[1],
            height: v.size[0],
            grid: v.batch.grid,
            tokens: v.tokens,
            sample_fps: v.sampleFps ?? null,
            // EVS pruning (video_url.prune): the rate and the tokens kept (which ones the vision pass decides).
            ...(v.prune ? { prune: { rate: v.prune, kept_tokens: evsKeptTokens(v) } } : {}),
            limits: (v.limits ?? []).map((l) => l.note),
            frames: (v.kind === "video" ? (v.frameIndices ?? []) : [0]).map((index, f) => ({
              index,
              time: v.timestamps?.[f] ?? 0,
              thumbnail: thumbnails[i]?.[f] ? `/v1/plans/${id}/visuals/${i}/frames/${f}.jpg` : null,
            })),
          })),
        });
      } finally {
        await resolved.cleanup();
      }
    } finally {
      end();
    }
  }
}

function relabelError(err: unknown, labels: Map<string, string>): unknown {
  if (labels.size === 0 || err instanceof HttpError || !(err instanceof Error)) return err;
  err.message = relabel(err.message, labels);
  return err;
}

