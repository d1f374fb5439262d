/**
 * The `seed1.5` sampling policy (src/sampling/seed-1-5.ts) against golden plans computed by Seed1.5-VL's own code
 * (tools/oracle/record_seed_sampling.py: GradioDemo/infer.py's preprocess_video and get_resized_hw_for_Navit, run
 * on the probe facts), plus the budget edges worked out by hand from the rule `frames · level ≤ 81,920`.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { VideolmError } from "../src/errors.js";
import {
  chooseSeedLevel,
  numpyLinspaceRound,
  planSeedSampling,
  seedContentParts,
  seedFrameCount,
  seedResize,
  seedTimestampText,
  SEED_DEFAULTS,
  SEED_TASK_FPS,
} from "../src/sampling/seed-1-5.js";
import { checkPolicyOptions, seedFamilyPlan, seedOptionsOf } from "../src/sampling/policy.js";
import { qwenVlUtilsDefaults } from "../src/sampling/qwen-vl-utils.js";

interface GoldenPlan {
  name: string;
  frameCount: number;
  fps: number;
  height: number;
  width: number;
  samplingFps: number;
  maxVideoTokens: number;
  nFrames: number;
  frameIndices: number[];
  levelTokens: number;
  maxPixels: number;
  size: [number, number];
  texts: string[];
}
const golden = JSON.parse(readFileSync(new URL("./fixtures/sampling/seed-plans.json", import.meta.url), "utf8")) as {
  plans: GoldenPlan[];
  sizes: { height: number; width: number; levelTokens: number; size: [number, number] }[];
};

/** A 1080p video at 30 fps whose 1-fps frame count is exactly `n` (n ≥ 16): n · 30 frames. */
const videoOfFrames = (n: number) => ({ frameCount: n * 30, fps: 30, width: 1920, height: 1080 });

describe("seed1.5 policy against Seed1.5-VL's preprocess_video (infer.py @ f952f84)", () => {
  for (const g of golden.plans) {
    it(g.name, () => {
      const plan = planSeedSampling({ frameCount: g.frameCount, fps: g.fps, width: g.width, height: g.height }, { fps: g.samplingFps, maxVideoTokens: g.maxVideoTokens });
      expect(plan.wantedFrames).toBe(g.nFrames);
      expect(plan.frameIndices).toEqual(g.frameIndices);
      expect(plan.levelTokens).toBe(g.levelTokens);
      expect(plan.maxPixels).toBe(g.maxPixels);
      expect([plan.height, plan.width]).toEqual(g.size);
      expect(plan.frames.map((f) => f.text)).toEqual(g.texts);
      expect(plan.budgetTokens).toBeLessThanOrEqual(g.maxVideoTokens);
    });
  }

  it("resizes to each level as get_resized_hw_for_Navit does, and refuses the 0-pixel sides it would produce", () => {
    for (const s of golden.sizes) {
      const maxPixels = s.levelTokens * 28 * 28;
      if (s.size[0] === 0 || s.size[1] === 0) {
        expect(() => seedResize(s.height, s.width, maxPixels)).toThrow(VideolmError);
      } else {
        expect(seedResize(s.height, s.width, maxPixels), `${s.width}x${s.height} at ${s.levelTokens}`).toEqual(s.size);
        expect((s.size[0] / 28) * (s.size[1] / 28)).toBeLessThanOrEqual(Math.max(s.levelTokens, 4));
      }
    }
    expect(golden.sizes.some((s) => s.size[0] === 0)).toBe(true); // the fixture does exercise that branch
  });
});

