/**
 * Qwen3.5 (model_type `qwen3_5`) and Qwen3.5-MoE / Qwen3.6 (`qwen3_5_moe`, fused and per-expert expert tensors) end
 * to end through VideoModel on the tiny fixtures against transformers 5.18 (test/fixtures/qwen3_5/ and qwen3_5_moe/ golden.json files,
 * recorded by tools/oracle/record_qwen3_5.py and record_qwen3_5_moe.py, float32, eager): the
 * `text` case's prompt ids and positions, logits at the recorded positions, 12 greedy tokens with the decoder state
 * (conv + recurrent state of the Gated DeltaNet layers, KV of the attention layer) after chunked prefill of several
 * chunk sizes, a forked state, and the last step against one full pass; generate() gives the same tokens. The `image`,
 * `video` (6 frames, even) and `video-odd` (5 frames, padded to 6) cases: the 5.x prompt layout (an outer
 * vision_start/end around the timestamped frame blocks), 3-D positions, pixel values, vision features (Qwen3-VL's
 * tower without DeepStack), logits and greedy tokens with chunked prefill; and time sensitivity (reversed frames, another
 * fps).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { VideoModel } from "../src/engine/model.js";
import type { ChatRequestMessage, ContentPart } from "../src/engine/request.js";
import { materializeTinyCheckpoint, repoRoot, testCacheDir } from "../src/testing/tiny-checkpoint.js";
import { checkGreedyDecoding, checkLogitRecords, concatFloat32, fullForward, pixelValuesOf, type GreedyGolden, type LogitRecord, checkSummary, type Summary, maxAbsDiff } from "./golden-helpers.js";

// Qwen3.5-MoE / Qwen3.6 (qwen3_5_moe; tools/oracle/record_qwen3_5_moe.py, transformers 5.18) is the same model with a
// sparse mixture-of-experts MLP: the same checks on its fixture, with fused and with per-expert expert tensors.
const FIXTURES = ["qwen3_5/qwen3_5-tiny", "qwen3_5_moe/qwen3_5_moe-tiny", "qwen3_5_moe/qwen3_5_moe-tiny-per-expert"].map((f) => path.join(repoRoot(), "test/fixtures", f));

interface GoldenCase {
  messages: { role: string; content: { type: string; text?: string; image?: string; video?: string[]; sample_fps?: number }[] }[];
  input_ids: number[];
  expanded_prompt: string;
  position_ids: number[][];
  rope_deltas: number;
  outer_vision_wrap?: boolean;
  video_timestamps?: { fps: number; seconds: number[]; text: string[] }[];
  pixel_values?: Summary | null;
  pixel_values_videos?: Summary | null;
  image_embeds?: Summary;
  video_embeds?: Summary;
  logit_ids: number[];
  logits: LogitRecord[];
  greedy: GreedyGolden;
}

/** The recorded messages with media paths resolved; videos are lists of frames at their sample fps. */
function toMessagesIn(fixture: string, gc: GoldenCase, transform: (frames: string[]) => string[] = (f) => f, fps?: number): ChatRequestMessage[] {
  const media = (p: string) => path.join(path.dirname(fixture), p);
  return gc.messages.map((m) => ({
    role: m.role as ChatRequestMessage["role"],
    content: m.content.map((part): ContentPart => {
      if (part.type === "image") return { type: "image", image: media(part.image!) };
      // The reference ran the processor on the frames as they are (multiples of 32): the per-frame lower bound is
      // lowered so that qwen-vl-utils does not upscale them to its video minimum (as test/qwen3-vl-golden.test.ts).
      if (part.type === "video") return { type: "video", video: transform(part.video!.map(media)), fps: fps ?? part.sample_fps, minPixels: 32 * 32 };
      return { type: "text", text: part.text! };
    }),
  }));
}


