/**
 * Seeking bench (issue 15, not a test): the media stage alone (probe → plan → decode → resize), "before" (one stream
 * pass from the start, `decodeStrategy: "stream"`, what videolm did before seeking) and "after" (`"auto"`) in one run,
 * on files generated once with FFmpeg into .cache/bench:
 *   - a 2-hour 160×96 30 fps H.264 file with B-frames and keyframes every 2–10 s (a camera's spacing), and its first
 *     10 minutes (for memory against length);
 *   - a 30 s 1080p60 clip (keyframe every 2 s); a rotated phone clip (720p, display matrix 90°);
 *   - a VFR clip (30 fps, then 15 fps, then 30 fps, on a 1/90000 time base).
 * Prints one table: plan time, decode times before/after and their ratio, whether the frames are byte-identical, peak
 * memory of a fresh process against file length, and VFR timestamp errors against ffprobe's presentation times.
 * The machine's load moves single figures by up to 2× (the 2-core reference machine is shared): compare within a run.
 *
 *   npx tsx bench/media-seek.ts            (FFMPEG_PATH / FFPROBE_PATH pick another FFmpeg)
 */
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { locateFfmpeg } from "../src/media/ffmpeg.js";
import { loadVideo, planVideo, type LoadVideoOptions } from "../src/media/video.js";
import type { DecodeReport } from "../src/media/decode-frames.js";
import { qwenVlUtilsDefaults } from "../src/sampling/qwen-vl-utils.js";
import { repoRoot } from "../src/testing/tiny-checkpoint.js";

const root = repoRoot();
const dir = path.join(root, ".cache", "bench");
fs.mkdirSync(dir, { recursive: true });
const { ffmpeg, ffprobe } = locateFfmpeg();
const defaults = qwenVlUtilsDefaults(14);

function generate(name: string, args: string[]): string {
  const file = path.join(dir, name);
  if (fs.existsSync(file)) return file;
  console.error(`generating ${file}…`);
  const tmp = `${file}.tmp${path.extname(file)}`;
  const r = spawnSync(ffmpeg, ["-nostdin", "-v", "error", "-y", ...args, tmp], { stdio: "inherit" });
  if (r.status !== 0) throw new Error(`ffmpeg failed for ${name}`);
  fs.renameSync(tmp, file);
  return file;
}

// keyframes every 2–10 s (forced at irregular times), B-frames (veryfast: 3, pyramid)
const CAMERA_GOP = ["-x264-params", "keyint=600:min-keyint=1:scenecut=0", "-force_key_frames", "expr:if(isnan(prev_forced_t),1,gte(t,prev_forced_t+2+mod(n_forced*37,9)))"];
const long = generate("long-2h.mp4", ["-f", "lavfi", "-i", "testsrc2=size=160x96:rate=30", "-t", "7200", "-c:v", "libx264", "-preset", "veryfast", "-crf", "30", ...CAMERA_GOP, "-pix_fmt", "yuv420p"]);
// encoded on its own (a stream copy of the first 10 minutes would end its edit list before its last frames)
const tenMin = generate("long-10min-enc.mp4", ["-f", "lavfi", "-i", "testsrc2=size=160x96:rate=30", "-t", "600", "-c:v", "libx264", "-preset", "veryfast", "-crf", "30", ...CAMERA_GOP, "-pix_fmt", "yuv420p"]);
const hd60 = generate("clip-1080p60.mp4", ["-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=60", "-t", "30", "-c:v", "libx264", "-preset", "veryfast", "-crf", "28", "-g", "120", "-pix_fmt", "yuv420p"]);
const phoneBase = generate("phone-base.mp4", ["-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30", "-t", "20", "-c:v", "libx264", "-preset", "veryfast", "-crf", "28", "-g", "60", "-pix_fmt", "yuv420p"]);
const phone = generate("phone-rot90.mp4", ["-i", phoneBase, "-c", "copy", "-metadata:s:v:0", "rotate=90"]);
// 10 s at 30 fps, 10 s at 15 fps, 10 s at 30 fps: 750 frames over 30 s (average 25 fps)
const vfrPts = "if(lt(N\\,300)\\,N/30\\,if(lt(N\\,450)\\,10+(N-300)/15\\,20+(N-450)/30))";
const vfr = generate("vfr.mp4", ["-f", "lavfi", "-i", `testsrc2=size=320x240:rate=30,settb=1/90000,setpts='${vfrPts}/TB'`, "-frames:v", "750", "-c:v", "libx264", "-preset", "veryfast", "-g", "60", "-pix_fmt", "yuv420p", "-vsync", "0"]);

interface Timed {
  ms: number;
  md5: string;
  report: DecodeReport;
  timestamps: number[];
}

async function load(file: string, options: Partial<LoadVideoOptions>, strategy: "stream" | "auto"): Promise<Timed> {
  const report: DecodeReport = { runs: 0, seekingRuns: 0, fallbackFrames: 0 };
  const t0 = performance.now();
  const v = await loadVideo(file, { defaults, ...options, decodeStrategy: strategy, decodeReport: report });
  const ms = performance.now() - t0;
  const h = createHash("md5");
  for (const f of v.frames) h.update(f.data);
  return { ms, md5: h.digest("hex"), report, timestamps: v.timestamps };
}

