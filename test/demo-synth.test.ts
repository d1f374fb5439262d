/**
 * The synthetic video generator behind the demo model: deterministic scenes, answers that agree with the
 * rendered pixels, the encoded mp4's length and size, and the answer checker.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { probeVideo } from "../src/media/probe.js";
import { createHash } from "node:crypto";
import {
  allQuestionsFor,
  COLORS,
  DENSE_ANSWER_PATTERN,
  DENSE_QUESTION,
  encodeScene,
  eventsFor,
  formatSeconds,
  frameCount,
  GROUNDING_ANSWER_PATTERN,
  GROUNDING_TEMPLATE,
  isCorrect,
  parseEventLines,
  parseTimes,
  questionsFor,
  renderFrame,
  sceneFromSeed,
  SCENE_KINDS,
  type ColorName,
  type Scene,
  type Shape,
} from "../src/synth/index.js";
import { repoRoot } from "../src/testing/tiny-checkpoint.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "videolm-synth-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Whether any pixel of the frame has exactly this colour. */
function hasColor(frame: Buffer, rgb: readonly number[]): boolean {
  for (let i = 0; i < frame.length; i += 3) if (frame[i] === rgb[0] && frame[i + 1] === rgb[1] && frame[i + 2] === rgb[2]) return true;
  return false;
}

/** Centre of the pixels of one colour. */
function centroid(scene: Scene, frame: Buffer, rgb: readonly number[]): [number, number] {
  let sx = 0;
  let sy = 0;
  let n = 0;
  for (let i = 0; i < frame.length; i += 3) {
    if (frame[i] === rgb[0] && frame[i + 1] === rgb[1] && frame[i + 2] === rgb[2]) {
      const p = i / 3;
      sx += p % scene.width;
      sy += Math.floor(p / scene.width);
      n++;
    }
  }
  return [sx / n, sy / n];
}

describe("synthetic scenes", () => {
  it("are a pure function of the seed", () => {
    expect(sceneFromSeed(42)).toEqual(sceneFromSeed(42));
    expect(questionsFor(sceneFromSeed(42))).toEqual(questionsFor(sceneFromSeed(42)));
    expect(sceneFromSeed(42)).not.toEqual(sceneFromSeed(43));
  });

  it("put event times on the 0.5 s grid inside the clip, durations 2–8 s", () => {
    for (let seed = 1; seed <= 300; seed++) {
      const s = sceneFromSeed(seed);
      expect(s.duration).toBeGreaterThanOrEqual(2);
      expect(s.duration).toBeLessThanOrEqual(8);
      for (const q of questionsFor(s)) for (const t of q.times ?? []) {
        expect(t * 2).toBe(Math.round(t * 2));
        expect(t).toBeGreaterThanOrEqual(0.5);
        expect(t).toBeLessThanOrEqual(s.duration - 0.5);
      }
    }
  });

  it("'appear' answers match the first rendered frame that shows the object", () => {
    const s = sceneFromSeed(7, "appear");
    const q = questionsFor(s).find((x) => x.type === "appear")!;
    const rgb = COLORS[s.objects[0].color];
    const first = Array.from({ length: frameCount(s) }, (_, i) => i).find((i) => hasColor(renderFrame(s, i / s.fps), rgb))!;
    // the first frame at or after the answered time
    expect(first).toBe(Math.ceil(q.times![0] * s.fps - 1e-9));
    expect(q.answer).toBe(`at ${formatSeconds(q.times![0])} seconds`);
  });

  it("'direction' answers match the object's rendered motion", () => {
    for (let seed = 1; seed <= 12; seed++) {
      const s = sceneFromSeed(seed, "motion");
      const q = questionsFor(s).find((x) => x.type === "direction")!;
      const rgb = COLORS[s.objects[0].color];
      const [x0, y0] = centroid(s, renderFrame(s, 0), rgb);
      const [x1, y1] = centroid(s, renderFrame(s, s.duration - 1 / s.fps), rgb);
      const expected = Math.abs(x1 - x0) > Math.abs(y1 - y0) ? (x1 < x0 ? "left" : "right") : y1 < y0 ? "up" : "down";
      expect(q.answer).toBe(expected);
    }
  });

  it("cover every scene kind", () => {
    const kinds = new Set(Array.from({ length: 200 }, (_, i) => sceneFromSeed(i + 1).kind));
    expect([...kinds].sort()).toEqual([...SCENE_KINDS].sort());
  });

  it("encode to an H.264 mp4 of the scene's size, frame rate and length", async () => {
    const s = sceneFromSeed(3);
    const file = path.join(tmp, "s3.mp4");
    await encodeScene(s, file);
    const probe = await probeVideo(file);
    expect([probe.width, probe.height]).toEqual([s.width, s.height]);
    expect(probe.frameCount).toBe(frameCount(s));
    expect(probe.codec).toBe("h264");
    expect(probe.avgFps).toBeCloseTo(s.fps, 6);
  });
});

