/**
 * `videolm batch --backend` against a real `videolm serve` (tiny Qwen2-VL) on loopback beside a backend that is down:
 * every good item is answered as the local engine answers it (the dead backend's items are retried on the live one,
 * which the dead one never stops), a corrupt video is one recorded error (the item's fault: not retried, and it does
 * not take the live backend out), and with every backend down the job stops and leaves the items for a resume.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { VideolmServer } from "../src/server/server.js";
import { ROOT, makeTestVideo, startServer, tempDir, tinyModel } from "./server-helpers.js";

const CLI = ["--import", pathToFileURL(path.join(ROOT, "node_modules/tsx/dist/loader.mjs")).href, path.join(ROOT, "src/cli/main.ts")];
const QUESTION = "What happens in this video?";
let backend: VideolmServer;
let dir: string;
let deadUrl: string;

/** The CLI as a child process, without blocking this process (it serves the backend). */
function videolm(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [...CLI, ...args], { cwd: dir });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on("close", (code) => resolve({ code, stdout, stderr })));
}

beforeAll(async () => {
  dir = tempDir("videolm-batch-remote-");
  backend = await startServer({ modelName: "tiny-remote" });
  // Four clips and one cut short (a poisoned item).
  const lib = path.join(dir, "lib");
  fs.mkdirSync(lib);
  const clips = [makeTestVideo(lib, "a.mp4", 2), makeTestVideo(lib, "b.mp4", 1), makeTestVideo(lib, "c.mp4", 2), makeTestVideo(lib, "d.mp4", 1)];
  fs.writeFileSync(path.join(lib, "broken.mp4"), fs.readFileSync(clips[0]).subarray(0, 1500));
  // A port nobody listens on any more: connections are refused.
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  deadUrl = `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
  await new Promise<void>((r) => s.close(() => r()));
});
afterAll(async () => {
  await backend?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe("videolm batch --backend", () => {
  it("a dead backend beside a live one: every good item answered as locally, a corrupt one recorded once", async () => {
    const lib = path.join(dir, "lib");
    const out = path.join(dir, "out.jsonl");
    const r = await videolm(["batch", lib, "--question", QUESTION, "--fps", "2", "--max-new-tokens", "6", "--temperature", "0", "-o", out, "--json", "--backend", `${deadUrl}#1`, "--backend", `${backend.url}#2`]);
    expect(r.code).toBe(0);
    const results = fs
      .readFileSync(out, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(results.map((x) => path.basename(x.video)).sort()).toEqual(["a.mp4", "b.mp4", "broken.mp4", "c.mp4", "d.mp4"]);
    const model = await tinyModel();
    for (const x of results) {
      if (x.video.endsWith("broken.mp4")) {
        expect(x).toMatchObject({ backend: backend.url, attempts: 1 }); // the item's fault: not retried
        expect(x.error).toMatch(/backend 127\.0\.0\.1:\d+: HTTP 400/);
        continue;
      }
      const local = await model.generate({ messages: [{ role: "user", content: [{ type: "video", video: x.video }, { type: "text", text: QUESTION }] }], media: { fps: 2 }, maxNewTokens: 6, temperature: 0 });
      expect(x.error).toBeUndefined();
      expect(x.answer).toBe(local.text);
      expect(x.usage.promptTokens).toBe(local.promptTokens);
      expect(x.backend).toBe(backend.url);
      expect(x.attempts).toBeLessThanOrEqual(2);
    }
    const summary = JSON.parse(r.stdout);
    expect(summary).toMatchObject({ total: 5, ok: 4, failed: 1, notRun: 0 });
    expect(summary.started[deadUrl]).toBeGreaterThanOrEqual(1); // it was tried …
    expect(results.some((x) => x.attempts === 2)).toBe(true); // … and its items went to the live backend
  }, 300_000);

  it("every backend down: the job stops (exit 1); a resume on a live backend runs every item", async () => {
    const out = path.join(dir, "none.jsonl");
    const lib = path.join(dir, "lib");
    const r = await videolm(["batch", lib, "--question", QUESTION, "-o", out, "--backend", deadUrl]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/backend http:\/\/127\.0\.0\.1:\d+ taken out of the job after repeated failures: backend 127\.0\.0\.1:\d+/);
    expect(r.stderr).toMatch(/every backend failed; \d+ item\(s\) not run: run the same command again to resume/);
    // An item that failed on every attempt by the backend's fault is recorded as such; the rest are not recorded.
    const lines = fs.readFileSync(out, "utf8").trim();
    const recorded = lines ? lines.split("\n").map((l) => JSON.parse(l)) : [];
    expect(recorded.length).toBeLessThan(5);
    for (const x of recorded) expect(x).toMatchObject({ errorKind: "backend", error: expect.stringMatching(/127\.0\.0\.1/) });

    const resumed = await videolm(["batch", lib, "--question", QUESTION, "--max-new-tokens", "2", "-o", out, "--json", "--backend", backend.url]);
    expect(resumed.code).toBe(0);
    expect(JSON.parse(resumed.stdout)).toMatchObject({ total: 5, skipped: 0, ok: 4, failed: 1 });
  }, 300_000);
});
