/**
 * The request bodies sent to vLLM and to Seed1.5-VL / OpenAI-style APIs, recorded by a loopback server and compared
 * with the shapes those projects document:
 *
 * - vLLM, Qwen2-VL / Qwen2.5-VL: the planned frames as one video_url "data:video/jpeg;base64,F1,F2,…" and top-level
 *   `mm_processor_kwargs: {"fps": [fps]}` (the openai client's `extra_body` is merged into the body): QwenLM's
 *   Qwen2.5-VL README, "For videos, you can use the chat API as follows" / `prepare_message_for_vllm` (kept in
 *   QwenLM/Qwen3-VL@d2240f1 README.md lines 800–884).
 * - vLLM, Qwen3-VL: the video itself as video_url and `mm_processor_kwargs: {"fps": 2, "do_sample_frames": true}`:
 *   QwenLM/Qwen3-VL@9658872 README.md lines 934–977, "Video Request Example" (video/jpeg frames fail on Qwen3-VL in vLLM:
 *   QwenLM/Qwen3-VL#1643, #1762).
 * - Seed1.5-VL: for each frame a text part f'[{timestamp} second]' then an image_url
 *   {"url": "data:image/jpeg;base64,…", "detail": "high"}, the question last: ByteDance-Seed/Seed1.5-VL@f952f84
 *   GradioDemo/infer.py `construct_messages` (lines 189–216); frames and timestamps round(index / fps, 1) by its
 *   `preprocess_video`.
 *
 * The clip is 2 s at 10 fps (20 frames); at fps 2 qwen-vl-utils samples 4 frames, indices linspace(0, 19, 4) rounded
 * = 0, 6, 13, 19, i.e. 0.0, 0.6, 1.3, 1.9 s, and a sampling rate of 4 / 20 × 10 = 2 fps (derived by hand).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RequestPreparer } from "../src/engine/preparer.js";
import type { ChatRequestMessage } from "../src/engine/request.js";
import { RemoteModel } from "../src/remote/remote-model.js";
import { servedRemote } from "../src/remote/served-remote.js";
import { VideolmServer } from "../src/server/server.js";
import { framesOfVisual, readNormalisation } from "../src/server/thumbnails.js";
import { materializeTinyCheckpoint } from "../src/testing/tiny-checkpoint.js";
import { startScriptedBackend, type ScriptedBackend } from "./remote-helpers.js";
import { FIXTURES, ROOT, makeTestVideo, tempDir } from "./server-helpers.js";

let dir: string;
let video: string;
let qwen2: RequestPreparer;
let qwen3: RequestPreparer;
const backends: ScriptedBackend[] = [];

beforeAll(async () => {
  dir = tempDir("videolm-remote-shapes-");
  video = makeTestVideo(dir);
  qwen2 = await RequestPreparer.load(await materializeTinyCheckpoint(path.join(FIXTURES, "qwen2-vl-tiny")));
  qwen3 = await RequestPreparer.load(await materializeTinyCheckpoint(path.join(ROOT, "test/fixtures/qwen3-vl/qwen3-vl-tiny")));
});
afterAll(async () => {
  await Promise.all(backends.map((b) => b.close()));
  fs.rmSync(dir, { recursive: true, force: true });
});

async function backend(ownedBy: string, modelId: string): Promise<ScriptedBackend> {
  const b = await startScriptedBackend([{ answer: ["The square ", "moves right."] }], { ownedBy, modelId });
  backends.push(b);
  return b;
}

const question = (extra: Record<string, unknown> = {}): ChatRequestMessage[] => [
  { role: "user", content: [{ type: "video", video, fps: 2, ...extra }, { type: "text", text: "What moves?" }] },
];
const chatBody = (b: ScriptedBackend) => b.requests.find((r) => r.method === "POST" && r.path === "/v1/chat/completions")!.body as Record<string, unknown> & { messages: { content: Record<string, unknown>[] }[] };
const streamFields = { stream: true, stream_options: { include_usage: true } };
const TIMES = ["[0.0 second]", "[0.6 second]", "[1.3 second]", "[1.9 second]"];
/**
 * Seed1.5-VL's sampling of the clip (infer.py preprocess_video, by hand): 1 fps → ceil(2 s × 1) = 2 frames, raised to
 * min_n_frames 16; np.linspace(0, 19, 16).round() = 0, 1, 3, 4, 5, 6, 8, 9, 10, 11, 13, 14, 15, 16, 18, 19 (step 19/15,
 * halves to even); round(i / 10, 1) seconds; 16 × 640 tokens is within 81,920, so the 640 level, and 56×56 stays
 * 56×56 (multiples of 28, 3136 pixels = min_pixels).
 */
const SEED_TIMES = [0, 1, 3, 4, 5, 6, 8, 9, 10, 11, 13, 14, 15, 16, 18, 19].map((i) => `[${(i / 10).toFixed(1)} second]`);

