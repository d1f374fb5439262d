/**
 * The fuzz harness from the command line (docs/security.md):
 *
 *   npm run fuzz -- [--seed 1] [--requests 3000] [--media 300] [--checkpoints 100] [--entry dist|src] [--json FILE]
 *
 * Starts `videolm serve` on 127.0.0.1 with the tiny test checkpoint, runs the three campaigns and prints the figures;
 * exits 1 when anything was found (each finding names its campaign, seed and case, to rerun it).
 */
import * as fs from "node:fs";
import { parseArgs } from "node:util";
import { DEFAULT_FUZZ_OPTIONS, runFuzz, type FuzzReport } from "../src/testing/fuzz/harness.js";

const { values } = parseArgs({
  options: {
    seed: { type: "string" },
    requests: { type: "string" },
    media: { type: "string" },
    checkpoints: { type: "string" },
    concurrency: { type: "string" },
    entry: { type: "string" },
    json: { type: "string" },
  },
  strict: true,
});
const int = (name: keyof typeof values, fallback: number) => (values[name] === undefined ? fallback : Number.parseInt(String(values[name]), 10));
const d = DEFAULT_FUZZ_OPTIONS;
const report: FuzzReport = await runFuzz({
  seed: int("seed", d.seed),
  requests: int("requests", d.requests),
  media: int("media", d.media),
  checkpoints: int("checkpoints", d.checkpoints),
  concurrency: int("concurrency", d.concurrency),
  entry: values.entry === "src" ? "src" : "dist",
  log: (line) => process.stderr.write(`fuzz: ${line}\n`),
});

const statuses = (s: Record<string, number> | undefined) => Object.entries(s ?? {}).sort().map(([k, v]) => `${k}: ${v}`).join(", ");
const lines = [
  `seed ${report.options.seed}, ${report.seconds.toFixed(0)} s`,
  `api requests: ${report.api?.count ?? 0} (${statuses(report.api?.statuses)}), slowest ${Math.round(report.api?.maxMs ?? 0)} ms`,
  `media files: ${report.media?.count ?? 0} (${statuses(report.media?.statuses)}), slowest ${Math.round(report.media?.maxMs ?? 0)} ms, secret read: ${report.media?.secretRead ?? "-"}`,
  `checkpoints: ${report.checkpoints?.count ?? 0} (${statuses(report.checkpoints?.statuses)}), slowest ${Math.round(report.checkpoints?.maxCaseMs ?? 0)} ms, peak ${((report.checkpoints?.maxRssBytes ?? 0) / 1024 ** 2).toFixed(0)} MiB`,
  `/health: ${report.health.polls} polls during the campaigns, slowest ${Math.round(report.health.maxMs)} ms, ${report.health.failures} failures`,
  `leaks: ${report.leaks.children.length} child processes, descriptors ${report.leaks.descriptorsBefore} → ${report.leaks.descriptorsAfter}, TMPDIR after stop: ${report.leaks.tmpAfterStop.length} entries`,
  `greedy answer before/after: ${report.greedy.same ? "same" : "DIFFERENT"} (${JSON.stringify(report.greedy.before)})`,
  `findings: ${report.findings.length}`,
  ...report.findings.slice(0, 50).map((f) => `  [${f.campaign} #${f.seed}] ${f.problem}: ${f.what}${f.detail ? ` — ${f.detail}` : ""}`),
];
process.stdout.write(lines.join("\n") + "\n");
if (values.json) fs.writeFileSync(values.json, JSON.stringify(report, null, 2) + "\n");
process.exitCode = report.findings.length ? 1 : 0;
