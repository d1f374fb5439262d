/**
 * Long-video bench (not a test): `videolm run` with the default model on a 1-minute and a 1-hour video (same frame
 * size and rate, generated once with FFmpeg into .cache/bench), each in its own process under /usr/bin/time, to show
 * that peak memory does not grow with the video's length and that long work reports progress.
 *
 *   npm run build && npx tsx bench/long-video.ts [--minutes 60] [--question "how many shapes are there?"]
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { locateFfmpeg } from "../src/media/ffmpeg.js";
import { repoRoot } from "../src/testing/tiny-checkpoint.js";

const { values } = parseArgs({ options: { minutes: { type: "string", default: "60" }, question: { type: "string", default: "how many shapes are there?" } } });
const root = repoRoot();
const dir = path.join(root, ".cache", "bench");
fs.mkdirSync(dir, { recursive: true });

function makeVideo(minutes: number): string {
  const file = path.join(dir, `testsrc-${minutes}min.mp4`);
  if (fs.existsSync(file)) return file;
  console.error(`generating a ${minutes}-minute 320×240 30 fps video (${file})…`);
  const { ffmpeg } = locateFfmpeg();
  const r = spawnSync(ffmpeg, ["-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-t", String(minutes * 60), "-c:v", "libx264", "-preset", "ultrafast", "-g", "300", "-pix_fmt", "yuv420p", `${file}.tmp.mp4`], { stdio: "inherit" });
  if (r.status !== 0) throw new Error("ffmpeg failed");
  fs.renameSync(`${file}.tmp.mp4`, file);
  return file;
}

function run(video: string) {
  const t0 = Date.now();
  const r = spawnSync("/usr/bin/time", ["-f", "peak-kb %M", process.execPath, path.join(root, "dist/cli/main.js"), "run", "--video", video, values.question!, "--json"], { encoding: "utf8"});
  if (r.status !== 0) throw new Error(r.stderr);
  const peakKb = Number(/peak-kb (\d+)/.exec(r.stderr)![1]);
  const json = JSON.parse(r.stdout) as { text: string; promptTokens: number };
  const progressLines = r.stderr.split("\n").filter((l) => /^Decoding /.test(l));
  return { wallS: (Date.now() - t0) / 1000, peakMiB: peakKb / 1024, answer: json.text, promptTokens: json.promptTokens, progressLines };
}

const short = run(makeVideo(1));
const long = run(makeVideo(Number(values.minutes)));
for (const [name, r] of [["1 min", short], [`${values.minutes} min`, long]] as const) {
  const answer = r.answer.length > 40 ? `${r.answer.slice(0, 40)}…` : r.answer;
  console.log(`${name.padEnd(7)} peak ${r.peakMiB.toFixed(1)} MiB, ${r.promptTokens} prompt tokens, wall ${r.wallS.toFixed(1)} s, answer "${answer}", progress lines on stderr: ${r.progressLines.length}`);
}
console.log(`peak memory ratio (${values.minutes} min / 1 min): ${(long.peakMiB / short.peakMiB).toFixed(3)}`);
if (long.progressLines.length) console.log(`progress, e.g.: ${long.progressLines.slice(0, 3).join(" | ")}`);
