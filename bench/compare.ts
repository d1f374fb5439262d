/**
 * Side-by-side bench (not a test): videolm at each precision against the reference — transformers 4.57.6 + torch
 * CPU, float32 — on the same Qwen2-VL-shaped checkpoint (random weights, generated once into .cache/bench), the
 * same prepared input (ids, pixel values, grid) and the same thread count. Prints a table of both systems, the
 * bounds onnxruntime reaches on the same shapes, and the ratios against the targets of the speed issue.
 *
 *   npm run bench:compare -- [--shape qwen2-vl-2b] [--dtypes fp32,int8,int4] [--frames 8] [--size 448] [--tokens 32]
 *                            [--threads 2] [--rounds 1] [--no-reference]
 *
 * With --rounds N every system runs N times, in turns (all systems, then all again), and each figure is its best
 * over the rounds (shortest times, highest rates and bounds, largest peak memory): on a shared machine noise only
 * ever slows a run down, and taking turns gives every system the same chance at a quiet moment.
 *
 * Needs the oracle venv for the reference (../shared/tools/make-oracle-venv.sh .venv-oracle) and `npm run build`
 * (the npm script does it). Every system runs in a process of its own, one after another, so peak memory and timings
 * are each its own.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { benchMessages, type BenchInput } from "../src/bench/measure.js";
import { ensureBenchCheckpoint, type BenchShape } from "../src/bench/presets.js";
import { stageEfficiency, type BenchReport } from "../src/cli/commands/bench.js";
import { RequestPreparer } from "../src/engine/preparer.js";
import { repoRoot } from "../src/testing/tiny-checkpoint.js";
import { stderrProgress } from "../src/util/progress.js";

const { values } = parseArgs({
  options: {
    shape: { type: "string", default: "qwen2-vl-2b" },
    dtypes: { type: "string", default: "fp32,int8,int4" },
    frames: { type: "string", default: "8" },
    size: { type: "string", default: "448" },
    tokens: { type: "string", default: "32" },
    threads: { type: "string", default: "2" },
    rounds: { type: "string", default: "1" },
    "no-reference": { type: "boolean" },
  },
});
const root = repoRoot();
const input: BenchInput = { frames: Number(values.frames), size: Number(values.size), tokens: Number(values.tokens) };
const threads = values.threads!;

interface ReferenceRun {
  loadMs: number;
  visionMs: number;
  ttftMs: number;
  decodeTokensPerSecond: number;
  generatedTokens: number;
  promptTokens: number;
  peakRssBytes: number;
}

/**
 * One record with each figure at its best over the rounds (see the header): the smallest of `lowest`, the largest of
 * `highest`; other fields from the first round.
 */
function bestFigures<T>(runs: T[], lowest: (keyof T)[], highest: (keyof T)[]): T {
  const out = { ...runs[0] };
  const pick = (key: keyof T, choose: (...v: number[]) => number) => {
    out[key] = choose(...runs.map((r) => r[key] as number)) as T[keyof T];
  };
  for (const key of lowest) pick(key, Math.min);
  for (const key of highest) pick(key, Math.max);
  return out;
}

const SHARED_TIMES = ["loadMs", "visionMs", "ttftMs"] as const;
const SHARED_HIGHS = ["decodeTokensPerSecond", "peakRssBytes"] as const; // peak memory: the largest, conservatively

function bestReference(runs: ReferenceRun[]): ReferenceRun {
  return bestFigures(runs, [...SHARED_TIMES], [...SHARED_HIGHS]);
}

/** As bestReference, bounds at their highest, and each stage's share of its bound from those best figures. */
function bestReport(runs: BenchReport[]): BenchReport {
  const run = bestFigures(
    runs.map((x) => x.run),
    [...SHARED_TIMES, "prefillMs"],
    [...SHARED_HIGHS],
  );
  const report: BenchReport = { ...runs[0], run };
  const bounds = runs.map((x) => x.bounds).filter((b) => b !== undefined);
  if (report.work && bounds.length === runs.length) {
    report.bounds = bestFigures(bounds, [], ["visionGflops", "prefillGflops", "gemvGBps"]);
    report.efficiency = stageEfficiency(report.work, run, report.bounds);
  }
  return report;
}

function runJson<T>(cmd: string, args: string[]): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: root, stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve(JSON.parse(out.trim().split("\n").pop()!) as T) : reject(new Error(`${cmd} ${args.join(" ")} exited with ${code}`))));
  });
}

const dir = await ensureBenchCheckpoint(values.shape as BenchShape, path.join(root, ".cache", "bench"), stderrProgress());

// The reference gets exactly the ids, pixel values and grid videolm prepares.
const prepared = await (await RequestPreparer.load(dir)).prepare(benchMessages(input));
const batch = prepared.visuals[0].batch;
const inputDir = fs.mkdtempSync(path.join(os.tmpdir(), "videolm-bench-input-"));
fs.writeFileSync(path.join(inputDir, "input_ids.bin"), BigInt64Array.from(prepared.inputIds, (v) => BigInt(v)));
fs.writeFileSync(path.join(inputDir, "pixel_values.bin"), batch.pixelValues);
const rows = batch.grid[0] * batch.grid[1] * batch.grid[2];
fs.writeFileSync(path.join(inputDir, "meta.json"), JSON.stringify({ grid: batch.grid, patchDim: batch.pixelValues.length / rows }));

