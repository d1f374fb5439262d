/**
 * Bytes that are not valid HTTP get an OpenAI-format error body too (Node's own answer is a bare status line), so
 * every error a client sees has one shape (issue 14; the fuzz harness's raw-socket cases).
 */
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jsonNestingExceeds, MAX_JSON_DEPTH } from "../src/server/http.js";
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

describe("deeply nested bodies", () => {
  it("jsonNestingExceeds counts brackets outside strings only, escapes included", () => {
    const enc = (t: string) => Buffer.from(t);
    expect(jsonNestingExceeds(enc('{"a":"[[[[\\"[[[{{","b":[[1]]}'), 3)).toBeUndefined();
    expect(jsonNestingExceeds(enc('{"a":"[[[[\\"[[[{{","b":[[1]]}'), 2)).toEqual({ at: 24 });
    expect(jsonNestingExceeds(enc('{"a":"x\\\\","b":[[[1]]]}'), 3)).toEqual({ at: 17 });
    expect(jsonNestingExceeds(enc(JSON.stringify({ messages: [{ role: "user", content: [{ type: "text", text: "[".repeat(1000) }] }] })), 5)).toBeUndefined();
  });

  it("a body of many deep arrays is refused before JSON.parse, and /health stays fast meanwhile", async () => {
    const deep = "[".repeat(50_000) + "]".repeat(50_000);
    const body = `{"messages":[{"role":"user","content":[${Array.from({ length: 200 }, () => deep).join(",")}]}]}`;
    let slowest = 0;
    let polling = true;
    const poller = (async () => {
      while (polling) {
        const t0 = performance.now();
        await fetch(`${server.url}/health`);
        slowest = Math.max(slowest, performance.now() - t0);
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const t0 = performance.now();
    const r = await fetch(`${server.url}/v1/chat/completions`, { method: "POST", headers: { "Content-Type": "application/json" }, body });
    const ms = performance.now() - t0;
    polling = false;
    await poller;
    expect(r.status).toBe(400);
    const json = (await r.json()) as { error: { message: string; code: string } };
    expect(json.error.code).toBe("invalid_json");
    expect(json.error.message).toContain(`deeper than ${MAX_JSON_DEPTH} levels`);
    expect(ms).toBeLessThan(2000);
    expect(slowest).toBeLessThan(1000);
  });
});

describe("option errors raised while planning speak the API's names", () => {
  it("max_pixels below the model's minimum names max_pixels / min_pixels, not maxPixels", async () => {
    const fs = await import("node:fs");
    const path = await import("node:path");
    const { makeTestVideo, tempDir } = await import("./server-helpers.js");
    const dir = tempDir("videolm-spelling-");
    try {
      makeTestVideo(dir, "clip.mp4", 2);
      const url = `data:video/mp4;base64,${fs.readFileSync(path.join(dir, "clip.mp4")).toString("base64")}`;
      const r = await fetch(`${server.url}/v1/plan`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ messages: [{ role: "user", content: [{ type: "video_url", video_url: { url, max_pixels: 100 } }, { type: "text", text: "?" }] }] }),
      });
      const json = (await r.json()) as { error?: { message: string } };
      expect(r.status).toBe(400);
      expect(json.error?.message).toMatch(/max_pixels 100 is below the smallest frame size this model uses \(min_pixels defaults to/);
      expect(json.error?.message).not.toMatch(/maxPixels|minPixels/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
