/**
 * Events and grounding over a remote backend: a real `videolm serve` on loopback (the tiny Qwen2-VL weights with a
 * span pattern of their own, so constrained answers always parse) answers `RemoteModel.ground` / `events` exactly
 * as the local model answers `VideoModel.ground` / `events` — with a local planner (runEvents here, generation
 * there) and without one (the backend's POST /v1/events) — and `videolm ground --backend` / `videolm batch --task ground --backend` give the same.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VideoModel } from "../src/engine/model.js";
import { RemoteModel } from "../src/remote/remote-model.js";
import { VideolmServer } from "../src/server/server.js";
import { materializeTinyCheckpoint } from "../src/testing/tiny-checkpoint.js";
import { FIXTURES, makeTestVideo, ROOT, tempDir } from "./server-helpers.js";

let dir: string;
let video: string;
let ckpt: string;
let model: VideoModel;
let backend: VideolmServer;

beforeAll(async () => {
  dir = tempDir("videolm-remote-events-");
  video = makeTestVideo(dir); // 2 s, 10 fps
  ckpt = await materializeTinyCheckpoint(path.join(FIXTURES, "qwen2-vl-tiny"), path.join(dir, "spans"));
  const vpc = path.join(ckpt, "video_preprocessor_config.json");
  const base = fs.existsSync(vpc) ? JSON.parse(fs.readFileSync(vpc, "utf8")) : {};
  const span = "from 0\\.[05] to 1\\.[05] seconds"; // always a span inside the 2 s clip
  fs.writeFileSync(vpc, JSON.stringify({ ...base, videolm_events: { grounding: "when is the {query} visible?", groundingFormat: { type: "regex", pattern: span }, dense: "list the events.", denseFormat: { type: "regex", pattern: `${span}: the [a-z]{1,8}` } } }));
  model = await VideoModel.load(ckpt);
  backend = await VideolmServer.start(model, { port: 0, log: () => {}, modelName: "tiny-spans" });
}, 180_000);
afterAll(async () => {
  await backend?.close();
  await model?.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
});

const options = { media: { fps: 4 }, maxNewTokens: 24, temperature: 0 };

describe("events on a videolm backend", () => {
  it("with and without a local planner: the same events and raw text as the local model", async () => {
    const localGround = await model.ground(video, "pattern", options);
    const localDense = await model.events(video, options);
    expect(localGround.parsed).toBe(true); // held to the span pattern: there is something to compare
    expect(localDense.parsed).toBe(true);
    for (const planner of [undefined, ckpt]) {
      const remote = await RemoteModel.connect(backend.url, planner ? { planner } : {});
      try {
        const ground = await remote.ground(video, "pattern", options);
        expect({ planner, raw: ground.raw, events: ground.events, duration: ground.duration }).toEqual({ planner, raw: localGround.raw, events: localGround.events, duration: localGround.duration });
        expect(ground.response.remote.completionTokens).toBe(localGround.response.tokens.length);
        expect(ground.response.promptTokens).toBe(localGround.response.promptTokens);
        const dense = await remote.events(video, options);
        expect({ planner, raw: dense.raw, events: dense.events }).toEqual({ planner, raw: localDense.raw, events: localDense.events });
        if (planner) expect(dense.prompt).toBe(localDense.prompt); // planned and prompted here
      } finally {
        await remote.dispose();
      }
    }
  }, 300_000);

  it("videolm ground --backend and batch --task ground --backend (no --model) give the local model's events", async () => {
    const local = await model.ground(video, "pattern", options);
    const flags = ["--backend", backend.url, "--fps", "4", "--max-new-tokens", "24", "-q"];
    const r = await videolm(["ground", video, "pattern", ...flags, "--json"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect({ raw: out.raw, events: out.events, promptTokens: out.promptTokens }).toEqual({ raw: local.raw, events: local.events, promptTokens: local.response.promptTokens });
    expect(out.backend).toMatchObject({ kind: "videolm", model: "tiny-spans" });
    const results = path.join(dir, "results.jsonl");
    const batch = await videolm(["batch", video, "--task", "ground", "--query", "pattern", "-o", results, ...flags]);
    expect(batch.code).toBe(0);
    const [line] = fs.readFileSync(results, "utf8").trim().split("\n").map((l) => JSON.parse(l));
    expect(line).toMatchObject({ task: "ground", answer: local.raw, events: { events: local.events, parsed: true } });
  }, 300_000);
});

/** Runs the CLI as a child process (asynchronously: the backend answers from this process). */
function videolm(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(ROOT, "node_modules/tsx/dist/cli.mjs"), path.join(ROOT, "src/cli/main.ts"), ...args], { stdio: ["ignore", "pipe", "pipe"], timeout: 180_000 });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}
