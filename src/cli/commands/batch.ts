/**
 * `videolm batch`: run a question (or events / grounding) over many videos — a folder, a glob or a manifest — on the
 * local model or on remote backends, writing one JSONL line per item as it finishes; resumable (src/batch/).
 */
import { VideoModel } from "../../engine/model.js";
import { RequestPreparer } from "../../engine/preparer.js";
import { VideolmError } from "../../errors.js";
import { localBackend, remoteBackend } from "../../batch/backends.js";
import type { Backend } from "../../batch/dispatcher.js";
import type { ItemAnswer, ItemSettings } from "../../batch/engine.js";
import { collectItems } from "../../batch/inputs.js";
import { BATCH_TASKS, type BatchItem, type BatchTask } from "../../batch/items.js";
import { runBatchJob } from "../../batch/job.js";
import { stderrProgress } from "../../util/progress.js";
import { GENERATION_FLAGS, MEDIA_FLAGS, MODEL_FLAGS, PIPELINE_FLAGS, generationFlags, numberFlag, parseFlags, pipelineFlags, precisionFlag, type Flags } from "../args.js";
import { BACKEND_FLAGS, checkBackendFlags, connectFromFlags } from "../backend.js";
import { mediaFlags, modelFromFlags } from "./run.js";

export const BATCH_HELP = `Usage: videolm batch (FOLDER | "GLOB" | MANIFEST.csv | MANIFEST.jsonl | VIDEO)... -o results.jsonl [options]

Runs every item and appends one JSON line per finished item to the results file. Run the same command again to
resume: items whose id already has a line are skipped. A failed item is recorded with its error and the job goes on.

Inputs:
  FOLDER                     the videos directly in it (mp4, mkv, webm, mov, …); "DIR/**/*.mp4" for subfolders
  "GLOB"                     *, ?, [abc], {a,b}, ** (quote it)
  MANIFEST.csv / .jsonl      one item per row: video (path relative to the manifest, or URL), and optionally id,
                             task (answer | events | ground), question, query, fps, nframes, min_frames, max_frames,
                             min_pixels, max_pixels, total_pixels, start, end, prune (CSV: a header row names the
                             columns; JSONL: one object per line)
  --question TEXT            the question for items that have none (folders and globs: every video)
  --task answer|events|ground   the task for items that have none (default answer); --query TEXT: ground's query
Output:
  -o, --output FILE          the JSONL results (required): id, video, task, question / query, answer, events,
                             timings, usage, finishReason, backend, attempts, error, finishedAt
  --csv FILE                 also the results as CSV, written from the whole JSONL when the job ends
  --retry-failed             run items again whose last result is an error (default: skipped like the others)
  --json                     print the summary as one JSON object on stdout
  -q, --quiet                no progress on stderr (the summary line stays)
Where items run:
  (default)                  the local model (--model, as for videolm run); --concurrency N items at once (default 1):
                             one generates while the others decode their video (docs/batch.md: when that pays)
  --backend URL[#N]          a remote OpenAI-compatible server (videolm serve, vLLM, SGLang; see videolm run --help),
                             repeat for several; items go to the least busy, at most N at once on each (default
                             --backend-concurrency, 2). A failed backend's item is retried once on another; a backend
                             failing 3 items in a row gets no more. With --model, that checkpoint plans the requests
                             (required for all but videolm backends; docs/remote-backends.md)
  --backend-concurrency N    items in flight per backend without #N (default 2)
  --backend-kind K  --backend-model ID  --backend-api-key-env VAR  --backend-timeout SEC  --backend-retries N
                             as for videolm run --backend, the same for every backend
Model, media and generation options as for videolm run (job-wide defaults; a manifest row's own options win):
  --model --dtype --threads --cache-dir --pipeline --vision-threads
  --fps --nframes --min-frames --max-frames --min-pixels --max-pixels --total-pixels --start --end --prune
  --max-new-tokens --temperature --top-k --top-p --repetition-penalty --seed --stop`;

// run's media flags as job-wide defaults, less the ones a batch takes per item (the videos themselves) or not at all.
const {
  video: _video,
  image: _image,
  policy: _policy,
  "policy-task": _policyTask,
  "flash-relative": _flashRelative,
  "flash-absolute": _flashAbsolute,
  "no-flash": _noFlash,
  ...MEDIA_DEFAULT_FLAGS
} = MEDIA_FLAGS;

