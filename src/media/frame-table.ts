/**
 * The frame table of a video: every frame's presentation timestamp, in presentation order, and which frames are
 * keyframes — what seeking (decode-frames.ts) and presentation times (video.ts) need (issue 15).
 *
 * Frame i is the i-th frame in presentation order, as decord and torchcodec count (and as ffmpeg's `select` `n`
 * counts decoded frames), so frame i's timestamp is the i-th smallest packet pts: one packet is one frame for the
 * codecs we meet (the probe's frame count makes the same assumption), and a decoder outputs frames in pts order.
 *
 * Two sources:
 *  - mp4/mov (not fragmented): the sample table in the `moov` box, read here without FFmpeg — stts (decode-time
 *    deltas), ctts (composition offsets), stss (sync samples), elst (edit list). Cost: reading the moov box, a few MB
 *    for hours of video (2-hour 30 fps file: 216,000 frames in ~0.1 s), never the media data. Only simple edit lists
 *    are accepted: leading empty edits plus one edit at rate 1 that starts at or before the first frame (FFmpeg then
 *    shifts every timestamp by the same amount and drops no frame); anything else (several edits, a trimmed start,
 *    fragmented files, a sample count other than the probe's) returns no table and the callers fall back.
 *  - any other container: an ffprobe packet scan (`-show_entries packet=pts,flags`), which demuxes the whole file
 *    without decoding (I/O bound: ~1.5 s for a 2-hour file here). Callers run it only when they need it.
 *
 * The table's timestamps may sit at a constant offset from FFmpeg's (an mp4 edit list shifts them): `ffmpegOffset`
 * is the offset expected; seeking checks it against the pts FFmpeg itself gives frame 0 before trusting the table.
 *
 * Hostile input: the moov parser bounds-checks every read, caps the moov size and entry counts, and gives up
 * (returns undefined) on anything it does not understand; ffprobe runs with `untrustedInputArgs`.
 */
import { open } from "node:fs/promises";
import { explainUntrustedFailure, locateFfmpeg, runTool, untrustedInputArgs } from "./ffmpeg.js";
import { resolveMaxInputPixels } from "./limits.js";
import type { VideoProbe } from "./probe.js";

export interface FrameTable {
  /** Presentation timestamps of all frames, ascending (= presentation order), in `timeBase` units. */
  pts: Float64Array;
  /** Presentation indices of the keyframes (random-access points), ascending. */
  keyframes: Int32Array;
  /** Seconds per pts unit, [num, den]. */
  timeBase: [number, number];
  /** FFmpeg's pts of a frame = table pts + ffmpegOffset (expected; verified before seeking). */
  ffmpegOffset: number;
  source: "mp4-index" | "packets";
}

/** Seconds of frame `i` after the first frame (exact division of integers, so CFR files give index / fps). */
export function frameSeconds(table: FrameTable, i: number): number {
  return ((table.pts[i] - table.pts[0]) * table.timeBase[0]) / table.timeBase[1];
}

/** The last keyframe at or before presentation index `i` (0 when none: decoding then starts at the file's start). */
export function keyframeAtOrBefore(table: FrameTable, i: number): number {
  const k = table.keyframes;
  let lo = 0;
  let hi = k.length - 1;
  let best = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (k[mid] <= i) {
      best = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return best < 0 ? 0 : k[best];
}

/**
 * Builds a table from packets in decode order: sorts by pts, requires distinct pts, maps keyframe flags to
 * presentation indices. Undefined when a pts is missing or repeated.
 */
export function tableFromPackets(
  ptsDecodeOrder: ArrayLike<number>,
  keyDecodeOrder: ArrayLike<boolean>,
  timeBase: [number, number],
  ffmpegOffset: number,
  source: FrameTable["source"],
): FrameTable | undefined {
  const n = ptsDecodeOrder.length;
  if (n === 0) return undefined;
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    if (!Number.isSafeInteger(ptsDecodeOrder[i])) return undefined;
    order[i] = i;
  }
  order.sort((a, b) => ptsDecodeOrder[a] - ptsDecodeOrder[b]);
  const pts = new Float64Array(n);
  const keys: number[] = [];
  for (let i = 0; i < n; i++) {
    pts[i] = ptsDecodeOrder[order[i]];
    if (i > 0 && pts[i] === pts[i - 1]) return undefined;
    if (keyDecodeOrder[order[i]]) keys.push(i);
  }
  if (keys.length === 0) return undefined;
  return { pts, keyframes: Int32Array.from(keys), timeBase, ffmpegOffset, source };
}

