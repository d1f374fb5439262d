/**
 * A real `videolm serve` (tiny Qwen2-VL checkpoint) as the remote backend, on loopback: the RemoteModel's answers,
 * streamed text, logprobs and prompt size equal the local engine's for the same request (greedy), and a local
 * `videolm serve` in front of it (`serve --backend`) answers the same through its own API.
 */
import * as fs from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChatRequestMessage } from "../src/engine/request.js";
import { RemoteModel } from "../src/remote/remote-model.js";
import { servedRemote } from "../src/remote/served-remote.js";
import { VideolmServer } from "../src/server/server.js";
import { TokenInfo } from "../src/text/token-info.js";
import { makeTestVideo, postJson, startServer, tempDir, tinyModel, waitFor } from "./server-helpers.js";

let backend: VideolmServer;
let dir: string;
let video: string;

beforeAll(async () => {
  dir = tempDir("videolm-remote-");
  video = makeTestVideo(dir);
  backend = await startServer({ modelName: "tiny-remote" });
});
afterAll(async () => {
  await backend?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const question = (extra: Record<string, unknown> = {}): ChatRequestMessage[] => [
  { role: "user", content: [{ type: "video", video, fps: 2, ...extra }, { type: "text", text: "What happens in this video?" }] },
];

describe("a videolm serve as the backend", () => {
  it("auto-detects the kind and model, and answers exactly as the local engine (text, streamed text, logprobs, prompt size)", async () => {
    const local = await (await tinyModel()).generate({ messages: question(), maxNewTokens: 12, temperature: 0, logprobs: 2 });
    const remote = await RemoteModel.connect(backend.url);
    expect(remote.kind).toBe("videolm");
    expect(remote.remoteModel).toBe("tiny-remote");
    const streamed: string[] = [];
    const answer = await remote.generate({ messages: question(), maxNewTokens: 12, temperature: 0, logprobs: 2, onToken: (e) => streamed.push(e.text) });
    expect(local.tokens.length).toBeGreaterThan(3);
    expect(answer.text).toBe(local.text);
    expect(streamed.join("")).toBe(local.text);
    expect(streamed.length).toBeGreaterThan(1); // streamed, not one piece
    expect(answer.promptTokens).toBe(local.promptTokens);
    expect(answer.remote.completionTokens).toBe(local.tokens.length);
    expect(answer.finishReason).toBe(local.finishReason);
    const info = new TokenInfo((await tinyModel()).tokenizer);
    expect(answer.remote.logprobs!.map((l) => l.token)).toEqual(local.logprobs!.map((l) => info.entry(l.token, l.logprob).token));
    answer.remote.logprobs!.forEach((l, i) => {
      expect(l.logprob).toBeCloseTo(local.logprobs![i].logprob, 5);
      expect(l.top.map((t) => t.token)).toEqual(local.logprobs![i].top!.map((t) => info.entry(t.token, t.logprob).token));
    });
    // The video went up once and is referred to again by a follow-up question (the backend's frame cache then
    // serves it); after the backend lost it (here: removed), it is uploaded again; dispose() removes it.
    expect(backend.uploads.count).toBe(1);
    await remote.generate({ messages: question(), maxNewTokens: 1, temperature: 0 });
    expect(backend.uploads.count).toBe(1);
    const [id] = (backend.uploads as unknown as { uploads: Map<string, unknown> }).uploads.keys();
    await backend.uploads.remove(id);
    expect((await remote.generate({ messages: question(), maxNewTokens: 12, temperature: 0 })).text).toBe(local.text);
    expect(backend.uploads.count).toBe(1);
    await remote.dispose();
    await waitFor(() => backend.uploads.count === 0, 5000);
  }, 300_000); // the tiny model generates several times; slow on a loaded 2-core machine

  it("sends the plan's options: a clip range and a frame cap give the same answer as locally", async () => {
    const messages = question({ start: 0.5, end: 1.8, maxFrames: 2 });
    const local = await (await tinyModel()).generate({ messages, maxNewTokens: 8, temperature: 0 });
    const remote = await RemoteModel.connect(backend.url, { kind: "videolm", model: "tiny-remote" });
    const answer = await remote.generate({ messages, maxNewTokens: 8, temperature: 0 });
    expect(answer.text).toBe(local.text);
    expect(answer.promptTokens).toBe(local.promptTokens);
    // And differs from the unclipped request's prompt (the options did reach the backend).
    const full = await remote.generate({ messages: question(), maxNewTokens: 1, temperature: 0 });
    expect(full.promptTokens).not.toBe(answer.promptTokens);
  }, 300_000); // the tiny model generates several times; slow on a loaded 2-core machine

  it("stop strings pass through", async () => {
    const local = await (await tinyModel()).generate({ messages: question(), maxNewTokens: 12, temperature: 0 });
    const stop = local.text.slice(3, 6);
    expect(stop.length).toBe(3);
    const remote = await RemoteModel.connect(backend.url);
    const answer = await remote.generate({ messages: question(), maxNewTokens: 12, temperature: 0, stop: [stop] });
    expect(answer.text).toBe(local.text.slice(0, local.text.indexOf(stop)));
  }, 300_000); // the tiny model generates several times; slow on a loaded 2-core machine

  it("serve --backend: a local front end forwards generation and answers as the backend does", async () => {
    const model = await tinyModel();
    const remote = await RemoteModel.connect(backend.url, { planner: model.preparer, maxAttempts: 2, backoffMs: 1 });
    const backendHost = new URL(backend.url).host;
    const front = await VideolmServer.start(servedRemote(remote), { port: 0, log: () => {}, modelName: "front", allowedMediaDir: dir });
    try {
      const body = (stream: boolean) => ({
        model: "front",
        messages: [{ role: "user", content: [{ type: "video_url", video_url: { url: `file://${video}`, fps: 2 } }, { type: "text", text: "What happens in this video?" }] }],
        max_tokens: 10,
        temperature: 0,
        stream,
      });
      const local = await model.generate({ messages: question(), maxNewTokens: 10, temperature: 0 });
      const r = await postJson(front.url, "/v1/chat/completions", body(false));
      expect(r.status).toBe(200);
      const json = (await r.json()) as { choices: { message: { content: string } }[]; usage: { prompt_tokens: number } };
      expect(json.choices[0].message.content).toBe(local.text);
      expect(json.usage.prompt_tokens).toBe(local.promptTokens);
      // Streaming through both servers.
      const s = await postJson(front.url, "/v1/chat/completions", body(true));
      const text = (await s.text())
        .split("\n\n")
        .filter((b) => b.startsWith("data: {"))
        .map((b) => JSON.parse(b.slice(6)) as { choices: { delta?: { content?: string } }[] })
        .map((e) => e.choices[0]?.delta?.content ?? "")
        .join("");
      expect(text).toBe(local.text);
      // A dead backend is a 502 naming it, in OpenAI's error format.
      await backend.close();
      const dead = await postJson(front.url, "/v1/chat/completions", body(false));
      expect(dead.status).toBe(502);
      const err = (await dead.json()) as { error: { message: string; code: string } };
      expect(err.error.code).toBe("backend_error");
      expect(err.error.message).toContain(`backend ${backendHost}`);
    } finally {
      await front.close();
      backend = await startServer({ modelName: "tiny-remote" });
    }
  }, 300_000); // the tiny model generates several times; slow on a loaded 2-core machine
});
