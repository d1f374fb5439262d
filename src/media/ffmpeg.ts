/**
 * Locating and running the FFmpeg tools.
 *
 * Binaries: `FFMPEG_PATH` / `FFPROBE_PATH`, else `ffmpeg` / `ffprobe` on `PATH`, else the static builds shipped by the npm
 * packages `@ffmpeg-installer/ffmpeg` and `@ffprobe-installer/ffprobe` (so `npm ci` is enough on a fresh machine).
 *
 * Every child runs with a wall-clock timeout, is killed when the caller's AbortSignal fires, and is killed when this
 * Node process exits normally. If Node itself is killed hard, the child's stdout pipe breaks and ffmpeg/ffprobe stop at
 * their next write (we always read their output through a pipe and give them no stdin), so no child outlives its request
 * for long even then.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { accessSync, constants as fsConstants } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import type { Readable } from "node:stream";
import { VideolmError } from "../errors.js";

export interface FfmpegBinaries {
  ffmpeg: string;
  ffprobe: string;
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function findOnPath(name: string, envPath: string | undefined): string | undefined {
  for (const dir of (envPath ?? "").split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

function fromNpmPackage(pkg: string): string | undefined {
  try {
    const require = createRequire(import.meta.url);
    const mod = require(pkg) as { path?: string };
    return mod.path && isExecutable(mod.path) ? mod.path : undefined;
  } catch {
    return undefined;
  }
}

function locateOne(name: "ffmpeg" | "ffprobe", envVar: string, pkg: string, env: NodeJS.ProcessEnv): string {
  const fromEnv = env[envVar];
  if (fromEnv) {
    if (!isExecutable(fromEnv)) throw new VideolmError(`${envVar}=${fromEnv} is not an executable file; fix or unset ${envVar}`);
    return fromEnv;
  }
  const found = findOnPath(name, env.PATH) ?? fromNpmPackage(pkg);
  if (!found) {
    throw new VideolmError(`${name} not found: set ${envVar}, put ${name} on PATH, or reinstall the npm package ${pkg}`);
  }
  return found;
}

let cached: { key: string; bins: FfmpegBinaries } | undefined;

/** Where ffmpeg and ffprobe are (see the file comment for the order). Cached per (FFMPEG_PATH, FFPROBE_PATH, PATH). */
export function locateFfmpeg(env: NodeJS.ProcessEnv = process.env): FfmpegBinaries {
  const key = `${env.FFMPEG_PATH ?? ""}\0${env.FFPROBE_PATH ?? ""}\0${env.PATH ?? ""}`;
  if (cached?.key === key) return cached.bins;
  const bins = {
    ffmpeg: locateOne("ffmpeg", "FFMPEG_PATH", "@ffmpeg-installer/ffmpeg", env),
    ffprobe: locateOne("ffprobe", "FFPROBE_PATH", "@ffprobe-installer/ffprobe", env),
  };
  cached = { key, bins };
  return bins;
}

// ---- child bookkeeping: kill whatever is still running when Node exits -------------------------------------------

const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;

function track(child: ChildProcess): void {
  liveChildren.add(child);
  child.once("close", () => liveChildren.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once("exit", () => {
      for (const c of liveChildren) c.kill("SIGKILL");
    });
  }
}

/** Number of ffmpeg/ffprobe children started here that have not exited yet (tests assert it returns to 0). */
export function liveChildCount(): number {
  return liveChildren.size;
}

export interface SpawnOptions {
  /** Used in error messages: the source being processed, e.g. the file path or URL. */
  label: string;
  /** Wall-clock limit for the whole child, in milliseconds. */
  timeoutMs: number;
  signal?: AbortSignal;
  /** Keep at most this many bytes of stderr (the tail), for error messages. Default 64 KiB. */
  maxStderrBytes?: number;
}

export interface ToolProcess {
  /** The child's stdout; read it incrementally. */
  stdout: Readable;
  /**
   * Settles when the child has exited: resolves when it exited 0, rejects with a VideolmError when it failed, timed out
   * or was aborted (the child is killed in those cases before the promise settles).
   */
  done: Promise<void>;
  /** Kill the child now (idempotent). `done` then rejects with `reason`'s message if it had not settled. */
  kill(reason?: string): void;
  /** Tail of stderr so far. */
  stderr(): string;
}

/** Starts `bin args` with stdin closed, stdout as a stream, stderr captured; enforces timeout and abort. */
export function spawnTool(bin: string, args: string[], opts: SpawnOptions): ToolProcess {
  const maxStderr = opts.maxStderrBytes ?? 64 * 1024;
  const tool = path.basename(bin);
  if (opts.signal?.aborted) {
    throw new VideolmError(`${opts.label}: aborted before ${tool} started`);
  }
  const child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
  track(child);
  let stderrText = "";
  child.stderr!.setEncoding("utf8");
  child.stderr!.on("data", (chunk: string) => {
    stderrText += chunk;
    if (stderrText.length > maxStderr) stderrText = stderrText.slice(-maxStderr);
  });

  let killReason: string | undefined;
  const kill = (reason?: string) => {
    if (killReason === undefined) killReason = reason ?? "killed";
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  };
  const timer = setTimeout(
    () => kill(`${tool} did not finish within ${formatMs(opts.timeoutMs)} (timeout); the file may be huge or damaged`),
    opts.timeoutMs,
  );
  const onAbort = () => kill("aborted");
  opts.signal?.addEventListener("abort", onAbort, { once: true });

  const done = new Promise<void>((resolve, reject) => {
    let settled = false;
    const finish = (err?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
      if (err) reject(err);
      else resolve();
    };
    child.once("error", (err: NodeJS.ErrnoException) => {
      finish(
        new VideolmError(
          `${opts.label}: cannot run ${bin} (${err.code ?? err.message}); set FFMPEG_PATH/FFPROBE_PATH to working binaries`,
          { cause: err },
        ),
      );
    });
    child.once("close", (code, signal) => {
      if (killReason !== undefined) return finish(new VideolmError(`${opts.label}: ${killReason}`));
      if (code === 0) return finish();
      const lastLine = lastMeaningfulLine(stderrText);
      finish(new VideolmError(`${opts.label}: ${tool} failed (${signal ?? `exit ${code}`})${lastLine ? `: ${lastLine}` : ""}`));
    });
  });
  // Avoid an unhandled rejection if the caller only consumes stdout and then awaits `done` later.
  done.catch(() => {});
  return { stdout: child.stdout!, done, kill, stderr: () => stderrText };
}

/** "250 ms", "12 s" */
export function formatMs(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${Math.round(ms / 1000)} s`;
}

function lastMeaningfulLine(stderr: string): string {
  const lines = stderr.split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
  return lines.length ? lines[lines.length - 1].slice(0, 300) : "";
}

/** Runs a tool to completion and returns its whole stdout (bounded by `maxStdoutBytes`, default 64 MiB). */
export async function runTool(
  bin: string,
  args: string[],
  opts: SpawnOptions & { maxStdoutBytes?: number },
): Promise<{ stdout: Buffer; stderr: string }> {
  const limit = opts.maxStdoutBytes ?? 64 * 1024 * 1024;
  const proc = spawnTool(bin, args, opts);
  const chunks: Buffer[] = [];
  let size = 0;
  proc.stdout.on("data", (chunk: Buffer) => {
    size += chunk.length;
    if (size > limit) proc.kill(`${path.basename(bin)} printed more than ${limit} bytes`);
    else chunks.push(chunk);
  });
  await proc.done;
  return { stdout: Buffer.concat(chunks), stderr: proc.stderr() };
}
