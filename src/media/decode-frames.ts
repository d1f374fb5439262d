/**
 * Decoding selected frames of a video as rgb24, each frame resized as it arrives: one ffmpeg pass from the start
 * ("stream"), or ffmpeg runs that each seek to a keyframe and decode forward to the wanted frames ("seek").
 *
 * Frame numbering. Frame i is the i-th frame in presentation order, as decord (`vr.get_batch(idx)`) and torchcodec
 * (`get_frames_at(indices)`) count. Stream: `n` in ffmpeg's `select` filter counts the frames that come out of the
 * decoder, in presentation order, from 0 — the same numbering. `-vsync 0` (passthrough) keeps ffmpeg from dropping or
 * duplicating frames to fit a constant output rate, so the k-th raw frame on stdout is the k-th selected index.
 *
 * Seeking (issue 15). A stream pass costs every frame up to the last selected one: `--start 7000 --end 7060` on a
 * 2-hour file decoded 7000 s of video, and 64 frames spread over 2 hours decoded all of it. With the video's frame
 * table (frame-table.ts: every frame's pts in presentation order, and the keyframes), frame i is instead reached by
 *  - `-ss` on the input to the last keyframe K at or before i (`-seek_timestamp 1`: the time is the stream's own, not
 *    offset by the container's start; `-noaccurate_seek`: nothing is trimmed; `-copyts`: frames keep their pts), then
 *  - decoding forward and selecting by the exact pts (`select='eq(pts,P)'`, P = the table's pts of frame i in the
 *    stream time base, which is the filter's time base), never by counting frames after the seek point: after a seek
 *    a decoder may drop the leading pictures of an open GOP, so a count could drift, a pts cannot.
 * K is chosen by presentation order (the last keyframe whose pts ≤ P), so i is a trailing picture of K's GOP or later:
 * decodable from K with the same references as in a full decode, hence byte-identical pixels (tested against stream
 * decoding on B-frame H.264 in mp4 and mkv, VP9 in webm, VFR and rotated files).
 * Before seeking, the table's timestamps are checked against the pts FFmpeg itself gives frame 0 (an mp4 edit list
 * shifts them; `FrameTable.ffmpegOffset` is the shift expected); on a mismatch, or when a seeking run returns fewer
 * frames than asked, the missing frames are decoded by a stream pass. Seeking is used for mp4/mov and matroska/webm,
 * whose demuxers seek on an index of keyframes.
 *
 * Runs ("segments"). `auto` groups the wanted frames into runs: the next wanted frame joins the current run when
 * decoding on to it is cheaper than a new ffmpeg run (process start, container open — for mp4 the whole sample table —
 * plus decoding from its keyframe); a dense request becomes one run, a sparse one a run per frame. A run selects at
 * most MAX_RUN_FRAMES frames, so its `select` is a short flat sum whatever the request (FFmpeg 5.1 refuses a flat sum
 * of more than 100 terms). Seeking runs share ffmpeg processes (`batchRuns`): one process takes up to
 * `inputsPerProcess` runs (8 for small frames, 1 from 1080p), each as its own input (`-ss` + the same untrusted-input
 * options and forced demuxer) with its own filter chain (`trim` at its last wanted pts, so its decoding stops there,
 * then its `select`) and its own raw output pipe (`pipe:3`, `pipe:4`, …), so frames are attributed to their run by the
 * pipe they arrive on and a run that returns fewer frames is seen as such (then the stream pass decodes the rest). This
 * saves process starts (64 runs on the 2-hour bench file: 64 processes → 8). Processes go `concurrency` at a time
 * (default 4). When the runs would not cost clearly less
 * than one pass from the start (dense sampling of a short clip), auto keeps the single pass. `seek` makes a run per GOP touched; `stream`
 * is the single pass from the start (what videolm did before; the bench's "before").
 *
 * Rotation. ffmpeg's automatic rotation is turned off (`-noautorotate`) and the rotation the probe found is applied
 * explicitly after `select` (so only the selected frames are transposed): 90° counter-clockwise → `transpose=cclock`,
 * 270° → `transpose=clock`, 180° → `hflip,vflip` — the filters `ffmpeg -autorotate` inserts. torchcodec ≥ 0.11 applies
 * the display matrix the same way; decord and torchvision.io / PyAV ignore it (they return stored pixels). Pass
 * `rotation: 0` to reproduce those.
 *
 * The stream pass's `select` is a sum of `eq(n,i)` terms, which ffmpeg evaluates for every decoded frame: cost grows
 * with (frames in the video) × (selected frames). Measured on this machine (10-min 96×64 H.264 clip, 18 000 frames, 768
 * selected): 1.21 s with the 768-term select vs 1.17 s for a plain `-f null` decode — negligible; decoding dominates.
 * `-frames:v` stops ffmpeg right after the last selected frame instead of decoding to the end.
 *
 * Hostile media (issue 14): ffmpeg opens the file with `untrustedInputArgs` (see ffmpeg.ts) and the demuxer the probe
 * detected (`demuxer`), so it cannot read the bytes as a playlist or file list and open another file; its decoder's
 * `max_pixels` refuses frames over the pixel limit (the probe has already refused a header over it).
 */
