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
 *
 * Hostile media (issue 14). Threat: FFmpeg picks a demuxer by sniffing the bytes, and several demuxers open other files
 * or URLs named inside the media: HLS/DASH playlists, concat/ffconcat lists, image2 sequences, mov external data
 * references, nested protocols in the file name (`concat:a|b`, `subfile,,…:`). A file that is both a valid MPEG-TS
 * stream and an HLS playlist (`#EXTM3U` lines followed by TS packets) is reported as `mpegts` by a recent ffprobe (which
 * ignores HLS without an .m3u8 name) but opened as `hls` by an older ffmpeg or by Debian's 5.1, which then decodes a
 * local video the playlist names, outside every allowed folder. Defence, on every ffprobe/ffmpeg run on media
 * (`untrustedInputArgs`):
 *  - the path is passed as `file:<absolute path>`, so nothing in its name is read as a protocol;
 *  - `-protocol_whitelist file`: no network, pipe, data, subfile or concat protocol can be opened from inside;
 *  - `-format_whitelist` with the single-file containers of `ALLOWED_DEMUXERS`; a playlist, file list or image
 *    sequence is refused ("hls is not a video container videolm reads") instead of followed — the protocol whitelist
 *    alone does not stop HLS from reading another local file, the format whitelist does;
 *  - ffmpeg is forced (`-f`) to the demuxer ffprobe detected, so it cannot re-probe the bytes as something else
 *    (ffprobe and ffmpeg may be different FFmpeg versions with different probes), and for mov/mp4 `-enable_drefs 0`
 *    (also the default) keeps external data references off;
 *  - the decoders get `-max_pixels` (see limits.ts), so a frame larger than the pixel limit is never allocated.
 * Verified with the bundled static builds (ffmpeg N-47683 of 2018, ffprobe N-66595 of 2023) and Debian's 5.1.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { accessSync, constants as fsConstants } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import type { Readable } from "node:stream";
import { VideolmError } from "../errors.js";
import { decoderMaxPixels, pixelLimitReason } from "./limits.js";

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

/** Listeners told of every child started here and of its exit (the server's preparation thread reports them). */
const childListeners = new Set<(pid: number, alive: boolean) => void>();

/**
 * Calls `listener(pid, true)` when an ffmpeg/ffprobe child starts and `listener(pid, false)` when it exits. The
 * server's preparation worker uses it so that, if the thread must be terminated mid-decode, its children can be
 * killed from the main thread. Returns the function that removes the listener.
 */
export function onChildProcess(listener: (pid: number, alive: boolean) => void): () => void {
  childListeners.add(listener);
  return () => childListeners.delete(listener);
}

function track(child: ChildProcess): void {
  liveChildren.add(child);
  const pid = child.pid;
  if (pid !== undefined) {
    for (const l of childListeners) l(pid, true);
    child.once("exit", () => {
      for (const l of childListeners) l(pid, false);
    });
  }
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
  /**
   * When the child fails: turns its stderr into the reason of the error (after `label: `), or undefined for the
   * default message (the tool's last line).
   */
  explain?: (stderr: string) => string | undefined;
  /** Extra output pipes the child writes to as file descriptors 3, 4, … (ffmpeg's `pipe:3`, …); see ToolProcess.pipes. */
  extraPipes?: number;
}

export interface ToolProcess {
  /** The child's stdout; read it incrementally. */
  stdout: Readable;
  /** The extra output pipes (`SpawnOptions.extraPipes`): pipes[j] is the child's file descriptor 3 + j. */
  pipes: Readable[];
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
  const extra = opts.extraPipes ?? 0;
  const child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe", ...Array.from({ length: extra }, () => "pipe" as const)] });
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
      const explained = opts.explain?.(stderrText);
      if (explained) return finish(new VideolmError(`${opts.label}: ${explained}`));
      const lastLine = lastMeaningfulLine(stderrText);
      finish(new VideolmError(`${opts.label}: ${tool} failed (${signal ?? `exit ${code}`})${lastLine ? `: ${lastLine}` : ""}`));
    });
  });
  // Avoid an unhandled rejection if the caller only consumes stdout and then awaits `done` later.
  done.catch(() => {});
  const pipes = Array.from({ length: extra }, (_, j) => child.stdio[3 + j] as Readable);
  return { stdout: child.stdout!, pipes, done, kill, stderr: () => stderrText };
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

