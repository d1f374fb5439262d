/**
 * Qwen2-VL end to end against the reference (transformers 4.57.6, float32, eager attention): prompt ids, 3-D
 * position ids, pixel values, logits at several positions, greedy tokens, and cached decode vs a full pass.
 * Goldens: test/fixtures/qwen2-vl/<checkpoint>/golden.json, recorded by tools/oracle/record_qwen2_vl.py.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { VideoModel } from "../src/engine/model.js";
import { prefill } from "../src/engine/generate.js";
import type { ChatRequestMessage, ContentPart } from "../src/engine/request.js";
import { materializeTinyCheckpoint, repoRoot, testCacheDir } from "../src/testing/tiny-checkpoint.js";

const FIXTURES = path.join(repoRoot(), "test/fixtures/qwen2-vl");
const CACHE = testCacheDir();

interface LogitRecord {
  position: number;
  max_abs: number;
  top20: [number, number][];
  at_ids: number[];
}
interface GoldenCase {
  messages: { role: string; content: { type: string; text?: string; image?: string; video?: string[] }[] }[];
  input_ids: number[];
  position_ids: number[][];
  rope_deltas: number;
  pixel_values: { sum: number; abs_sum: number; indices: number[]; values: number[]; shape: number[] } | null;
  pixel_values_videos: GoldenCase["pixel_values"];
  logit_ids: number[];
  logits: LogitRecord[];
  greedy: { new_tokens: number[]; steps: { step: number; max_abs: number; top20: [number, number][]; at_ids: number[] }[]; full_forward_last: { max_abs: number; top20: [number, number][] } };
}

/** The DESIGN tolerance: fp32 logits within 1e-4 × max(1, max |logit|). */
const tolerance = (maxAbs: number) => 1e-4 * Math.max(1, maxAbs);

function toMessages(c: GoldenCase): ChatRequestMessage[] {
  const media = (p: string) => path.join(FIXTURES, p);
  return c.messages.map((m) => ({
    role: m.role as ChatRequestMessage["role"],
    content: m.content.map((part): ContentPart => {
      if (part.type === "image") return { type: "image", image: media(part.image!) };
      // Frames given as images: the golden ran the HF processor on them as-is (sizes are multiples of 28), so
      // the per-frame lower bound is lowered to keep qwen-vl-utils from upscaling them to the video minimum.
      if (part.type === "video") return { type: "video", video: part.video!.map(media), minPixels: 28 * 28 };
      return { type: "text", text: part.text! };
    }),
  }));
}

function checkRow(actual: Float32Array, ids: number[], expected: number[], maxAbs: number) {
  let worst = 0;
  ids.forEach((id, j) => (worst = Math.max(worst, Math.abs(actual[id] - expected[j]))));
  expect(worst).toBeLessThanOrEqual(tolerance(maxAbs));
  return worst;
}

