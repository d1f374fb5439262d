/**
 * `videolm inspect`: the plan without running the model, and `videolm run` refusing a plan that cannot fit.
 * Expected frame indices / sizes are derived by hand from qwen-vl-utils' rules (see each comment).
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { locateFfmpeg } from "../src/media/ffmpeg.js";
import { materializeTinyCheckpoint, repoRoot } from "../src/testing/tiny-checkpoint.js";
import { runCliAsync } from "./cli-helpers.js";

const ROOT = repoRoot();
const work = fs.mkdtempSync(path.join(os.tmpdir(), "videolm-inspect-"));
const clip = path.join(work, "clip.mp4");
let model: string;

function videolm(args: string[]) {
  return runCliAsync(process.execPath, [path.join(ROOT, "node_modules/tsx/dist/cli.mjs"), path.join(ROOT, "src/cli/main.ts"), ...args], {
    env: { ...process.env, VIDEOLM_CACHE: path.join(work, "cache") },
    timeout: 120_000,
  });
}

beforeAll(async () => {
  model = await materializeTinyCheckpoint(path.join(ROOT, "test/fixtures/qwen2-vl/qwen2-vl-tiny"));
  // 5 s at 30 fps = 150 frames of 320×240.
  const r = spawnSync(locateFfmpeg().ffmpeg, ["-y", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-t", "5", "-pix_fmt", "yuv420p", clip]);
  expect(r.status).toBe(0);
});
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

describe("videolm inspect", () => {
  it("prints the plan as JSON, with prompt ids when a question is given", async () => {
    const r = await videolm(["inspect", "--model", model, "--video", clip, "--json", "What happens?"]);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.videos).toHaveLength(1);
    const v = out.videos[0];
    // smart_nframes: 150 / 30 · 2 = 10 frames; indices = round_half_even(linspace(0, 149, 10)).
    expect(v.frameIndices).toEqual([0, 17, 33, 50, 66, 83, 99, 116, 132, 149]);
    expect(v.timestamps[1]).toBeCloseTo(17 / 30, 3);
    // 320×240 = 76 800 px < VIDEO_MIN_PIXELS 100 352 → scaled up by sqrt(100352/76800), ceil to 28: 280×392.
    expect(v.size).toEqual([280, 392]);
    expect(v.grid).toEqual([5, 20, 28]);
    expect(v.tokens).toBe((5 * 20 * 28) / 4);
    expect(out.promptIds.filter((id: number) => id === 151656)).toHaveLength(700);
    expect(out.promptTokens).toBe(out.promptIds.length);
    expect(out.fits).toBe(true);
  });

  it("honours --fps and --max-pixels", async () => {
    const out = JSON.parse((await videolm(["inspect", "--model", model, clip, "--fps", "1", "--max-pixels", String(200 * 28 * 28), "--min-pixels", String(28 * 28), "--json"])).stdout);
    // 150 / 30 · 1 = 5 → floor to even 4 → clamped up to FPS_MIN_FRAMES 4; indices round(linspace(0, 149, 4)).
    expect(out.videos[0].frameIndices).toEqual([0, 50, 99, 149]);
    // 240×320 is within [784, 156 800]: round(240/28)=9 → 252, round(320/28)=11 → 308.
    expect(out.videos[0].size).toEqual([252, 308]);
  });

  it("takes --start / --end as seconds, mm:ss or hh:mm:ss", async () => {
    const plan = async (start: string, end: string) => JSON.parse((await videolm(["inspect", "--model", model, clip, "--start", start, "--end", end, "--json"])).stdout).videos[0];
    // frames ceil(1 · 30) = 30 … floor(3.5 · 30) = 105: 76 frames → 76 / 30 · 2 = 5.07 → 4; round(linspace(30, 105, 4)).
    const seconds = await plan("1", "3.5");
    expect(seconds.frameIndices).toEqual([30, 55, 80, 105]);
    expect((await plan("0:01", "00:00:03.5")).frameIndices).toEqual(seconds.frameIndices);
    expect((await plan("00:00:01.000", "0:03.5")).frameIndices).toEqual(seconds.frameIndices);
    const bad = await videolm(["inspect", "--model", model, clip, "--end", "1:75"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim()).toBe('videolm: --end expects a time: seconds (75.5), mm:ss (1:15.5) or hh:mm:ss (0:01:15.5); got "1:75"');
  });

  it("says when a plan does not fit the context, and run refuses it naming what to lower", async () => {
    const args = ["--model", model, clip, "--fps", "30", "--max-frames", "150", "What happens?"];
    const inspect = JSON.parse((await videolm(["inspect", ...args, "--json"])).stdout);
    expect(inspect.fits).toBe(false);
    expect(inspect.advice).toMatch(/lower --fps/);
    const run = await videolm(["run", ...args]);
    expect(run.code).toBe(1);
    // the error is the last line (decoding 150 frames may show progress first on a busy machine), and the only error
    const lines = run.stderr.trim().split("\n");
    expect(lines.at(-1)).toMatch(/^videolm: the prompt has \d+ tokens .* context is 4096 tokens: lower --max-new-tokens, or use fewer frames/);
    expect(lines.filter((l) => l.startsWith("videolm:"))).toHaveLength(1);
  });

  it("names the user's flags when sampling one frame or an empty pixel range", async () => {
    const cases: [string[], string][] = [
      [["--nframes", "1"], "videolm: video sampling: --nframes 1 is too few: a video needs at least 2 frames (Qwen-VL models see frames in pairs); use --nframes 2 or more, or give a single frame as an image"],
      [["--max-frames", "1"], "videolm: video sampling: --max-frames 1 is too few: a video needs at least 2 frames (Qwen-VL models see frames in pairs); use --max-frames 2 or more"],
      [["--min-pixels", "100000", "--max-pixels", "1000"], "videolm: --min-pixels 100000 is larger than --max-pixels 1000; lower --min-pixels or raise --max-pixels"],
      [["--max-pixels", "1000"], "videolm: --max-pixels 1000 is below the smallest frame size this model uses (--min-pixels defaults to 100352); raise --max-pixels, or lower --min-pixels too"],
    ];
    for (const [flags, message] of cases) {
      const r = await videolm(["inspect", "--model", model, clip, ...flags]);
      expect(r.code).toBe(1);
      expect(r.stderr.trim()).toBe(message);
    }
  });

  it("fails cleanly on a corrupt video", async () => {
    const bad = path.join(work, "bad.mp4");
    fs.writeFileSync(bad, "not a video");
    const r = await videolm(["inspect", "--model", model, bad]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/bad\.mp4/);
  });
});

describe("videolm inspect --route (InternVL3.5-Flash)", () => {
  it("runs the vision encoder only and reports per frame the router's decision and the tokens saved; run's --json agrees", async () => {
    const flash = await materializeTinyCheckpoint(path.join(ROOT, "test/fixtures/internvl_flash/internvl_flash-tiny"));
    const frames = path.join(work, "flash.mkv");
    const enc = spawnSync(locateFfmpeg().ffmpeg, ["-y", "-loglevel", "error", "-framerate", "2", "-i", path.join(ROOT, "test/fixtures/internvl_flash/media/video-a-%02d.png"), "-c:v", "ffv1", frames]);
    expect(enc.status).toBe(0);
    const args = ["--model", flash, "--video", frames, "--flash-relative", "0.3", "--flash-absolute", "0.02"];
    const planOnly = await videolm(["inspect", ...args, "--json", "What changes?"]);
    expect(planOnly.code).toBe(0);
    const plan = JSON.parse(planOnly.stdout);
    expect(plan.visualTokensDecidedByModel).toBe(true);
    expect(plan.route).toBeUndefined();
    const routed = JSON.parse((await videolm(["inspect", ...args, "--json", "--route", "What changes?"])).stdout);
    expect(routed.route.plannedPromptTokens).toBe(plan.promptTokens);
    const reduced = routed.route.units.filter((u: { reduced: boolean }) => u.reduced).length;
    expect(reduced).toBeGreaterThan(0);
    expect(routed.route.plannedPromptTokens - routed.route.promptTokens).toBe(192 * reduced);
    const text = await videolm(["inspect", ...args, "--route", "What changes?"]);
    expect(text.stdout).toMatch(/InternVL-Flash resolution router \(relative 0\.3, absolute 0\.02, quantile [\d.]+\)/);
    expect(text.stdout).toContain(`prompt: ${routed.route.plannedPromptTokens} → ${routed.route.promptTokens} tokens`);
    const run = JSON.parse((await videolm(["run", ...args, "--json", "-q", "--max-new-tokens", "2", "What changes?"])).stdout);
    expect(run.promptTokens).toBe(routed.route.promptTokens);
    expect(run.visualTokens.units).toEqual(routed.route.units);
  }, 240_000);
});

describe("videolm inspect / run --prune (EVS on Qwen2-VL)", () => {
  it("inspect says what a pruned video keeps, --route shows the tokens kept per frame pair, run's --json agrees", async () => {
    const args = ["--model", model, "--video", clip, "--nframes", "8", "--min-pixels", String(56 * 56), "--max-pixels", String(112 * 112)];
    const plain = JSON.parse((await videolm(["inspect", ...args, "--json", "--route", "What changes?"])).stdout);
    expect(plain.videos[0].prune).toBeUndefined();
    expect(plain.route).toBeUndefined(); // nothing to decide without --prune
    const planOnly = JSON.parse((await videolm(["inspect", ...args, "--prune", "0.5", "--json", "What changes?"])).stdout);
    const v = planOnly.videos[0];
    const [t] = v.grid;
    // vLLM compute_retained_tokens_count: max(tokens per frame pair, int(tokens · 0.5)).
    expect(v.prune).toEqual({ rate: 0.5, keptTokens: Math.max(v.tokens / t, Math.trunc(v.tokens * 0.5)) });
    expect(planOnly.promptTokens).toBe(plain.promptTokens); // planned with every token
    const routed = JSON.parse((await videolm(["inspect", ...args, "--prune", "0.5", "--json", "--route", "What changes?"])).stdout);
    expect(routed.route.method).toBe("EVS (vLLM)");
    expect(routed.route.units).toHaveLength(t);
    expect(routed.route.units[0].tokens).toBe(v.tokens / t); // the first frame pair whole
    expect(routed.route.plannedPromptTokens - routed.route.promptTokens).toBe(v.tokens - v.prune.keptTokens);
    const text = (await videolm(["inspect", ...args, "--prune", "0.5", "--route", "What changes?"])).stdout;
    expect(text).toContain(`EVS pruning at rate 0.5: keeps ${v.prune.keptTokens} of its ${v.tokens} tokens`);
    expect(text).toContain(`with EVS pruning: ${routed.route.promptTokens} tokens reach the language model`);
    expect(text).toMatch(/EVS \(vLLM\) \(rate 0\.5\), vision encoder/);
    expect(text).toContain(`prompt: ${routed.route.plannedPromptTokens} → ${routed.route.promptTokens} tokens`);
    const run = JSON.parse((await videolm(["run", ...args, "--prune", "0.5", "--json", "-q", "--max-new-tokens", "2", "What changes?"])).stdout);
    expect(run.promptTokens).toBe(routed.route.promptTokens);
    expect(run.visualTokens.units).toEqual(routed.route.units);
    const bad = await videolm(["run", ...args, "--prune", "1", "What changes?"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--prune must be a number in \[0, 1\)/);
  }, 240_000);
});
