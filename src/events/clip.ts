/**
 * The clip a model saw of a video, in seconds: where it starts in the file (`start`) and how long it is (`end −
 * start`, the end bounded by the file's length). Event times are reported from the clip's start and clamped to its
 * duration; a family whose frame times are the file's (Qwen3-VL, VideoLLaMA3: EventPrompt.timeOrigin "source")
 * answers in the file's time, which is shifted by `start`.
 */
import type { MediaOptions, VisualPlan } from "../engine/request.js";

export interface ClipRange {
  /** Seconds into the file where the clip starts. */
  start: number;
  /** Seconds of video in the clip. */
  duration: number;
}

/**
 * The clip of a planned video: `options` are the part's own media options over the request's (the `start` / `end`
 * the plan was made with). The file's length is its probed frame count over its frame rate; a list of frames lasts
 * its sampled frames' span plus one frame.
 */
export function clipOf(visual: VisualPlan, options: Pick<MediaOptions, "start" | "end">): ClipRange {
  const r = visual.resample;
  const times = visual.timestamps ?? [];
  const fps = r?.fps ?? visual.sampleFps ?? 2;
  const fileSeconds = r && r.frameCount > 0 && r.fps > 0 ? r.frameCount / r.fps : times.length > 0 ? times[times.length - 1] + 1 / fps : visual.grid[0] / fps;
  const start = Math.max(0, Math.min(options.start ?? 0, fileSeconds));
  const end = Math.min(options.end ?? fileSeconds, fileSeconds);
  return { start, duration: Math.max(0, end - start) };
}

/** The sampled frames' seconds from the clip's start (for prompts that tell the model its frames' times). */
export function clipFrameTimes(visual: VisualPlan, clip: ClipRange): number[] {
  return (visual.timestamps ?? []).map((t) => Math.max(0, t - clip.start));
}