// ---- mp4 / mov sample tables ------------------------------------------------------------------------------------

/** Largest moov box read (a 10-hour 60 fps file's moov is ~30 MB). */
const MAX_MOOV_BYTES = 256 * 1024 * 1024;
/** Top-level boxes looked at before giving up on finding moov. */
const MAX_TOP_LEVEL_BOXES = 4096;
/** Most frames a table is built for (2^24: 77 hours at 60 fps; ~0.3 GB of tables); beyond it decoding streams. */
export const MAX_TABLE_FRAMES = 1 << 24;

interface Box {
  type: string;
  /** payload start and end (after the header), absolute offsets in the buffer */
  start: number;
  end: number;
}

/** The child boxes of buf[start, end); undefined when a size is inconsistent. */
function children(buf: Buffer, start: number, end: number): Box[] | undefined {
  const out: Box[] = [];
  let pos = start;
  while (pos + 8 <= end) {
    let size = buf.readUInt32BE(pos);
    const type = buf.toString("latin1", pos + 4, pos + 8);
    let header = 8;
    if (size === 1) {
      if (pos + 16 > end) return undefined;
      const big = buf.readBigUInt64BE(pos + 8);
      if (big > BigInt(end - pos)) return undefined;
      size = Number(big);
      header = 16;
    } else if (size === 0) size = end - pos;
    if (size < header || pos + size > end) return undefined;
    out.push({ type, start: pos + header, end: pos + size });
    pos += size;
    if (out.length > 100_000) return undefined;
  }
  return out;
}

function child(buf: Buffer, parent: Box, type: string): Box | undefined {
  return children(buf, parent.start, parent.end)?.find((b) => b.type === type);
}

/** Finds and reads the top-level moov box; undefined when absent, too big, or the file is fragmented (moof). */
async function readMoov(file: string): Promise<Buffer | undefined> {
  const fh = await open(file, "r");
  try {
    const { size: fileSize } = await fh.stat();
    const head = Buffer.alloc(16);
    let pos = 0;
    for (let count = 0; count < MAX_TOP_LEVEL_BOXES && pos + 8 <= fileSize; count++) {
      const { bytesRead } = await fh.read(head, 0, 16, pos);
      if (bytesRead < 8) return undefined;
      let size = head.readUInt32BE(0);
      const type = head.toString("latin1", 4, 8);
      let header = 8;
      if (size === 1) {
        if (bytesRead < 16) return undefined;
        size = Number(head.readBigUInt64BE(8));
        header = 16;
      } else if (size === 0) size = fileSize - pos;
      if (size < header || pos + size > fileSize) return undefined;
      if (type === "moof") return undefined;
      if (type === "moov") {
        if (size - header > MAX_MOOV_BYTES) return undefined;
        const buf = Buffer.alloc(size - header);
        const r = await fh.read(buf, 0, buf.length, pos + header);
        return r.bytesRead === buf.length ? buf : undefined;
      }
      pos += size;
    }
    return undefined;
  } finally {
    await fh.close();
  }
}

interface FullBox {
  version: number;
  /** payload after version/flags */
  start: number;
  end: number;
}
function fullBox(buf: Buffer, b: Box): FullBox | undefined {
  if (b.end - b.start < 4) return undefined;
  return { version: buf[b.start], start: b.start + 4, end: b.end };
}

/** Entry table of a full box: `count` (u32) then `count` entries of `entrySize` bytes; undefined when it overruns. */
function entries(buf: Buffer, fb: FullBox, entrySize: number): { count: number; at: (i: number) => number } | undefined {
  if (fb.end - fb.start < 4) return undefined;
  const count = buf.readUInt32BE(fb.start);
  if (count * entrySize > fb.end - fb.start - 4) return undefined;
  return { count, at: (i) => fb.start + 4 + i * entrySize };
}

