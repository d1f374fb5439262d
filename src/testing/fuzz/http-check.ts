/**
 * One HTTP exchange with full control over what is sent (any method, any path bytes, any body, raw socket bytes),
 * and the harness's verdict on the answer: no 5xx, no hang, every error in OpenAI's format
 * (`{"error": {"message", "type", "param", "code"}}`), every stream well formed and ended.
 */
import http from "node:http";
import net from "node:net";

export interface Exchange {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  ms: number;
  timedOut: boolean;
  /** A transport failure (connection reset, refused) instead of an answer. */
  transportError?: string;
}

export async function request(base: string, opts: { method: string; path: string; headers?: Record<string, string>; body?: Buffer; timeoutMs: number }): Promise<Exchange> {
  const u = new URL(base);
  const t0 = performance.now();
  return new Promise<Exchange>((resolve) => {
    let settled = false;
    const done = (e: Omit<Exchange, "ms">) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ ...e, ms: performance.now() - t0 });
    };
    const req = http.request({ host: u.hostname, port: u.port, method: opts.method, path: opts.path, headers: opts.headers, agent: false });
    const timer = setTimeout(() => {
      req.destroy();
      done({ status: 0, headers: {}, body: Buffer.alloc(0), timedOut: true });
    }, opts.timeoutMs);
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => done({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), timedOut: false }));
      res.on("error", (err) => done({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), timedOut: false, transportError: err.message }));
    });
    req.on("error", (err) => done({ status: 0, headers: {}, body: Buffer.alloc(0), timedOut: false, transportError: err.message }));
    req.end(opts.body);
  });
}

/** Writes raw bytes to the server and reads until it closes (or the timeout): for malformed HTTP itself. */
export async function rawExchange(base: string, bytes: Buffer, timeoutMs: number): Promise<{ text: string; timedOut: boolean; ms: number }> {
  const u = new URL(base);
  const t0 = performance.now();
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = net.connect(Number(u.port), u.hostname);
    const finish = (timedOut: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ text: Buffer.concat(chunks).toString("latin1"), timedOut, ms: performance.now() - t0 });
    };
    const timer = setTimeout(() => finish(true), timeoutMs);
    socket.on("data", (c: Buffer) => {
      chunks.push(c);
      // One complete answer is enough: stop at the end of a body whose length is known.
      const text = Buffer.concat(chunks).toString("latin1");
      const head = text.indexOf("\r\n\r\n");
      const len = /content-length:\s*(\d+)/i.exec(text.slice(0, head));
      if (head >= 0 && len && text.length >= head + 4 + Number(len[1])) finish(false);
    });
    socket.on("end", () => finish(false));
    socket.on("error", () => finish(false));
    socket.on("connect", () => socket.end(bytes));
  });
}

/** Whether a body is an OpenAI-format error object. */
export function isOpenAIError(value: unknown): boolean {
  if (!value || typeof value !== "object") return false;
  const e = (value as { error?: unknown }).error as Record<string, unknown> | undefined;
  return (
    !!e &&
    typeof e === "object" &&
    typeof e.message === "string" &&
    e.message.length > 0 &&
    typeof e.type === "string" &&
    (e.param === null || typeof e.param === "string") &&
    (e.code === null || typeof e.code === "string")
  );
}

export type Problem = "5xx" | "hang" | "not-openai-format" | "bad-stream" | "transport";

/** What is wrong with an answer, if anything. `head`: the request was a HEAD (no body expected). */
export function judge(e: Exchange, head = false): { problem?: Problem; detail?: string } {
  if (e.timedOut) return { problem: "hang" };
  if (e.transportError && e.status === 0) return { problem: "transport", detail: e.transportError };
  if (e.status >= 500) return { problem: "5xx", detail: e.body.toString("utf8").slice(0, 300) };
  const type = String(e.headers["content-type"] ?? "");
  if (e.status >= 400) {
    if (head) return {};
    try {
      if (isOpenAIError(JSON.parse(e.body.toString("utf8")))) return {};
    } catch {
      // fall through
    }
    return { problem: "not-openai-format", detail: `${e.status} ${type} ${e.body.toString("utf8").slice(0, 200)}` };
  }
  if (type.startsWith("text/event-stream")) {
    const text = e.body.toString("utf8");
    const blocks = text.split("\n\n").filter((b) => b.trim());
    if (blocks.length === 0 || blocks[blocks.length - 1].trim() !== "data: [DONE]") return { problem: "bad-stream", detail: "no [DONE] at the end" };
    for (const b of blocks.slice(0, -1)) {
      const line = b.trim();
      if (!line.startsWith("data: ")) return { problem: "bad-stream", detail: line.slice(0, 100) };
      try {
        const event = JSON.parse(line.slice(6)) as { error?: unknown };
        if (event.error !== undefined && !isOpenAIError(event)) return { problem: "not-openai-format", detail: line.slice(0, 200) };
      } catch {
        return { problem: "bad-stream", detail: line.slice(0, 100) };
      }
    }
  }
  return {};
}
