/**
 * Bytes that are not valid HTTP get an OpenAI-format error body too (Node's own answer is a bare status line), so
 * every error a client sees has one shape (issue 14; the fuzz harness's raw-socket cases).
 */
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { VideolmServer } from "../src/server/server.js";
import { startServer } from "./server-helpers.js";

let server: VideolmServer;
beforeAll(async () => {
  server = await startServer();
});
afterAll(async () => {
  await server?.close();
});

function raw(text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = net.connect(server.address.port, "127.0.0.1", () => socket.end(Buffer.from(text, "latin1")));
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.on("close", () => resolve(Buffer.concat(chunks).toString("latin1")));
    socket.on("error", reject);
    setTimeout(() => reject(new Error("no answer")), 10_000).unref();
  });
}

function parse(answer: string): { status: number; body: { error: { message: string; type: string; param: unknown; code: string } } } {
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1]);
  return { status, body: JSON.parse(answer.slice(answer.indexOf("\r\n\r\n") + 4)) };
}

describe("malformed HTTP", () => {
  it.each([
    ["a header line without a colon", "GET /health HTTP/1.1\r\nHost: x\r\nbroken header\r\n\r\n", 400],
    ["two different Content-Lengths", 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n{"a":1}', 400],
    ["a space inside the path", "GET /v1/models /x HTTP/1.1\r\nHost: x\r\n\r\n", 400],
    ["a negative Content-Length", "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400],
    ["a header block over the limit", `GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(100_000)}\r\n\r\n`, 431],
  ])("%s: an OpenAI-format error", async (_what, request, status) => {
    const answer = parse(await raw(request));
    expect(answer.status).toBe(status);
    expect(answer.body.error.type).toBe("invalid_request_error");
    expect(answer.body.error.message.length).toBeGreaterThan(10);
  });

  it("the server keeps answering afterwards", async () => {
    const r = await fetch(`${server.url}/health`);
    expect(r.status).toBe(200);
  });
});
