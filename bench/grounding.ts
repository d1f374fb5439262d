/**
 * Temporal grounding and dense captioning scores of models, through the same calls users make (`VideoModel.ground` /
 * `VideoModel.events`: each family's or checkpoint's own prompt, the tolerant parser, the clip's duration).
 *
 *   npx tsx bench/grounding.ts [--model DIR|REPO]... [--n 100] [--seed 5000001] [--modes constrained,free]
 *                              [--charades ANNOTATIONS --videos DIR [--limit N]] [--json]
 *
 * Synthetic set (default): held-out scenes of src/synth (seeds --seed … --seed + n − 1; the demo model trains on
 * seeds below 5 000 000), rendered to mp4 once into .cache/bench/grounding (src/synth encodeScene, the encoder the
 * demo's training data uses). Grounding queries are the objects the scenes' grounding questions name ("the red
 * circle"), their truth the object's visible span (src/synth/events.ts); dense captions are scored against
 * `eventsFor(scene)`.
 *
 * Charades-STA (`--charades charades_sta_test.txt --videos Charades_v1_480/`): every annotation's query grounded in
 * `DIR/VIDEO.mp4` (any format src/events/charades.ts reads; a video id with an extension is used as it is).
 *
 * Metrics (src/events/metrics.ts): R1@{0.3, 0.5, 0.7} and mIoU of the top-1 span (the first event; none = IoU 0),
 * dense event F1 at tIoU 0.5 micro-averaged over clips, on times alone and with the text matching too (case and
 * final period ignored); "parsed" is the share of answers holding a readable span. Each mode runs every clip:
 * `constrained` holds generation to the format the checkpoint declares, `free` does not (a model that declares none
 * runs `free` only). Prints a table per model (and one JSON line per model and mode with --json).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { VideoModel } from "../src/engine/model.js";
import { readGroundingAnnotations } from "../src/events/charades.js";
import { denseCaptionF1Micro, groundingMetrics, type GroundingMetrics } from "../src/events/metrics.js";
import { checkpointEventPrompts, eventPromptFor } from "../src/events/prompts.js";
import type { Event } from "../src/events/types.js";
import { resolveModel } from "../src/hub/resolve-model.js";
import { DEFAULT_MODEL_DIR } from "../src/hub/default-model.js";
import { encodeScene, sceneFromSeed } from "../src/synth/index.js";
import { eventsFor, groundingQuestionsFor, GROUNDING_TEMPLATE } from "../src/synth/events.js";
import { questionsFor } from "../src/synth/scene.js";
import { repoRoot } from "../src/testing/tiny-checkpoint.js";

const { values } = parseArgs({
  options: {
    model: { type: "string", multiple: true },
    n: { type: "string", default: "100" },
    seed: { type: "string", default: "5000001" },
    modes: { type: "string", default: "constrained,free" },
    charades: { type: "string" },
    videos: { type: "string" },
    limit: { type: "string" },
    "max-new-tokens": { type: "string" },
    threads: { type: "string" },
    json: { type: "boolean" },
  },
});

interface GroundingItem {
  video: string;
  query: string;
  truth: { start: number; end: number };
}
interface DenseItem {
  video: string;
  truth: Event[];
}
interface DataSet {
  name: string;
  grounding: GroundingItem[];
  dense: DenseItem[];
}

/** "when is the red circle visible?" → "red circle": the object a synthetic grounding question names. */
const templateRe = new RegExp(`^${GROUNDING_TEMPLATE.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace("\\{query\\}", "(.+)")}$`);

async function syntheticSet(first: number, n: number): Promise<DataSet> {
  const dir = path.join(repoRoot(), ".cache", "bench", "grounding");
  fs.mkdirSync(dir, { recursive: true });
  const set: DataSet = { name: `synthetic seeds ${first}–${first + n - 1}`, grounding: [], dense: [] };
  for (let seed = first; seed < first + n; seed++) {
    const scene = sceneFromSeed(seed);
    const video = path.join(dir, `${seed}.mp4`);
    if (!fs.existsSync(video)) {
      await encodeScene(scene, `${video}.tmp.mp4`);
      fs.renameSync(`${video}.tmp.mp4`, video);
    }
    // The objects asked about: the grounding questions' (and span scenes' own "when is the X visible?").
    for (const q of [...questionsFor(scene).filter((x) => x.type === "span"), ...groundingQuestionsFor(scene)]) {
      const name = templateRe.exec(q.question)?.[1];
      if (name && q.times) set.grounding.push({ video, query: `the ${name}`, truth: { start: q.times[0], end: q.times[1] } });
    }
    set.dense.push({ video, truth: eventsFor(scene) });
  }
  return set;
}

function charadesSet(annotations: string, videos: string, limit?: number): DataSet {
  const all = readGroundingAnnotations(annotations).slice(0, limit);
  const file = (id: string) => (path.extname(id) ? path.resolve(videos, id) : path.join(videos, `${id}.mp4`));
  const missing = all.find((a) => !fs.existsSync(file(a.video)));
  if (missing) throw new Error(`${annotations} ${missing.origin}: no video ${file(missing.video)}`);
  return { name: `${path.basename(annotations)} (${all.length} queries)`, grounding: all.map((a) => ({ video: file(a.video), query: a.query, truth: { start: a.start, end: a.end } })), dense: [] };
}

