/**
 * `videolm serve`: load a model once and serve the OpenAI-compatible API and the web app (src/server/).
 */
import { VideoModel } from "../../engine/model.js";
import { VideolmError } from "../../errors.js";
import { DEFAULT_SERVER_OPTIONS, VideolmServer, type ServerOptions } from "../../server/server.js";
import { stderrProgress } from "../../util/progress.js";
import { MODEL_FLAGS, PIPELINE_FLAGS, numberFlag, parseFlags, pipelineFlags, precisionFlag, type Flags } from "../args.js";
import { modelFromFlags } from "./run.js";
import { RequestPreparer } from "../../engine/preparer.js";
import { servedRemote } from "../../remote/served-remote.js";
import { BACKEND_FLAGS, BACKEND_HELP, checkBackendFlags, connectFromFlags } from "../backend.js";

const MiB = 1024 ** 2;
const d = DEFAULT_SERVER_OPTIONS;

export const SERVE_HELP = `Usage: videolm serve --model DIR [--host 127.0.0.1] [--port 8080] [options]

Serves the model over HTTP: the web app at /, the OpenAI-compatible API at /v1 (chat/completions with
image_url and video_url parts, streaming, logprobs; models), /health. One generation runs at a time.

Model:
  -m, --model DIR              Hugging Face checkpoint folder
  --model-name NAME            the id clients send as "model" (default: the folder's name)
  --dtype fp32|fp16|int8|int4  --threads N  --cache-dir DIR     as for videolm run
  --pipeline | --no-pipeline  --vision-threads N               as for videolm run
Network:
  --host ADDR                  address to listen on (default ${d.host}; use 0.0.0.0 to accept remote clients)
  --port N                     (default ${d.port}; 0 picks a free port)
Queue and limits:
  --max-queue N                requests waiting beyond the one being served; more get 429 (default ${d.maxQueue})
  --max-tokens N               largest max_tokens a request may ask for (default ${d.maxTokens})
  --max-prompt-tokens N        largest prompt, visual tokens included (default ${d.maxPromptTokens})
  --max-frames N               video frames per request (default ${d.maxFrames})
  --max-frame-pixels N         largest min_pixels / max_pixels a request may set (default ${d.maxFramePixels})
  --max-media-parts N          images + videos per request (default ${d.maxMediaParts})
  --max-body-bytes N           request body limit, 413 beyond (default ${d.maxBodyBytes / MiB} MiB)
  --max-upload-bytes N         one upload (POST /v1/uploads) (default ${d.maxUploadBytes / MiB} MiB)
Time limits (a request is queued only once its body has arrived whole):
  --headers-timeout SEC        request line and headers must arrive within SEC; 408 and closed otherwise (default ${d.headersTimeoutMs / 1000})
  --body-timeout SEC           a JSON body must arrive within SEC; an upload may pause at most SEC and must average
                               ${d.uploadMinBytesPerSecond / 1024} KiB/s after that; 408 and closed otherwise (default ${d.bodyTimeoutMs / 1000})
  --prepare-timeout SEC        media decoding + template + tokenization of one request (on a worker thread, one
                               request at a time); 400 prepare_timeout beyond; 0 = no limit (default ${d.prepareTimeoutMs / 1000})
Media:
  --max-media-bytes N          largest remote or data: media (default ${d.maxMediaBytes / MiB} MiB)
  --max-input-pixels N         largest stored width × height of an image or video frame, refused before decoding
                               (default ${d.maxInputPixels.toLocaleString("en-US")})
  --media-timeout SEC          download time limit (default ${d.mediaTimeoutMs / 1000})
  --allowed-media-dir DIR      allow file:// URLs inside DIR (default: file:// refused)
  --allow-private-media        allow media URLs on private, loopback and link-local addresses (default: refused)
  -q, --quiet                  no request log on stderr
${BACKEND_HELP.replace("Remote backend", "Remote backend: this server as a front end (web app, plans, uploads) generating on --backend")}`;

