/**
 * Writes the tiny random Qwen2-VL test checkpoint (the one the golden tests use) as a Hugging Face checkpoint
 * folder and prints its path — a checkpoint to try the CLI on without downloading anything. Its weights are
 * random, so its answers are fluent nonsense, identical to what transformers produces for the same weights.
 *
 *   npx tsx tools/make-tiny-checkpoint.ts [qwen2-vl-tiny|qwen2-vl-tiny-tied]
 */
import * as path from "node:path";
import { materializeTinyCheckpoint, repoRoot } from "../src/testing/tiny-checkpoint.js";

const name = process.argv[2] ?? "qwen2-vl-tiny";
const dir = await materializeTinyCheckpoint(path.join(repoRoot(), "test/fixtures/qwen2-vl", name));
process.stdout.write(dir + "\n");
