/**
 * Seeking decode (issue 15): frames reached by a keyframe seek are byte-identical to the same frames of a pass from
 * the start, on B-frame and open-GOP H.264 in mp4 and mkv, VP9 in webm, rotated and variable-frame-rate video; the
 * frame table agrees with ffprobe; presentation times on VFR video are the frames' real times. Every frame carries
 * its number as a code (media-helpers.ts), so identity is checked too, not only equality of the two paths.
 */
import { execFileSync } from "node:child_process";
import { afterAll, describe, expect, it } from "vitest";
import { batchRuns, decodeFrames, inputsPerProcess, MAX_RUN_FRAMES, planDecodeRuns, seekSeconds, type DecodeReport, type DecodeStrategy } from "../src/media/decode-frames.js";
import { liveChildCount, locateFfmpeg } from "../src/media/ffmpeg.js";
import { mp4FrameTable, scanFrameTable, type FrameTable } from "../src/media/frame-table.js";
import { probeVideo, type VideoProbe } from "../src/media/probe.js";
import { loadVideo, planVideo } from "../src/media/video.js";
import type { RgbImage } from "../src/processing/rgb-image.js";
import { qwenVlUtilsDefaults } from "../src/sampling/qwen-vl-utils.js";
import { FFV1_RGB, H264, makeTempDir, makeVideo, readFrameCode, rotateCcw, runFfmpeg } from "./media-helpers.js";

const tmp = makeTempDir();
afterAll(() => tmp.cleanup());
const p = (name: string) => `${tmp.dir}/${name}`;
const qwen2 = qwenVlUtilsDefaults(14);

/** H.264 with B-frames (veryfast: 3 B-frames, b-pyramid) and a keyframe every 12 frames. */
const H264_B = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "12", "-bf", "3", "-g", "12", "-keyint_min", "12", "-sc_threshold", "0", "-pix_fmt", "yuv420p"];
const H264_OPEN_GOP = [...H264_B, "-x264-params", "open-gop=1"];
const VP9_G10 = ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-crf", "10", "-b:v", "0", "-g", "10", "-pix_fmt", "yuv420p"];
/** 20 frames at 20 fps, then 20 frames at 5 fps (as in media-decode.test.ts, on a millisecond time base). */
const VFR = { extraFilter: "settb=1/1000,setpts='if(lt(N\\,20)\\,N/20\\,1+(N-20)/5)/TB'", extraArgs: ["-vsync", "0"] };
const vfrSeconds = (i: number) => (i < 20 ? i / 20 : 1 + (i - 20) / 5);

async function tableOf(file: string, probe: VideoProbe): Promise<FrameTable | undefined> {
  return probe.demuxer === "mov" ? mp4FrameTable(file, probe.frameCount) : scanFrameTable(file, probe);
}

async function decodeWith(file: string, probe: VideoProbe, table: FrameTable | undefined, indices: number[], strategy: DecodeStrategy, rotation = 0 as VideoProbe["rotation"], concurrency?: number) {
  const report: DecodeReport = { runs: 0, seekingRuns: 0, fallbackFrames: 0 };
  const frames = await decodeFrames(file, { indices, width: probe.width, height: probe.height, rotation, demuxer: probe.demuxer, label: file, strategy, table, report, concurrency });
  return { frames, report };
}

function sameBytes(a: RgbImage[], b: RgbImage[]): boolean {
  return a.length === b.length && a.every((f, k) => Buffer.compare(f.data, b[k].data) === 0);
}

