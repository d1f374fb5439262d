/**
 * EVS token pruning (src/engine/evs.ts, `--prune RATE`) on a 2B-shaped random checkpoint (src/bench/presets.ts):
 * prefill tokens, visual tokens kept, vision, prefill and time to the first token at several pruning rates, on a
 * video with a static background and one moving object (generated once with FFmpeg into .cache/bench: SMPTE bars
 * with a white box crossing them). Each run is a process of its own with the vision cache off, so every run encodes
 * the video; the rates are interleaved round by round (0, 0.5, 0.75, 0, 0.5, 0.75, …) so a shared machine's load
 * falls on all alike. Prints a JSON line per run, then a table of medians, their ratio to the first rate, and each
 * figure's best run (on a shared machine noise only slows a run down).
 *
 *   npx tsx bench/prune.ts [--shape qwen3-vl-2b] [--dtype int4] [--frames 16] [--size 448] [--rates 0,0.5,0.75]
 *                          [--rounds 2] [--threads 2] [--tokens 2]
 *
 * The frames are sampled with `nframes` (exactly --frames, spread over the 8 s clip) at size × size pixels.
 */
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { BENCH_SHAPE_NAMES, ensureBenchCheckpoint, type BenchShape } from "../src/bench/presets.js";
import { defaultCacheRoot, ensureConverted } from "../src/engine/convert.js";
import { VideoModel } from "../src/engine/model.js";
import { RequestPreparer } from "../src/engine/preparer.js";
import { locateFfmpeg } from "../src/media/ffmpeg.js";
import type { WeightPrecision } from "../src/onnx/layers.js";
import { repoRoot } from "../src/testing/tiny-checkpoint.js";

const { values } = parseArgs({
  options: {
    shape: { type: "string", default: "qwen3-vl-2b" },
    dtype: { type: "string", default: "int4" },
    frames: { type: "string", default: "16" },
    size: { type: "string", default: "448" },
    rates: { type: "string", default: "0,0.5,0.75" },
    rounds: { type: "string", default: "2" },
    threads: { type: "string", default: "2" },
    tokens: { type: "string", default: "2" },
    question: { type: "string", default: "Where does the white box move?" },
    child: { type: "string" },
    dir: { type: "string" },
    video: { type: "string" },
  },
});

interface RunResult {
  rate: number;
  promptTokens: number;
  visualPlanned: number;
  visualKept: number;
  grid: number[];
  loadMs: number;
  visionMs: number;
  prefillMs: number;
  ttftMs: number;
  load1: number;
  tokens: number[];
}

const dtype = values.dtype as WeightPrecision;
const size = Number(values.size);

if (values.child) {
  const rate = Number(values.child);
  const t0 = performance.now();
  const model = await VideoModel.load(values.dir!, { dtype, threads: Number(values.threads), visionCacheBytes: 0 });
  const loadMs = performance.now() - t0;
  const messages = [{ role: "user" as const, content: [{ type: "video" as const, video: values.video! }, { type: "text" as const, text: values.question! }] }];
  const prepared = await model.prepare(messages, { nframes: Number(values.frames), minPixels: size * size, maxPixels: size * size, ...(rate > 0 ? { prune: rate } : {}) });
  const load1 = os.loadavg()[0];
  const r = await model.generate({ messages: [], prepared, temperature: 0, maxNewTokens: Number(values.tokens), stop: [] });
  const planned = prepared.visuals.reduce((s, v) => s + v.tokens, 0);
  const out: RunResult = {
    rate,
    promptTokens: r.promptTokens,
    visualPlanned: r.visualTokens?.plannedTokens ?? planned,
    visualKept: r.visualTokens?.keptTokens ?? planned,
    grid: prepared.visuals[0].batch.grid,
    loadMs,
    visionMs: r.timings.visionMs,
    prefillMs: r.timings.prefillMs,
    ttftMs: r.timings.ttftMs,
    load1,
    tokens: r.tokens,
  };
  await model.dispose();
  process.stdout.write(JSON.stringify(out) + "\n");
  process.exit(0);
}

