/**
 * `--model` resolution: a local checkpoint folder, or a Hugging Face repo id (`owner/name[@revision]`) found in —
 * or downloaded into — the standard Hugging Face cache (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
 * `~/.cache/huggingface/hub`), in its layout `models--owner--name/snapshots/<commit>/`, so checkpoints are shared
 * with the Python tools. `HF_ENDPOINT` overrides https://huggingface.co, `HF_TOKEN` authenticates, `HF_HUB_OFFLINE=1`
 * never touches the network.
 *
 * Only the files videolm reads are downloaded (config, weights, tokenizer, templates, processor configs), each to a
 * temporary name renamed when complete, with progress.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { VideolmError } from "../errors.js";
import type { ProgressCallback } from "../util/progress.js";

const REPO_ID = /^[A-Za-z0-9][\w.-]*\/[\w.-]+(@[\w./-]+)?$/;
const WANTED = /^(config\.json|generation_config\.json|preprocessor_config\.json|video_preprocessor_config\.json|tokenizer\.json|tokenizer_config\.json|chat_template\.json|chat_template\.jinja|special_tokens_map\.json|model\.safetensors\.index\.json|.*\.safetensors)$/;

export function hubCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.HF_HUB_CACHE ?? path.join(env.HF_HOME ?? path.join(os.homedir(), ".cache", "huggingface"), "hub");
}

export function looksLikeRepoId(model: string): boolean {
  return REPO_ID.test(model) && !model.startsWith(".") && !fs.existsSync(model);
}

/** The snapshot folder of `repo` at `revision` in the cache, when it holds a config.json. */
function cachedSnapshot(repo: string, revision: string, env: NodeJS.ProcessEnv): string | undefined {
  const repoDir = path.join(hubCacheDir(env), `models--${repo.replace("/", "--")}`);
  const refFile = path.join(repoDir, "refs", revision);
  const commit = fs.existsSync(refFile) ? fs.readFileSync(refFile, "utf8").trim() : revision;
  const dir = path.join(repoDir, "snapshots", commit);
  return fs.existsSync(path.join(dir, "config.json")) ? dir : undefined;
}

export interface ResolveOptions {
  env?: NodeJS.ProcessEnv;
  onProgress?: ProgressCallback;
  signal?: AbortSignal;
}

/** Returns a local checkpoint folder for `model` (a folder or a repo id), downloading when needed. */
export async function resolveModel(model: string, options: ResolveOptions = {}): Promise<string> {
  const env = options.env ?? process.env;
  if (!looksLikeRepoId(model)) return model; // a folder (its checks and messages are the checkpoint loader's)
  const [repo, revision = "main"] = model.split("@");
  const cached = cachedSnapshot(repo, revision, env);
  if (cached) return cached;
  if (env.HF_HUB_OFFLINE === "1") {
    throw new VideolmError(`${repo} is not in the Hugging Face cache (${hubCacheDir(env)}) and HF_HUB_OFFLINE=1; download it first or pass a checkpoint folder`);
  }
  const endpoint = (env.HF_ENDPOINT ?? "https://huggingface.co").replace(/\/$/, "");
  const headers: Record<string, string> = env.HF_TOKEN ? { Authorization: `Bearer ${env.HF_TOKEN}` } : {};
  const info = await fetchJson(`${endpoint}/api/models/${repo}/revision/${encodeURIComponent(revision)}`, headers, repo, options.signal);
  const commit = String(info.sha ?? revision);
  const files = ((info.siblings as { rfilename: string }[] | undefined) ?? []).map((s) => s.rfilename).filter((f) => WANTED.test(f));
  if (!files.includes("config.json")) throw new VideolmError(`${repo} has no config.json at ${revision}: is it a model repository?`);
  if (!files.some((f) => f.endsWith(".safetensors"))) throw new VideolmError(`${repo} has no *.safetensors weights (only safetensors checkpoints are supported)`);

  const repoDir = path.join(hubCacheDir(env), `models--${repo.replace("/", "--")}`);
  const snapshot = path.join(repoDir, "snapshots", commit);
  fs.mkdirSync(snapshot, { recursive: true });
  const sizes = new Map<string, number>();
  for (const s of (info.siblings as { rfilename: string; size?: number }[]) ?? []) if (s.size) sizes.set(s.rfilename, s.size);
  const total = files.reduce((n, f) => n + (sizes.get(f) ?? 0), 0);
  let done = 0;
  for (const file of files) {
    const target = path.join(snapshot, file);
    if (fs.existsSync(target)) {
      done += fs.statSync(target).size;
      continue;
    }
    const url = `${endpoint}/${repo}/resolve/${commit}/${file.split("/").map(encodeURIComponent).join("/")}`;
    await download(url, target, headers, repo, options.signal, (bytes) => {
      done += bytes;
      options.onProgress?.({ task: `Downloading ${repo}`, done, total: Math.max(total, done), unit: "bytes" });
    });
  }
  fs.mkdirSync(path.join(repoDir, "refs"), { recursive: true });
  if (revision !== commit) fs.writeFileSync(path.join(repoDir, "refs", revision), commit);
  return snapshot;
}

async function request(url: string, headers: Record<string, string>, repo: string, signal?: AbortSignal): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(url, { headers, signal, redirect: "follow" });
  } catch (e) {
    const cause = (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message;
    throw new VideolmError(`cannot reach ${new URL(url).host} to download ${repo} (${cause}); it is not a local folder or a cached download either: when offline, pass a local checkpoint folder with --model`);
  }
  if (response.status === 401 || response.status === 403) throw new VideolmError(`${repo} needs authorisation (HTTP ${response.status}): set HF_TOKEN, or pass a local checkpoint folder`);
  if (response.status === 404) throw new VideolmError(`${repo} was not found on ${new URL(url).host} (HTTP 404): check the repo id and revision`);
  if (!response.ok) throw new VideolmError(`downloading ${repo} failed: HTTP ${response.status} for ${url}`);
  return response;
}

async function fetchJson(url: string, headers: Record<string, string>, repo: string, signal?: AbortSignal): Promise<Record<string, unknown>> {
  const response = await request(url, headers, repo, signal);
  try {
    return (await response.json()) as Record<string, unknown>;
  } catch {
    throw new VideolmError(`unexpected answer from ${url} while looking up ${repo}`);
  }
}

async function download(url: string, target: string, headers: Record<string, string>, repo: string, signal: AbortSignal | undefined, onBytes: (n: number) => void): Promise<void> {
  const response = await request(url, headers, repo, signal);
  if (!response.body) throw new VideolmError(`empty response for ${url}`);
  fs.mkdirSync(path.dirname(target), { recursive: true });
  const partial = `${target}.incomplete`;
  const body = Readable.fromWeb(response.body as import("node:stream/web").ReadableStream<Uint8Array>);
  body.on("data", (chunk: Buffer) => onBytes(chunk.length));
  try {
    await pipeline(body, fs.createWriteStream(partial));
    fs.renameSync(partial, target);
  } catch (e) {
    fs.rmSync(partial, { force: true });
    throw e instanceof VideolmError ? e : new VideolmError(`downloading ${url} failed: ${(e as Error).message}`);
  }
}
