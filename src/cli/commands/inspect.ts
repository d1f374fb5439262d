/**
 * `videolm inspect`: the plan for a request without running the model — sampled frames and their times, resized
 * size, grid and tokens per video/image, prompt tokens, the limits that shaped it, whether it fits the model's
 * context, and its estimated memory and time on this machine. From headers alone: no frame is decoded, so a
 * two-hour video plans as fast as a short one.
 */
import { RequestPreparer } from "../../engine/preparer.js";
import type { VisualPlan } from "../../engine/request.js";
import { costJson, decoderMemoryText, formatBytes, formatSeconds, planCost } from "../../engine/plan-cost.js";
import { COMMON_FLAGS, GENERATION_FLAGS, MEDIA_FLAGS, MODEL_FLAGS, generationFlags, numberFlag, parseFlags, precisionFlag } from "../args.js";
import { buildUserContent, mediaFlags, modelFromFlags, stdinQuestion } from "./run.js";
import { previewVisualSelection, type RoutePreview } from "../../engine/route-preview.js";
import { selectsVisualRows } from "../../families/family.js";
import { evsKeptTokens } from "../../engine/evs.js";
import { stderrProgress } from "../../util/progress.js";
import { describePolicyPlan } from "../../sampling/policy.js";
import type { SeedSamplingPlan } from "../../sampling/seed-1-5.js";

export const INSPECT_HELP = `Usage: videolm inspect --model DIR [--video FILE|URL]... [--image FILE]... [media options] ["question" | -]

Shows what videolm run would feed the model, without running it and without decoding any frame: for each video
the sampled frame indices and times, the resized frame size, the grid (t, h, w) and the visual tokens; the total
prompt tokens, the limits that shaped the plan (max_frames, total_pixels, …; without frame/pixel options the
defaults fit the model's context by themselves), whether it fits the model's context (with what to change when
it does not), and the estimated memory and time on this machine at --dtype (rates measured by videolm bench,
else conservative defaults), with the setting that brings a slow request under a minute.
Takes the media and generation flags of videolm run (see videolm run --help), --max-input-pixels N included (media
larger than N pixels per image or frame is refused from its header); --json prints one JSON object.
Checkpoints whose visual tokens the vision encoder decides (InternVL3.5-Flash: 64 or 256 tokens per frame, chosen by
its resolution router) plan every frame at 256; --route decodes the frames and runs the vision encoder (not the
language model) to show which frames get 64 and the tokens saved (--flash-relative / --flash-absolute / --no-flash
as for run). With --prune RATE (EVS token pruning, as for run) each video shows the tokens it keeps; --route shows
the tokens kept per frame pair. With --policy seed1.5 each video shows the policy's choice: its frame rate, the
resolution level (tokens per frame) within the 81,920-token budget, whether it subsampled, the size and tokens
Seed1.5-VL itself would get, and the "[t second]" text before each frame.`;

interface VisualJson {
  kind: "image" | "video";
  source: string;
  size: [number, number];
  grid: [number, number, number];
  tokens: number;
  frameIndices?: number[];
  timestamps?: number[];
  sampleFps?: number;
  limits?: string[];
  /** EVS pruning: the rate and the tokens kept (known before the vision pass; which ones is decided by it). */
  prune?: { rate: number; keptTokens: number };
  /** A named sampling policy's choice (--policy seed1.5): level, budget, and what Seed1.5-VL itself would get. */
  policy?: PolicyJson;
}

interface PolicyJson {
  name: string;
  task?: string;
  samplingFps: number;
  wantedFrames: number;
  frames: number;
  levelTokens: number;
  budgetTokens: number;
  maxVideoTokens: number;
  subsampled: boolean;
  /** Seed1.5-VL's own frame size [height, width] and its tokens (all frames). */
  seedSize: [number, number];
  seedTokens: number;
  /** The `[t second]` text before each frame. */
  texts: string[];
}

function describePolicy(p: SeedSamplingPlan): PolicyJson {
  return {
    name: p.policy,
    ...(p.task !== undefined ? { task: p.task } : {}),
    samplingFps: p.samplingFps,
    wantedFrames: p.wantedFrames,
    frames: p.frameIndices.length,
    levelTokens: p.levelTokens,
    budgetTokens: p.budgetTokens,
    maxVideoTokens: p.maxVideoTokens,
    subsampled: p.subsampled,
    seedSize: [p.height, p.width],
    seedTokens: p.tokens,
    texts: p.frames.map((f) => f.text),
  };
}

function describeVisual(v: VisualPlan): VisualJson {
  return {
    kind: v.kind,
    source: v.source,
    size: v.size,
    grid: v.grid,
    tokens: v.tokens,
    ...(v.kind === "video" ? { frameIndices: v.frameIndices, timestamps: v.timestamps?.map((t) => Math.round(t * 1000) / 1000), sampleFps: v.sampleFps } : {}),
    ...(v.limits?.length ? { limits: v.limits.map((l) => l.note) } : {}),
    ...(v.prune ? { prune: { rate: v.prune, keptTokens: evsKeptTokens(v)! } } : {}),
    ...(v.policy ? { policy: describePolicy(v.policy) } : {}),
  };
}