/**
 * The frame table of the first video track of an mp4/mov file from its sample table (see the file comment);
 * undefined when the file is not a plain mp4/mov this parser understands, or its sample count is not `frameCount`.
 */
export async function mp4FrameTable(file: string, frameCount: number): Promise<FrameTable | undefined> {
  const moov = await readMoov(file);
  if (!moov) return undefined;
  const root: Box = { type: "moov", start: 0, end: moov.length };
  const top = children(moov, root.start, root.end);
  if (!top || top.some((b) => b.type === "mvex")) return undefined; // fragmented
  const mvhd = top.find((b) => b.type === "mvhd");
  const mvhdFb = mvhd && fullBox(moov, mvhd);
  if (!mvhdFb || mvhdFb.end - mvhdFb.start < (mvhdFb.version === 1 ? 32 : 20)) return undefined;
  const movieTimescale = moov.readUInt32BE(mvhdFb.start + (mvhdFb.version === 1 ? 16 : 8));

  for (const trak of top.filter((b) => b.type === "trak")) {
    const mdia = child(moov, trak, "mdia");
    if (!mdia) continue;
    const hdlr = child(moov, mdia, "hdlr");
    if (!hdlr || hdlr.end - hdlr.start < 12 || moov.toString("latin1", hdlr.start + 8, hdlr.start + 12) !== "vide") continue;
    // The first video track is FFmpeg's v:0; anything we cannot read in it means "no table", not "try the next".
    return trackTable(moov, trak, mdia, movieTimescale, frameCount);
  }
  return undefined;
}

function trackTable(moov: Buffer, trak: Box, mdia: Box, movieTimescale: number, frameCount: number): FrameTable | undefined {
  const mdhd = child(moov, mdia, "mdhd");
  const mdhdFb = mdhd && fullBox(moov, mdhd);
  if (!mdhdFb || mdhdFb.end - mdhdFb.start < (mdhdFb.version === 1 ? 32 : 20)) return undefined;
  const timescale = moov.readUInt32BE(mdhdFb.start + (mdhdFb.version === 1 ? 16 : 8));
  if (!(timescale > 0 && movieTimescale > 0)) return undefined;
  const minf = child(moov, mdia, "minf");
  const stbl = minf && child(moov, minf, "stbl");
  if (!stbl) return undefined;
  const boxes = children(moov, stbl.start, stbl.end);
  if (!boxes) return undefined;
  const find = (t: string) => {
    const b = boxes.find((x) => x.type === t);
    return b && fullBox(moov, b);
  };

  const stsz = find("stsz") ?? find("stz2");
  if (!stsz || stsz.end - stsz.start < 12) return undefined;
  const n = moov.readUInt32BE(stsz.start + 4);
  // The count comes from the file (a 1 KB file may claim 4 billion samples): bound it before allocating the tables.
  if (n !== frameCount || n === 0 || n > MAX_TABLE_FRAMES) return undefined;

  // decode times
  const stts = find("stts");
  const sttsE = stts && entries(moov, stts, 8);
  if (!sttsE) return undefined;
  const pts = new Float64Array(n);
  let k = 0;
  let dts = 0;
  for (let e = 0; e < sttsE.count && k < n; e++) {
    const count = moov.readUInt32BE(sttsE.at(e));
    const delta = moov.readUInt32BE(sttsE.at(e) + 4);
    for (let j = 0; j < count && k < n; j++, k++) {
      pts[k] = dts;
      dts += delta;
    }
  }
  if (k !== n) return undefined;

  // composition offsets (FFmpeg reads them as signed whatever the version)
  const ctts = find("ctts");
  if (ctts) {
    const cttsE = entries(moov, ctts, 8);
    if (!cttsE) return undefined;
    k = 0;
    for (let e = 0; e < cttsE.count && k < n; e++) {
      const count = moov.readUInt32BE(cttsE.at(e));
      const offset = moov.readInt32BE(cttsE.at(e) + 4);
      for (let j = 0; j < count && k < n; j++, k++) pts[k] += offset;
    }
    if (k !== n) return undefined;
  }

  // sync samples (absent: every sample is a keyframe)
  const key = new Uint8Array(n);
  const stss = find("stss");
  if (stss) {
    const stssE = entries(moov, stss, 4);
    if (!stssE) return undefined;
    for (let e = 0; e < stssE.count; e++) {
      const s = moov.readUInt32BE(stssE.at(e));
      if (s >= 1 && s <= n) key[s - 1] = 1;
    }
  } else key.fill(1);

  // edit list: leading empty edits, then at most one edit at rate 1 that starts at or before the first frame
  let minPts = Infinity;
  for (let i = 0; i < n; i++) if (pts[i] < minPts) minPts = pts[i];
  let offset = 0;
  const edts = child(moov, trak, "edts");
  const elst = edts && child(moov, edts, "elst");
  if (elst) {
    const fb = fullBox(moov, elst);
    if (!fb) return undefined;
    const size = fb.version === 1 ? 20 : 12;
    const list = entries(moov, fb, size);
    if (!list) return undefined;
    let emptyMovieUnits = 0;
    let edits = 0;
    for (let e = 0; e < list.count; e++) {
      const at = list.at(e);
      const duration = fb.version === 1 ? Number(moov.readBigUInt64BE(at)) : moov.readUInt32BE(at);
      const mediaTime = fb.version === 1 ? Number(moov.readBigInt64BE(at + 8)) : moov.readInt32BE(at + 4);
      const rate = moov.readInt32BE(at + (fb.version === 1 ? 16 : 8));
      if (mediaTime === -1) {
        if (edits > 0) return undefined;
        emptyMovieUnits += duration;
        continue;
      }
      edits++;
      if (edits > 1 || rate !== 0x10000 || mediaTime > minPts) return undefined;
      offset = -mediaTime;
    }
    offset += Math.round((emptyMovieUnits * timescale) / movieTimescale);
  }
  const flags = Array.from(key, (v) => v === 1);
  return tableFromPackets(pts, flags, [1, timescale], offset, "mp4-index");
}

