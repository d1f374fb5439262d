/**
 * Load test for `videolm serve` (not a test): starts a server on the tiny checkpoint in this process (or targets
 * --url), sends N streaming chat requests with C in flight, and prints latency percentiles (time to first token and
 * total), tokens/s, errors by status, and the server's RSS before and after.
 *
 *   npx tsx bench/load.ts [--requests 1000] [--concurrency 8] [--max-tokens 8] [--video] [--url http://host:port]
 *
 * With --url the server is remote and its memory is not measured here. --video adds a 1 s 56×56 clip (uploaded once)
 * to every request, so each request also decodes frames and runs the vision encoder.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { VideoModel } from "../src/engine/model.js";
import { locateFfmpeg } from "../src/media/ffmpeg.js";
import { VideolmServer } from "../src/server/server.js";
import { materializeTinyCheckpoint, repoRoot } from "../src/testing/tiny-checkpoint.js";

const { values } = parseArgs({
  options: {
    requests: { type: "string", default: "1000" },
    concurrency: { type: "string", default: "8" },
    "max-tokens": { type: "string", default: "8" },
    video: { type: "boolean", default: false },
    url: { type: "string" },
  },
});
const N = Number(values.requests);
const C = Number(values.concurrency);
const maxTokens = Number(values["max-tokens"]);

const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

async function main() {
  let server: VideolmServer | undefined;
  let base = values.url;
  if (!base) {
    const dir = await materializeTinyCheckpoint(path.join(repoRoot(), "test/fixtures/qwen2-vl/qwen2-vl-tiny"));
    const model = await VideoModel.load(dir, { cacheDir: path.join(repoRoot(), ".cache/test-cache") });
    // The queue must hold every concurrent request, or the excess is refused with 429 (which is counted too).
    server = await VideolmServer.start(model, { port: 0, log: () => {}, maxQueue: C });
    base = server.url;
  }
  let videoUrl: string | undefined;
  if (values.video) {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "videolm-load-"));
    const file = path.join(tmp, "clip.mp4");
    execFileSync(locateFfmpeg().ffmpeg, ["-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=56x56:rate=10", "-t", "1", "-pix_fmt", "yuv420p", file]);
    const r = await fetch(`${base}/v1/uploads`, { method: "POST", headers: { "Content-Type": "video/mp4" }, body: fs.readFileSync(file) });
    videoUrl = ((await r.json()) as { url: string }).url;
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  global.gc?.();
  const rssBefore = process.memoryUsage().rss;

  const total: number[] = [];
  const ttft: number[] = [];
  const errors = new Map<string, number>();
  let tokens = 0;
  let next = 0;
  let done = 0;
  const t0 = performance.now();

  async function one(i: number) {
    const content = [...(videoUrl ? [{ type: "video_url", video_url: { url: videoUrl } }] : []), { type: "text", text: `Request ${i}: describe what you see.` }];
    const start = performance.now();
    try {
      const r = await fetch(`${base}/v1/chat/completions`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ messages: [{ role: "user", content }], max_tokens: maxTokens, stream: true, stream_options: { include_usage: true } }),
      });
      if (!r.ok) {
        await r.body?.cancel();
        errors.set(`HTTP ${r.status}`, (errors.get(`HTTP ${r.status}`) ?? 0) + 1);
        return;
      }
      const reader = r.body!.getReader();
      const decoder = new TextDecoder();
      let text = "";
      let first: number | undefined;
      for (;;) {
        const { value, done: end } = await reader.read();
        if (end) break;
        text += decoder.decode(value, { stream: true });
        if (first === undefined && text.includes('"content":"') && !/^data: [^\n]*"role"[^\n]*\n\n$/.test(text)) first = performance.now();
      }
      const usage = /"usage":\{"prompt_tokens":\d+,"completion_tokens":(\d+)/.exec(text);
      if (!text.endsWith("data: [DONE]\n\n") || !usage || text.includes('"error"')) {
        errors.set("bad stream", (errors.get("bad stream") ?? 0) + 1);
        return;
      }
      tokens += Number(usage[1]);
      total.push(performance.now() - start);
      ttft.push((first ?? performance.now()) - start);
    } catch (err) {
      const key = (err as Error).message;
      errors.set(key, (errors.get(key) ?? 0) + 1);
    } finally {
      done++;
      if (done % 100 === 0) process.stderr.write(`  ${done}/${N}\n`);
    }
  }
  await Promise.all(
    Array.from({ length: Math.min(C, N) }, async () => {
      while (next < N) await one(next++);
    }),
  );
  const wall = (performance.now() - t0) / 1000;
  global.gc?.();
  const rssAfter = process.memoryUsage().rss;
  total.sort((a, b) => a - b);
  ttft.sort((a, b) => a - b);
  const ms = (x: number) => `${x.toFixed(0)} ms`;
  const lines = [
    `videolm serve load: ${N} streaming requests, ${C} concurrent, max_tokens ${maxTokens}${videoUrl ? ", with a 1 s video" : ", text only"} (${base})`,
    `  ok ${total.length}, errors ${[...errors].map(([k, v]) => `${k}: ${v}`).join(", ") || "none"}`,
    `  latency total  p50 ${ms(percentile(total, 50))}  p90 ${ms(percentile(total, 90))}  p99 ${ms(percentile(total, 99))}  max ${ms(total[total.length - 1] ?? NaN)}`,
    `  first token    p50 ${ms(percentile(ttft, 50))}  p90 ${ms(percentile(ttft, 90))}  p99 ${ms(percentile(ttft, 99))}`,
    `  throughput     ${(total.length / wall).toFixed(2)} requests/s, ${(tokens / wall).toFixed(1)} generated tokens/s over ${wall.toFixed(1)} s`,
    server ? `  server RSS     before ${mib(rssBefore)}, after ${mib(rssAfter)} (Δ ${mib(rssAfter - rssBefore)}; same process as the client${global.gc ? ", after gc" : "; run with node --expose-gc for gc'd numbers"})` : "  server RSS     not measured (remote --url)",
  ];
  process.stdout.write(lines.join("\n") + "\n");
  await server?.close();
}

await main();
