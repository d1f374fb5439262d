/**
 * videolm's fuzz harness (docs/security.md): a real `videolm serve` child process on 127.0.0.1 with the tiny
 * Qwen2-VL checkpoint, then three campaigns — mutated API requests, mutated media files, mutated checkpoints (each
 * through the real CLI) — and the invariants the server must keep throughout:
 *   0 crashes, 0 hangs, 0 5xx, 0 errors outside OpenAI's format; /health answers while the campaigns run;
 *   no ffmpeg child, descriptor or temporary file left behind; not one byte read of a file outside the allowed
 *   folders; and the same greedy answer to a fixed request before and after.
 * Every case is a pure function of (seed, case index), so a finding is reproduced with `--seed S --only I`.
 * Nothing leaves the loopback interface.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Worker } from "node:worker_threads";
import { SeededRng } from "../../synth/rng.js";
import { materializeTinyCheckpoint, repoRoot } from "../tiny-checkpoint.js";
import { apiCampaign, type ApiSeeds, type CampaignResult, type CaseTrace, type Finding } from "./api.js";
import { checkpointCampaign } from "./checkpoints.js";
import { request } from "./http-check.js";
import { makeMediaSeeds, makeSecret, mediaCampaign } from "./media.js";
import { startServerProcess, type CliEntry } from "./server-process.js";

export interface FuzzOptions {
  seed: number;
  requests: number;
  media: number;
  checkpoints: number;
  entry: CliEntry;
  /** Requests in flight at once during the API campaign. */
  concurrency: number;
  /** A request (or a checkpoint's CLI run) taking longer than this is a hang. */
  requestTimeoutMs: number;
  checkpointTimeoutMs: number;
  /** /health slower than this while the campaigns run is a finding. */
  healthLimitMs: number;
  log?: (line: string) => void;
}

export const DEFAULT_FUZZ_OPTIONS: FuzzOptions = {
  seed: 1,
  requests: 3000,
  media: 300,
  checkpoints: 100,
  entry: "dist",
  concurrency: 4,
  requestTimeoutMs: 60_000,
  checkpointTimeoutMs: 10_000,
  healthLimitMs: 1000,
};

export interface FuzzReport {
  options: Omit<FuzzOptions, "log">;
  api?: CampaignResult;
  media?: CampaignResult & { secretRead: boolean };
  checkpoints?: CampaignResult & { maxCaseMs: number; maxRssBytes: number };
  health: { polls: number; maxMs: number; failures: number; stalls: { ms: number; during: string[] }[] };
  leaks: { children: number[]; descriptorsBefore: number; descriptorsAfter: number; tmpWhileRunning: string[]; tmpAfterStop: string[] };
  greedy: { before: string; after: string; same: boolean };
  serverAlive: boolean;
  serverExit?: string;
  findings: Finding[];
  seconds: number;
}

/** A per-case RNG: the harness seed and the case's campaign and index, mixed. */
function rngFor(seed: number, campaign: number) {
  return (i: number) => new SeededRng((seed * 1_000_003 + campaign * 7_919_993 + i * 2_654_435_761) >>> 0);
}

async function greedyAnswer(base: string, imageDataUrl: string): Promise<string> {
  const body = { messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: imageDataUrl } }, { type: "text", text: "What is in this picture?" }] }], max_tokens: 8, temperature: 0 };
  const e = await request(base, { method: "POST", path: "/v1/chat/completions", headers: { "Content-Type": "application/json" }, body: Buffer.from(JSON.stringify(body)), timeoutMs: 60_000 });
  if (e.status !== 200) return `status ${e.status}: ${e.body.toString("utf8").slice(0, 200)}`;
  return String((JSON.parse(e.body.toString("utf8")) as { choices: { message: { content: string } }[] }).choices[0].message.content);
}