describe("seek-decoded frames are the stream-decoded frames, byte for byte", () => {
  const cases = [
    { name: "bframes.mp4", codec: H264_B, frames: 240 },
    { name: "bframes.mkv", codec: H264_B, frames: 240 },
    { name: "open-gop.mp4", codec: H264_OPEN_GOP, frames: 240 },
    { name: "open-gop.mkv", codec: H264_OPEN_GOP, frames: 240 },
    { name: "vp9.webm", codec: VP9_G10, frames: 120 },
    { name: "vfr-bframes.mkv", codec: H264_B, frames: 40, rate: "20", ...VFR },
    { name: "vfr.mp4", codec: [...H264, "-g", "12"], frames: 40, rate: "20", ...VFR },
    { name: "vfr.mkv", codec: FFV1_RGB, frames: 40, rate: "20", ...VFR },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const file = makeVideo(p(c.name), { width: 96, height: 64, rate: "24", ...c });
      const probe = await probeVideo(file);
      const table = await tableOf(file, probe);
      expect(table, "frame table").toBeDefined();
      expect(table!.pts.length).toBe(c.frames);
      // sparse, the last frame, neighbours across a GOP boundary, a keyframe, a repeat, out of order
      const last = c.frames - 1;
      const indices = [last, 1, 11, 12, 13, 23, 24, Math.floor(last / 2), 3, 3, last - 13].filter((i) => i <= last);
      const seek = await decodeWith(file, probe, table, indices, "seek");
      const stream = await decodeWith(file, probe, table, indices, "stream");
      expect(seek.report.tableTrusted).toBe(true);
      expect(seek.report.seekingRuns).toBeGreaterThan(0);
      expect(seek.report.fallbackFrames).toBe(0);
      expect(stream.report).toMatchObject({ runs: 1, seekingRuns: 0 });
      expect(seek.frames.map((f) => readFrameCode(f))).toEqual(indices);
      expect(sameBytes(seek.frames, stream.frames)).toBe(true);
      const auto = await decodeWith(file, probe, table, indices, "auto");
      expect(sameBytes(auto.frames, stream.frames)).toBe(true);
      expect(liveChildCount()).toBe(0);
    });
  }

  it("rotated phone clip (display matrix 90°): seeking applies the same rotation", async () => {
    const base = makeVideo(p("rot-base.mp4"), { width: 96, height: 64, rate: "30", frames: 120, codec: H264_B });
    const file = p("rot90.mp4");
    runFfmpeg(["-i", base, "-c", "copy", "-metadata:s:v:0", "rotate=90", file]);
    const probe = await probeVideo(file);
    expect(probe.rotation).not.toBe(0);
    const table = await tableOf(file, probe);
    const indices = [100, 7, 50, 119];
    const seek = await decodeWith(file, probe, table, indices, "seek", probe.rotation);
    const stream = await decodeWith(file, probe, table, indices, "stream", probe.rotation);
    expect(seek.report.seekingRuns).toBeGreaterThan(0);
    expect(sameBytes(seek.frames, stream.frames)).toBe(true);
    expect(seek.frames.map((f) => readFrameCode(rotateCcw(f, 4 - probe.rotation / 90)))).toEqual(indices);
  });

  it("several seeking runs in one ffmpeg process (one input each, one output pipe each): same frames, in order", async () => {
    for (const name of ["bframes.mp4", "open-gop.mkv", "vp9.webm"]) {
      const file = p(name);
      const probe = await probeVideo(file);
      const table = await tableOf(file, probe);
      const last = table!.pts.length - 1;
      const indices = [last, 13, 50, 30, 100, 75, last - 1, 14, 61];
      const one = await decodeWith(file, probe, table, indices, "seek", 0, 1);
      const stream = await decodeWith(file, probe, table, indices, "stream");
      expect(one.report.seekingRuns).toBeGreaterThan(2);
      expect(one.report.processes).toBeLessThan(one.report.runs);
      expect(one.report.fallbackFrames).toBe(0);
      expect(one.frames.map((f) => readFrameCode(f))).toEqual(indices);
      expect(sameBytes(one.frames, stream.frames)).toBe(true);
    }
    // rotation applies in every input's chain
    const rot = p("rot90.mp4");
    const probe = await probeVideo(rot);
    const table = await tableOf(rot, probe);
    const indices = [100, 7, 50, 119, 31];
    const one = await decodeWith(rot, probe, table, indices, "seek", probe.rotation, 1);
    const stream = await decodeWith(rot, probe, table, indices, "stream", probe.rotation);
    expect(one.report.processes).toBeLessThan(one.report.runs);
    expect(sameBytes(one.frames, stream.frames)).toBe(true);
    expect(liveChildCount()).toBe(0);
  });

  it("a multi-input run whose middle input misses its frame: the others keep theirs, the miss is decoded from the start", async () => {
    const file = p("bframes.mkv");
    const probe = await probeVideo(file);
    const table = (await tableOf(file, probe))!;
    // frame 50's pts moved between two frames: its run's select never matches
    const pts = Float64Array.from(table.pts);
    pts[50] += 1;
    const indices = [13, 50, 100, 150];
    const one = await decodeWith(file, probe, { ...table, pts }, indices, "seek", 0, 1);
    expect(one.report.processes).toBe(2); // one multi-input run, then the pass from the start
    expect(one.report.fallbackFrames).toBe(1);
    expect(one.frames.map((f) => readFrameCode(f))).toEqual(indices);
    const stream = await decodeWith(file, probe, table, indices, "stream");
    expect(sameBytes(one.frames, stream.frames)).toBe(true);
  });

  it("more than 100 frames: runs of at most 64 flat terms, identical to the stream pass", async () => {
    const file = makeVideo(p("many.mkv"), { width: 80, height: 16, rate: "25", frames: 400, codec: ["-c:v", "ffv1", "-g", "50"] });
    const probe = await probeVideo(file);
    const table = await tableOf(file, probe);
    const indices = [...Array(300).keys()].map((i) => 399 - i);
    const seek = await decodeWith(file, probe, table, indices, "seek");
    expect(seek.report.runs).toBeGreaterThanOrEqual(300 / MAX_RUN_FRAMES);
    expect(seek.report.fallbackFrames).toBe(0);
    expect(seek.frames.map((f) => readFrameCode(f))).toEqual(indices);
  });

  it("an mp4 whose edit list trims its start: no table is trusted, frames still come out right", async () => {
    const base = makeVideo(p("trim-base.mp4"), { width: 96, height: 64, rate: "24", frames: 96, codec: H264_B });
    const file = p("trimmed.mp4");
    runFfmpeg(["-ss", "1.3", "-i", base, "-c", "copy", file]);
    const probe = await probeVideo(file);
    const table = await mp4FrameTable(file, probe.frameCount);
    // not the last frames: FFmpeg's mp4 muxer may end the edit list before them (then no reader can decode them)
    const indices = [40, 5, 30];
    const seek = await decodeWith(file, probe, table, indices, "seek");
    const stream = await decodeWith(file, probe, table, indices, "stream");
    expect(sameBytes(seek.frames, stream.frames)).toBe(true);
    // whatever this FFmpeg writes (an edit list, or a plain copy from the keyframe), a seek never picks another frame
    if (seek.report.seekingRuns > 0) expect(seek.report.tableTrusted).toBe(true);
  });
});

