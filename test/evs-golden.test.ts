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
import { evsMaskFromScores, evsRetentionMask } from "../src/engine/evs.js";
import { VideoModel } from "../src/engine/model.js";
import { RequestPreparer } from "../src/engine/preparer.js";
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
        if (name === "qwen2_5-vl") {
          // vLLM agrees on every token up to the last kept video token (the same kept (t, h, w)); after it vLLM resumes
          // at base + llm_grid_w (here 15 + 5 = 20) while the video's temporal ids reach base + 8 (tokens_per_second 2):
          // the unpruned layout (this engine, transformers) resumes at base + 9 = 24.
          const lastPad = c.input_ids.lastIndexOf(151656);
          const upTo = (r: number[][]) => r.map((axis) => axis.slice(0, lastPad + 1));
          expect(upTo(rows(prompt.positionIds, S))).toEqual(upTo(c.vllm_position_ids!));
          expect(c.vllm_position_ids![0][lastPad + 1]).toBe(20);
          expect(c.position_ids[0][lastPad + 1]).toBe(24);
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

/**
 * InternVL (1-D RoPE, no oracle: vLLM ships EVS for InternVL-style models only as nano_nemotron_vl, which builds each
 * frame's placeholder from its kept count): the mask is vLLM's rule on the unpruned encoder rows (frame = one tile),
 * the prompt loses exactly the dropped <IMG_CONTEXT> tokens and its positions stay contiguous ("renumber").
 */
describe("EVS: InternVL (renumber)", () => {
  const FIX = path.join(ROOT, "test/fixtures/internvl");
  const frames = Array.from({ length: 40 }, (_, i) => path.join(FIX, `media/video40-h48-w72-${String(i).padStart(2, "0")}.png`));
  const msgs = (prune?: number): ChatRequestMessage[] => [
    { role: "user", content: [{ type: "video", video: frames, fps: 10, nframes: 8, ...(prune !== undefined ? { prune } : {}) }, { type: "text", text: "Where does the yellow disc go?" }] },
  ];
  let model: VideoModel;
  beforeAll(async () => {
    model = await VideoModel.load(await materializeTinyCheckpoint(path.join(FIX, "internvl-tiny")), { cacheDir: CACHE, threads: 1 });
  });

  it("rate 0.5: vLLM's mask on the unpruned rows, the dropped placeholders removed, 1-D positions contiguous, generation runs", async () => {
    const plain = await model.encodeVisuals(await model.prepare(msgs()));
    const prepared = await model.prepare(msgs(0.5));
    const v = prepared.visuals[0];
    const T = v.grid[0];
    const perFrame = v.tokens / T;
    const D = model.config.text.hiddenSize;
    const mask = evsRetentionMask(plain.visualEmbeds, T, perFrame, D, 0.5);
    const prompt = await model.encodeVisuals(prepared);
    expect(prompt.selection?.keptTokens).toBe(Math.max(perFrame, Math.trunc(v.tokens * 0.5)));
    expect(prompt.selection?.units.map((u) => u.tokens)).toEqual(Array.from({ length: T }, (_, f) => mask.subarray(f * perFrame, (f + 1) * perFrame).reduce((a, b) => a + b, 0)));
    expect(prompt.selection?.units[0].tokens).toBe(perFrame);
    // The planned ids without the dropped placeholders (the k-th placeholder is the k-th row of the video).
    let k = 0;
    const expectedIds = plain.inputIds.filter((id) => id !== model.config.imageTokenId || mask[k++] === 1);
    expect(prompt.inputIds).toEqual(expectedIds);
    expect(Array.from(prompt.positionIds)).toEqual(expectedIds.map((_, i) => i));
    expect(prompt.ropeDelta).toBe(0);
    // The kept rows, in order.
    const rows: number[] = [];
    for (let r = 0; r < mask.length; r++) if (mask[r]) rows.push(r);
    expect(prompt.visualEmbeds.length).toBe(rows.length * D);
    rows.forEach((r, j) => expect(prompt.visualEmbeds[j * D]).toBe(plain.visualEmbeds[r * D]));
    const out = await model.generate({ messages: msgs(0.5), temperature: 0, maxNewTokens: 4 });
    expect(out.promptTokens).toBe(expectedIds.length);
    expect(out.tokens).toHaveLength(4);
  });

  it("rate 0 is the unpruned path bit for bit", async () => {
    const plain = await model.encodeVisuals(await model.prepare(msgs()));
    const zero = await model.encodeVisuals(await model.prepare(msgs(0)));
    expect(zero.selection).toBeUndefined();
    expect(zero.inputIds).toEqual(plain.inputIds);
    expect(Buffer.from(zero.visualEmbeds.buffer).equals(Buffer.from(plain.visualEmbeds.buffer))).toBe(true);
  });
});

describe("EVS: families that choose their video tokens themselves refuse it", () => {
  for (const [fixture, name] of [
    ["test/fixtures/internvl_flash/internvl_flash-tiny", "InternVLFlash"],
    ["test/fixtures/video_llama_3/video_llama_3-tiny", "VideoLlama3"],
  ] as const) {
    it(`${name}: prune > 0 is refused, prune 0 is accepted`, async () => {
      const preparer = await RequestPreparer.load(await materializeTinyCheckpoint(path.join(ROOT, fixture)));
      const FIX = path.join(ROOT, "test/fixtures/evs");
      const frames = golden.families["qwen2-vl"].frames.map((p) => path.join(FIX, p));
      const msgs = (prune: number): ChatRequestMessage[] => [{ role: "user", content: [{ type: "video", video: frames, fps: 2, prune }, { type: "text", text: "?" }] }];
      await expect(preparer.plan(msgs(0.5))).rejects.toThrow(/EVS token pruning \(prune 0\.5\) is not available for .*checkpoints/);
      await expect(preparer.plan(msgs(0))).resolves.toBeDefined();
    });
  }
});

/**
 * Qwen3.5 (the Qwen3-VL processor with the transformers-5 layout: an outer vision_start/end around the timestamped
 * frame blocks; no 4.57 reference to record against): the same rule on its unpruned rows, and the compacted prompt
 * is the planned one without the dropped pads, every other token (timestamps included) at its planned position.
 */
describe("EVS: Qwen3.5 (keep-coordinates, 5.x layout)", () => {
  const fam = golden.families["qwen3-vl"];
  let model: VideoModel;
  beforeAll(async () => {
    model = await VideoModel.load(await materializeTinyCheckpoint(path.join(ROOT, "test/fixtures/qwen3_5/qwen3_5-tiny")), { cacheDir: CACHE, threads: 1 });
  });

  it("rate 0.75: vLLM's mask, timestamps kept on their frames, positions kept, generation continues where the unpruned prompt would", async () => {
    const plain = await model.encodeVisuals(await model.prepare(messages(fam, 32 * 32)));
    const prepared = await model.prepare(messages(fam, 32 * 32, 0.75));
    const [t, h, w] = prepared.visuals[0].grid;
    const perFrame = (h * w) / 4;
    const D = model.config.text.hiddenSize;
    const mask = evsRetentionMask(plain.visualEmbeds, t, perFrame, D, 0.75);
    const prompt = await model.encodeVisuals(prepared);
    const S0 = plain.inputIds.length;
    const keepTok: number[] = [];
    let k = 0;
    plain.inputIds.forEach((id, i) => {
      if (id !== model.config.videoTokenId || mask[k++] === 1) keepTok.push(i);
    });
    expect(prompt.inputIds).toEqual(keepTok.map((i) => plain.inputIds[i]));
    const S = keepTok.length;
    for (let a = 0; a < 3; a++) expect(Array.from(prompt.positionIds.subarray(a * S, (a + 1) * S))).toEqual(keepTok.map((i) => plain.positionIds[a * S0 + i]));
    expect(S + prompt.ropeDelta).toBe(S0 + plain.ropeDelta);
    expect(prompt.selection?.keptTokens).toBe(Math.max(perFrame, Math.trunc(t * perFrame * 0.25)));
    // The timestamps text is all there: the non-pad tokens are the planned ones.
    expect(prompt.inputIds.filter((id) => id !== model.config.videoTokenId)).toEqual(plain.inputIds.filter((id) => id !== model.config.videoTokenId));
    const out = await model.generate({ messages: messages(fam, 32 * 32, 0.75), temperature: 0, maxNewTokens: 4 });
    expect(out.promptTokens).toBe(S);
  });
});