// ---- arguments for media videolm did not make itself (see the file comment) --------------------------------------

/**
 * The demuxers FFmpeg may use on media: containers that hold their streams in the one file and never open another
 * (each entry is the name `-f` takes; ffprobe reports mov as "mov,mp4,m4a,3gp,3g2,mj2" and matroska as
 * "matroska,webm"). Not here, on purpose: hls, dash, concat, image2 and the other image demuxers, tee, sdp/rtp/rtsp,
 * imf, and every device or subtitle format.
 */
export const ALLOWED_DEMUXERS = [
  "mov", // mp4, mov, m4v, 3gp (external data references off: enable_drefs 0)
  "matroska", // mkv, webm
  "avi",
  "mpegts", // .ts, .m2ts
  "mpeg", // MPEG program stream: .mpg, .vob
  "flv",
  "ogg",
  "asf", // wmv
  "ivf", // VP8/VP9/AV1 in IVF
  "gif", // animated GIF as a video
  "h264", // raw elementary streams
  "hevc",
  "mpegvideo",
  "m4v",
] as const;

/** The value of `-format_whitelist`: every name of the allowed demuxers (FFmpeg matches any name of a demuxer). */
const FORMAT_WHITELIST = ["mov", "mp4", "m4a", "3gp", "3g2", "mj2", "matroska", "webm", ...ALLOWED_DEMUXERS.slice(2)].join(",");

/**
 * The allowed demuxer for ffprobe's `format_name` (e.g. "mov,mp4,m4a,3gp,3g2,mj2" → "mov"), or undefined when none of
 * its names is allowed.
 */
export function allowedDemuxer(formatName: string): string | undefined {
  const names = formatName.split(",");
  if (names.includes("mov") || names.includes("mp4")) return "mov";
  if (names.includes("matroska") || names.includes("webm")) return "matroska";
  return (ALLOWED_DEMUXERS as readonly string[]).find((d) => names.includes(d));
}

export interface UntrustedInputOptions {
  /** The demuxer to force (from `allowedDemuxer` of the probe); absent for ffprobe, which detects it. */
  demuxer?: string;
  /** The pixel limit (`maxInputPixels`); the decoders get `decoderMaxPixels` of it. */
  maxInputPixels: number;
}

/**
 * Input options and the input itself (`... -i file:/abs/path`) for running ffprobe or ffmpeg on a local file whose
 * bytes come from a user: see the file comment for each option.
 */
export function untrustedInputArgs(file: string, opts: UntrustedInputOptions): string[] {
  return [
    "-protocol_whitelist", "file",
    "-format_whitelist", FORMAT_WHITELIST,
    ...(opts.demuxer ? ["-f", opts.demuxer] : []),
    ...(opts.demuxer === "mov" ? ["-enable_drefs", "0"] : []),
    "-max_pixels", String(decoderMaxPixels(opts.maxInputPixels)),
    "-i", `file:${path.resolve(file)}`,
  ];
}

/**
 * Clear reasons for the failures the options of `untrustedInputArgs` cause (for `SpawnOptions.explain`): a demuxer
 * outside the list, a protocol outside the whitelist, a frame over the pixel limit.
 */
export function explainUntrustedFailure(maxInputPixels: number): (stderr: string) => string | undefined {
  return (stderr) => {
    const format = /\[([A-Za-z0-9_,]+) @ 0x[0-9a-fA-F]+\] Format not on whitelist/.exec(stderr);
    if (format) {
      const name = format[1].split(",")[0];
      if (name === "image2" || name.endsWith("_pipe")) return `a still image (${name}), not a video; give it as an image (--image, an image part)`;
      return `${name} is not a video container videolm reads (playlists, file lists, image sequences and other media that refer to other files are refused; accepted: mp4/mov, mkv/webm, avi, mpeg-ts, mpeg-ps, flv, ogg, asf/wmv, ivf, gif, raw h264/hevc/mpeg video)`;
    }
    const protocol = /Protocol '([^']*)' not on whitelist/.exec(stderr);
    if (protocol) return `the media refers to another file or URL (protocol ${protocol[1]}); videolm opens only the file itself`;
    const pixels = /Picture size (\d+)x(\d+) exceeds specified max pixel count/.exec(stderr);
    if (pixels) return pixelLimitReason(Number(pixels[1]), Number(pixels[2]), maxInputPixels, true);
    return undefined;
  };
}