describe("seed1.5 level choice at the 81,920-token budget edges", () => {
  // The largest frame count each level holds: floor(81920 / level).
  const edges: [number, number][] = [
    [640, 128],
    [512, 160],
    [384, 213],
    [256, 320],
    [160, 512],
    [128, 640],
  ];
  it("holds exactly floor(81920 / level) frames at each level, one more goes a level down", () => {
    for (const [i, [level, most]] of edges.entries()) {
      expect(chooseSeedLevel(most)).toEqual({ levelTokens: level, keptFrames: most, subsampled: false });
      if (i + 1 < edges.length) expect(chooseSeedLevel(most + 1)).toEqual({ levelTokens: edges[i + 1][0], keptFrames: most + 1, subsampled: false });
    }
  });

  it("fits exactly 81,920 tokens (128 frames at 640) and moves 129 frames (82,560 at 640) down to 512", () => {
    const exact = planSeedSampling(videoOfFrames(128));
    expect(exact.frameIndices).toHaveLength(128);
    expect(exact.levelTokens).toBe(640);
    expect(exact.budgetTokens).toBe(81920);
    const over = planSeedSampling(videoOfFrames(129));
    expect(over.levelTokens).toBe(512);
    expect(over.budgetTokens).toBe(129 * 512);
    expect(over.subsampled).toBe(false);
  });

  it("a budget of 81,920 + 1 keeps 640 for 128 frames; 81,920 − 1 moves them to 512", () => {
    expect(chooseSeedLevel(128, 81921).levelTokens).toBe(640);
    expect(chooseSeedLevel(128, 81919).levelTokens).toBe(512);
  });

  it("subsamples uniformly to floor(81920 / 128) = 640 frames when even 128 tokens per frame exceed the budget", () => {
    expect(chooseSeedLevel(640)).toEqual({ levelTokens: 128, keptFrames: 640, subsampled: false });
    expect(chooseSeedLevel(641)).toEqual({ levelTokens: 128, keptFrames: 640, subsampled: true });
    const hour = planSeedSampling({ frameCount: 3600 * 30, fps: 30, width: 1280, height: 720 });
    expect(hour.wantedFrames).toBe(3600);
    expect(hour.frameIndices).toHaveLength(640);
    expect(hour.subsampled).toBe(true);
    expect(hour.levelTokens).toBe(128);
    expect(hour.budgetTokens).toBe(81920);
    // Uniform over the 1-fps frames: first and last kept, the steps differ by at most one 1-fps frame (30 frames).
    expect(hour.frameIndices[0]).toBe(0);
    expect(hour.frameIndices.at(-1)).toBe(3600 * 30 - 1);
    const steps = hour.frameIndices.slice(1).map((x, i) => x - hour.frameIndices[i]);
    expect(Math.max(...steps) - Math.min(...steps)).toBeLessThanOrEqual(31);
    // The resized frames hold at most the level's tokens: 720p at 128 tokens → 224×420 = 8·15 = 120 tokens.
    expect(hour.tokensPerFrame).toBeLessThanOrEqual(128);
    expect(hour.tokens).toBe(hour.tokensPerFrame * 640);
  });
});

describe("seed1.5 frame counts, tasks and timestamps", () => {
  it("samples at 1 fps by default, 2 fps for detail, 5 fps for counting and motion", () => {
    expect(SEED_TASK_FPS).toEqual({ general: 1, detail: 2, motion: 5, counting: 5 });
    const video = { frameCount: 60 * 30, fps: 30, width: 640, height: 480 }; // 60 s
    expect(planSeedSampling(video).frameIndices).toHaveLength(60);
    expect(planSeedSampling(video, { task: "detail" }).frameIndices).toHaveLength(120);
    expect(planSeedSampling(video, { task: "motion" }).frameIndices).toHaveLength(300);
    expect(planSeedSampling(video, { task: "counting" }).frameIndices).toHaveLength(300);
    expect(planSeedSampling(video, { fps: 0.5 }).frameIndices).toHaveLength(30);
    expect(() => planSeedSampling(video, { fps: 2, task: "detail" })).toThrow(/not both/);
    expect(() => planSeedSampling(video, { task: "fast" as never })).toThrow(/unknown task "fast"/);
  });

  it("takes at least 16 frames, never more than the clip has", () => {
    expect(seedFrameCount(150, 30, 1)).toBe(16); // 5 s at 1 fps = 5, raised to min_n_frames
    expect(seedFrameCount(10, 30, 1)).toBe(10); // a 10-frame clip gives all 10
    expect(seedFrameCount(1, 25, 1)).toBe(1);
    expect(seedFrameCount(301, 30, 2)).toBe(21); // ceil(301 / 30 · 2 = 20.07)
    expect(planSeedSampling({ frameCount: 1, fps: 25, width: 64, height: 64 }).frameIndices).toEqual([0]);
  });

  it("caps the frames at a frame limit before choosing the level", () => {
    const limited = planSeedSampling(videoOfFrames(200), { frameLimit: 100 });
    expect(limited.frameIndices).toHaveLength(100);
    expect(limited.frameLimited).toBe(true);
    expect(limited.levelTokens).toBe(640);
    expect(planSeedSampling(videoOfFrames(200), { frameLimit: 300 }).frameLimited).toBe(false);
  });

  it("writes [t second] with t = round(index / fps, 1), ties to even as Python", () => {
    expect(seedTimestampText(0, 30)).toBe("[0.0 second]");
    expect(seedTimestampText(45, 30)).toBe("[1.5 second]");
    expect(seedTimestampText(3000, 30)).toBe("[100.0 second]");
    expect(seedTimestampText(1, 4)).toBe("[0.2 second]"); // 0.25: a tie, to even
    expect(seedTimestampText(3, 4)).toBe("[0.8 second]"); // 0.75
    expect(seedTimestampText(5, 4)).toBe("[1.2 second]"); // 1.25
    expect(seedTimestampText(899, 29.97)).toBe("[30.0 second]");
    const plan = planSeedSampling({ frameCount: 90, fps: 30, width: 320, height: 240 });
    expect(plan.frames.map((f) => f.seconds)).toEqual(plan.frames.map((f) => Number((f.index / 30).toFixed(1))));
  });

  it("numpy linspace: both ends exact, round half to even", () => {
    expect(numpyLinspaceRound(0, 9, 4)).toEqual([0, 3, 6, 9]);
    expect(numpyLinspaceRound(0, 5, 3)).toEqual([0, 2, 5]); // 2.5 → 2
    expect(numpyLinspaceRound(0, 0, 1)).toEqual([0]);
  });

  it("builds the content parts infer.py's construct_messages sends: text then image per frame", () => {
    const plan = planSeedSampling({ frameCount: 48, fps: 24, width: 320, height: 240 });
    const urls = plan.frames.map((_, i) => `data:image/jpeg;base64,F${i}`);
    const parts = seedContentParts(plan, urls);
    expect(parts).toHaveLength(2 * plan.frames.length);
    expect(parts[0]).toEqual({ type: "text", text: "[0.0 second]" });
    expect(parts[1]).toEqual({ type: "image_url", image_url: { url: "data:image/jpeg;base64,F0", detail: "high" } });
    expect(parts[3]).toMatchObject({ type: "image_url", image_url: { url: urls[1] } });
    expect(() => seedContentParts(plan, urls.slice(1))).toThrow(VideolmError);
  });

  it("uses the reference's defaults", () => {
    expect(SEED_DEFAULTS.levels).toEqual([640, 512, 384, 256, 160, 128]);
    expect(SEED_DEFAULTS.maxVideoTokens).toBe(81920);
    expect(SEED_DEFAULTS.minPixels).toBe(4 * 28 * 28);
  });
});

