/**
 * Hostile media (issue 14, classes 1 and 4), against the real FFmpeg tools and sharp:
 *  1. media that makes FFmpeg open another file — an HLS playlist that is also valid MPEG-TS, a plain playlist, an
 *     ffconcat list, nested protocols in the file name. The "other file" is a FIFO canary: opening it for reading is
 *     detected (our writer's open completes), so the tests prove it is never opened, not just that its frames do not
 *     come back. Were it opened, it would serve a red video.
 *  2. decompression bombs — a 223-byte JPEG and a PNG claiming 16383×16383 pixels, an H.264 file of 8192×8192 frames:
 *     refused from the header within 1 s, with the process's resident memory growing by less than 100 MB (before the
 *     fix: 2.6–37 s and 1.2–1.7 GB each on the 2-core reference machine).
 */
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { RequestPreparer } from "../src/engine/preparer.js";
import type { ContentPart } from "../src/engine/request.js";
import { VideolmError } from "../src/errors.js";
import { decodeFrames } from "../src/media/decode-frames.js";
import { ALLOWED_DEMUXERS, allowedDemuxer, liveChildCount } from "../src/media/ffmpeg.js";
import { decodeImage } from "../src/media/image.js";
import { DEFAULT_MAX_INPUT_PIXELS } from "../src/media/limits.js";
import { probeVideo } from "../src/media/probe.js";
import { liveTempDirCount } from "../src/media/sources.js";
import { loadVideo, planVideo } from "../src/media/video.js";
import type { RgbImage } from "../src/processing/rgb-image.js";
import { qwenVlUtilsDefaults } from "../src/sampling/qwen-vl-utils.js";
import { materializeTinyCheckpoint, repoRoot } from "../src/testing/tiny-checkpoint.js";
import { makeTempDir, runFfmpeg } from "./media-helpers.js";

const tmp = makeTempDir();
const p = (name: string) => path.join(tmp.dir, name);
const defaults = qwenVlUtilsDefaults(14);
const canWatchOpens = process.platform !== "win32";

/** Rejection of `promise` as a one-line VideolmError (no stack in the message), or the resolved value. */
async function outcome<T>(promise: Promise<T>): Promise<{ value?: T; error?: VideolmError }> {
  try {
    return { value: await promise };
  } catch (err) {
    expect(err).toBeInstanceOf(VideolmError);
    expect((err as Error).message).not.toContain("\n");
    if (process.env.SHOW_ERRORS) console.log("ERR:", (err as Error).message);
    return { error: err as VideolmError };
  }
}

function isRed(frame: RgbImage): boolean {
  const i = (Math.floor(frame.height / 2) * frame.width + Math.floor(frame.width / 2)) * 3;
  return frame.data[i] > 180 && frame.data[i + 1] < 80 && frame.data[i + 2] < 80;
}

/**
 * A FIFO at `file` standing for a secret video outside every allowed folder. `opened()` tells whether any process
 * opened it for reading (our pending writer's open then completes and serves the red video).
 */
function fifoCanary(file: string, secret: Buffer) {
  execFileSync("mkfifo", [file]);
  let opened = false;
  let releasing = false;
  const writer = fs.promises.open(file, "w").then(async (fh) => {
    if (!releasing) {
      opened = true;
      await fh.writeFile(secret).catch(() => {});
    }
    await fh.close();
  });
  return {
    opened: () => opened,
    /** Unblocks the pending writer (opening the FIFO ourselves) so no thread stays blocked. */
    async release() {
      releasing = true;
      const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
      try {
        await writer;
      } finally {
        fs.closeSync(fd);
      }
    },
  };
}

let secretTs: Buffer; // 10 red frames, MPEG-TS (what the canary would serve)
let blueTs: Buffer; // 10 blue frames, MPEG-TS
let blueMp4: string;

