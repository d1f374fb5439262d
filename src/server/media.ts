/**
 * Turning the URLs of a request's image/video parts into inputs the engine reads, under the server's rules:
 *
 *   http(s)://   downloaded by the SSRF-guarded fetcher (ssrf.ts) with --max-media-bytes / --media-timeout
 *   data:        decoded (the body limit already bounds it)
 *   file://      only inside --allowed-media-dir (after resolving symlinks); refused otherwise
 *   upload://id  a file uploaded to POST /v1/uploads
 * Bare paths and other schemes are refused. Downloads go to a per-request temporary folder that `cleanup()` removes.
 */
import { mkdtemp, realpath, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { ChatRequestMessage, ContentPart } from "../engine/request.js";
import type { WireMediaPart, WireMessage } from "./chat-request.js";
import { badRequest, HttpError } from "./errors.js";
import { formatBytes } from "./http.js";
import { fetchToBuffer, fetchToFile } from "./ssrf.js";
import { UPLOAD_SCHEME, type UploadStore } from "./uploads.js";

export interface MediaPolicy {
  allowPrivate: boolean;
  allowedMediaDir?: string;
  maxMediaBytes: number;
  mediaTimeoutMs: number;
  uploads: UploadStore;
}

export interface ResolvedMessages {
  messages: ChatRequestMessage[];
  /** Local path → the URL the client gave (to name the client's URL, not a temporary file, in error messages). */
  labels: Map<string, string>;
  cleanup(): Promise<void>;
}

/** Replaces local paths in an engine message with the URLs the client sent. */
export function relabel(message: string, labels: Map<string, string>): string {
  let out = message;
  for (const [local, url] of labels) out = out.split(local).join(url.length > 120 ? `${url.slice(0, 117)}...` : url);
  return out;
}

function decodeDataUrl(url: string, param: string, maxBytes: number): Buffer {
  const comma = url.indexOf(",");
  if (comma < 0) throw badRequest(`${param}: malformed data: URL (no comma before the payload)`, param, "invalid_media_url");
  const header = url.slice(5, comma);
  const payload = url.slice(comma + 1);
  let data: Buffer;
  try {
    data = /;base64$/i.test(header) ? Buffer.from(payload, "base64") : Buffer.from(decodeURIComponent(payload), "latin1");
  } catch {
    throw badRequest(`${param}: malformed data: URL`, param, "invalid_media_url");
  }
  if (data.length === 0) throw badRequest(`${param}: the data: URL is empty`, param, "invalid_media_url");
  if (data.length > maxBytes) throw badRequest(`${param}: the data: URL holds ${formatBytes(data.length)}, more than the server's limit of ${formatBytes(maxBytes)} (--max-media-bytes)`, param, "media_too_large");
  return data;
}

async function allowedFile(url: string, param: string, policy: MediaPolicy): Promise<string> {
  if (!policy.allowedMediaDir) throw badRequest(`${param}: file:// URLs are disabled on this server (start it with --allowed-media-dir DIR to serve files from DIR)`, param, "file_urls_disabled");
  let file: string;
  try {
    file = fileURLToPath(url);
  } catch {
    throw badRequest(`${param}: not a valid file:// URL`, param, "invalid_media_url");
  }
  const root = await realpath(policy.allowedMediaDir);
  let real: string;
  try {
    real = await realpath(file);
  } catch {
    // Say "outside" rather than "not found" for paths outside the folder, so the reply does not probe the disk.
    const inside = path.resolve(file).startsWith(root + path.sep);
    throw badRequest(inside ? `${param}: ${url}: file not found` : `${param}: ${url} is outside the allowed media folder (--allowed-media-dir)`, param, inside ? "media_not_found" : "path_not_allowed");
  }
  if (!real.startsWith(root + path.sep)) throw badRequest(`${param}: ${url} is outside the allowed media folder (--allowed-media-dir)`, param, "path_not_allowed");
  if (!(await stat(real)).isFile()) throw badRequest(`${param}: ${url} is not a regular file`, param, "invalid_media_url");
  return real;
}

/** The engine's source for one media part (a local path or image bytes). */
async function resolveOne(part: WireMediaPart, policy: MediaPolicy, tempDir: () => Promise<string>, index: number, signal: AbortSignal): Promise<string | Buffer> {
  const { url, param } = part;
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase();
  const fetchOptions = { maxBytes: policy.maxMediaBytes, timeoutMs: policy.mediaTimeoutMs, allowPrivate: policy.allowPrivate, signal, param };
  switch (scheme) {
    case "http":
    case "https":
      if (part.kind === "image") return (await fetchToBuffer(url, fetchOptions)).data;
      else {
        const file = path.join(await tempDir(), `media-${index}`);
        await fetchToFile(url, file, fetchOptions);
        return file;
      }
    case "data": {
      const data = decodeDataUrl(url, param, policy.maxMediaBytes);
      if (part.kind === "image") return data;
      const file = path.join(await tempDir(), `media-${index}`);
      await writeFile(file, data);
      return file;
    }
    case "file":
      return allowedFile(url, param, policy);
    case "upload": {
      const id = url.slice(UPLOAD_SCHEME.length);
      const upload = policy.uploads.get(id);
      if (!url.startsWith(UPLOAD_SCHEME) || !upload) throw new HttpError(400, `${param}: no upload ${JSON.stringify(id.length > 100 ? `${id.slice(0, 100)}…` : id)} on this server (uploads expire, and are removed when the server restarts)`, "invalid_request_error", param, "upload_not_found");
      return upload.path;
    }
    default:
      throw badRequest(
        `${param}: unsupported media URL ${JSON.stringify(url.slice(0, 80))} (use http(s)://, data:, upload://<id> from POST /v1/uploads, or file:// inside --allowed-media-dir)`,
        param,
        "invalid_media_url",
      );
  }
}

export async function resolveMessages(wire: WireMessage[], policy: MediaPolicy, signal: AbortSignal): Promise<ResolvedMessages> {
  let dir: string | undefined;
  const tempDir = async () => (dir ??= await mkdtemp(path.join(os.tmpdir(), "videolm-request-")));
  const cleanup = async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  };
  try {
    let index = 0;
    const messages: ChatRequestMessage[] = [];
    const labels = new Map<string, string>();
    for (const m of wire) {
      if (typeof m.content === "string") {
        messages.push({ role: m.role, content: m.content });
        continue;
      }
      const content: ContentPart[] = [];
      for (const p of m.content) {
        if (p.kind === "text") content.push({ type: "text", text: p.text });
        else {
          const source = await resolveOne(p, policy, tempDir, index++, signal);
          if (typeof source === "string") labels.set(source, p.url);
          content.push(p.kind === "image" ? { type: "image", image: source, ...p.options } : { type: "video", video: source, ...p.options });
        }
      }
      messages.push({ role: m.role, content });
    }
    return { messages, labels, cleanup };
  } catch (err) {
    await cleanup();
    throw err;
  }
}
