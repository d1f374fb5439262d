/**
 * The official OpenAI client library, pointed at `videolm serve`, streams an answer about a video and gets the
 * same text as a non-streamed request; its typed errors surface the server's OpenAI-format errors.
 */
import * as fs from "node:fs";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { VideolmServer } from "../src/server/server.js";
import { makeTestVideo, startServer, tempDir } from "./server-helpers.js";

let server: VideolmServer;
let client: OpenAI;
let dir: string;
let videoDataUrl: string;

beforeAll(async () => {
  server = await startServer();
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 });
  dir = tempDir("videolm-openai-");
  videoDataUrl = `data:video/mp4;base64,${fs.readFileSync(makeTestVideo(dir)).toString("base64")}`;
});
afterAll(async () => {
  await server?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe("OpenAI client library against videolm serve", () => {
  const messages = () =>
    [
      {
        role: "user",
        content: [
          { type: "video_url", video_url: { url: videoDataUrl } },
          { type: "text", text: "What happens in this video?" },
        ],
      },
    ] as unknown as OpenAI.Chat.ChatCompletionMessageParam[];

  it("lists the model", async () => {
    const models = await client.models.list();
    expect(models.data.length).toBe(1);
  });

  it("streams an answer about a video equal to the non-streamed one", async () => {
    const model = (await client.models.list()).data[0].id;
    const whole = await client.chat.completions.create({ model, messages: messages(), max_tokens: 8, temperature: 0 });
    expect(whole.choices[0].message.content?.length).toBeGreaterThan(0);
    expect(whole.usage?.completion_tokens).toBe(8);

    const stream = await client.chat.completions.create({ model, messages: messages(), max_tokens: 8, temperature: 0, stream: true, stream_options: { include_usage: true } });
    let text = "";
    let chunks = 0;
    let usage: OpenAI.CompletionUsage | undefined | null;
    for await (const chunk of stream) {
      chunks++;
      text += chunk.choices[0]?.delta?.content ?? "";
      if (chunk.usage) usage = chunk.usage;
    }
    expect(chunks).toBeGreaterThan(2);
    expect(text).toBe(whole.choices[0].message.content);
    expect(usage?.prompt_tokens).toBe(whole.usage?.prompt_tokens);
  });

  it("raises the client's typed errors for bad requests", async () => {
    const model = (await client.models.list()).data[0].id;
    await expect(client.chat.completions.create({ model: "no-such-model", messages: messages() })).rejects.toMatchObject({ status: 404 });
    const bad = [{ role: "user", content: [{ type: "video_url", video_url: { url: "http://127.0.0.1:1/x.mp4" } }] }] as unknown as OpenAI.Chat.ChatCompletionMessageParam[];
    await expect(client.chat.completions.create({ model, messages: bad })).rejects.toBeInstanceOf(OpenAI.BadRequestError);
  });
});