const rows: string[][] = [["case", "before (stream)", "after (auto)", "speed-up", "identical", "after: ffmpeg runs (seeking) / processes"]];
const s = (ms: number) => (ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`);

async function compare(name: string, file: string, options: Partial<LoadVideoOptions>): Promise<{ before: Timed; after: Timed }> {
  const before = await load(file, options, "stream");
  const after = await load(file, options, "auto");
  rows.push([name, s(before.ms), s(after.ms), `${(before.ms / after.ms).toFixed(1)}×`, before.md5 === after.md5 ? "yes" : "NO", `${after.report.runs} (${after.report.seekingRuns}) / ${after.report.processes ?? "?"}`]);
  console.error(`${name}: before ${s(before.ms)}, after ${s(after.ms)}`);
  return { before, after };
}

console.error(`ffmpeg ${execFileSync(ffmpeg, ["-version"]).toString().split("\n")[0]}`);

// 1. plan (probe only, no pixels) for the 2-hour file
const planMs: Record<string, number> = {};
for (const frameTimes of ["reference", "presentation"] as const) {
  let best = Infinity;
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    await planVideo(long, { defaults, frameTimes });
    best = Math.min(best, performance.now() - t0);
  }
  planMs[frameTimes] = best;
}

// 2–4. decoding
const sparse = await compare("2 h file: 64 frames spread over it", long, { nframes: 64 });
// the same without the resize (a fixed cost of both, ~1 s for these 64 frames): the decoding alone
const sparseDecode = await compare("2 h file: 64 frames, decoding only (no resize)", long, { nframes: 64, resize: (src) => src });
const atStart = await compare("2 h file: 60 s window at the start (2 fps)", long, { videoStart: 0, videoEnd: 60 });
const atEnd = await compare("2 h file: 60 s window at the end (2 fps)", long, { videoStart: 7140, videoEnd: 7200 });
await compare("1080p60 30 s: 2 fps (60 frames)", hd60, {});
await compare("1080p60 30 s: 16 frames", hd60, { nframes: 16 });
await compare("rotated phone clip 720p: 2 fps", phone, {});
await compare("VFR clip: 2 fps", vfr, {});

// 5. peak memory of a fresh process, 64 frames, 10 min vs 2 h
function peakInChild(file: string, strategy: string): number {
  const script = `
    import { loadVideo } from "./src/media/video.ts";
    import { qwenVlUtilsDefaults } from "./src/sampling/qwen-vl-utils.ts";
    await loadVideo(${JSON.stringify(file)}, { defaults: qwenVlUtilsDefaults(14), nframes: 64, decodeStrategy: ${JSON.stringify(strategy)} });
    console.log(process.resourceUsage().maxRSS / 1024);
  `;
  const out = execFileSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { cwd: root, encoding: "utf8" });
  return Number(out.trim().split("\n").at(-1));
}
const mem = { short: peakInChild(tenMin, "auto"), long: peakInChild(long, "auto") };

// 6. VFR times against ffprobe's presentation times
const probeTimes = execFileSync(ffprobe, ["-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time", "-of", "csv=p=0", vfr])
  .toString().trim().split("\n").map(Number).sort((a, b) => a - b);
const vfrPlan = await planVideo(vfr, { defaults, fps: 2 });
const vfrRef = await planVideo(vfr, { defaults, fps: 2, frameTimes: "reference" });
function worstInFrames(times: number[]): number {
  let worst = 0;
  vfrPlan.plan.frameIndices.forEach((i, k) => {
    const truth = probeTimes[i] - probeTimes[0];
    const frame = (probeTimes[Math.min(i + 1, probeTimes.length - 1)] - probeTimes[Math.max(i - 1, 0)]) / 2; // local frame duration
    worst = Math.max(worst, Math.abs(times[k] - truth) / frame);
  });
  return worst;
}
const worstSeconds = (times: number[]) => Math.max(...vfrPlan.plan.frameIndices.map((i, k) => Math.abs(times[k] - (probeTimes[i] - probeTimes[0]))));

// ---- the table ----
const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
const line = (r: string[]) => `| ${r.map((x, c) => x.padEnd(widths[c])).join(" | ")} |`;
console.log(`FFmpeg: ${ffmpeg}\n`);
console.log(line(rows[0]));
console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
for (const r of rows.slice(1)) console.log(line(r));
console.log();
console.log(`plan, 2 h file (probe, no pixels; best of 3): ${s(planMs.reference)} with reference times, ${s(planMs.presentation)} with presentation times (mp4 sample table read)`);
console.log(`64 frames over 2 h: ${(sparse.before.ms / sparse.after.ms).toFixed(1)}× faster with the resize, ${(sparseDecode.before.ms / sparseDecode.after.ms).toFixed(1)}× decoding only (target ≥ 10×)`);
console.log(`60 s window at the end vs at the start: after ${(atEnd.after.ms / atStart.after.ms).toFixed(2)}× (target ≤ 1.5×); before ${(atEnd.before.ms / atStart.before.ms).toFixed(1)}×`);
console.log(`peak memory, 64 frames, fresh process: 10 min ${mem.short.toFixed(1)} MiB, 2 h ${mem.long.toFixed(1)} MiB (ratio ${(mem.long / mem.short).toFixed(3)})`);
console.log(
  `VFR clip, ${vfrPlan.plan.frameIndices.length} frames at 2 fps, vs ffprobe's presentation times: presentation ${worstInFrames(vfrPlan.plan.timestamps).toFixed(3)} frames ` +
    `(${worstSeconds(vfrPlan.plan.timestamps).toFixed(4)} s) worst; reference rule ${worstInFrames(vfrRef.plan.timestamps).toFixed(1)} frames (${worstSeconds(vfrRef.plan.timestamps).toFixed(2)} s)`,
);