function argmax(row: Float32Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

function sumStats(values: Float32Array) {
  let sum = 0;
  let abs = 0;
  for (const v of values) {
    sum += v;
    abs += Math.abs(v);
  }
  return { sum, abs };
}

for (const checkpoint of ["qwen2-vl-tiny", "qwen2-vl-tiny-tied"]) {
  describe(`Qwen2-VL golden: ${checkpoint}`, () => {
    const fixture = path.join(FIXTURES, checkpoint);
    const golden = JSON.parse(fs.readFileSync(path.join(fixture, "golden.json"), "utf8")) as { cases: Record<string, GoldenCase> };
    let model: VideoModel;

    beforeAll(async () => {
      const dir = await materializeTinyCheckpoint(fixture);
      model = await VideoModel.load(dir, { cacheDir: CACHE, threads: 1 });
    });

    for (const [name, c] of Object.entries(golden.cases)) {
      it(`${name}: prompt ids, positions, pixels, logits, greedy tokens, cached decode`, async () => {
        const prepared = await model.prepare(toMessages(c));
        expect(prepared.inputIds).toEqual(c.input_ids);
        const S = c.input_ids.length;
        for (let a = 0; a < 3; a++) expect(Array.from(prepared.positionIds.subarray(a * S, (a + 1) * S))).toEqual(c.position_ids[a]);
        expect(prepared.ropeDelta).toBe(c.rope_deltas);

        for (const kind of ["image", "video"] as const) {
          const ref = kind === "image" ? c.pixel_values : c.pixel_values_videos;
          const ours = prepared.visuals.filter((v) => v.kind === kind);
          if (!ref) {
            expect(ours).toHaveLength(0);
            continue;
          }
          const all = new Float32Array(ours.reduce((n, v) => n + v.batch.pixelValues.length, 0));
          let o = 0;
          for (const v of ours) {
            all.set(v.batch.pixelValues, o);
            o += v.batch.pixelValues.length;
          }
          expect(all.length).toBe(ref.shape[0] * ref.shape[1]);
          const { sum, abs } = sumStats(all);
          expect(Math.abs(sum - ref.sum)).toBeLessThan(1e-6 * ref.abs_sum + 1e-3);
          expect(Math.abs(abs - ref.abs_sum)).toBeLessThan(1e-6 * ref.abs_sum + 1e-3);
          ref.indices.forEach((idx, j) => expect(all[idx]).toBeCloseTo(ref.values[j], 5));
        }

        // Logits of a full forward pass at several positions.
        const prompt = await model.encodeVisuals(prepared);
        const V = model.config.text.vocabSize;
        const full = model.decoder.createCache(S);
        const positions = c.logits.map((l) => l.position);
        const logits = await model.decoder.forward(
          { inputIds: prompt.inputIds, positionIds: prompt.positionIds, visualEmbeds: prompt.visualEmbeds, visualPositions: prompt.visualPositions, logitsIndices: positions },
          full,
        );
        c.logits.forEach((rec, k) => {
          const row = logits.subarray(k * V, (k + 1) * V);
          checkRow(row, c.logit_ids, rec.at_ids, rec.max_abs);
          checkRow(row, rec.top20.map(([id]) => id), rec.top20.map(([, v]) => v), rec.max_abs);
        });

        // Greedy decoding with the KV cache (prefill in small chunks to exercise chunked prefill too).
        const steps = c.greedy.new_tokens.length;
        const cache = model.decoder.createCache(S + steps);
        let row = await prefill(model.decoder, prompt, cache, 7);
        const tokens: number[] = [];
        const stepRows: Float32Array[] = [];
        for (let i = 0; i < steps; i++) {
          stepRows.push(row);
          tokens.push(argmax(row));
          if (i === steps - 1) break;
          const pos = S + i + prompt.ropeDelta;
          row = await model.decoder.forward({ inputIds: [tokens[i]], positionIds: [pos, pos, pos], logitsIndices: [0] }, cache);
        }
        expect(tokens).toEqual(c.greedy.new_tokens);
        expect(new Set(tokens).size).toBeGreaterThanOrEqual(6); // a broken cache could not hide behind a repeated token
        for (const step of c.greedy.steps) checkRow(stepRows[step.step], c.logit_ids, step.at_ids, step.max_abs);

        // Cached decode equals a full pass over prompt + generated[:-1].
        const ids = [...prompt.inputIds, ...tokens.slice(0, -1)];
        const T = ids.length;
        const pos3 = new Int32Array(3 * T);
        for (let a = 0; a < 3; a++) {
          pos3.set(prompt.positionIds.subarray(a * S, (a + 1) * S), a * T);
          for (let i = S; i < T; i++) pos3[a * T + i] = i + prompt.ropeDelta;
        }
        const onePass = await model.decoder.forward(
          { inputIds: ids, positionIds: pos3, visualEmbeds: prompt.visualEmbeds, visualPositions: prompt.visualPositions, logitsIndices: [T - 1] },
          model.decoder.createCache(T),
        );
        const last = stepRows[steps - 1];
        let diff = 0;
        for (let i = 0; i < V; i++) diff = Math.max(diff, Math.abs(onePass[i] - last[i]));
        expect(diff).toBeLessThanOrEqual(tolerance(c.greedy.full_forward_last.max_abs));
        const ref = c.greedy.full_forward_last.top20;
        checkRow(onePass, ref.map(([id]) => id), ref.map(([, v]) => v), c.greedy.full_forward_last.max_abs);
      });
    }

    it("generate() streams the same greedy tokens and text as decoding them", async () => {
      const c = golden.cases.image;
      let streamed = "";
      const r = await model.generate({ messages: toMessages(c), temperature: 0, maxNewTokens: c.greedy.new_tokens.length, onToken: (e) => (streamed += e.text) });
      expect(r.tokens).toEqual(c.greedy.new_tokens);
      expect(r.text).toBe(model.tokenizer.decode(c.greedy.new_tokens, { skipSpecialTokens: true }));
      expect(streamed).toBe(r.text);
      expect(r.promptTokens).toBe(c.input_ids.length);
      expect(r.finishReason).toBe("length");
    });
  });
}