const BATCH_FLAGS = {
  ...MODEL_FLAGS,
  ...PIPELINE_FLAGS,
  ...GENERATION_FLAGS,
  ...MEDIA_DEFAULT_FLAGS,
  output: { type: "string", short: "o" },
  csv: { type: "string" },
  question: { type: "string" },
  task: { type: "string" },
  query: { type: "string" },
  concurrency: { type: "string" },
  ...BACKEND_FLAGS,
  backend: { type: "string", multiple: true },
  "backend-concurrency": { type: "string" },
  "retry-failed": { type: "boolean" },
  json: { type: "boolean" },
  quiet: { type: "boolean", short: "q" },
  debug: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

/** `URL#N` → the URL and its limit (N ≥ 1), else the default limit. */
export function parseBackendSpec(spec: string, defaultLimit: number): { url: string; limit: number } {
  const hash = spec.lastIndexOf("#");
  if (hash < 0) return { url: spec, limit: defaultLimit };
  const n = spec.slice(hash + 1);
  if (!/^\d+$/.test(n) || Number(n) < 1) throw new VideolmError(`--backend ${spec}: the part after # is the backend's limit of items in flight, a positive integer (got ${JSON.stringify(n)})`);
  return { url: spec.slice(0, hash), limit: Number(n) };
}

function positiveInt(flags: Flags, name: string, fallback: number): number {
  const v = numberFlag(flags, name, { integer: true });
  if (v !== undefined && v < 1) throw new VideolmError(`--${name} must be ≥ 1 (got ${v})`);
  return v ?? fallback;
}

export async function batchCommand(argv: string[]): Promise<number> {
  const { flags, positionals } = parseFlags(argv, BATCH_FLAGS, "batch");
  if (flags.help) {
    process.stdout.write(BATCH_HELP + "\n");
    return 0;
  }
  const output = flags.output as string | undefined;
  if (!output) throw new VideolmError("batch: give the results file with -o results.jsonl (see videolm batch --help)");
  const task = flags.task as string | undefined;
  if (task !== undefined && !BATCH_TASKS.includes(task as BatchTask)) throw new VideolmError(`--task must be one of ${BATCH_TASKS.join(", ")} (got ${JSON.stringify(task)})`);
  checkBackendFlags(flags);
  const settings: ItemSettings = { generation: generationFlags(flags), media: mediaFlags(flags) };
  const quiet = Boolean(flags.quiet);
  const specs = ((flags.backend as string[] | undefined) ?? []).map((s) => parseBackendSpec(s, positiveInt(flags, "backend-concurrency", 2)));
  if (specs.length === 0 && flags["backend-concurrency"] !== undefined) throw new VideolmError("--backend-concurrency applies to --backend servers; for the local model use --concurrency");
  if (specs.length > 0 && flags.concurrency !== undefined) throw new VideolmError("--concurrency is for the local model; with --backend give each server's limit as URL#N or --backend-concurrency N");
  const items: BatchItem[] = collectItems(positionals, { task: task as BatchTask | undefined, question: flags.question as string | undefined, query: flags.query as string | undefined });

  let backends: Backend<BatchItem, ItemAnswer>[];
  let dispose = async () => {};
  if (specs.length === 0) {
    const preparer = await RequestPreparer.load(await modelFromFlags(flags));
    preparer.resolveOptions(settings.generation); // validates the generation flags before loading weights
    const model = await VideoModel.fromPreparer(preparer, {
      dtype: precisionFlag(flags),
      threads: numberFlag(flags, "threads", { integer: true }),
      ...pipelineFlags(flags),
      cacheDir: flags["cache-dir"] as string | undefined,
      onProgress: quiet ? undefined : stderrProgress(),
    });
    dispose = () => model.dispose();
    backends = [localBackend(model, settings, positiveInt(flags, "concurrency", 1))];
  } else {
    const planner = flags.model ? await RequestPreparer.load(await modelFromFlags(flags)) : undefined;
    const seen = new Set<string>();
    backends = [];
    for (const { url, limit } of specs) {
      if (seen.has(url)) throw new VideolmError(`--backend ${url} is given twice; give its limit once as URL#N`);
      seen.add(url);
      const connect = () => connectFromFlags({ ...flags, backend: url }, planner, quiet);
      backends.push(remoteBackend(connect, settings, limit, url));
    }
  }

  const abort = new AbortController();
  const onSigint = () => abort.abort();
  process.once("SIGINT", onSigint);
  try {
    const summary = await runBatchJob(items, backends, {
      output,
      csv: flags.csv as string | undefined,
      retryFailed: Boolean(flags["retry-failed"]),
      signal: abort.signal,
      log: quiet ? { write: (s: string) => (/^batch: \d+ ok/.test(s) ? process.stderr.write(s) : true) } : process.stderr,
    });
    if (flags.json) process.stdout.write(JSON.stringify(summary) + "\n");
    return summary.stopped ? (summary.stopped === "aborted" ? 130 : 1) : 0;
  } finally {
    process.off("SIGINT", onSigint);
    await dispose();
  }
}