// ---- any container: ffprobe packet scan -------------------------------------------------------------------------

export interface ScanOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
  maxInputPixels?: number;
}

/**
 * The frame table from an ffprobe packet scan (demuxes the whole file, decodes nothing). Undefined when a packet has
 * no pts, pts repeat, or the packet count is not the probe's frame count.
 */
export async function scanFrameTable(file: string, probe: VideoProbe, opts: ScanOptions = {}): Promise<FrameTable | undefined> {
  const { ffprobe } = locateFfmpeg();
  const maxInputPixels = resolveMaxInputPixels(opts.maxInputPixels);
  const { stdout } = await runTool(
    ffprobe,
    [
      "-v", "error",
      "-select_streams", "v:0",
      "-show_entries", "stream=time_base:packet=pts,flags",
      "-of", "csv=p=0",
      ...untrustedInputArgs(file, { demuxer: probe.demuxer, maxInputPixels }),
    ],
    { label: probe.source, timeoutMs: opts.timeoutMs ?? 120_000, signal: opts.signal, explain: explainUntrustedFailure(maxInputPixels), maxStdoutBytes: 256 * 1024 * 1024 },
  );
  const text = stdout.toString("latin1");
  const pts: number[] = [];
  const key: boolean[] = [];
  let timeBase: [number, number] | undefined;
  for (const line of text.split("\n")) {
    if (!line) continue;
    const tb = /^(\d+)\/(\d+)\s*$/.exec(line);
    if (tb) {
      timeBase = [Number(tb[1]), Number(tb[2])];
      continue;
    }
    const comma = line.indexOf(",");
    if (comma < 0) return undefined;
    const value = Number(line.slice(0, comma));
    if (!Number.isSafeInteger(value)) return undefined; // "N/A" or garbage
    pts.push(value);
    key.push(line.charCodeAt(comma + 1) === 75 /* K */);
  }
  if (!timeBase || !(timeBase[0] > 0 && timeBase[1] > 0) || pts.length !== probe.frameCount) return undefined;
  return tableFromPackets(pts, key, timeBase, 0, "packets");
}
