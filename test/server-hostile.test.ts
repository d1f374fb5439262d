/**
 * Hostile clients against a real listening server (issue 14, classes 2, 3 and the server parts of 6):
 *   - a multi-MiB prompt must not stall other clients: /health answers in < 1 s while it is refused or prepared;
 *     a prompt under the cheap bound that is still slow to tokenize is cut by --prepare-timeout;
 *   - unfinished bodies hold no place in the queue and are cut (408) after --body-timeout; slow headers after
 *     --headers-timeout; stalled and trickling uploads too; many large bodies at once meet the body budget (429);
 *   - a worker crash is a 503, and the next request works;
 *   - deeply nested role / type values, `//`, `/%ZZ`, `/v1/models/%ZZ` answer 4xx in OpenAI's error format.
 * The server runs in this process, so a blocked event loop delays the test's own /health requests too: the latency
 * measured here is the server's.
 */
import * as fs from "node:fs";
import http from "node:http";
import net from "node:net";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { VideolmServer } from "../src/server/server.js";
import { FIXTURES, golden, makeTestVideo, pngDataUrl, postJson, startServer, tempDir, waitFor } from "./server-helpers.js";

type ErrorBody = { error: { message: string; type: string; param: string | null; code: string | null } };

async function expectError(r: Response, status: number, match: { message?: RegExp; code?: string; type?: string } = {}) {
  const body = (await r.json()) as ErrorBody;
  expect({ status: r.status, body }).toMatchObject({ status });
  expect(Object.keys(body.error).sort()).toEqual(["code", "message", "param", "type"]);
  if (match.message) expect(body.error.message).toMatch(match.message);
  if (match.code) expect(body.error.code).toBe(match.code);
  if (match.type) expect(body.error.type).toBe(match.type);
  return body;
}

const hello = { messages: [{ role: "user", content: "Hi" }], max_tokens: 2 };

