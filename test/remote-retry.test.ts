/**
 * Retries, time limits, failures and the API key against a scripted backend on loopback (test/remote-helpers.ts):
 * 429 then success (Retry-After honoured), connection reset then success, 5xx until the attempts are spent (the error
 * names the backend by host and gives the status and message), no answer within the timeout, a stream that stops
 * mid-answer, abort, and a key that is sent in the Authorization header but never appears in logs or errors.
 */
import { afterEach, describe, expect, it } from "vitest";
import { BackendClient, retryAfterMs } from "../src/remote/backend-client.js";
import { RemoteModel } from "../src/remote/remote-model.js";
import { startScriptedBackend, type ScriptedBackend, type Step } from "./remote-helpers.js";

let b: ScriptedBackend | undefined;
afterEach(async () => {
  await b?.close();
  b = undefined;
});

const ask = { messages: [{ role: "user" as const, content: "Hi" }], maxNewTokens: 4 };
const fast = { backoffMs: 1, maxBackoffMs: 5 };
/** A videolm-kind backend (no planning checkpoint needed) answering with `steps`. */
async function connect(steps: Step[], options: Parameters<typeof RemoteModel.connect>[1] = {}) {
  b = await startScriptedBackend(steps, { ownedBy: "videolm", modelId: "m" });
  return RemoteModel.connect(b.url, { ...fast, ...options });
}
const chats = () => b!.requests.filter((r) => r.path === "/v1/chat/completions");

describe("retries", () => {
  it("429 with Retry-After, then success: waits as told and answers", async () => {
    const log: string[] = [];
    const model = await connect([{ status: 429, message: "slow down", retryAfter: "1" }, { answer: ["ok"] }], { log: (l) => log.push(l) });
    const t0 = Date.now();
    const answer = await model.generate(ask);
    expect(answer.text).toBe("ok");
    expect(chats()).toHaveLength(2);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(950); // Retry-After: 1 s, not the 1 ms backoff
    expect(log).toHaveLength(1);
    expect(log[0]).toMatch(/backend 127\.0\.0\.1:\d+: HTTP 429: slow down; retrying in 1\.0 s \(attempt 2 of 4\)/);
  });

  it("a reset connection is tried again", async () => {
    const model = await connect([{ reset: true }, { reset: true }, { answer: ["fine"] }]);
    expect((await model.generate(ask)).text).toBe("fine");
    expect(chats()).toHaveLength(3);
  });

  it("5xx until the attempts are spent: one error naming the backend, the status and its message", async () => {
    const model = await connect([{ status: 503, message: "model is loading" }], { maxAttempts: 3 });
    const host = new URL(b!.url).host;
    await expect(model.generate(ask)).rejects.toThrow(`backend ${host}: HTTP 503: model is loading (after 3 attempts)`);
    expect(chats()).toHaveLength(3);
  });

  it("a 400 is not retried", async () => {
    const model = await connect([{ status: 400, message: "bad video" }]);
    await expect(model.generate(ask)).rejects.toThrow(/HTTP 400: bad video$/);
    expect(chats()).toHaveLength(1);
  });

  it("backoff doubles with equal jitter (half fixed, half random); Retry-After as seconds or an HTTP date", () => {
    expect(retryAfterMs("2")).toBe(2000);
    expect(retryAfterMs(new Date(Date.now() + 5000).toUTCString())).toBeGreaterThan(3000);
    expect(retryAfterMs("soon")).toBeUndefined();
    const delays = (random: number) => {
      const c = new BackendClient("http://127.0.0.1:1", { backoffMs: 100, maxBackoffMs: 1000, random: () => random }) as unknown as { retryDelay(a: number, r?: number): number };
      return [1, 2, 3, 4, 5, 6].map((a) => c.retryDelay(a));
    };
    expect(delays(0)).toEqual([50, 100, 200, 400, 500, 500]);
    expect(delays(0.5)).toEqual([75, 150, 300, 600, 750, 750]);
  });
});

describe("time limits and abort", () => {
  it("no response within the timeout", async () => {
    const model = await connect([{ hang: true }], { timeoutMs: 300 });
    await expect(model.generate(ask)).rejects.toThrow(/backend 127\.0\.0\.1:\d+: no response within 0\.3 s \(--backend-timeout\)/);
  });

  it("a stream that stops mid-answer is cut after the timeout", async () => {
    const model = await connect([{ hangAfter: ["partial"] }], { timeoutMs: 400 });
    const seen: string[] = [];
    await expect(model.generate({ ...ask, onToken: (e) => seen.push(e.text) })).rejects.toThrow(/no data for 0\.4 s in the middle of the response/);
  });

  it("abort ends the request (finish reason aborted)", async () => {
    const model = await connect([{ hangAfter: ["partial"] }]);
    const controller = new AbortController();
    const answer = await model.generate({ ...ask, signal: controller.signal, onToken: () => setTimeout(() => controller.abort(), 10) });
    expect(answer.finishReason).toBe("aborted");
  });

  it("an unreachable backend names itself", async () => {
    const model = await connect([{ answer: ["x"] }], { maxAttempts: 2 });
    const url = b!.url;
    await b!.close();
    b = undefined;
    await expect(model.generate(ask)).rejects.toThrow(new RegExp(`backend ${new URL(url).host.replace(/\./g, "\\.")}: connection failed .*\\(after 2 attempts\\)`));
  });
});

describe("the API key", () => {
  const KEY = "sk-test-0123456789abcdef";
  it("is sent as a Bearer token, from the variable named, and never appears in logs or errors", async () => {
    process.env.VIDEOLM_TEST_BACKEND_KEY = KEY;
    try {
      const log: string[] = [];
      // The backend echoes the key in its error messages (some do): the client must not pass it on.
      const model = await connect(
        [
          { status: 503, message: `overloaded (key ${KEY})` },
          { status: 401, message: `invalid key ${KEY}` },
        ],
        { apiKeyEnv: "VIDEOLM_TEST_BACKEND_KEY", log: (l) => log.push(l) },
      );
      const error = await model.generate(ask).then(
        () => undefined,
        (e: Error) => e,
      );
      expect(error?.message).toMatch(/HTTP 401: invalid key \*\*\*/);
      expect(error?.message).not.toContain(KEY);
      expect(String(error?.stack)).not.toContain(KEY);
      expect(log.join("\n")).toContain("overloaded (key ***)");
      expect(log.join("\n")).not.toContain(KEY);
      expect(b!.requests.map((r) => r.headers.authorization)).toEqual([`Bearer ${KEY}`, `Bearer ${KEY}`, `Bearer ${KEY}`]); // models, 503, 401
    } finally {
      delete process.env.VIDEOLM_TEST_BACKEND_KEY;
    }
  });

  it("VIDEOLM_BACKEND_API_KEY is the default variable; a key in the URL is refused", async () => {
    process.env.VIDEOLM_BACKEND_API_KEY = KEY;
    try {
      await connect([{ answer: ["ok"] }]);
      expect(b!.requests[0].headers.authorization).toBe(`Bearer ${KEY}`);
    } finally {
      delete process.env.VIDEOLM_BACKEND_API_KEY;
    }
    await expect(RemoteModel.connect(`http://user:${KEY}@127.0.0.1:1`)).rejects.toThrow(/not in the URL/);
    await RemoteModel.connect(`http://user:${KEY}@127.0.0.1:1`).catch((e: Error) => expect(e.message).not.toContain(KEY));
  });
});
