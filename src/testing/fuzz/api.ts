/**
 * The API campaign: valid requests of every kind the server takes (text, images, videos by data:, upload:// and
 * file://, streaming, logprobs, plans, uploads), each mutated — in its JSON structure, its serialised text, its
 * HTTP method / path / headers, or as raw malformed HTTP — and every answer judged (http-check.ts).
 */
import type { SeededRng } from "../../synth/rng.js";
import { judge, rawExchange, request, type Exchange, type Problem } from "./http-check.js";
import { mutateJson, mutateText, stringifyJson, type Json } from "./values.js";

export interface ApiSeeds {
  /** A small PNG as a data: URL. */
  imageDataUrl: string;
  /** A small MP4 as a data: URL. */
  videoDataUrl: string;
  /** upload://… of a video uploaded before the campaign. */
  uploadUrl: string;
  /** file://… inside the server's --allowed-media-dir, and one outside it. */
  allowedFileUrl: string;
  outsideFileUrl: string;
  /** A loopback media URL (must be refused: the server runs without --allow-private-media). */
  privateUrl: string;
}

export interface Finding {
  campaign: string;
  seed: number;
  problem: Problem | string;
  what: string;
  detail?: string;
}

export interface CampaignResult {
  count: number;
  statuses: Record<string, number>;
  findings: Finding[];
  maxMs: number;
  /** The slowest cases (what, ms), slowest first. */
  slowest?: { seed: number; what: string; ms: number }[];
}

/** When a case ran (epoch milliseconds, comparable across threads), to name the cases in flight when /health was slow. */
export interface CaseTrace {
  seed: number;
  what: string;
  t0: number;
  t1: number;
}

const text = (t: string) => ({ type: "text", text: t });

/** Valid bodies for POST /v1/chat/completions and /v1/plan. */
export function seedBodies(s: ApiSeeds): { path: string; body: Json }[] {
  const chat = (content: Json, extra: Record<string, Json> = {}) => ({ messages: [{ role: "user", content }], max_tokens: 4, temperature: 0, ...extra });
  return [
    { path: "/v1/chat/completions", body: chat("Say something.") },
    { path: "/v1/chat/completions", body: chat([text("Describe.")], { stream: true, stream_options: { include_usage: true } }) },
    { path: "/v1/chat/completions", body: chat([text("Describe.")], { logprobs: true, top_logprobs: 3, seed: 7, temperature: 0.7, top_p: 0.9, stop: ["\n"] }) },
    { path: "/v1/chat/completions", body: { messages: [{ role: "system", content: "Be brief." }, { role: "user", content: "Hi" }, { role: "assistant", content: "Hello" }, { role: "user", content: "Again" }], max_tokens: 3 } },
    { path: "/v1/chat/completions", body: chat([{ type: "image_url", image_url: { url: s.imageDataUrl, max_pixels: 3136 } }, text("What is it?")]) },
    { path: "/v1/chat/completions", body: chat([{ type: "video_url", video_url: { url: s.videoDataUrl, fps: 2, max_pixels: 3136 } }, text("What happens?")]) },
    { path: "/v1/chat/completions", body: chat([{ type: "video_url", video_url: { url: s.uploadUrl, nframes: 4 } }, text("What happens?")], { stream: true }) },
    { path: "/v1/chat/completions", body: chat([{ type: "video_url", video_url: { url: s.allowedFileUrl, start: 0.2, end: 1.5 } }, text("When?")]) },
    { path: "/v1/chat/completions", body: chat([{ type: "video_url", video_url: { url: s.outsideFileUrl } }, text("Read it")]) },
    { path: "/v1/chat/completions", body: chat([{ type: "image_url", image_url: { url: s.privateUrl } }, text("Fetch it")]) },
    { path: "/v1/plan", body: { messages: [{ role: "user", content: [{ type: "video_url", video_url: { url: s.uploadUrl, fps: 4 } }, text("Plan")] }] } },
    { path: "/v1/plan", body: { messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: s.imageDataUrl } }, text("Plan")] }] } },
  ];
}