export function serverOptionsFromFlags(flags: Flags): Partial<ServerOptions> {
  const int = (name: string) => {
    const v = numberFlag(flags, name, { integer: true });
    if (v !== undefined && v < (name === "port" || name === "max-queue" ? 0 : 1)) throw new VideolmError(`--${name} must be ${name === "port" || name === "max-queue" ? "≥ 0" : "≥ 1"} (got ${v})`);
    return v;
  };
  const seconds = (name: string, { zero = false } = {}) => {
    const v = numberFlag(flags, name);
    if (v !== undefined && !(v > 0 || (zero && v === 0))) throw new VideolmError(`--${name} must be ${zero ? "≥ 0" : "> 0"} seconds (got ${v})`);
    return v === undefined ? undefined : v * 1000;
  };
  const port = int("port");
  if (port !== undefined && port > 65535) throw new VideolmError(`--port must be ≤ 65535 (got ${port})`);
  return {
    host: flags.host as string | undefined,
    port,
    modelName: flags["model-name"] as string | undefined,
    maxQueue: int("max-queue"),
    maxTokens: int("max-tokens"),
    maxPromptTokens: int("max-prompt-tokens"),
    maxFrames: int("max-frames"),
    maxFramePixels: int("max-frame-pixels"),
    maxMediaParts: int("max-media-parts"),
    maxBodyBytes: int("max-body-bytes"),
    maxUploadBytes: int("max-upload-bytes"),
    maxMediaBytes: int("max-media-bytes"),
    maxInputPixels: int("max-input-pixels"),
    mediaTimeoutMs: seconds("media-timeout"),
    headersTimeoutMs: seconds("headers-timeout"),
    bodyTimeoutMs: seconds("body-timeout"),
    prepareTimeoutMs: seconds("prepare-timeout", { zero: true }),
    allowedMediaDir: flags["allowed-media-dir"] as string | undefined,
    allowPrivateMedia: Boolean(flags["allow-private-media"]),
  };
}

const SERVE_FLAGS = {
  ...MODEL_FLAGS,
  ...BACKEND_FLAGS,
  ...PIPELINE_FLAGS,
  "model-name": { type: "string" },
  host: { type: "string" },
  port: { type: "string" },
  "max-queue": { type: "string" },
  "max-tokens": { type: "string" },
  "max-prompt-tokens": { type: "string" },
  "max-frames": { type: "string" },
  "max-frame-pixels": { type: "string" },
  "max-media-parts": { type: "string" },
  "max-body-bytes": { type: "string" },
  "max-upload-bytes": { type: "string" },
  "max-media-bytes": { type: "string" },
  "media-timeout": { type: "string" },
  "max-input-pixels": { type: "string" },
  "headers-timeout": { type: "string" },
  "body-timeout": { type: "string" },
  "prepare-timeout": { type: "string" },
  "allowed-media-dir": { type: "string" },
  "allow-private-media": { type: "boolean" },
  quiet: { type: "boolean", short: "q" },
  debug: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

export async function serveCommand(argv: string[]): Promise<number> {
  const { flags, positionals } = parseFlags(argv, SERVE_FLAGS, "serve");
  if (flags.help) {
    process.stdout.write(SERVE_HELP + "\n");
    return 0;
  }
  if (positionals.length > 0) throw new VideolmError(`serve: unexpected argument ${JSON.stringify(positionals[0])} (see videolm serve --help)`);
  const options = serverOptionsFromFlags(flags);
  checkBackendFlags(flags);
  // --backend: this server plans, prepares and serves the web app; generation runs on the backend.
  if (flags.backend !== undefined && flags.model === undefined) throw new VideolmError("serve --backend: give --model, the checkpoint (folder or repo id) of the model the backend serves: this server plans requests by its rules");
  const model = flags.backend !== undefined ? servedRemote(await connectFromFlags(flags, await RequestPreparer.load(await modelFromFlags(flags)), Boolean(flags.quiet))) : await VideoModel.load(await modelFromFlags(flags), {
    dtype: precisionFlag(flags),
    threads: numberFlag(flags, "threads", { integer: true }),
    ...pipelineFlags(flags),
    cacheDir: flags["cache-dir"] as string | undefined,
    onProgress: flags.quiet ? undefined : stderrProgress(),
  });
  let server: VideolmServer;
  try {
    server = await VideolmServer.start(model, { ...options, log: flags.quiet ? () => {} : undefined });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "EADDRINUSE" || code === "EACCES" || code === "EADDRNOTAVAIL") {
      throw new VideolmError(`cannot listen on ${options.host ?? d.host}:${options.port ?? d.port} (${code}); choose another --host / --port`);
    }
    throw err;
  }
  process.stderr.write(`videolm: serving ${server.modelName} at ${server.url}/ (API: ${server.url}/v1; Ctrl+C to stop)\n`);
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      process.stderr.write("videolm: shutting down\n");
      void server.close().then(resolve);
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
  });
  return 0;
}