describe("seed1.5 applied to a local family (sampling/policy.ts)", () => {
  it("keeps the policy's frames and pixel budget, and sizes frames by the family's factor", () => {
    const video = { frameCount: 200 * 30, fps: 30, width: 1920, height: 1080 };
    const { plan, policy } = seedFamilyPlan(video, seedOptionsOf({ policy: "seed1.5" }), qwenVlUtilsDefaults(16));
    expect(plan.frameIndices).toEqual(policy.frameIndices);
    expect(policy.levelTokens).toBe(384); // 200 frames: 200·512 = 102,400 > 81,920, 200·384 = 76,800
    expect(plan.maxPixels).toBe(384 * 28 * 28);
    // Qwen3-VL smart_resize, factor 32, within 301,056 px: beta = sqrt(1920·1080 / 301056) = 2.6245…;
    // floor(1080 / beta / 32) = 12 → 384, floor(1920 / beta / 32) = 22 → 704.
    expect([plan.resizedHeight, plan.resizedWidth]).toEqual([384, 704]);
    // Seed1.5-VL's own size, factor 28 (get_resized_hw_for_Navit): floor(411.5 / 28) = 14 → 392, floor(731.6 / 28) = 26 → 728.
    expect([policy.height, policy.width]).toEqual([392, 728]);
    expect(plan.timestamps[1]).toBeCloseTo(plan.frameIndices[1] / 30, 12);
  });

  it("passes the server's frame limit through, and checks the options it decides", () => {
    const video = { frameCount: 200 * 30, fps: 30, width: 640, height: 360 };
    const { policy } = seedFamilyPlan(video, seedOptionsOf({ policy: "seed1.5", frameLimit: 50 }), qwenVlUtilsDefaults(14));
    expect(policy.frameIndices).toHaveLength(50);
    expect(policy.frameLimited).toBe(true);
    expect(() => checkPolicyOptions({ policy: "seed1.5", nframes: 8 })).toThrow(/nframes cannot be combined with policy seed1\.5/);
    expect(() => checkPolicyOptions({ policy: "seed1.5", start: 3 })).toThrow(/start cannot be combined/);
    expect(() => checkPolicyOptions({ policy: "seed1.5", fps: 3 })).not.toThrow();
    expect(() => checkPolicyOptions({})).not.toThrow();
  });
});
