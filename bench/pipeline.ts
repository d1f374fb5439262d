/**
 * Pipelined vision + prefill (src/engine/pipeline.ts) against the sequential path: time to the first token on the
 * bench video (`videolm bench`'s synthetic frames, 2 fps, size × size) with a 2B-shaped random checkpoint
 * (src/bench/presets.ts), for several thread splits, each run in a process of its own (fresh sessions, its own
 * threads), the configurations interleaved round by round (A, B, C, A, B, C, …) so a shared machine's load falls
 * on all alike. The vision cache is off (every run encodes).
 *
 *   npx tsx bench/pipeline.ts [--shape qwen3-vl-2b] [--dtype int4] [--frames 8] [--size 448] [--rounds 3]
 *                             [--configs seq:2/2,pipe:1/1,pipe:2/2,pipe:1/2]
 *
 * A configuration is `seq:V/D` (sequential, V = D = the model's threads) or `pipe:V/D` (vision thread V intra-op
 * threads, decoder D); `:nospin` after either: onnxruntime's idle threads sleep instead of spinning. Per run: vision (start → last row), prefill, TTFT, each stage's busy time, the time both
 * ran at once, and the overlap achieved = overlap ÷ the shorter stage's busy time. Prints a JSON line per run and
 * a table of medians, and whether every run gave the same tokens and logprobs (exactness at this scale).
 */
import { spawn } from "node:child_process";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { BENCH_SHAPE_NAMES, ensureBenchCheckpoint, type BenchShape } from "../src/bench/presets.js";
import { benchMessages } from "../src/bench/measure.js";
import { defaultCacheRoot, ensureConverted } from "../src/engine/convert.js";
import { VideoModel } from "../src/engine/model.js";
import { RequestPreparer } from "../src/engine/preparer.js";
import type { WeightPrecision } from "../src/onnx/layers.js";

const { values } = parseArgs({
  options: {
    shape: { type: "string", default: "qwen3-vl-2b" },
    dtype: { type: "string", default: "int4" },
    frames: { type: "string", default: "8" },
    size: { type: "string", default: "448" },
    rounds: { type: "string", default: "3" },
    configs: { type: "string", default: "seq:2/2,pipe:1/1,pipe:2/2,pipe:1/2" },
    tokens: { type: "string", default: "2" },
    child: { type: "string" },
    dir: { type: "string" },
  },
});

interface Config {
  name: string;
  pipeline: boolean;
  visionThreads: number;
  threads: number;
  spinning: boolean;
}

function parseConfig(s: string): Config {
  const m = /^(seq|pipe):(\d+)\/(\d+)(:nospin)?$/.exec(s);
  if (!m) throw new Error(`--configs: expected seq:V/D or pipe:V/D, optionally :nospin, got ${s}`);
  const [, kind, v, d, nospin] = m;
  if (kind === "seq" && v !== d) throw new Error(`--configs ${s}: the sequential path runs both sessions at the same thread count`);
  return { name: s, pipeline: kind === "pipe", visionThreads: Number(v), threads: Number(d), spinning: !nospin };
}

interface RunResult {
  config: string;
  promptTokens: number;
  grid: number[];
  loadMs: number;
  visionMs: number;
  prefillMs: number;
  ttftMs: number;
  decodeTokensPerSecond: number;
  visionBusyMs?: number;
  prefillBusyMs?: number;
  overlapMs?: number;
  overlapFraction?: number;
  visionChunks?: number;
  load1: number;
  /** The greedy tokens and their logprobs with the 5 best alternatives (every configuration must give the same). */
  tokens: number[];
  logprobs: unknown;
}

const dtype = values.dtype as WeightPrecision;
const input = { frames: Number(values.frames), size: Number(values.size), tokens: Number(values.tokens) };

