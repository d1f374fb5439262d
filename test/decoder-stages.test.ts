/**
 * Decoder stages (src/engine/decoder-stages.ts): the decoder split into one onnxruntime session per layer gives the
 * single-session decoder's logits and greedy tokens, with chunked prefill, on the tiny fixtures — dense and MoE,
 * Gated DeltaNet + attention (Qwen3.5), DeepStack features added in the first stages and not the last (Qwen3-VL), a
 * tied head reading the embedding table the first stage claimed (Qwen2-VL tied). Plus the stage plans of the real
 * MoE shapes, and the WeightMap rule the tied head relies on.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WeightMap } from "../src/checkpoint/weight-map.js";
import { planDecoderStages, stagesByCost } from "../src/engine/decoder-stages.js";
import { prefill, type PreparedPrompt } from "../src/engine/generate.js";
import { VideoModel } from "../src/engine/model.js";
import type { ChatRequestMessage, ContentPart } from "../src/engine/request.js";
import { qwen3_5Moe } from "../src/families/qwen3-5/moe-family.js";
import { qwen3VLMoe } from "../src/families/qwen3-vl-moe/family.js";
import { qwen3VL } from "../src/families/qwen3-vl/family.js";
import { materializeTinyCheckpoint, repoRoot, testCacheDir } from "../src/testing/tiny-checkpoint.js";
import { argmax, fullForward } from "./golden-helpers.js";

interface GoldenMessage {
  role: string;
  content: { type: string; text?: string; image?: string }[];
}

function messagesOf(fixture: string, name: string): ChatRequestMessage[] {
  const golden = JSON.parse(fs.readFileSync(path.join(fixture, "golden.json"), "utf8")) as { cases: Record<string, { messages: GoldenMessage[] }> };
  return golden.cases[name].messages.map((m) => ({
    role: m.role as ChatRequestMessage["role"],
    content: m.content.map((p): ContentPart => (p.type === "image" ? { type: "image", image: path.join(path.dirname(fixture), p.image!) } : { type: "text", text: p.text! })),
  }));
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

/** Greedy decoding: prefill in chunks of `chunk`, then one token per call; the step logits and tokens. */
async function greedy(model: VideoModel, prompt: PreparedPrompt, chunk: number, steps: number): Promise<{ tokens: number[]; rows: Float32Array[] }> {
  const S = prompt.inputIds.length;
  const state = model.decoder.createState(S + steps);
  let row = await prefill(model.decoder, prompt, state, chunk);
  const tokens: number[] = [];
  const rows: Float32Array[] = [];
  for (let i = 0; i < steps; i++) {
    rows.push(row);
    tokens.push(argmax(row));
    if (i === steps - 1) break;
    const pos = state.nextPosition();
    row = await model.decoder.forward({ inputIds: [tokens[i]], positionIds: [pos, pos, pos], logitsIndices: [0] }, state);
  }
  return { tokens, rows };
}

const CASES = [
  { fixture: "qwen3_5/qwen3_5-tiny", deepstack: 0 },
  { fixture: "qwen3_5_moe/qwen3_5_moe-tiny", deepstack: 0 },
  { fixture: "qwen3-vl/qwen3-vl-tiny", deepstack: 2 },
  { fixture: "qwen3_vl_moe/qwen3_vl_moe-tiny", deepstack: 2 },
  { fixture: "qwen2-vl/qwen2-vl-tiny-tied", deepstack: 0 },
];

