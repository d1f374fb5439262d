/**
 * The media campaign: small valid videos and images of every container videolm reads, damaged at the byte level
 * (flips, truncation, splices), lying about their size in their headers (PNG IHDR, JPEG SOF, MP4 sample entry),
 * or turned into playlists and reference lists (HLS, ffconcat, concat:) that name a "secret" video outside every
 * allowed folder. They reach the server as uploads, data: URLs and file:// URLs; the harness judges every answer and
 * checks afterwards that not one byte of the secret was read (its access time, set behind its modification time so
 * that even a relatime mount records the next read).
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { crc32 } from "node:zlib";
import sharp from "sharp";
import { locateFfmpeg } from "../../media/ffmpeg.js";
import type { SeededRng } from "../../synth/rng.js";
import type { CampaignResult } from "./api.js";
import { judge, request } from "./http-check.js";

export interface MediaSeed {
  name: string;
  kind: "video" | "image";
  data: Buffer;
}

/** Writes the seed files into `dir` (ffmpeg's test pattern; a fraction of a second each to make). */
export async function makeMediaSeeds(dir: string): Promise<MediaSeed[]> {
  const { ffmpeg } = locateFfmpeg();
  const make = (name: string, args: string[]) => {
    const file = path.join(dir, name);
    execFileSync(ffmpeg, ["-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=8", "-t", "1.5", ...args, file]);
    return { name, kind: "video" as const, data: fs.readFileSync(file) };
  };
  const seeds: MediaSeed[] = [
    make("clip.mp4", ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]),
    make("clip.mkv", ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]),
    make("clip.ts", ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-f", "mpegts"]),
    make("clip.avi", ["-c:v", "mjpeg", "-pix_fmt", "yuvj420p"]),
    make("clip.flv", ["-c:v", "flv"]),
    make("clip.mov", ["-c:v", "mpeg4"]),
    make("clip.gif", ["-c:v", "gif"]),
  ];
  const raw = Buffer.alloc(40 * 30 * 3);
  for (let i = 0; i < raw.length; i++) raw[i] = (i * 7) % 251;
  const base = sharp(raw, { raw: { width: 40, height: 30, channels: 3 } });
  seeds.push({ name: "image.png", kind: "image", data: await base.clone().png().toBuffer() });
  seeds.push({ name: "image.jpg", kind: "image", data: await base.clone().jpeg().toBuffer() });
  seeds.push({ name: "image.webp", kind: "image", data: await base.clone().webp().toBuffer() });
  return seeds;
}

/** A distinctive video outside every allowed folder, its access time set behind its modification time. */
export function makeSecret(dir: string): { file: string; wasRead: () => boolean } {
  const { ffmpeg } = locateFfmpeg();
  const file = path.join(dir, "secret.mp4");
  execFileSync(ffmpeg, ["-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "color=c=magenta:size=64x48:rate=8", "-t", "1", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", file]);
  const now = Date.now() / 1000;
  fs.utimesSync(file, now - 86_400, now);
  const atime = fs.statSync(file).atimeMs;
  return { file, wasRead: () => fs.statSync(file).atimeMs !== atime };
}

function setPngSize(png: Buffer, w: number, h: number): Buffer {
  const out = Buffer.from(png);
  // IHDR: length(4) "IHDR"(4) width(4) height(4) ... crc over type+data.
  const at = out.indexOf("IHDR");
  if (at < 0) return out;
  out.writeUInt32BE(w, at + 4);
  out.writeUInt32BE(h, at + 8);
  out.writeUInt32BE(crc32(out.subarray(at, at + 17)) >>> 0, at + 17);
  return out;
}

function setJpegSize(jpg: Buffer, w: number, h: number): Buffer {
  const out = Buffer.from(jpg);
  for (let i = 2; i < out.length - 9; i++) {
    if (out[i] === 0xff && (out[i + 1] === 0xc0 || out[i + 1] === 0xc2)) {
      out.writeUInt16BE(h, i + 5);
      out.writeUInt16BE(w, i + 7);
      break;
    }
  }
  return out;
}

