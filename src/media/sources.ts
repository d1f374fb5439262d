/**
 * Turning a video source string into a local file ffmpeg can read.
 *
 *  - local path, or `file://` URL: used in place (must exist and be a regular file)
 *  - `http://` / `https://` URL: streamed to a temporary file, with a byte limit (checked against Content-Length up
 *    front and while streaming) and a wall-clock limit for the whole download
 *  - `data:` URL (`data:video/mp4;base64,…` or percent-encoded): its size is checked before decoding, then written to
 *    a temporary file
 *
 * Temporary files live in a private `videolm-*` folder under the OS temp dir; `withLocalVideoFile` removes it when the
 * callback settles (success or failure), and any folder still present when Node exits is removed then.
 */
import { createWriteStream, rmSync } from "node:fs";
import { mkdtemp, rm, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { fileURLToPath } from "node:url";
import { VideolmError } from "../errors.js";
import { formatMs } from "./ffmpeg.js";

export interface SourceOptions {
  signal?: AbortSignal;
  /** Largest download or data: URL accepted, in bytes. Default 2 GiB. */
  maxBytes?: number;
  /** Wall-clock limit for an http(s) download, in milliseconds. Default 10 minutes. */
  downloadTimeoutMs?: number;
  /** Folder for temporary files; default os.tmpdir(). */
  tempDir?: string;
}

export const DEFAULT_MAX_SOURCE_BYTES = 2 * 1024 ** 3;

export interface LocalVideoFile {
  /** A path ffmpeg can open. */
  path: string;
  /** How to name the source in messages: the path, the URL, or a short description of a data: URL. */
  label: string;
  /** True when `path` is a temporary copy. */
  temporary: boolean;
}

const liveTempDirs = new Set<string>();
let exitHookInstalled = false;

async function makeTempDir(base: string | undefined): Promise<string> {
  const dir = await mkdtemp(path.join(base ?? os.tmpdir(), "videolm-"));
  liveTempDirs.add(dir);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once("exit", () => {
      for (const d of liveTempDirs) rmSync(d, { recursive: true, force: true });
    });
  }
  return dir;
}

async function removeTempDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  liveTempDirs.delete(dir);
}

/** Temporary folders created here and not yet removed (tests assert it returns to 0). */
export function liveTempDirCount(): number {
  return liveTempDirs.size;
}

function formatBytes(n: number): string {
  if (n >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(1)} GiB`;
  if (n >= 1024 ** 2) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} bytes`;
}

/** A short, safe label for a data: URL (never the payload). */
function dataUrlLabel(url: string): string {
  const comma = url.indexOf(",");
  const header = url.slice(5, comma < 0 ? Math.min(url.length, 60) : Math.min(comma, 60));
  return `data: URL (${header || "no type"}, ${url.length} characters)`;
}

function decodeDataUrl(url: string, label: string, maxBytes: number): Buffer {
  const comma = url.indexOf(",");
  if (comma < 0) throw new VideolmError(`${label}: malformed data: URL (no comma before the payload)`);
  const header = url.slice(5, comma);
  const payload = url.slice(comma + 1);
  const isBase64 = /;base64$/i.test(header);
  // Upper bound of the decoded size, checked before allocating anything.
  const estimate = isBase64 ? Math.floor((payload.length * 3) / 4) : payload.length;
  if (estimate > maxBytes) {
    throw new VideolmError(`${label}: data: URL holds about ${formatBytes(estimate)}, more than the ${formatBytes(maxBytes)} limit (maxBytes)`);
  }
  const data = isBase64 ? Buffer.from(payload, "base64") : Buffer.from(decodeURIComponent(payload), "latin1");
  if (data.length === 0) throw new VideolmError(`${label}: data: URL is empty`);
  return data;
}