describe("frame table", () => {
  it("the mp4 sample table gives the pts and keyframes ffprobe's packet scan gives", async () => {
    for (const name of ["bframes.mp4", "open-gop.mp4", "vfr.mp4"]) {
      const file = p(name);
      const probe = await probeVideo(file);
      const fromIndex = (await mp4FrameTable(file, probe.frameCount))!;
      const fromScan = (await scanFrameTable(file, probe))!;
      expect(fromIndex.timeBase).toEqual(fromScan.timeBase);
      expect(Array.from(fromIndex.pts, (v) => v + fromIndex.ffmpegOffset)).toEqual(Array.from(fromScan.pts));
      expect(Array.from(fromIndex.keyframes)).toEqual(Array.from(fromScan.keyframes));
    }
  });

  it("run planning: sparse frames seek each, dense frames share a run, a run holds at most 64", async () => {
    const keyframes = Int32Array.from([...Array(100).keys()].map((k) => k * 300));
    const table: FrameTable = { pts: Float64Array.from([...Array(30000).keys()]), keyframes, timeBase: [1, 30], ffmpegOffset: 0, source: "packets" };
    const sparse = planDecodeRuns([10, 9000, 20000, 29999], table, "auto", 30000, 160 * 96);
    expect(sparse).toEqual([{ frames: [10] }, { seekKey: 9000, frames: [9000] }, { seekKey: 19800, frames: [20000] }, { seekKey: 29700, frames: [29999] }]);
    const dense = planDecodeRuns([...Array(200).keys()].map((i) => 6000 + i * 15), table, "auto", 30000, 160 * 96);
    expect(dense.map((r) => r.frames.length)).toEqual([64, 64, 64, 8]);
    expect(dense[0].seekKey).toBe(6000);
    // dense from the start: runs would re-decode the start of each GOP for little gain; one pass
    expect(planDecodeRuns([...Array(200).keys()].map((i) => i * 15), table, "auto", 30000, 160 * 96)).toHaveLength(1);
    // "seek" starts a run whenever the next frame is past another keyframe
    expect(planDecodeRuns([10, 400, 500], table, "seek", 30000, 160 * 96)).toEqual([{ frames: [10] }, { seekKey: 300, frames: [400, 500] }]);
    expect(planDecodeRuns([10, 400], table, "auto", 30000, 160 * 96)).toEqual([{ frames: [10, 400] }]);
  });

  it("seeking runs per process: fewer inputs for larger frames, balanced over the processes in flight", () => {
    expect(inputsPerProcess(160 * 96)).toBe(8);
    expect(inputsPerProcess(1280 * 720)).toBe(4);
    expect(inputsPerProcess(1920 * 1080)).toBe(1);
    expect(inputsPerProcess(7680 * 4320)).toBe(1);
    const runs = [...Array(64).keys()];
    expect(batchRuns(runs, 8, 4).map((b) => b.length)).toEqual([8, 8, 8, 8, 8, 8, 8, 8]);
    expect(batchRuns(runs, 8, 4).flat()).toEqual(runs);
    expect(batchRuns(runs.slice(0, 10), 8, 4).map((b) => b.length)).toEqual([3, 2, 3, 2]);
    expect(batchRuns(runs.slice(0, 3), 8, 4).map((b) => b.length)).toEqual([1, 1, 1]);
    expect(batchRuns(runs.slice(0, 9), 8, 1).map((b) => b.length)).toEqual([5, 4]);
    expect(batchRuns(runs.slice(0, 5), 1, 4)).toHaveLength(5);
    expect(batchRuns([], 8, 4)).toEqual([]);
  });

  it("-ss values round up to the microsecond", () => {
    expect(seekSeconds(1024, [1, 15360])).toBe("0.066667");
    expect(seekSeconds(-1024, [1, 15360])).toBe("-0.066666");
    expect(seekSeconds(90_000 * 7200 + 1, [1, 90_000])).toBe("7200.000012");
    expect(seekSeconds(0, [1, 1000])).toBe("0.000000");
  });
});