/** Polls /health every `everyMs` while `work` runs; returns the slowest answer (ms) and the work's result. */
async function healthDuring<T>(base: string, work: Promise<T>, everyMs = 100): Promise<{ worstMs: number; polls: number; result: T }> {
  let done = false;
  const finished = work.finally(() => (done = true));
  let worstMs = 0;
  let polls = 0;
  while (!done) {
    const t0 = performance.now();
    const r = await fetch(`${base}/health`);
    expect(r.status).toBe(200);
    await r.json();
    worstMs = Math.max(worstMs, performance.now() - t0);
    polls++;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return { worstMs, polls, result: await finished };
}

/** A raw connection; `received` collects what the server sends, `closed` resolves when it closes the connection. */
function rawConnection(base: string, data: string | Buffer) {
  const { hostname, port } = new URL(base);
  const socket = net.connect(Number(port), hostname);
  let received = "";
  socket.on("data", (d) => (received += d.toString("latin1")));
  socket.on("error", () => {});
  const closed = new Promise<number>((resolve) => {
    const t0 = performance.now();
    socket.on("close", () => resolve(performance.now() - t0));
  });
  socket.write(data);
  return { socket, closed, get received() { return received; } };
}

/** Resolves with `p`'s value, or `fallback` after `ms`. */
const within = <T, F>(p: Promise<T>, ms: number, fallback: F) => Promise.race([p, new Promise<F>((r) => setTimeout(() => r(fallback), ms))]);

/** ~`bytes` of English prose (the README, repeated). */
function prose(bytes: number): string {
  const text = fs.readFileSync(new URL("../README.md", import.meta.url), "utf8");
  return text.repeat(Math.ceil(bytes / text.length)).slice(0, bytes);
}

describe("a large prompt does not stall the server", () => {
  let server: VideolmServer;
  beforeAll(async () => {
    server = await startServer({ prepareTimeoutMs: 2500 });
  });
  afterAll(async () => server?.close());

  it("a 4 MiB prompt is refused by the token bound while /health answers in < 1 s", async () => {
    const body = JSON.stringify({ messages: [{ role: "user", content: prose(4 * 1024 ** 2) }], max_tokens: 2 });
    const t0 = performance.now();
    const { worstMs, result } = await healthDuring(server.url, postJson(server.url, "/v1/chat/completions", body));
    await expectError(result, 400, { code: "limit_exceeded", message: /--max-prompt-tokens/ });
    console.log(`4 MiB prose prompt: refused in ${Math.round(performance.now() - t0)} ms; slowest /health meanwhile ${Math.round(worstMs)} ms`);
    expect(worstMs).toBeLessThan(1000);
  });

  it("a 1 MiB run of one letter (under the bound, ~10 s to tokenize) is cut by --prepare-timeout; /health answers meanwhile; the next request works", async () => {
    const body = JSON.stringify({ messages: [{ role: "user", content: "a".repeat(1024 ** 2) }], max_tokens: 2 });
    const t0 = performance.now();
    const { worstMs, polls, result } = await healthDuring(server.url, postJson(server.url, "/v1/chat/completions", body));
    await expectError(result, 400, { code: "prepare_timeout", message: /--prepare-timeout/ });
    const ms = performance.now() - t0;
    console.log(`1 MiB 'a' prompt: cut after ${Math.round(ms)} ms; slowest /health of ${polls} meanwhile ${Math.round(worstMs)} ms`);
    expect(worstMs).toBeLessThan(1000);
    expect(ms).toBeLessThan(2500 + 5000);
    const r = await postJson(server.url, "/v1/chat/completions", hello);
    expect(r.status).toBe(200);
    await r.json();
  });

  it("a client that leaves during a long preparation frees the worker (the next request is served at once)", async () => {
    const controller = new AbortController();
    const body = JSON.stringify({ messages: [{ role: "user", content: "b".repeat(1024 ** 2) }], max_tokens: 2 });
    const pending = postJson(server.url, "/v1/chat/completions", body, { signal: controller.signal }).catch(() => null);
    await new Promise((r) => setTimeout(r, 400));
    controller.abort();
    await pending;
    const t0 = performance.now();
    const r = await postJson(server.url, "/v1/chat/completions", hello);
    expect(r.status).toBe(200);
    await r.json();
    // The grace time (1 s) and a fresh worker's start, not the 10 s the abandoned tokenization would take.
    expect(performance.now() - t0).toBeLessThan(8000);
    await waitFor(() => server.stats.aborted >= 1);
  });
});

describe("slow and unfinished requests", () => {
  let server: VideolmServer;
  beforeAll(async () => {
    server = await startServer({ maxQueue: 1, bodyTimeoutMs: 1500, headersTimeoutMs: 1000, maxBodyBytes: 64 * 1024, maxBodyBytesInFlight: 100 * 1024, uploadMinBytesPerSecond: 256 * 1024 });
  });
  afterAll(async () => server?.close());

  const head = (length: number, p = "/v1/chat/completions", type = "application/json") => `POST ${p} HTTP/1.1\r\nHost: x\r\nContent-Type: ${type}\r\nContent-Length: ${length}\r\n\r\n`;

  it("connections with unfinished bodies hold no place in the queue, and are cut with 408 after --body-timeout", async () => {
    const slow = [1, 2, 3, 4, 5].map(() => rawConnection(server.url, head(1000) + '{"messages": [{"role": "user", "content": "'));
    await new Promise((r) => setTimeout(r, 200));
    expect((await (await fetch(`${server.url}/health`)).json()).queue.in_flight).toBe(0);
    // Two real clients at once fill the queue's two places (1 + --max-queue 1), not the five slow ones.
    const [a, b] = await Promise.all([postJson(server.url, "/v1/chat/completions", hello), postJson(server.url, "/v1/chat/completions", hello)]);
    expect([a.status, b.status]).toEqual([200, 200]);
    await Promise.all([a.json(), b.json()]);
    const closedAfter = await Promise.all(slow.map((c) => within(c.closed, 6000, -1)));
    for (const [i, c] of slow.entries()) {
      expect(closedAfter[i]).toBeGreaterThan(1000);
      expect(c.received).toMatch(/^HTTP\/1\.1 408 /);
      const json = JSON.parse(c.received.slice(c.received.indexOf("\r\n\r\n") + 4)) as ErrorBody;
      expect(json.error).toMatchObject({ type: "invalid_request_error", code: "request_timeout" });
      expect(json.error.message).toMatch(/--body-timeout/);
    }
  });

  it("a connection that never finishes its headers is closed after --headers-timeout", async () => {
    const c = rawConnection(server.url, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: appl");
    const ms = await within(c.closed, 5000, -1);
    expect(ms).toBeGreaterThan(900);
    expect(ms).toBeLessThan(4000);
  });

  it("a stalled upload and a trickling upload are cut with 408", async () => {
    const stalled = rawConnection(server.url, head(10_000, "/v1/uploads", "video/mp4") + "x".repeat(100));
    const trickle = rawConnection(server.url, head(1_000_000, "/v1/uploads", "video/mp4"));
    const drip = setInterval(() => trickle.socket.write("y".repeat(1000)), 100);
    try {
      for (const c of [stalled, trickle]) {
        expect(await within(c.closed, 6000, -1)).toBeGreaterThan(1000);
        expect(c.received).toMatch(/^HTTP\/1\.1 408 /);
      }
      expect(stalled.received).toMatch(/stalled/);
      expect(trickle.received).toMatch(/slower than/);
    } finally {
      clearInterval(drip);
    }
    expect((await fetch(`${server.url}/health`).then((r) => r.json())).uploads).toBe(0);
  });

  it("bodies arriving together beyond the body budget get 429; smaller ones still pass", async () => {
    const first = rawConnection(server.url, head(64 * 1024) + "x".repeat(60 * 1024));
    await new Promise((r) => setTimeout(r, 200));
    const second = rawConnection(server.url, head(64 * 1024) + "x".repeat(60 * 1024));
    await within(second.closed, 3000, -1);
    expect(second.received).toMatch(/^HTTP\/1\.1 429 /);
    expect(second.received).toMatch(/server_busy/);
    const r = await postJson(server.url, "/v1/chat/completions", hello);
    expect(r.status).toBe(200);
    await r.json();
    first.socket.destroy();
  });
});

describe("the preparation worker", () => {
  let server: VideolmServer;
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(async () => server?.close());
  const current = () => (server as unknown as { prep: { current: { worker: { terminate(): Promise<number> } } } }).prep.current;

  it("a crash during a preparation is a 503 for that request; the next request is served by a fresh worker", async () => {
    const body = JSON.stringify({ messages: [{ role: "user", content: "c".repeat(1024 ** 2) }], max_tokens: 2 });
    const pending = postJson(server.url, "/v1/chat/completions", body);
    await new Promise((r) => setTimeout(r, 500));
    await current().worker.terminate();
    await expectError(await pending, 503, { code: "preparer_unavailable", type: "server_error" });
    const r = await postJson(server.url, "/v1/chat/completions", { messages: golden.cases.text.messages, max_tokens: 12 });
    expect(r.status).toBe(200);
    expect((await r.json()).choices[0].message.content).toBe(golden.cases.text.greedy.text);
  });

  it("the worker's ffmpeg children are tracked, and gone after the request", async () => {
    const dir = tempDir("videolm-hostile-");
    try {
      const video = makeTestVideo(dir);
      const handle = current() as unknown as { children: Set<number>; childrenStarted: number };
      const before = handle.childrenStarted;
      const r = await postJson(server.url, "/v1/chat/completions", { messages: [{ role: "user", content: [{ type: "video_url", video_url: { url: `data:video/mp4;base64,${fs.readFileSync(video).toString("base64")}` } }, { type: "text", text: "?" }] }], max_tokens: 2 });
      expect(r.status).toBe(200);
      await r.json();
      expect(handle.childrenStarted).toBeGreaterThan(before);
      await waitFor(() => handle.children.size === 0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("images reach the worker as bytes (data: URL) and give the reference's answer", async () => {
    const image = path.join(FIXTURES, golden.cases.image.messages[0].content[0].image);
    const r = await postJson(server.url, "/v1/chat/completions", {
      messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: pngDataUrl(image) } }, { type: "text", text: golden.cases.image.messages[0].content[1].text }] }],
      max_tokens: 12,
    });
    expect(r.status).toBe(200);
    expect((await r.json()).choices[0].message.content).toBe(golden.cases.image.greedy.text);
  });

  it("--max-input-pixels reaches the media code (wire requests cannot set it)", async () => {
    const small = await startServer({ maxInputPixels: 100 });
    try {
      const image = path.join(FIXTURES, golden.cases.image.messages[0].content[0].image);
      const body = (extra: Record<string, unknown>) => ({ messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: pngDataUrl(image), ...extra } }, { type: "text", text: "?" }] }], max_tokens: 2 });
      await expectError(await postJson(small.url, "/v1/chat/completions", body({})), 400, { message: /--max-input-pixels/ });
      await expectError(await postJson(small.url, "/v1/chat/completions", body({ max_input_pixels: 1e9 })), 400, { code: "unknown_option" });
    } finally {
      await small.close();
    }
  });
});

