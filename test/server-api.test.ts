/**
 * The OpenAI-compatible API against a real listening server (tiny Qwen2-VL checkpoint) with a real HTTP client.
 * Expected answers come from the Python reference (golden.json: greedy tokens of transformers 4.57.6) or are derived
 * by hand (qwen-vl-utils frame indices and sizes for a 2 s, 10 fps, 56×56 clip).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { VideolmServer } from "../src/server/server.js";
import { FIXTURES, golden, makeTestVideo, parseSse, pngDataUrl, postJson, startMediaHost, startServer, tempDir, tinyModel, type MediaHost } from "./server-helpers.js";

let server: VideolmServer;
let base: string;
let host: MediaHost;
let dir: string;
let video: string;
const imageFile = path.join(FIXTURES, golden.cases.image.messages[0].content[0].image);

beforeAll(async () => {
  dir = tempDir("videolm-server-api-");
  video = makeTestVideo(dir);
  host = await startMediaHost({ video, image: imageFile });
  server = await startServer({ allowPrivateMedia: true, allowedMediaDir: dir, modelName: "tiny" });
  base = server.url;
});
afterAll(async () => {
  await server?.close();
  await host?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const ask = (content: unknown, extra: Record<string, unknown> = {}) => ({ model: "tiny", messages: [{ role: "user", content }], max_tokens: 6, ...extra });
const videoPart = (url: string, options: Record<string, unknown> = {}) => ({ type: "video_url", video_url: { url, ...options } });

async function upload(file: string): Promise<{ id: string; url: string; bytes: number }> {
  const r = await fetch(`${base}/v1/uploads?filename=clip.mp4`, { method: "POST", headers: { "Content-Type": "video/mp4" }, body: fs.readFileSync(file) });
  expect(r.status).toBe(201);
  return (await r.json()) as { id: string; url: string; bytes: number };
}

describe("discovery", () => {
  it("GET /health, /v1/models and /v1/models/ID describe the served model", async () => {
    const health = await (await fetch(`${base}/health`)).json();
    expect(health).toMatchObject({ status: "ok", model: "tiny", queue: { in_flight: 0, max_queue: 8 } });
    const models = await (await fetch(`${base}/v1/models`)).json();
    expect(models).toMatchObject({ object: "list", data: [{ id: "tiny", object: "model", owned_by: "videolm", context_length: 4096 }] });
    expect((await fetch(`${base}/v1/models/tiny`)).status).toBe(200);
    const missing = await fetch(`${base}/v1/models/gpt-4o`);
    expect(missing.status).toBe(404);
    expect((await missing.json()).error).toMatchObject({ code: "model_not_found", type: "invalid_request_error" });
  });

  it("unknown routes are 404 and wrong methods 405, in OpenAI's error format", async () => {
    const r = await fetch(`${base}/v1/embeddings`, { method: "POST" });
    expect(r.status).toBe(404);
    expect(await r.json()).toMatchObject({ error: { type: "invalid_request_error", code: "not_found", param: null } });
    const g = await fetch(`${base}/v1/chat/completions`);
    expect(g.status).toBe(405);
    expect(g.headers.get("allow")).toBe("POST");
  });
});

describe("chat completions", () => {
  it("answers an image question with the reference's greedy text (non-streaming)", async () => {
    const q = golden.cases.image.messages[0].content[1].text;
    const r = await postJson(base, "/v1/chat/completions", ask([{ type: "image_url", image_url: { url: pngDataUrl(imageFile) } }, { type: "text", text: q }], { max_tokens: 12 }));
    expect(r.status).toBe(200);
    const out = await r.json();
    expect(out.object).toBe("chat.completion");
    expect(out.id).toMatch(/^chatcmpl-/);
    expect(out.model).toBe("tiny");
    expect(out.choices[0].message).toEqual({ role: "assistant", content: golden.cases.image.greedy.text });
    expect(out.choices[0].finish_reason).toBe("length");
    expect(out.choices[0].logprobs).toBeNull();
    expect(out.usage).toEqual({ prompt_tokens: golden.cases.image.input_ids.length, completion_tokens: 12, total_tokens: golden.cases.image.input_ids.length + 12 });
  });

  it("streams chat.completion.chunk events whose deltas add up to the reference text, ending with usage and [DONE]", async () => {
    const r = await postJson(base, "/v1/chat/completions", { ...ask(golden.cases.text.messages[0].content, { max_tokens: 12 }), stream: true, stream_options: { include_usage: true } });
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const { events, done } = parseSse(await r.text());
    expect(done).toBe(true);
    type Chunk = { object: string; id: string; choices: { delta: { role?: string; content?: string }; finish_reason: string | null }[]; usage?: Record<string, number> };
    const chunks = events as unknown as Chunk[];
    expect(chunks.every((c) => c.object === "chat.completion.chunk" && c.id === chunks[0].id)).toBe(true);
    expect(chunks[0].choices[0].delta.role).toBe("assistant");
    const text = chunks.flatMap((c) => c.choices.map((ch) => ch.delta.content ?? "")).join("");
    expect(text).toBe(golden.cases.text.greedy.text);
    expect(chunks.length).toBeGreaterThan(5); // streamed piece by piece, not in one chunk
    const final = chunks[chunks.length - 2];
    expect(final.choices[0].finish_reason).toBe("length");
    const usage = { prompt_tokens: golden.cases.text.input_ids.length, completion_tokens: 12, total_tokens: golden.cases.text.input_ids.length + 12 };
    expect(final.usage).toEqual(usage);
    expect(chunks[chunks.length - 1]).toMatchObject({ choices: [], usage }); // stream_options.include_usage
  });

  it("returns logprobs and top_logprobs that agree with the reference logits", async () => {
    const r = await postJson(base, "/v1/chat/completions", { ...ask(golden.cases.text.messages[0].content, { max_tokens: 12 }), logprobs: true, top_logprobs: 3 });
    const out = await r.json();
    const content = out.choices[0].logprobs.content as { token: string; logprob: number; bytes: number[]; top_logprobs: { token: string; logprob: number }[] }[];
    expect(content).toHaveLength(12);
    // The tokens' bytes, concatenated, are the answer's UTF-8 bytes.
    expect(Buffer.from(content.flatMap((c) => c.bytes)).toString("utf8")).toBe(golden.cases.text.greedy.text);
    const tokenizer = (await tinyModel()).tokenizer;
    for (const [k, step] of [[0, golden.cases.text.greedy.steps[0]], [11, golden.cases.text.greedy.steps[1]]] as const) {
      const top = content[k].top_logprobs;
      expect(top).toHaveLength(3);
      expect(top.map((t) => t.token)).toEqual(step.top20.slice(0, 3).map(([id]: [number]) => Buffer.from(tokenizer.decode([id]), "utf8").toString("utf8")));
      expect(content[k].logprob).toBeCloseTo(top[0].logprob, 6); // greedy picks the top token
      // Log-probability differences are logit differences.
      expect(top[0].logprob - top[1].logprob).toBeCloseTo(step.top20[0][1] - step.top20[1][1], 3);
      expect(top[1].logprob - top[2].logprob).toBeCloseTo(step.top20[1][1] - step.top20[2][1], 3);
      expect(top[0].logprob).toBeLessThan(0);
    }
  });

  it("streams logprobs with the chunks when asked", async () => {
    const r = await postJson(base, "/v1/chat/completions", { ...ask("Hi", { max_tokens: 4 }), stream: true, logprobs: true, top_logprobs: 1 });
    const { events } = parseSse(await r.text());
    const withLp = events.filter((e) => (e as { choices: { logprobs: unknown }[] }).choices[0]?.logprobs);
    expect(withLp).toHaveLength(4);
  });

  it("stop strings end the answer without emitting them", async () => {
    const full = golden.cases.text.greedy.text as string;
    const stop = full.slice(8, 12); // appears inside the greedy answer
    const r = await postJson(base, "/v1/chat/completions", ask(golden.cases.text.messages[0].content, { max_tokens: 12, stop }));
    const out = await r.json();
    expect(out.choices[0].message.content).toBe(full.slice(0, full.indexOf(stop)));
    expect(out.choices[0].finish_reason).toBe("stop");
  });
});

describe("videos", () => {
  it("upload://, http://, data: and file:// URLs of the same clip give the same plan and the same answer", async () => {
    const up = await upload(video);
    expect(up.url).toBe(`upload://${up.id}`);
    expect(up.bytes).toBe(fs.statSync(video).size);
    const urls = [up.url, `${host.url}/clip.mp4`, `data:video/mp4;base64,${fs.readFileSync(video).toString("base64")}`, pathToFileURL(video).href];
    const answers = [];
    for (const url of urls) {
      const r = await postJson(base, "/v1/chat/completions", ask([videoPart(url), { type: "text", text: "What happens?" }]));
      expect(r.status, url.slice(0, 40)).toBe(200);
      answers.push(await r.json());
    }
    for (const a of answers) {
      expect(a.choices[0].message.content).toBe(answers[0].choices[0].message.content);
      expect(a.usage).toEqual(answers[0].usage);
    }
    // 4 frames (2 s × 2 fps) resized to 336×336 → grid (2, 24, 24) → 2·24·24/4 = 288 video tokens, plus the text.
    expect(answers[0].usage.prompt_tokens).toBeGreaterThan(288);
    expect(answers[0].usage.prompt_tokens).toBeLessThan(288 + 40);
  });

  it("POST /v1/plan gives the sampled frames, times, size, tokens and thumbnails", async () => {
    const up = await upload(video);
    const r = await postJson(base, "/v1/plan", ask([videoPart(up.url), { type: "text", text: "What happens?" }]));
    expect(r.status).toBe(200);
    const plan = await r.json();
    expect(plan).toMatchObject({ object: "videolm.plan", model: "tiny", context_length: 4096, fits: true });
    const v = plan.visuals[0];
    // qwen-vl-utils: nframes = 20 / 10 · 2 = 4; indices = round(linspace(0, 19, 4)) = 0, 6, 13, 19; time = index / 10.
    expect(v.frames.map((f: { index: number }) => f.index)).toEqual([0, 6, 13, 19]);
    expect(v.frames.map((f: { time: number }) => f.time)).toEqual([0, 0.6, 1.3, 1.9]);
    expect(v).toMatchObject({ kind: "video", width: 336, height: 336, grid: [2, 24, 24], tokens: 288, sample_fps: 2, source: up.url });
    const thumb = await fetch(base + v.frames[1].thumbnail);
    expect(thumb.status).toBe(200);
    expect(thumb.headers.get("content-type")).toBe("image/jpeg");
    const meta = await sharp(Buffer.from(await thumb.arrayBuffer())).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(["jpeg", 240, 240]);
    const chat = await (await postJson(base, "/v1/chat/completions", ask([videoPart(up.url), { type: "text", text: "What happens?" }]))).json();
    expect(chat.usage.prompt_tokens).toBe(plan.prompt_tokens);
  });

  it("per-part video options change the plan (fps, nframes, pixels, start/end)", async () => {
    const up = await upload(video);
    const plan = async (options: Record<string, unknown>) => {
      const r = await postJson(base, "/v1/plan", ask([videoPart(up.url, options), { type: "text", text: "?" }]));
      expect(r.status).toBe(200);
      return (await r.json()).visuals[0];
    };
    // fps 4 → 8 frames: round(linspace(0, 19, 8)) = 0, 3, 5, 8, 11, 14, 16, 19.
    expect((await plan({ fps: 4 })).frames.map((f: { index: number }) => f.index)).toEqual([0, 3, 5, 8, 11, 14, 16, 19]);
    // nframes 6 → round(linspace(0, 19, 6)) = 0, 4, 8, 11, 15, 19.
    expect((await plan({ nframes: 6 })).frames.map((f: { index: number }) => f.index)).toEqual([0, 4, 8, 11, 15, 19]);
    // 56×56 frames kept at 56×56 → grid (2, 4, 4) → 8 tokens.
    expect(await plan({ min_pixels: 3136, max_pixels: 3136 })).toMatchObject({ width: 56, height: 56, grid: [2, 4, 4], tokens: 8 });
    // Options may also sit beside video_url (vLLM style).
    const r = await postJson(base, "/v1/plan", ask([{ type: "video_url", video_url: { url: up.url }, nframes: 2 }, { type: "text", text: "?" }]));
    expect((await r.json()).visuals[0].frames).toHaveLength(2);
    // start 1 s: frames 10..19 → nframes 2 → indices 10, 19.
    expect((await plan({ start: 1, nframes: 2 })).frames.map((f: { index: number }) => f.index)).toEqual([10, 19]);
  });

  it("video_url.prune: EVS pruning per video, reported in usage.videolm_visual_tokens; bad rates are 400 naming the field", async () => {
    const up = await upload(video);
    const question = { type: "text", text: "What happens?" };
    const plain = await (await postJson(base, "/v1/chat/completions", ask([videoPart(up.url), question]))).json();
    expect(plain.usage.videolm_visual_tokens).toBeUndefined();
    const pruned = await (await postJson(base, "/v1/chat/completions", ask([videoPart(up.url, { prune: 0.5 }), question]))).json();
    // grid (2, 24, 24): 288 tokens, 144 per frame pair; vLLM keeps max(144, int(288 · 0.5)) = 144: the first pair.
    expect(pruned.usage.videolm_visual_tokens).toMatchObject({ method: "EVS (vLLM)", planned: 288, kept: 144 });
    expect(pruned.usage.videolm_visual_tokens.units.map((u: { tokens: number }) => u.tokens)).toEqual([144, 0]);
    expect(pruned.usage.prompt_tokens).toBe(plain.usage.prompt_tokens - 144);
    const plan = await (await postJson(base, "/v1/plan", ask([videoPart(up.url, { prune: 0.5 }), question]))).json();
    expect(plan.visuals[0].prune).toEqual({ rate: 0.5, kept_tokens: 144 });
    expect(plan.prompt_tokens).toBe(plain.usage.prompt_tokens); // planned with every token (the upper bound)
    const bad = await postJson(base, "/v1/chat/completions", ask([videoPart(up.url, { prune: 1 }), question]));
    expect(bad.status).toBe(400);
    expect((await bad.json()).error.param).toBe("messages[0].content[0].video_url.prune");
  });

  it("an upload can be deleted, after which it is unknown", async () => {
    const up = await upload(video);
    const del = await fetch(`${base}/v1/uploads/${up.id}`, { method: "DELETE" });
    expect(await del.json()).toMatchObject({ id: up.id, deleted: true });
    const r = await postJson(base, "/v1/chat/completions", ask([videoPart(up.url), { type: "text", text: "?" }]));
    expect(r.status).toBe(400);
    expect((await r.json()).error.code).toBe("upload_not_found");
  });
});
