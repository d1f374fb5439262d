/**
 * `--backend URL` on the command line: the flags, connecting a RemoteModel from them, and `videolm run` on a backend
 * (plan here, generate there; docs/remote-backends.md).
 */
import type { ChatRequestMessage, ContentPart, MediaOptions } from "../engine/request.js";
import { RequestPreparer } from "../engine/preparer.js";
import { VideolmError } from "../errors.js";
import type { GenerationOptions } from "../generation/options.js";
import { DEFAULT_API_KEY_ENV, DEFAULT_BACKEND_ATTEMPTS, DEFAULT_BACKEND_TIMEOUT_MS } from "../remote/backend-client.js";
import { parseBackendKind } from "../remote/backend-kind.js";
import { RemoteModel } from "../remote/remote-model.js";
import { numberFlag, type Flags } from "./args.js";
import { formatLogprobTable } from "./logprobs.js";

export const BACKEND_FLAGS = {
  backend: { type: "string" },
  "backend-kind": { type: "string" },
  "backend-model": { type: "string" },
  "backend-api-key-env": { type: "string" },
  "backend-timeout": { type: "string" },
  "backend-retries": { type: "string" },
} as const;

export const BACKEND_HELP = `Remote backend (docs/remote-backends.md):
  --backend URL              generate on an OpenAI-compatible server (another videolm serve, vLLM, SGLang, a hosted
                             API) instead of loading weights here; videolm still plans and samples the request by the
                             family of --model (config, tokenizer and processor files; weights are not loaded)
  --backend-kind K           auto (default: GET /v1/models says videolm, vllm or sglang, else openai) | videolm |
                             vllm | sglang | openai | seed
  --backend-model ID         the model id the backend serves (default: the first GET /v1/models lists)
  --backend-api-key-env VAR  environment variable holding the API key (default ${DEFAULT_API_KEY_ENV}); sent as a
                             Bearer token, never printed
  --backend-timeout SEC      per attempt: the answer must start, and may pause, at most this long (default ${DEFAULT_BACKEND_TIMEOUT_MS / 1000})
  --backend-retries N        retries on 429, 5xx and reset connections, with backoff (default ${DEFAULT_BACKEND_ATTEMPTS - 1})`;

/** Connects to `--backend` with the other backend flags; `planner` plans requests (required for all but videolm). */
export async function connectFromFlags(flags: Flags, planner: RequestPreparer | undefined, quiet: boolean): Promise<RemoteModel> {
  const url = flags.backend as string;
  const timeout = numberFlag(flags, "backend-timeout");
  if (timeout !== undefined && !(timeout > 0)) throw new VideolmError(`--backend-timeout must be > 0 seconds (got ${timeout})`);
  const retries = numberFlag(flags, "backend-retries", { integer: true });
  if (retries !== undefined && retries < 0) throw new VideolmError(`--backend-retries must be ≥ 0 (got ${retries})`);
  const keyEnv = flags["backend-api-key-env"] as string | undefined;
  if (keyEnv !== undefined && process.env[keyEnv] === undefined) throw new VideolmError(`--backend-api-key-env ${keyEnv}: that environment variable is not set`);
  return RemoteModel.connect(url, {
    kind: flags["backend-kind"] !== undefined ? parseBackendKind(flags["backend-kind"] as string) : "auto",
    model: flags["backend-model"] as string | undefined,
    planner,
    apiKeyEnv: keyEnv,
    ...(timeout !== undefined ? { timeoutMs: timeout * 1000 } : {}),
    ...(retries !== undefined ? { maxAttempts: retries + 1 } : {}),
    log: quiet ? undefined : (line) => process.stderr.write(`videolm: ${line}\n`),
  });
}

/** Whether any backend flag was given without --backend (a mistake worth saying). */
export function checkBackendFlags(flags: Flags): void {
  if (flags.backend !== undefined) return;
  const stray = Object.keys(BACKEND_FLAGS).find((k) => k !== "backend" && flags[k] !== undefined);
  if (stray) throw new VideolmError(`--${stray} applies to a remote backend: give --backend URL too`);
}

