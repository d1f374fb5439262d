/**
 * Qwen2-VL end to end against the reference (transformers 4.57.6, float32, eager attention): prompt ids, 3-D
 * position ids, pixel values, logits at several positions, greedy tokens, and cached decode vs a full pass.
 * Goldens: test/fixtures/qwen2-vl/<checkpoint>/golden.json, recorded by tools/oracle/record_qwen2_vl.py.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { VideoModel } from "../src/engine/model.js";
import type { ChatRequestMessage, ContentPart } from "../src/engine/request.js";
import { materializeTinyCheckpoint, repoRoot, testCacheDir } from "../src/testing/tiny-checkpoint.js";
import { checkGreedyDecoding, checkLogitRecords, pixelValuesOf, sumStats, type LogitRecord } from "./golden-helpers.js";

const FIXTURES = path.join(repoRoot(), "test/fixtures/qwen2-vl");
const CACHE = testCacheDir();

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
          const all = pixelValuesOf(prepared, kind);
          if (!ref) {
            expect(all).toHaveLength(0);
            continue;
          }
          expect(all.length).toBe(ref.shape[0] * ref.shape[1]);
          const { sum, abs } = sumStats(all);
          expect(Math.abs(sum - ref.sum)).toBeLessThan(1e-6 * ref.abs_sum + 1e-3);
          expect(Math.abs(abs - ref.abs_sum)).toBeLessThan(1e-6 * ref.abs_sum + 1e-3);
          ref.indices.forEach((idx, j) => expect(all[idx]).toBeCloseTo(ref.values[j], 5));
        }

        // Logits of a full forward pass at several positions.
        const prompt = await model.encodeVisuals(prepared);
        await checkLogitRecords(model, prompt, c.logit_ids, c.logits);

        await checkGreedyDecoding(model, prompt, c.greedy, c.logit_ids);
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
