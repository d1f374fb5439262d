/**
 * Memory grows with the number of sampled frames, not with the video's length: a 10-minute clip and a 1-minute clip
 * (same frame size, same number of sampled frames) load with the same peak RSS. Each load runs in a fresh Node process
 * so its peak RSS (getrusage maxrss) is its own.
 */
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { H264, makeTempDir, makeVideo } from "./media-helpers.js";

const tmp = makeTempDir();
afterAll(() => tmp.cleanup());
const repoRoot = fileURLToPath(new URL("..", import.meta.url));

/** Loads `file` in a child Node process; returns its peak RSS in MiB and what it decoded. */
function loadInChild(file: string): { peakMiB: number; frames: number; lastIndex: number; bytes: number; ms: number } {
  const script = `
    import { loadVideo } from "./src/media/video.ts";
    import { qwenVlUtilsDefaults } from "./src/sampling/qwen-vl-utils.ts";
    const t0 = Date.now();
    const v = await loadVideo(${JSON.stringify(file)}, { defaults: qwenVlUtilsDefaults(14), nframes: 500, minPixels: 3136, maxPixels: 3136 });
    const bytes = v.frames.reduce((s, f) => s + f.data.length, 0);
    console.log(JSON.stringify({ peakMiB: process.resourceUsage().maxRSS / 1024, frames: v.frames.length,
      lastIndex: v.frameIndices.at(-1), bytes, ms: Date.now() - t0 }));
  `;
  const out = execFileSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { cwd: repoRoot, encoding: "utf8" });
  return JSON.parse(out.trim().split("\n").at(-1)!);
}

describe("memory stays flat with video length", () => {
  it("10-minute vs 1-minute clip, 500 sampled frames each", () => {
    const opts = { width: 96, height: 64, rate: "10", codec: [...H264, "-g", "250"], code: false };
    const short = makeVideo(`${tmp.dir}/1min.mp4`, { ...opts, frames: 600 });
    const long = makeVideo(`${tmp.dir}/10min.mp4`, { ...opts, frames: 6000 });
    const a = loadInChild(short);
    const b = loadInChild(long);
    console.log(`1 min: peak ${a.peakMiB.toFixed(1)} MiB in ${a.ms} ms; 10 min: peak ${b.peakMiB.toFixed(1)} MiB in ${b.ms} ms; kept ${b.bytes} bytes of frames`);
    expect([a.frames, b.frames]).toEqual([500, 500]);
    expect([a.lastIndex, b.lastIndex]).toEqual([599, 5999]);
    // 10× the frames decoded, same peak (within a few MiB of allocator noise).
    expect(Math.abs(b.peakMiB - a.peakMiB)).toBeLessThan(12);
  });
});
