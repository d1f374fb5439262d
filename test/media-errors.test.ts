/**
 * Bad input and limits: each failure is a one-line VideolmError naming the source and the reason, nothing hangs,
 * and no child process or temporary file is left behind.
 */
import { copyFileSync, readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { pathToFileURL } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { VideolmError } from "../src/errors.js";
import { liveChildCount } from "../src/media/ffmpeg.js";
import { probeVideo } from "../src/media/probe.js";
import { liveTempDirCount } from "../src/media/sources.js";
import { loadVideo, planVideo } from "../src/media/video.js";
import { qwenVlUtilsDefaults } from "../src/sampling/qwen-vl-utils.js";
import { H264, makeTempDir, makeVideo, runFfmpeg } from "./media-helpers.js";

const tmp = makeTempDir();
const p = (name: string) => `${tmp.dir}/${name}`;
const defaults = qwenVlUtilsDefaults(14);
let good: string;

/** Expects `promise` to reject with a one-line VideolmError whose message contains `source` and matches `reason`. */
async function expectFailure(promise: Promise<unknown>, source: string, reason: RegExp): Promise<void> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(VideolmError);
  const message = (err as Error).message;
  if (process.env.SHOW_ERRORS) console.log("ERR:", message);
  expect(message).toContain(source);
  expect(message).toMatch(reason);
  expect(message).not.toContain("\n");
}

beforeAll(() => {
  good = makeVideo(p("good.mp4"), { width: 64, height: 48, rate: "10", frames: 20, codec: H264 });
});
afterEach(() => {
  expect(liveChildCount()).toBe(0);
  expect(liveTempDirCount()).toBe(0);
});
afterAll(() => tmp.cleanup());