import { VideolmError } from "../errors.js";
import type { RgbImage } from "../processing/rgb-image.js";
import { explainUntrustedFailure, locateFfmpeg, runTool, spawnTool, untrustedInputArgs } from "./ffmpeg.js";
import { keyframeAtOrBefore, type FrameTable } from "./frame-table.js";
import { checkInputPixels, resolveMaxInputPixels } from "./limits.js";

export type ResizeFn = (src: RgbImage, outH: number, outW: number) => RgbImage;

export interface DecodeFramesOptions {
  /** Frame indices to return (any order, duplicates allowed); frames come back in this order. */
  indices: number[];
  /** Stored frame size (probe width/height, before rotation). */
  width: number;
  height: number;
  /** Counter-clockwise display rotation to apply (probe `rotation`); 0 for none. */
  rotation: 0 | 90 | 180 | 270;
  /** The demuxer to force (probe `demuxer`); when absent ffmpeg detects it, still within ALLOWED_DEMUXERS. */
  demuxer?: string;
  /** Largest accepted stored frame size, width × height (default DEFAULT_MAX_INPUT_PIXELS). */
  maxInputPixels?: number;
  /** Resize each frame to this size (after rotation) as soon as it is decoded; native size when absent. */
  resize?: { height: number; width: number; fn: ResizeFn };
  /** Label for messages (the source as the user named it). */
  label: string;
  signal?: AbortSignal;
  /** Wall-clock limit for the ffmpeg run; default 10 minutes. */
  timeoutMs?: number;
  /** Called after each selected frame arrives. */
  onProgress?: (done: number, total: number) => void;
  /** "auto" (default): seek or stream per run, whichever is cheaper; "seek"; "stream": one pass from the start. */
  strategy?: DecodeStrategy;
  /** The video's frame table (frame-table.ts); without it, or for containers not in SEEKABLE_DEMUXERS, one stream pass. */
  table?: FrameTable;
  /** Total frames in the video (for the cost model); default the table's length. */
  frameCount?: number;
  /** Seeking runs at a time (default DEFAULT_CONCURRENCY). */
  concurrency?: number;
  /** Filled in with what was done (tests, benches). */
  report?: DecodeReport;
}

export interface DecodeReport {
  /** ffmpeg runs that decoded frames, and how many of them started with a seek */
  runs: number;
  seekingRuns: number;
  /** ffmpeg processes started for them (several seeking runs share one process: one input each) */
  processes?: number;
  /** false when a frame table was given but did not match FFmpeg's timestamps (then nothing seeks) */
  tableTrusted?: boolean;
  /** frames decoded by a pass from the start after seeking did not return them */
  fallbackFrames: number;
}

export type DecodeStrategy = "auto" | "seek" | "stream";

/** Demuxers whose seeking lands on a keyframe from an index (mp4/mov sample table, matroska cues). */
export const SEEKABLE_DEMUXERS: readonly string[] = ["mov", "matroska"];

/**
 * ffmpeg processes at a time (each carrying up to `inputsPerProcess` seeking runs). Measured with one run per process: a run is mostly process start and container open (I/O, page faults) plus a short decode,
 * so a few in flight beat one even on 2 cores (64 runs on the 2-hour bench file: 8.0 s one at a time, 5.6 s two,
 * 4.3 s four, on the busy 2-core machine); memory stays one native frame per run in flight.
 */
export const DEFAULT_CONCURRENCY = 4;

/**
 * Most seeking runs one ffmpeg process carries, one input each (see `batchRuns`). Each input holds its own demuxer
 * index and decoder, so the number shrinks with the frame size (`inputsPerProcess`): 8 for small video, 1 from 1080p.
 */
export const MAX_INPUTS_PER_PROCESS = 8;

