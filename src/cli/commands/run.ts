/**
 * `videolm run`: ask a question about images / a video and stream the answer to the terminal
 * (or print one JSON object with --json).
 */
import * as path from "node:path";
import { VideoModel } from "../../engine/model.js";
import { DEFAULT_MODEL_DIR, defaultModelAvailable } from "../../hub/default-model.js";
import { resolveModel } from "../../hub/resolve-model.js";
import { RequestPreparer } from "../../engine/preparer.js";
import { planCost } from "../../engine/plan-cost.js";
import type { ChatRequestMessage, ContentPart, MediaOptions } from "../../engine/request.js";
import { VideolmError } from "../../errors.js";
import { delayedProgress, stderrProgress } from "../../util/progress.js";
import { timeFlag } from "../time.js";
import { checkPixelBounds } from "../../sampling/qwen-vl-utils.js";
import { checkPolicyOptions } from "../../sampling/policy.js";
import { checkPruneRate } from "../../engine/evs.js";
import { formatLogprobTable, logprobEntries } from "../logprobs.js";
import { TokenInfo } from "../../text/token-info.js";
import { readQuestion, type QuestionInput } from "../stdin.js";
import { BACKEND_FLAGS, BACKEND_HELP, checkBackendFlags, runOnBackend } from "../backend.js";
import { responseFormatFlag } from "../response-format.js";
import { answerEvents } from "../../events/run.js";
import { eventsTable } from "../../events/format.js";
import { COMMON_FLAGS, GENERATION_FLAGS, MEDIA_FLAGS, MODEL_FLAGS, PIPELINE_FLAGS, generationFlags, numberFlag, parseFlags, pipelineFlags, precisionFlag, type Flags } from "../args.js";

export const RUN_HELP = `Usage: videolm run --model DIR [--video FILE] [--image FILE]... [options] "question"

Model:
  -m, --model DIR|REPO       Hugging Face checkpoint folder (config.json, *.safetensors, tokenizer.json, …) or repo id
                             (owner/name[@revision], from the Hugging Face cache or downloaded into it);
                             default: the built-in demo model (models/videolm-demo)
  --dtype fp32|fp16|int8|int4  weight precision of the converted graphs (default fp32; fp16 = float16
                             storage, float32 compute; int8/int4 = quantized decoder, int4 the
                             fastest, with an int8 vision tower; see docs/performance.md)
  --threads N                CPU threads (default: all cores)
  --pipeline | --no-pipeline encode video chunks on a thread of their own while prefill runs (same output; default:
                             on with 8+ cores); --vision-threads N: that thread's CPU threads (default --threads)
  --cache-dir DIR            conversion cache (default $VIDEOLM_CACHE or ~/.cache/videolm)
Media:
  --video FILE|URL           a video (repeat for several); --image FILE (repeatable)
  --fps F | --nframes N      frames to sample (default 2 fps)
  --min-frames N --max-frames N --min-pixels N --max-pixels N --total-pixels N
  --start T --end T          clip range; T in seconds (75.5), mm:ss (1:15.5) or hh:mm:ss (0:01:15.5)
  --frame-times presentation|reference  frame times: the frames' own (default) or index / average fps (qwen-vl-utils)
  --policy seed1.5           sample by Seed1.5-VL's dynamic frame-resolution rule instead (Qwen-VL families): 1 fps
                             (at least 16 frames), one resolution level of 640/512/384/256/160/128 tokens per frame
                             within 81,920 tokens, uniform subsampling beyond; --policy-task general|detail|motion|
                             counting sets 1/2/5/5 fps (or --fps F); inspect shows the level
  --prune RATE               EVS token pruning of every video: drop this fraction of its tokens, in [0, 1), those that
                             changed least from the previous frame (vLLM's rule; default 0: none, the reference's answer)
  --max-input-pixels N       refuse images and video frames larger than N pixels (width × height, read from the
                             header before decoding; default 50000000)
  --flash-relative Q --flash-absolute P  InternVL-Flash checkpoints: the resolution router's quantile Q and floor P,
                             each in [0, 1] (default: the checkpoint's config.json); --no-flash: 256 tokens per frame
Generation:
  --max-new-tokens N  --temperature T (0 = greedy)  --top-k K  --top-p P  --repetition-penalty R
  --seed N  --stop STR (repeatable)
  --logprobs N               after the answer, each token's text and logprob with the N most likely alternatives
                             (0 = the token's own only); in --json, logprobs[] = {token, text, logprob, top}
  --response-format json|json_schema:FILE|regex:PATTERN  constrained decoding: only tokens that keep the answer valid
                             JSON / valid for the JSON Schema in FILE / matching PATTERN (the API's response_format)
  --events                   after the answer, the time spans it names as a table of events (start, end, text) of the
                             video's clip (in --json: events {events, parsed, warnings, duration}); see videolm events
Thinking checkpoints (a <think>…</think> block before the answer, e.g. Qwen3-VL-*-Thinking):
  --hide-thinking            show only the answer (the thinking is dimmed on a terminal, plain on a pipe)
  --thinking-budget N        at most N thinking tokens; then the block is closed ("\\n</think>\\n\\n") and the answer follows
Output:
  --json                     print one JSON object (text = the answer, reasoning, tokens, promptTokens, timings, …)
  -q, --quiet                no progress on stderr
  --debug                    show stack traces on errors
${BACKEND_HELP}`;