async function waitIdle(base: string, timeoutMs = 60_000): Promise<void> {
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    const e = await request(base, { method: "GET", path: "/health", timeoutMs: 5000 });
    try {
      if ((JSON.parse(e.body.toString("utf8")) as { queue: { in_flight: number } }).queue.in_flight === 0) return;
    } catch {
      // retry
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Code of the /health poller thread (plain JavaScript: it runs the same under tsx and from dist). */
const HEALTH_POLLER = `
const { parentPort, workerData } = require("node:worker_threads");
const http = require("node:http");
const { url, limitMs } = workerData;
const stats = { polls: 0, maxMs: 0, failures: 0, slow: [] };
let stopping = false;
parentPort.on("message", () => { stopping = true; });
function poll() {
  if (stopping) return parentPort.postMessage(stats);
  const t0 = performance.timeOrigin + performance.now();
  const done = (ok) => {
    const t1 = performance.timeOrigin + performance.now();
    stats.polls++;
    stats.maxMs = Math.max(stats.maxMs, t1 - t0);
    if (!ok) stats.failures++;
    if (t1 - t0 > limitMs) stats.slow.push([t0, t1]);
    setTimeout(poll, 250);
  };
  const req = http.get(url + "/health", { agent: false, timeout: 10000 }, (res) => { res.resume(); res.on("end", () => done(res.statusCode === 200)); });
  req.on("timeout", () => req.destroy(new Error("timeout")));
  req.on("error", () => done(false));
}
poll();
`;

function startHealthPoller(base: string, limitMs: number): { stop(): Promise<{ polls: number; maxMs: number; failures: number; slow: [number, number][] }> } {
  const worker = new Worker(HEALTH_POLLER, { eval: true, workerData: { url: base, limitMs } });
  const result = new Promise<{ polls: number; maxMs: number; failures: number; slow: [number, number][] }>((resolve, reject) => {
    worker.once("message", resolve);
    worker.once("error", reject);
  });
  return {
    stop: async () => {
      worker.postMessage("stop");
      const r = await result;
      await worker.terminate();
      return r;
    },
  };
}

export async function runFuzz(partial: Partial<FuzzOptions> = {}): Promise<FuzzReport> {
  const o: FuzzOptions = { ...DEFAULT_FUZZ_OPTIONS, ...partial };
  const log = o.log ?? (() => {});
  const t0 = performance.now();
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "videolm-fuzz-"));
  const allowed = path.join(work, "allowed");
  const outside = path.join(work, "outside");
  const serverTmp = path.join(work, "server-tmp");
  for (const d of [allowed, outside, serverTmp]) fs.mkdirSync(d);
  const findings: Finding[] = [];
  const health = { polls: 0, maxMs: 0, failures: 0, stalls: [] as { ms: number; during: string[] }[] };
  const trace: CaseTrace[] = [];
  const stallWindows: [number, number][] = [];
  let server: Awaited<ReturnType<typeof startServerProcess>> | undefined;
  try {
    const model = await materializeTinyCheckpoint(path.join(repoRoot(), "test/fixtures/qwen2-vl/qwen2-vl-tiny"));
    const seeds = await makeMediaSeeds(work);
    const secret = makeSecret(outside);
    const clip = seeds.find((s) => s.name === "clip.mp4")!;
    const png = seeds.find((s) => s.name === "image.png")!;
    fs.writeFileSync(path.join(allowed, "clip.mp4"), clip.data);
    fs.writeFileSync(path.join(work, "image.png"), png.data);
    fs.writeFileSync(path.join(outside, "outside.mp4"), clip.data);
    log(`starting videolm serve (${o.entry}) …`);
    server = await startServerProcess({ model, entry: o.entry, tmpDir: serverTmp, cacheDir: path.join(work, "cache"), args: ["--allowed-media-dir", allowed, "--max-tokens", "64", "--max-queue", "4"] });
    const base = server.url;
    const imageDataUrl = `data:image/png;base64,${png.data.toString("base64")}`;
    const up = await request(base, { method: "POST", path: "/v1/uploads?filename=clip.mp4", headers: { "Content-Type": "video/mp4" }, body: clip.data, timeoutMs: 60_000 });
    const uploadId = (JSON.parse(up.body.toString("utf8")) as { id: string }).id;
    const apiSeeds: ApiSeeds = {
      imageDataUrl,
      videoDataUrl: `data:video/mp4;base64,${clip.data.toString("base64")}`,
      uploadUrl: `upload://${uploadId}`,
      allowedFileUrl: `file://${path.join(allowed, "clip.mp4")}`,
      outsideFileUrl: `file://${path.join(outside, "outside.mp4")}`,
      privateUrl: `${base}/app.js`,
    };
    const before = await greedyAnswer(base, imageDataUrl);
    await waitIdle(base);
    const descriptorsBefore = server.openDescriptors();

    // /health, polled throughout: the event loop must stay free whatever the campaigns send. The poller runs on its
    // own thread: building a hostile body here (deep values) blocks this thread and would show up as a slow /health.
    const poller = startHealthPoller(base, o.healthLimitMs);

    const progress = (name: string, total: number) => (i: number) => {
      if ((i + 1) % Math.max(1, Math.floor(total / 10)) === 0) log(`${name}: ${i + 1}/${total}`);
    };
    const report: Partial<FuzzReport> = {};
    if (o.requests > 0) {
      report.api = await apiCampaign(base, apiSeeds, rngFor(o.seed, 1), { count: o.requests, concurrency: o.concurrency, timeoutMs: o.requestTimeoutMs, firstSeed: 0, onCase: progress("api", o.requests), trace });
      findings.push(...report.api.findings);
    }
    if (o.media > 0) {
      const media = await mediaCampaign(base, seeds, secret.file, allowed, rngFor(o.seed, 2), { count: o.media, timeoutMs: o.requestTimeoutMs, firstSeed: 0, onCase: progress("media", o.media) });
      report.media = { ...media, secretRead: secret.wasRead() };
      findings.push(...media.findings);
      if (report.media.secretRead) findings.push({ campaign: "media", seed: -1, problem: "file-read", what: `${secret.file} (outside every allowed folder) was read` });
    }
    const polled = await poller.stop();
    Object.assign(health, { polls: polled.polls, maxMs: polled.maxMs, failures: polled.failures });
    stallWindows.push(...polled.slow);
    // Name the cases that were in flight during each slow /health (the API campaign's trace), to find the culprit.
    for (const [t0, t1] of stallWindows) {
      const during = trace.filter((c) => c.t0 < t1 && c.t1 > t0).map((c) => `#${c.seed} ${c.what.slice(0, 160)} (${Math.round(c.t1 - c.t0)} ms)`);
      health.stalls.push({ ms: Math.round(t1 - t0), during: during.slice(0, 6) });
    }
    if (health.maxMs > o.healthLimitMs || health.failures > 0) findings.push({ campaign: "server", seed: -1, problem: "health", what: `/health max ${Math.round(health.maxMs)} ms, ${health.failures} failures`, detail: JSON.stringify(health.stalls.slice(0, 3)) });

    await waitIdle(base);
    const after = await greedyAnswer(base, imageDataUrl);
    await waitIdle(base);
    await new Promise((r) => setTimeout(r, 500));
    const children = server.children();
    const descriptorsAfter = server.openDescriptors();
    const tmpWhileRunning = server.tmpEntries();
    const serverAlive = server.alive();
    const serverExit = server.exitInfo();
    if (!serverAlive) findings.push({ campaign: "server", seed: -1, problem: "crash", what: `the server exited (${serverExit}): ${server.stderrTail().slice(-500)}` });
    if (children.length) findings.push({ campaign: "server", seed: -1, problem: "leak", what: `child processes left: ${children.join(", ")}` });
    if (descriptorsAfter > descriptorsBefore + 4) findings.push({ campaign: "server", seed: -1, problem: "leak", what: `open descriptors ${descriptorsBefore} → ${descriptorsAfter}` });
    // While running, the server's TMPDIR holds only its uploads folder with the one upload made above.
    const unexpected = tmpWhileRunning.filter((p) => !/^videolm-uploads-[^/]+(\/upl_[0-9a-f]+)?$/.test(p));
    const uploadsLeft = tmpWhileRunning.filter((p) => /\/upl_/.test(p));
    if (unexpected.length || uploadsLeft.length > 1) findings.push({ campaign: "server", seed: -1, problem: "leak", what: `files left in the server's TMPDIR: ${tmpWhileRunning.slice(0, 10).join(", ")}` });
    if (before !== after) findings.push({ campaign: "server", seed: -1, problem: "state", what: `greedy answer changed: ${JSON.stringify(before)} → ${JSON.stringify(after)}` });
    await server.stop();
    const tmpAfterStop = server.tmpEntries();
    if (tmpAfterStop.length) findings.push({ campaign: "server", seed: -1, problem: "leak", what: `files left after the server stopped: ${tmpAfterStop.slice(0, 10).join(", ")}` });

    if (o.checkpoints > 0) {
      report.checkpoints = await checkpointCampaign(model, path.join(work, "image.png"), work, o.entry, rngFor(o.seed, 3), { count: o.checkpoints, timeoutMs: o.checkpointTimeoutMs, maxRssBytes: 2 * 1024 ** 3, firstSeed: 0, onCase: progress("checkpoints", o.checkpoints) });
      findings.push(...report.checkpoints.findings);
    }
    const { log: _log, ...options } = o;
    return {
      options,
      ...report,
      health,
      leaks: { children, descriptorsBefore, descriptorsAfter, tmpWhileRunning, tmpAfterStop },
      greedy: { before, after, same: before === after },
      serverAlive,
      serverExit,
      findings,
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    await server?.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
}
