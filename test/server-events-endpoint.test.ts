/**
 * POST /v1/events: a chat completion with response_format videolm_events underneath, answered as events (JSON) or as
 * SRT / WebVTT / CSV. The tiny checkpoint's random weights never say "0.5 - 1.0 seconds", so most checks run on a
 * server that shares its preparer (the real planning, media rules and prompt) but scripts the generation; the real
 * model checks that the endpoint's answer is exactly a chat completion's with the family's prompt.
 */
import * as fs from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { GenerateRequest, GenerateResponse } from "../src/engine/model.js";
import { formatEvents } from "../src/events/format.js";
import { eventsResult } from "../src/events/parse.js";
import { eventPromptFor } from "../src/events/prompts.js";
import type { EventsTask } from "../src/events/types.js";
import { VideolmServer } from "../src/server/server.js";
import { makeTestVideo, postJson, startServer, tempDir, tinyModel, waitFor } from "./server-helpers.js";

const DENSE = "0.5 - 1.0 seconds, the square appears.\n1.2 - 1.8 seconds, the square turns red.";
const GROUNDING = "The given query happens in 0.4 - 1.2 seconds.";

describe("POST /v1/events", () => {
  let dir: string;
  let video: string;
  let scripted: VideolmServer;
  let real: VideolmServer;
  let script = DENSE;
  let gate: Promise<void> | undefined;
  let scriptedUpload: string; // one upload: its planned frames are decoded once (the worker's frame cache)
  const seen: GenerateRequest[] = [];

  beforeAll(async () => {
    dir = tempDir("videolm-events-");
    video = makeTestVideo(dir, "clip.mp4", 2); // 2 s, 10 fps
    const model = await tinyModel();
    scripted = await VideolmServer.start(
      {
        preparer: model.preparer,
        async generate(req: GenerateRequest): Promise<GenerateResponse> {
          seen.push(req);
          if (gate) await Promise.race([gate, new Promise((r) => req.signal?.addEventListener("abort", r))]);
          const base = { tokens: [1, 2, 3], promptTokens: req.prepared?.inputIds.length ?? 0, options: model.preparer.resolveOptions({}), timings: { visionMs: 0, prefillMs: 0, ttftMs: 0, decodeMs: 0, decodeTokensPerSecond: 0, preprocessMs: 0 } };
          return { ...base, text: script, finishReason: req.signal?.aborted ? "aborted" : "stop" };
        },
      },
      { port: 0, log: () => {}, modelName: "tiny", maxQueue: 1, maxBodyBytes: 1024 * 1024 },
    );
    real = await startServer({ modelName: "tiny" });
    scriptedUpload = await upload(scripted.url);
  });
  afterAll(async () => {
    await scripted?.close();
    await real?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function upload(base: string): Promise<string> {
    const r = await fetch(`${base}/v1/uploads?filename=clip.mp4`, { method: "POST", headers: { "Content-Type": "video/mp4" }, body: fs.readFileSync(video) });
    return ((await r.json()) as { url: string }).url;
  }

  /** The family's prompt for this video as the plan samples it (frame times from /v1/plan, not from the endpoint). */
  async function expectedPrompt(base: string, url: string, task: EventsTask, query?: string): Promise<string> {
    const plan = await (await postJson(base, "/v1/plan", { messages: [{ role: "user", content: [{ type: "video_url", video_url: { url, fps: 2 } }, { type: "text", text: "?" }] }] })).json();
    const frameTimes = (plan.visuals[0].frames as { time: number }[]).map((f) => f.time);
    const { preparer } = await tinyModel();
    return eventPromptFor(preparer.family, preparer.dir, { task, query, frameTimes }).text;
  }

  it("dense: the family's prompt after the video, the answer parsed into events over the clip's duration", async () => {
    script = DENSE;
    const url = scriptedUpload;
    seen.length = 0;
    const r = await postJson(scripted.url, "/v1/events", { video: { url, fps: 2 }, task: "dense" });
    expect(r.status).toBe(200);
    const body = await r.json();
    expect(body).toMatchObject({ object: "videolm.events", model: "tiny", task: "dense", duration: 2, raw: DENSE, parsed: true, finish_reason: "stop" });
    expect(body.query).toBeUndefined();
    expect(body.events.map((e: { start: number; end: number }) => [e.start, e.end])).toEqual([[0.5, 1], [1.2, 1.8]]);
    expect(body.events[0].text).toMatch(/the square appears/);
    const reference = eventsResult(DENSE, { task: "dense", duration: 2 });
    expect(body.events).toEqual(reference.events);
    expect(body.warnings).toEqual(reference.warnings);
    expect(body.usage.prompt_tokens).toBe(seen[0].prepared!.inputIds.length);
    // The prompt is the family's (here Qwen2-VL: the frames' times as text, then TimeChat's dense prompt), after the video.
    const prompt = await expectedPrompt(scripted.url, url, "dense");
    expect(prompt).toMatch(/^The video contains 4 frames sampled at /);
    const text = seen[0].prepared!.promptText;
    expect(text).toContain(prompt);
    expect(text.indexOf(prompt)).toBeGreaterThan(text.indexOf("<|vision_end|>"));
  });

  it("grounding: the query goes into the family's prompt and comes back with the span", async () => {
    script = GROUNDING;
    const url = scriptedUpload;
    seen.length = 0;
    const query = "the square turns red";
    const body = await (await postJson(scripted.url, "/v1/events", { video: { url, fps: 2 }, task: "grounding", query })).json();
    expect(body).toMatchObject({ task: "grounding", query, duration: 2, parsed: true });
    expect(body.events.map((e: { start: number; end: number }) => [e.start, e.end])).toEqual([[0.4, 1.2]]);
    expect(body.events).toEqual(eventsResult(GROUNDING, { task: "grounding", query, duration: 2 }).events);
    expect(seen[0].prepared!.promptText).toContain(await expectedPrompt(scripted.url, url, "grounding", query));
  });

  it("nothing parsed is said, never invented", async () => {
    script = "I cannot tell.";
    const url = scriptedUpload;
    const body = await (await postJson(scripted.url, "/v1/events", { video: { url, fps: 2 }, task: "dense" })).json();
    expect(body).toMatchObject({ events: [], parsed: false, raw: "I cannot tell." });
  });

  it("format srt / vtt / csv: the events as that file, with its Content-Type, equal to formatEvents", async () => {
    script = DENSE;
    const url = scriptedUpload;
    const json = await (await postJson(scripted.url, "/v1/events", { video: { url, fps: 2 }, task: "dense" })).json();
    const types = { srt: "application/x-subrip; charset=utf-8", vtt: "text/vtt; charset=utf-8", csv: "text/csv; charset=utf-8; header=present" };
    for (const [format, type] of Object.entries(types) as ["srt" | "vtt" | "csv", string][]) {
      const r = await postJson(scripted.url, "/v1/events", { video: { url, fps: 2 }, task: "dense", format });
      expect(r.status).toBe(200);
      expect(r.headers.get("content-type")).toBe(type);
      expect(r.headers.get("x-videolm-events-parsed")).toBe("true");
      expect(r.headers.get("x-videolm-events-duration")).toBe("2");
      expect(await r.text()).toBe(formatEvents(json.events, format));
    }
    expect(formatEvents(json.events, "srt")).toMatch(/^1\n00:00:00,500 --> 00:00:01,000\n/);
  });

  it("video options are chat's (start/end move the clip; a bad option is a 400 naming video.*)", async () => {
    script = "0.2 - 0.6 seconds, something.";
    const url = scriptedUpload;
    const body = await (await postJson(scripted.url, "/v1/events", { video: { url, fps: 2, start: 0.5, end: 1.5 }, task: "dense" })).json();
    expect(body.duration).toBe(1);
    const r = await postJson(scripted.url, "/v1/events", { video: { url, fps: -1 }, task: "dense" });
    expect(r.status).toBe(400);
    expect((await r.json()).error).toMatchObject({ param: "video.fps", message: expect.stringMatching(/^video\.fps must be > 0/) });
  });

  describe("hostile and malformed bodies are clear 400s", () => {
    const video = { url: "data:video/mp4;base64,AAAA" };
    const cases: [string, unknown, { status?: number; param?: string | null; code?: string; message: RegExp }][] = [
      ["not an object", [1, 2], { param: null, message: /must be a JSON object, got an array/ }],
      ["no video", { task: "dense" }, { param: "video", message: /video is required/ }],
      ["video of the wrong type", { task: "dense", video: 42 }, { param: "video", message: /video must be an object .* got a number/ }],
      ["video without url", { task: "dense", video: { fps: 2 } }, { param: "video.url", message: /video\.url must be a non-empty string/ }],
      ["no task", { video }, { param: "task", message: /task is required/ }],
      ["unknown task", { video, task: "summary" }, { param: "task", message: /task must be "grounding", "dense"; got "summary"/ }],
      ["grounding without a query", { video, task: "grounding" }, { param: "query", message: /needs a query/ }],
      ["an empty query", { video, task: "grounding", query: "  " }, { param: "query", message: /query is empty/ }],
      ["a query of the wrong type", { video, task: "grounding", query: ["a"] }, { param: "query", message: /query must be a string, got an array/ }],
      ["a query too long", { video, task: "grounding", query: "x".repeat(1001) }, { param: "query", code: "limit_exceeded", message: /1001 characters; at most 1000/ }],
      ["a query for dense", { video, task: "dense", query: "x" }, { param: "query", message: /only for task "grounding"/ }],
      ["unknown format", { video, task: "dense", format: "xml" }, { param: "format", message: /format must be "json", "srt", "vtt", "csv"; got "xml"/ }],
      ["constrained not a boolean", { video, task: "dense", constrained: "yes" }, { param: "constrained", message: /true or false, got a string/ }],
      ["unknown field", { video, task: "dense", messages: [] }, { param: "messages", code: "unknown_parameter", message: /"messages" is not a field of \/v1\/events/ }],
      ["unknown video option", { video: { ...video, speed: 2 }, task: "dense" }, { param: "video.speed", code: "unknown_option", message: /video\.speed: unknown option/ }],
      ["max_tokens over the limit", { video, task: "dense", max_tokens: 1e6 }, { param: "max_tokens", code: "limit_exceeded", message: /--max-tokens/ }],
      ["unknown model", { video, task: "dense", model: "other" }, { status: 404, param: "model", code: "model_not_found", message: /does not exist/ }],
    ];
    for (const [name, body, want] of cases) {
      it(name, async () => {
        const r = await postJson(scripted.url, "/v1/events", body);
        expect(r.status).toBe(want.status ?? 400);
        const { error } = await r.json();
        expect(error.message).toMatch(want.message);
        if (want.param !== undefined) expect(error.param).toBe(want.param);
        if (want.code) expect(error.code).toBe(want.code);
      });
    }

    it("bodies: not JSON, nested too deep, too large", async () => {
      expect((await postJson(scripted.url, "/v1/events", "{nope")).status).toBe(400);
      expect((await (await postJson(scripted.url, "/v1/events", "[".repeat(300) + "]".repeat(300))).json()).error.message).toMatch(/deeper than 256/);
      const big = await postJson(scripted.url, "/v1/events", { video: { url: `data:video/mp4;base64,${"A".repeat(2 * 1024 * 1024)}` }, task: "dense" });
      expect(big.status).toBe(413);
    });

    it("media URLs follow chat's rules exactly (SSRF guard, file://, bare paths, unknown uploads)", async () => {
      for (const url of ["http://127.0.0.1:9/clip.mp4", "http://[::ffff:169.254.169.254]/x.mp4", "file:///etc/passwd", "clip.mp4", "upload://nope", "ftp://example.com/x.mp4"]) {
        const events = await postJson(scripted.url, "/v1/events", { video: { url }, task: "dense" });
        const chat = await postJson(scripted.url, "/v1/chat/completions", { messages: [{ role: "user", content: [{ type: "video_url", video_url: { url } }] }] });
        expect(events.status, url).toBeGreaterThanOrEqual(400);
        expect(events.status, url).toBe(chat.status);
        const [e, c] = [(await events.json()).error, (await chat.json()).error];
        expect(e.code, url).toBe(c.code);
        expect(e.message, url).toBe(c.message);
      }
    });
  });

  it("shares chat's admission, queue and abort: a full queue is 429 for either route, a disconnect cancels", async () => {
    script = DENSE;
    const url = scriptedUpload;
    let open!: () => void;
    gate = new Promise<void>((r) => (open = r));
    seen.length = 0;
    const before = { ...scripted.stats };
    const holder = postJson(scripted.url, "/v1/chat/completions", { messages: [{ role: "user", content: "hi" }] }); // generating
    await waitFor(() => seen.length === 1);
    const leaving = new AbortController();
    const waiting = postJson(scripted.url, "/v1/events", { video: { url, fps: 2 }, task: "dense" }, { signal: leaving.signal }).catch(() => null); // queued
    await waitFor(async () => (await (await fetch(`${scripted.url}/health`)).json()).queue.in_flight === 2);
    const full = await postJson(scripted.url, "/v1/events", { video: { url, fps: 2 }, task: "dense" });
    expect(full.status).toBe(429);
    expect((await full.json()).error.code).toBe("queue_full");
    leaving.abort();
    await waiting;
    await waitFor(() => scripted.stats.aborted === before.aborted + 1);
    open();
    gate = undefined;
    expect((await holder).status).toBe(200);
    expect(scripted.stats.rejected).toBe(before.rejected + 1);
    // The aborted events request never reached generation.
    expect(seen.length).toBe(1);

    // A disconnect during generation aborts the generation's signal.
    gate = new Promise<void>(() => {});
    seen.length = 0;
    const gone = new AbortController();
    const p = postJson(scripted.url, "/v1/events", { video: { url, fps: 2 }, task: "dense" }, { signal: gone.signal }).catch(() => null);
    await waitFor(() => seen.length === 1);
    gone.abort();
    await p;
    await waitFor(() => seen[0].signal?.aborted === true);
    await waitFor(() => scripted.stats.aborted === before.aborted + 2);
    gate = undefined;
  });

  it("on the real model, the answer is exactly a chat completion with response_format videolm_events and the family's prompt", async () => {
    const url = await upload(real.url);
    const events = await (await postJson(real.url, "/v1/events", { video: { url, fps: 2 }, task: "grounding", query: "the square", max_tokens: 6 })).json();
    const prompt = await expectedPrompt(real.url, url, "grounding", "the square");
    const chat = await (
      await postJson(real.url, "/v1/chat/completions", {
        messages: [{ role: "user", content: [{ type: "video_url", video_url: { url, fps: 2 } }, { type: "text", text: prompt }] }],
        max_tokens: 6,
        response_format: { type: "videolm_events", task: "grounding", query: "the square" },
      })
    ).json();
    const message = chat.choices[0].message;
    expect(events.raw).toBe(message.content);
    expect(events.events).toEqual(message.events);
    expect({ parsed: events.parsed, warnings: events.warnings, duration: events.duration }).toEqual({ parsed: message.videolm_events.parsed, warnings: message.videolm_events.warnings, duration: message.videolm_events.duration });
    expect(events.usage).toEqual(chat.usage);
    expect(events.usage.completion_tokens).toBe(6);
  });
});
