/**
 * Pixel parity of the whole pipeline (probe → qwen-vl-utils plan → ffmpeg decode → resize) with the reference
 * (PyAV decode + qwen-vl-utils 0.0.14 plan + torchvision v1 resize, recorded by tools/oracle/record_sampling.py) on
 * lossless videos regenerated here with the same ffmpeg filter chain.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { afterAll, describe, expect, it } from "vitest";
import { decodeFrames } from "../src/media/decode-frames.js";
import { probeVideo } from "../src/media/probe.js";
import { loadVideo } from "../src/media/video.js";
import { qwenVlUtilsDefaults, type VideoSamplingOptions } from "../src/sampling/qwen-vl-utils.js";
import { makeTempDir, makeVideo } from "./media-helpers.js";

interface ParityVideo {
  name: string;
  width: number;
  height: number;
  rate: string;
  frames: number;
  codec: string[];
  options: { min_pixels?: number; max_pixels?: number; nframes?: number };
  videoFps: number;
  totalFrames: number;
  expected: { frameIndices: number[]; nframes: number; sampleFps: number; resizedHeight: number; resizedWidth: number };
  nativeMd5: string;
  file: string;
}

const fixtureUrl = (name: string) => new URL(`./fixtures/sampling/${name}`, import.meta.url);
const { videos } = JSON.parse(readFileSync(fixtureUrl("parity.json"), "utf8")) as { videos: ParityVideo[] };
const tmp = makeTempDir();
afterAll(() => tmp.cleanup());

describe("pixel parity with qwen-vl-utils + torchvision on lossless video", () => {
  for (const v of videos) {
    it(`${v.name}: ${v.width}x${v.height} ${v.codec.join(" ")}, ${JSON.stringify(v.options)}`, async () => {
      const file = makeVideo(`${tmp.dir}/${v.name}.mkv`, { width: v.width, height: v.height, rate: v.rate, frames: v.frames, codec: v.codec });
      const probe = await probeVideo(file);
      expect(probe.frameCount).toBe(v.totalFrames);
      expect(probe.avgFps).toBe(v.videoFps);

      const options: VideoSamplingOptions = { minPixels: v.options.min_pixels, maxPixels: v.options.max_pixels, nframes: v.options.nframes };
      const video = await loadVideo(file, { defaults: qwenVlUtilsDefaults(14), ...options });
      expect(video.frameIndices).toEqual(v.expected.frameIndices);
      expect(video.sampleFps).toBe(v.expected.sampleFps);
      expect([video.plan.resizedHeight, video.plan.resizedWidth]).toEqual([v.expected.resizedHeight, v.expected.resizedWidth]);

      const native = await decodeFrames(file, { indices: video.frameIndices, width: probe.width, height: probe.height, rotation: 0, label: file });
      const nativeMd5 = createHash("md5");
      for (const f of native) nativeMd5.update(f.data);
      const sameInput = nativeMd5.digest("hex") === v.nativeMd5;

      const reference = gunzipSync(readFileSync(fixtureUrl(v.file)));
      const ours = Buffer.concat(video.frames.map((f) => f.data));
      expect(ours.length).toBe(reference.length);
      let within1 = 0;
      let maxDiff = 0;
      for (let i = 0; i < ours.length; i++) {
        const d = Math.abs(ours[i] - reference[i]);
        if (d <= 1) within1++;
        if (d > maxDiff) maxDiff = d;
      }
      const fraction = within1 / ours.length;
      console.log(`${v.name}: native decode identical to PyAV's: ${sameInput}; ${(fraction * 100).toFixed(4)}% within 1/255, max diff ${maxDiff}`);
      if (v.codec.includes("bgr0")) {
        // RGB-coded lossless input: both decoders must see identical pixels, and the resize is bit-exact.
        expect(sameInput).toBe(true);
        expect(maxDiff).toBe(0);
      }
      expect(fraction).toBeGreaterThanOrEqual(0.999);
    });
  }
});
