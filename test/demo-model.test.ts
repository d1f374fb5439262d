/**
 * The shipped demo model (models/videolm-demo) answers questions about held-out synthetic videos through
 * videolm's whole pipeline: FFmpeg encode → decode/sample (4 fps) → patches → vision encoder → M-RoPE decoder →
 * greedy decoding. Seeds ≥ 3 000 000 are never used in training (docs/demo-model.md). Expected answers come from
 * the scene descriptions (src/synth), not from the model.
 *
 * A fixed sample, chosen before the current checkpoint was trained and not by its answers: four scenes of each
 * kind (seeds 3 000 001–3 000 028, every question of each: 48 questions). The model is not perfect (held-out
 * 96 %, docs/demo-model.md "Status"), so the test gates what a broken stage would destroy rather than each answer:
 * overall accuracy ≥ 85 % (a wrong sampling, patch, position or cache step drops it far below), and every
 * question type ≥ 50 % (a stage that only time or motion questions depend on collapses its types to ~0–25 %).
 * Every answer must also end with the end-of-turn token.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VideoModel } from "../src/engine/model.js";
import { DEMO_MEDIA_OPTIONS, demoMessages, encodeScene, isCorrect, questionsFor, sceneFromSeed, ORIGINAL_QUESTION_TYPES, SCENE_KINDS, type QuestionType } from "../src/synth/index.js";
import { repoRoot, testCacheDir } from "../src/testing/tiny-checkpoint.js";

const MODEL = path.join(repoRoot(), "models/videolm-demo");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "videolm-demo-model-"));
let model: VideoModel;

beforeAll(async () => {
  model = await VideoModel.load(MODEL, { cacheDir: testCacheDir(), threads: 1 });
}, 60_000);
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const SAMPLE = SCENE_KINDS.flatMap((kind, k) => [0, 1, 2, 3].map((i) => ({ seed: 3_000_001 + k * 4 + i, kind })));

describe("demo model on held-out videos", () => {
  it("answers a fixed sample of 28 held-out videos (48 questions)", async () => {
    const results: { type: QuestionType; line: string; correct: boolean }[] = [];
    for (const { seed, kind } of SAMPLE) {
      const scene = sceneFromSeed(seed, kind);
      const file = path.join(tmp, `${seed}.mp4`);
      await encodeScene(scene, file);
      for (const question of questionsFor(scene)) {
        const out = await model.generate({ messages: demoMessages(file, question.question), media: DEMO_MEDIA_OPTIONS, temperature: 0, maxNewTokens: 16 });
        expect(out.finishReason, `seed ${seed}: "${question.question}" did not stop`).toBe("stop");
        const correct = isCorrect(question, out.text);
        results.push({ type: question.type, correct, line: `${correct ? "ok  " : "MISS"} ${seed} ${question.question} → ${out.text} (truth: ${question.answer})` });
      }
    }
    const report = results.map((r) => r.line).join("\n");
    const accuracy = (rs: typeof results) => rs.filter((r) => r.correct).length / rs.length;
    expect(results.length).toBe(48);
    expect(accuracy(results), `overall accuracy\n${report}`).toBeGreaterThanOrEqual(0.85);
    for (const type of ORIGINAL_QUESTION_TYPES) {
      const ofType = results.filter((r) => r.type === type);
      expect(ofType.length, `no ${type} question in the sample`).toBeGreaterThan(0);
      expect(accuracy(ofType), `${type} accuracy\n${report}`).toBeGreaterThanOrEqual(0.5);
    }
  }, 240_000);
});