describe("malformed input → 4xx in OpenAI's format", () => {
  let server: VideolmServer;
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(async () => server?.close());

  const deep = (n: number, leaf: string) => "[".repeat(n) + leaf + "]".repeat(n);

  it("a role nested 100 000 deep: refused by the nesting scan before parsing", async () => {
    const body = `{"messages": [{"role": ${deep(100_000, '"user"')}, "content": "x"}]}`;
    await expectError(await postJson(server.url, "/v1/chat/completions", body), 400, { message: /nests arrays\/objects deeper than 256 levels/, type: "invalid_request_error" });
  });

  it("a role nested 250 deep (under the scan's limit): named by kind, never stringified", async () => {
    const body = `{"messages": [{"role": ${deep(250, '"user"')}, "content": "x"}]}`;
    await expectError(await postJson(server.url, "/v1/chat/completions", body), 400, { message: /role must be .*got an array/, type: "invalid_request_error" });
  });

  it("a content part type nested 100 000 deep: refused by the nesting scan", async () => {
    const body = `{"messages": [{"role": "user", "content": [{"type": {"a": ${deep(100_000, "1")}}}]}]}`;
    await expectError(await postJson(server.url, "/v1/chat/completions", body), 400, { message: /deeper than 256 levels/ });
  });

  it("a content part type nested 240 deep: named by kind", async () => {
    const body = `{"messages": [{"role": "user", "content": [{"type": {"a": ${deep(240, "1")}}}]}]}`;
    await expectError(await postJson(server.url, "/v1/chat/completions", body), 400, { message: /unsupported content part type an object/ });
  });

  it("a huge role string is clipped in the message", async () => {
    const body = await expectError(await postJson(server.url, "/v1/chat/completions", { messages: [{ role: "r".repeat(100_000), content: "x" }] }), 400);
    expect(body.error.message.length).toBeLessThan(400);
  });

  /** A raw GET (fetch would normalise the path). */
  const get = (p: string) =>
    new Promise<{ status: number; body: ErrorBody }>((resolve, reject) => {
      const { hostname, port } = new URL(server.url);
      http
        .get({ host: hostname, port, path: p }, (res) => {
          let text = "";
          res.on("data", (d) => (text += d));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
        })
        .on("error", reject);
    });

  for (const [p, status] of [["//", 400], ["//evil.example/health", 400], ["/%ZZ", 404], ["/v1/models/%ZZ", 400], ["/v1/models/%E0%A4%A", 400], ["/v1/uploads/%ZZ", 404], ["/v1/models/x%00y", 404]] as const) {
    it(`GET ${p} → ${status}`, async () => {
      const r = await get(p);
      expect(r.status).toBe(status);
      expect(Object.keys(r.body.error).sort()).toEqual(["code", "message", "param", "type"]);
      expect(r.body.error.type).toBe("invalid_request_error");
    });
  }

  it("the server still serves", async () => {
    const r = await postJson(server.url, "/v1/chat/completions", hello);
    expect(r.status).toBe(200);
    await r.json();
  });
});
