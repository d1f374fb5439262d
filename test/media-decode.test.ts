/**
 * Probing and frame-exact decoding on videos generated here with ffmpeg (see media-helpers.ts: every frame carries its
 * frame number as a binary code, so we can tell which frame we got).
 */
import { execFileSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeFrames, selectFilter } from "../src/media/decode-frames.js";
import { liveChildCount, locateFfmpeg } from "../src/media/ffmpeg.js";
import { probeVideo } from "../src/media/probe.js";
import { loadVideo, planVideo } from "../src/media/video.js";
import type { RgbImage } from "../src/processing/rgb-image.js";
import { qwenVlUtilsDefaults } from "../src/sampling/qwen-vl-utils.js";
import { FFV1_RGB, H264, VP9, makeTempDir, makeVideo, readFrameCode, rotateCcw, runFfmpeg } from "./media-helpers.js";

const tmp = makeTempDir();
const qwen2 = qwenVlUtilsDefaults(14);
const p = (name: string) => `${tmp.dir}/${name}`;

afterAll(() => tmp.cleanup());

/** Decodes every frame natively (rotation 0) — the ground truth the selected frames are compared with. */
async function allFrames(file: string): Promise<RgbImage[]> {
  const pr = await probeVideo(file);
  return decodeFrames(file, { indices: [...Array(pr.frameCount).keys()], width: pr.width, height: pr.height, rotation: 0, label: file });
}

describe("locateFfmpeg", () => {
  it("finds working ffmpeg and ffprobe binaries", () => {
    const { ffmpeg, ffprobe } = locateFfmpeg();
    expect(execFileSync(ffmpeg, ["-version"]).toString()).toMatch(/^ffmpeg version/);
    expect(execFileSync(ffprobe, ["-version"]).toString()).toMatch(/^ffprobe version/);
  });
  it("honours FFMPEG_PATH and names a bad one", () => {
    expect(() => locateFfmpeg({ ...process.env, FFMPEG_PATH: "/nonexistent/ffmpeg" })).toThrow(/FFMPEG_PATH=\/nonexistent\/ffmpeg is not an executable/);
    const real = locateFfmpeg();
    expect(locateFfmpeg({ ...process.env, FFMPEG_PATH: real.ffmpeg, FFPROBE_PATH: real.ffprobe })).toEqual(real);
  });
});

describe("containers and codecs: the k-th returned frame is source frame indices[k]", () => {
  const formats = [
    { name: "h264.mp4", codec: H264, count: "header" },
    { name: "ffv1.mkv", codec: FFV1_RGB, count: "packets" },
    { name: "x264rgb-lossless.mkv", codec: ["-c:v", "libx264rgb", "-preset", "ultrafast", "-qp", "0"], count: "packets" },
    { name: "vp9.webm", codec: VP9, count: "packets" },
    { name: "h264.mov", codec: H264, count: "header" },
  ] as const;
  for (const f of formats) {
    it(`${f.name} at 29.97 fps`, async () => {
      const file = makeVideo(p(f.name), { width: 128, height: 72, rate: "30000/1001", frames: 60, codec: [...f.codec] });
      const pr = await probeVideo(file);
      expect(pr.frameCount).toBe(60);
      expect(pr.frameCountSource).toBe(f.count);
      expect(pr.avgFps).toBeCloseTo(30000 / 1001, 9);
      expect(pr.isVfr).toBe(false);
      expect([pr.width, pr.height, pr.rotation]).toEqual([128, 72, 0]);
      expect(pr.duration).toBeCloseTo(60 / (30000 / 1001), 1);
      const indices = [0, 1, 2, 17, 31, 58, 59];
      const frames = await decodeFrames(file, { indices, width: pr.width, height: pr.height, rotation: 0, label: file });
      expect(frames.map((fr) => readFrameCode(fr))).toEqual(indices);
      // full-plan path: qwen-vl-utils picks 4 frames of 60 at 29.97 fps (60/29.97·2 = 4.004 → 4); size by hand:
      // round(72/28)·28 × round(128/28)·28 = 84×140 < min_pixels 100352 → beta = sqrt(100352/9216) = 3.2998,
      // ceil(72·beta/28)·28 = 252, ceil(128·beta/28)·28 = 448
      const video = await loadVideo(file, { defaults: qwen2 });
      expect(video.frameIndices).toEqual([0, 20, 39, 59]);
      expect(video.frames).toHaveLength(4);
      for (const fr of video.frames) expect([fr.width, fr.height, fr.data.length]).toEqual([448, 252, 448 * 252 * 3]);
      expect(video.timestamps).toEqual([0, 20, 39, 59].map((i) => i / (30000 / 1001)));
      expect(video.sampleFps).toBe((4 / 60) * (30000 / 1001));
    });
  }
  it("lossless input: selected frames are bit-identical to the same frames of a full decode", async () => {
    const file = p("ffv1.mkv");
    const all = await allFrames(file);
    const indices = [59, 3, 3, 40];
    const frames = await decodeFrames(file, { indices, width: 128, height: 72, rotation: 0, label: file });
    indices.forEach((i, k) => expect(Buffer.compare(frames[k].data, all[i].data)).toBe(0));
  });
});

