/**
 * Qwen3-VL end to end against the reference (transformers 4.57.6, float32, eager attention): prompt ids with the
 * per-frame-pair timestamp text, 3-D position ids, pixel values, position-embedding taps, vision + DeepStack features,
 * logits at several positions, greedy tokens, cached decode vs a full pass; time sensitivity (reversed frames, another
 * fps); and the Thinking checkpoint's `<think>` handling with the thinking budget (forced "\n</think>\n\n").
 * Goldens: test/fixtures/qwen3-vl/<checkpoint>/golden.json, recorded by tools/oracle/record_qwen3_vl.py.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { VideoModel } from "../src/engine/model.js";
import type { ChatRequestMessage, ContentPart } from "../src/engine/request.js";
import { linspaceF32 } from "../src/families/qwen3-vl/pos-embed.js";
import { materializeTinyCheckpoint, qwen3VlWeightSpec, readWeightSpec, repoRoot, type Qwen3VlShapeConfig, testCacheDir } from "../src/testing/tiny-checkpoint.js";
import { checkGreedyDecoding, checkLogitRecords, concatFloat32, fullForward, type LogitRecord, checkSummary, type Summary, maxAbsDiff } from "./golden-helpers.js";

const FIXTURES = path.join(repoRoot(), "test/fixtures/qwen3-vl");
const CACHE = testCacheDir();

interface GoldenCase {
  messages: { role: string; content: { type: string; text?: string; image?: string; video?: string[]; sample_fps?: number }[] }[];
  input_ids: number[];
  expanded_prompt: string;
  position_ids: number[][];
  rope_deltas: number;
  video_timestamps: { fps: number; seconds: number[]; text: string[] }[];
  pos_embed_taps: { grid: number[]; h_linspace: number[]; w_linspace: number[] }[];
  pixel_values: Summary | null;
  pixel_values_videos: Summary | null;
  image_embeds?: Summary;
  video_embeds?: Summary;
  image_deepstack?: Summary[];
  video_deepstack?: Summary[];
  logit_ids: number[];
  logits: LogitRecord[];
  greedy: { new_tokens: number[]; steps: { step: number; max_abs: number; at_ids: number[] }[]; full_forward_last: { max_abs: number; top20: [number, number][] } };
  forced_think?: { budget: number; forced_ids: number[]; tokens: number[]; text: string; reasoning: string; answer: string };
}
type Golden = { cases: Record<string, GoldenCase> };

/** Largest |ours − reference| / tolerance seen per checkpoint, for the report. */
const worstRatio: Record<string, { delta: number; maxAbs: number }> = {};

function toMessagesIn(c: GoldenCase, fixtures: string): ChatRequestMessage[] {
  const media = (p: string) => path.join(fixtures, p);
  return c.messages.map((m) => ({
    role: m.role as ChatRequestMessage["role"],
    content: m.content.map((part): ContentPart => {
      if (part.type === "image") return { type: "image", image: media(part.image!) };
      // A list of frames at its sample fps (qwen-vl-utils `sample_fps`). The reference ran the processor on the frames
      // as they are (multiples of 32), so the per-frame lower bound is lowered to keep qwen-vl-utils from upscaling
      // them to the video minimum (128·32²).
      if (part.type === "video") return { type: "video", video: part.video!.map(media), fps: part.sample_fps, minPixels: 32 * 32 };
      return { type: "text", text: part.text! };
    }),
  }));
}