if (values.child) {
  const config = parseConfig(values.child);
  const t0 = performance.now();
  const model = await VideoModel.load(values.dir!, { dtype, threads: config.threads, visionThreads: config.visionThreads, pipeline: config.pipeline, spinning: config.spinning, visionCacheBytes: 0 });
  const loadMs = performance.now() - t0;
  const prepared = await model.prepare(benchMessages(input));
  const load1 = os.loadavg()[0];
  const r = await model.generate({ messages: [], prepared, temperature: 0, maxNewTokens: input.tokens, stop: [], logprobs: 5 });
  const p = r.pipeline;
  const out: RunResult = {
    config: config.name,
    promptTokens: r.promptTokens,
    grid: prepared.visuals[0].batch.grid,
    loadMs,
    visionMs: r.timings.visionMs,
    prefillMs: r.timings.prefillMs,
    ttftMs: r.timings.ttftMs,
    decodeTokensPerSecond: r.timings.decodeTokensPerSecond,
    ...(p ? { ...p, overlapFraction: p.overlapMs / Math.max(1e-9, Math.min(p.visionBusyMs, p.prefillBusyMs)) } : {}),
    load1,
    tokens: r.tokens,
    logprobs: r.logprobs,
  };
  await model.dispose();
  process.stdout.write(JSON.stringify(out) + "\n");
  process.exit(0);
}

const shape = values.shape as BenchShape;
if (!BENCH_SHAPE_NAMES.includes(shape)) throw new Error(`--shape: one of ${BENCH_SHAPE_NAMES.join(", ")}`);
const progress = (e: { task: string; done: number; total: number }) => process.stderr.write(`\r${e.task}: ${e.done}/${e.total}   `);
const dir = await ensureBenchCheckpoint(shape, path.join(defaultCacheRoot(), "bench"), progress);
const prep = await RequestPreparer.load(dir);
ensureConverted(prep.checkpoint, prep.family, prep.config, dtype, { onProgress: progress });
const configs = values.configs.split(",").map(parseConfig);
const self = fileURLToPath(import.meta.url);

function runChild(config: Config): Promise<RunResult> {
  const args = [...process.execArgv, self, "--child", config.name, "--dir", dir, "--dtype", dtype, "--frames", values.frames, "--size", values.size, "--tokens", values.tokens];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve(JSON.parse(out.trim().split("\n").at(-1)!) as RunResult) : reject(new Error(`${config.name}: exit ${code}`))));
  });
}

process.stderr.write(`\n${shape} ${dtype}, ${input.frames} frames of ${input.size}×${input.size}, ${os.availableParallelism()} cores, load ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}\n`);
const results: RunResult[] = [];
for (let round = 0; round < Number(values.rounds); round++) {
  for (const config of configs) {
    const r = await runChild(config);
    results.push(r);
    process.stdout.write(JSON.stringify({ round, ...r }) + "\n");
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const f = (ms: number | undefined) => (ms === undefined ? "" : (ms / 1000).toFixed(2));
const first = results[0];
const same = results.every((r) => JSON.stringify([r.tokens, r.logprobs]) === JSON.stringify([first.tokens, first.logprobs]));
process.stdout.write(`\ntokens and logprobs (top 5) ${same ? "identical in every run" : "DIFFER between runs"}: ${JSON.stringify(first.tokens)}\n`);
process.stdout.write(`\n${shape} ${dtype}: ${first.promptTokens} prompt tokens, grid ${first.grid.join("×")}; medians of ${values.rounds} runs (s)\n`);
process.stdout.write(`| config | TTFT | vision | prefill | vision busy | prefill busy | overlap | overlap ÷ shorter stage | decode tok/s | TTFT runs |\n|---|---|---|---|---|---|---|---|---|---|\n`);
for (const c of configs) {
  const rs = results.filter((r) => r.config === c.name);
  const m = (k: keyof RunResult) => (rs[0][k] === undefined ? undefined : median(rs.map((r) => r[k] as number)));
  const frac = m("overlapFraction");
  process.stdout.write(
    `| ${c.name} | ${f(m("ttftMs"))} | ${f(m("visionMs"))} | ${f(m("prefillMs"))} | ${f(m("visionBusyMs"))} | ${f(m("prefillBusyMs"))} | ${f(m("overlapMs"))} | ${frac === undefined ? "" : frac.toFixed(2)} | ${m("decodeTokensPerSecond")!.toFixed(2)} | ${rs.map((r) => f(r.ttftMs)).join(" / ")} |\n`,
  );
}