describe("sizes, frame rates and short clips", () => {
  it("odd frame size (201x151, lossless RGB)", async () => {
    const file = makeVideo(p("odd.mkv"), { width: 201, height: 151, rate: "24", frames: 10, codec: FFV1_RGB });
    const pr = await probeVideo(file);
    expect([pr.width, pr.height]).toEqual([201, 151]);
    const frames = await decodeFrames(file, { indices: [9, 0], width: 201, height: 151, rotation: 0, label: file });
    expect(frames.map((f) => readFrameCode(f))).toEqual([9, 0]);
    expect(frames[0].data.length).toBe(201 * 151 * 3);
  });
  it.each([
    [1, null],
    [2, [0, 1]],
    [3, [0, 2]],
  ])("%i-frame clip", async (n, expected) => {
    const file = makeVideo(p(`short${n}.mp4`), { width: 64, height: 48, rate: "25", frames: n, codec: H264 });
    const pr = await probeVideo(file);
    expect(pr.frameCount).toBe(n);
    if (expected === null) {
      // qwen-vl-utils raises too: nframes 0 is outside [2, 1]
      await expect(loadVideo(file, { defaults: qwen2 })).rejects.toThrow(/frames requested but the clip has 1/);
      return;
    }
    const video = await loadVideo(file, { defaults: qwen2 });
    expect(video.frameIndices).toEqual(expected);
    // 64x48: beta = sqrt(100352/3072) = 5.7155 → ceil(48·beta/28)·28 = 280, ceil(64·beta/28)·28 = 392
    expect(video.frames.map((f) => [f.width, f.height])).toEqual(expected.map(() => [392, 280]));
  });
  it.each([
    ["vfr.mkv", FFV1_RGB],
    ["vfr.mp4", H264],
  ])("variable frame rate (%s): indices count decoded frames, as decord/torchcodec do", async (name, codec) => {
    // 20 frames at 20 fps, then 20 frames at 5 fps
    const file = makeVideo(p(name), {
      width: 96, height: 64, rate: "20", frames: 40, codec,
      extraFilter: "setpts='if(lt(N\\,20)\\,N/20\\,1+(N-20)/5)/TB'",
      extraArgs: ["-vsync", "0"],
    });
    const pr = await probeVideo(file);
    expect(pr.frameCount).toBe(40);
    expect(pr.isVfr).toBe(true);
    const indices = [0, 10, 19, 20, 21, 30, 39];
    const frames = await decodeFrames(file, { indices, width: 96, height: 64, rotation: 0, label: file });
    expect(frames.map((f) => readFrameCode(f))).toEqual(indices);
  });
});

