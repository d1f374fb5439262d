/**
 * Probing a video file with ffprobe: size, rotation, frame rates, duration, frame count.
 *
 * Frame count. The reference readers index frames 0..N-1 in presentation order (decord `len(vr)`, torchcodec
 * `metadata.num_frames`), so N must be exact: an index past the real end would select nothing. We take `nb_frames`
 * from the container header when it has one (mp4/mov: the sample table, free to read). Matroska/WebM and some other
 * containers have no per-stream count; then we run ffprobe a second time with `-count_packets`, which demuxes the
 * whole file but decodes nothing (one video packet = one frame for the codecs we meet). Its cost is reading the file
 * once — I/O-bound, roughly a second per GB — instead of `-count_frames`, which decodes every frame and would cost as
 * much as decoding the whole video. A duration × fps estimate is never used for indices: it is off by a frame or more
 * on real files.
 *
 * Hostile media (issue 14): ffprobe runs with `untrustedInputArgs` (only the file itself, only single-file containers
 * — see ffmpeg.ts), and its detected demuxer is returned as `demuxer`, which the decoder then forces. The frame size is
 * checked against `maxInputPixels` here, before any frame is decoded (see limits.ts); ffprobe's own decoders get
 * `max_pixels`, so even the probe never allocates an oversized frame.
 */
import { VideolmError } from "../errors.js";
import { allowedDemuxer, explainUntrustedFailure, locateFfmpeg, runTool, untrustedInputArgs } from "./ffmpeg.js";
import { checkInputPixels, resolveMaxInputPixels } from "./limits.js";

/** Largest accepted frame side and area (16K × 16K); anything larger is treated as a damaged or hostile header. */
export const MAX_FRAME_SIDE = 16384;
export const MAX_FRAME_AREA = 16384 * 16384;

export interface VideoProbe {
  /** The source as given (path or URL) — used in messages. */
  source: string;
  /** Container format name(s) as ffprobe reports them, e.g. "mov,mp4,m4a,3gp,3g2,mj2". */
  container: string;
  /** The demuxer decoding must use (`-f`), one of ALLOWED_DEMUXERS, e.g. "mov". */
  demuxer: string;
  codec: string;
  pixelFormat: string;
  /** Coded (stored) frame size, before rotation. */
  width: number;
  height: number;
  /**
   * Counter-clockwise rotation in degrees (0, 90, 180, 270) that the container asks players to apply for display
   * (ffprobe's display-matrix `rotation`, which is what `ffmpeg -autorotate` and torchcodec ≥ 0.11 apply).
   */
  rotation: 0 | 90 | 180 | 270;
  /** Frame size after applying `rotation` (width/height swapped for 90/270). */
  displayWidth: number;
  displayHeight: number;
  /** Sample (pixel) aspect ratio, `[num, den]`; [1, 1] when unknown. Reported only: reference readers ignore it. */
  sampleAspectRatio: [number, number];
  /** Average frame rate (ffprobe `avg_frame_rate`; decord/torchcodec `average_fps` from the header). */
  avgFps: number;
  /** ffprobe `r_frame_rate`: the lowest rate that represents all timestamps exactly. */
  rFps: number;
  /**
   * Variable frame rate, judged without decoding: avg and r frame rates differ by more than 0.1% (mp4/mov, where
   * avg = frames / duration), or frames / stream duration is more than 2% away from the header's average rate
   * (Matroska/WebM, whose header "average" is just the nominal rate). Informational: sampling uses `avgFps`.
   */
  isVfr: boolean;
  /** Seconds (container duration, else stream duration, else frameCount / avgFps). */
  duration: number;
  /** Number of video frames (see file comment). */
  frameCount: number;
  frameCountSource: "header" | "packets";
  hasAudio: boolean;
}

export interface ProbeOptions {
  signal?: AbortSignal;
  /** Default 60 s per ffprobe run. */
  timeoutMs?: number;
  /** Largest accepted stored frame size, width × height (default DEFAULT_MAX_INPUT_PIXELS). */
  maxInputPixels?: number;
}

interface FfprobeStream {
  codec_type?: string;
  codec_name?: string;
  pix_fmt?: string;
  width?: number;
  height?: number;
  sample_aspect_ratio?: string;
  avg_frame_rate?: string;
  r_frame_rate?: string;
  duration?: string;
  nb_frames?: string;
  nb_read_packets?: string;
  tags?: Record<string, string>;
  side_data_list?: { side_data_type?: string; rotation?: number }[];
  disposition?: { attached_pic?: number };
}

interface FfprobeOutput {
  streams?: FfprobeStream[];
  format?: { format_name?: string; duration?: string };
}

/** Parses "30000/1001" (or "25") into a number; NaN for "0/0" or garbage. */
export function parseRational(text: string | undefined): number {
  if (!text) return NaN;
  const [n, d] = text.split("/").map(Number);
  if (d === undefined) return Number.isFinite(n) ? n : NaN;
  return Number.isFinite(n) && Number.isFinite(d) && d !== 0 && n !== 0 ? n / d : NaN;
}

/** "HH:MM:SS.fraction" → seconds; NaN when absent or malformed. */
function parseClock(text: string | undefined): number {
  const m = /^(\d+):(\d{2}):(\d{2}(?:\.\d+)?)$/.exec(text ?? "");
  return m ? Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3]) : NaN;
}

/** CCW rotation from the display matrix, else from the legacy clockwise `rotate` tag; snapped to a multiple of 90. */
function rotationOf(stream: FfprobeStream): 0 | 90 | 180 | 270 {
  let ccw = 0;
  const matrix = stream.side_data_list?.find((d) => d.side_data_type === "Display Matrix" && typeof d.rotation === "number");
  if (matrix) ccw = matrix.rotation!;
  else if (stream.tags?.rotate) ccw = -Number(stream.tags.rotate) || 0;
  const snapped = (((Math.round(ccw / 90) * 90) % 360) + 360) % 360;
  return snapped as 0 | 90 | 180 | 270;
}