/** 8 s, 16 fps, size × size: static SMPTE bars, a 64-px white box crossing left to right (and a little down). */
function makeVideo(): string {
  const dir = path.join(repoRoot(), ".cache", "bench");
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `static-moving-box-${size}.mp4`);
  if (fs.existsSync(file)) return file;
  const { ffmpeg } = locateFfmpeg();
  const box = Math.round(size / 7);
  const filter = `[0:v][1:v]overlay=x='(W-w)*t/8':y='(H-h)*(0.3+0.4*t/8)':shortest=1,format=yuv420p`;
  const args = ["-v", "error", "-y", "-f", "lavfi", "-i", `smptebars=size=${size}x${size}:rate=16:duration=8`, "-f", "lavfi", "-i", `color=c=white:size=${box}x${box}:rate=16:duration=8`,
    "-filter_complex", filter, "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", `${file}.tmp.mp4`];
  const r = spawnSync(ffmpeg, args, { stdio: "inherit" });
  if (r.status !== 0) throw new Error("ffmpeg failed");
  fs.renameSync(`${file}.tmp.mp4`, file);
  return file;
}

const shape = values.shape as BenchShape;
if (!BENCH_SHAPE_NAMES.includes(shape)) throw new Error(`--shape: one of ${BENCH_SHAPE_NAMES.join(", ")}`);
const progress = (e: { task: string; done: number; total: number }) => process.stderr.write(`\r${e.task}: ${e.done}/${e.total}   `);
const dir = await ensureBenchCheckpoint(shape, path.join(defaultCacheRoot(), "bench"), progress);
const prep = await RequestPreparer.load(dir);
ensureConverted(prep.checkpoint, prep.family, prep.config, dtype, { onProgress: progress });
const video = makeVideo();
const rates = values.rates.split(",").map(Number);
const self = fileURLToPath(import.meta.url);

function runChild(rate: number): Promise<RunResult> {
  const args = [...process.execArgv, self, "--child", String(rate), "--dir", dir, "--video", video, "--dtype", dtype, "--frames", values.frames, "--size", values.size,
    "--threads", values.threads, "--tokens", values.tokens, "--question", values.question];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve(JSON.parse(out.trim().split("\n").at(-1)!) as RunResult) : reject(new Error(`rate ${rate}: exit ${code}`))));
  });
}

const uptime = () => spawnSync("uptime", { encoding: "utf8" }).stdout.trim();
process.stdout.write(`${new Date().toISOString()} ${uptime()}\n`);
const results: RunResult[] = [];
for (let round = 0; round < Number(values.rounds); round++) {
  for (const rate of rates) {
    const r = await runChild(rate);
    results.push(r);
    process.stdout.write(JSON.stringify(r) + "\n");
  }
}
process.stdout.write(`${new Date().toISOString()} ${uptime()}\n`);

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const s = (ms: number) => (ms / 1000).toFixed(2);
const first = results.filter((r) => r.rate === rates[0]);
const base = { ttft: median(first.map((r) => r.ttftMs)), vision: median(first.map((r) => r.visionMs)), prefill: median(first.map((r) => r.prefillMs)), tokens: first[0].promptTokens };
process.stdout.write(`\n${shape} ${dtype}, ${values.threads} threads, ${values.frames} frames of ${size}×${size} (grid ${first[0].grid.join("×")}); medians of ${values.rounds} runs (s), ratio to rate ${rates[0]}\n`);
process.stdout.write(`| rate | prefill tokens | visual tokens kept | vision | prefill | TTFT | TTFT ratio | prefill ratio | best vision / prefill / TTFT | TTFT runs |\n|---|---|---|---|---|---|---|---|---|---|\n`);
for (const rate of rates) {
  const rs = results.filter((r) => r.rate === rate);
  const m = (k: "ttftMs" | "visionMs" | "prefillMs") => median(rs.map((r) => r[k]));
  const best = (k: "ttftMs" | "visionMs" | "prefillMs") => s(Math.min(...rs.map((r) => r[k])));
  process.stdout.write(
    `| ${rate} | ${rs[0].promptTokens} (${(rs[0].promptTokens / base.tokens).toFixed(2)}×) | ${rs[0].visualKept} / ${rs[0].visualPlanned} | ${s(m("visionMs"))} | ${s(m("prefillMs"))} | ${s(m("ttftMs"))} | ${(m("ttftMs") / base.ttft).toFixed(2)}× | ${(m("prefillMs") / base.prefill).toFixed(2)}× | ${best("visionMs")} / ${best("prefillMs")} / ${best("ttftMs")} | ${rs.map((r) => s(r.ttftMs)).join(" / ")} |\n`,
  );
}