beforeAll(() => {
  runFfmpeg(["-f", "lavfi", "-i", "color=c=red:size=64x48:rate=10", "-frames:v", "10", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-f", "mpegts", p("red.ts")]);
  runFfmpeg(["-f", "lavfi", "-i", "color=c=blue:size=64x48:rate=10", "-frames:v", "10", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-f", "mpegts", p("blue.ts")]);
  blueMp4 = p("blue.mp4");
  runFfmpeg(["-f", "lavfi", "-i", "color=c=blue:size=64x48:rate=10", "-frames:v", "10", "-c:v", "libx264", "-pix_fmt", "yuv420p", blueMp4]);
  secretTs = fs.readFileSync(p("red.ts"));
  blueTs = fs.readFileSync(p("blue.ts"));
  expect(secretTs.length).toBeLessThan(60_000); // fits in a pipe buffer, so the canary's writer never blocks
});
afterEach(() => {
  expect(liveChildCount()).toBe(0);
  expect(liveTempDirCount()).toBe(0);
});
afterAll(() => tmp.cleanup());

const playlist = (target: string) => `#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:1.0,\n${target}\n#EXT-X-ENDLIST\n`;

describe.skipIf(!canWatchOpens)("media never makes FFmpeg open another file", () => {
  let n = 0;
  /** A fresh folder holding the canary `secret.ts`; runs `attack(dir)`, then checks the canary was never opened. */
  async function withCanary(attack: (dir: string, secret: string) => Promise<void>): Promise<void> {
    const dir = p(`case${n++}`);
    fs.mkdirSync(dir);
    const secret = path.join(dir, "secret.ts");
    const canary = fifoCanary(secret, secretTs);
    try {
      await attack(dir, secret);
      expect(canary.opened()).toBe(false);
    } finally {
      await canary.release();
    }
  }

  /** Loads `source` as a video: it must fail cleanly or give frames that are not the secret's. */
  async function expectNoSecret(source: string): Promise<void> {
    const { value, error } = await outcome(loadVideo(source, { defaults, nframes: 2 }));
    if (value) expect(value.frames.some(isRed)).toBe(false);
    else expect(error!.message).toMatch(/not a video container videolm reads|not a readable video file/);
  }

  it("an HLS playlist that is also MPEG-TS (ffprobe: mpegts; an older ffmpeg: hls), as a file and as a data: URL", async () => {
    await withCanary(async (dir, secret) => {
      const polyglot = Buffer.concat([Buffer.from(playlist(secret)), blueTs]);
      for (const name of ["clip.mp4", "clip.ts", "clip"]) {
        fs.writeFileSync(path.join(dir, name), polyglot);
        await expectNoSecret(path.join(dir, name));
      }
      await expectNoSecret(`data:video/mp4;base64,${polyglot.toString("base64")}`);
    });
  });

  it("plain HLS playlists (.m3u8, or named .mp4) are refused", async () => {
    await withCanary(async (dir, secret) => {
      for (const name of ["list.m3u8", "list.mp4"]) {
        fs.writeFileSync(path.join(dir, name), playlist(secret));
        const { error } = await outcome(loadVideo(path.join(dir, name), { defaults }));
        expect(error?.message).toMatch(/^.*list\.(m3u8|mp4): (hls is not a video container videolm reads|not a readable video file)/);
      }
      const { error } = await outcome(loadVideo(path.join(dir, "list.m3u8"), { defaults }));
      expect(error?.message).toContain("hls is not a video container videolm reads"); // every ffprobe detects .m3u8
    });
  });

  it("ffconcat lists are refused", async () => {
    await withCanary(async (dir) => {
      fs.writeFileSync(path.join(dir, "list.mp4"), "ffconcat version 1.0\nfile secret.ts\n");
      const { error } = await outcome(loadVideo(path.join(dir, "list.mp4"), { defaults }));
      expect(error?.message).toContain("concat is not a video container videolm reads");
    });
  });

  it("a file name that reads as a nested protocol (concat:, subfile) is opened as that literal file", async () => {
    const cwd = process.cwd();
    await withCanary(async (dir) => {
      process.chdir(dir); // relative names: the form in which FFmpeg would parse a protocol prefix
      try {
        for (const name of ["concat:secret.ts", "subfile,,start,0,end,0,,:secret.ts"]) {
          fs.copyFileSync(blueMp4, path.join(dir, name));
          const v = await loadVideo(name, { defaults, nframes: 2 });
          expect(v.frames.some(isRed)).toBe(false);
          expect(v.probe.demuxer).toBe("mov");
        }
      } finally {
        process.chdir(cwd);
      }
    });
  });

  it("a still image given as a video is refused as such (image demuxers are not allowed)", async () => {
    runFfmpeg(["-f", "lavfi", "-i", "color=c=blue:size=64x48", "-frames:v", "1", p("still.png")]);
    const { error } = await outcome(loadVideo(p("still.png"), { defaults }));
    expect(error?.message).toBe(`${p("still.png")}: a still image (png_pipe), not a video; give it as an image (--image, an image part)`);
  });

  it("an SVG image that references another local image does not load it", async () => {
    runFfmpeg(["-f", "lavfi", "-i", "color=c=red:size=64x48", "-frames:v", "1", p("secret.png")]);
    const href = (target: string) => `<image x="0" y="0" width="64" height="48" xlink:href="${target}"/>`;
    const svg = p("refs.svg");
    fs.writeFileSync(
      svg,
      `<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="64" height="48">${href(`file://${p("secret.png")}`)}${href("secret.png")}</svg>`,
    );
    const image = await decodeImage(svg);
    expect(image.width).toBe(64);
    expect(isRed(image)).toBe(false);
  });

  it("decoding uses the demuxer the probe detected; the allowed list holds only single-file containers", async () => {
    const probe = await probeVideo(blueMp4);
    expect(probe.demuxer).toBe("mov");
    expect(allowedDemuxer("matroska,webm")).toBe("matroska");
    expect(allowedDemuxer("hls")).toBeUndefined();
    for (const bad of ["hls", "dash", "concat", "image2", "tee", "sdp", "rtsp", "imf", "lavfi", "ffmetadata"]) {
      expect(ALLOWED_DEMUXERS as readonly string[]).not.toContain(bad);
    }
  });
});

// ---- decompression bombs ----------------------------------------------------------------------------------------

/** A 16383×16383 JPEG of 223 bytes: a 16×16 JPEG whose SOF0 header claims the large size. */
function jpegBomb(file: string): string {
  runFfmpeg(["-f", "lavfi", "-i", "color=c=green:size=16x16", "-frames:v", "1", p("small.jpg")]);
  const bytes = fs.readFileSync(p("small.jpg"));
  const sof = bytes.indexOf(Buffer.from([0xff, 0xc0]));
  bytes.writeUInt16BE(16383, sof + 5);
  bytes.writeUInt16BE(16383, sof + 7);
  fs.writeFileSync(file, bytes);
  return file;
}

/** A valid black 16383×16383 RGB PNG (deflated zeros, streamed: the generator itself stays small). */
async function pngBomb(file: string): Promise<string> {
  const side = 16383;
  const chunk = (type: string, data: Buffer) => {
    const head = Buffer.alloc(4);
    head.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, "latin1"), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(zlib.crc32(body));
    return Buffer.concat([head, body, crc]);
  };
  const idat = await new Promise<Buffer>((resolve, reject) => {
    const deflate = zlib.createDeflate({ level: 1 });
    const parts: Buffer[] = [];
    deflate.on("data", (c: Buffer) => parts.push(c));
    deflate.on("end", () => resolve(Buffer.concat(parts)));
    deflate.on("error", reject);
    const zeros = Buffer.alloc(1 << 22);
    let left = side * (1 + side * 3); // each row: filter byte 0, then black pixels
    const pump = () => {
      while (left > 0) {
        const n = Math.min(left, zeros.length);
        left -= n;
        if (!deflate.write(zeros.subarray(0, n))) return void deflate.once("drain", pump);
      }
      deflate.end();
    };
    pump();
  });
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(side, 0);
  ihdr.writeUInt32BE(side, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  fs.writeFileSync(file, Buffer.concat([Buffer.from("89504e470d0a1a0a", "hex"), chunk("IHDR", ihdr), chunk("IDAT", idat), chunk("IEND", Buffer.alloc(0))]));
  return file;
}

/**
 * Runs `work`, which must be refused with the pixel-limit error; returns the time taken and the growth of this
 * process's resident memory, sampled every 5 ms while it runs.
 */
async function measureRefusal(work: () => Promise<unknown>, source: string, size: string): Promise<{ ms: number; rssGrowthMb: number }> {
  const before = process.memoryUsage().rss;
  let peak = before;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 5);
  const t0 = performance.now();
  const { error } = await outcome(work());
  const ms = performance.now() - t0;
  clearInterval(sampler);
  peak = Math.max(peak, process.memoryUsage().rss);
  const rssGrowthMb = (peak - before) / 1e6;
  console.log(`${path.basename(source)}: refused in ${ms.toFixed(0)} ms, RSS +${rssGrowthMb.toFixed(1)} MB`);
  expect(error?.message).toContain(source);
  expect(error?.message).toContain(`${size} pixels`);
  expect(error?.message).toMatch(/is more than the limit of 50,000,000 \(--max-input-pixels\)$/);
  return { ms, rssGrowthMb };
}

describe("decompression bombs are refused from the header", () => {
  let jpeg: string;
  let png: string;
  let video: string;
  beforeAll(async () => {
    jpeg = jpegBomb(p("bomb.jpg"));
    png = await pngBomb(p("bomb.png"));
    // Two 8192×8192 frames (67 MP each, over the 50 MP default).
    video = p("bomb.mp4");
    runFfmpeg(["-f", "lavfi", "-i", "color=c=green:size=8192x8192:rate=2", "-frames:v", "2", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", video]);
  });

  it("a 223-byte JPEG claiming 16383×16383", async () => {
    expect(fs.statSync(jpeg).size).toBeLessThan(1000);
    const m = await measureRefusal(() => decodeImage(jpeg), jpeg, "16383×16383");
    expect(m.ms).toBeLessThan(1000);
    expect(m.rssGrowthMb).toBeLessThan(100);
  });

  it("a PNG of 16383×16383 (also from a Buffer)", async () => {
    const m = await measureRefusal(() => decodeImage(png), png, "16383×16383");
    expect(m.ms).toBeLessThan(1000);
    expect(m.rssGrowthMb).toBeLessThan(100);
    const bytes = fs.readFileSync(png);
    const b = await measureRefusal(() => decodeImage(bytes), "<image buffer", "16383×16383");
    expect(b.ms).toBeLessThan(1000);
    expect(b.rssGrowthMb).toBeLessThan(100);
  });

  it("a video of 8192×8192 frames: loading and planning", async () => {
    expect(fs.statSync(video).size).toBeLessThan(1_000_000);
    const m = await measureRefusal(() => loadVideo(video, { defaults }), video, "8192×8192");
    expect(m.ms).toBeLessThan(1000);
    expect(m.rssGrowthMb).toBeLessThan(100);
    await measureRefusal(() => planVideo(video, { defaults }), video, "8192×8192");
  });

  it("a frame larger than the header said is stopped by the decoder's own limit (max_pixels)", async () => {
    // The header claims 64×48; the bitstream holds 8192×8192 frames.
    const m = await measureRefusal(
      () => decodeFrames(video, { indices: [0], width: 64, height: 48, rotation: 0, demuxer: "mov", label: video }),
      video,
      "8192×8192",
    );
    expect(m.ms).toBeLessThan(1000);
    expect(m.rssGrowthMb).toBeLessThan(100);
  });
});

describe("maxInputPixels", () => {
  it("defaults to 50,000,000", () => {
    expect(DEFAULT_MAX_INPUT_PIXELS).toBe(50_000_000);
  });

  it("is exact: width × height equal to the limit passes, one pixel more is refused (images, videos)", async () => {
    runFfmpeg(["-f", "lavfi", "-i", "color=c=blue:size=64x48", "-frames:v", "1", p("small.png")]);
    expect((await decodeImage(p("small.png"), { maxInputPixels: 64 * 48 })).width).toBe(64);
    const img = await outcome(decodeImage(p("small.png"), { maxInputPixels: 64 * 48 - 1 }));
    expect(img.error?.message).toBe(`${p("small.png")}: 64×48 pixels is more than the limit of 3,071 (--max-input-pixels)`);

    expect((await planVideo(blueMp4, { defaults, maxInputPixels: 64 * 48 })).probe.width).toBe(64);
    const vid = await outcome(loadVideo(blueMp4, { defaults, maxInputPixels: 64 * 48 - 1 }));
    expect(vid.error?.message).toBe(`${blueMp4}: 64×48 pixels per frame is more than the limit of 3,071 (--max-input-pixels)`);
  });

  it("rejects a limit that is not a positive integer", async () => {
    const { error } = await outcome(decodeImage(p("small.png"), { maxInputPixels: 0 }));
    expect(error?.message).toMatch(/maxInputPixels \(--max-input-pixels\) must be a positive integer/);
  });

  it("reaches the media through the processor (MediaOptions): images, videos, lists of frames", async () => {
    const model = await materializeTinyCheckpoint(path.join(repoRoot(), "test/fixtures/qwen2-vl/qwen2-vl-tiny"));
    const preparer = await RequestPreparer.load(model);
    const ask = (part: ContentPart, maxInputPixels?: number) =>
      outcome(preparer.prepare([{ role: "user", content: [part, { type: "text", text: "?" }] }], maxInputPixels === undefined ? {} : { maxInputPixels }));
    const limited = /64×48 pixels( per frame)? is more than the limit of 1,000 \(--max-input-pixels\)$/;
    expect((await ask({ type: "image", image: p("small.png") }, 1000)).error?.message).toMatch(limited);
    expect((await ask({ type: "image", image: fs.readFileSync(p("small.png")) }, 1000)).error?.message).toMatch(limited);
    expect((await ask({ type: "video", video: blueMp4 }, 1000)).error?.message).toMatch(limited);
    expect((await ask({ type: "video", video: [p("small.png"), p("small.png")] }, 1000)).error?.message).toMatch(limited);
    expect((await ask({ type: "image", image: p("small.png") })).value?.visuals).toHaveLength(1);
    // The default applies when nothing is set.
    if (!fs.existsSync(p("bomb.jpg"))) jpegBomb(p("bomb.jpg"));
    expect((await ask({ type: "image", image: p("bomb.jpg") })).error?.message).toMatch(/16383×16383 pixels is more than the limit of 50,000,000/);
  });

  it("CLI: --max-input-pixels on inspect", () => {
    const root = repoRoot();
    const r = spawnSync(
      process.execPath,
      [path.join(root, "node_modules/tsx/dist/cli.mjs"), path.join(root, "src/cli/main.ts"), "inspect", "--max-input-pixels", "1000", "--image", p("small.png"), "--json"],
      { encoding: "utf8", timeout: 120_000, env: { ...process.env, VIDEOLM_CACHE: p("cache") } },
    );
    expect(r.status).toBe(1);
    const lines = r.stderr.trim().split("\n");
    expect(lines.at(-1)).toMatch(/64×48 pixels is more than the limit of 1,000 \(--max-input-pixels\)$/);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });
});
