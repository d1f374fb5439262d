/**
 * Held-out evaluation of the demo model: videolm's engine (VideoModel.generate, greedy) on every question of
 * the evaluation shards (seeds never used in training; tools/demo/export-shards.mts), regenerating each mp4 from
 * its seed and checking that videolm prepares exactly the prompt ids stored in the shard. With --reference
 * <preds.json> (from tools/demo/eval_reference.py: transformers' greedy generate on the same stored inputs) it
 * prints both side by side.
 *
 * Accuracy: exact answer text; time questions count when every time is within ±0.5 s (src/synth isCorrect).
 * MAE: mean absolute error over the times of time questions whose answer parses into the right number of times.
 * The first table (overall, time ±0.5 s, MAE) covers the original nine question types, as before the event
 * questions existed; the event questions get their own lines:
 *   grounding (every "when is the X visible?": types span and ground): mIoU and R1@{0.3, 0.5, 0.7}, the share of
 *     questions whose answered span overlaps the true one with IoU ≥ the threshold (an unparsable answer: IoU 0);
 *   dense captions ("list the events."): precision / recall / F1 of the answered events at tIoU 0.5, an event
 *     matching a true one with the same text and tIoU ≥ 0.5, one to one, summed over all videos (micro average).
 * Both use src/events/metrics.ts, the scores of bench/grounding.
 *
 * Usage: npx tsx tools/demo/evaluate.mts <evalShardDir> [--model models/videolm-demo] [--reference preds.json]
 *                                          [--limit N] [--out engine-preds.json] [--prune RATE]
 *
 * --prune RATE: EVS token pruning of every video (MediaOptions.prune, src/engine/evs.ts); the prompt ids are then
 * still checked against the shard's unpruned ones (pruning compacts the prompt after the vision pass), and the
 * visual tokens kept / planned are printed with the table.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { VideoModel } from "../../src/engine/model.js";
import { denseCaptionF1Micro, groundingMetrics } from "../../src/events/metrics.js";
import {
  DEMO_MEDIA_OPTIONS,
  demoMessages,
  encodeScene,
  eventsFor,
  isCorrect,
  parseEventLines,
  parseTimes,
  QUESTION_TYPES,
  sceneFromSeed,
  type SynthQuestion,
} from "../../src/synth/index.js";

interface ShardQuestion extends SynthQuestion {
  promptIds: number[];
}
interface ShardVideo {
  seed: number;
  questions: ShardQuestion[];
}
interface Prediction {
  seed: number;
  q: number;
  type: string;
  answer: string;
  predicted: string;
  tokens?: number[];
}

const argv = process.argv.slice(2);
const flag = (name: string, fallback?: string) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : fallback;
};
const dir = argv[0];
const modelDir = flag("--model", "models/videolm-demo")!;
const limit = Number(flag("--limit", "1000000"));
const prune = Number(flag("--prune", "0"));
const media = prune > 0 ? { ...DEMO_MEDIA_OPTIONS, prune } : DEMO_MEDIA_OPTIONS;
const shardFiles = fs.readdirSync(dir).filter((n) => /^shard-\d+\.json$/.test(n)).sort();
const videos: ShardVideo[] = shardFiles.flatMap((n) => (JSON.parse(fs.readFileSync(path.join(dir, n), "utf8")) as { videos: ShardVideo[] }).videos).slice(0, limit);

/** Room for the longest answer: a dense caption of four objects is ~71 tokens, every other answer ≤ 11. */
const maxNewTokens = (type: string) => (type === "dense" ? 128 : 16);
const model = await VideoModel.load(modelDir, { cacheDir: path.resolve(".cache/demo/convert"), threads: 2 });
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "videolm-demo-eval-"));
const engine: Prediction[] = [];
let visualPlanned = 0;
let visualKept = 0;
const t0 = Date.now();
for (const video of videos) {
  const file = path.join(tmp, `${video.seed}.mp4`);
  await encodeScene(sceneFromSeed(video.seed), file);
  for (const [q, question] of video.questions.entries()) {
    const prepared = await model.prepare(demoMessages(file, question.question), media);
    if (prepared.inputIds.join() !== question.promptIds.join()) throw new Error(`seed ${video.seed}: videolm's prompt ids differ from the stored ones`);
    const out = await model.generate({ messages: [], prepared, temperature: 0, maxNewTokens: maxNewTokens(question.type) });
    const planned = prepared.visuals.reduce((s, v) => s + v.tokens, 0);
    visualPlanned += out.visualTokens?.plannedTokens ?? planned;
    visualKept += out.visualTokens?.keptTokens ?? planned;
    engine.push({ seed: video.seed, q, type: question.type, answer: question.answer, predicted: out.text, tokens: out.tokens });
  }
  fs.rmSync(file);
}
fs.rmSync(tmp, { recursive: true, force: true });
const out = flag("--out");
if (out) fs.writeFileSync(out, JSON.stringify(engine, null, 1));

const questionOf = new Map(videos.flatMap((v) => v.questions.map((q, i) => [`${v.seed}/${i}`, q] as const)));
const EVENT_TYPES = new Set(["ground", "dense"]);
const GROUNDING_TYPES = new Set(["span", "ground"]);

/** Grounding (src/events/metrics.ts, Charades-STA convention): an answer that is not exactly one span scores IoU 0. */
function groundingScores(preds: Prediction[]) {
  const g = groundingMetrics(
    preds.map((p) => {
      const [start, end] = questionOf.get(`${p.seed}/${p.q}`)!.times!;
      const got = parseEventLines(p.predicted);
      return { predicted: got.length === 1 ? got[0] : undefined, truth: { start, end } };
    }),
  );
  return { n: g.n, mIoU: g.mIoU, r03: g.r1["0.3"], r05: g.r1["0.5"], r07: g.r1["0.7"] };
}

