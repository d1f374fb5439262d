/**
 * How prefill time, decoder state memory and decode speed grow with context: Qwen3.5-2B (hybrid: 18 Gated DeltaNet
 * layers with a fixed-size conv + recurrent state, 6 gated-attention layers with a KV cache) against Qwen3-VL-2B
 * (28 attention layers, all KV), both bench shapes with random weights (src/bench/presets.ts).
 *
 *   npx tsx bench/decoder-state-growth.ts [--precision int4] [--contexts 1024,2048,4096,8192] [--decode-tokens 16]
 *        [--threads N] [--models qwen3_5-2b,qwen3-vl-2b] [--rounds N] [--json FILE]
 *   npx tsx bench/decoder-state-growth.ts --steps-at 1024,4096,8192,16384   (decode step times only, see below)
 *
 * Per context length and model, one child process (so its peak memory is its own): load the converted model, prefill
 * `context` text tokens the way the engine does (src/engine/generate.ts prefill: chunks of 512), read the decoder
 * state's bytes (DecoderState: KV layers per filled position, recurrent layers in full — printed apart), then decode
 * `--decode-tokens` greedy tokens and time them. The models alternate per context (A, B, A, B, …) so that load from
 * other processes on a shared machine falls on both alike. `--rounds N` repeats the whole sequence N times and keeps
 * each figure's best (shortest prefill, fastest decode, largest peak memory): on a shared machine noise only slows a
 * run down (as bench/compare.ts --rounds).
 *
 * `--steps-at L1,L2,…`: only the decode step, at each state length without a prefill (the state's length is set
 * directly over zero KV: the same work per step as after a real prefill), 8 steps per length, one process per model.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { BENCH_SHAPE_NAMES, ensureBenchCheckpoint, type BenchShape } from "../src/bench/presets.js";
import { defaultCacheRoot, ensureConverted } from "../src/engine/convert.js";
import { prefill, type PreparedPrompt } from "../src/engine/generate.js";
import { VideoModel } from "../src/engine/model.js";
import { RequestPreparer } from "../src/engine/preparer.js";
import type { WeightPrecision } from "../src/onnx/layers.js";
import { stderrProgress } from "../src/util/progress.js";

const { values } = parseArgs({
  options: {
    precision: { type: "string", default: "int4" },
    contexts: { type: "string", default: "1024,2048,4096,8192" },
    "decode-tokens": { type: "string", default: "16" },
    threads: { type: "string", default: "0" },
    models: { type: "string", default: "qwen3_5-2b,qwen3-vl-2b" },
    rounds: { type: "string", default: "1" },
    json: { type: "string" },
    /** internal: measure one (model, context) in this process and print the result as JSON */
    "measure-one": { type: "string" },
    context: { type: "string" },
    "steps-at": { type: "string" },
    /** internal: step times of one model in this process */
    "measure-steps": { type: "string" },
  },
});

const precision = values.precision as WeightPrecision;
const threads = Number(values.threads);
const decodeTokens = Number(values["decode-tokens"]);

interface Measurement {
  model: BenchShape;
  context: number;
  loadMs: number;
  prefillMs: number;
  /** State bytes after the prefill: attention layers (KV, grows per token) and linear layers (fixed size). */
  kvBytes: number;
  linearBytes: number;
  /** Bytes of the state's buffers as allocated (KV at capacity = context + decode tokens). */
  allocatedBytes: number;
  kvLayers: number;
  linearLayers: number;
  decodeTokens: number;
  decodeTokensPerSecond: number;
  /** Resident memory after loading, and the process's peak. */
  rssAfterLoadBytes: number;
  peakRssBytes: number;
}

/** `n` ordinary text token ids (no special tokens), deterministic. */
function textTokens(n: number): number[] {
  const ids: number[] = [];
  let x = 12345;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    ids.push(1000 + (x % 140000));
  }
  return ids;
}