const rounds = Math.max(1, Number(values.rounds));
const dtypes = values.dtypes!.split(",");
const videolmRuns: BenchReport[][] = dtypes.map(() => []);
const referenceRuns: ReferenceRun[] = [];
for (let round = 1; round <= rounds; round++) {
  for (const [i, dtype] of dtypes.entries()) {
    console.error(`\n== videolm ${dtype}${rounds > 1 ? ` (round ${round}/${rounds})` : ""}`);
    const args = ["dist/cli/main.js", "bench", "--model", dir, "--dtype", dtype, "--threads", threads, "--frames", values.frames!, "--size", values.size!, "--tokens", values.tokens!, "--json"];
    videolmRuns[i].push(await runJson<BenchReport>(process.execPath, args));
  }
  if (!values["no-reference"]) {
    console.error(`\n== reference (transformers 4.57.6, torch CPU, fp32)${rounds > 1 ? ` (round ${round}/${rounds})` : ""}`);
    referenceRuns.push(await runJson<ReferenceRun>(path.join(root, ".venv-oracle", "bin", "python"), ["bench/reference.py", dir, inputDir, "--tokens", values.tokens!, "--threads", threads]));
  }
}
const reports = videolmRuns.map(bestReport);
const reference = referenceRuns.length > 0 ? bestReference(referenceRuns) : undefined;
fs.rmSync(inputDir, { recursive: true, force: true });

const s = (ms: number) => (ms / 1000).toFixed(1);
const gib = (b: number) => (b / 2 ** 30).toFixed(2);
console.log(
  `\n${values.shape} (random weights), ${input.frames} frames of ${input.size}×${input.size}, ${prepared.inputIds.length} prompt tokens, ${input.tokens} new tokens, ${threads} threads` +
    (rounds > 1 ? `, best of ${rounds} rounds` : ""),
);
console.log("system              load s  vision s  TTFT s  decode tok/s  peak GiB");
const line = (name: string, r: { loadMs: number; visionMs: number; ttftMs: number; decodeTokensPerSecond: number; peakRssBytes: number }) =>
  console.log(`${name.padEnd(19)} ${s(r.loadMs).padStart(6)}  ${s(r.visionMs).padStart(8)}  ${s(r.ttftMs).padStart(6)}  ${r.decodeTokensPerSecond.toFixed(2).padStart(12)}  ${gib(r.peakRssBytes).padStart(8)}`);
if (reference) line("reference fp32", reference);
for (const r of reports) line(`videolm ${r.run.dtype}`, r.run);

if (reference) {
  console.log("\nratios vs the reference (target in brackets)");
  for (const r of reports) {
    const q = r.run.dtype !== "fp32";
    const ttft = r.run.ttftMs / reference.ttftMs;
    const decode = r.run.decodeTokensPerSecond / reference.decodeTokensPerSecond;
    const mem = r.run.peakRssBytes / reference.peakRssBytes;
    const mark = (ok: boolean) => (ok ? "ok" : "MISSED");
    console.log(
      `videolm ${r.run.dtype.padEnd(5)} TTFT ${ttft.toFixed(2)}× [≤ ${q ? "0.35" : "0.6"}] ${mark(ttft <= (q ? 0.35 : 0.6))}` +
        `   decode ${decode.toFixed(2)}× [≥ ${q ? (r.run.dtype === "int4" ? "8" : "-") : "2"}] ${r.run.dtype === "int8" ? "" : mark(decode >= (q ? 8 : 2))}` +
        `   memory ${mem.toFixed(2)}× [≤ ${q ? "0.35" : "1.0"}] ${r.run.dtype === "int8" ? "" : mark(mem <= (q ? 0.35 : 1.0))}`,
    );
  }
}
console.log("\nstages vs the bounds onnxruntime reaches here on the same shapes (target ≥ 75%)");
for (const r of reports) {
  if (!r.bounds || !r.efficiency || !r.work) continue;
  const pct = (x: number) => `${Math.round(x * 100)}%`;
  console.log(
    `videolm ${r.run.dtype.padEnd(5)} vision ${pct(r.efficiency.vision)} of ${r.bounds.visionGflops.toFixed(0)} GFLOP/s` +
      `   prefill ${pct(r.efficiency.prefill)} of ${r.bounds.prefillGflops.toFixed(0)} GFLOP/s` +
      `   decode ${pct(r.efficiency.decode)} of ${((r.bounds.gemvGBps * 1000) / r.work.decodeMBPerToken).toFixed(2)} tok/s (${r.bounds.gemvGBps.toFixed(1)} GB/s ÷ ${r.work.decodeMBPerToken.toFixed(0)} MB/token)`,
  );
}
console.log(JSON.stringify({ reference, videolm: reports }));