/** Mean absolute difference between a JPEG and the RGB frame it should show. */
async function jpegDistance(jpeg: Buffer, frame: { width: number; height: number; data: Uint8Array }): Promise<number> {
  const { data, info } = await sharp(jpeg).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  expect([info.width, info.height]).toEqual([frame.width, frame.height]);
  let sum = 0;
  for (let i = 0; i < data.length; i++) sum += Math.abs(data[i] - frame.data[i]);
  return sum / data.length;
}

describe("vLLM", () => {
  it("Qwen2-VL: the planned frames as a video/jpeg video_url, with mm_processor_kwargs fps (Qwen2.5-VL README)", async () => {
    const b = await backend("vllm", "Qwen/Qwen2-VL-2B-Instruct");
    const remote = await RemoteModel.connect(b.url, { planner: qwen2 });
    expect(remote.kind).toBe("vllm");
    const answer = await remote.generate({ messages: question(), maxNewTokens: 16, temperature: 0 });
    expect(answer.text).toBe("The square moves right.");
    const body = chatBody(b);
    const url = body.messages[0].content[0].video_url as { url: string };
    expect(body).toEqual({
      model: "Qwen/Qwen2-VL-2B-Instruct",
      messages: [{ role: "user", content: [{ type: "video_url", video_url: { url: url.url } }, { type: "text", text: "What moves?" }] }],
      mm_processor_kwargs: { fps: [2] },
      max_tokens: 16,
      temperature: 0,
      ...streamFields,
    });
    expect(url.url.startsWith("data:video/jpeg;base64,")).toBe(true);
    const jpegs = url.url.slice("data:video/jpeg;base64,".length).split(",").map((s) => Buffer.from(s, "base64"));
    expect(jpegs).toHaveLength(4);
    // Each JPEG is the frame the local engine would see (same size and content, up to JPEG loss).
    const prepared = await qwen2.prepare(question());
    const frames = framesOfVisual(prepared.visuals[0], readNormalisation(qwen2.dir))!;
    for (let i = 0; i < 4; i++) {
      expect((await sharp(jpegs[i]).metadata()).format).toBe("jpeg");
      expect(await jpegDistance(jpegs[i], frames[i])).toBeLessThan(3);
    }
    // Frames differ from each other (the test clip moves): frame 0 is not frame 3.
    expect(await jpegDistance(jpegs[0], frames[3])).toBeGreaterThan(3);
    expect(b.requests.some((r) => r.headers.authorization !== undefined)).toBe(false);
  });

  it("Qwen3-VL: the video itself with mm_processor_kwargs {fps, do_sample_frames: true} (Qwen3-VL README)", async () => {
    const b = await backend("vllm", "Qwen/Qwen3-VL-8B-Instruct");
    const remote = await RemoteModel.connect(b.url, { planner: qwen3 });
    await remote.generate({ messages: question(), maxNewTokens: 16 });
    expect(chatBody(b)).toEqual({
      model: "Qwen/Qwen3-VL-8B-Instruct",
      messages: [{ role: "user", content: [{ type: "video_url", video_url: { url: `data:video/mp4;base64,${fs.readFileSync(video).toString("base64")}` } }, { type: "text", text: "What moves?" }] }],
      mm_processor_kwargs: { fps: 2, do_sample_frames: true },
      max_tokens: 16,
      ...streamFields,
    });
    // vLLM cannot cut by time: refused before anything is sent.
    const before = b.requests.length;
    await expect(remote.generate({ messages: question({ start: 0.5 }) })).rejects.toThrow(/cannot cut a video by time/);
    expect(b.requests.length).toBe(before);
  });

  it("vLLM's extra sampling parameters (top_k, repetition_penalty), stop, logprobs and response_format pass through", async () => {
    const b = await backend("vllm", "Qwen/Qwen2-VL-2B-Instruct");
    const remote = await RemoteModel.connect(b.url, { planner: qwen2 });
    const schema = { type: "json_schema" as const, json_schema: { name: "moves", schema: { type: "object", properties: { start: { type: "number" } } } } };
    await remote.generate({ messages: [{ role: "user", content: "Hi" }], maxNewTokens: 5, temperature: 0.7, topK: 20, topP: 0.8, repetitionPenalty: 1.05, seed: 3, stop: ["\n\n"], logprobs: 2, responseFormat: schema });
    expect(chatBody(b)).toEqual({
      model: "Qwen/Qwen2-VL-2B-Instruct",
      messages: [{ role: "user", content: "Hi" }],
      max_tokens: 5,
      temperature: 0.7,
      top_p: 0.8,
      seed: 3,
      stop: ["\n\n"],
      logprobs: true,
      top_logprobs: 2,
      top_k: 20,
      repetition_penalty: 1.05,
      response_format: schema,
      ...streamFields,
    });
    // A regex goes as vLLM's structured_outputs (docs.vllm.ai/en/latest/features/structured_outputs).
    await remote.generate({ messages: [{ role: "user", content: "Hi" }], responseFormat: { type: "regex", pattern: "a+" } });
    expect(b.requests.at(-1)!.body).toMatchObject({ structured_outputs: { regex: "a+" } });
    expect(b.requests.at(-1)!.body).not.toHaveProperty("response_format");
  });
});