/**
 * Most inputs alive at once over the processes in flight (each holds a decoder and the container's index): 8-input
 * processes go 2 at a time (as fast as 4 at a time on the 2-core machine, half the memory).
 */
export const MAX_INPUTS_IN_FLIGHT = 16;

/** Seeking runs per ffmpeg process for frames of `pixels` (stored width × height): decoders of ≤ ~4 Mpx together. */
export function inputsPerProcess(pixels: number): number {
  return Math.max(1, Math.min(MAX_INPUTS_PER_PROCESS, Math.floor(4_000_000 / Math.max(1, pixels))));
}

/**
 * Splits seeking runs, in order, into ffmpeg processes of at most `perProcess` runs, balanced, and at least
 * `concurrency` processes when there are that many runs (so the processes in flight share the work).
 */
export function batchRuns<T>(runs: T[], perProcess: number, concurrency: number): T[][] {
  if (runs.length === 0) return [];
  const count = Math.min(runs.length, Math.max(Math.ceil(runs.length / Math.max(1, perProcess)), concurrency));
  const batches: T[][] = [];
  for (let b = 0, start = 0; b < count; b++) {
    const end = Math.round(((b + 1) * runs.length) / count);
    batches.push(runs.slice(start, end));
    start = end;
  }
  return batches;
}

/** Most frames one seeking run selects (its `select` stays a flat sum of at most this many terms). */
export const MAX_RUN_FRAMES = 64;

function rotationFilter(rotation: 0 | 90 | 180 | 270): string[] {
  switch (rotation) {
    case 90:
      return ["transpose=cclock"];
    case 180:
      return ["hflip", "vflip"];
    case 270:
      return ["transpose=clock"];
    default:
      return [];
  }
}

/**
 * `select='eq(n\,3)+eq(n\,17)+…'` for sorted unique indices (commas escaped for the filtergraph parser). More than
 * 64 terms are summed as a balanced tree of parenthesised halves: FFmpeg 5.1's expression parser refuses a flat sum of
 * more than 100 terms ("Error while parsing expression", measured with Debian 12's 5.1.9), a tree only nests log2(n)
 * deep.
 */
export function selectFilter(sortedUnique: number[]): string {
  const terms = sortedUnique.map((i) => `eq(n\\,${i})`);
  const sum = (t: string[]): string => {
    if (t.length <= 64) return t.join("+");
    const half = t.length >> 1;
    return `(${sum(t.slice(0, half))})+(${sum(t.slice(half))})`;
  };
  return `select='${sum(terms)}'`;
}


/** `select='eq(pts\,1024)+…'` for a seeking run (at most MAX_RUN_FRAMES terms: a flat sum). */
export function ptsSelectFilter(pts: number[]): string {
  return `select='${pts.map((p) => `eq(pts\\,${p})`).join("+")}'`;
}

/** One ffmpeg run: from the start (`seekKey` undefined) or from a keyframe, selecting `frames` (ascending). */
export interface DecodeRun {
  seekKey?: number;
  frames: number[];
}

/** Rough costs for choosing between decoding on and seeking again (ms; measured on the 2-core reference machine). */
function costModel(frameCount: number, pixels: number) {
  return {
    /** decoding one frame (160×96: 0.16 ms, 1080p: 1.8 ms with ffmpeg's threads) */
    frame: 0.15 + pixels * 0.8e-6,
    /** starting ffmpeg, opening the container (mp4: the whole sample table), probing a first frame, seeking */
    run: 50 + frameCount * 2.5e-4 + pixels * 5e-5,
  };
}

/**
 * Groups sorted unique wanted frames into ffmpeg runs (see the file comment): `seek` starts a run per GOP touched,
 * `auto` also keeps decoding across GOPs when that is cheaper than another run.
 */
export function planDecodeRuns(wanted: number[], table: FrameTable, strategy: "auto" | "seek", frameCount: number, pixels: number): DecodeRun[] {
  const runs = groupRuns(wanted, table, strategy, frameCount, pixels);
  if (strategy === "seek" || runs.length === 1) return runs;
  // auto: keep the single pass from the start unless the runs are clearly cheaper (the model is rough; a pass from
  // the start never loses much when the request touches most of the video anyway)
  const cost = costModel(frameCount, pixels);
  const last = wanted[wanted.length - 1];
  const streamCost = (last + 1) * cost.frame;
  const runsCost = runs.reduce((sum, r) => sum + (r.seekKey === undefined ? 0 : cost.run) + (r.frames[r.frames.length - 1] - (r.seekKey ?? 0) + 1) * cost.frame, 0);
  return runsCost < 0.7 * streamCost ? runs : [{ frames: wanted }];
}