export function mediaFlags(flags: Flags): MediaOptions {
  const out: MediaOptions = {};
  const set = (k: Exclude<keyof MediaOptions, "frameTimes" | "flash" | "policy" | "policyTask">, name: string, integer = false) => {
    const v = numberFlag(flags, name, { integer });
    if (v !== undefined) out[k] = v;
  };
  set("fps", "fps");
  set("nframes", "nframes", true);
  set("minFrames", "min-frames", true);
  set("maxFrames", "max-frames", true);
  set("minPixels", "min-pixels", true);
  set("maxPixels", "max-pixels", true);
  set("totalPixels", "total-pixels", true);
  set("maxInputPixels", "max-input-pixels", true);
  set("prune", "prune");
  if (out.prune !== undefined) checkPruneRate(out.prune, "--prune");
  const start = timeFlag("start", flags.start);
  const end = timeFlag("end", flags.end);
  if (start !== undefined) out.start = start;
  if (end !== undefined) out.end = end;
  if (flags["frame-times"] !== undefined) {
    if (flags["frame-times"] !== "presentation" && flags["frame-times"] !== "reference") throw new VideolmError(`--frame-times must be presentation or reference, got ${JSON.stringify(flags["frame-times"])}`);
    out.frameTimes = flags["frame-times"];
  }
  const flash = flashFlags(flags);
  if (flash !== undefined) out.flash = flash;
  if (flags.policy !== undefined) out.policy = flags.policy as MediaOptions["policy"];
  if (flags["policy-task"] !== undefined) out.policyTask = flags["policy-task"] as MediaOptions["policyTask"];
  checkPolicyOptions(out); // a named sampling policy and the options it decides itself
  checkPixelBounds(out); // before any media is read; images have no other check naming the flags
  return out;
}

/** --flash-relative Q / --flash-absolute P (each in [0, 1]) or --no-flash: InternVL-Flash's resolution router. */
function flashFlags(flags: Flags): MediaOptions["flash"] {
  const relative = numberFlag(flags, "flash-relative", {});
  const absolute = numberFlag(flags, "flash-absolute", {});
  if (flags["no-flash"]) {
    if (relative !== undefined || absolute !== undefined) throw new VideolmError("--no-flash turns the Flash router off: give it without --flash-relative / --flash-absolute");
    return false;
  }
  for (const [name, v] of [
    ["--flash-relative", relative],
    ["--flash-absolute", absolute],
  ] as const) {
    if (v !== undefined && !(v >= 0 && v <= 1)) throw new VideolmError(`${name} must be in [0, 1], got ${v}`);
  }
  if (relative === undefined && absolute === undefined) return undefined;
  return { ...(relative !== undefined ? { relative } : {}), ...(absolute !== undefined ? { absolute } : {}) };
}

