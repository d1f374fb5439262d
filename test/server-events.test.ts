/**
 * Chat completions with `response_format`: videolm_events (the answer parsed into events of the request's video,
 * beside `content`; in the final chunk when streaming), json_object / json_schema (generation held to them), and 400s
 * naming the field for malformed ones. The tiny model's random weights never write a span, so the generation is
 * scripted (server B of web-app.test.ts does the same); preparation and the HTTP path are the real ones.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { GenerateRequest, GenerateResponse } from "../src/engine/model.js";
import { RequestPreparer } from "../src/engine/preparer.js";
import { VideolmServer } from "../src/server/server.js";
import { materializeTinyCheckpoint } from "../src/testing/tiny-checkpoint.js";
import { FIXTURES, makeTestVideo, parseSse, postJson, tempDir, tinyModel } from "./server-helpers.js";

let dir: string;
let video: string;
let plain: VideolmServer;
let demoLike: VideolmServer;
let answer = "";
const asked: GenerateRequest[] = [];

function scriptedModel(preparer: RequestPreparer) {
  return {
    preparer,
    async generate(req: GenerateRequest): Promise<GenerateResponse> {
      asked.push(req);
      const pieces = answer.match(/.{1,7}/gs) ?? [];
      for (const [i, text] of pieces.entries()) req.onToken?.({ token: 100 + i, text, logprob: -0.1 });
      return { text: answer, tokens: pieces.map((_, i) => 100 + i), promptTokens: req.prepared?.inputIds.length ?? 0, finishReason: "stop", options: preparer.resolveOptions({}), timings: { visionMs: 0, prefillMs: 0, ttftMs: 0, decodeMs: 0, decodeTokensPerSecond: 0, preprocessMs: 0 } };
    },
  };
}

beforeAll(async () => {
  dir = tempDir("videolm-server-events-");
  video = makeTestVideo(dir); // 2 s
  const options = { port: 0, log: () => {}, modelName: "tiny", allowPrivateMedia: true, allowedMediaDir: dir };
  plain = await VideolmServer.start(scriptedModel((await tinyModel()).preparer), options);
  // The tiny checkpoint with the demo model's kind of videolm_events block (a regex for grounding answers).
  const ckpt = await materializeTinyCheckpoint(path.join(FIXTURES, "qwen2-vl-tiny"), path.join(dir, "ckpt"));
  const vpc = path.join(ckpt, "video_preprocessor_config.json");
  const base = fs.existsSync(vpc) ? JSON.parse(fs.readFileSync(vpc, "utf8")) : {};
  fs.writeFileSync(vpc, JSON.stringify({ ...base, videolm_events: { grounding: "when is the {query} visible?", groundingFormat: { type: "regex", pattern: "from \\d+\\.\\d to \\d+\\.\\d seconds" } } }));
  demoLike = await VideolmServer.start(scriptedModel(await RequestPreparer.load(ckpt)), options);
}, 120_000);
afterAll(async () => {
  await plain?.close();
  await demoLike?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const videoPart = (extra: Record<string, unknown> = {}) => ({ type: "video_url", video_url: { url: `file://${video}`, fps: 2, ...extra } });
const body = (responseFormat: unknown, extra: Record<string, unknown> = {}, part = videoPart()) => ({
  messages: [{ role: "user", content: [part, { type: "text", text: "What happens, and when?" }] }],
  max_tokens: 32,
  response_format: responseFormat,
  ...extra,
});

describe("response_format videolm_events", () => {
  it("adds the parsed events and what the parser did beside the content", async () => {
    answer = "0.0 - 0.5 seconds, the pattern appears.\n1.0 - 2.6 seconds, it scrolls.";
    const r = await postJson(plain.url, "/v1/chat/completions", body({ type: "videolm_events", task: "dense" }));
    expect(r.status).toBe(200);
    const message = (await r.json()).choices[0].message;
    expect(message.content).toBe(answer);
    expect(message.events).toEqual([
      { start: 0, end: 0.5, text: "the pattern appears." },
      { start: 1, end: 2, text: "it scrolls." },
    ]);
    expect(message.videolm_events).toMatchObject({ task: "dense", parsed: true, duration: 2, constrained: false });
    expect(message.videolm_events.warnings.join(" ")).toMatch(/2\.6/);
    expect(asked.at(-1)!.responseFormat).toBeUndefined(); // Qwen2-VL declares no format
  });

  it("times count from the clip's start: duration is end − start of the request's video", async () => {
    answer = "The event happens in 0.2 - 3.0 seconds.";
    const r = await postJson(plain.url, "/v1/chat/completions", body({ type: "videolm_events", task: "grounding", query: "the pattern" }, {}, videoPart({ start: 0.5, end: 1.5 })));
    const message = (await r.json()).choices[0].message;
    expect(message.videolm_events.duration).toBe(1);
    expect(message.events).toEqual([{ start: 0.2, end: 1, text: "the pattern" }]);
  });

  it("streaming: the content as usual, the events in the final chunk", async () => {
    answer = "from 0.5 to 1.5 seconds";
    const r = await postJson(plain.url, "/v1/chat/completions", body({ type: "videolm_events", task: "grounding", query: "the pattern" }, { stream: true }));
    const { events, done } = parseSse(await r.text());
    expect(done).toBe(true);
    const chunks = events as { choices: { delta: Record<string, unknown>; finish_reason: string | null }[] }[];
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? "").join("")).toBe(answer);
    const last = chunks.filter((c) => c.choices[0]?.finish_reason).at(-1)!;
    expect(last.choices[0].delta.events).toEqual([{ start: 0.5, end: 1.5, text: "the pattern" }]);
    expect(last.choices[0].delta.videolm_events).toMatchObject({ parsed: true, task: "grounding", query: "the pattern" });
    expect(chunks.slice(0, -1).every((c) => c.choices[0]?.delta.events === undefined)).toBe(true);
  });

  it("nothing parsed: no events, parsed false, a warning; the content unchanged", async () => {
    answer = "I do not know.";
    const message = (await (await postJson(plain.url, "/v1/chat/completions", body({ type: "videolm_events" }))).json()).choices[0].message;
    expect(message).toMatchObject({ content: "I do not know.", events: [], videolm_events: { parsed: false, task: "dense" } });
    expect(message.videolm_events.warnings.length).toBeGreaterThan(0);
  });

  it("a checkpoint that declares a format: generation held to it by default, not with constrained: false", async () => {
    answer = "from 0.5 to 1.0 seconds";
    await postJson(demoLike.url, "/v1/chat/completions", body({ type: "videolm_events", task: "grounding", query: "x" }));
    expect(asked.at(-1)!.responseFormat).toEqual({ type: "regex", pattern: "from \\d+\\.\\d to \\d+\\.\\d seconds" });
    const off = await (await postJson(demoLike.url, "/v1/chat/completions", body({ type: "videolm_events", task: "grounding", constrained: false }))).json();
    expect(asked.at(-1)!.responseFormat).toBeUndefined();
    expect(off.choices[0].message.videolm_events.constrained).toBe(false);
    // The messages stay the client's own (the family prompt is /v1/events' business).
    const text = (asked.at(-1)!.messages[0].content as { type: string; text?: string }[]).find((p) => p.type === "text")!.text;
    expect(text).toBe("What happens, and when?");
  });
});

describe("response_format json_object / json_schema", () => {
  it("holds generation to them", async () => {
    answer = '{"a": 1}';
    const r = await postJson(plain.url, "/v1/chat/completions", body({ type: "json_object" }));
    expect(r.status).toBe(200);
    expect(asked.at(-1)!.responseFormat).toEqual({ type: "json_object" });
    expect((await r.json()).choices[0].message.events).toBeUndefined();
    const schema = { type: "object", properties: { a: { type: "integer" } }, required: ["a"], additionalProperties: false };
    await postJson(plain.url, "/v1/chat/completions", body({ type: "json_schema", json_schema: { name: "x", schema, strict: true } }));
    expect(asked.at(-1)!.responseFormat).toMatchObject({ type: "json_schema", json_schema: { schema } });
    await postJson(plain.url, "/v1/chat/completions", body({ type: "regex", pattern: "(yes|no)" }));
    expect(asked.at(-1)!.responseFormat).toEqual({ type: "regex", pattern: "(yes|no)" });
    answer = "plain";
    await postJson(plain.url, "/v1/chat/completions", body({ type: "text" }));
    expect(asked.at(-1)!.responseFormat).toBeUndefined();
  });
});

describe("malformed response_format: 400 naming the field", () => {
  const cases: [string, unknown, RegExp, string][] = [
    ["not an object", "json", /response_format must be an object/, "response_format"],
    ["unknown type", { type: "xml" }, /response_format\.type must be "text", "json_object", "json_schema", "regex" or "videolm_events"/, "response_format.type"],
    ["bad task", { type: "videolm_events", task: "summary" }, /task must be "grounding" or "dense"/, "response_format.task"],
    ["query on dense", { type: "videolm_events", task: "dense", query: "x" }, /query is only for task "grounding"/, "response_format.query"],
    ["query not a string", { type: "videolm_events", task: "grounding", query: 3 }, /query must be a string/, "response_format.query"],
    ["constrained not a boolean", { type: "videolm_events", constrained: "yes" }, /constrained must be true or false/, "response_format.constrained"],
    ["unknown field", { type: "videolm_events", format: "srt" }, /unknown field of videolm_events/, "response_format.format"],
    ["json_schema without a schema", { type: "json_schema", json_schema: {} }, /schema/, "response_format"],
    ["regex that is no regular expression", { type: "regex", pattern: "(" }, /response_format\.pattern "\(": missing/, "response_format"],
  ];
  for (const [name, format, message, param] of cases) {
    it(name, async () => {
      const r = await postJson(plain.url, "/v1/chat/completions", body(format));
      expect(r.status).toBe(400);
      const e = (await r.json()).error;
      expect(e.message).toMatch(message);
      expect(e.param).toBe(param);
    });
  }

  it("videolm_events without a video", async () => {
    const r = await postJson(plain.url, "/v1/chat/completions", { messages: [{ role: "user", content: "when?" }], response_format: { type: "videolm_events" } });
    expect(r.status).toBe(400);
    expect((await r.json()).error.message).toMatch(/needs a video/);
  });
});