/** [first, last + 1/fps) of the frames that show this colour: the span in which it is visible, in seconds. */
function renderedSpan(scene: Scene, rgb: readonly number[]): [number, number] | undefined {
  const shown = Array.from({ length: frameCount(scene) }, (_, i) => hasColor(renderFrame(scene, i / scene.fps), rgb));
  const first = shown.indexOf(true);
  if (first < 0) return undefined;
  return [first / scene.fps, (shown.lastIndexOf(true) + 1) / scene.fps];
}

/** Seeds of each scene kind (forced), the same sample the demo-model test uses plus a few more. */
const EVENT_SAMPLE = SCENE_KINDS.flatMap((kind, k) => [0, 1, 2].map((i) => sceneFromSeed(3_000_001 + k * 4 + i, kind)));

describe("event questions", () => {
  it("leave every scene and original question of a seed as the generator made them before they existed", () => {
    // sha256 over JSON [scene, questionsFor(scene)] for seeds 1–1000, 3 000 001–3 000 028, 4 000 001 and the
    // demo-model test's forced-kind sample, recorded with src/synth as of commit 3a074c3 (before the event questions).
    const h = createHash("sha256");
    const seeds = [...Array.from({ length: 1000 }, (_, i) => i + 1), ...Array.from({ length: 28 }, (_, i) => 3_000_001 + i), 4_000_001];
    for (const seed of seeds) h.update(JSON.stringify([sceneFromSeed(seed), questionsFor(sceneFromSeed(seed))]));
    for (const [k, kind] of SCENE_KINDS.entries()) {
      for (let i = 0; i < 4; i++) {
        const scene = sceneFromSeed(3_000_001 + k * 4 + i, kind);
        h.update(JSON.stringify([scene, questionsFor(scene)]));
      }
    }
    expect(h.digest("hex")).toBe("70c2310f1f1d1926d6cd7e6b94c43a4ebefc5f6bb05be188239ff60b7d929bb7");
    for (let seed = 1; seed <= 200; seed++) {
      const scene = sceneFromSeed(seed);
      const all = allQuestionsFor(scene);
      expect(all.slice(0, questionsFor(scene).length)).toEqual(questionsFor(scene));
      expect(all.filter((q) => q.type === "dense").map((q) => q.question)).toEqual([DENSE_QUESTION]);
    }
  });

  it("are what the shipped checkpoint declares under videolm_events (the phrasing and answer formats it was trained on)", () => {
    const config = JSON.parse(fs.readFileSync(path.join(repoRoot(), "models/videolm-demo/video_preprocessor_config.json"), "utf8"));
    const declared = config.videolm_events;
    expect(declared.grounding).toBe(GROUNDING_TEMPLATE);
    expect(declared.dense).toBe(DENSE_QUESTION);
    expect(declared.groundingFormat).toEqual({ type: "regex", pattern: GROUNDING_ANSWER_PATTERN });
    expect(declared.denseFormat).toEqual({ type: "regex", pattern: DENSE_ANSWER_PATTERN });
    const ground = new RegExp(`^${declared.groundingFormat.pattern}$`, "u");
    const dense = new RegExp(`^${declared.denseFormat.pattern}$`, "u");
    for (let seed = 1; seed <= 100; seed++) {
      for (const q of allQuestionsFor(sceneFromSeed(seed))) {
        if (q.type === "ground" || q.type === "span") expect(q.answer).toMatch(ground);
        if (q.type === "dense") expect(q.answer).toMatch(dense);
      }
    }
    expect("from 1.0 to 2.0 seconds: the red circle appears\n").not.toMatch(dense);
    expect("at 1.0 seconds").not.toMatch(ground);
  });

  it("ground every object a scene names at the span its colour is rendered in", () => {
    for (const scene of EVENT_SAMPLE) {
      const grounding = allQuestionsFor(scene).filter((q) => q.type === "ground" || q.type === "span");
      expect(grounding.length, `${scene.kind} scene ${scene.seed} has no grounding question`).toBeGreaterThan(0);
      for (const q of grounding) {
        const [, color, shape] = /^when is the (\w+) (\w+) visible\?$/.exec(q.question)!;
        const objects = scene.objects.filter((o) => o.shape === (shape as Shape) && (o.color === color || o.colorChange?.to === color));
        expect(objects.length, q.question).toBeGreaterThan(0);
        // the colour is unique to the object it names (count scenes may repeat a colour: the object is then visible throughout anyway)
        const span = renderedSpan(scene, COLORS[color as ColorName])!;
        const [start, end] = q.times!;
        // rendered frames fall on multiples of 1/fps: the first one at or after the start, the last one before the end
        expect(Math.abs(span[0] - start), `${scene.kind} ${scene.seed} ${q.question} → ${q.answer}, rendered from ${span[0]}`).toBeLessThan(1 / scene.fps + 1e-9);
        expect(Math.abs(span[1] - end), `${scene.kind} ${scene.seed} ${q.question} → ${q.answer}, rendered until ${span[1]}`).toBeLessThan(1 / scene.fps + 1e-9);
        expect(q.answer).toMatch(new RegExp(`^${GROUNDING_ANSWER_PATTERN}$`, "u"));
      }
    }
  });

  it("list events whose spans and objects agree with the rendered frames, in a fixed order", () => {
    for (const scene of EVENT_SAMPLE) {
      const events = eventsFor(scene);
      const dense = allQuestionsFor(scene).find((q) => q.type === "dense")!;
      expect(dense.answer).toMatch(new RegExp(`^${DENSE_ANSWER_PATTERN}$`, "u"));
      expect(parseEventLines(dense.answer)).toEqual(events);
      expect(dense.times).toEqual(events.flatMap((e) => [e.start, e.end]));
      for (let i = 1; i < events.length; i++) expect(events[i].start).toBeGreaterThanOrEqual(events[i - 1].start);
      for (const e of events) {
        expect(e.start * 2).toBe(Math.round(e.start * 2));
        expect(e.end * 2).toBe(Math.round(e.end * 2));
        expect(e.start).toBeGreaterThanOrEqual(0);
        expect(e.end).toBeLessThanOrEqual(scene.duration);
        expect(e.end).toBeGreaterThan(e.start);
        // the colour it names is on screen at the middle of its span
        const color = /^the (\w+) /.exec(e.text)![1] as ColorName;
        const shownColor = / turns (\w+)$/.exec(e.text)?.[1] ?? color;
        expect(hasColor(renderFrame(scene, Math.floor(((e.start + e.end) / 2) * scene.fps) / scene.fps), COLORS[shownColor as ColorName]), `${scene.seed} ${e.text}`).toBe(true);
      }
      const o = scene.objects[0];
      const expectedLines = { motion: 1, count: scene.objects.length, appear: 1, disappear: 1, span: 1, order: 2, change: 2 }[scene.kind];
      expect(events.length, `${scene.kind} ${scene.seed}`).toBe(expectedLines);
      if (scene.kind === "motion") expect(events[0].text).toBe(`the ${o.color} ${o.shape} moves ${questionsFor(scene)[2].answer}`);
      if (scene.kind === "count") {
        const colorRank = events.map((e) => Object.keys(COLORS).indexOf(/^the (\w+) /.exec(e.text)![1]));
        expect(colorRank).toEqual([...colorRank].sort((a, b) => a - b));
      }
      if (scene.kind === "change") expect(events.map((e) => e.text)).toEqual([`the ${o.color} ${o.shape} is visible`, `the ${o.color} ${o.shape} turns ${questionsFor(scene)[0].answer}`]);
    }
  });
});

