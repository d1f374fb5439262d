/**
 * A scripted OpenAI-compatible backend on loopback for the remote-backend tests: it records every request (method,
 * path, headers, parsed JSON body) and answers each with the next step of a script (an SSE answer, an error status,
 * a reset connection, silence).
 */
import http from "node:http";
import type { AddressInfo } from "node:net";

export interface Recorded {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  body: unknown;
}

export type Step =
  | { answer: string[]; usage?: { prompt_tokens: number; completion_tokens: number }; ownedBy?: string }
  | { status: number; message: string; retryAfter?: string }
  | { reset: true }
  | { hang: true }
  | { hangAfter: string[] };

export interface ScriptedBackend {
  url: string;
  requests: Recorded[];
  close(): Promise<void>;
}

/** SSE chunks in OpenAI's chat.completion.chunk format: one per piece, then finish_reason, usage, [DONE]. */
export function sseAnswer(pieces: string[], usage = { prompt_tokens: 7, completion_tokens: pieces.length }): string {
  const chunk = (delta: object, finish: string | null, extra: object = {}) => `data: ${JSON.stringify({ id: "x", object: "chat.completion.chunk", choices: [{ index: 0, delta, finish_reason: finish }], ...extra })}\n\n`;
  return [chunk({ role: "assistant", content: "" }, null), ...pieces.map((p) => chunk({ content: p }, null)), chunk({}, "stop"), `data: ${JSON.stringify({ id: "x", choices: [], usage })}\n\n`, "data: [DONE]\n\n"].join("");
}

/**
 * Answers GET /v1/models with one model (owned_by `ownedBy`), and every other request with the next step (the last
 * step repeats).
 */
export async function startScriptedBackend(steps: Step[], opts: { ownedBy?: string; modelId?: string } = {}): Promise<ScriptedBackend> {
  const requests: Recorded[] = [];
  let next = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const raw = Buffer.concat(chunks).toString("utf8");
      let body: unknown = raw;
      try {
        body = raw ? JSON.parse(raw) : undefined;
      } catch {
        // not JSON: kept as text
      }
      const path = req.url ?? "/";
      requests.push({ method: req.method ?? "", path, headers: req.headers, body });
      if (req.method === "GET" && path.endsWith("/models")) {
        res.writeHead(200, { "Content-Type": "application/json" });
        return res.end(JSON.stringify({ object: "list", data: [{ id: opts.modelId ?? "served-model", object: "model", owned_by: opts.ownedBy ?? "vllm" }] }));
      }
      const step = steps[Math.min(next++, steps.length - 1)];
      if ("reset" in step) return req.socket.destroy();
      if ("hang" in step) return;
      if ("status" in step) {
        res.writeHead(step.status, { "Content-Type": "application/json", ...(step.retryAfter !== undefined ? { "Retry-After": step.retryAfter } : {}) });
        return res.end(JSON.stringify({ error: { message: step.message, type: "server_error", code: step.status } }));
      }
      res.writeHead(200, { "Content-Type": "text/event-stream", "Cache-Control": "no-cache" });
      if ("hangAfter" in step) {
        res.write(sseAnswer(step.hangAfter).split("\n\n").slice(0, 2).join("\n\n") + "\n\n");
        return; // …and nothing more
      }
      res.end(sseAnswer(step.answer, step.usage));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
