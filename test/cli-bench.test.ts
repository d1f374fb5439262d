/**
 * `videolm bench` on a tiny checkpoint: the measured run happens in a child process and the report carries the
 * stage timings, peak memory, the work model and the bounds; bad flags fail in one line.
 */
import { spawnSync } from "node:child_process";
import * as path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import type { BenchReport } from "../src/cli/commands/bench.js";
import { materializeTinyCheckpoint, repoRoot, testCacheDir } from "../src/testing/tiny-checkpoint.js";

const CLI = path.join(repoRoot(), "dist/cli/main.js");
let model: string;
beforeAll(async () => {
  model = await materializeTinyCheckpoint(path.join(repoRoot(), "test/fixtures/qwen2-vl/qwen2-vl-tiny"));
});

const bench = (...args: string[]) => spawnSync(process.execPath, [CLI, "bench", "--cache-dir", testCacheDir(), ...args], { encoding: "utf8", timeout: 120_000 });

describe("videolm bench", () => {
  it("--json reports the run, the work per stage, the bounds and each stage's fraction of its bound", () => {
    const r = bench("--model", model, "--dtype", "int4", "--frames", "4", "--size", "56", "--tokens", "5", "--threads", "1", "--json", "--quiet");
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const report = JSON.parse(r.stdout) as BenchReport;
    expect(report.run).toMatchObject({ dtype: "int4", threads: 1, grid: [2, 4, 4] });
    expect(report.run.generatedTokens).toBeGreaterThan(0);
    expect(report.run.generatedTokens).toBeLessThanOrEqual(5);
    expect(report.run.promptTokens).toBeGreaterThan(8);
    for (const key of ["loadMs", "visionMs", "prefillMs", "ttftMs"] as const) expect(report.run[key]).toBeGreaterThan(0);
    expect(report.run.peakRssBytes).toBeGreaterThan(20 * 2 ** 20);
    expect(report.work!.visionGflop).toBeGreaterThan(0);
    expect(report.work!.prefillGflop).toBeGreaterThan(0);
    expect(report.bounds!.visionGflops).toBeGreaterThan(0);
    expect(report.bounds!.gemvGBps).toBeGreaterThan(0);
    expect(report.efficiency!.prefill).toBeGreaterThan(0);
  });

  it("prints a table by default", () => {
    const r = bench("--model", model, "--dtype", "fp32", "--frames", "2", "--size", "56", "--tokens", "3", "--threads", "1", "--no-bounds", "--quiet");
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^vision\s+\d/m);
    expect(r.stdout).toMatch(/^decode\s+[\d.]+ tok\/s/m);
    expect(r.stdout).toMatch(/^peak memory\s+[\d.]+ GiB/m);
  });

  it.each([
    [["--shape", "qwen9"], /--shape must be one of qwen2-vl-2b, qwen2-vl-7b/],
    [["--dtype", "int3"], /--dtype must be one of/],
    [["--frames", "0"], /--frames must be at least 1/],
  ])("fails in one line on %j", (args, message) => {
    const r = bench(...args);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
  });
});