export interface BackendRunInput {
  flags: Flags;
  content: ContentPart[];
  explicit: Partial<GenerationOptions>;
  media: MediaOptions;
  thinkingBudget?: number;
  /** Where the planning checkpoint comes from: --model (a folder or repo id), resolved by the caller. */
  modelDir?: string;
  writer: { reasoning(text: string): void; answer(text: string): void };
}

/** `videolm run --backend URL …`: plan here (with --model), generate on the backend, print as a local run does. */
export async function runOnBackend(input: BackendRunInput): Promise<number> {
  const { flags, content, explicit, media, thinkingBudget, writer } = input;
  const json = Boolean(flags.json);
  const quiet = Boolean(flags.quiet);
  const planner = input.modelDir !== undefined ? await RequestPreparer.load(input.modelDir) : undefined;
  const remote = await connectFromFlags(flags, planner, quiet);
  let messages: ChatRequestMessage[] = [{ role: "user", content }];
  let maxNewTokens = explicit.maxNewTokens;
  if (planner) {
    planner.resolveOptions(explicit); // validates the generation flags
    const plan = await planner.plan(messages, media, { maxNewTokens: explicit.maxNewTokens });
    planner.checkContext(plan.inputIds.length, plan.maxNewTokens);
    if (!quiet) for (const l of plan.limits.filter((l) => l.source === "fit")) process.stderr.write(`videolm: ${l.note}\n`);
    messages = plan.messages;
    maxNewTokens = plan.maxNewTokens;
  }
  if (!quiet) process.stderr.write(`videolm: generating on backend ${remote.backend} (${remote.kind}, model ${remote.remoteModel})\n`);
  const abort = new AbortController();
  const onSigint = () => abort.abort();
  process.once("SIGINT", onSigint);
  try {
    const response = await remote.generate({
      messages,
      media,
      ...explicit,
      ...(maxNewTokens !== undefined ? { maxNewTokens } : {}),
      thinkingBudget,
      signal: abort.signal,
      onToken: json
        ? undefined
        : (e) => {
            writer.reasoning(e.reasoning ?? "");
            writer.answer(e.answer ?? "");
          },
    });
    const round = (x: number) => Math.round(x * 10) / 10;
    const logprobs = response.remote.logprobs?.map((l) => ({ token: -1, text: l.token, logprob: l.logprob, top: l.top.map((t) => ({ token: -1, text: t.token, logprob: t.logprob })) }));
    if (json) {
      const t = response.timings;
      const out = {
        text: response.text,
        ...(response.reasoning !== undefined ? { reasoning: response.reasoning } : {}),
        promptTokens: response.promptTokens,
        completionTokens: response.remote.completionTokens,
        finishReason: response.finishReason,
        backend: { host: response.remote.backend, kind: response.remote.kind, model: response.remote.model },
        ...(logprobs ? { logprobs: logprobs.map(({ text, logprob, top }) => ({ text, logprob, top: top.map(({ text, logprob }) => ({ text, logprob })) })) } : {}),
        timings: { preprocessMs: round(t.preprocessMs), ttftMs: round(t.ttftMs), decodeMs: round(t.decodeMs), decodeTokensPerSecond: round(t.decodeTokensPerSecond) },
      };
      process.stdout.write(JSON.stringify(out) + "\n");
    } else {
      process.stdout.write("\n");
      if (logprobs) process.stdout.write(`\n${formatLogprobTable(logprobs)}\n`);
      if (!quiet) {
        const t = response.timings;
        process.stderr.write(
          `[${response.promptTokens} prompt tokens, ${response.remote.completionTokens} generated on ${response.remote.backend}; first token ${round(t.ttftMs)} ms, ${t.decodeTokensPerSecond.toFixed(1)} tokens/s]\n`,
        );
      }
    }
    return response.finishReason === "aborted" ? 130 : 0;
  } finally {
    process.off("SIGINT", onSigint);
  }
}