describe("presentation times", () => {
  it.each(["vfr.mp4", "vfr.mkv", "vfr-bframes.mkv"])("%s: timestamps are the frames' presentation times (reference: index / avg fps)", async (name) => {
    const file = p(name);
    const video = await loadVideo(file, { defaults: qwen2, nframes: 8, minPixels: 3136, maxPixels: 3136 });
    expect(video.frameIndices).toEqual([0, 6, 11, 17, 22, 28, 33, 39]);
    expect(video.frameTimes).toBe("presentation");
    // ffprobe's own presentation times of those frames, relative to the first frame
    const out = execFileSync(locateFfmpeg().ffprobe, ["-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time", "-of", "csv=p=0", file]).toString();
    const ffprobeTimes = out.trim().split("\n").map(Number).sort((a, b) => a - b);
    video.frameIndices.forEach((i, k) => {
      expect(Math.abs(video.timestamps[k] - (ffprobeTimes[i] - ffprobeTimes[0]))).toBeLessThan(1e-6);
      expect(video.timestamps[k]).toBeCloseTo(vfrSeconds(i), 9); // as generated
    });
    // the frames sampled per real second of the clip: 8 of 40 frames over 39 frames' span of 4.8 s
    expect(video.sampleFps).toBeCloseTo((8 / 40) * (39 / vfrSeconds(39)), 2);
    const reference = await loadVideo(file, { defaults: qwen2, nframes: 8, minPixels: 3136, maxPixels: 3136, frameTimes: "reference" });
    expect(reference.frameIndices).toEqual(video.frameIndices);
    expect(reference.frameTimes).toBe("reference");
    expect(reference.timestamps).toEqual(video.frameIndices.map((i) => i / reference.probe.avgFps));
    const worst = Math.max(...video.frameIndices.map((i, k) => Math.abs(reference.timestamps[k] - vfrSeconds(i))));
    expect(worst).toBeGreaterThan(1); // the reference rule is off by more than a second here
    // planning gives the same times without decoding
    const planned = await planVideo(file, { defaults: qwen2, nframes: 8 });
    expect(planned.plan.timestamps).toEqual(video.timestamps);
  });

  it("constant frame rate: presentation times are exactly index / fps (the reference's numbers)", async () => {
    const file = p("bframes.mp4");
    const video = await planVideo(file, { defaults: qwen2, fps: 2 });
    expect(video.frameTimes).toBe("presentation");
    expect(video.plan.timestamps).toEqual(video.plan.frameIndices.map((i) => i / 24));
    const reference = await planVideo(file, { defaults: qwen2, fps: 2, frameTimes: "reference" });
    expect(video.plan.sampleFps).toBe(reference.plan.sampleFps);
  });
});
