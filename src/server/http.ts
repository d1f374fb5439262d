/**
 * Small helpers over node:http: bounded body reading, JSON responses, server-sent events.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { errorBody, HttpError } from "./errors.js";

export function formatBytes(n: number): string {
  if (n >= 1024 ** 3) return `${+(n / 1024 ** 3).toFixed(1)} GiB`;
  if (n >= 1024 ** 2) return `${+(n / 1024 ** 2).toFixed(1)} MiB`;
  if (n >= 1024) return `${+(n / 1024).toFixed(1)} KiB`;
  return `${n} bytes`;
}

export function tooLarge(what: string, limit: number, flag: string): HttpError {
  return new HttpError(413, `${what} is larger than the server's limit of ${formatBytes(limit)} (${flag})`, "invalid_request_error", null, "payload_too_large");
}

/**
 * Bytes of request bodies being received at once, all connections together: bounds the memory that many large
 * bodies arriving together can hold (each is also bounded by --max-body-bytes).
 */
export class BodyBudget {
  private used = 0;
  constructor(readonly limit: number) {}

  get inUse(): number {
    return this.used;
  }

  /** Takes `n` bytes, or throws 429 when the budget is spent. */
  take(n: number): void {
    if (this.used + n > this.limit) {
      throw new HttpError(429, `the server is receiving too many request bodies at once (${formatBytes(this.limit)} in all); retry later`, "rate_limit_error", null, "server_busy");
    }
    this.used += n;
  }

  give(n: number): void {
    this.used -= n;
  }
}

/**
 * Reads the whole body, refusing (413) as soon as it passes `limit` bytes — by Content-Length up front, or while
 * reading — and (429) when `budget` is spent. Its bytes count against the budget only while it is being read.
 */
export async function readBody(req: IncomingMessage, limit: number, flag: string, budget?: BodyBudget): Promise<Buffer> {
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > limit) throw tooLarge("the request body", limit, flag);
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > limit) throw tooLarge("the request body", limit, flag);
      budget?.take(chunk.length);
      chunks.push(chunk);
    }
    return Buffer.concat(chunks, size);
  } finally {
    budget?.give(chunks.reduce((n, c) => n + c.length, 0));
  }
}

/** Deepest nesting a request body may have: OpenAI bodies nest ~6 levels; JSON schemas in them a few dozen. */
export const MAX_JSON_DEPTH = 256;

/**
 * Whether the JSON text nests `[`/`{` deeper than `limit` (brackets inside strings do not count), found by one pass
 * over the bytes that stops at the first level too deep. JSON.parse runs on the event loop and takes seconds on a
 * 64 MiB body of a few hundred 50,000-deep arrays (measured: /health stalled 3–7 s); this scan refuses such a body in
 * about a millisecond, and skips strings with the native byte search (a 60 MiB data: URL body: ~2 ms). Returns the offending byte offset, or undefined.
 */
export function jsonNestingExceeds(bytes: Uint8Array, limit: number): { at: number } | undefined {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let depth = 0;
  for (let i = 0; i < buf.length; i++) {
    const c = buf[i];
    if (c === 0x22) {
      // Jump to the closing quote with the native search (large bodies are mostly long strings: data: URLs, text);
      // a quote preceded by an odd number of backslashes is escaped.
      let end = i;
      for (;;) {
        end = buf.indexOf(0x22, end + 1);
        if (end < 0) return undefined; // unterminated: JSON.parse reports it
        let slashes = 0;
        while (buf[end - 1 - slashes] === 0x5c) slashes++;
        if (slashes % 2 === 0) break;
      }
      i = end;
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > limit) return { at: i };
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return undefined;
}

export async function readJson(req: IncomingMessage, limit: number, flag: string, budget?: BodyBudget): Promise<unknown> {
  const type = String(req.headers["content-type"] ?? "");
  if (type && !/^application\/(.+\+)?json\b/i.test(type)) throw new HttpError(400, `expected Content-Type application/json, got ${type}`, "invalid_request_error", null, "invalid_content_type");
  const body = await readBody(req, limit, flag, budget);
  if (body.length === 0) throw new HttpError(400, "the request body is empty; send a JSON object", "invalid_request_error", null, "invalid_json");
  const depth = jsonNestingExceeds(body, MAX_JSON_DEPTH);
  if (depth) throw new HttpError(400, `the request body nests arrays/objects deeper than ${MAX_JSON_DEPTH} levels (at byte ${depth.at})`, "invalid_request_error", null, "invalid_json");
  try {
    return JSON.parse(body.toString("utf8"));
  } catch (err) {
    throw new HttpError(400, `the request body is not valid JSON (${(err as Error).message})`, "invalid_request_error", null, "invalid_json");
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const data = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { "Content-Type": "application/json; charset=utf-8", "Content-Length": String(data.length), ...headers });
  res.end(data);
}

export function sendError(res: ServerResponse, e: HttpError): void {
  // After a 413, 408 or a spent body budget the rest of the body is not read; closing the connection keeps it from
  // being parsed as a request.
  const close = e.status === 413 || e.status === 408 || e.code === "server_busy";
  sendJson(res, e.status, errorBody(e), close ? { Connection: "close" } : {});
}

/** A server-sent-events stream (OpenAI streaming: `data: {json}\n\n` lines, then `data: [DONE]`). */
export class SseStream {
  constructor(private readonly res: ServerResponse) {}

  open(): void {
    this.res.writeHead(200, {
      "Content-Type": "text/event-stream; charset=utf-8",
      "Cache-Control": "no-cache",
      Connection: "keep-alive",
      "X-Accel-Buffering": "no",
    });
    this.res.flushHeaders();
  }

  get closed(): boolean {
    return this.res.destroyed || this.res.writableEnded;
  }

  send(data: unknown): void {
    if (!this.closed) this.res.write(`data: ${JSON.stringify(data)}\n\n`);
  }

  done(): void {
    if (!this.closed) this.res.end("data: [DONE]\n\n");
  }
}

/**
 * Node's answer to bytes that are not valid HTTP (a malformed request line or header, conflicting lengths, a header
 * block over the size limit, headers too slow) is a bare status line with no body; ours is the same status with an
 * OpenAI-format error body, so every error a client can see has one shape. Attach to the server's `clientError`.
 */
export function answerClientError(err: NodeJS.ErrnoException & { rawPacket?: unknown }, socket: Duplex): void {
  // The client is gone, or a response is already on the wire for this connection: nothing sensible can be sent.
  const busy = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent;
  if (err.code === "ECONNRESET" || !socket.writable || busy) {
    socket.destroy();
    return;
  }
  const [status, reason, message, code] =
    err.code === "HPE_HEADER_OVERFLOW"
      ? [431, "Request Header Fields Too Large", "the request headers are larger than the server accepts", "headers_too_large"]
      : err.code === "ERR_HTTP_REQUEST_TIMEOUT" || err.code === "ERR_HTTP_HEADERS_TIMEOUT"
        ? [408, "Request Timeout", "the request headers did not arrive in time (--headers-timeout)", "request_timeout"]
        : [400, "Bad Request", `the request is not valid HTTP (${String(err.code ?? "parse error").replace(/^HPE_/, "").toLowerCase()})`, "invalid_http"];
  const body = JSON.stringify(errorBody(new HttpError(status, message, "invalid_request_error", null, code)));
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}
