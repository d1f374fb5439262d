/**
 * Rasterises a synthetic scene frame by frame (RGB24) and encodes it to an H.264 mp4 with FFmpeg, piping raw
 * frames to ffmpeg's stdin.
 */
import { spawn } from "node:child_process";
import { VideolmError } from "../errors.js";
import { locateFfmpeg } from "../media/ffmpeg.js";
import { COLORS, type Scene, type SynthObject } from "./scene.js";

function fillBackground(scene: Scene, out: Buffer): void {
  const { width: W, height: H } = scene;
  const { from, to, vertical } = scene.background;
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const f = vertical ? y / (H - 1) : x / (W - 1);
      const i = (y * W + x) * 3;
      for (let c = 0; c < 3; c++) out[i + c] = Math.round(from[c] + (to[c] - from[c]) * f);
    }
  }
}

function inside(o: SynthObject, dx: number, dy: number, r: number): boolean {
  switch (o.shape) {
    case "square":
      return Math.abs(dx) <= r && Math.abs(dy) <= r;
    case "circle":
      return dx * dx + dy * dy <= r * r;
    case "triangle":
      // apex up: vertices (0, -r), (-r, r), (r, r)
      return dy <= r && dy >= -r && Math.abs(dx) <= (dy + r) / 2;
  }
}

/** One RGB24 frame at time t (seconds). */
export function renderFrame(scene: Scene, t: number, out: Buffer = Buffer.alloc(scene.width * scene.height * 3)): Buffer {
  const { width: W, height: H } = scene;
  fillBackground(scene, out);
  const unit = Math.min(W, H);
  for (const o of scene.objects) {
    if (t < o.appear || t >= o.disappear) continue;
    const color = COLORS[o.colorChange && t >= o.colorChange.at ? o.colorChange.to : o.color];
    const cx = (o.x0 + o.vx * t) * W;
    const cy = (o.y0 + o.vy * t) * H;
    const r = o.radius * unit;
    const x0 = Math.max(0, Math.floor(cx - r));
    const x1 = Math.min(W - 1, Math.ceil(cx + r));
    const y0 = Math.max(0, Math.floor(cy - r));
    const y1 = Math.min(H - 1, Math.ceil(cy + r));
    for (let y = y0; y <= y1; y++) {
      for (let x = x0; x <= x1; x++) {
        if (!inside(o, x + 0.5 - cx, y + 0.5 - cy, r)) continue;
        const i = (y * W + x) * 3;
        out[i] = color[0];
        out[i + 1] = color[1];
        out[i + 2] = color[2];
      }
    }
  }
  return out;
}

/** Number of frames of the clip: duration · fps (frame i shows time i / fps). */
export function frameCount(scene: Scene): number {
  return Math.round(scene.duration * scene.fps);
}

/** Encodes the scene to an H.264 (yuv420p) mp4 at `file`. */
export async function encodeScene(scene: Scene, file: string, opts: { crf?: number } = {}): Promise<void> {
  const { ffmpeg } = locateFfmpeg();
  const args = [
    "-hide_banner", "-loglevel", "error", "-y",
    "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", `${scene.width}x${scene.height}`, "-r", String(scene.fps), "-i", "-",
    "-c:v", "libx264", "-preset", "veryfast", "-crf", String(opts.crf ?? 20), "-pix_fmt", "yuv420p", "-threads", "1",
    "-movflags", "+faststart", file,
  ];
  const child = spawn(ffmpeg, args, { stdio: ["pipe", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<void>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve() : reject(new VideolmError(`ffmpeg could not encode ${file} (exit ${code}): ${stderr.trim().slice(0, 300)}`))));
  });
  const frame = Buffer.alloc(scene.width * scene.height * 3);
  const n = frameCount(scene);
  for (let i = 0; i < n; i++) {
    renderFrame(scene, i / scene.fps, frame);
    // copy: the stream may hold on to the buffer until it is flushed
    if (!child.stdin.write(Buffer.from(frame))) await new Promise((r) => child.stdin.once("drain", r));
  }
  child.stdin.end();
  await done;
}