export async function inspectCommand(argv: string[]): Promise<number> {
  const { flags, positionals } = parseFlags(argv, { ...MODEL_FLAGS, ...GENERATION_FLAGS, ...MEDIA_FLAGS, ...COMMON_FLAGS, route: { type: "boolean" } }, "inspect");
  if (flags.help) {
    process.stdout.write(INSPECT_HELP + "\n");
    return 0;
  }
  // The question may come from stdin in place of "-" (`echo "what?" | videolm inspect clip.mp4 -`); never implicitly:
  // the question is optional here, so a pipe left open must not make inspect wait for it.
  const fromStdin = await stdinQuestion(positionals, { implicit: false, quiet: Boolean(flags.quiet) });
  const { question, content } = buildUserContent(flags, fromStdin.positionals, { questionRequired: false, question: fromStdin.question });
  const preparer = await RequestPreparer.load(await modelFromFlags(flags));
  const explicit = generationFlags(flags);
  preparer.resolveOptions(explicit); // validates the generation flags
  const media = mediaFlags(flags);
  const plan = await preparer.plan([{ role: "user", content }], media, { maxNewTokens: explicit.maxNewTokens });
  const dtype = precisionFlag(flags);
  const routed = selectsVisualRows(preparer.processor, plan.visuals);
  const route =
    flags.route && routed
      ? await previewVisualSelection(preparer, plan, media, {
          dtype,
          cacheDir: flags["cache-dir"] as string | undefined,
          threads: numberFlag(flags, "threads", { integer: true }),
          onProgress: flags.quiet || flags.json ? undefined : stderrProgress(),
        })
      : undefined;
  const cost = planCost(preparer, plan, { dtype, cacheRoot: flags["cache-dir"] as string | undefined });
  const promptTokens = plan.inputIds.length;
  const visuals = plan.visuals.map(describeVisual);
  const policyPlans = plan.visuals.map((v) => v.policy);
  const e = cost.estimate;

  if (flags.json) {
    const out = {
      model: preparer.dir,
      family: preparer.family.name,
      videos: visuals.filter((v) => v.kind === "video"),
      images: visuals.filter((v) => v.kind === "image"),
      promptTokens,
      ...(question !== undefined ? { promptIds: plan.inputIds } : {}),
      maxNewTokens: plan.maxNewTokens,
      contextLength: plan.contextLength,
      fits: plan.fits,
      ...(plan.advice ? { advice: plan.advice } : {}),
      limits: plan.limits.map((l) => ({ name: l.name, value: l.value, source: l.source, note: l.note })),
      ...(routed ? { visualTokensDecidedByModel: true } : {}),
      ...(route ? { route: { ...route.report, plannedPromptTokens: route.plannedPromptTokens, promptTokens: route.promptTokens, visionMs: Math.round(route.visionMs) } } : {}),
      estimatedMemoryBytes: Math.round(e.memoryBytes),
      estimatedSeconds: Math.round(e.seconds.total * 100) / 100,
      cost: costJson(cost),
      planMs: Math.round(plan.planMs * 10) / 10,
    };
    process.stdout.write(JSON.stringify(out) + "\n");
    return 0;
  }
  const lines: string[] = [`model: ${preparer.dir} (${preparer.family.name})`];
  visuals.forEach((v, i) => {
    lines.push(`${v.kind} ${i + 1}: ${v.source}`);
    if (v.kind === "video") {
      const times = v.timestamps ?? [];
      lines.push(`  ${times.length} frames sampled at ${v.sampleFps?.toFixed(3)} fps: indices ${(v.frameIndices ?? []).join(", ")}`);
      lines.push(`  times (s): ${times.map((t) => t.toFixed(2)).join(", ")}`);
    }
    lines.push(`  resized to ${v.size[1]}×${v.size[0]} px, grid (t, h, w) = (${v.grid.join(", ")}), ${v.tokens} tokens`);
    if (policyPlans[i]) {
      lines.push(`  policy ${describePolicyPlan(policyPlans[i]!)}`);
      lines.push(`  policy frame texts: ${policyPlans[i]!.frames.map((f) => f.text).join(" ")}`);
    }
    for (const l of v.limits ?? []) lines.push(`  limit: ${l}`);
    if (v.prune) {
      lines.push(`  EVS pruning at rate ${v.prune.rate}: keeps ${v.prune.keptTokens} of its ${v.tokens} tokens (the first frame pair whole, then the tokens that changed most; which ones is decided after the vision pass, --route shows them)`);
    }
  });
  lines.push(`prompt: ${promptTokens} tokens (+ up to ${plan.maxNewTokens} new) of a ${plan.contextLength}-token context: ${plan.fits ? "fits" : "does NOT fit"}`);
  const pruned = visuals.reduce((n, v) => n + (v.prune ? v.tokens - v.prune.keptTokens : 0), 0);
  if (pruned > 0) lines.push(`  with EVS pruning: ${promptTokens - pruned} tokens reach the language model (${pruned} video tokens fewer)`);
  if (route) lines.push(...routeLines(route, plan.visuals));
  else if (routed && !flags.route) lines.push("  visual tokens are decided by the model's vision encoder when it runs (fewer, never more); --route shows the decisions now");
  if (plan.advice) lines.push(`  ${plan.advice}`);
  for (const l of plan.limits.filter((l) => l.source === "fit" || l.source === "server")) lines.push(`  ${l.note}`);
  const rates = e.rates.source === "measured" ? `rates measured by videolm bench${e.rates.measuredAt ? ` on ${e.rates.measuredAt.slice(0, 10)}` : ""}` : "built-in default rates; run videolm bench to measure this machine";
  lines.push(
    `estimated at ${dtype}: ${formatSeconds(e.seconds.firstToken)} to the first token (vision ${formatSeconds(e.seconds.vision)}, prefill ${formatSeconds(e.seconds.prefill)}), ` +
      `up to ${formatSeconds(e.seconds.total)} with ${plan.maxNewTokens} new tokens; ${rates}`,
  );
  lines.push(
    `estimated memory: ${formatBytes(e.memoryBytes)} at the peak (weights ${formatBytes(e.memory.weightsBytes)} + visual embeddings + the larger of vision encoding ${formatBytes(e.memory.visionBytes)} and ${decoderMemoryText(e)}, which do not overlap); ${formatBytes(cost.availableMemoryBytes)} available`,
  );
  if (cost.slow) lines.push(`  slow: the first token takes minutes${cost.suggestion ? `; to get it within ${cost.targetSeconds} s: ${cost.suggestion}` : ""}`);
  if (cost.memoryAdvice) lines.push(`  does NOT fit in memory: ${cost.memoryAdvice}`);
  process.stdout.write(lines.join("\n") + "\n");
  return 0;
}