function groupRuns(wanted: number[], table: FrameTable, strategy: "auto" | "seek", frameCount: number, pixels: number): DecodeRun[] {
  const cost = costModel(frameCount, pixels);
  const runs: DecodeRun[] = [];
  for (const w of wanted) {
    const key = keyframeAtOrBefore(table, w);
    const cur = runs[runs.length - 1];
    if (cur && cur.frames.length < MAX_RUN_FRAMES) {
      const last = cur.frames[cur.frames.length - 1];
      const decodeOn = (w - last) * cost.frame;
      const seekAgain = cost.run + (w - key) * cost.frame;
      if (key <= last || (strategy === "auto" && decodeOn <= seekAgain)) {
        cur.frames.push(w);
        continue;
      }
    }
    runs.push({ seekKey: key === 0 && table.keyframes[0] === 0 ? undefined : key, frames: [w] });
  }
  return runs;
}

/** `-ss` value: the pts in seconds, rounded up to the microsecond (so FFmpeg's rounding back lands on it, not before). */
export function seekSeconds(pts: number, timeBase: [number, number]): string {
  const num = BigInt(pts) * BigInt(timeBase[0]) * 1_000_000n;
  const den = BigInt(timeBase[1]);
  let us = num / den;
  if (us * den < num) us += 1n; // ceil for positive values (BigInt division truncates toward zero)
  const neg = us < 0n;
  const abs = neg ? -us : us;
  return `${neg ? "-" : ""}${abs / 1_000_000n}.${(abs % 1_000_000n).toString().padStart(6, "0")}`;
}

interface Geometry {
  outW: number;
  outH: number;
  frameBytes: number;
  maxInputPixels: number;
}

function geometry(opts: DecodeFramesOptions): Geometry {
  const swap = opts.rotation === 90 || opts.rotation === 270;
  const outW = swap ? opts.height : opts.width;
  const outH = swap ? opts.width : opts.height;
  return { outW, outH, frameBytes: outW * outH * 3, maxInputPixels: resolveMaxInputPixels(opts.maxInputPixels) };
}

/**
 * One part of an ffmpeg run: its input's `-ss` (undefined: from the start), select filter, last pts, frame count. In a
 * multi-input run every segment selects by pts (`ptsSelectFilter`, with `lastPts`): -copyts is on for all inputs.
 */
interface Segment {
  /** the `-ss` value (with -copyts -seek_timestamp 1 -noaccurate_seek); undefined: from the start */
  seek?: string;
  select: string;
  /** the pts of the last selected frame (seeking segments of a multi-input run end there with `trim`) */
  lastPts?: number;
  count: number;
}

/**
 * Runs ffmpeg once and hands each raw frame to `onFrame` (segment, k-th frame of it, data); resolves with the number
 * of frames read per segment. One segment: one input, frames on stdout. Several (seeking) segments: one input per
 * segment, each opened with its own `-ss` and the same untrusted-input options, each with its own filter chain
 * (`trim` to its last wanted pts, then its `select`) and its own raw output on its own pipe (`pipe:3`, `pipe:4`, …),
 * so every frame is known to be its segment's, and a segment that returns fewer frames is seen as such.
 */
