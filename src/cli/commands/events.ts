/**
 * `videolm events VIDEO` (dense captions: every event with its times) and `videolm ground VIDEO "QUERY"` (the span(s)
 * where the query happens): the model's answer as events, printed as a table on a terminal and as JSON on a pipe, or
 * as SRT / WebVTT / CSV (`--format`, `-o FILE`). Model, media and generation flags are `videolm run`'s.
 *
 * Exit codes: 0 with events; 3 when the answer held no span the parser could read (the model's text is printed, and
 * a warning on stderr: nothing is invented); 1 on errors; 130 when interrupted.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { VideoModel, type GenerateResponse } from "../../engine/model.js";
import { RequestPreparer } from "../../engine/preparer.js";
import type { MediaOptions } from "../../engine/request.js";
import { VideolmError } from "../../errors.js";
import { eventsTable, formatEvents } from "../../events/format.js";
import type { EventsOptions, EventsResponse } from "../../events/run.js";
import type { EventsResult, EventsTask } from "../../events/types.js";
import type { RemoteGenerateResponse } from "../../remote/remote-model.js";
import { delayedProgress, stderrProgress } from "../../util/progress.js";
import { COMMON_FLAGS, GENERATION_FLAGS, MEDIA_FLAGS, MODEL_FLAGS, PIPELINE_FLAGS, generationFlags, numberFlag, parseFlags, pipelineFlags, precisionFlag, type Flags } from "../args.js";
import { BACKEND_FLAGS, BACKEND_HELP, checkBackendFlags, connectFromFlags } from "../backend.js";
import { mediaFlags, modelFromFlags } from "./run.js";

/** Exit code when the model's answer held no event (its text is printed instead). */
export const NO_EVENTS_EXIT_CODE = 3;

export const OUTPUT_FORMATS = ["table", "json", "srt", "vtt", "csv"] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

const EVENTS_FLAGS = {
  format: { type: "string", short: "f" },
  output: { type: "string", short: "o" },
  constrained: { type: "boolean" },
  "no-constrained": { type: "boolean" },
} as const;

const COMMON_HELP = `Output:
  -f, --format table|json|srt|vtt|csv   default: a table on a terminal, JSON on a pipe or with --json; with -o, from
                             the file's extension (.srt, .vtt, .csv, .json)
  -o, --output FILE          write the events to FILE (a table is still shown on a terminal)
  --json                     the same as --format json: {task, query, events: [{start, end, text}], raw, duration,
                             parsed, warnings, prompt, constrained, …}
  -q, --quiet                no progress on stderr
Decoding:
  --constrained | --no-constrained  hold the answer to the output format the checkpoint or family declares (a JSON
                             schema for Qwen2.5-VL dense captions, JSON for Qwen3-VL, the demo model's own pattern);
                             default: on when one is declared
Model, media and generation flags are those of videolm run (see videolm run --help): --model, --dtype, --fps,
--max-frames, --start, --end, --max-new-tokens, --temperature, …

Times are seconds from the start of the clip the model saw (--start), clamped to its length. When the answer holds no
span the parser can read, the model's text is printed with a warning and the exit code is ${NO_EVENTS_EXIT_CODE}.

${BACKEND_HELP}
  On a videolm backend --model is optional: without it the backend's POST /v1/events plans, prompts and parses.`;

export const EVENTS_HELP = `Usage: videolm events VIDEO [options]

Lists what happens in the video, with times: the model's dense captions as events {start, end, text}, asked with
the prompt its family was trained or documented with (or the checkpoint's own, e.g. the demo model's "list the
events."), read by a tolerant parser.

${COMMON_HELP}`;

export const GROUND_HELP = `Usage: videolm ground VIDEO "QUERY" [options]

Finds when QUERY happens in the video (temporal grounding): the span(s) as events {start, end, text = QUERY}, asked
with the prompt the model's family was trained or documented with (the demo model: "when is the red circle
visible?").

${COMMON_HELP}`;

