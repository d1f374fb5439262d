/**
 * `videolm inspect --policy seed1.5` on a tiny Qwen2-VL checkpoint: the policy's frames and level drive the family's
 * plan (frames as chosen, size = the family's smart_resize within the level's pixel budget), inspect shows the
 * choice, and options the policy decides itself are refused naming the flags. Expected values are worked out from
 * the rules in src/sampling/seed-1-5.ts (infer.py's preprocess_video), see each comment.
 */
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Flags } from "../src/cli/args.js";
import { mediaFlags } from "../src/cli/commands/run.js";
import { locateFfmpeg } from "../src/media/ffmpeg.js";
import { CLI_SPELLING, messageFor } from "../src/option-error.js";
import { materializeTinyCheckpoint, repoRoot } from "../src/testing/tiny-checkpoint.js";

const ROOT = repoRoot();
const work = fs.mkdtempSync(path.join(os.tmpdir(), "videolm-inspect-seed-"));
const clip = path.join(work, "clip.mp4");
let model: string;

/** The CLI in a child process, awaited (not spawnSync: a blocked worker misses vitest's heartbeats on a busy machine). */
function videolm(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [path.join(ROOT, "node_modules/tsx/dist/cli.mjs"), path.join(ROOT, "src/cli/main.ts"), ...args], {
    env: { ...process.env, VIDEOLM_CACHE: path.join(work, "cache") },
    timeout: 240_000,
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

beforeAll(async () => {
  model = await materializeTinyCheckpoint(path.join(ROOT, "test/fixtures/qwen2-vl/qwen2-vl-tiny"));
  // 20 s at 10 fps = 200 frames of 640×360.
  const r = spawnSync(locateFfmpeg().ffmpeg, ["-y", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=10", "-t", "20", "-pix_fmt", "yuv420p", clip]);
  expect(r.status).toBe(0);
});
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

describe("videolm inspect --policy seed1.5", async () => {
  it("plans the policy's frames at its level and shows the choice (JSON)", async () => {
    const r = await videolm(["inspect", "--model", model, "--video", clip, "--policy", "seed1.5", "--json"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const v = JSON.parse(r.stdout).videos[0];
    // 200 frames / 10 fps · 1 fps = 20 frames (≥ 16); round(linspace(0, 199, 20)): step 199/19 = 10.47…
    const expected = Array.from({ length: 20 }, (_, i) => Math.round((i * 199) / 19));
    expect(v.frameIndices).toEqual(expected);
    // 20 · 640 = 12,800 ≤ 81,920: level 640; the family's smart_resize(360, 640, factor 28, max 640·784): 364×644
    // (round(360/28)=13 → 364, round(640/28)=23 → 644; 234,416 ≤ 501,760).
    expect(v.policy).toMatchObject({ name: "seed1.5", task: "general", samplingFps: 1, wantedFrames: 20, frames: 20, levelTokens: 640, budgetTokens: 12800, maxVideoTokens: 81920, subsampled: false });
    expect(v.size).toEqual([364, 644]);
    // Qwen2-VL pairs frames: 10 temporal patches of (364/14)·(644/14) = 26·46 patches, /4 merged.
    expect(v.grid).toEqual([10, 26, 46]);
    expect(v.tokens).toBe((10 * 26 * 46) / 4);
    // Seed1.5-VL's own size (get_resized_hw_for_Navit, the same rounding here): 364×644 = 13·23 tokens per frame.
    expect(v.policy.seedSize).toEqual([364, 644]);
    expect(v.policy.seedTokens).toBe(20 * 13 * 23);
    expect(v.policy.texts.slice(0, 3)).toEqual(["[0.0 second]", "[1.0 second]", "[2.1 second]"]); // 0, 10, 21 / 10 fps
  }, 300_000);

  it("takes --policy-task and --fps as the policy's frame rate, and prints the level", async () => {
    const detail = JSON.parse((await videolm(["inspect", "--model", model, clip, "--policy", "seed1.5", "--policy-task", "motion", "--json"])).stdout).videos[0];
    // 20 s at 5 fps = 100 frames; 100 · 640 = 64,000 ≤ 81,920: still level 640.
    expect(detail.frameIndices).toHaveLength(100);
    expect(detail.policy.levelTokens).toBe(640);
    const fps = JSON.parse((await videolm(["inspect", "--model", model, clip, "--policy", "seed1.5", "--fps", "7", "--json"])).stdout).videos[0];
    // 140 frames: 140 · 640 = 89,600 > 81,920, 140 · 512 = 71,680: level 512 → smart_resize within 512·784 = 401,408: 364×644 still.
    expect(fps.frameIndices).toHaveLength(140);
    expect(fps.policy.levelTokens).toBe(512);
    expect(fps.policy.task).toBeUndefined();
    const text = await videolm(["inspect", "--model", model, clip, "--policy", "seed1.5", "--fps", "7"]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/policy seed1\.5: 140 frames at 7 fps; level 512 tokens per frame \(71680 of 81920\)/);
    expect(text.stdout).toMatch(/policy frame texts: \[0\.0 second\] \[0\.1 second\]/);
  }, 300_000);

  it("refuses options the policy decides, naming the flags", async () => {
    const r = await videolm(["inspect", "--model", model, clip, "--policy", "seed1.5", "--max-frames", "8"]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe("videolm: --max-frames cannot be combined with --policy seed1.5: the policy chooses the frames and their size (use --fps or --policy-task to change its frame rate)");
    // The other refusals, in-process: the flags as run / inspect read them, the message as the CLI prints it.
    const refusal = (flags: Flags) => {
      try {
        mediaFlags(flags);
      } catch (e) {
        return messageFor(e as Error, CLI_SPELLING);
      }
      return "accepted";
    };
    expect(refusal({ policy: "seed1.5", "policy-task": "detail", fps: "2" })).toMatch(/give --policy-task \(which sets the frame rate\) or --fps, not both/);
    expect(refusal({ policy: "seed2" })).toMatch(/--policy must be one of seed1\.5, got "seed2"/);
    expect(refusal({ "policy-task": "detail" })).toMatch(/--policy-task applies to a sampling policy: give --policy seed1\.5 too/);
    expect(refusal({ policy: "seed1.5", "policy-task": "fast" })).toMatch(/--policy-task must be one of general, detail, motion, counting, got "fast"/);
    expect(refusal({ policy: "seed1.5", start: "1:00" })).toMatch(/--start cannot be combined with --policy seed1\.5/);
    expect(refusal({ policy: "seed1.5", "policy-task": "counting" })).toBe("accepted");
  }, 300_000);
});
