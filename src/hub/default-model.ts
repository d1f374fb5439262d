/**
 * The model videolm ships: a small Qwen2-VL-architecture model trained on synthetic videos (models/videolm-demo,
 * see docs/demo-model.md), used when no --model is given so the main job works on a fresh machine with no network.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

/** The package root: two levels above this module (src/hub or dist/hub). */
const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

export const DEFAULT_MODEL_DIR = path.join(PACKAGE_ROOT, "models", "videolm-demo");

export function defaultModelAvailable(): boolean {
  return fs.existsSync(path.join(DEFAULT_MODEL_DIR, "config.json"));
}