describe("rotation metadata", () => {
  for (const tag of [90, 180, 270]) {
    it(`rotate=${tag}: frames come out as ffmpeg -autorotate displays them`, async () => {
      const base = makeVideo(p(`rot-src-${tag}.mp4`), { width: 96, height: 64, rate: "10", frames: 6, codec: H264 });
      const file = p(`rot-${tag}.mp4`);
      runFfmpeg(["-i", base, "-c", "copy", "-metadata:s:v:0", `rotate=${tag}`, file]);
      const pr = await probeVideo(file);
      expect(pr.rotation).not.toBe(0);
      const swapped = pr.rotation % 180 === 90;
      expect([pr.displayWidth, pr.displayHeight]).toEqual(swapped ? [64, 96] : [96, 64]);
      const [rotated] = await decodeFrames(file, { indices: [4], width: 96, height: 64, rotation: pr.rotation, label: file });
      const [stored] = await decodeFrames(file, { indices: [4], width: 96, height: 64, rotation: 0, label: file });
      expect(readFrameCode(stored)).toBe(4);
      // our filter = rotating the stored frame CCW by `rotation` degrees
      expect(Buffer.compare(rotated.data, rotateCcw(stored, pr.rotation / 90).data)).toBe(0);
      // and = what ffmpeg's own autorotate shows (the display convention players use)
      const auto = execFileSync(locateFfmpeg().ffmpeg, [
        "-nostdin", "-loglevel", "error", "-i", file, "-vf", "select='eq(n\\,4)'", "-vsync", "0", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1",
      ]);
      expect(Buffer.compare(rotated.data, auto)).toBe(0);
      // the plan sees the displayed size; applyRotation: false gives the stored orientation (decord's behaviour)
      const { plan } = await planVideo(file, { defaults: qwen2 });
      const { plan: flat } = await planVideo(file, { defaults: qwen2, applyRotation: false });
      expect(plan.resizedHeight > plan.resizedWidth).toBe(swapped);
      expect(flat.resizedHeight < flat.resizedWidth).toBe(true);
    });
  }
});

describe("progress and bookkeeping", () => {
  it("reports progress per frame and leaves no child behind", async () => {
    const file = p("h264.mp4");
    const seen: [number, number][] = [];
    await loadVideo(file, { defaults: qwen2, nframes: 8, onProgress: (d, t) => seen.push([d, t]) });
    expect(seen).toEqual([1, 2, 3, 4, 5, 6, 7, 8].map((d) => [d, 8]));
    expect(liveChildCount()).toBe(0);
  });
  it("select expression escapes commas for the filtergraph", () => {
    expect(selectFilter([0, 16, 31])).toBe("select='eq(n\\,0)+eq(n\\,16)+eq(n\\,31)'");
  });
  it("more than 100 selected frames (FFmpeg 5.1 refuses a flat sum of over 100 terms: the select is a balanced tree)", async () => {
    const many = [...Array(300).keys()];
    const expr = selectFilter(many);
    expect(expr.match(/eq\(n\\,\d+\)/g)).toHaveLength(300);
    let depth = 0;
    let deepest = 0;
    for (const c of expr) {
      depth += c === "(" ? 1 : c === ")" ? -1 : 0;
      deepest = Math.max(deepest, depth);
    }
    expect(deepest).toBeLessThanOrEqual(5); // eq( plus log2(300 / 64) levels of halves
    const file = makeVideo(p("many.mkv"), { width: 80, height: 16, rate: "25", frames: 400, codec: ["-c:v", "ffv1"] });
    const indices = many.map((i) => i + 100).filter((i) => i % 2 === 0); // 150 frames
    const frames = await decodeFrames(file, { indices, width: 80, height: 16, rotation: 0, label: file });
    expect(frames.map((f) => readFrameCode(f))).toEqual(indices);
  });
});

beforeAll(() => {
  expect(liveChildCount()).toBe(0);
});
