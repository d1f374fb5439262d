/**
 * Hostile checkpoints (issue 14, class 5, and the head_dim item of class 6): every mutation in
 * src/testing/checkpoint-mutations.ts must end in one VideolmError line naming the file and key, within seconds —
 * through the library and, for the cases the issue names, through the real CLI (`videolm inspect` and `run`).
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VideoModel } from "../src/engine/model.js";
import { VideolmError } from "../src/errors.js";
import { CHECKPOINT_MUTATIONS, ISSUE_14_MUTATIONS, linkCopy, type CheckpointMutation } from "../src/testing/checkpoint-mutations.js";
import { materializeTinyCheckpoint, repoRoot } from "../src/testing/tiny-checkpoint.js";

const ROOT = repoRoot();
const LIMIT_MS = 10_000;
let base: string;
let work: string;

async function mutated(m: CheckpointMutation, tag = "lib"): Promise<string> {
  const dir = linkCopy(base, path.join(work, `${tag}-${m.name.replace(/[^a-z0-9]+/gi, "-")}`));
  await m.mutate(dir);
  return dir;
}

beforeAll(async () => {
  base = await materializeTinyCheckpoint(path.join(ROOT, "test/fixtures/qwen2-vl/qwen2-vl-tiny"));
  work = fs.mkdtempSync(path.join(os.tmpdir(), "videolm-hostile-"));
});
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

describe("hostile checkpoints through the library", () => {
  for (const m of CHECKPOINT_MUTATIONS) {
    it(`${m.kind}: ${m.name}`, async () => {
      const dir = await mutated(m);
      const t0 = Date.now();
      let error: unknown;
      try {
        // Fails while preparing the request (before any conversion): no cache is written.
        await VideoModel.load(dir, { cacheDir: path.join(work, "cache") });
      } catch (e) {
        error = e;
      }
      const ms = Date.now() - t0;
      expect(error, `loading "${m.name}" should fail`).toBeInstanceOf(VideolmError);
      const message = (error as Error).message;
      expect(message).not.toContain("\n");
      expect(message).toMatch(m.expect);
      expect(ms).toBeLessThan(LIMIT_MS);
    }, 60_000);
  }

  it("the unmutated base still loads and answers (the checks refuse nothing real)", async () => {
    const dir = linkCopy(base, path.join(work, "base-copy"));
    const model = await VideoModel.load(dir, { cacheDir: path.join(work, "cache") });
    const out = await model.generate({ messages: [{ role: "user", content: "Hello" }], maxNewTokens: 2 });
    expect(out.tokens.length).toBe(2);
  }, 120_000);
});

function videolm(args: string[]) {
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [path.join(ROOT, "node_modules/tsx/dist/cli.mjs"), path.join(ROOT, "src/cli/main.ts"), ...args], {
    encoding: "utf8",
    env: { ...process.env, VIDEOLM_CACHE: path.join(work, "cli-cache") },
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, ms: Date.now() - t0 };
}

describe("hostile checkpoints through the CLI", () => {
  for (const name of ISSUE_14_MUTATIONS) {
    const m = CHECKPOINT_MUTATIONS.find((x) => x.name === name)!;
    for (const command of name === "null safetensors header" || name === "text head_dim 12" ? ["inspect", "run"] : ["inspect"]) {
      it(`videolm ${command}: ${name}`, async () => {
        const dir = await mutated(m, command);
        const r = videolm([command, "--model", dir, "--max-new-tokens", "2", "What is in the picture?"]);
        expect(r.code).toBe(1);
        expect(r.stdout).toBe("");
        const lines = r.stderr.trimEnd().split("\n");
        expect(lines.length).toBe(1);
        expect(lines[0]).toMatch(/^videolm: /);
        expect(lines[0]).not.toMatch(/internal error|please report/);
        expect(lines[0]).toMatch(m.expect);
        expect(r.ms).toBeLessThan(LIMIT_MS);
      }, 60_000);
    }
  }
});
