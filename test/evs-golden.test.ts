/**
 * EVS token pruning (src/engine/evs.ts, vLLM's rule) end to end against tools/oracle/record_evs.py on the tiny
 * Qwen2-VL / Qwen2.5-VL / Qwen3-VL checkpoints: a 10-frame video with a static background and one moving disc, at
 * rates 0.5 and 0.75. The oracle runs vLLM's compute_retention_mask on the reference's post-merger embeddings and
 * feeds the reference model the pruned prompt explicitly (inputs_embeds + 3-D position_ids).
 * Asserted: the same kept tokens per frame and prompt ids, the same 3-D positions (each kept token keeps its
 * unpruned (t, h, w), so equal positions also mean the same kept tokens), the logits of the last prompt token within
 * 1e-4 · max|logit| and the same 12 greedy tokens; for Qwen2-VL the positions also equal vLLM's
 * recompute_mrope_positions (for Qwen2.5-VL / Qwen3-VL see the notes in the record: vLLM resumes the text after the
 * video at base + llm_grid_w, the unpruned layout — this engine's rule — at base + max id + 1).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { evsMaskFromScores } from "../src/engine/evs.js";
import { VideoModel } from "../src/engine/model.js";
import type { ChatRequestMessage } from "../src/engine/request.js";
import { materializeTinyCheckpoint, repoRoot, testCacheDir } from "../src/testing/tiny-checkpoint.js";
import { checkRow, fullForward } from "./golden-helpers.js";

const ROOT = repoRoot();
const EVS = path.join(ROOT, "test/fixtures/evs");
const CACHE = testCacheDir();

interface EvsCase {
  rate: number;
  retained: number;
  mask: number[];
  kept_per_frame: number[];
  dissimilarity: number[];
  input_ids: number[];
  position_ids: number[][];
  logits_last: { max_abs: number; top20: [number, number][]; at_ids: Record<string, number> };
  greedy: number[];
  vllm_position_ids?: number[][];
  vllm_equals_keep_coordinates?: boolean;
}
interface EvsFamily {
  frames: string[];
  fps: number;
  input_ids: number[];
  video_grid_thw: [number, number, number];
  position_ids: number[][];
  cases: Record<string, EvsCase>;
}
const golden = JSON.parse(fs.readFileSync(path.join(EVS, "golden.json"), "utf8")) as { families: Record<string, EvsFamily> };

const CHECKPOINTS: Record<string, { fixture: string; minPixels: number }> = {
  "qwen2-vl": { fixture: "test/fixtures/qwen2-vl/qwen2-vl-tiny", minPixels: 28 * 28 },
  "qwen2_5-vl": { fixture: "test/fixtures/qwen2_5-vl/qwen2_5-vl-tiny", minPixels: 28 * 28 },
  "qwen3-vl": { fixture: "test/fixtures/qwen3-vl/qwen3-vl-tiny", minPixels: 32 * 32 },
};

/** The oracle's message: the frames as a list at its fps (no resize: sizes are multiples of the merge factor). */
function messages(f: EvsFamily, minPixels: number, prune?: number): ChatRequestMessage[] {
  return [
    {
      role: "user",
      content: [
        { type: "video", video: f.frames.map((p) => path.join(EVS, p)), fps: f.fps, minPixels, ...(prune !== undefined ? { prune } : {}) },
        { type: "text", text: "Where does the disc go?" },
      ],
    },
  ];
}

const rows = (p: Int32Array, S: number) => [0, 1, 2].map((a) => Array.from(p.subarray(a * S, (a + 1) * S)));

for (const [name, ck] of Object.entries(CHECKPOINTS)) {
  const fam = golden.families[name];
  describe(`EVS golden: ${name}`, () => {
    let model: VideoModel;
    beforeAll(async () => {
      model = await VideoModel.load(await materializeTinyCheckpoint(path.join(ROOT, ck.fixture)), { cacheDir: CACHE, threads: 1 });
    });

    it("the unpruned prompt is the reference's (the baseline the pruning starts from)", async () => {
      const prepared = await model.prepare(messages(fam, ck.minPixels));
      expect(prepared.inputIds).toEqual(fam.input_ids);
      expect(rows(prepared.positionIds, prepared.inputIds.length)).toEqual(fam.position_ids);
      expect(prepared.visuals[0].grid).toEqual(fam.video_grid_thw);
    });

    for (const [rate, c] of Object.entries(fam.cases)) {
      it(`rate ${rate}: mask, prompt ids, 3-D positions, logits, 12 greedy tokens`, async () => {
        const [t, h, w] = fam.video_grid_thw;
        const perFrame = (h * w) / 4;
        // The rule's top-k on the reference's own scores gives the reference's mask.
        expect(Array.from(evsMaskFromScores(c.dissimilarity, t, perFrame, c.rate))).toEqual(c.mask);

        const prepared = await model.prepare(messages(fam, ck.minPixels, c.rate));
        expect(prepared.visuals[0].prune).toBe(c.rate);
        expect(prepared.inputIds).toEqual(fam.input_ids); // planned with every token
        const prompt = await model.encodeVisuals(prepared);
        expect(prompt.selection?.units.map((u) => u.tokens)).toEqual(c.kept_per_frame);
        expect(prompt.selection?.keptTokens).toBe(c.retained);
        expect(prompt.inputIds).toEqual(c.input_ids);
        const S = prompt.inputIds.length;
        expect(rows(prompt.positionIds, S)).toEqual(c.position_ids);
        if (name === "qwen2-vl") {
          expect(c.vllm_equals_keep_coordinates).toBe(true);
          expect(rows(prompt.positionIds, S)).toEqual(c.vllm_position_ids);
        }
        // Generation continues where the unpruned prompt would: one past the last prompt position.
        expect(S + prompt.ropeDelta).toBe(Math.max(...c.position_ids.map((r) => r[S - 1])) + 1);

        const last = await fullForward(model, prompt, [S - 1]);
        const ref = c.logits_last;
        const ids = [...ref.top20.map(([id]) => id), ...Object.keys(ref.at_ids).map(Number)];
        const values = [...ref.top20.map(([, v]) => v), ...Object.values(ref.at_ids)];
        checkRow(last, ids, values, ref.max_abs);

        const r = await model.generate({ messages: messages(fam, ck.minPixels, c.rate), temperature: 0, maxNewTokens: c.greedy.length });
        expect(r.tokens).toEqual(c.greedy);
        expect(r.promptTokens).toBe(c.input_ids.length);
        expect(r.visualTokens?.keptTokens).toBe(c.retained);
      });
    }

    it("rate 0 is the unpruned path bit for bit", async () => {
      const plain = await model.encodeVisuals(await model.prepare(messages(fam, ck.minPixels)));
      const zero = await model.encodeVisuals(await model.prepare(messages(fam, ck.minPixels, 0)));
      expect(zero.selection).toBeUndefined();
      expect(zero.inputIds).toEqual(plain.inputIds);
      expect(Buffer.from(zero.positionIds.buffer).equals(Buffer.from(plain.positionIds.buffer))).toBe(true);
      expect(zero.ropeDelta).toBe(plain.ropeDelta);
      expect(Buffer.from(zero.visualEmbeds.buffer).equals(Buffer.from(plain.visualEmbeds.buffer))).toBe(true);
      if (plain.deepstackEmbeds) expect(Buffer.from(zero.deepstackEmbeds!.buffer).equals(Buffer.from(plain.deepstackEmbeds.buffer))).toBe(true);
    });
  });
}