function failure(source: string, reason: string): VideolmError {
  return new VideolmError(`${source}: ${reason}`);
}

async function ffprobeJson(file: string, args: string[], source: string, opts: ProbeOptions, demuxer?: string): Promise<FfprobeOutput> {
  const { ffprobe } = locateFfmpeg();
  const maxInputPixels = resolveMaxInputPixels(opts.maxInputPixels);
  let out: { stdout: Buffer };
  try {
    out = await runTool(ffprobe, ["-v", "error", "-print_format", "json", ...args, ...untrustedInputArgs(file, { demuxer, maxInputPixels })], {
      label: source,
      timeoutMs: opts.timeoutMs ?? 60_000,
      signal: opts.signal,
      explain: explainUntrustedFailure(maxInputPixels),
    });
  } catch (err) {
    if (err instanceof VideolmError && /Invalid data found|could not find codec|moov atom not found|End of file/i.test(err.message)) {
      // ffprobe's own line is "<path>: <reason>"; keep just the reason.
      const reason = err.message.slice(err.message.lastIndexOf(": ") + 2);
      throw failure(source, `not a readable video file (${reason})`);
    }
    throw err;
  }
  try {
    return JSON.parse(out.stdout.toString("utf8")) as FfprobeOutput;
  } catch {
    throw failure(source, "ffprobe printed unreadable output");
  }
}

/**
 * Probes the first video stream of `file` (a local path). `source` is how the user named it (path or URL), for messages.
 * Throws VideolmError for a missing/unreadable file, no video stream, zero frames or absurd dimensions.
 */
export async function probeVideo(file: string, opts: ProbeOptions = {}, source: string = file): Promise<VideoProbe> {
  const maxInputPixels = resolveMaxInputPixels(opts.maxInputPixels);
  const info = await ffprobeJson(file, ["-show_format", "-show_streams"], source, opts);
  const container = info.format?.format_name ?? "unknown";
  const demuxer = allowedDemuxer(container);
  // The format whitelist already refuses other demuxers; this also holds if ffprobe ignored it.
  if (!demuxer) throw failure(source, `${container} is not a video container videolm reads`);
  const streams = info.streams ?? [];
  // Cover art in audio files shows up as a one-frame "video" stream with the attached_pic disposition: not a video.
  const video = streams.find((s) => s.codec_type === "video" && !s.disposition?.attached_pic);
  if (!video) {
    const kinds = streams.map((s) => s.codec_type ?? "unknown");
    throw failure(source, kinds.length ? `no video stream (only ${[...new Set(kinds)].join(", ")})` : "no video stream");
  }
  const width = video.width ?? 0;
  const height = video.height ?? 0;
  if (!(width > 0 && height > 0)) throw failure(source, `video stream has no frame size (${width}x${height})`);
  if (width > MAX_FRAME_SIDE || height > MAX_FRAME_SIDE || width * height > MAX_FRAME_AREA) {
    throw failure(source, `absurd frame size ${width}x${height} (limit ${MAX_FRAME_SIDE} per side)`);
  }
  checkInputPixels(source, width, height, maxInputPixels, true);

  const avgFps = parseRational(video.avg_frame_rate);
  const rFps = parseRational(video.r_frame_rate);
  const fps = Number.isFinite(avgFps) ? avgFps : rFps;
  if (!(fps > 0)) throw failure(source, "video stream has no frame rate");

  let frameCount = Number(video.nb_frames);
  let frameCountSource: VideoProbe["frameCountSource"] = "header";
  if (!(Number.isInteger(frameCount) && frameCount > 0)) {
    const counted = await ffprobeJson(
      file,
      ["-select_streams", "v:0", "-count_packets", "-show_entries", "stream=nb_read_packets"],
      source,
      opts,
      demuxer,
    );
    frameCount = Number(counted.streams?.[0]?.nb_read_packets);
    frameCountSource = "packets";
  }
  if (!(Number.isInteger(frameCount) && frameCount > 0)) throw failure(source, "video stream has zero frames");

  // Matroska keeps a per-stream duration only as a "DURATION" tag ("00:00:04.800000000").
  const streamDuration = Number(video.duration) || parseClock(video.tags?.DURATION) || Number(info.format?.duration) || 0;
  let duration = Number(info.format?.duration);
  if (!(duration > 0)) duration = Number(video.duration);
  if (!(duration > 0)) duration = frameCount / fps;

  const rotation = rotationOf(video);
  const swap = rotation === 90 || rotation === 270;
  const sarParts = (video.sample_aspect_ratio ?? "").split(":").map(Number);
  const sar: [number, number] = sarParts.length === 2 && sarParts[0] > 0 && sarParts[1] > 0 ? [sarParts[0], sarParts[1]] : [1, 1];

  return {
    source,
    container,
    demuxer,
    codec: video.codec_name ?? "unknown",
    pixelFormat: video.pix_fmt ?? "unknown",
    width,
    height,
    rotation,
    displayWidth: swap ? height : width,
    displayHeight: swap ? width : height,
    sampleAspectRatio: sar,
    avgFps: fps,
    rFps: Number.isFinite(rFps) ? rFps : fps,
    isVfr:
      (Number.isFinite(rFps) && Math.abs(fps - rFps) / rFps > 1e-3) ||
      (streamDuration > 0 && Math.abs(frameCount / streamDuration - fps) / fps > 0.02),
    duration,
    frameCount,
    frameCountSource,
    hasAudio: streams.some((s) => s.codec_type === "audio"),
  };
}