/** What the vision encoder decided (`--route`): per visual which tiles/frames were reduced, and the tokens saved. */
function routeLines(route: RoutePreview, visuals: readonly VisualPlan[]): string[] {
  const r = route.report;
  const params = Object.entries(r.parameters)
    .map(([k, v]) => `${k} ${Number(v.toPrecision(4))}`)
    .join(", ");
  const lines = [`${r.method} (${params}), vision encoder ${formatSeconds(route.visionMs / 1000)}:`];
  visuals.forEach((v, i) => {
    const units = r.units.filter((u) => u.visual === i);
    if (units.length === 0) return;
    const what = v.kind === "video" ? "frames" : "tiles";
    const reduced = units.filter((u) => u.reduced);
    // A unit may be a temporal patch of several frames (EVS on Qwen: frame pairs): it is named by its first frame's time.
    const framesPerUnit = v.timestamps && v.timestamps.length % units.length === 0 ? v.timestamps.length / units.length : 1;
    const time = (u: (typeof units)[number]) => v.timestamps?.[u.index * framesPerUnit];
    const list = (us: typeof units) => us.map((u) => `${u.index + 1}${v.kind === "video" && time(u) !== undefined ? ` (${time(u)!.toFixed(2)} s)` : ""}`).join(", ") || "none";
    // Two token counts (Flash: 64 or 256 per tile) read as two lists; any other selection (DiffFP, EVS) per unit.
    const twoCounts = r.scoreName === undefined && new Set(reduced.map((u) => u.tokens)).size <= 1 && new Set(units.filter((u) => !u.reduced).map((u) => u.tokens)).size <= 1;
    if (twoCounts) lines.push(`  ${v.kind} ${i + 1}: ${what} at ${reduced[0]?.tokens ?? 64} tokens: ${list(reduced)}; at ${units.find((u) => !u.reduced)?.tokens ?? 256}: ${list(units.filter((u) => !u.reduced))}`);
    else lines.push(`  ${v.kind} ${i + 1}: tokens per ${framesPerUnit === 2 ? "frame pair" : what.slice(0, -1)}: ${units.map((u) => `${list([u])}: ${u.tokens}`).join(", ")}; ${reduced.length} of ${units.length} reduced`);
    lines.push(`    scores (${r.scoreName ?? "p0"}): ${units.map((u) => u.score.toFixed(3)).join(", ")}`);
  });
  const saved = route.plannedPromptTokens - route.promptTokens;
  lines.push(`  prompt: ${route.plannedPromptTokens} → ${route.promptTokens} tokens (${saved} fewer, ${((100 * saved) / route.plannedPromptTokens).toFixed(1)}%)`);
  return lines;
}