async function ffmpegFrames(
  file: string,
  opts: DecodeFramesOptions,
  g: Geometry,
  segments: Segment[],
  onFrame: (segment: number, k: number, data: Uint8Array) => void,
  signal: AbortSignal | undefined,
): Promise<number[]> {
  const { ffmpeg } = locateFfmpeg();
  const input = () => untrustedInputArgs(file, { demuxer: opts.demuxer, maxInputPixels: g.maxInputPixels });
  const seekArgs = (seek: string) => ["-seek_timestamp", "1", "-noaccurate_seek", "-ss", seek];
  const raw = ["-f", "rawvideo", "-pix_fmt", "rgb24"];
  let args: string[];
  const multi = segments.length > 1;
  if (!multi) {
    const run = segments[0];
    args = [
      "-nostdin", "-hide_banner", "-loglevel", "error",
      "-noautorotate",
      ...(run.seek !== undefined ? ["-copyts", ...seekArgs(run.seek)] : []),
      ...input(),
      "-map", "0:v:0", "-an", "-sn", "-dn",
      "-vf", [run.select, ...rotationFilter(opts.rotation)].join(","),
      "-vsync", "0",
      "-frames:v", String(run.count),
      ...raw,
      "pipe:1",
    ];
  } else {
    args = ["-nostdin", "-hide_banner", "-loglevel", "error", "-copyts"];
    const chains: string[] = [];
    segments.forEach((seg, j) => {
      if (seg.lastPts === undefined) throw new Error("multi-input runs select by pts");
      args.push("-noautorotate", ...(seg.seek !== undefined ? seekArgs(seg.seek) : []), ...input());
      chains.push(`[${j}:v:0]${[`trim=end_pts=${seg.lastPts + 1}`, seg.select, ...rotationFilter(opts.rotation)].join(",")}[v${j}]`);
    });
    args.push("-filter_complex", chains.join(";"), "-vsync", "0");
    segments.forEach((seg, j) => args.push("-map", `[v${j}]`, "-frames:v", String(seg.count), ...raw, `pipe:${3 + j}`));
  }
  const proc = spawnTool(ffmpeg, args, {
    label: opts.label,
    timeoutMs: opts.timeoutMs ?? 600_000,
    signal,
    explain: explainUntrustedFailure(g.maxInputPixels),
    extraPipes: multi ? segments.length : 0,
  });
  let failure: unknown;
  const received = segments.map(() => 0);
  const outputs = multi ? proc.pipes : [proc.stdout];
  outputs.forEach((out, j) => {
    let current = new Uint8Array(g.frameBytes);
    let filled = 0;
    const count = segments[j].count;
    out.on("data", (chunk: Buffer) => {
      if (failure) return;
      try {
        let offset = 0;
        while (offset < chunk.length && received[j] < count) {
          const take = Math.min(g.frameBytes - filled, chunk.length - offset);
          current.set(chunk.subarray(offset, offset + take), filled);
          filled += take;
          offset += take;
          if (filled === g.frameBytes) {
            const data = current;
            current = new Uint8Array(g.frameBytes);
            filled = 0;
            onFrame(j, received[j]++, data);
          }
        }
      } catch (err) {
        failure = err;
        proc.kill("frame processing failed");
      }
    });
  });
  try {
    await proc.done;
  } catch (err) {
    throw failure ?? err;
  }
  if (failure) throw failure;
  return received;
}

/**
 * FFmpeg's own pts and time base of frame 0 (one decoded frame through `showinfo`), to check a frame table against
 * before seeking with it. Undefined when they cannot be read.
 */
async function ffmpegFirstFrame(file: string, opts: DecodeFramesOptions, g: Geometry, signal: AbortSignal | undefined): Promise<{ pts: number; timeBase: string } | undefined> {
  const { ffmpeg } = locateFfmpeg();
  const { stderr } = await runTool(
    ffmpeg,
    [
      "-nostdin", "-hide_banner", "-nostats", "-loglevel", "info",
      "-copyts",
      ...untrustedInputArgs(file, { demuxer: opts.demuxer, maxInputPixels: g.maxInputPixels }),
      "-map", "0:v:0", "-an", "-sn", "-dn",
      "-vf", "showinfo", "-vsync", "0", "-frames:v", "1", "-f", "null", "-",
    ],
    { label: opts.label, timeoutMs: 60_000, signal, explain: explainUntrustedFailure(g.maxInputPixels) },
  );
  const pts = /\] n:\s*0 pts:\s*(-?\d+)/.exec(stderr);
  const tb = /config in time_base:\s*(\d+\/\d+)/.exec(stderr);
  return pts && tb ? { pts: Number(pts[1]), timeBase: tb[1] } : undefined;
}