interface ModeScore {
  model: string;
  set: string;
  mode: "constrained" | "free";
  grounding: GroundingMetrics & { parsed: number };
  dense?: { f1: number; f1Text: number; precision: number; recall: number; parsed: number; n: number };
  secondsPerQuery: number;
}

const sameText = (a: string, b: string) => a.trim().toLowerCase().replace(/\.$/, "") === b.trim().toLowerCase().replace(/\.$/, "");

async function score(model: VideoModel, name: string, set: DataSet, mode: "constrained" | "free"): Promise<ModeScore> {
  const generation = { constrained: mode === "constrained", ...(values["max-new-tokens"] ? { maxNewTokens: Number(values["max-new-tokens"]) } : {}) };
  const t0 = performance.now();
  const pairs: { predicted: Event | undefined; truth: { start: number; end: number } }[] = [];
  let parsed = 0;
  for (const [i, item] of set.grounding.entries()) {
    const r = await model.ground(item.video, item.query, generation);
    pairs.push({ predicted: r.events[0], truth: item.truth });
    if (r.parsed) parsed++;
    process.stderr.write(`\r${name} ${mode}: grounding ${i + 1}/${set.grounding.length}   `);
  }
  const videos: { predicted: Event[]; truth: Event[] }[] = [];
  let denseParsed = 0;
  for (const [i, item] of set.dense.entries()) {
    const r = await model.events(item.video, generation);
    videos.push({ predicted: r.events, truth: item.truth });
    if (r.parsed) denseParsed++;
    process.stderr.write(`\r${name} ${mode}: dense ${i + 1}/${set.dense.length}        `);
  }
  process.stderr.write("\n");
  const calls = set.grounding.length + set.dense.length;
  const times = denseCaptionF1Micro(videos, 0.5);
  const withText = denseCaptionF1Micro(videos, 0.5, sameText);
  return {
    model: name,
    set: set.name,
    mode,
    grounding: { ...groundingMetrics(pairs), parsed: set.grounding.length ? parsed / set.grounding.length : 0 },
    ...(set.dense.length ? { dense: { f1: times.f1, f1Text: withText.f1, precision: times.precision, recall: times.recall, parsed: denseParsed / set.dense.length, n: set.dense.length } } : {}),
    secondsPerQuery: (performance.now() - t0) / 1000 / Math.max(1, calls),
  };
}

const pct = (x: number) => (x * 100).toFixed(1);

function table(rows: ModeScore[]): string {
  const lines = [
    `\n${rows[0].model} — ${rows[0].set}`,
    "| mode | n | R1@0.3 | R1@0.5 | R1@0.7 | mIoU | parsed | dense F1@0.5 | dense F1@0.5 + text | dense P / R | dense parsed | dense n | s / call |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
  ];
  for (const r of rows) {
    const g = r.grounding;
    const d = r.dense;
    lines.push(
      `| ${r.mode} | ${g.n} | ${pct(g.r1["0.3"])} | ${pct(g.r1["0.5"])} | ${pct(g.r1["0.7"])} | ${g.mIoU.toFixed(3)} | ${pct(g.parsed)} | ${d ? d.f1.toFixed(3) : "–"} | ${d ? d.f1Text.toFixed(3) : "–"} | ${d ? `${d.precision.toFixed(2)} / ${d.recall.toFixed(2)}` : "–"} | ${d ? pct(d.parsed) : "–"} | ${d?.n ?? "–"} | ${r.secondsPerQuery.toFixed(2)} |`,
    );
  }
  return lines.join("\n") + "\n";
}

const set = values.charades
  ? (() => {
      if (!values.videos) throw new Error("--charades needs --videos DIR (the folder of the annotation file's videos)");
      return charadesSet(values.charades, values.videos, values.limit ? Number(values.limit) : undefined);
    })()
  : await syntheticSet(Number(values.seed), Number(values.n));
const models = values.model?.length ? values.model : [DEFAULT_MODEL_DIR];
for (const spec of models) {
  const dir = spec === DEFAULT_MODEL_DIR ? spec : await resolveModel(spec, {});
  const model = await VideoModel.load(dir, { ...(values.threads ? { threads: Number(values.threads) } : {}) });
  const name = path.basename(dir);
  // A model that declares no format for either task runs free only (constrained would be the same run).
  const declares = [...(["grounding", "dense"] as const)].some((task) => eventPromptFor(model.preparer.family, dir, { task, query: "x" }).responseFormat !== undefined);
  const modes = (values.modes.split(",") as ("constrained" | "free")[]).filter((m) => m === "free" || declares);
  const rows: ModeScore[] = [];
  for (const mode of modes) {
    const r = await score(model, name, set, mode);
    rows.push(r);
    if (values.json) process.stdout.write(JSON.stringify(r) + "\n");
  }
  process.stdout.write(table(rows));
  if (checkpointEventPrompts(dir)) process.stdout.write(`(prompts: ${dir}/video_preprocessor_config.json videolm_events)\n`);
  await model.dispose();
}