describe("Seed1.5-VL and OpenAI-style APIs", () => {
  it("seed: frames by Seed1.5-VL's own sampling, '[t second]' before each, image_url with detail high, the question last (Seed cookbook)", async () => {
    const b = await backend("volcengine", "doubao-1-5-thinking-vision-pro-250428");
    const remote = await RemoteModel.connect(b.url, { kind: "seed" }); // no planning checkpoint: Seed's own rule
    expect(remote.remoteModel).toBe("doubao-1-5-thinking-vision-pro-250428");
    await remote.generate({ messages: [{ role: "user", content: [{ type: "video", video }, { type: "text", text: "What moves?" }] }], maxNewTokens: 64, temperature: 1 });
    const body = chatBody(b);
    const content = body.messages[0].content;
    expect(body).toEqual({
      model: "doubao-1-5-thinking-vision-pro-250428",
      messages: [
        {
          role: "user",
          content: [
            ...SEED_TIMES.flatMap((t, i) => [
              { type: "text", text: t },
              { type: "image_url", image_url: { url: (content[2 * i + 1].image_url as { url: string }).url, detail: "high" } },
            ]),
            { type: "text", text: "What moves?" },
          ],
        },
      ],
      max_tokens: 64,
      temperature: 1,
      ...streamFields,
    });
    for (let i = 0; i < SEED_TIMES.length; i++) {
      const url = (content[2 * i + 1].image_url as { url: string }).url;
      expect(url.startsWith("data:image/jpeg;base64,")).toBe(true);
      const meta = await sharp(Buffer.from(url.slice(23), "base64")).metadata();
      expect([meta.format, meta.width, meta.height]).toEqual(["jpeg", 56, 56]);
    }
    // Options the policy decides (the frame count, the size) are refused rather than silently ignored.
    await expect(remote.generate({ messages: [{ role: "user", content: [{ type: "video", video, maxFrames: 4 }] }] })).rejects.toThrow(/max_?[fF]rames/);
  });

  it("openai: the same frames and times, no detail, and non-OpenAI fields refused", async () => {
    const b = await backend("openai", "gpt-4o");
    const log: string[] = [];
    const remote = await RemoteModel.connect(b.url, { planner: qwen2, log: (l) => log.push(l) });
    expect(remote.kind).toBe("openai");
    await remote.generate({ messages: question(), maxNewTokens: 8 });
    const content = chatBody(b).messages[0].content;
    expect(content.filter((p) => p.type === "text").map((p) => p.text)).toEqual([...TIMES, "What moves?"]);
    expect(content.filter((p) => p.type === "image_url").map((p) => Object.keys(p.image_url as object))).toEqual([["url"], ["url"], ["url"], ["url"]]);
    await expect(remote.generate({ messages: question(), topK: 5 })).rejects.toThrow(/top_k is not part of the OpenAI API/);
    await expect(remote.generate({ messages: question(), thinkingBudget: 5 })).rejects.toThrow(/thinking-budget is a videolm extension/);
    // No regex constraint in the OpenAI API: generated unconstrained, and said.
    await remote.generate({ messages: [{ role: "user", content: "Hi" }], responseFormat: { type: "regex", pattern: "a+" } });
    expect(b.requests.at(-1)!.body).not.toHaveProperty("response_format");
    expect(log.join("\n")).toMatch(/backend 127\.0\.0\.1:\d+: backend kind openai has no regex-constrained output/);
  });

  it("serve --backend on vLLM: the front end's prepared frames are what vLLM gets; the answer comes back in OpenAI's format", async () => {
    const b = await backend("vllm", "Qwen/Qwen2-VL-2B-Instruct");
    const remote = await RemoteModel.connect(b.url, { planner: qwen2 });
    const front = await VideolmServer.start(servedRemote(remote), { port: 0, log: () => {}, modelName: "front", allowedMediaDir: dir });
    try {
      const r = await fetch(`${front.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ model: "front", messages: [{ role: "user", content: [{ type: "video_url", video_url: { url: `file://${video}`, fps: 2 } }, { type: "text", text: "What moves?" }] }], max_tokens: 7 }),
      });
      expect(r.status).toBe(200);
      const json = (await r.json()) as { choices: { message: { content: string } }[] };
      expect(json.choices[0].message.content).toBe("The square moves right.");
      const body = chatBody(b);
      expect(body.mm_processor_kwargs).toEqual({ fps: [2] });
      expect(body.max_tokens).toBe(7);
      const url = (body.messages[0].content[0].video_url as { url: string }).url;
      expect(url.slice("data:video/jpeg;base64,".length).split(",")).toHaveLength(4);
    } finally {
      await front.close();
    }
  }, 300_000); // a front-end server, its preparation worker and the backend on a loaded 2-core machine

  it("a planning checkpoint is required for kinds that send frames", async () => {
    const b = await backend("vllm", "m");
    await expect(RemoteModel.connect(b.url)).rejects.toThrow(/give --model with the checkpoint folder/);
  });
});
