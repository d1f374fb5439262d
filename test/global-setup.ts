/**
 * One conversion cache per test run. The cache key covers the checkpoint and CONVERTER_VERSION but not the graph
 * builders' source, so a cache shared across runs could serve graphs built by older code; a fresh folder per run
 * makes every run convert with the code under test (tiny checkpoints convert in well under a second).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { repoRoot } from "../src/testing/tiny-checkpoint.js";

export default function setup(): () => void {
  const dir = path.join(repoRoot(), ".cache", "test-cache", `run-${process.pid}-${Date.now()}`);
  fs.mkdirSync(dir, { recursive: true });
  process.env.VIDEOLM_TEST_CACHE = dir;
  return () => fs.rmSync(dir, { recursive: true, force: true });
}