const IMAGE_EXTENSIONS = /\.(png|jpe?g|webp|bmp|tiff?)$/i;
const MEDIA = /\.(png|jpe?g|webp|bmp|tiff?|mp4|m4v|mkv|webm|mov|avi|gif|mpe?g|ts)$|^(https?|file|data):/i;

/**
 * The user message from the flags and positionals: images, then videos, then the question. A media file may also be
 * given as the first positional (`videolm run clip.mp4 "question"`); image extensions make it an image.
 */
export function buildUserContent(
  flags: Flags,
  positionals: string[],
  opts: { questionRequired: boolean; /** read from stdin (stdinQuestion): the positionals hold at most the media */ question?: string },
): { question?: string; content: ContentPart[] } {
  const images = [...((flags.image as string[] | undefined) ?? [])];
  const videos = [...((flags.video as string[] | undefined) ?? [])];
  const args = [...positionals];
  if (opts.question !== undefined ? args.length === 1 : args.length === 2 || (args.length === 1 && isMediaArgument(args[0]))) {
    const media = args.shift()!;
    (IMAGE_EXTENSIONS.test(media) ? images : videos).push(media);
  }
  if (args.length > 1) throw new VideolmError(`give the question as one quoted argument (got ${positionals.length} arguments); see --help`);
  const question = opts.question ?? args[0];
  if (question === undefined && opts.questionRequired) {
    throw new VideolmError('run: give the question as one quoted argument, e.g. videolm run --video clip.mp4 "What happens?" (or on stdin: echo "What happens?" | videolm run clip.mp4)');
  }
  const content: ContentPart[] = [
    ...images.map((image): ContentPart => ({ type: "image", image })),
    ...videos.map((video): ContentPart => ({ type: "video", video })),
    { type: "text", text: question ?? "" },
  ];
  return { question, content };
}

const isMediaArgument = (arg: string) => MEDIA.test(arg) && !/\s/.test(arg);

/**
 * The question from stdin, when the positionals end with `-` in its place (read even from a terminal, until Ctrl-D),
 * or, with `implicit`, when they hold no question and stdin is not a terminal: `echo "what color?" | videolm run
 * clip.mp4`. Returns the positionals without the `-`, and the question (undefined when none was read).
 */
export async function stdinQuestion(
  positionals: string[],
  opts: { implicit: boolean; quiet?: boolean; input?: QuestionInput },
): Promise<{ positionals: string[]; question?: string }> {
  const input = opts.input ?? process.stdin;
  const hasQuestion = positionals.length >= 2 || (positionals.length === 1 && !isMediaArgument(positionals[0]));
  const read = () =>
    readQuestion(input, { onWaiting: opts.quiet ? undefined : () => process.stderr.write("videolm: waiting for the question on stdin (or give it as an argument)\n") });
  if (hasQuestion && positionals.at(-1) === "-" && positionals.length <= 2) {
    const question = await read();
    if (!question) throw new VideolmError('the question read from stdin ("-") is empty');
    return { positionals: positionals.slice(0, -1), question };
  }
  if (hasQuestion || !opts.implicit || input.isTTY) return { positionals };
  const question = await read();
  return { positionals, question: question || undefined };
}

/**
 * The checkpoint folder for --model: a folder, or a Hugging Face repo id (cached or downloaded with progress);
 * without --model, the built-in demo model (said on stderr).
 */
export async function modelFromFlags(flags: Flags): Promise<string> {
  const model = flags.model as string | undefined;
  if (model) return resolveModel(model, { onProgress: flags.quiet ? undefined : stderrProgress() });
  if (!defaultModelAvailable()) throw new VideolmError("--model DIR is required (a Hugging Face checkpoint folder or repo id)");
  if (!flags.quiet) process.stderr.write(`videolm: no --model given; using the built-in demo model (${path.relative(process.cwd(), DEFAULT_MODEL_DIR) || DEFAULT_MODEL_DIR})\n`);
  return DEFAULT_MODEL_DIR;
}