/** The width/height of an MP4 `avc1`/`mp4v` sample entry (and tkhd's 16.16 size) patched to w × h. */
function setMp4Size(mp4: Buffer, w: number, h: number): Buffer {
  const out = Buffer.from(mp4);
  for (const fourcc of ["avc1", "mp4v"]) {
    const at = out.indexOf(fourcc);
    if (at > 0 && at + 32 <= out.length) {
      out.writeUInt16BE(w & 0xffff, at + 28);
      out.writeUInt16BE(h & 0xffff, at + 30);
    }
  }
  const tkhd = out.indexOf("tkhd");
  if (tkhd > 0) {
    const version = out[tkhd + 4];
    const end = tkhd + 4 + (version === 1 ? 96 : 84);
    if (end <= out.length) {
      out.writeUInt32BE((w & 0xffff) * 65536, end - 8);
      out.writeUInt32BE((h & 0xffff) * 65536, end - 4);
    }
  }
  return out;
}

/** One mutation of a seed; `secret` is the path playlists point at. */
export function mutateMedia(seeds: MediaSeed[], rng: SeededRng, secret: string): { data: Buffer; kind: "video" | "image"; what: string } {
  const seed = rng.pick(seeds);
  const d = seed.data;
  const op = rng.int(0, 11);
  switch (op) {
    case 0: {
      const out = Buffer.from(d);
      const n = rng.int(1, 64);
      for (let i = 0; i < n; i++) out[rng.int(0, out.length - 1)] = rng.int(0, 255);
      return { data: out, kind: seed.kind, what: `${seed.name}: ${n} bytes flipped` };
    }
    case 1: {
      const n = rng.int(1, d.length - 1);
      return { data: d.subarray(0, n), kind: seed.kind, what: `${seed.name}: truncated to ${n} bytes` };
    }
    case 2: {
      const out = Buffer.from(d);
      const at = rng.int(0, out.length - 1);
      out.fill(0, at, Math.min(out.length, at + rng.int(1, 4096)));
      return { data: out, kind: seed.kind, what: `${seed.name}: zeroed range at ${at}` };
    }
    case 3: {
      const other = rng.pick(seeds);
      const a = rng.int(0, d.length);
      const b = rng.int(0, other.data.length);
      return { data: Buffer.concat([d.subarray(0, a), other.data.subarray(b)]), kind: seed.kind, what: `${seed.name} spliced with ${other.name}` };
    }
    case 4: {
      const ts = seeds.find((s) => s.name === "clip.ts")!.data;
      const playlist = `#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXTINF:1.0,\n${rng.pick([secret, `file://${secret}`, `file:${secret}`, `concat:${secret}|${secret}`, `subfile,,start,0,end,0,,:${secret}`])}\n#EXT-X-ENDLIST\n`;
      // Playlist first (HLS probes the start) or TS first with the playlist in the padding (mpegts probes packets).
      return rng.next() < 0.5
        ? { data: Buffer.concat([Buffer.from(playlist), ts]), kind: "video", what: "HLS playlist + MPEG-TS polyglot naming the secret" }
        : { data: Buffer.concat([ts, Buffer.from(playlist)]), kind: "video", what: "MPEG-TS + HLS playlist naming the secret" };
    }
    case 5:
      return { data: Buffer.from(`ffconcat version 1.0\nfile '${secret}'\nfile '${secret}'\n`), kind: "video", what: "ffconcat list naming the secret" };
    case 6:
      return { data: Buffer.from(`#EXTM3U\n#EXTINF:1,\n${secret}\n`), kind: "video", what: "plain m3u8 naming the secret" };
    case 7: {
      const png = seeds.find((s) => s.name === "image.png")!.data;
      const side = rng.pick([16383, 65535, 100_000, 30_000]);
      return { data: setPngSize(png, side, side), kind: "image", what: `PNG claiming ${side}×${side}` };
    }
    case 8: {
      const jpg = seeds.find((s) => s.name === "image.jpg")!.data;
      const side = rng.pick([16383, 65535, 12_000]);
      return { data: setJpegSize(jpg, side, side), kind: "image", what: `JPEG claiming ${side}×${side}` };
    }
    case 9: {
      const mp4 = seeds.find((s) => s.name === "clip.mp4")!.data;
      const side = rng.pick([8192, 16384, 65535, 0]);
      return { data: setMp4Size(mp4, side, side), kind: "video", what: `MP4 claiming ${side}×${side}` };
    }
    case 10:
      return { data: Buffer.from(rng.pick(["#EXTM3U\n", "<?xml version=\"1.0\"?><MPD></MPD>", "[playlist]\nFile1=" + secret + "\n", `<smil><body><video src="${secret}"/></body></smil>`, "RIFF\u0000\u0000\u0000\u0000AVI LIST"])), kind: "video", what: "playlist / manifest text" };
    default:
      return { data: Buffer.concat([d, d.subarray(0, rng.int(0, d.length))]), kind: seed.kind, what: `${seed.name}: a copy of its start appended` };
  }
}