// Qwen3-VL-MoE (transformers 4.57.6 qwen3_vl_moe; tools/oracle/record_qwen3_vl_moe.py) is Qwen3-VL with a sparse
// mixture-of-experts feed-forward block: the same checks, its own fixture folder.
const MOE_FIXTURES = path.join(repoRoot(), "test/fixtures/qwen3_vl_moe");
for (const [fixtures, checkpoint] of [[FIXTURES, "qwen3-vl-tiny"], [FIXTURES, "qwen3-vl-tiny-thinking"], [MOE_FIXTURES, "qwen3_vl_moe-tiny"]] as const) {
  describe(`Qwen3-VL golden: ${checkpoint}`, () => {
    const fixture = path.join(fixtures, checkpoint);
    const toMessages = (c: GoldenCase) => toMessagesIn(c, fixtures);
    const golden = JSON.parse(fs.readFileSync(path.join(fixture, "golden.json"), "utf8")) as Golden;
    let model: VideoModel;

    beforeAll(async () => {
      const dir = await materializeTinyCheckpoint(fixture);
      model = await VideoModel.load(dir, { cacheDir: CACHE, threads: 1 });
    });

    /** Records the largest logit difference per checkpoint, for the report. */
    const note = (delta: number, maxAbs: number) => {
      const w = (worstRatio[checkpoint] ??= { delta: 0, maxAbs: 0 });
      if (delta > w.delta) Object.assign(w, { delta, maxAbs });
    };

    for (const [name, c] of Object.entries(golden.cases)) {
      it(`${name}: prompt ids, positions, pixels, features, logits, greedy tokens, cached decode`, async () => {
        const prepared = await model.prepare(toMessages(c));
        expect(model.tokenizer.decode(prepared.inputIds, { skipSpecialTokens: false })).toBe(c.expanded_prompt);
        expect(prepared.inputIds).toEqual(c.input_ids);
        for (const ts of c.video_timestamps) for (const text of ts.text) expect(c.expanded_prompt).toContain(text);
        const S = c.input_ids.length;
        for (let a = 0; a < 3; a++) expect(Array.from(prepared.positionIds.subarray(a * S, (a + 1) * S))).toEqual(c.position_ids[a]);
        expect(prepared.ropeDelta).toBe(c.rope_deltas);

        // Position-embedding bookkeeping: the float32 linspace behind the bilinear taps, bit for bit.
        const grids = [...prepared.visuals.filter((v) => v.kind === "image"), ...prepared.visuals.filter((v) => v.kind === "video")].map((v) => v.batch.grid);
        expect(grids).toEqual(c.pos_embed_taps.map((t) => t.grid));
        for (const t of c.pos_embed_taps) {
          expect(Array.from(linspaceF32(0, 11, t.grid[1]))).toEqual(t.h_linspace);
          expect(Array.from(linspaceF32(0, 11, t.grid[2]))).toEqual(t.w_linspace);
        }

        for (const kind of ["image", "video"] as const) {
          const ref = kind === "image" ? c.pixel_values : c.pixel_values_videos;
          const ours = prepared.visuals.filter((v) => v.kind === kind);
          if (!ref) {
            expect(ours).toHaveLength(0);
            continue;
          }
          const all = concatFloat32(ours.map((v) => v.batch.pixelValues));
          expect(all.length).toBe(ref.shape[0] * ref.shape[1]);
          checkSummary(all, ref, 1e-6);
          // Vision tower + DeepStack mergers (debug aid: these fail before the logits do).
          const outs = await Promise.all(ours.map((v) => model.vision.encode(v.batch)));
          checkSummary(concatFloat32(outs.map((o) => o.embeds)), (kind === "image" ? c.image_embeds : c.video_embeds)!, 1e-5);
          const dsRef = (kind === "image" ? c.image_deepstack : c.video_deepstack)!;
          dsRef.forEach((ref, level) => {
            const perVisual = outs.map((o) => {
              const rows = o.embeds.length;
              return o.deepstack!.subarray(level * rows, (level + 1) * rows);
            });
            checkSummary(concatFloat32(perVisual), ref, 1e-5);
          });
        }

        const prompt = await model.encodeVisuals(prepared);
        note(await checkLogitRecords(model, prompt, c.logit_ids, c.logits), Math.max(...c.logits.map((l) => l.max_abs)));

        // Greedy decoding with the KV cache; prefill in chunks of 7 so visual rows (and DeepStack rows) straddle chunks.
        note(await checkGreedyDecoding(model, prompt, c.greedy, c.logit_ids), c.greedy.full_forward_last.max_abs);
      });
    }

    if (checkpoint === "qwen3-vl-tiny") {
      it("reversing the frames changes the output (time is not ignored)", async () => {
        const forward = await model.prepare(toMessages(golden.cases.video));
        const reversed = await model.prepare(toMessages(golden.cases["video-reversed"]));
        expect(reversed.inputIds).toEqual(forward.inputIds); // same prompt: only the pixels moved in time
        const a = await fullForward(model, await model.encodeVisuals(forward), [forward.inputIds.length - 1]);
        const b = await fullForward(model, await model.encodeVisuals(reversed), [reversed.inputIds.length - 1]);
        expect(maxAbsDiff(a, b)).toBeGreaterThan(1e-2);
        expect(golden.cases["video-reversed"].greedy.new_tokens).not.toEqual(golden.cases.video.greedy.new_tokens);
      });

      it("another fps changes the timestamp text, and only that", async () => {
        const at2 = await model.prepare(toMessages(golden.cases.video));
        const at4 = await model.prepare(toMessages(golden.cases["video-fps4"]));
        const text2 = model.tokenizer.decode(at2.inputIds, { skipSpecialTokens: false });
        const text4 = model.tokenizer.decode(at4.inputIds, { skipSpecialTokens: false });
        for (const t of ["<0.2 seconds>", "<1.2 seconds>", "<2.2 seconds>"]) expect(text2).toContain(t); // 0.25 → "0.2" (half to even)
        for (const t of ["<0.1 seconds>", "<0.6 seconds>", "<1.1 seconds>"]) expect(text4).toContain(t);
        expect(text4.replace(/<\d+\.\d seconds>/g, "<T>")).toBe(text2.replace(/<\d+\.\d seconds>/g, "<T>"));
        expect(at4.inputIds).not.toEqual(at2.inputIds);
      });

      it("generate() streams the same greedy tokens and text as decoding them (no thinking block)", async () => {
        const c = golden.cases.video;
        let streamed = "";
        const r = await model.generate({ messages: toMessages(c), temperature: 0, maxNewTokens: c.greedy.new_tokens.length, onToken: (e) => (streamed += e.answer ?? "") });
        expect(r.tokens).toEqual(c.greedy.new_tokens);
        expect(r.text).toBe(model.tokenizer.decode(c.greedy.new_tokens, { skipSpecialTokens: true }));
        expect(r.reasoning).toBeUndefined();
        expect(streamed).toBe(r.text);
      });
    } else if (checkpoint === "qwen3-vl-tiny-thinking") {
      it("thinking budget: the block is closed with forced tokens and separated from the answer, as the reference", async () => {
        const c = golden.cases.video;
        const f = c.forced_think!;
        expect(c.input_ids.slice(-2)).toEqual([151667, 198]); // "<think>\n" ends the prompt
        let reasoning = "";
        let answer = "";
        const r = await model.generate({
          messages: toMessages(c),
          temperature: 0,
          maxNewTokens: f.tokens.length,
          thinkingBudget: f.budget,
          onToken: (e) => {
            reasoning += e.reasoning ?? "";
            answer += e.answer ?? "";
          },
        });
        expect(r.tokens).toEqual(f.tokens);
        expect(r.tokens.slice(f.budget, f.budget + f.forced_ids.length)).toEqual(f.forced_ids);
        expect(r.reasoning).toBe(f.reasoning);
        expect(r.text).toBe(f.answer);
        expect(reasoning).toBe(f.reasoning);
        expect(answer).toBe(f.answer);
      });

      it("without a budget the whole output is reasoning while the block stays open", async () => {
        const c = golden.cases.video;
        const r = await model.generate({ messages: toMessages(c), temperature: 0, maxNewTokens: c.greedy.new_tokens.length });
        expect(r.tokens).toEqual(c.greedy.new_tokens);
        expect(r.text).toBe("");
        expect(r.reasoning).toBe(model.tokenizer.decode(c.greedy.new_tokens, { skipSpecialTokens: true }).replace(/^\n+/, "").replace(/\n+$/, ""));
      });
    }
  });
}

describe("Qwen3-VL tiny checkpoint spec", () => {
  it("weights.json equals qwen3VlWeightSpec(config.json, seed) (TS port of the Python spec builder)", () => {
    for (const name of ["qwen3-vl-tiny", "qwen3-vl-tiny-thinking"]) {
      const dir = path.join(FIXTURES, name);
      const spec = readWeightSpec(dir);
      const config = JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8")) as Qwen3VlShapeConfig;
      expect(qwen3VlWeightSpec(config, spec.seed)).toEqual(spec);
    }
  });
});

describe("Qwen3-VL measured deltas", () => {
  it("reports the largest logit deltas", () => {
    for (const [k, v] of Object.entries(worstRatio)) console.log(`${k}: max |Δlogit| ${v.delta.toExponential(2)} at max |logit| ${v.maxAbs.toFixed(2)}`);
    expect(Object.keys(worstRatio).length).toBeGreaterThan(0);
  });
});