/** Decodes the frames at `opts.indices` from a local file; returns them in the order of `opts.indices`. */
export async function decodeFrames(file: string, opts: DecodeFramesOptions): Promise<RgbImage[]> {
  const { indices, label } = opts;
  if (indices.length === 0) return [];
  for (const i of indices) {
    if (!(Number.isInteger(i) && i >= 0)) throw new VideolmError(`${label}: frame index ${i} is not a non-negative integer`);
  }
  const g = geometry(opts);
  checkInputPixels(label, opts.width, opts.height, g.maxInputPixels, true);
  const wanted = [...new Set(indices)].sort((a, b) => a - b);
  const byIndex = new Map<number, RgbImage>();
  const store = (index: number, data: Uint8Array) => {
    let frame: RgbImage = { width: g.outW, height: g.outH, data };
    if (opts.resize && (opts.resize.width !== g.outW || opts.resize.height !== g.outH)) {
      frame = opts.resize.fn(frame, opts.resize.height, opts.resize.width);
    }
    if (!byIndex.has(index)) {
      byIndex.set(index, frame);
      opts.onProgress?.(byIndex.size, wanted.length);
    }
  };

  const strategy = opts.strategy ?? "auto";
  const table = opts.table;
  const report = opts.report;
  if (report) Object.assign(report, { runs: 0, seekingRuns: 0, processes: 0, fallbackFrames: 0, tableTrusted: undefined });
  let missing = wanted;
  if (strategy !== "stream" && table && opts.demuxer && SEEKABLE_DEMUXERS.includes(opts.demuxer) && wanted[wanted.length - 1] < table.pts.length) {
    const runs = planDecodeRuns(wanted, table, strategy, opts.frameCount ?? table.pts.length, opts.width * opts.height);
    const seeking = runs.some((r) => r.seekKey !== undefined);
    if (runs.length > 1 || seeking) {
      let trusted = !seeking;
      if (seeking) {
        const first = await ffmpegFirstFrame(file, opts, g, opts.signal);
        trusted = first !== undefined && first.pts === table.pts[0] + table.ffmpegOffset && first.timeBase === `${table.timeBase[0]}/${table.timeBase[1]}`;
        if (report) report.tableTrusted = trusted;
      }
      if (trusted) {
        const perProcess = inputsPerProcess(opts.width * opts.height);
        // processes at a time: `concurrency`, and at most MAX_INPUTS_IN_FLIGHT inputs (decoders, demuxer indexes) alive
        const concurrency = Math.max(1, Math.min(opts.concurrency ?? DEFAULT_CONCURRENCY, Math.floor(MAX_INPUTS_IN_FLIGHT / perProcess)));
        // once the table is checked (seeking), a run from the start can share a process too (selected by pts like the others)
        const shared = seeking ? runs : runs.filter((r) => r.seekKey !== undefined);
        const batches = [...runs.filter((r) => !shared.includes(r)).map((r) => [r]), ...batchRuns(shared, perProcess, concurrency)];
        await runPool(batches, concurrency, opts.signal, async (batch, signal) => {
          const segments = batch.map((run): Segment => {
            if (run.seekKey === undefined && batch.length === 1) return { select: selectFilter(run.frames), count: run.frames.length };
            const shifted = run.frames.map((i) => table.pts[i] + table.ffmpegOffset);
            const seek = run.seekKey === undefined ? undefined : seekSeconds(table.pts[run.seekKey] + table.ffmpegOffset, table.timeBase);
            return { seek, select: ptsSelectFilter(shifted), lastPts: shifted[shifted.length - 1], count: run.frames.length };
          });
          await ffmpegFrames(file, opts, g, segments, (j, k, data) => store(batch[j].frames[k], data), signal);
          if (report) {
            report.runs += batch.length;
            report.seekingRuns += segments.filter((seg) => seg.seek !== undefined).length;
            report.processes = (report.processes ?? 0) + 1;
          }
        });
        missing = wanted.filter((i) => !byIndex.has(i));
        if (report) report.fallbackFrames = missing.length;
      }
    }
  }

  if (missing.length > 0) {
    // One pass from the start; `n` counts decoded frames from 0 (see the file comment).
    const [received] = await ffmpegFrames(file, opts, g, [{ select: selectFilter(missing), count: missing.length }], (_, k, data) => store(missing[k], data), opts.signal);
    if (report) {
      report.runs++;
      report.processes = (report.processes ?? 0) + 1;
    }
    if (received < missing.length) {
      throw new VideolmError(
        `${label}: the video ended after ${wanted.length - missing.length + received} of ${wanted.length} selected frames (frame ${missing[received]} not found); ` +
          `the file is truncated or its header overstates the frame count`,
      );
    }
  }
  return indices.map((i) => byIndex.get(i)!);
}

/** Runs `work` on every item, at most `concurrency` at once; the first failure stops the others and is thrown. */
async function runPool<T>(items: T[], concurrency: number, signal: AbortSignal | undefined, work: (item: T, signal: AbortSignal) => Promise<void>): Promise<void> {
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  signal?.addEventListener("abort", onAbort, { once: true });
  let next = 0;
  let failure: unknown;
  const worker = async () => {
    while (failure === undefined && next < items.length) {
      const item = items[next++];
      try {
        await work(item, stop.signal);
      } catch (err) {
        if (failure === undefined) failure = err;
        stop.abort();
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, items.length)) }, worker));
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
  if (failure !== undefined) throw failure;
}
