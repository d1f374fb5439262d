/**
 * A bounded pass of the fuzz harness (src/testing/fuzz/, docs/security.md) on every test run: a real
 * `videolm serve` on loopback, mutated API requests, media files and checkpoints. The full campaign
 * (3,000 / 300 / 100) is `npm run fuzz`. The seed is fixed (FUZZ_SEED overrides it), so a failure reproduces.
 */
import { describe, expect, it } from "vitest";
import { runFuzz } from "../src/testing/fuzz/harness.js";

const seed = Number(process.env.FUZZ_SEED ?? 20261203);

describe("fuzz harness (bounded)", () => {
  it(`seed ${seed}: no crash, hang, 5xx, non-OpenAI error, leak, file read or changed answer`, async () => {
    const report = await runFuzz({ seed, requests: 300, media: 40, checkpoints: 8, entry: "src", checkpointTimeoutMs: 20_000 });
    const summary = report.findings.map((f) => `[${f.campaign} #${f.seed}] ${f.problem}: ${f.what}${f.detail ? ` — ${f.detail}` : ""}`);
    expect(summary).toEqual([]);
    expect(report.api?.count).toBe(300);
    expect(report.media?.count).toBe(40);
    expect(report.media?.secretRead).toBe(false);
    expect(report.checkpoints?.count).toBe(8);
    expect(report.greedy.same).toBe(true);
    expect(report.serverAlive).toBe(true);
    expect(report.leaks.children).toEqual([]);
    expect(report.leaks.tmpAfterStop).toEqual([]);
    // Successful answers happen too: the mutations must not all be rejected at the door.
    expect(report.api?.statuses["200"] ?? 0).toBeGreaterThan(0);
  }, 600_000);
});