/** Dense captions: events matched one to one with the same text and tIoU ≥ 0.5, summed over the videos. */
function denseScores(preds: Prediction[]) {
  const score = denseCaptionF1Micro(
    preds.map((p) => ({ predicted: parseEventLines(p.predicted), truth: eventsFor(sceneFromSeed(p.seed)) })),
    0.5,
    (a, b) => a === b,
  );
  return { n: preds.length, ...score };
}

function score(all: Prediction[]) {
  const preds = all.filter((p) => !EVENT_TYPES.has(p.type));
  const grounding = groundingScores(all.filter((p) => GROUNDING_TYPES.has(p.type)));
  const groundOnly = groundingScores(all.filter((p) => p.type === "ground"));
  const dense = denseScores(all.filter((p) => p.type === "dense"));
  const eventAccuracy = new Map([...EVENT_TYPES].map((t) => {
    const of = all.filter((p) => p.type === t);
    return [t, [of.filter((p) => isCorrect(questionOf.get(`${p.seed}/${p.q}`)!, p.predicted)).length, of.length] as [number, number]];
  }));
  const perType = new Map<string, [number, number]>();
  let errSum = 0;
  let errN = 0;
  let within = 0;
  let timeN = 0;
  for (const p of preds) {
    const q = questionOf.get(`${p.seed}/${p.q}`)!;
    const ok = isCorrect(q, p.predicted);
    const [a, n] = perType.get(q.type) ?? [0, 0];
    perType.set(q.type, [a + (ok ? 1 : 0), n + 1]);
    if (q.times) {
      timeN++;
      if (ok) within++;
      const got = parseTimes(p.predicted);
      if (got.length === q.times.length) got.forEach((t, i) => ((errSum += Math.abs(t - q.times![i])), errN++));
    }
  }
  const correct = [...perType.values()].reduce((s, [a]) => s + a, 0);
  // the event types' exact-answer accuracy is listed beside the others but stays out of the original overall
  for (const [t, v] of eventAccuracy) if (v[1]) perType.set(t, v);
  return { perType, overall: correct / preds.length, mae: errN ? errSum / errN : NaN, withinHalf: timeN ? within / timeN : NaN, grounding, groundOnly, dense };
}

const refFile = flag("--reference");
const reference = refFile ? (JSON.parse(fs.readFileSync(refFile, "utf8")) as Prediction[]) : undefined;
const e = score(engine);
const r = reference ? score(reference.filter((p) => questionOf.has(`${p.seed}/${p.q}`))) : undefined;
const pct = (x: number) => (100 * x).toFixed(1).padStart(6);
console.log(`${videos.length} held-out videos, ${engine.length} questions, ${((Date.now() - t0) / 1000).toFixed(0)} s`);
console.log(`prune ${prune}: visual tokens kept ${visualKept} / ${visualPlanned} (${pct(visualKept / visualPlanned).trim()}%) over all questions`);
console.log(`type        n   videolm${r ? "  reference" : ""}`);
for (const t of QUESTION_TYPES) {
  const [a, n] = e.perType.get(t) ?? [0, 0];
  if (!n) continue;
  const ref = r?.perType.get(t);
  console.log(`${t.padEnd(10)} ${String(n).padStart(3)}  ${pct(a / n)}%${ref ? `    ${pct(ref[0] / ref[1])}%` : ""}`);
}
console.log(`overall (nine original types) ${pct(e.overall)}%${r ? `    ${pct(r.overall)}%` : ""}`);
console.log(`time ±0.5 s     ${pct(e.withinHalf)}%${r ? `    ${pct(r.withinHalf)}%` : ""}`);
console.log(`time MAE (s)    ${e.mae.toFixed(3).padStart(6)}${r ? `     ${r.mae.toFixed(3).padStart(6)}` : ""}`);
const num = (x: number) => x.toFixed(3).padStart(6);
for (const [label, key] of [["grounding (span + ground)", "grounding"], ["grounding (ground only)", "groundOnly"]] as const) {
  const g = e[key];
  if (!g.n) continue;
  const rg = r?.[key];
  console.log(`${label}, n ${g.n}: mIoU ${num(g.mIoU)}  R1@0.3 ${pct(g.r03)}%  R1@0.5 ${pct(g.r05)}%  R1@0.7 ${pct(g.r07)}%`);
  if (rg) console.log(`${" ".repeat(label.length)}  reference: mIoU ${num(rg.mIoU)}  R1@0.3 ${pct(rg.r03)}%  R1@0.5 ${pct(rg.r05)}%  R1@0.7 ${pct(rg.r07)}%`);
}
if (e.dense.n) {
  console.log(`dense captions, ${e.dense.n} videos, tIoU 0.5: precision ${num(e.dense.precision)}  recall ${num(e.dense.recall)}  F1 ${num(e.dense.f1)}`);
  if (r) console.log(`                                   reference: precision ${num(r.dense.precision)}  recall ${num(r.dense.recall)}  F1 ${num(r.dense.f1)}`);
}
if (reference) {
  const refTokens = new Map(reference.map((p) => [`${p.seed}/${p.q}`, (p.tokens ?? []).join()]));
  const same = engine.filter((p) => refTokens.get(`${p.seed}/${p.q}`) === (p.tokens ?? []).join()).length;
  console.log(`identical generated tokens videolm vs reference: ${same}/${engine.length}`);
}