async function measureOne(model: BenchShape, context: number): Promise<Measurement> {
  const dir = path.join(defaultCacheRoot(), "bench", `${model}-random`);
  const t0 = performance.now();
  const vm = await VideoModel.load(dir, { dtype: precision, threads });
  const loadMs = performance.now() - t0;
  const rssAfterLoadBytes = process.memoryUsage().rss;
  const ids = textTokens(context);
  const positionIds = new Int32Array(3 * context);
  for (let a = 0; a < 3; a++) for (let i = 0; i < context; i++) positionIds[a * context + i] = i;
  const prompt: PreparedPrompt = { inputIds: ids, positionIds, ropeDelta: 0, visualEmbeds: new Float32Array(0), visualPositions: new Int32Array(0) };
  const decoder = vm.decoder;
  const state = decoder.createState(context + decodeTokens);
  const tp = performance.now();
  let logits = await prefill(decoder, prompt, state); // the engine's chunking (512 tokens)
  const prefillMs = performance.now() - tp;

  let kvBytes = 0;
  let linearBytes = 0;
  state.specs.forEach((spec, i) => {
    const bytes = Object.values(state.layerTensors(i)).reduce((a, t) => a + t.data.length * 4, 0);
    if (spec.kind === "kv") kvBytes += 2 * spec.numKvHeads * spec.headDim * state.length * 4; // filled positions
    else linearBytes += bytes;
  });
  const vocab = vm.config.text.vocabSize;
  const argmax = (l: Float32Array) => {
    let best = 0;
    for (let v = 1; v < vocab; v++) if (l[v] > l[best]) best = v;
    return best;
  };
  // Decode: one step to warm up (not timed), then decodeTokens − 1 timed steps.
  let token = argmax(logits);
  let timedMs = 0;
  for (let step = 0; step < decodeTokens; step++) {
    const pos = state.nextPosition();
    const ts = performance.now();
    logits = await decoder.forward({ inputIds: [token], positionIds: [pos, pos, pos], logitsIndices: [0] }, state);
    if (step > 0) timedMs += performance.now() - ts;
    token = argmax(logits);
  }
  const result: Measurement = {
    model,
    context,
    loadMs,
    prefillMs,
    kvBytes,
    linearBytes,
    allocatedBytes: state.bytesAllocated(),
    kvLayers: state.specs.filter((s) => s.kind === "kv").length,
    linearLayers: state.specs.filter((s) => s.kind === "recurrent").length,
    decodeTokens,
    decodeTokensPerSecond: decodeTokens > 1 ? ((decodeTokens - 1) * 1000) / timedMs : 0,
    rssAfterLoadBytes,
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
  };
  await vm.dispose();
  return result;
}

/** Milliseconds of 8 decode steps at each state length (no prefill: length set over zero KV). */
async function measureSteps(model: BenchShape, lengths: number[]): Promise<Record<number, number[]>> {
  const vm = await VideoModel.load(path.join(defaultCacheRoot(), "bench", `${model}-random`), { dtype: precision, threads });
  const out: Record<number, number[]> = {};
  for (const L of lengths) {
    const state = vm.decoder.createState(L + 16);
    state.length = L;
    out[L] = [];
    for (let i = 0; i < 8; i++) {
      const pos = state.nextPosition();
      const t = performance.now();
      await vm.decoder.forward({ inputIds: [1000 + i], positionIds: [pos, pos, pos], logitsIndices: [0] }, state);
      out[L].push(performance.now() - t);
    }
  }
  await vm.dispose();
  return out;
}

function childJson<T>(extra: string[], what: string): Promise<T> {
  const self = fileURLToPath(import.meta.url);
  const args = [...process.execArgv, self, ...extra, "--precision", precision, "--threads", String(threads), "--decode-tokens", String(decodeTokens)];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve(JSON.parse(out) as T) : reject(new Error(`${what}: exit code ${code}`))));
  });
}

function measureInChild(model: BenchShape, context: number): Promise<Measurement> {
  return childJson(["--measure-one", model, "--context", String(context)], `${model} at ${context} tokens`);
}

const MiB = 2 ** 20;
const f = (n: number, d = 1) => n.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });

function table(rows: Measurement[]): string {
  const lines = [
    "| context | model | prefill s | prefill tok/s | KV state MiB | linear state MiB | state total MiB | decode tok/s | RSS after load GiB | peak RSS GiB |",
    "|---|---|---|---|---|---|---|---|---|---|",
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.context} | ${r.model} | ${f(r.prefillMs / 1000)} | ${f((r.context * 1000) / r.prefillMs, 0)} | ${f(r.kvBytes / MiB)} | ${f(r.linearBytes / MiB)} | ${f((r.kvBytes + r.linearBytes) / MiB)} | ${f(r.decodeTokensPerSecond, 2)} | ${f(r.rssAfterLoadBytes / 2 ** 30, 2)} | ${f(r.peakRssBytes / 2 ** 30, 2)} |`,
    );
  }
  return lines.join("\n");
}

/** Per context: model A ÷ model B; and per model: growth from the first to each context. */
function ratios(rows: Measurement[], a: BenchShape, b: BenchShape): string {
  const contexts = [...new Set(rows.map((r) => r.context))];
  const get = (m: BenchShape, c: number) => rows.find((r) => r.model === m && r.context === c);
  const lines = [
    `| context | prefill ${a} ÷ ${b} | state ${a} ÷ ${b} | decode tok/s ${a} ÷ ${b} | prefill growth ${a} / ${b} (× first context) | state growth ${a} / ${b} |`,
    "|---|---|---|---|---|---|",
  ];
  const first = contexts[0];
  for (const c of contexts) {
    const ra = get(a, c);
    const rb = get(b, c);
    if (!ra || !rb) continue;
    const fa = get(a, first)!;
    const fb = get(b, first)!;
    const st = (r: Measurement) => r.kvBytes + r.linearBytes;
    lines.push(
      `| ${c} | ${f(ra.prefillMs / rb.prefillMs, 2)} | ${f(st(ra) / st(rb), 3)} | ${f(ra.decodeTokensPerSecond / rb.decodeTokensPerSecond, 2)} | ${f(ra.prefillMs / fa.prefillMs, 2)} / ${f(rb.prefillMs / fb.prefillMs, 2)} | ${f(st(ra) / st(fa), 2)} / ${f(st(rb) / st(fb), 2)} |`,
    );
  }
  return lines.join("\n");
}

async function main(): Promise<void> {
  if (values["measure-one"]) {
    const r = await measureOne(values["measure-one"] as BenchShape, Number(values.context));
    process.stdout.write(JSON.stringify(r) + "\n");
    return;
  }
  if (values["measure-steps"]) {
    const r = await measureSteps(values["measure-steps"] as BenchShape, (values["steps-at"] ?? "").split(",").map(Number));
    process.stdout.write(JSON.stringify(r) + "\n");
    return;
  }
  const models = values.models.split(",") as BenchShape[];
  for (const m of models) if (!BENCH_SHAPE_NAMES.includes(m)) throw new Error(`--models: unknown shape ${m} (one of ${BENCH_SHAPE_NAMES.join(", ")})`);
  if (values["steps-at"]) {
    const lengths = values["steps-at"].split(",").map(Number);
    const byModel: Record<string, Record<number, number[]>> = {};
    for (const m of models) byModel[m] = await childJson(["--measure-steps", m, "--steps-at", values["steps-at"]], `${m} steps`);
    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const lines = [`| state length | ${models.map((m) => `${m} ms/step: min–max, median (tok/s)`).join(" | ")} |`, `|---|${models.map(() => "---|").join("")}`];
    for (const L of lengths) {
      const cells = models.map((m) => {
        const t = byModel[m][L];
        return `${f(Math.min(...t), 0)}–${f(Math.max(...t), 0)}, ${f(med(t), 0)} (${f(1000 / med(t), 1)})`;
      });
      lines.push(`| ${L} | ${cells.join(" | ")} |`);
    }
    process.stdout.write(lines.join("\n") + "\n");
    if (values.json) fs.writeFileSync(values.json, JSON.stringify({ precision, threads, steps: byModel }, null, 2) + "\n");
    return;
  }
  const contexts = values.contexts.split(",").map(Number);
  const progress = stderrProgress();
  for (const m of models) {
    const dir = await ensureBenchCheckpoint(m, path.join(defaultCacheRoot(), "bench"), progress);
    const prep = await RequestPreparer.load(dir);
    ensureConverted(prep.checkpoint, prep.family, prep.config, precision, { onProgress: progress });
  }
  const rounds = Number(values.rounds);
  const all: Measurement[] = [];
  const started = new Date().toISOString();
  for (let round = 1; round <= rounds; round++) {
    for (const context of contexts) {
      for (const m of models) {
        process.stderr.write(`round ${round}/${rounds}: measuring ${m} at ${context} tokens…\n`);
        const r = await measureInChild(m, context);
        process.stderr.write(
          `  prefill ${f(r.prefillMs / 1000)} s, state ${f((r.kvBytes + r.linearBytes) / MiB)} MiB (KV ${f(r.kvBytes / MiB)} + linear ${f(r.linearBytes / MiB)}), decode ${f(r.decodeTokensPerSecond, 2)} tok/s, peak ${f(r.peakRssBytes / 2 ** 30, 2)} GiB\n`,
        );
        all.push(r);
      }
    }
  }
  // Each figure's best over the rounds.
  const rows: Measurement[] = [];
  for (const context of contexts) {
    for (const m of models) {
      const runs = all.filter((r) => r.model === m && r.context === context);
      rows.push({
        ...runs[0],
        loadMs: Math.min(...runs.map((r) => r.loadMs)),
        prefillMs: Math.min(...runs.map((r) => r.prefillMs)),
        decodeTokensPerSecond: Math.max(...runs.map((r) => r.decodeTokensPerSecond)),
        rssAfterLoadBytes: Math.max(...runs.map((r) => r.rssAfterLoadBytes)),
        peakRssBytes: Math.max(...runs.map((r) => r.peakRssBytes)),
      });
    }
  }
  const out = [`${precision}, threads ${threads || "all"}, ${decodeTokens} decode tokens, ${rounds} round(s) (each figure its best), started ${started}`, "", table(rows)];
  if (models.length >= 2) out.push("", ratios(rows, models[0], models[1]));
  process.stdout.write(out.join("\n") + "\n");
  if (values.json) fs.writeFileSync(values.json, JSON.stringify({ precision, threads, decodeTokens, rounds, started, rows, all }, null, 2) + "\n");
}

await main();