/** The output format: --format, else --json, else the -o file's extension, else table on a terminal / json on a pipe. */
export function outputFormat(flags: Flags, stdoutIsTTY: boolean): OutputFormat {
  const given = flags.format as string | undefined;
  if (given !== undefined) {
    if (!OUTPUT_FORMATS.includes(given as OutputFormat)) throw new VideolmError(`--format must be one of ${OUTPUT_FORMATS.join(", ")} (got ${JSON.stringify(given)})`);
    if (flags.json && given !== "json") throw new VideolmError(`--json and --format ${given} contradict each other: give one`);
    return given as OutputFormat;
  }
  if (flags.json) return "json";
  const out = flags.output as string | undefined;
  if (out !== undefined) {
    const ext = path.extname(out).slice(1).toLowerCase();
    if ((OUTPUT_FORMATS as readonly string[]).includes(ext) && ext !== "table") return ext as OutputFormat;
    throw new VideolmError(`-o ${out}: cannot tell the format from the extension; give --format ${OUTPUT_FORMATS.join("|")}`);
  }
  return stdoutIsTTY ? "table" : "json";
}

/** A result the command prints: a local model's EventsResponse, or a backend's (RemoteEventsResponse: some fields optional). */
type PrintedEvents = EventsResult & Partial<Omit<EventsResponse, keyof EventsResult | "response">> & { response: GenerateResponse & Partial<Pick<RemoteGenerateResponse, "remote">> };

/** The JSON the command prints: the result without the token ids (timings and counts kept). */
export function eventsJson(r: PrintedEvents, loadMs?: number): Record<string, unknown> {
  const round = (x: number) => Math.round(x * 10) / 10;
  const { response, ...rest } = r;
  return {
    ...rest,
    finishReason: response.finishReason,
    promptTokens: response.promptTokens,
    generatedTokens: generatedTokens(response),
    ...(response.remote ? { backend: { host: response.remote.backend, kind: response.remote.kind, model: response.remote.model } } : {}),
    ...(response.reasoning !== undefined ? { reasoning: response.reasoning } : {}),
    timings: { ...(loadMs !== undefined ? { loadMs: round(loadMs) } : {}), ...Object.fromEntries(Object.entries(response.timings).map(([k, v]) => [k, round(v)])) },
  };
}

/** The events in `format` (table: eventsTable at the terminal's width). */
export function renderEvents(r: PrintedEvents, format: OutputFormat, width?: number): string {
  switch (format) {
    case "json":
      return JSON.stringify(eventsJson(r)) + "\n";
    case "table":
      return eventsTable(r.events, width !== undefined ? { width } : {});
    default:
      return formatEvents(r.events, format);
  }
}

export function eventsCommand(argv: string[]): Promise<number> {
  return eventsOrGround("dense", argv);
}

export function groundCommand(argv: string[]): Promise<number> {
  return eventsOrGround("grounding", argv);
}