/** `run`-only flags for thinking checkpoints. */
export const THINKING_FLAGS = {
  "hide-thinking": { type: "boolean" },
  "thinking-budget": { type: "string" },
} as const;

/** `run`'s constrained decoding (src/cli/response-format.ts) and the answer's spans as events (--events). */
const RESPONSE_FORMAT_FLAGS = { "response-format": { type: "string" }, events: { type: "boolean" } } as const;

/**
 * Writes streamed thinking and answer text: thinking dimmed (ANSI faint) on a terminal, as plain text on a pipe, or
 * not at all with --hide-thinking; a blank line separates it from the answer.
 */
export function thinkingWriter(out: { write(s: string): unknown; isTTY?: boolean }, hide: boolean) {
  let inReasoning = false;
  const dim = (s: string) => (out.isTTY ? `\x1b[2m${s}\x1b[22m` : s);
  return {
    reasoning(text: string) {
      if (hide || !text) return;
      out.write(dim(text));
      inReasoning = true;
    },
    answer(text: string) {
      if (!text) return;
      if (inReasoning) out.write("\n\n");
      inReasoning = false;
      out.write(text);
    },
  };
}

export async function runCommand(argv: string[]): Promise<number> {
  const { flags, positionals } = parseFlags(argv, { ...MODEL_FLAGS, ...PIPELINE_FLAGS, ...GENERATION_FLAGS, ...MEDIA_FLAGS, ...COMMON_FLAGS, ...THINKING_FLAGS, ...BACKEND_FLAGS, ...RESPONSE_FORMAT_FLAGS }, "run");
  checkBackendFlags(flags);
  if (flags.help) {
    process.stdout.write(RUN_HELP + "\n");
    return 0;
  }
  const fromStdin = await stdinQuestion(positionals, { implicit: true, quiet: Boolean(flags.quiet) });
  const { content } = buildUserContent(flags, fromStdin.positionals, { questionRequired: true, question: fromStdin.question });
  // On a backend, --model is the planning checkpoint and optional (a videolm backend plans by its own).
  const modelDir = flags.backend !== undefined && flags.model === undefined ? undefined : await modelFromFlags(flags);
  const json = Boolean(flags.json);
  const quiet = Boolean(flags.quiet);
  const explicit = generationFlags(flags);
  const media = mediaFlags(flags);
  const thinkingBudget = numberFlag(flags, "thinking-budget", { integer: true });
  if (thinkingBudget !== undefined && thinkingBudget < 0) throw new VideolmError(`--thinking-budget expects a non-negative integer, got ${thinkingBudget}`);
  const writer = thinkingWriter(process.stdout, Boolean(flags["hide-thinking"]));
  const responseFormat = responseFormatFlag(flags["response-format"] as string | undefined);
  if (responseFormat && flags.backend !== undefined) throw new VideolmError("--response-format runs on the local engine; it is not sent to --backend");
  if (flags.backend !== undefined) return runOnBackend({ flags, content, explicit, media, thinkingBudget, modelDir, writer });

  // Plan and check the request from headers alone before decoding any frame or loading weights, so a bad video or
  // an oversized plan fails in about a second, whatever the video's length; then decode only what was planned.
  const preparer = await RequestPreparer.load(modelDir!);
  preparer.resolveOptions(explicit); // validates the generation flags
  const plan = await preparer.plan([{ role: "user", content }], media, { maxNewTokens: explicit.maxNewTokens });
  preparer.checkContext(plan.inputIds.length, plan.maxNewTokens);
  const dtype = precisionFlag(flags);
  const cost = planCost(preparer, plan, { dtype, cacheRoot: flags["cache-dir"] as string | undefined });
  if (!cost.memoryFits) throw new VideolmError(`this request ${cost.memoryAdvice}`);
  if (!quiet) {
    for (const l of plan.limits.filter((l) => l.source === "fit")) process.stderr.write(`videolm: ${l.note}\n`);
    if (cost.slow) process.stderr.write(`videolm: warning: ${cost.warning}${cost.suggestion ? `; to get the first token within ${cost.targetSeconds} s: ${cost.suggestion}` : ""}\n`);
  }
  if (flags.events && !plan.visuals.some((v) => v.kind === "video")) throw new VideolmError("--events reads the answer's times as spans of a video: give one (--video FILE)");
  const messages: ChatRequestMessage[] = plan.messages;
  const prepared = await preparer.realise(plan, media, undefined, quiet ? undefined : delayedProgress(stderrProgress()));
  const model = await VideoModel.fromPreparer(preparer, {
    dtype,
    threads: numberFlag(flags, "threads", { integer: true }),
    ...pipelineFlags(flags),
    cacheDir: flags["cache-dir"] as string | undefined,
    onProgress: quiet ? undefined : stderrProgress(),
  });
  const abort = new AbortController();
  const onSigint = () => abort.abort();
  process.once("SIGINT", onSigint);
  try {
    const response = await model.generate({
      messages,
      prepared,
      ...explicit,
      maxNewTokens: plan.maxNewTokens,
      signal: abort.signal,
      thinkingBudget,
      ...(responseFormat ? { responseFormat } : {}),
      onProgress: quiet ? undefined : delayedProgress(stderrProgress()),
      onToken: json
        ? undefined
        : (e) => {
            writer.reasoning(e.reasoning ?? "");
            writer.answer(e.answer ?? "");
          },
    });
    // --events: the answer's spans as events of the video's clip (src/events/run.ts answerEvents).
    const events = flags.events ? answerEvents(response.text, preparer, { visuals: plan.visuals, messages, media }) : undefined;
    if (json) {
      const out = {
        text: response.text,
        ...(events ? { events: { events: events.events, parsed: events.parsed, warnings: events.warnings, duration: events.duration } } : {}),
        ...(response.reasoning !== undefined ? { reasoning: response.reasoning } : {}),
        tokens: response.tokens,
        promptTokens: response.promptTokens,
        ...(response.visualTokens ? { visualTokens: response.visualTokens } : {}),
        finishReason: response.finishReason,
        ...(response.logprobs ? { logprobs: logprobEntries(response.logprobs, new TokenInfo(model.tokenizer)) } : {}),
        timings: { loadMs: round(model.loadMs), ...Object.fromEntries(Object.entries(response.timings).map(([k, v]) => [k, round(v)])) },
      };
      process.stdout.write(JSON.stringify(out) + "\n");
    } else {
      process.stdout.write("\n");
      if (response.logprobs) process.stdout.write(`\n${formatLogprobTable(logprobEntries(response.logprobs, new TokenInfo(model.tokenizer)))}\n`);
      if (events?.parsed) process.stdout.write(`\n${eventsTable(events.events, process.stdout.columns ? { width: process.stdout.columns } : {})}`);
      else if (events && !quiet) process.stderr.write(`videolm: --events: no time span in the answer (${events.warnings.join("; ")})\n`);
      if (!quiet) {
        const t = response.timings;
        const v = response.visualTokens;
        // e.g. "(384 fewer: InternVL-Flash resolution router, 2 of 6 frames at 64 tokens)"
        const selected = v ? ` (${v.plannedTokens - v.keptTokens} fewer: ${v.method}, ${v.units.filter((u) => u.reduced).length} of ${v.units.length} frames/tiles reduced)` : "";
        process.stderr.write(
          `[${response.promptTokens} prompt tokens${selected}, ${response.tokens.length} generated; vision ${round(t.visionMs)} ms, prefill ${round(t.prefillMs)} ms, ${t.decodeTokensPerSecond.toFixed(1)} tokens/s]\n`,
        );
      }
    }
    return response.finishReason === "aborted" ? 130 : 0;
  } finally {
    process.off("SIGINT", onSigint);
  }
}

function round(x: number): number {
  return Math.round(x * 10) / 10;
}