/** Sends `count` mutated media files through uploads, data: URLs and file:// URLs to /v1/plan and chat. */
export async function mediaCampaign(base: string, seeds: MediaSeed[], secret: string, allowedDir: string, rngFor: (i: number) => SeededRng, opts: { count: number; timeoutMs: number; firstSeed: number; onCase?: (i: number) => void }): Promise<CampaignResult> {
  const result: CampaignResult = { count: 0, statuses: {}, findings: [], maxMs: 0 };
  const json = { "Content-Type": "application/json" };
  for (let i = 0; i < opts.count; i++) {
    const rng = rngFor(i);
    const m = mutateMedia(seeds, rng, secret);
    const route = rng.next() < 0.7 ? "/v1/plan" : "/v1/chat/completions";
    const how = rng.pick(["upload", "data", "file"] as const);
    let url: string;
    let cleanup = async () => {};
    const exchanges = [];
    if (how === "upload") {
      const up = await request(base, { method: "POST", path: "/v1/uploads?filename=fuzz", headers: { "Content-Type": "application/octet-stream" }, body: m.data, timeoutMs: opts.timeoutMs });
      exchanges.push({ e: up, step: "upload" });
      let id = "upl_missing";
      try {
        id = (JSON.parse(up.body.toString("utf8")) as { id: string }).id ?? id;
      } catch {
        // judged below
      }
      url = `upload://${id}`;
      cleanup = async () => {
        exchanges.push({ e: await request(base, { method: "DELETE", path: `/v1/uploads/${id}`, timeoutMs: opts.timeoutMs }), step: "delete" });
      };
    } else if (how === "data") {
      url = `data:${m.kind === "image" ? "image/png" : "video/mp4"};base64,${m.data.toString("base64")}`;
    } else {
      const file = path.join(allowedDir, `fuzz-${opts.firstSeed + i}`);
      fs.writeFileSync(file, m.data);
      url = `file://${file}`;
      cleanup = async () => fs.rmSync(file, { force: true });
    }
    const part = m.kind === "image" ? { type: "image_url", image_url: { url } } : { type: "video_url", video_url: { url, max_pixels: 3136 } };
    const body = { messages: [{ role: "user", content: [part, { type: "text", text: "What is it?" }] }], max_tokens: 2 };
    exchanges.push({ e: await request(base, { method: "POST", path: route, headers: json, body: Buffer.from(JSON.stringify(body)), timeoutMs: opts.timeoutMs }), step: route });
    await cleanup();
    for (const { e, step } of exchanges) {
      result.count += step === route ? 1 : 0;
      const status = e.timedOut ? "timeout" : String(e.status);
      result.statuses[`${step} ${status}`] = (result.statuses[`${step} ${status}`] ?? 0) + 1;
      result.maxMs = Math.max(result.maxMs, e.ms);
      const v = judge(e);
      if (v.problem && !(step === "delete" && e.status === 404)) result.findings.push({ campaign: "media", seed: opts.firstSeed + i, problem: v.problem, what: `${m.what} via ${how} to ${step}`, detail: v.detail });
    }
    opts.onCase?.(i);
  }
  return result;
}