async function eventsOrGround(task: EventsTask, argv: string[]): Promise<number> {
  const name = task === "dense" ? "events" : "ground";
  const { flags, positionals } = parseFlags(argv, { ...MODEL_FLAGS, ...PIPELINE_FLAGS, ...GENERATION_FLAGS, ...MEDIA_FLAGS, ...COMMON_FLAGS, ...EVENTS_FLAGS, ...BACKEND_FLAGS }, name);
  if (flags.help) {
    process.stdout.write((task === "dense" ? EVENTS_HELP : GROUND_HELP) + "\n");
    return 0;
  }
  if (flags.image) throw new VideolmError(`${name}: takes a video, not images (--image)`);
  const videos = [...((flags.video as string[] | undefined) ?? [])];
  const args = [...positionals];
  if (videos.length === 0 && args.length > 0) videos.push(args.shift()!);
  const usage = task === "dense" ? 'videolm events clip.mp4' : 'videolm ground clip.mp4 "the red circle is visible"';
  if (videos.length !== 1) throw new VideolmError(`${name}: give one video, e.g. ${usage}`);
  const query = task === "grounding" ? args.shift() : undefined;
  if (task === "grounding" && !query?.trim()) throw new VideolmError(`ground: give the query as one quoted argument, e.g. ${usage}`);
  if (args.length > 0) throw new VideolmError(`${name}: unexpected argument ${JSON.stringify(args[0])}${task === "grounding" ? " (quote the query as one argument)" : ""}; e.g. ${usage}`);
  if (flags.constrained && flags["no-constrained"]) throw new VideolmError("--constrained and --no-constrained contradict each other: give one");
  if (flags.logprobs !== undefined) throw new VideolmError(`${name}: --logprobs is for videolm run`);
  checkBackendFlags(flags);

  const format = outputFormat(flags, Boolean(process.stdout.isTTY));
  const quiet = Boolean(flags.quiet);
  const generation = generationFlags(flags);
  const media: MediaOptions = mediaFlags(flags);
  const model = flags.backend !== undefined ? await backendModel(flags, quiet) : await localModel(flags, quiet);
  const abort = new AbortController();
  const onSigint = () => abort.abort();
  process.once("SIGINT", onSigint);
  try {
    const result = await runTask(model, task, videos[0], query, {
      ...generation,
      media,
      ...(flags.constrained ? { constrained: true } : flags["no-constrained"] ? { constrained: false } : {}),
      signal: abort.signal,
      onProgress: quiet ? undefined : delayedProgress(stderrProgress()),
    });
    if (result.response.finishReason === "aborted") return 130;
    const output = flags.output as string | undefined;
    const width = process.stdout.columns;
    if (output !== undefined) {
      const text = format === "json" ? JSON.stringify(eventsJson(result, model.loadMs), null, 2) + "\n" : renderEvents(result, format);
      fs.writeFileSync(output, text);
      if (process.stdout.isTTY && result.parsed) process.stdout.write(renderEvents(result, "table", width));
    } else {
      process.stdout.write(format === "json" ? JSON.stringify(eventsJson(result, model.loadMs)) + "\n" : result.parsed || format !== "table" ? renderEvents(result, format, width) : "");
    }
    if (!result.parsed) {
      // Nothing invented: say so, and show what the model said.
      if (format !== "json") process.stdout.write(`${result.raw}\n`);
      process.stderr.write(`videolm: warning: no event could be read from the model's answer${result.warnings.length ? ` (${result.warnings.join("; ")})` : ""}\n`);
    } else if (!quiet) {
      for (const w of result.warnings) process.stderr.write(`videolm: note: ${w}\n`);
    }
    if (!quiet) {
      const t = result.response.timings;
      process.stderr.write(
        `[${result.events.length} event${result.events.length === 1 ? "" : "s"} in ${Math.round(result.duration * 10) / 10} s of video${output ? ` → ${output}` : ""}; ` +
          `${result.response.promptTokens} prompt tokens, ${generatedTokens(result.response)} generated${result.response.remote ? ` on ${result.response.remote.backend}` : ""}${result.constrained && result.responseFormat ? ` (constrained: ${result.responseFormat.type})` : ""}; ` +
          `vision ${Math.round(t.visionMs)} ms, prefill ${Math.round(t.prefillMs)} ms, ${t.decodeTokensPerSecond.toFixed(1)} tokens/s]\n`,
      );
    }
    return result.parsed ? 0 : NO_EVENTS_EXIT_CODE;
  } finally {
    process.off("SIGINT", onSigint);
    await model.dispose();
  }
}

/** The model the command runs on: weights loaded here, or a backend (--backend) that generates. */
interface EventsRunner {
  loadMs?: number;
  events(video: string, options: EventsOptions): Promise<PrintedEvents>;
  ground(video: string, query: string, options: EventsOptions): Promise<PrintedEvents>;
  dispose(): Promise<void>;
}

async function localModel(flags: Flags, quiet: boolean): Promise<EventsRunner> {
  return VideoModel.load(await modelFromFlags(flags), {
    dtype: precisionFlag(flags),
    threads: numberFlag(flags, "threads", { integer: true }),
    ...pipelineFlags(flags),
    cacheDir: flags["cache-dir"] as string | undefined,
    onProgress: quiet ? undefined : stderrProgress(),
  });
}

/** --backend: --model (optional on a videolm backend) plans and parses here; the backend generates. */
async function backendModel(flags: Flags, quiet: boolean): Promise<EventsRunner> {
  const planner = flags.model !== undefined ? await RequestPreparer.load(await modelFromFlags(flags)) : undefined;
  const remote = await connectFromFlags(flags, planner, quiet);
  if (!quiet) process.stderr.write(`videolm: generating on backend ${remote.backend} (${remote.kind}, model ${remote.remoteModel})\n`);
  return remote;
}

/** Generated tokens: a backend's count (its token ids are not sent), else the local ids. */
function generatedTokens(response: PrintedEvents["response"]): number {
  return response.remote ? response.remote.completionTokens : response.tokens.length;
}

function runTask(model: EventsRunner, task: EventsTask, video: string, query: string | undefined, options: EventsOptions): Promise<PrintedEvents> {
  return task === "dense" ? model.events(video, options) : model.ground(video, query!, options);
}