describe("answer checking", () => {
  it("accepts a dense caption only with the same words and times within ±0.5 s", () => {
    const q = { type: "dense" as const, question: "list the events.", answer: "from 0.0 to 2.5 seconds: the red circle is visible\nfrom 2.5 to 5.0 seconds: the red circle turns blue", times: [0, 2.5, 2.5, 5] };
    expect(isCorrect(q, "from 0.0 to 3.0 seconds: the red circle is visible\nfrom 3.0 to 5.0 seconds: the red circle turns blue")).toBe(true);
    expect(isCorrect(q, "from 0.0 to 2.5 seconds: the red circle is visible\nfrom 2.5 to 5.0 seconds: the red circle turns green")).toBe(false);
    expect(isCorrect(q, "from 0.0 to 2.5 seconds: the red circle is visible")).toBe(false);
    expect(isCorrect(q, "from 0.0 to 1.5 seconds: the red circle is visible\nfrom 2.5 to 5.0 seconds: the red circle turns blue")).toBe(false);
  });

  it("parses times and accepts time answers within ±0.5 s only", () => {
    expect(parseTimes("from 2.0 to 4.5 seconds")).toEqual([2, 4.5]);
    const q = { type: "span" as const, question: "", answer: "from 2.0 to 4.5 seconds", times: [2, 4.5] };
    expect(isCorrect(q, "from 2.5 to 4.0 seconds")).toBe(true);
    expect(isCorrect(q, "from 1.0 to 4.5 seconds")).toBe(false);
    expect(isCorrect(q, "at 2.0 seconds")).toBe(false);
    expect(isCorrect({ type: "color", question: "", answer: "red" }, "red")).toBe(true);
    expect(isCorrect({ type: "color", question: "", answer: "red" }, "blue")).toBe(false);
  });
});
