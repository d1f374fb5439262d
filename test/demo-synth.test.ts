/**
 * The synthetic video generator behind the demo model: deterministic scenes, answers that agree with the
 * rendered pixels, the encoded mp4's length and size, and the answer checker.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { probeVideo } from "../src/media/probe.js";
import { COLORS, encodeScene, formatSeconds, frameCount, isCorrect, parseTimes, questionsFor, renderFrame, sceneFromSeed, SCENE_KINDS, type Scene } from "../src/synth/index.js";

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

describe("answer checking", () => {
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
