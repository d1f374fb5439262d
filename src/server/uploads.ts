/**
 * Videos uploaded by the web app (or any client): raw request bodies streamed to a private temporary folder, with a
 * per-file size limit and a total budget (the oldest uploads are dropped to make room). Requests refer to an upload
 * as `upload://<id>`. The folder is removed when the server closes.
 */
import { randomBytes } from "node:crypto";
import { createWriteStream, rmSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import type { IncomingMessage } from "node:http";
import os from "node:os";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { HttpError } from "./errors.js";
import { tooLarge } from "./http.js";

export interface Upload {
  id: string;
  path: string;
  filename: string;
  contentType: string;
  bytes: number;
  createdAt: number;
}

export interface UploadLimits {
  maxBytes: number;
  maxTotalBytes: number;
  /** Uploads older than this are removed (milliseconds). */
  ttlMs: number;
}

export const UPLOAD_SCHEME = "upload://";

export class UploadStore {
  private readonly uploads = new Map<string, Upload>();
  private constructor(
    readonly dir: string,
    private readonly limits: UploadLimits,
  ) {}

  static async create(limits: UploadLimits, base = os.tmpdir()): Promise<UploadStore> {
    return new UploadStore(await mkdtemp(path.join(base, "videolm-uploads-")), limits);
  }

  get count(): number {
    return this.uploads.size;
  }

  /** Streams the request body into a new upload; 413 past the limit (the partial file is removed). */
  async receive(req: IncomingMessage, filename: string): Promise<Upload> {
    const { maxBytes } = this.limits;
    const declared = Number(req.headers["content-length"]);
    if (Number.isFinite(declared) && declared > maxBytes) throw tooLarge("the upload", maxBytes, "--max-upload-bytes");
    this.expire();
    const id = `upl_${randomBytes(12).toString("hex")}`;
    const file = path.join(this.dir, id);
    let bytes = 0;
    let over = false;
    const counted = async function* () {
      for await (const chunk of req as AsyncIterable<Buffer>) {
        bytes += chunk.length;
        if (bytes > maxBytes) {
          over = true;
          throw new Error("too large");
        }
        yield chunk;
      }
    };
    try {
      await pipeline(counted(), createWriteStream(file));
    } catch (err) {
      await rm(file, { force: true });
      if (over) throw tooLarge("the upload", maxBytes, "--max-upload-bytes");
      throw err;
    }
    if (bytes === 0) {
      await rm(file, { force: true });
      throw new HttpError(400, "the upload is empty; send the video file as the request body", "invalid_request_error", null, "empty_upload");
    }
    const upload: Upload = { id, path: file, filename: filename.slice(0, 200), contentType: String(req.headers["content-type"] ?? "application/octet-stream"), bytes, createdAt: Date.now() };
    this.uploads.set(id, upload);
    await this.makeRoom(id);
    return upload;
  }

  get(id: string): Upload | undefined {
    this.expire();
    return this.uploads.get(id);
  }

  async remove(id: string): Promise<boolean> {
    const u = this.uploads.get(id);
    if (!u) return false;
    this.uploads.delete(id);
    await rm(u.path, { force: true });
    return true;
  }

  /** Drops the oldest uploads (never `keep`) until the total fits the budget. */
  private async makeRoom(keep: string): Promise<void> {
    let total = [...this.uploads.values()].reduce((s, u) => s + u.bytes, 0);
    for (const u of [...this.uploads.values()]) {
      if (total <= this.limits.maxTotalBytes) break;
      if (u.id === keep) continue;
      total -= u.bytes;
      await this.remove(u.id);
    }
  }

  private expire(): void {
    const now = Date.now();
    for (const u of this.uploads.values()) if (now - u.createdAt > this.limits.ttlMs) void this.remove(u.id);
  }

  /** Removes every upload and the folder (synchronous, so it also works from an exit handler). */
  close(): void {
    this.uploads.clear();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