for (const FIXTURE of FIXTURES) describe(`Qwen3.5 golden through the engine: ${path.basename(FIXTURE)}`, () => {
  const golden = JSON.parse(fs.readFileSync(path.join(FIXTURE, "golden.json"), "utf8")) as { cases: Record<string, GoldenCase> };
  const c = golden.cases.text;
  const toMessages = (gc: GoldenCase, transform?: (frames: string[]) => string[], fps?: number) => toMessagesIn(FIXTURE, gc, transform, fps);
  const messages = () => toMessages(c);
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
    console.log(`${path.basename(FIXTURE)} text: max |Δlogit| ${worst.toExponential(2)}`);
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

  for (const name of ["image", "video", "video-odd"]) {
    const gc = golden.cases[name];
    it(`${name}: 5.x prompt layout, positions, pixels, vision features, logits, greedy tokens with chunked prefill`, async () => {
      const prepared = await model.prepare(toMessages(gc));
      expect(model.tokenizer.decode(prepared.inputIds, { skipSpecialTokens: false })).toBe(gc.expanded_prompt);
      expect(prepared.inputIds).toEqual(gc.input_ids);
      if (name !== "image") {
        expect(gc.outer_vision_wrap).toBe(true);
        expect(gc.expanded_prompt).toMatch(/<\|vision_start\|><\d+\.\d seconds><\|vision_start\|>/); // the outer pair
        for (const t of gc.video_timestamps![0].text) expect(gc.expanded_prompt).toContain(t);
      }
      const S = gc.input_ids.length;
      for (let a = 0; a < 3; a++) expect(Array.from(prepared.positionIds.subarray(a * S, (a + 1) * S))).toEqual(gc.position_ids[a]);
      expect(prepared.ropeDelta).toBe(gc.rope_deltas);

      const kind = name === "image" ? "image" : "video";
      const pixelsRef = kind === "image" ? gc.pixel_values! : gc.pixel_values_videos!;
      checkSummary(pixelValuesOf(prepared, kind), pixelsRef, 1e-6);
      const outs = await Promise.all(prepared.visuals.map((v) => model.vision.encode(v.batch)));
      expect(outs.every((o) => o.deepstackLevels === 0)).toBe(true); // no DeepStack in Qwen3.5's tower
      checkSummary(concatFloat32(outs.map((o) => o.embeds)), (kind === "image" ? gc.image_embeds : gc.video_embeds)!, 1e-5);

      const prompt = await model.encodeVisuals(prepared);
      const worst = await checkLogitRecords(model, prompt, gc.logit_ids, gc.logits);
      console.log(`${path.basename(FIXTURE)} ${name}: max |Δlogit| ${worst.toExponential(2)}`);
      // Chunks of 7: visual rows straddle prefill calls, with the recurrent and conv state carried between them.
      await checkGreedyDecoding(model, prompt, gc.greedy, gc.logit_ids, 7);
    });
  }

  it("reversing the frames changes the output (time is not ignored)", async () => {
    const v = golden.cases.video;
    const forward = await model.prepare(toMessages(v));
    const reversed = await model.prepare(toMessages(v, (f) => [...f].reverse()));
    expect(reversed.inputIds).toEqual(forward.inputIds); // same prompt: only the pixels moved in time
    const a = await fullForward(model, await model.encodeVisuals(forward), [forward.inputIds.length - 1]);
    const b = await fullForward(model, await model.encodeVisuals(reversed), [reversed.inputIds.length - 1]);
    expect(maxAbsDiff(a, b)).toBeGreaterThan(1e-2);
  });

  it("another fps changes the timestamp text, and with it the output", async () => {
    const v = golden.cases.video;
    const at2 = await model.prepare(toMessages(v));
    const at4 = await model.prepare(toMessages(v, undefined, 4));
    const text2 = model.tokenizer.decode(at2.inputIds, { skipSpecialTokens: false });
    const text4 = model.tokenizer.decode(at4.inputIds, { skipSpecialTokens: false });
    for (const t of ["<0.1 seconds>", "<0.6 seconds>", "<1.1 seconds>"]) expect(text4).toContain(t);
    expect(text4.replace(/<\d+\.\d seconds>/g, "<T>")).toBe(text2.replace(/<\d+\.\d seconds>/g, "<T>"));
    const a = await fullForward(model, await model.encodeVisuals(at2), [at2.inputIds.length - 1]);
    const b = await fullForward(model, await model.encodeVisuals(at4), [at4.inputIds.length - 1]);
    expect(maxAbsDiff(a, b)).toBeGreaterThan(1e-3);
  });
});
