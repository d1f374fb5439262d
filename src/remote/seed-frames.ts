/**
 * A video for the Seed1.5-VL API, sampled by Seed1.5-VL's own rule (the seed1.5 policy, src/sampling/seed-1-5.ts)
 * rather than by a local family: probe → planSeedSampling (frames, resolution level, one frame size) → decode only
 * those frames, resized (bicubic, antialiased: torchvision's `resize(..., BICUBIC, antialias=True)` in
 * GradioDemo/infer.py `preprocess_video`) → JPEG → for each frame `[t second]` then the image (seedContentParts).
 * No checkpoint is needed: the API's model is not a local family.
 */
import type { MediaOptions, MediaSource, VideoPart } from "../engine/request.js";
import { VideolmError } from "../errors.js";
import { decodeFrames } from "../media/decode-frames.js";
import { probeVideo } from "../media/probe.js";
import { withLocalVideoFile } from "../media/sources.js";
import { resizeBicubicAntialias } from "../processing/resize.js";
import { checkPolicyOptions, seedOptionsOf } from "../sampling/policy.js";
import { planSeedSampling, seedContentParts, SEED_POLICY, type SeedContentPart, type SeedSamplingPlan } from "../sampling/seed-1-5.js";
import { frameList } from "../families/media-parts.js";
import { frameJpeg } from "./frame-jpeg.js";

/** The content parts of one video part for Seed1.5-VL, and the plan they follow. */
export async function seedVideoParts(part: VideoPart, media: MediaOptions, signal?: AbortSignal): Promise<{ parts: SeedContentPart[]; plan: SeedSamplingPlan }> {
  if (frameList(part.video)) throw new VideolmError("backend kind seed: the video must be a file or URL (Seed1.5-VL's sampling reads its frame rate)");
  // The policy decides the frames and their size: the options it decides are refused, fps / policy_task set its rate.
  const merged: MediaOptions = { ...media, ...part, policy: SEED_POLICY };
  checkPolicyOptions(merged);
  const source = part.video as MediaSource;
  const href = source instanceof URL ? source.href : Buffer.isBuffer(source) ? `data:video/mp4;base64,${source.toString("base64")}` : source;
  return withLocalVideoFile(href, { signal }, async (file) => {
    const probe = await probeVideo(file.path, { signal, maxInputPixels: media.maxInputPixels }, file.label);
    const plan = planSeedSampling({ frameCount: probe.frameCount, fps: probe.avgFps, width: probe.displayWidth, height: probe.displayHeight }, seedOptionsOf(merged));
    const frames = await decodeFrames(file.path, {
      indices: plan.frameIndices,
      width: probe.width,
      height: probe.height,
      rotation: probe.rotation,
      demuxer: probe.demuxer,
      maxInputPixels: media.maxInputPixels,
      resize: { height: plan.height, width: plan.width, fn: resizeBicubicAntialias },
      label: file.label,
      signal,
      frameCount: probe.frameCount,
    });
    const urls = await Promise.all(frames.map(async (f) => `data:image/jpeg;base64,${(await frameJpeg(f)).toString("base64")}`));
    return { parts: seedContentParts(plan, urls, "high"), plan };
  });
}
