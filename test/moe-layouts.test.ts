/**
 * Mixture-of-experts checkpoints in either tensor layout load to the same model: Qwen3-VL-MoE's tiny golden checkpoint
 * (fused `experts.gate_up_proj` [E, h, 2·Im] / `experts.down_proj` [E, Im, h], as transformers 4.57.6 and the hub
 * store them) rewritten with per-expert tensors `experts.{j}.{gate,up,down}_proj.weight` (the Qwen2/Qwen3-MoE layout
 * that transformers 5.x fuses on load) gives the same logits and greedy tokens; a checkpoint missing one expert's
 * tensor is refused with a message naming it. (Qwen3.5-MoE's per-expert layout has its own transformers 5.18 golden:
 * test/fixtures/qwen3_5_moe/qwen3_5_moe-tiny-per-expert.)
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VideoModel } from "../src/engine/model.js";
import { materializeTinyCheckpoint, repoRoot, testCacheDir } from "../src/testing/tiny-checkpoint.js";
import { rewriteWeights, transposeBytes } from "../src/testing/rewrite-weights.js";
import { fullForward, maxAbsDiff } from "./golden-helpers.js";

const FIXTURE = path.join(repoRoot(), "test/fixtures/qwen3_vl_moe/qwen3_vl_moe-tiny");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "videolm-moe-layouts-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const BF16 = 2;
/** The fused stacks split into per-expert nn.Linear weights ([out, in]); `skip` drops one tensor by name. */
function toPerExpert(src: string, dst: string, skip?: string) {
  rewriteWeights(src, dst, (info, bytes) => {
    const m = /^(.*\.mlp\.experts)\.(gate_up_proj|down_proj)$/.exec(info.name);
    if (!m) return [{ name: info.name, dtype: info.dtype, shape: info.shape, bytes }];
    expect(info.dtype).toBe("BF16");
    const [E, rows, cols] = info.shape; // gate_up [E, h, 2·Im], down [E, Im, h]
    const out = [];
    for (let e = 0; e < E; e++) {
      const t = transposeBytes(bytes.subarray(e * rows * cols * BF16, (e + 1) * rows * cols * BF16), rows, cols, BF16); // [cols, rows] = [out, in]
      if (m[2] === "down_proj") out.push({ name: `${m[1]}.${e}.down_proj.weight`, dtype: info.dtype, shape: [cols, rows], bytes: t });
      else {
        const Im = cols / 2;
        out.push({ name: `${m[1]}.${e}.gate_proj.weight`, dtype: info.dtype, shape: [Im, rows], bytes: t.subarray(0, Im * rows * BF16) });
        out.push({ name: `${m[1]}.${e}.up_proj.weight`, dtype: info.dtype, shape: [Im, rows], bytes: t.subarray(Im * rows * BF16) });
      }
    }
    return out.filter((t) => t.name !== skip);
  });
}

describe("MoE checkpoints: fused and per-expert expert tensors are the same model", () => {
  let fused: VideoModel;
  let perExpert: VideoModel;
  let fusedDir: string;
  beforeAll(async () => {
    fusedDir = await materializeTinyCheckpoint(FIXTURE);
    const dir = path.join(tmp, "per-expert");
    toPerExpert(fusedDir, dir);
    fused = await VideoModel.load(fusedDir, { cacheDir: testCacheDir(), threads: 1 });
    perExpert = await VideoModel.load(dir, { cacheDir: path.join(tmp, "cache"), threads: 1 });
  });

  it("Qwen3-VL-MoE: same logits and greedy tokens from per-expert tensors", async () => {
    const messages = [{ role: "user" as const, content: [{ type: "text" as const, text: "Name three colours of the rainbow." }] }];
    const a = await fused.encodeVisuals(await fused.prepare(messages));
    const b = await perExpert.encodeVisuals(await perExpert.prepare(messages));
    const positions = [a.inputIds.length - 3, a.inputIds.length - 1];
    const la = await fullForward(fused, a, positions);
    const lb = await fullForward(perExpert, b, positions);
    expect(maxAbsDiff(la, lb)).toBeLessThan(1e-5);
    const ra = await fused.generate({ messages, temperature: 0, maxNewTokens: 10 });
    const rb = await perExpert.generate({ messages, temperature: 0, maxNewTokens: 10 });
    expect(new Set(ra.tokens).size).toBeGreaterThan(3);
    expect(rb.tokens).toEqual(ra.tokens);
  });

  it("a missing expert tensor is named in the error", async () => {
    const dir = path.join(tmp, "missing");
    toPerExpert(fusedDir, dir, "model.language_model.layers.1.mlp.experts.5.up_proj.weight");
    await expect(VideoModel.load(dir, { cacheDir: path.join(tmp, "cache2"), threads: 1 })).rejects.toThrow(/missing tensor model\.layers\.1\.mlp\.experts\.5\.up_proj\.weight/);
  });
});
