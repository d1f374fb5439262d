/**
 * Decoder-stages bench (not a test): session creation and decode-step time of a many-expert MoE decoder as one
 * onnxruntime session against the stages the family plans (src/engine/decoder-stages.ts). The model is the
 * qwen3_5_moe-tiny fixture's widths (hidden 64, experts' intermediate 32) with --layers layers of --experts experts
 * (Qwen3.5-35B-A3B's count by default: 40 × 256), random weights, converted at --dtype.
 *
 *   npx tsx bench/decoder-stages.ts [--layers 40] [--experts 256] [--dtype int4] [--modes staged,single] [--threads 1]
 *                                   [--layers-per-stage N]   (staged: N layers per stage instead of the family's plan)
 *
 * Prints per mode: the stages, conversion time, the creation time of each session created one after another (their
 * sum), the wall time of creating them all at once (as VideoModel.load does), and the median decode step over a
 * 16-token prompt.
 *
 * Measured on this project's 2-core machine (shared, load average ~3), 40 × 256 experts, int4, 1 thread:
 *   single (1 session)              creation 538 s                                  decode step median 208 ms (min 156)
 *   2 layers per stage (20, ≤ 512)  creation 72 s one after another, 53 s at once   118 ms (92)
 *   1 layer per stage (40, ≤ 256)   creation 32 s one after another, 26 s at once    94 ms (87)   ← the family's plan
 * 2 threads: 1 layer per stage 32 s / 30 s, decode 123 ms (110) with idle threads sleeping (SessionOptions.spinning
 * false, as VideoModel.load creates staged decoders), 1,744 ms (920) with onnxruntime's spinning pools (--spin).
 * 10 × 256 experts, 2 threads: single creation 28.3 s, decode 71 ms (54); 10 stages 7.8 s (7.0 s at once), 26 ms (23);
 * 10 stages spinning 9.3 s, 312 ms (189).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { ensureConverted } from "../src/engine/convert.js";
import { describeStages, planDecoderStages } from "../src/engine/decoder-stages.js";
import { RequestPreparer } from "../src/engine/preparer.js";
import { createSession, Decoder } from "../src/engine/sessions.js";
import type { WeightPrecision } from "../src/onnx/layers.js";
import { FIXTURE_FILES, qwen3_5MoeWeightSpec, type Qwen3_5MoeShapeConfig, qwenTokenizerJsonPath, repoRoot, writeSafetensors } from "../src/testing/tiny-checkpoint.js";

const { values } = parseArgs({
  options: {
    layers: { type: "string", default: "40" },
    experts: { type: "string", default: "256" },
    dtype: { type: "string", default: "int4" },
    modes: { type: "string", default: "staged,single" },
    threads: { type: "string", default: "1" },
    "layers-per-stage": { type: "string" },
    spin: { type: "boolean", default: false },
  },
});
const L = Number(values.layers);
const E = Number(values.experts);
const dtype = values.dtype as WeightPrecision;
const threads = Number(values.threads);

// The checkpoint: the tiny fixture's files with L layers (3 linear-attention : 1 full-attention, as the fixture) of E experts.
const fixture = path.join(repoRoot(), "test/fixtures/qwen3_5_moe/qwen3_5_moe-tiny");
const root = path.join(repoRoot(), ".cache", "bench", "decoder-stages");
const dir = path.join(root, `qwen3_5_moe-L${L}-E${E}`);
if (!fs.existsSync(path.join(dir, "model.safetensors"))) {
  fs.mkdirSync(dir, { recursive: true });
  for (const f of FIXTURE_FILES) fs.copyFileSync(path.join(fixture, f), path.join(dir, f));
  fs.copyFileSync(qwenTokenizerJsonPath(), path.join(dir, "tokenizer.json"));
  const config = JSON.parse(fs.readFileSync(path.join(fixture, "config.json"), "utf8")) as Qwen3_5MoeShapeConfig & { text_config: Record<string, unknown> };
  const tc = config.text_config;
  tc.num_hidden_layers = L;
  tc.num_experts = E;
  tc.layer_types = Array.from({ length: L }, (_, i) => ((i + 1) % 4 === 0 ? "full_attention" : "linear_attention"));
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(config, null, 2));
  await writeSafetensors(qwen3_5MoeWeightSpec(config, 1234), path.join(dir, "model.safetensors"));
}
const prep = await RequestPreparer.load(dir);
const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

for (const mode of values.modes.split(",")) {
  const layersPerStage = mode === "single" ? L : values["layers-per-stage"] !== undefined ? Number(values["layers-per-stage"]) : undefined;
  const stages = planDecoderStages(prep.family, prep.config, layersPerStage);
  const t0 = performance.now();
  const converted = ensureConverted(prep.checkpoint, prep.family, prep.config, dtype, { cacheRoot: root, layersPerStage });
  const convertMs = performance.now() - t0;
  console.log(`${mode}: ${stages.length} stage(s) [${describeStages(stages)}], ${dtype}, ${threads} thread(s); conversion (or cache) ${s(convertMs)}`);
  // One after another: each session's own creation time (one session: kept for the decode steps).
  const each: number[] = [];
  let sessions: Awaited<ReturnType<typeof createSession>>[] = [];
  // As VideoModel.load: a staged decoder's sessions do not spin (SessionOptions.spinning), unless --spin.
  const options = { threads, ...(converted.decoderPaths.length > 1 && !values.spin ? { spinning: false } : {}) };
  for (const f of converted.decoderPaths) {
    const t = performance.now();
    const session = await createSession(f, options);
    each.push(performance.now() - t);
    if (converted.decoderPaths.length === 1) sessions = [session];
    else await session.release();
  }
  console.log(`  sequential creation: sum ${s(each.reduce((a, b) => a + b, 0))}, per session ${each.map((ms) => (ms / 1000).toFixed(2)).join(" ")} s`);
  if (sessions.length === 0) {
    // All at once, as VideoModel.load creates them.
    const t1 = performance.now();
    sessions = await Promise.all(converted.decoderPaths.map((f) => createSession(f, options)));
    console.log(`  parallel creation (wall): ${s(performance.now() - t1)}`);
  }
  const decoder = new Decoder(sessions, prep.config, prep.family.decoderState(prep.config));
  const P = 16;
  const state = decoder.createState(P + 40);
  const ids = Array.from({ length: P }, (_, i) => 1000 + i * 37);
  const pos = Array.from({ length: 3 }, () => Array.from({ length: P }, (_, i) => i)).flat();
  await decoder.forward({ inputIds: ids, positionIds: pos, logitsIndices: [P - 1] }, state);
  const steps: number[] = [];
  for (let i = 0; i < 30; i++) {
    const p = state.nextPosition();
    const t = performance.now();
    await decoder.forward({ inputIds: [2000 + ((i * 7919) % 50000)], positionIds: [p, p, p], logitsIndices: [0] }, state);
    steps.push(performance.now() - t);
  }
  steps.sort((a, b) => a - b);
  console.log(`  decode step: median ${steps[15].toFixed(1)} ms, min ${steps[0].toFixed(1)} ms`);
  await decoder.release();
}
