/**
 * HTTP to a remote OpenAI-compatible backend (another `videolm serve`, vLLM, SGLang, a hosted API): one place for the
 * base URL, the API key, retries, time limits and the wording of failures.
 *
 *   request ─ attempt ─ 2xx ──────────────────────────────→ the response (a stream is read with an idle limit)
 *               │  429 / 500 / 502 / 503 / 504 / reset ─→ wait (Retry-After, else exponential backoff with equal
 *               │                                          jitter) and try again, at most `maxAttempts` in all
 *               └─ other status, or attempts spent ────→ BackendError: "backend HOST: HTTP 503 …: message"
 *
 * Errors name the backend by host (and port) only: never the path, the query or the API key; a key the backend
 * echoes back in its own message is replaced by "***". The key travels only in the Authorization header.
 */
import { VideolmError } from "../errors.js";

/** Default per-attempt limit: until the response headers arrive, and the longest pause inside a streamed answer. */
export const DEFAULT_BACKEND_TIMEOUT_MS = 600_000;
export const DEFAULT_BACKEND_ATTEMPTS = 4;
/** Environment variable read for the API key when no other name is given. */
export const DEFAULT_API_KEY_ENV = "VIDEOLM_BACKEND_API_KEY";

export interface BackendClientOptions {
  apiKey?: string;
  /** Per attempt: the response must start within this time, and a streamed body may pause at most this long. */
  timeoutMs?: number;
  /** Attempts in all, the first included (default 4); 1 = no retry. */
  maxAttempts?: number;
  /** First retry delay before jitter (default 500 ms); doubles each attempt up to maxBackoffMs (default 20 s). */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** Longest Retry-After honoured (default 60 s); a longer one is waited for this long. */
  maxRetryAfterMs?: number;
  /** Jitter source in [0, 1) (tests). */
  random?: () => number;
  /** One line per retry (e.g. stderr); never holds the key. */
  log?: (line: string) => void;
}

/** A backend's answer that is a failure: the HTTP status (absent for network failures and timeouts). */
export class BackendError extends VideolmError {
  constructor(
    message: string,
    readonly backend: string,
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "BackendError";
  }
}

const RETRY_STATUSES = new Set([429, 500, 502, 503, 504]);

/** Network failures worth another attempt: the connection was reset, refused or closed early. */
function isConnectionFailure(e: unknown): boolean {
  if (!(e instanceof TypeError)) return false; // fetch() rejects with a TypeError for network failures
  const code = (e.cause as { code?: string } | undefined)?.code ?? "";
  return /ECONNRESET|ECONNREFUSED|EPIPE|ETIMEDOUT|EAI_AGAIN|UND_ERR_SOCKET|UND_ERR_CLOSED/.test(code) || /fetch failed|terminated|other side closed/i.test(e.message);
}

/** Retry-After as milliseconds: delta-seconds or an HTTP date (RFC 9110 §10.2.3); undefined when absent or malformed. */
export function retryAfterMs(value: string | null, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const v = value.trim();
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v) * 1000;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.max(0, t - now);
}

export class BackendClient {
  /** The API root requests are made under (…/v1, or the path the user gave). */
  readonly apiBase: string;
  /** "host:port", the only way a backend is named in messages. */
  readonly label: string;
  private readonly options: Required<Omit<BackendClientOptions, "apiKey" | "log">> & Pick<BackendClientOptions, "apiKey" | "log">;

