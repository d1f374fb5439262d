/**
 * Test videos generated at test time with ffmpeg's lavfi sources.
 *
 * Every frame carries its own frame number as a binary code in the top 8 pixel rows: cell k (8 px wide, from the left)
 * is white when bit k of the frame number is set, black otherwise. `readFrameCode` reads it back, so a test can tell
 * exactly which source frame a decoded frame is, even through lossy codecs.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { locateFfmpeg } from "../src/media/ffmpeg.js";
import type { RgbImage } from "../src/processing/rgb-image.js";

export const CODE_CELL = 8;

/** geq expression drawing the frame-number code over the top CODE_CELL rows; `plane` is r, g or b. */
function codeExpr(plane: "r" | "g" | "b"): string {
  return `if(lt(Y\\,${CODE_CELL})\\,255*mod(floor(N/pow(2\\,floor(X/${CODE_CELL})))\\,2)\\,${plane}(X\\,Y))`;
}

/** Filter chain: testsrc2 of the given size/rate with the frame-number code drawn on top (output gbrp). */
export function codedSource(width: number, height: number, rate: string): string {
  return (
    `testsrc2=size=${width}x${height}:rate=${rate},format=gbrp,` +
    `geq=r=${codeExpr("r")}:g=${codeExpr("g")}:b=${codeExpr("b")}`
  );
}

export interface MakeVideoOptions {
  width: number;
  height: number;
  /** frame rate, e.g. "30" or "30000/1001" */
  rate: string;
  frames: number;
  /** output codec arguments, e.g. ["-c:v", "libx264", "-pix_fmt", "yuv420p"] */
  codec: string[];
  /** extra filters after the coded source (e.g. a setpts for VFR) */
  extraFilter?: string;
  /** extra output arguments before the file name */
  extraArgs?: string[];
  /** draw the frame-number code (default true) */
  code?: boolean;
}

export function runFfmpeg(args: string[]): void {
  execFileSync(locateFfmpeg().ffmpeg, ["-nostdin", "-hide_banner", "-loglevel", "error", "-y", ...args], { stdio: ["ignore", "ignore", "pipe"] });
}

export function makeVideo(file: string, o: MakeVideoOptions): string {
  const src = o.code === false ? `testsrc2=size=${o.width}x${o.height}:rate=${o.rate}` : codedSource(o.width, o.height, o.rate);
  const filter = o.extraFilter ? `${src},${o.extraFilter}` : src;
  runFfmpeg(["-f", "lavfi", "-i", filter, "-frames:v", String(o.frames), ...o.codec, ...(o.extraArgs ?? []), file]);
  return file;
}

export const H264 = ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "10", "-pix_fmt", "yuv420p"];
export const FFV1_RGB = ["-c:v", "ffv1", "-pix_fmt", "bgr0"];
export const VP9 = ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-crf", "10", "-b:v", "0", "-pix_fmt", "yuv420p"];

/** Reads the frame-number code of an upright frame (see file comment). */
export function readFrameCode(frame: RgbImage, bits?: number): number {
  const n = bits ?? Math.floor(frame.width / CODE_CELL);
  let value = 0;
  const y = CODE_CELL >> 1;
  for (let k = 0; k < n; k++) {
    const x = k * CODE_CELL + (CODE_CELL >> 1);
    const i = (y * frame.width + x) * 3;
    const lum = (frame.data[i] + frame.data[i + 1] + frame.data[i + 2]) / 3;
    if (lum > 128) value += 2 ** k;
  }
  return value;
}

/** Rotates an RGB image by 90° counter-clockwise `quarterTurns` times (for checking rotation handling). */
export function rotateCcw(src: RgbImage, quarterTurns: number): RgbImage {
  let img = src;
  for (let t = 0; t < ((quarterTurns % 4) + 4) % 4; t++) {
    const { width: w, height: h, data } = img;
    const out = new Uint8Array(data.length);
    // CCW: output (x', y') = (y, w - 1 - x); output width = h, height = w
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const o = ((w - 1 - x) * h + y) * 3;
        const i = (y * w + x) * 3;
        out[o] = data[i];
        out[o + 1] = data[i + 1];
        out[o + 2] = data[i + 2];
      }
    }
    img = { width: h, height: w, data: out };
  }
  return img;
}

export function makeTempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), "videolm-test-"));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
