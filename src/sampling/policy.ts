/**
 * Named sampling policies (MediaOptions.policy, `--policy`) applied to a local family's video plan.
 *
 * Plan-level: the policy decides which frames are sampled and the per-frame pixel budget; the family's own rule then
 * gives the frame size within that budget (qwen-vl-utils smart_resize at the family's factor, 28 or 32) and its
 * processor patchifies as always. What is preserved from the policy: the frame indices and the pixel budget per
 * frame. What is not: Seed1.5-VL's own frame size (multiples of 28 by get_resized_hw_for_Navit, kept in the policy
 * plan for a Seed backend), its token count (a Qwen-VL model merges frames in temporal pairs, padding an odd count
 * by repeating the last frame, and counts (factor/14)² patches per token), and its timestamp texts (the family
 * writes its own, e.g. Qwen3-VL's `<t seconds>` per frame pair).
 */
import type { MediaOptions } from "../engine/request.js";
import { OptionError } from "../option-error.js";
import { smartResize } from "../processing/smart-resize.js";
import type { SamplingDefaults, VideoSamplingPlan, VideoSource } from "./qwen-vl-utils.js";
import { planSeedSampling, SEED_POLICY, SEED_TASKS, type SeedSamplingOptions, type SeedSamplingPlan } from "./seed-1-5.js";

export const SAMPLING_POLICIES = [SEED_POLICY] as const;
export type SamplingPolicyName = (typeof SAMPLING_POLICIES)[number];

/** Options a policy decides itself: given together with one, they are refused rather than silently ignored. */
const DECIDED_BY_POLICY = ["nframes", "minFrames", "maxFrames", "minPixels", "maxPixels", "totalPixels", "start", "end"] as const;

/** Refuses an unknown policy, a task without a policy, and options the policy decides (OptionError: caller's names). */
export function checkPolicyOptions(o: Pick<MediaOptions, "policy" | "policyTask" | "fps" | (typeof DECIDED_BY_POLICY)[number]>): void {
  if (o.policy === undefined) {
    if (o.policyTask !== undefined) throw new OptionError(["policyTask", "policy"], (n) => `${n("policyTask")} applies to a sampling policy: give ${n("policy")} ${SEED_POLICY} too`);
    return;
  }
  if (!SAMPLING_POLICIES.includes(o.policy)) {
    throw new OptionError(["policy"], (n) => `${n("policy")} must be one of ${SAMPLING_POLICIES.join(", ")}, got ${JSON.stringify(o.policy)}`);
  }
  if (o.policyTask !== undefined && !SEED_TASKS.includes(o.policyTask)) {
    throw new OptionError(["policyTask"], (n) => `${n("policyTask")} must be one of ${SEED_TASKS.join(", ")}, got ${JSON.stringify(o.policyTask)}`);
  }
  if (o.fps !== undefined && o.policyTask !== undefined) {
    throw new OptionError(["fps", "policyTask"], (n) => `${n("policy")} ${o.policy}: give ${n("policyTask")} (which sets the frame rate) or ${n("fps")}, not both`);
  }
  for (const key of DECIDED_BY_POLICY) {
    if (o[key] !== undefined) {
      throw new OptionError([key, "policy"], (n) => `${n(key)} cannot be combined with ${n("policy")} ${o.policy}: the policy chooses the frames and their size (use ${n("fps")} or ${n("policyTask")} to change its frame rate)`);
    }
  }
}

/** The seed1.5 policy's options from a part's media options (fps = its sampling rate; the server's frame limit). */
export function seedOptionsOf(o: MediaOptions): SeedSamplingOptions {
  return { task: o.policyTask, fps: o.fps, frameLimit: o.frameLimit };
}

/**
 * A video's plan under the seed1.5 policy for a Qwen-VL family: the policy's frames, and the family's smart_resize
 * at its own factor within the policy's per-frame budget (min_pixels 4·factor², as Seed1.5-VL's 4·28²). Times are
 * index / average fps (presentation times replace them later where the caller asks for them).
 */
export function seedFamilyPlan(video: VideoSource, options: SeedSamplingOptions, d: SamplingDefaults): { plan: VideoSamplingPlan; policy: SeedSamplingPlan } {
  const policy = planSeedSampling(video, options);
  const minPixels = d.imageMinPixels;
  const maxPixels = policy.maxPixels;
  const [resizedHeight, resizedWidth] = smartResize(video.height, video.width, { factor: d.factor, minPixels, maxPixels });
  const nframes = policy.frameIndices.length;
  const count = video.frameCount;
  return {
    policy,
    plan: {
      frameIndices: policy.frameIndices,
      nframes,
      sampleFps: (nframes / Math.max(count, 1e-6)) * video.fps,
      range: { start: 0, end: count - 1, count },
      minPixels,
      maxPixels,
      resizedHeight,
      resizedWidth,
      timestamps: policy.frameIndices.map((i) => i / video.fps),
    },
  };
}

/** One line for `inspect` and plan limits: what the policy chose. */
export function describePolicyPlan(p: SeedSamplingPlan): string {
  const rate = p.task !== undefined ? `${p.samplingFps} fps (task ${p.task})` : `${p.samplingFps} fps`;
  const count =
    p.subsampled ? `${p.wantedFrames} frames at ${rate} exceed ${p.maxVideoTokens} tokens even at 128 per frame: ${p.frameIndices.length} kept uniformly`
    : p.frameLimited ? `${p.wantedFrames} frames at ${rate} capped to ${p.frameIndices.length} by the frame limit`
    : `${p.frameIndices.length} frames at ${rate}`;
  return `${p.policy}: ${count}; level ${p.levelTokens} tokens per frame (${p.budgetTokens} of ${p.maxVideoTokens}); Seed1.5-VL size ${p.width}×${p.height} = ${p.tokensPerFrame} tokens per frame, ${p.tokens} in all`;
}