describe("bad files", () => {
  it("missing file", async () => {
    await expectFailure(loadVideo(p("nope.mp4"), { defaults }), p("nope.mp4"), /file not found/);
  });
  it("a file:// URL to a missing file", async () => {
    const url = pathToFileURL(p("nope.mp4")).href;
    await expectFailure(loadVideo(url, { defaults }), url, /file not found/);
  });
  it("a text file named .mp4", async () => {
    writeFileSync(p("text.mp4"), "this is not a video\n".repeat(50));
    await expectFailure(loadVideo(p("text.mp4"), { defaults }), p("text.mp4"), /not a readable video file \(Invalid data found when processing input\)$/);
  });
  it("an empty file", async () => {
    writeFileSync(p("empty.mp4"), "");
    await expectFailure(loadVideo(p("empty.mp4"), { defaults }), p("empty.mp4"), /empty/);
  });
  it("truncated mp4 (index at the end, cut off)", async () => {
    copyFileSync(good, p("trunc.mp4"));
    truncateSync(p("trunc.mp4"), Math.floor(statSync(good).size / 2));
    await expectFailure(loadVideo(p("trunc.mp4"), { defaults }), p("trunc.mp4"), /not a readable video file/);
  });
  it("truncated mp4 with the index first (header promises frames the data lacks)", async () => {
    const fast = p("fast.mp4");
    runFfmpeg(["-i", good, "-c", "copy", "-movflags", "+faststart", fast]);
    copyFileSync(fast, p("fast-trunc.mp4"));
    truncateSync(p("fast-trunc.mp4"), Math.floor(statSync(fast).size * 0.6));
    const probe = await probeVideo(p("fast-trunc.mp4"));
    expect(probe.frameCount).toBe(20); // the header still says 20
    await expectFailure(loadVideo(p("fast-trunc.mp4"), { defaults, nframes: 20 }), p("fast-trunc.mp4"), /ended after \d+ of 20 selected frames/);
  });
  it("audio only", async () => {
    runFfmpeg(["-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "aac", p("audio.mp4")]);
    await expectFailure(loadVideo(p("audio.mp4"), { defaults }), p("audio.mp4"), /no video stream \(only audio\)/);
  });
  it("absurd dimensions (a 20000-pixel-wide stream)", async () => {
    runFfmpeg(["-f", "lavfi", "-i", "color=size=20000x2:rate=1", "-frames:v", "1", "-c:v", "ffv1", p("wide.mkv")]);
    await expectFailure(probeVideo(p("wide.mkv")), p("wide.mkv"), /absurd frame size 20000x2/);
  });
  it("a directory", async () => {
    await expectFailure(loadVideo(tmp.dir, { defaults }), tmp.dir, /not a regular file/);
  });
  it("malformed http URL", async () => {
    await expectFailure(loadVideo("http://[oops/v.mp4", { defaults }), "http://[oops/v.mp4", /malformed URL/);
  });
  it("unsupported scheme", async () => {
    await expectFailure(loadVideo("ftp://example.com/v.mp4", { defaults }), "ftp://example.com/v.mp4", /unsupported URL scheme/);
  });
});

describe("timeouts and abort", () => {
  it("abort mid-decode kills ffmpeg and rejects", async () => {
    const long = makeVideo(p("long.mkv"), { width: 64, height: 48, rate: "25", frames: 400, codec: ["-c:v", "ffv1"], code: false });
    const controller = new AbortController();
    const promise = loadVideo(long, {
      defaults, nframes: 200, signal: controller.signal, onProgress: (done) => { if (done === 2) controller.abort(); },
    });
    await expectFailure(promise, long, /aborted/);
  });
  it("an already-aborted signal never starts a child", async () => {
    await expectFailure(loadVideo(good, { defaults, signal: AbortSignal.abort() }), good, /aborted/);
  });
  it("decode timeout", async () => {
    await expectFailure(loadVideo(p("long.mkv"), { defaults, nframes: 200, decodeTimeoutMs: 1 }), p("long.mkv"), /did not finish within 1 ms \(timeout\)/);
  });
});

describe("URLs", () => {
  let server: http.Server;
  let base: string;
  let closedPortUrl: string;
  const video = () => readFileSync(good);
  beforeAll(async () => {
    server = http.createServer((req, res) => {
      if (req.url === "/good.mp4") {
        res.writeHead(200, { "content-type": "video/mp4", "content-length": String(video().length) });
        res.end(video());
      } else if (req.url === "/big-declared") {
        res.writeHead(200, { "content-length": String(5_000_000) });
        res.end(Buffer.alloc(5_000_000));
      } else if (req.url === "/big-chunked") {
        res.writeHead(200, { "content-type": "video/mp4" }); // no content-length: the limit is enforced while streaming
        let sent = 0;
        const push = () => {
          while (sent < 5_000_000) {
            sent += 65536;
            if (!res.write(Buffer.alloc(65536))) return void res.once("drain", push);
          }
          res.end();
        };
        push();
      } else if (req.url === "/slow") {
        res.writeHead(200, { "content-type": "video/mp4" });
        res.write(Buffer.alloc(1000)); // then never finishes
      } else {
        res.writeHead(404);
        res.end();
      }
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const probe = http.createServer();
    await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
    closedPortUrl = `http://127.0.0.1:${(probe.address() as AddressInfo).port}/v.mp4`;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it("http URL: downloaded to a temporary file that is removed afterwards", async () => {
    const scratch = makeTempDir();
    try {
      const v = await loadVideo(`${base}/good.mp4`, { defaults, tempDir: scratch.dir });
      expect(v.frameIndices).toEqual([0, 6, 13, 19]); // 20 frames @ 10 fps → 4 (min_frames)
      expect(v.probe.source).toBe(`${base}/good.mp4`);
      expect(readdirSync(scratch.dir)).toEqual([]);
    } finally {
      scratch.cleanup();
    }
  });
  it("unreachable URL (closed port)", async () => {
    await expectFailure(loadVideo(closedPortUrl, { defaults }), closedPortUrl, /cannot download \(ECONNREFUSED\)/);
  });
  it("HTTP error status", async () => {
    await expectFailure(loadVideo(`${base}/missing.mp4`, { defaults }), `${base}/missing.mp4`, /HTTP 404/);
  });
  it("oversized response, declared by Content-Length", async () => {
    await expectFailure(loadVideo(`${base}/big-declared`, { defaults, maxBytes: 1_000_000 }), `${base}/big-declared`, /more than the 976.6 KiB limit/);
  });
  it("oversized response, streamed without Content-Length", async () => {
    const scratch = makeTempDir();
    try {
      await expectFailure(loadVideo(`${base}/big-chunked`, { defaults, maxBytes: 1_000_000, tempDir: scratch.dir }), `${base}/big-chunked`, /larger than the 976.6 KiB limit/);
      expect(readdirSync(scratch.dir)).toEqual([]);
    } finally {
      scratch.cleanup();
    }
  });
  it("download that never finishes hits its time limit", async () => {
    await expectFailure(loadVideo(`${base}/slow`, { defaults, downloadTimeoutMs: 300 }), `${base}/slow`, /did not finish within 300 ms/);
  });
  it("data: URL round trip, and an oversized one refused before decoding", async () => {
    const url = `data:video/mp4;base64,${video().toString("base64")}`;
    const v = await planVideo(url, { defaults });
    expect(v.probe.frameCount).toBe(20);
    expect(v.probe.source).toMatch(/^data: URL \(video\/mp4;base64, \d+ characters\)$/);
    await expectFailure(loadVideo(url, { defaults, maxBytes: 1000 }), "data: URL (video/mp4;base64", /more than the 1000 bytes limit/);
  });
});