for (const { fixture: name, deepstack } of CASES) {
  describe(`decoder stages, one layer each: ${path.basename(name)}`, () => {
    const fixture = path.join(repoRoot(), "test/fixtures", name);
    let single: VideoModel;
    let staged: VideoModel;
    beforeAll(async () => {
      const dir = await materializeTinyCheckpoint(fixture);
      const config = JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8")) as { text_config?: { num_hidden_layers: number }; num_hidden_layers?: number };
      const L = config.text_config?.num_hidden_layers ?? config.num_hidden_layers!;
      // All layers in one stage: the single decoder.onnx (the family's plan for these tiny fixtures, whatever the environment says).
      single = await VideoModel.load(dir, { cacheDir: testCacheDir(), threads: 1, decoderLayersPerStage: L });
      staged = await VideoModel.load(dir, { cacheDir: testCacheDir(), threads: 1, decoderLayersPerStage: 1 });
    });
    afterAll(async () => {
      await Promise.all([single?.dispose(), staged?.dispose()]);
    });

    it("one session per layer, DeepStack levels seen through the stages that take them", () => {
      expect(single.decoder.stageCount).toBe(1);
      expect(staged.decoder.stageCount).toBe(single.config.text.numLayers);
      expect(staged.decoder.deepstackLevels).toBe(deepstack);
      expect(single.decoder.deepstackLevels).toBe(deepstack);
    });

    for (const kase of ["text", "image"]) {
      it(`${kase}: the same logits at every position and the same greedy tokens with chunked prefill`, async () => {
        const prepared = await single.prepare(messagesOf(fixture, kase));
        const prompt = await single.encodeVisuals(prepared);
        const S = prompt.inputIds.length;
        const all = Array.from({ length: S }, (_, i) => i);
        const d = maxDiff(await fullForward(single, prompt, all), await fullForward(staged, prompt, all));
        expect(d).toBeLessThanOrEqual(1e-5);
        let worst = d;
        for (const chunk of [S, 3]) {
          const a = await greedy(single, prompt, chunk, 6);
          const b = await greedy(staged, prompt, chunk, 6);
          expect(b.tokens).toEqual(a.tokens);
          a.rows.forEach((row, i) => (worst = Math.max(worst, maxDiff(row, b.rows[i]))));
        }
        expect(worst).toBeLessThanOrEqual(1e-5);
        console.log(`${path.basename(name)} ${kase}: staged vs single max |Δlogit| ${worst.toExponential(2)}`);
      });
    }
  });
}

describe("stage plans", () => {
  it("Qwen3.5-35B-A3B (40 × 256 experts): 40 stages of 1 layer; Qwen3-VL-30B-A3B (48 × 128): 24 of 2; dense: one", () => {
    // Only the fields the plans read (configs cast: `never` fits any family's config type).
    const a = planDecoderStages(qwen3_5Moe, { text: { numLayers: 40 }, moe: { numExperts: 256 } } as never);
    expect(a.map((s) => s.to - s.from)).toEqual(Array(40).fill(1));
    const b = planDecoderStages(qwen3VLMoe, { text: { numLayers: 48 }, moe: { numExperts: 128, decoderSparseStep: 1, mlpOnlyLayers: [] } } as never);
    expect(b.map((s) => s.to - s.from)).toEqual(Array(24).fill(2));
    expect(planDecoderStages(qwen3VL, { text: { numLayers: 36 } } as never)).toEqual([{ from: 0, to: 36, first: true, last: true }]);
    expect(planDecoderStages(qwen3VL, { text: { numLayers: 5 } } as never, 2).map((s) => [s.from, s.to, s.first, s.last])).toEqual([
      [0, 2, true, false],
      [2, 4, false, false],
      [4, 5, false, true],
    ]);
  });
  it("stagesByCost: contiguous, within budget, a layer over budget alone", () => {
    expect(stagesByCost([0, 300, 300, 0, 600, 10], 512).map((s) => [s.from, s.to])).toEqual([
      [0, 2],
      [2, 4],
      [4, 5],
      [5, 6],
    ]);
  });
  it("WeightMap.readClaimed reads a tensor again only after its one take", () => {
    const w = new WeightMap(new Map(), "ckpt");
    expect(() => w.readClaimed("model.embed_tokens.weight", [4, 2])).toThrow(/before it was claimed/);
  });
});
