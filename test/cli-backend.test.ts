/**
 * `videolm run --backend URL` as a user runs it (a child process): on a real `videolm serve` backend the answer equals
 * the local engine's; on a vLLM-like recording backend the key goes in the header and nowhere else; a dead backend is
 * one error line naming it.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { VideolmServer } from "../src/server/server.js";
import { materializeTinyCheckpoint } from "../src/testing/tiny-checkpoint.js";
import { startScriptedBackend } from "./remote-helpers.js";
import { FIXTURES, ROOT, makeTestVideo, startServer, tempDir, tinyModel } from "./server-helpers.js";
import { runCliAsync } from "./cli-helpers.js";

let dir: string;
let video: string;
let model: string;
let backend: VideolmServer;

/** The CLI in a child process, without blocking this process (whose servers must keep answering). */
function videolm(args: string[], env: Record<string, string> = {}) {
  return runCliAsync(process.execPath, [path.join(ROOT, "node_modules/tsx/dist/cli.mjs"), path.join(ROOT, "src/cli/main.ts"), ...args], { env: { ...process.env, ...env } });
}

beforeAll(async () => {
  dir = tempDir("videolm-cli-backend-");
  video = makeTestVideo(dir);
  model = await materializeTinyCheckpoint(path.join(FIXTURES, "qwen2-vl-tiny"));
  backend = await startServer({ modelName: "tiny" });
});
afterAll(async () => {
  await backend?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe("videolm run --backend", () => {
  it("on a videolm serve (no local --model): the local engine's answer", async () => {
    const local = await (await tinyModel()).generate({ messages: [{ role: "user", content: [{ type: "video", video, fps: 2 }, { type: "text", text: "What happens?" }] }], maxNewTokens: 8, temperature: 0 });
    const r = await videolm(["run", "--backend", backend.url, "--video", video, "--fps", "2", "--max-new-tokens", "8", "--temperature", "0", "--json", "What happens?"]);
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out).toMatchObject({ text: local.text, promptTokens: local.promptTokens, completionTokens: local.tokens.length, backend: { kind: "videolm", model: "tiny" } });
  }, 300_000); // the tiny model generates several times; slow on a loaded 2-core machine

  it("on a vLLM backend with --model to plan: streams the answer; the API key is sent, never printed", async () => {
    const b = await startScriptedBackend([{ answer: ["A square ", "moves."] }], { ownedBy: "vllm", modelId: "Qwen/Qwen2-VL-2B-Instruct" });
    try {
      const key = "sk-cli-secret-42";
      const r = await videolm(["run", "--backend", b.url, "--model", model, "--backend-api-key-env", "MY_KEY", "--video", video, "--fps", "2", "--max-new-tokens", "9", "What moves?"], { MY_KEY: key });
      expect(r.code).toBe(0);
      expect(r.stdout).toBe("A square moves.\n");
      expect(r.stderr).toContain(`generating on backend ${new URL(b.url).host} (vllm, model Qwen/Qwen2-VL-2B-Instruct)`);
      expect(r.stdout + r.stderr).not.toContain(key);
      const chat = b.requests.find((q) => q.path === "/v1/chat/completions")!;
      expect(chat.headers.authorization).toBe(`Bearer ${key}`);
      expect((chat.body as { max_tokens: number; mm_processor_kwargs: unknown }).max_tokens).toBe(9);
      expect((chat.body as { mm_processor_kwargs: unknown }).mm_processor_kwargs).toEqual({ fps: [2] });
    } finally {
      await b.close();
    }
  }, 300_000); // the tiny model generates several times; slow on a loaded 2-core machine

  it("errors: a dead backend is one line naming it; backend flags need --backend", async () => {
    const b = await startScriptedBackend([{ answer: ["x"] }]);
    const url = b.url;
    await b.close();
    const r = await videolm(["run", "--backend", url, "--backend-retries", "0", "--max-new-tokens", "2", "hello"]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(new RegExp(`videolm: backend ${new URL(url).host.replace(/\./g, "\\.")}: connection failed`));
    const stray = await videolm(["run", "--backend-kind", "vllm", "--model", model, "hello"]);
    expect(stray.code).toBe(1);
    expect(stray.stderr).toContain("--backend-kind applies to a remote backend: give --backend URL too");
  }, 300_000); // the tiny model generates several times; slow on a loaded 2-core machine
});