const PATHS = ["/", "//", "/%ZZ", "/v1/models/%ZZ", "/v1/models/%E0%A4%A", "/v1/models", "/v1/models/x", "/health", "/v1/uploads/upl_0", "/v1/uploads/%2e%2e%2fetc", "/v1/plans/plan_00/visuals/99999999999999999999/frames/1.jpg", "/../../etc/passwd", "/app.js", "/v1/chat/completions?x=%ZZ", "/v1/chat/completions/", "/V1/CHAT/COMPLETIONS", `/${"a".repeat(6000)}`];
const METHODS = ["GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "POST"];
const CONTENT_TYPES = ["application/json", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/json; charset=latin1", "application/merge-patch+json", "", "video/mp4"];

/** Malformed HTTP on a raw socket. */
function rawCase(rng: SeededRng): { bytes: Buffer; what: string } {
  const cases: [string, () => string][] = [
    ["garbage request line", () => "\u0000\u0001GARBAGE\r\n\r\n"],
    ["no version", () => "GET /health\r\n\r\n"],
    ["HTTP/0.9", () => "GET /health HTTP/0.9\r\n\r\n"],
    ["header without colon", () => "GET /health HTTP/1.1\r\nHost: x\r\nbroken header\r\n\r\n"],
    ["huge header", () => `GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(100_000)}\r\n\r\n`],
    ["conflicting lengths", () => 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n{"a":1}'],
    ["length and chunked", () => 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
    ["bad chunk size", () => "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n{}\r\n0\r\n\r\n"],
    ["short body", () => 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{"messages":'],
    ["negative length", () => "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"],
    ["space in path", () => "GET /v1/models /x HTTP/1.1\r\nHost: x\r\n\r\n"],
    ["pipelined", () => "GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/models/%ZZ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"],
  ];
  const [what, make] = rng.pick(cases);
  return { bytes: Buffer.from(make(), "latin1"), what: `raw: ${what}` };
}

/** One mutated exchange for `caseSeed`; returns its verdict. */
export async function oneCase(base: string, seeds: ReturnType<typeof seedBodies>, rng: SeededRng, timeoutMs: number): Promise<{ what: string; status: string; problem?: Problem | string; detail?: string; ms: number }> {
  const kind = rng.next();
  if (kind < 0.06) {
    const { bytes, what } = rawCase(rng);
    const r = await rawExchange(base, bytes, timeoutMs);
    if (r.timedOut) return { what, status: "timeout", problem: "hang", ms: r.ms };
    const m = /^HTTP\/1\.1 (\d{3})/.exec(r.text);
    const status = m ? Number(m[1]) : 0;
    if (status >= 500) return { what, status: String(status), problem: "5xx", detail: r.text.slice(0, 200), ms: r.ms };
    // Answers to malformed HTTP are errors too: they must carry an OpenAI-format JSON body (or none when the
    // connection was simply closed, which is what a server does with bytes that are not HTTP at all).
    if (status >= 400) {
      const body = r.text.slice(r.text.indexOf("\r\n\r\n") + 4);
      try {
        const parsed = JSON.parse(body) as unknown;
        if (!(parsed && typeof parsed === "object" && "error" in parsed)) throw new Error();
      } catch {
        return { what, status: String(status), problem: "not-openai-format", detail: r.text.slice(0, 200), ms: r.ms };
      }
    }
    return { what, status: String(status || "closed"), ms: r.ms };
  }
  const seed = rng.pick(seeds);
  let method = "POST";
  let path = seed.path;
  let contentType = "application/json";
  let body: Buffer;
  let what: string;
  if (kind < 0.16) {
    method = rng.pick(METHODS);
    path = rng.pick(PATHS);
    body = method === "GET" || method === "HEAD" ? Buffer.alloc(0) : Buffer.from(JSON.stringify(seed.body));
    what = `${method} ${path.slice(0, 60)}`;
  } else if (kind < 0.22) {
    contentType = rng.pick(CONTENT_TYPES);
    body = Buffer.from(JSON.stringify(seed.body));
    what = `${seed.path} as ${contentType || "no content type"}`;
  } else if (kind < 0.4) {
    const m = mutateText(JSON.stringify(seed.body), rng);
    body = m.data;
    what = `${seed.path} text ${m.what}`;
  } else {
    let value = seed.body;
    const whats: string[] = [];
    for (let i = rng.int(1, 3); i > 0; i--) {
      const m = mutateJson(value, rng);
      value = m.value;
      whats.push(m.what);
    }
    body = Buffer.from(stringifyJson(value));
    what = `${seed.path} ${whats.join("; ").slice(0, 200)}`;
  }
  const headers: Record<string, string> = contentType ? { "Content-Type": contentType } : {};
  const e: Exchange = await request(base, { method, path, headers, body, timeoutMs });
  const verdict = judge(e, method === "HEAD");
  return { what, status: e.timedOut ? "timeout" : String(e.status), ...verdict, ms: e.ms };
}

/** Runs `count` mutated requests, `concurrency` at a time (so admission and the queue are exercised too). */
export async function apiCampaign(base: string, seeds: ApiSeeds, rngFor: (caseIndex: number) => SeededRng, opts: { count: number; concurrency: number; timeoutMs: number; firstSeed: number; onCase?: (i: number) => void; trace?: CaseTrace[] }): Promise<CampaignResult> {
  const bodies = seedBodies(seeds);
  const result: CampaignResult = { count: 0, statuses: {}, findings: [], maxMs: 0, slowest: [] };
  let next = 0;
  const worker = async () => {
    while (next < opts.count) {
      const i = next++;
      const t0 = performance.timeOrigin + performance.now();
      const r = await oneCase(base, bodies, rngFor(i), opts.timeoutMs);
      opts.trace?.push({ seed: opts.firstSeed + i, what: r.what, t0, t1: performance.timeOrigin + performance.now() });
      result.count++;
      result.statuses[r.status] = (result.statuses[r.status] ?? 0) + 1;
      result.maxMs = Math.max(result.maxMs, r.ms);
      result.slowest = [...result.slowest!, { seed: opts.firstSeed + i, what: r.what, ms: Math.round(r.ms) }].sort((a, b) => b.ms - a.ms).slice(0, 5);
      if (r.problem) result.findings.push({ campaign: "api", seed: opts.firstSeed + i, problem: r.problem, what: r.what, detail: r.detail });
      opts.onCase?.(i);
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, worker));
  return result;
}
