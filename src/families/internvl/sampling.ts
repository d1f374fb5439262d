/**
 * InternVL video frame sampling, as the authors' pipeline does it: the model card code of OpenGVLab/InternVL3_5-*
 * ("Inference with Transformers", `get_index` and `load_video`):
 *
 *     def get_index(bound, fps, max_frame, first_idx=0, num_segments=32):
 *         if bound: start, end = bound[0], bound[1]
 *         else:     start, end = -100000, 100000
 *         start_idx = max(first_idx, round(start * fps))
 *         end_idx = min(round(end * fps), max_frame)
 *         seg_size = float(end_idx - start_idx) / num_segments
 *         return np.array([int(start_idx + (seg_size / 2) + np.round(seg_size * idx)) for idx in range(num_segments)])
 *
 * with `max_frame = len(vr) - 1` and `fps = vr.get_avg_fps()`: the middle frame of each of `num_segments` equal
 * segments. Python's round and np.round round half to even; int() truncates. transformers' InternVLVideoProcessor
 * .sample_frames picks other frames (`arange(total/num/2, total, total/num).int()`: one frame later in places, e.g.
 * (300, 8) → [18,56,93,131,…] vs the model card's [18,55,93,130,…]); test/fixtures/internvl/tables.json records both.
 *
 * How many frames (videolm's choice; the model card passes num_segments by hand, 8 in its example, 32 by default):
 * `nframes` exactly as given (the model card's num_segments: more segments than frames repeat frames, as get_index
 * does); otherwise `fps` frames per second of the clip range (at least one, at most the range's frames), else
 * DEFAULT_FRAMES (16) but never more than the range's frames; then `maxFrames` / the server's frame limit cap it and
 * `minFrames` raises it (within the range's frames). `start` / `end` become get_index's `bound`. Kept from the
 * reference on purpose: get_index spans max_frame = total − 1 frames, so asking for as many segments as frames repeats
 * one and never takes the last (10 of 10 → [0,1,2,3,4,4,5,6,7,8]).
 */
import { VideolmError } from "../../errors.js";

/** Frames sampled from a video when the request does not say (one 448 tile = 256 tokens each). */
export const DEFAULT_FRAMES = 16;

/** numpy `np.round` / Python `round` of a non-negative or negative double to an integer: half to even. */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f; // exact for |x| < 2^52
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** The model card's get_index (see the file comment); `bound` = [start, end] seconds or undefined. */
export function getIndex(bound: readonly [number, number] | undefined, fps: number, maxFrame: number, firstIdx: number, numSegments: number): number[] {
  if (!Number.isInteger(numSegments) || numSegments < 1) throw new VideolmError(`the number of frames must be a positive integer (got ${numSegments})`);
  const [start, end] = bound ?? [-100000, 100000];
  const startIdx = Math.max(firstIdx, roundHalfEven(start * fps));
  const endIdx = Math.min(roundHalfEven(end * fps), maxFrame);
  const segSize = (endIdx - startIdx) / numSegments;
  const out: number[] = [];
  for (let idx = 0; idx < numSegments; idx++) out.push(Math.trunc(startIdx + segSize / 2 + roundHalfEven(segSize * idx)));
  return out;
}

export interface InternVLSamplingOptions {
  nframes?: number;
  fps?: number;
  minFrames?: number;
  maxFrames?: number;
  /** The server's --max-frames: a cap on top of everything but an explicit nframes. */
  frameLimit?: number;
  start?: number;
  end?: number;
}

export interface InternVLFramePlan {
  frameIndices: number[];
  /** get_index's start_idx / end_idx: the range sampled. */
  range: { start: number; end: number; count: number };
  /** Which option capped or raised the count, if any. */
  limitedBy?: { name: "max_frames" | "frame_limit" | "min_frames"; value: number; wanted: number };
}

function positiveInt(name: string, v: number | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!Number.isInteger(v) || v < 1) throw new VideolmError(`${name} must be a positive integer (got ${v})`);
  return v;
}

/** The frames of a video of `frameCount` frames at `videoFps` (average) to sample for `options` (file comment). */
export function planInternVLFrames(frameCount: number, videoFps: number, options: InternVLSamplingOptions): InternVLFramePlan {
  if (!(frameCount >= 1)) throw new VideolmError("the video has no frames");
  if (!(videoFps > 0)) throw new VideolmError(`the video's frame rate must be positive (got ${videoFps})`);
  const nframes = positiveInt("nframes", options.nframes);
  const maxFrames = positiveInt("max_frames", options.maxFrames);
  const minFrames = positiveInt("min_frames", options.minFrames);
  const frameLimit = positiveInt("frame limit", options.frameLimit);
  if (nframes !== undefined && options.fps !== undefined) throw new VideolmError("give either nframes or fps, not both");
  if (options.fps !== undefined && !(options.fps > 0)) throw new VideolmError(`fps must be positive (got ${options.fps})`);
  const bound: [number, number] | undefined =
    options.start !== undefined || options.end !== undefined ? [options.start ?? -100000, options.end ?? 100000] : undefined;
  const maxFrame = frameCount - 1;
  const start = Math.max(0, roundHalfEven((bound?.[0] ?? -100000) * videoFps));
  const end = Math.min(roundHalfEven((bound?.[1] ?? 100000) * videoFps), maxFrame);
  if (end < start) throw new VideolmError(`the clip range ${options.start ?? 0}–${options.end ?? "end"} s holds no frame of this video`);
  const count = end - start + 1;
  let n: number;
  let limitedBy: InternVLFramePlan["limitedBy"];
  if (nframes !== undefined) {
    n = nframes;
  } else {
    const wanted = options.fps !== undefined ? Math.min(count, Math.max(1, Math.floor((count / videoFps) * options.fps))) : Math.min(count, DEFAULT_FRAMES);
    n = wanted;
    const cap = Math.min(maxFrames ?? Infinity, frameLimit ?? Infinity);
    if (n > cap) {
      n = cap;
      limitedBy = frameLimit !== undefined && frameLimit <= (maxFrames ?? Infinity) ? { name: "frame_limit", value: frameLimit, wanted } : { name: "max_frames", value: maxFrames!, wanted };
    } else if (minFrames !== undefined && n < Math.min(minFrames, count)) {
      n = Math.min(minFrames, count);
      limitedBy = { name: "min_frames", value: minFrames, wanted };
    }
  }
  return { frameIndices: getIndex(bound, videoFps, maxFrame, 0, n), range: { start, end, count }, ...(limitedBy ? { limitedBy } : {}) };
}