  constructor(url: string, options: BackendClientOptions = {}) {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new VideolmError(`--backend must be an http(s) URL such as http://127.0.0.1:8000, got ${JSON.stringify(url.slice(0, 100))}`);
    }
    if (u.protocol !== "http:" && u.protocol !== "https:") throw new VideolmError(`--backend must be an http(s) URL, got a ${u.protocol} URL`);
    if (u.username || u.password) throw new VideolmError("--backend: put the API key in an environment variable (--backend-api-key-env), not in the URL");
    this.label = u.host;
    // A bare server address gets the OpenAI path /v1; a URL with a path is the API root as given (e.g. …/api/v3).
    const pathPart = u.pathname.replace(/\/+$/, "").replace(/\/chat\/completions$/, "");
    this.apiBase = `${u.protocol}//${u.host}${pathPart === "" ? "/v1" : pathPart}`;
    this.options = {
      timeoutMs: options.timeoutMs ?? DEFAULT_BACKEND_TIMEOUT_MS,
      maxAttempts: Math.max(1, options.maxAttempts ?? DEFAULT_BACKEND_ATTEMPTS),
      backoffMs: options.backoffMs ?? 500,
      maxBackoffMs: options.maxBackoffMs ?? 20_000,
      maxRetryAfterMs: options.maxRetryAfterMs ?? 60_000,
      random: options.random ?? Math.random,
      apiKey: options.apiKey || undefined,
      log: options.log,
    };
  }

  /** A line for the user (the `log` option), naming the backend. */
  log(message: string): void {
    this.options.log?.(this.redact(`backend ${this.label}: ${message}`));
  }

  /** The key, when one is set, replaced in text that came from elsewhere (the backend may echo a bad key). */
  redact(text: string): string {
    const key = this.options.apiKey;
    return key && key.length >= 4 ? text.split(key).join("***") : text;
  }

  private fail(what: string, status?: number, cause?: unknown): BackendError {
    return new BackendError(this.redact(`backend ${this.label}: ${what}`), this.label, status, { cause });
  }

  /**
   * One request with retries. `body` is called once per attempt (a fresh body each time). Resolves with a 2xx
   * response whose body is still unread; `signal` aborts waiting and every attempt.
   */
  async request(method: string, path: string, init: { body?: () => BodyInit; headers?: Record<string, string>; signal?: AbortSignal } = {}): Promise<Response> {
    const { maxAttempts, timeoutMs } = this.options;
    const url = this.apiBase + path;
    let lastProblem = "";
    for (let attempt = 1; ; attempt++) {
      init.signal?.throwIfAborted();
      const controller = new AbortController();
      const onAbort = () => controller.abort(init.signal?.reason);
      init.signal?.addEventListener("abort", onAbort, { once: true });
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        controller.abort(new Error("timeout"));
      }, timeoutMs);
      let response: Response | undefined;
      let waitHint: number | undefined;
      try {
        response = await fetch(url, {
          method,
          headers: { ...(this.options.apiKey ? { Authorization: `Bearer ${this.options.apiKey}` } : {}), ...init.headers },
          body: init.body?.(),
          signal: controller.signal,
        });
      } catch (e) {
        if (init.signal?.aborted) throw init.signal.reason ?? e;
        if (timedOut) throw this.fail(`no response within ${timeoutMs / 1000} s (--backend-timeout)`, undefined, e);
        if (!isConnectionFailure(e)) throw this.fail(`request failed: ${(e as Error).message}`, undefined, e);
        const code = ((e as Error).cause as { code?: string } | undefined)?.code;
        lastProblem = `connection failed (${code ?? (e as Error).message})`;
      } finally {
        clearTimeout(timer);
        init.signal?.removeEventListener("abort", onAbort);
      }
      if (response) {
        if (response.ok) return this.withIdleLimit(response, init.signal);
        // The error body gets the same time limit as the headers had (a backend may stall after its status line).
        const message = await Promise.race([errorMessage(response), new Promise<string>((r) => setTimeout(() => r(""), timeoutMs).unref())]);
        lastProblem = `HTTP ${response.status}${message ? `: ${message}` : ""}`;
        if (!RETRY_STATUSES.has(response.status) || attempt >= maxAttempts) {
          throw this.fail(`${lastProblem}${attempt > 1 ? ` (after ${attempt} attempts)` : ""}`, response.status);
        }
        waitHint = retryAfterMs(response.headers.get("retry-after"));
      } else if (attempt >= maxAttempts) {
        throw this.fail(`${lastProblem} (after ${attempt} attempts)`);
      }
      const delay = this.retryDelay(attempt, waitHint);
      this.options.log?.(`${this.redact(`backend ${this.label}: ${lastProblem}`)}; retrying in ${(delay / 1000).toFixed(1)} s (attempt ${attempt + 1} of ${maxAttempts})`);
      await sleep(delay, init.signal);
    }
  }

  /**
   * Retry-After when the backend sent one (capped), else exponential backoff with "equal jitter" (AWS architecture
   * blog, "Exponential Backoff And Jitter"): half the ceiling fixed, half random, so clients spread out but none
   * retries at once.
   */
  private retryDelay(attempt: number, retryAfter: number | undefined): number {
    if (retryAfter !== undefined) return Math.min(retryAfter, this.options.maxRetryAfterMs);
    const ceiling = Math.min(this.options.maxBackoffMs, this.options.backoffMs * 2 ** (attempt - 1));
    return Math.round(ceiling / 2 + (this.options.random() * ceiling) / 2);
  }

  /** The response with its body cut (and failing with a BackendError) when it pauses longer than the timeout. */
  private withIdleLimit(response: Response, signal?: AbortSignal): Response {
    if (!response.body) return response;
    const reader = response.body.getReader();
    const { timeoutMs } = this.options;
    const fail = (e: unknown) => (e instanceof BackendError || signal?.aborted ? e : this.fail(`the response broke off: ${(e as Error)?.message ?? e}`, undefined, e));
    const body = new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        let timer: NodeJS.Timeout | undefined;
        const idle = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(this.fail(`no data for ${timeoutMs / 1000} s in the middle of the response (--backend-timeout)`)), timeoutMs);
        });
        let onAbort: (() => void) | undefined;
        const aborted = new Promise<never>((_, reject) => {
          onAbort = () => reject(signal!.reason);
          if (signal?.aborted) onAbort();
          else signal?.addEventListener("abort", onAbort, { once: true });
        });
        try {
          const { done, value } = await Promise.race([reader.read(), idle, aborted]);
          if (done) controller.close();
          else controller.enqueue(value);
        } catch (e) {
          void reader.cancel().catch(() => {});
          controller.error(fail(e));
        } finally {
          clearTimeout(timer);
          if (onAbort) signal?.removeEventListener("abort", onAbort);
        }
      },
      cancel: () => reader.cancel(),
    });
    return new Response(body, { status: response.status, headers: response.headers });
  }

  async getJson(path: string, signal?: AbortSignal): Promise<unknown> {
    const response = await this.request("GET", path, { signal, headers: { Accept: "application/json" } });
    return this.readJson(response);
  }

  async postJson(path: string, body: unknown, signal?: AbortSignal): Promise<unknown> {
    const text = JSON.stringify(body);
    const response = await this.request("POST", path, { signal, body: () => text, headers: { "Content-Type": "application/json", Accept: "application/json" } });
    return this.readJson(response);
  }

  async readJson(response: Response): Promise<unknown> {
    const text = await response.text();
    try {
      return JSON.parse(text);
    } catch {
      throw this.fail(`the answer is not JSON: ${JSON.stringify(text.slice(0, 120))}`, response.status);
    }
  }

  /**
   * POSTs a JSON body and reads the answer as server-sent events (`data: {…}` lines, until `data: [DONE]` or the
   * end), calling `onEvent` with each parsed event. An in-band `{"error": …}` event is a BackendError.
   */
  async streamEvents(path: string, body: unknown, onEvent: (event: Record<string, unknown>) => void, signal?: AbortSignal): Promise<void> {
    const text = JSON.stringify(body);
    const response = await this.request("POST", path, { signal, body: () => text, headers: { "Content-Type": "application/json", Accept: "text/event-stream" } });
    const type = response.headers.get("content-type") ?? "";
    if (!type.includes("text/event-stream")) {
      // A backend that ignores `stream: true` answers one JSON completion: handled by the caller as one event.
      const whole = await this.readJson(response);
      checkErrorEvent(whole, this);
      onEvent(whole as Record<string, unknown>);
      return;
    }
    const decoder = new TextDecoder();
    let buffer = "";
    const handle = (block: string): boolean => {
      const data = block
        .split(/\r?\n/)
        .filter((l) => l.startsWith("data:"))
        .map((l) => l.slice(5).replace(/^ /, ""))
        .join("\n");
      if (!data) return false;
      if (data.trim() === "[DONE]") return true;
      let event: unknown;
      try {
        event = JSON.parse(data);
      } catch {
        throw this.fail(`a streamed event is not JSON: ${JSON.stringify(data.slice(0, 120))}`);
      }
      checkErrorEvent(event, this);
      onEvent(event as Record<string, unknown>);
      return false;
    };
    const reader = response.body!.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        buffer += decoder.decode(value ?? new Uint8Array(), { stream: !done });
        const blocks = buffer.split(/\r?\n\r?\n/);
        buffer = done ? "" : blocks.pop()!;
        for (const block of blocks) if (handle(block)) return;
        if (done) return;
      }
    } finally {
      void reader.cancel().catch(() => {});
    }
  }
}

function checkErrorEvent(event: unknown, client: BackendClient): void {
  if (event && typeof event === "object" && "error" in event && (event as { error: unknown }).error) {
    const e = (event as { error: { message?: unknown } | string }).error;
    const message = typeof e === "string" ? e : String(e.message ?? JSON.stringify(e)).slice(0, 500);
    throw new BackendError(client.redact(`backend ${client.label}: error in the streamed answer: ${message}`), client.label);
  }
}

/** The message of an error answer: OpenAI's {"error": {"message"}}, FastAPI's {"detail"}, or the text, clipped. */
async function errorMessage(response: Response): Promise<string> {
  let text = "";
  try {
    text = await response.text();
  } catch {
    return "";
  }
  try {
    const body = JSON.parse(text) as { error?: { message?: unknown } | string; message?: unknown; detail?: unknown };
    const m = typeof body.error === "string" ? body.error : (body.error?.message ?? body.message ?? body.detail);
    if (m !== undefined) text = typeof m === "string" ? m : JSON.stringify(m);
  } catch {
    // not JSON: the text itself
  }
  text = text.replace(/\s+/g, " ").trim();
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
