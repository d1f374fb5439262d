/**
 * Shared setup for the server tests: the tiny checkpoint loaded once per file, a listening videolm server, a small
 * test video made with ffmpeg, a local "media host" (plain node:http) and an SSE reader.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { VideoModel } from "../src/engine/model.js";
import { locateFfmpeg } from "../src/media/ffmpeg.js";
import { VideolmServer, type ServerOptions } from "../src/server/server.js";
import { materializeTinyCheckpoint, repoRoot, testCacheDir } from "../src/testing/tiny-checkpoint.js";

export const ROOT = repoRoot();
export const FIXTURES = path.join(ROOT, "test/fixtures/qwen2-vl");
export const golden = JSON.parse(fs.readFileSync(path.join(FIXTURES, "qwen2-vl-tiny/golden.json"), "utf8"));

let modelPromise: Promise<VideoModel> | undefined;
export function tinyModel(): Promise<VideoModel> {
  modelPromise ??= materializeTinyCheckpoint(path.join(FIXTURES, "qwen2-vl-tiny")).then((dir) => VideoModel.load(dir, { cacheDir: testCacheDir() }));
  return modelPromise;
}

export async function startServer(options: Partial<ServerOptions> = {}): Promise<VideolmServer> {
  return VideolmServer.start(await tinyModel(), { port: 0, log: () => {}, ...options });
}

/** A 2 s, 10 fps, 56×56 H.264 test clip (20 frames). */
export function makeTestVideo(dir: string, name = "clip.mp4", seconds = 2): string {
  const file = path.join(dir, name);
  execFileSync(locateFfmpeg().ffmpeg, ["-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=56x56:rate=10", "-t", String(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", file]);
  return file;
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export interface MediaHost {
  url: string;
  close(): Promise<void>;
  hits: string[];
}

/** A local HTTP server for media URLs: /clip.mp4, /image.png, /notes.txt, /redirect?to=URL, /missing (404), /hang. */
export async function startMediaHost(files: { video: string; image: string }): Promise<MediaHost> {
  const hits: string[] = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    hits.push(url.pathname);
    const send = (type: string, data: Buffer) => {
      res.writeHead(200, { "Content-Type": type, "Content-Length": data.length });
      res.end(data);
    };
    if (url.pathname === "/clip.mp4") return send("video/mp4", fs.readFileSync(files.video));
    if (url.pathname === "/image.png") return send("image/png", fs.readFileSync(files.image));
    if (url.pathname === "/notes.txt") return send("text/plain", Buffer.from("this is not a video\n".repeat(50)));
    if (url.pathname === "/redirect") {
      res.writeHead(302, { Location: url.searchParams.get("to") ?? "/" });
      return res.end();
    }
    if (url.pathname === "/hang") return; // never answers
    res.writeHead(404);
    res.end("not found");
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    hits,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** Parses a complete SSE body into its JSON events (and whether it ended with [DONE]). */
export function parseSse(text: string): { events: Record<string, unknown>[]; done: boolean } {
  const events: Record<string, unknown>[] = [];
  let done = false;
  for (const block of text.split("\n\n")) {
    const line = block.trim();
    if (!line) continue;
    if (!line.startsWith("data: ")) throw new Error(`not an SSE data line: ${line.slice(0, 80)}`);
    const data = line.slice(6);
    if (data === "[DONE]") done = true;
    else events.push(JSON.parse(data));
  }
  return { events, done };
}

export async function postJson(base: string, p: string, body: unknown, init: RequestInit = {}): Promise<Response> {
  return fetch(base + p, { method: "POST", headers: { "Content-Type": "application/json" }, body: typeof body === "string" ? body : JSON.stringify(body), ...init });
}

export function pngDataUrl(file: string): string {
  return `data:image/png;base64,${fs.readFileSync(file).toString("base64")}`;
}

export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > timeoutMs) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 25));
  }
}
