/**
 * Qwen3.5 (model_type `qwen3_5`) end to end through VideoModel on the tiny dense fixture against transformers 5.18
 * (test/fixtures/qwen3_5/qwen3_5-tiny/golden.json, recorded by tools/oracle/record_qwen3_5.py, float32, eager): the
 * `text` case's prompt ids and positions, logits at the recorded positions, 12 greedy tokens with the decoder state
 * (conv + recurrent state of the Gated DeltaNet layers, KV of the attention layer) after chunked prefill of several
 * chunk sizes, a forked state, and the last step against one full pass; generate() gives the same tokens. Image and
 * video requests fail with one clear error (not supported yet).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { VideoModel } from "../src/engine/model.js";
import type { ChatRequestMessage } from "../src/engine/request.js";
import { QWEN3_5_VISUAL_UNSUPPORTED } from "../src/families/qwen3-5/family.js";
import { materializeTinyCheckpoint, repoRoot, testCacheDir } from "../src/testing/tiny-checkpoint.js";
import { checkGreedyDecoding, checkLogitRecords, type GreedyGolden, type LogitRecord } from "./golden-helpers.js";

const FIXTURE = path.join(repoRoot(), "test/fixtures/qwen3_5/qwen3_5-tiny");

interface TextCase {
  messages: { role: string; content: { type: string; text?: string }[] }[];
  input_ids: number[];
  expanded_prompt: string;
  position_ids: number[][];
  rope_deltas: number;
  logit_ids: number[];
  logits: LogitRecord[];
  greedy: GreedyGolden;
}
const golden = JSON.parse(fs.readFileSync(path.join(FIXTURE, "golden.json"), "utf8")) as { cases: { text: TextCase } };
const c = golden.cases.text;
const messages = (): ChatRequestMessage[] => c.messages.map((m) => ({ role: m.role as ChatRequestMessage["role"], content: m.content.map((p) => ({ type: "text" as const, text: p.text! })) }));

describe("Qwen3.5 golden through the engine: qwen3_5-tiny", () => {
  let model: VideoModel;
  beforeAll(async () => {
    const dir = await materializeTinyCheckpoint(FIXTURE);
    model = await VideoModel.load(dir, { cacheDir: testCacheDir(), threads: 1 });
  });

  it("text: prompt ids, positions, logits", async () => {
    const prepared = await model.prepare(messages());
    expect(model.tokenizer.decode(prepared.inputIds, { skipSpecialTokens: false })).toBe(c.expanded_prompt);
    expect(prepared.inputIds).toEqual(c.input_ids);
    const S = c.input_ids.length;
    for (let a = 0; a < 3; a++) expect(Array.from(prepared.positionIds.subarray(a * S, (a + 1) * S))).toEqual(c.position_ids[a]);
    expect(prepared.ropeDelta).toBe(c.rope_deltas);
    const worst = await checkLogitRecords(model, await model.encodeVisuals(prepared), c.logit_ids, c.logits);
    console.log(`qwen3_5-tiny text: max |Δlogit| ${worst.toExponential(2)}`);
  });

  // Chunk 34 = the whole prompt in one call; 7 and 3 split it across several calls (the recurrent state and conv
  // state carried between them); 1 feeds it token by token.
  for (const chunk of [34, 7, 3, 1]) {
    it(`text: greedy tokens with the decoder state after prefill in chunks of ${chunk}, equal to one full pass`, async () => {
      const prompt = await model.encodeVisuals(await model.prepare(messages()));
      await checkGreedyDecoding(model, prompt, c.greedy, c.logit_ids, chunk);
    });
  }

  it("generate() gives the same greedy tokens", async () => {
    const r = await model.generate({ messages: messages(), temperature: 0, maxNewTokens: c.greedy.new_tokens.length });
    expect(r.tokens).toEqual(c.greedy.new_tokens);
  });

  it("image and video requests fail with one clear error", async () => {
    const img = { type: "image" as const, image: path.join(repoRoot(), "test/fixtures/qwen3-vl/media/image-a-h64-w96.png") };
    const vid = { type: "video" as const, video: [img.image, img.image], fps: 2 };
    for (const part of [img, vid]) {
      await expect(model.prepare([{ role: "user", content: [part, { type: "text", text: "What is this?" }] }])).rejects.toThrow(QWEN3_5_VISUAL_UNSUPPORTED);
    }
  });
});