async function download(url: string, file: string, opts: SourceOptions, maxBytes: number): Promise<void> {
  const timeoutMs = opts.downloadTimeoutMs ?? 600_000;
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
  const why = (err: unknown): string => {
    if (timeout.aborted) return `download did not finish within ${formatMs(timeoutMs)} (downloadTimeoutMs)`;
    if (opts.signal?.aborted) return "aborted";
    const cause = (err as { cause?: { code?: string; message?: string } })?.cause;
    return `cannot download (${cause?.code ?? cause?.message ?? (err as Error)?.message ?? String(err)})`;
  };
  let response: Response;
  try {
    response = await fetch(url, { signal, redirect: "follow" });
  } catch (err) {
    throw new VideolmError(`${url}: ${why(err)}`, { cause: err });
  }
  if (!response.ok || !response.body) {
    await response.body?.cancel().catch(() => {});
    throw new VideolmError(`${url}: server answered HTTP ${response.status} ${response.statusText}`.trimEnd());
  }
  const declared = Number(response.headers.get("content-length"));
  if (Number.isFinite(declared) && declared > maxBytes) {
    await response.body.cancel().catch(() => {});
    throw new VideolmError(`${url}: response is ${formatBytes(declared)}, more than the ${formatBytes(maxBytes)} limit (maxBytes)`);
  }
  let received = 0;
  let tooLarge = false;
  const body = Readable.fromWeb(response.body as import("node:stream/web").ReadableStream<Uint8Array>);
  const limiter = async function* (source: AsyncIterable<Buffer>) {
    for await (const chunk of source) {
      received += chunk.length;
      if (received > maxBytes) {
        tooLarge = true;
        throw new Error("too large");
      }
      yield chunk;
    }
  };
  try {
    await pipeline(body, limiter, createWriteStream(file), { signal });
  } catch (err) {
    if (tooLarge) throw new VideolmError(`${url}: response is larger than the ${formatBytes(maxBytes)} limit (maxBytes)`);
    throw new VideolmError(`${url}: ${why(err)}`, { cause: err });
  }
  if (received === 0) throw new VideolmError(`${url}: server sent an empty body`);
}

function extensionOf(pathname: string): string {
  const ext = path.extname(pathname).toLowerCase();
  return /^\.[a-z0-9]{1,5}$/.test(ext) ? ext : "";
}

/**
 * Resolves `source` to a local file, runs `fn` on it, and removes any temporary copy afterwards (whether `fn`
 * succeeded or threw).
 */
export async function withLocalVideoFile<T>(source: string, opts: SourceOptions, fn: (file: LocalVideoFile) => Promise<T>): Promise<T> {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_SOURCE_BYTES;
  if (/^https?:\/\//i.test(source)) {
    let url: URL;
    try {
      url = new URL(source);
    } catch (err) {
      throw new VideolmError(`${source}: malformed URL`, { cause: err });
    }
    const dir = await makeTempDir(opts.tempDir);
    try {
      const file = path.join(dir, `download${extensionOf(url.pathname)}`);
      await download(source, file, opts, maxBytes);
      return await fn({ path: file, label: source, temporary: true });
    } finally {
      await removeTempDir(dir);
    }
  }
  if (/^data:/i.test(source)) {
    const label = dataUrlLabel(source);
    const data = decodeDataUrl(source, label, maxBytes);
    const dir = await makeTempDir(opts.tempDir);
    try {
      const file = path.join(dir, "data");
      await pipeline(Readable.from([data]), createWriteStream(file));
      return await fn({ path: file, label, temporary: true });
    } finally {
      await removeTempDir(dir);
    }
  }
  let file = source;
  if (/^file:/i.test(source)) {
    try {
      file = fileURLToPath(source);
    } catch (err) {
      throw new VideolmError(`${source}: not a valid file:// URL`, { cause: err });
    }
  } else if (/^[a-z][a-z0-9+.-]+:\/\//i.test(source)) {
    throw new VideolmError(`${source}: unsupported URL scheme (use a local path, file://, http(s):// or data:)`);
  }
  let info;
  try {
    info = await stat(file);
  } catch {
    throw new VideolmError(`${source}: file not found`);
  }
  if (!info.isFile()) throw new VideolmError(`${source}: not a regular file`);
  if (info.size === 0) throw new VideolmError(`${source}: file is empty`);
  return fn({ path: file, label: source, temporary: false });
}

