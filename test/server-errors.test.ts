/**
 * Bad input against a real listening server: every case gets an OpenAI-style error with the right status, and the
 * server keeps serving (checked after each group). Also the queue (429), client disconnects (abort) and that nothing
 * leaks from one request into the next.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { VideolmServer } from "../src/server/server.js";
import { FIXTURES, golden, makeTestVideo, postJson, startMediaHost, startServer, tempDir, waitFor, type MediaHost } from "./server-helpers.js";

let server: VideolmServer;
let base: string;
let host: MediaHost;
let dir: string;
let video: string;

beforeAll(async () => {
  dir = tempDir("videolm-server-errors-");
  fs.mkdirSync(path.join(dir, "allowed"));
  video = makeTestVideo(path.join(dir, "allowed"));
  fs.copyFileSync(video, path.join(dir, "outside.mp4"));
  fs.symlinkSync(path.join(dir, "outside.mp4"), path.join(dir, "allowed", "link.mp4"));
  fs.writeFileSync(path.join(dir, "allowed", "notes.txt"), "not a video\n".repeat(20));
  host = await startMediaHost({ video, image: path.join(FIXTURES, golden.cases.image.messages[0].content[0].image) });
  // No --allow-private-media: the local media host counts as a private target.
  server = await startServer({ allowedMediaDir: path.join(dir, "allowed"), maxBodyBytes: 256 * 1024, maxUploadBytes: 64 * 1024, maxTokens: 64, maxFrames: 8 });
  base = server.url;
});
afterAll(async () => {
  await server?.close();
  await host?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

type ErrorBody = { error: { message: string; type: string; param: string | null; code: string | null } };

async function expectError(r: Response, status: number, match: { message?: RegExp; param?: string | null; code?: string; type?: string }) {
  expect(r.status).toBe(status);
  const body = (await r.json()) as ErrorBody;
  expect(Object.keys(body.error).sort()).toEqual(["code", "message", "param", "type"]);
  if (match.message) expect(body.error.message).toMatch(match.message);
  if (match.param !== undefined) expect(body.error.param).toBe(match.param);
  if (match.code) expect(body.error.code).toBe(match.code);
  expect(body.error.type).toBe(match.type ?? (status === 429 ? "rate_limit_error" : "invalid_request_error"));
  return body;
}

const chat = (body: unknown) => postJson(base, "/v1/chat/completions", body);
const withVideo = (url: string, options: Record<string, unknown> = {}) => ({ messages: [{ role: "user", content: [{ type: "video_url", video_url: { url, ...options } }, { type: "text", text: "?" }] }], max_tokens: 2 });

async function stillServing() {
  const r = await chat({ messages: [{ role: "user", content: "Hi" }], max_tokens: 2 });
  expect(r.status).toBe(200);
  expect((await r.json()).choices[0].finish_reason).toBe("length");
}

describe("malformed requests → 400", () => {
  const cases: [string, unknown, { message: RegExp; param?: string | null; code?: string }][] = [
    ["malformed JSON", '{"messages": [', { message: /not valid JSON/, code: "invalid_json" }],
    ["an empty body", "", { message: /empty/ }],
    ["a JSON array", "[1, 2]", { message: /must be a JSON object, got an array/ }],
    ["messages missing", { model: "x" }, { message: /messages must be an array/, param: "messages" }],
    ["messages empty", { messages: [] }, { message: /at least one message/, param: "messages" }],
    ["a bad role", { messages: [{ role: "tool", content: "x" }] }, { message: /role must be/, param: "messages[0].role" }],
    ["content of the wrong type", { messages: [{ role: "user", content: 42 }] }, { message: /string or an array/, param: "messages[0].content" }],
    ["an unknown content part type", { messages: [{ role: "user", content: [{ type: "input_audio", input_audio: {} }] }] }, { message: /unsupported content part type "input_audio"/, param: "messages[0].content[0].type", code: "unsupported_content_type" }],
    ["text that is not a string", { messages: [{ role: "user", content: [{ type: "text", text: ["a"] }] }] }, { message: /must be a string/, param: "messages[0].content[0].text" }],
    ["video_url without url", { messages: [{ role: "user", content: [{ type: "video_url", video_url: {} }] }] }, { message: /url must be a non-empty string/, param: "messages[0].content[0].video_url.url" }],
    ["a misspelled video option", withVideo("upload://x", { frames_per_second: 2 }), { message: /unknown option/, param: "messages[0].content[0].video_url.frames_per_second", code: "unknown_option" }],
    ["fps of the wrong type", withVideo("upload://x", { fps: "2" }), { message: /must be a number, got a string/, param: "messages[0].content[0].video_url.fps" }],
    ["fps and nframes together", withVideo("upload://x", { fps: 2, nframes: 4 }), { message: /not both/ }],
    ["end before start", withVideo("upload://x", { start: 3, end: 1 }), { message: /must be after start/ }],
    ["max_tokens of the wrong type", { messages: [{ role: "user", content: "x" }], max_tokens: "10" }, { message: /must be a number/, param: "max_tokens" }],
    ["temperature out of range", { messages: [{ role: "user", content: "x" }], temperature: -1 }, { message: /≥ 0/, param: "temperature" }],
    ["top_logprobs without logprobs", { messages: [{ role: "user", content: "x" }], top_logprobs: 2 }, { message: /requires logprobs/, param: "top_logprobs" }],
    ["a negative thinking_budget", { messages: [{ role: "user", content: "x" }], thinking_budget: -1 }, { message: /thinking_budget/, param: "thinking_budget" }],
    ["n > 1", { messages: [{ role: "user", content: "x" }], n: 2 }, { message: /n must be 1/, param: "n" }],
    ["tools", { messages: [{ role: "user", content: "x" }], tools: [{ type: "function" }] }, { message: /not supported/, param: "tools" }],
    ["stream not a boolean", { messages: [{ role: "user", content: "x" }], stream: "yes" }, { message: /true or false/, param: "stream" }],
    ["max_tokens over the server limit", { messages: [{ role: "user", content: "x" }], max_tokens: 65 }, { message: /limit of 64 \(--max-tokens\)/, code: "limit_exceeded" }],
    ["nframes over the frame limit", withVideo("upload://x", { nframes: 10 }), { message: /limit of 8 frames/, code: "limit_exceeded" }],
    ["a video in an assistant message", { messages: [{ role: "assistant", content: [{ type: "video_url", video_url: { url: "upload://x" } }] }] }, { message: /only be sent in user messages/ }],
  ];
  for (const [name, body, match] of cases) {
    it(name, async () => {
      await expectError(await chat(body), 400, match);
    });
  }
  it("an unknown model is 404 model_not_found", async () => {
    await expectError(await chat({ model: "gpt-4o", messages: [{ role: "user", content: "x" }] }), 404, { code: "model_not_found", param: "model" });
  });
  it("a wrong Content-Type is refused", async () => {
    const r = await fetch(`${base}/v1/chat/completions`, { method: "POST", headers: { "Content-Type": "text/plain" }, body: "{}" });
    await expectError(r, 400, { message: /application\/json/ });
  });
  it("the server still serves", stillServing);
});

describe("media → 400", () => {
  const cases: [string, string, RegExp, string][] = [
    ["a bare path", "/etc/passwd", /unsupported media URL/, "invalid_media_url"],
    ["an ftp URL", "ftp://example.com/a.mp4", /unsupported media URL/, "invalid_media_url"],
    ["a file:// URL outside the allowed folder", "file:///etc/passwd", /outside the allowed media folder/, "path_not_allowed"],
    ["a symlink out of the allowed folder", "LINK", /outside the allowed media folder/, "path_not_allowed"],
    ["a missing file inside the allowed folder", "MISSING", /file not found/, "media_not_found"],
    ["a text file inside the allowed folder", "NOTES", /./, "invalid_request"],
    ["an unknown upload", "upload://upl_nope", /no upload/, "upload_not_found"],
    ["a malformed data: URL", "data:video/mp4;base64", /malformed data: URL/, "invalid_media_url"],
    ["a data: URL that is not a video", `data:video/mp4;base64,${Buffer.from("hello world, not a video".repeat(10)).toString("base64")}`, /./, "invalid_request"],
  ];
  for (const [name, url0, message, code] of cases) {
    it(name, async () => {
      const url =
        url0 === "LINK" ? pathToFileURL(path.join(dir, "allowed", "link.mp4")).href
        : url0 === "MISSING" ? pathToFileURL(path.join(dir, "allowed", "missing.mp4")).href
        : url0 === "NOTES" ? pathToFileURL(path.join(dir, "allowed", "notes.txt")).href
        : url0;
      const body = await expectError(await chat(withVideo(url)), 400, { message, code });
      expect(body.error.message).not.toMatch(/videolm-request-|videolm-uploads-/); // names the client's URL, not a temp file
    });
  }
  it("a file:// URL inside the allowed folder works", async () => {
    expect((await chat(withVideo(pathToFileURL(video).href))).status).toBe(200);
  });
  it("the server still serves", stillServing);
});

describe("SSRF: remote media on non-public addresses is refused", () => {
  const port = () => new URL(host.url).port;
  const targets: [string, () => string][] = [
    ["127.0.0.1", () => `http://127.0.0.1:${port()}/clip.mp4`],
    ["169.254.169.254 (cloud metadata)", () => "http://169.254.169.254/latest/meta-data/"],
    ["[::1]", () => `http://[::1]:${port()}/clip.mp4`],
    ["IPv4-mapped IPv6 [::ffff:127.0.0.1]", () => `http://[::ffff:127.0.0.1]:${port()}/clip.mp4`],
    ["a decimal IPv4 (2130706433 = 127.0.0.1)", () => `http://2130706433:${port()}/clip.mp4`],
    ["a DNS name resolving to loopback (localhost)", () => `http://localhost:${port()}/clip.mp4`],
    ["10.0.0.1 (private)", () => "http://10.0.0.1/clip.mp4"],
    ["an image on 127.0.0.1", () => `http://127.0.0.1:${port()}/image.png`],
  ];
  for (const [name, url] of targets) {
    it(name, async () => {
      const hitsBefore = host.hits.length;
      const body = url().endsWith(".png")
        ? { messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: url() } }] }], max_tokens: 2 }
        : withVideo(url());
      await expectError(await chat(body), 400, { message: /refused to fetch media from .*non-public address/, code: "media_url_refused" });
      expect(host.hits.length).toBe(hitsBefore); // no request reached the target
    });
  }
  it("the server still serves", stillServing);
});

describe("size limits → 413", () => {
  it("a body over --max-body-bytes", async () => {
    const big = { messages: [{ role: "user", content: "x".repeat(300 * 1024) }] };
    await expectError(await chat(big), 413, { message: /larger than the server's limit of 256 KiB \(--max-body-bytes\)/, code: "payload_too_large" });
  });
  it("a chunked body (no Content-Length) over the limit", async () => {
    const chunks = [Buffer.from('{"messages":[{"role":"user","content":"'), Buffer.alloc(300 * 1024, 120), Buffer.from('"}]}')];
    const body = new ReadableStream({
      start(c) {
        for (const ch of chunks) c.enqueue(ch);
        c.close();
      },
    });
    const r = await fetch(`${base}/v1/chat/completions`, { method: "POST", headers: { "Content-Type": "application/json" }, body, duplex: "half" } as RequestInit);
    await expectError(r, 413, { code: "payload_too_large" });
  });
  it("an upload over --max-upload-bytes", async () => {
    const r = await fetch(`${base}/v1/uploads`, { method: "POST", headers: { "Content-Type": "video/mp4" }, body: Buffer.alloc(65 * 1024) });
    await expectError(r, 413, { message: /upload is larger than .*64 KiB/ });
  });
  it("an empty upload and a form upload are 400", async () => {
    await expectError(await fetch(`${base}/v1/uploads`, { method: "POST", headers: { "Content-Type": "video/mp4" }, body: Buffer.alloc(0) }), 400, { code: "empty_upload" });
    await expectError(await fetch(`${base}/v1/uploads`, { method: "POST", body: new FormData() }), 400, { message: /video file itself/ });
  });
  it("the server still serves", stillServing);
});

describe("queue, disconnects and isolation", () => {
  let small: VideolmServer;
  beforeAll(async () => {
    small = await startServer({ maxQueue: 1 });
  });
  afterAll(async () => small?.close());

  const longRequest = { messages: [{ role: "user", content: "Tell me a long story." }], max_tokens: 2000, stream: true };
  const shortRequest = { messages: golden.cases.text.messages, max_tokens: 12 };

  it("a full queue answers 429; a disconnected client's generation is cancelled; the next answer is unaffected", async () => {
    const before = await (await postJson(small.url, "/v1/chat/completions", shortRequest)).json();
    expect(before.choices[0].message.content).toBe(golden.cases.text.greedy.text);

    const first = new AbortController();
    const r1 = await postJson(small.url, "/v1/chat/completions", longRequest, { signal: first.signal });
    expect(r1.status).toBe(200);
    const reader = r1.body!.getReader();
    await reader.read(); // the stream has started: this request holds the model
    const second = new AbortController();
    const p2 = postJson(small.url, "/v1/chat/completions", longRequest, { signal: second.signal }).catch(() => null); // waits in the queue
    await waitFor(async () => (await (await fetch(`${small.url}/health`)).json()).queue.in_flight === 2);
    await expectError(await postJson(small.url, "/v1/chat/completions", shortRequest), 429, { code: "queue_full", message: /busy/ });
    expect(small.stats.rejected).toBe(1);

    second.abort(); // leaves the queue without running
    first.abort(); // cancels the running generation
    await p2;
    await waitFor(() => small.stats.aborted === 2);
    await waitFor(async () => (await (await fetch(`${small.url}/health`)).json()).queue.in_flight === 0);

    const after = await (await postJson(small.url, "/v1/chat/completions", shortRequest)).json();
    expect(after.choices[0].message.content).toBe(golden.cases.text.greedy.text);
    expect(after.usage).toEqual(before.usage);
  });
});
