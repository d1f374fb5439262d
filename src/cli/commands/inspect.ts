/**
 * `videolm inspect`: the plan for a request without running the model — sampled frames and their times, resized
 * size, grid and tokens per video/image, prompt tokens, estimated memory, and whether it fits the context.
 */
import { delayedProgress, stderrProgress } from "../../util/progress.js";
import { RequestPreparer, type PreparedRequest } from "../../engine/preparer.js";
import type { PreparedVisual } from "../../engine/request.js";
import { COMMON_FLAGS, GENERATION_FLAGS, MEDIA_FLAGS, MODEL_FLAGS, generationFlags, parseFlags } from "../args.js";
import { buildUserContent, mediaFlags, modelFromFlags } from "./run.js";
import type { FamilyConfig } from "../../families/family.js";

export const INSPECT_HELP = `Usage: videolm inspect --model DIR [--video FILE|URL]... [--image FILE]... [media options] ["question"]

Shows what videolm run would feed the model, without running it: for each video the sampled frame indices and
times, the resized frame size, the grid (t, h, w) and the visual tokens; the total prompt tokens, an estimate of
the memory the request needs, and whether it fits the model's context (with what to change when it does not).
Takes the media and generation flags of videolm run (see videolm run --help), --max-input-pixels N included (media
larger than N pixels per image or frame is refused from its header); --json prints one JSON object.`;

interface VisualPlan {
  kind: "image" | "video";
  source: string;
  size: [number, number];
  grid: [number, number, number];
  tokens: number;
  frameIndices?: number[];
  timestamps?: number[];
  sampleFps?: number;
}

function describeVisual(v: PreparedVisual): VisualPlan {
  return {
    kind: v.kind,
    source: v.source,
    size: v.size,
    grid: v.batch.grid,
    tokens: v.tokens,
    ...(v.kind === "video" ? { frameIndices: v.frameIndices, timestamps: v.timestamps?.map((t) => Math.round(t * 1000) / 1000), sampleFps: v.sampleFps } : {}),
  };
}

/**
 * Rough peak memory of running the request in fp32 activations: the KV cache for prompt + new tokens, the pixel
 * values of the largest visual, and its per-frame attention scores in the vision tower (t · heads · (h·w)² floats).
 * Weights are not included (they depend on --dtype; see the converted cache folder's size).
 */
export function estimateRequestBytes(prepared: PreparedRequest, config: FamilyConfig, maxNewTokens: number): number {
  const tokens = prepared.inputIds.length + maxNewTokens;
  const kv = 2 * config.text.numLayers * config.text.numKvHeads * config.text.headDim * tokens * 4;
  let vision = 0;
  for (const v of prepared.visuals) {
    const [t, h, w] = v.batch.grid;
    vision = Math.max(vision, v.batch.pixelValues.byteLength + t * config.vision.numHeads * (h * w) ** 2 * 4);
  }
  return kv + vision;
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

export async function inspectCommand(argv: string[]): Promise<number> {
  const { flags, positionals } = parseFlags(argv, { ...MODEL_FLAGS, ...GENERATION_FLAGS, ...MEDIA_FLAGS, ...COMMON_FLAGS }, "inspect");
  if (flags.help) {
    process.stdout.write(INSPECT_HELP + "\n");
    return 0;
  }
  const { question, content } = buildUserContent(flags, positionals, { questionRequired: false });
  const preparer = await RequestPreparer.load(await modelFromFlags(flags));
  const options = preparer.resolveOptions(generationFlags(flags));
  const prepared = await preparer.prepare([{ role: "user", content }], mediaFlags(flags), undefined, flags.quiet ? undefined : delayedProgress(stderrProgress()));
  const promptTokens = prepared.inputIds.length;
  const fits = promptTokens + options.maxNewTokens <= preparer.contextLength;
  const visuals = prepared.visuals.map(describeVisual);
  const memory = estimateRequestBytes(prepared, preparer.config, options.maxNewTokens);
  const advice = fits
    ? undefined
    : `needs ${promptTokens + options.maxNewTokens} tokens (${promptTokens} prompt + ${options.maxNewTokens} new) but the context is ${preparer.contextLength}: lower --fps / --max-frames, --max-pixels / --total-pixels, or --max-new-tokens`;

  if (flags.json) {
    const out = {
      model: preparer.dir,
      family: preparer.family.name,
      videos: visuals.filter((v) => v.kind === "video"),
      images: visuals.filter((v) => v.kind === "image"),
      promptTokens,
      ...(question !== undefined ? { promptIds: prepared.inputIds } : {}),
      maxNewTokens: options.maxNewTokens,
      contextLength: preparer.contextLength,
      fits,
      ...(advice ? { advice } : {}),
      estimatedMemoryBytes: memory,
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
  });
  lines.push(`prompt: ${promptTokens} tokens (+ up to ${options.maxNewTokens} new) of a ${preparer.contextLength}-token context: ${fits ? "fits" : "does NOT fit"}`);
  if (advice) lines.push(`  ${advice}`);
  lines.push(`estimated memory beyond the weights: ${mib(memory)}`);
  process.stdout.write(lines.join("\n") + "\n");
  return 0;
}
