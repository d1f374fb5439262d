/**
 * Batch throughput from one machine to several backends: N synthetic clips (src/synth, the demo model's scenes, each
 * with its own question) run with `videolm batch` on the local demo model (--concurrency 1 and 2), then against 1, 2
 * and 4 `videolm serve` instances of the demo model on loopback (each --backend URL#limit). Prints, per setup, the
 * wall time, items/min, the speed-up over one backend, per-item latency p50 / p90 (an item's time on its backend:
 * upload, decode, generation) and the 1-minute load average before and after — the reference machine has 2 cores,
 * so backends beyond 2 only share them; the numbers say what the cores allow, not what a cluster would.
 *
 *   npx tsx bench/batch-scale.ts [--clips 24] [--backends 1,2,4] [--limit 2 | --limits 2,8] [--threads N] [--local 1,2]
 *
 * --threads: onnxruntime threads of each server (default: the engine's default, all cores); --limit: items in flight
 * per server (2: one generating while the next is prepared); --limits 2,8 runs every backend count at each (to tell
 * more backends from more items in flight). The ratio is to the first 1-backend setup. Clips are made once into
 * .cache/bench/batch-scale.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { encodeScene, questionsFor, sceneFromSeed } from "../src/synth/index.js";
import { repoRoot } from "../src/testing/tiny-checkpoint.js";

const { values } = parseArgs({
  options: {
    clips: { type: "string", default: "24" },
    backends: { type: "string", default: "1,2,4" },
    local: { type: "string", default: "1,2" },
    limit: { type: "string", default: "2" },
    limits: { type: "string" },
    threads: { type: "string" },
    rounds: { type: "string", default: "1" },
  },
});

const ROOT = repoRoot();
const CLI = ["--import", pathToFileURL(path.join(ROOT, "node_modules/tsx/dist/loader.mjs")).href, path.join(ROOT, "src/cli/main.ts")];
const work = path.join(ROOT, ".cache", "bench", "batch-scale");
fs.mkdirSync(work, { recursive: true });

/** N clips and a manifest with one question each (the scene's first), made once. */
async function makeClips(n: number): Promise<string> {
  const rows: string[] = [];
  for (let i = 0; i < n; i++) {
    const seed = 7_000_000 + i;
    const scene = sceneFromSeed(seed);
    const file = path.join(work, `clip-${seed}.mp4`);
    if (!fs.existsSync(file)) await encodeScene(scene, file);
    const q = questionsFor(scene)[0];
    rows.push(JSON.stringify({ id: `clip-${seed}`, video: path.basename(file), question: q.question }));
  }
  const manifest = path.join(work, `manifest-${n}.jsonl`);
  fs.writeFileSync(manifest, rows.join("\n") + "\n");
  return manifest;
}

/** Starts `videolm serve` on a free loopback port; resolves with its URL once it listens. */
function startServer(): Promise<{ url: string; child: ChildProcess }> {
  const args = [...CLI, "serve", "--port", "0", "-q", ...(values.threads ? ["--threads", values.threads] : [])];
  const child = spawn(process.execPath, args, { stdio: ["ignore", "ignore", "pipe"] });
  return new Promise((resolve, reject) => {
    let err = "";
    child.stderr!.on("data", (d: Buffer) => {
      err += d.toString();
      const m = /serving .* at (http:\/\/[^/\s]+)\//.exec(err);
      if (m) resolve({ url: m[1], child });
    });
    child.on("exit", (code) => reject(new Error(`serve exited (${code}): ${err.trim()}`)));
  });
}

interface Run {
  setup: string;
  backends: number;
  items: number;
  ok: number;
  failed: number;
  wallS: number;
  perMinute: number;
  p50Ms: number;
  p90Ms: number;
  load1Before: number;
  load1After: number;
  perBackend: Record<string, number>;
}

const percentile = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] ?? NaN;
};

function runBatch(setup: string, manifest: string, extra: string[], backends: number): Run {
  const out = path.join(work, `results-${setup.replace(/\W+/g, "_")}-${Date.now()}.jsonl`);
  const load1Before = os.loadavg()[0];
  const r = spawnSync(process.execPath, [...CLI, "batch", manifest, "-o", out, "--json", "-q", ...extra], { encoding: "utf8", cwd: work });
  const load1After = os.loadavg()[0];
  if (r.status !== 0) throw new Error(`${setup}: batch exited ${r.status}: ${r.stderr.trim()}`);
  const summary = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
  const results = fs
    .readFileSync(out, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l));
  fs.rmSync(out);
  const latencies = results.filter((x) => !x.error).map((x) => x.timings.totalMs as number);
  return {
    setup,
    backends,
    items: summary.total,
    ok: summary.ok,
    failed: summary.failed,
    wallS: summary.wallMs / 1000,
    perMinute: summary.itemsPerMinute,
    p50Ms: percentile(latencies, 50),
    p90Ms: percentile(latencies, 90),
    load1Before,
    load1After,
    perBackend: summary.started,
  };
}

const uptime = () => spawnSync("uptime", { encoding: "utf8" }).stdout.trim();
const manifest = await makeClips(Number(values.clips));
process.stdout.write(`${new Date().toISOString()} ${os.cpus().length} cores; ${uptime()}\n`);
const runs: Run[] = [];
for (let round = 0; round < Number(values.rounds); round++) {
  for (const c of values.local.split(",").filter(Boolean).map(Number)) {
    const run = runBatch(`local --concurrency ${c}`, manifest, ["--concurrency", String(c), ...(values.threads ? ["--threads", values.threads] : [])], 0);
    runs.push(run);
    process.stdout.write(JSON.stringify(run) + "\n");
  }
  for (const k of values.backends.split(",").filter(Boolean).map(Number)) {
    for (const limit of (values.limits ?? values.limit).split(",").filter(Boolean)) {
      const servers = await Promise.all(Array.from({ length: k }, () => startServer()));
      try {
        const extra = servers.flatMap((s) => ["--backend", `${s.url}#${limit}`]);
        const run = runBatch(`${k} × serve #${limit}`, manifest, extra, k);
        runs.push(run);
        process.stdout.write(JSON.stringify(run) + "\n");
      } finally {
        for (const s of servers) s.child.kill("SIGTERM");
        await Promise.all(servers.map((s) => new Promise((r) => (s.child.exitCode !== null ? r(null) : s.child.once("exit", r)))));
      }
    }
  }
}
process.stdout.write(`${new Date().toISOString()} ${uptime()}\n\n`);

// Medians over rounds per setup.
const setups = [...new Set(runs.map((r) => r.setup))];
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const one = runs.find((r) => r.backends === 1);
const base = one ? median(runs.filter((r) => r.setup === one.setup).map((r) => r.perMinute)) : undefined;
process.stdout.write(`| setup | items | ok | wall s | items/min | vs 1 backend | p50 ms | p90 ms | load1 before → after |\n|---|---|---|---|---|---|---|---|---|\n`);
for (const s of setups) {
  const rs = runs.filter((r) => r.setup === s);
  const pm = median(rs.map((r) => r.perMinute));
  process.stdout.write(
    `| ${s} | ${rs[0].items} | ${rs[0].ok} | ${median(rs.map((r) => r.wallS)).toFixed(1)} | ${pm.toFixed(1)} | ${base ? `${(pm / base).toFixed(2)}×` : "–"} | ${median(rs.map((r) => r.p50Ms)).toFixed(0)} | ${median(rs.map((r) => r.p90Ms)).toFixed(0)} | ${rs.map((r) => `${r.load1Before.toFixed(1)} → ${r.load1After.toFixed(1)}`).join(", ")} |\n`,
  );
}
