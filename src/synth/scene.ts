/**
 * Synthetic scenes for the demo model: coloured shapes on a dark gradient that move, appear, disappear, change
 * colour or enter one after another, with questions whose answers follow from the scene description alone.
 *
 * Every event time is on a 0.5 s grid: the demo model samples videos at 4 fps and Qwen2-VL pairs frames into
 * temporal patches, so one temporal token step is 0.5 s of video (docs/demo-model.md explains the choice).
 */
import { SeededRng } from "./rng.js";

export const COLORS = {
  red: [220, 40, 40],
  green: [40, 190, 60],
  blue: [50, 90, 235],
  yellow: [235, 215, 40],
  white: [240, 240, 240],
  purple: [165, 60, 210],
} as const satisfies Record<string, readonly [number, number, number]>;
export type ColorName = keyof typeof COLORS;
export const COLOR_NAMES = Object.keys(COLORS) as ColorName[];

export const SHAPES = ["square", "circle", "triangle"] as const;
export type Shape = (typeof SHAPES)[number];

export const DIRECTIONS = ["left", "right", "up", "down"] as const;
export type Direction = (typeof DIRECTIONS)[number];

export const SCENE_KINDS = ["motion", "count", "appear", "disappear", "span", "order", "change"] as const;
export type SceneKind = (typeof SCENE_KINDS)[number];

/** The original nine types, then the event questions (src/synth/events.ts): grounding and the dense caption. */
export const QUESTION_TYPES = ["color", "shape", "direction", "count", "order", "appear", "disappear", "span", "change", "ground", "dense"] as const;
export type QuestionType = (typeof QUESTION_TYPES)[number];
/** The types `questionsFor` asks (every one of them in some scene kind); the others are `eventQuestionsFor`'s. */
export const ORIGINAL_QUESTION_TYPES: readonly QuestionType[] = QUESTION_TYPES.filter((t) => t !== "ground" && t !== "dense");
/** Question types whose answer is a time ("at 3.5 seconds"), a span ("from 2.0 to 4.5 seconds") or span lines. */
export const TIME_QUESTION_TYPES: readonly QuestionType[] = ["appear", "disappear", "span", "ground", "dense"];

export interface SynthObject {
  shape: Shape;
  color: ColorName;
  /** Half the side / the radius, as a fraction of min(width, height). */
  radius: number;
  /** Centre at t = 0, as fractions of width / height. */
  x0: number;
  y0: number;
  /** Velocity in frame fractions per second. */
  vx: number;
  vy: number;
  /** Visible for appear <= t < disappear (seconds). */
  appear: number;
  disappear: number;
  /** From this time on the object is drawn in `to`. */
  colorChange?: { at: number; to: ColorName };
}

export interface Scene {
  seed: number;
  kind: SceneKind;
  width: number;
  height: number;
  fps: number;
  /** Seconds; a multiple of 0.5. */
  duration: number;
  /** Gradient end colours and direction. */
  background: { from: [number, number, number]; to: [number, number, number]; vertical: boolean };
  objects: SynthObject[];
}

export interface SynthQuestion {
  type: QuestionType;
  question: string;
  answer: string;
  /** Time questions: the true time(s) in seconds (dense captions: every event's start and end, in order). */
  times?: number[];
}

/** Source sizes (width × height): 4:3 and square, all resized by the demo model to 112×84 or 112×112. */
const SIZES: [number, number][] = [
  [160, 120],
  [224, 168],
  [192, 144],
  [128, 96],
  [112, 112],
  [144, 144],
  [200, 200],
];
const FPS_CHOICES = [8, 10, 12, 15, 24, 25, 30];

/** Formats a time on the 0.5 s grid the way answers spell it: 3.5 → "3.5", 2 → "2.0". */
export function formatSeconds(t: number): string {
  return (Math.round(t * 2) / 2).toFixed(1);
}

function gridTimes(rng: SeededRng, lo: number, hi: number): number {
  // a time on the 0.5 s grid in [lo, hi]
  return rng.int(Math.round(lo * 2), Math.round(hi * 2)) / 2;
}

function randomObject(rng: SeededRng, shape: Shape, color: ColorName, duration: number): SynthObject {
  return { shape, color, radius: rng.uniform(0.16, 0.22), x0: rng.uniform(0.25, 0.75), y0: rng.uniform(0.25, 0.75), vx: 0, vy: 0, appear: 0, disappear: duration + 1 };
}

/** Places k static objects in distinct quadrants so they never overlap. */
function placeInQuadrants(rng: SeededRng, objects: SynthObject[]): void {
  const quadrants = rng.sample([0, 1, 2, 3], objects.length);
  objects.forEach((o, i) => {
    const q = quadrants[i];
    o.radius = rng.uniform(0.14, 0.18);
    o.x0 = (q % 2 === 0 ? 0.25 : 0.75) + rng.uniform(-0.06, 0.06);
    o.y0 = (q < 2 ? 0.25 : 0.75) + rng.uniform(-0.06, 0.06);
  });
}

const SCENE_WEIGHTS: [SceneKind, number][] = [
  ["motion", 3],
  ["count", 2],
  ["appear", 2],
  ["disappear", 2],
  ["span", 2],
  ["order", 4],
  ["change", 1],
];

function pickKind(rng: SeededRng): SceneKind {
  const total = SCENE_WEIGHTS.reduce((a, [, w]) => a + w, 0);
  let r = rng.next() * total;
  for (const [k, w] of SCENE_WEIGHTS) {
    r -= w;
    if (r < 0) return k;
  }
  return "motion";
}

/** The scene for a seed (a pure function of the seed; optionally force the kind). */
export function sceneFromSeed(seed: number, kind?: SceneKind): Scene {
  const rng = new SeededRng(seed * 2654435761);
  const k = kind ?? pickKind(rng);
  const [width, height] = rng.pick(SIZES);
  const fps = rng.pick(FPS_CHOICES);
  const minDuration = k === "span" || k === "order" ? 3 : 2;
  // Motion clips are short (2–3.5 s) so that the object moves fast enough to shift by 4–9 px (of 112) between the
  // two frames of a temporal patch (0.25 s apart at 4 fps): the 3-D patch embedding sees the direction directly.
  const duration = k === "motion" ? rng.int(4, 7) / 2 : rng.int(minDuration * 2, 16) / 2;
  const dark = (): [number, number, number] => [rng.int(5, 80), rng.int(5, 80), rng.int(5, 80)];
  const background = { from: dark(), to: dark(), vertical: rng.next() < 0.5 };
  const [c1, c2] = rng.sample(COLOR_NAMES, 2);
  const [s1, s2] = rng.sample(SHAPES, 2);
  const objects: SynthObject[] = [];
  switch (k) {
    case "motion": {
      const o = randomObject(rng, s1, c1, duration);
      const dir = rng.pick(DIRECTIONS);
      const travel = rng.uniform(0.5, 0.65); // fraction of the frame crossed over the whole clip
      const start = 0.5 + travel / 2;
      const along = dir === "left" || dir === "up" ? [start, -travel / duration] : [1 - start, travel / duration];
      const across = rng.uniform(0.3, 0.7);
      if (dir === "left" || dir === "right") Object.assign(o, { x0: along[0], vx: along[1], y0: across });
      else Object.assign(o, { y0: along[0], vy: along[1], x0: across });
      objects.push(o);
      break;
    }
    case "count": {
      const n = rng.int(1, 4);
      for (let i = 0; i < n; i++) objects.push(randomObject(rng, rng.pick(SHAPES), rng.pick(COLOR_NAMES), duration));
      placeInQuadrants(rng, objects);
      break;
    }
    case "appear": {
      const o = randomObject(rng, s1, c1, duration);
      o.appear = gridTimes(rng, 0.5, duration - 1);
      objects.push(o);
      break;
    }
    case "disappear": {
      const o = randomObject(rng, s1, c1, duration);
      o.disappear = gridTimes(rng, 1, duration - 0.5);
      objects.push(o);
      break;
    }
    case "span": {
      const o = randomObject(rng, s1, c1, duration);
      o.appear = gridTimes(rng, 0.5, duration - 2);
      o.disappear = gridTimes(rng, o.appear + 1, duration - 0.5);
      objects.push(o);
      break;
    }
    case "order": {
      const a = randomObject(rng, s1, c1, duration);
      const b = randomObject(rng, s2, c2, duration);
      placeInQuadrants(rng, [a, b]);
      a.appear = gridTimes(rng, 0, duration - 2);
      b.appear = gridTimes(rng, a.appear + 1, duration - 1);
      objects.push(a, b);
      break;
    }
    case "change": {
      const o = randomObject(rng, s1, c1, duration);
      o.colorChange = { at: gridTimes(rng, 1, duration - 1), to: c2 };
      objects.push(o);
      break;
    }
  }
  return { seed, kind: k, width, height, fps, duration, background, objects };
}

function directionOf(o: SynthObject): Direction {
  if (Math.abs(o.vx) >= Math.abs(o.vy)) return o.vx < 0 ? "left" : "right";
  return o.vy < 0 ? "up" : "down";
}

/** The questions a scene answers, with their ground truth. */
export function questionsFor(scene: Scene, rng = new SeededRng(scene.seed ^ 0x5bd1e995)): SynthQuestion[] {
  const [o, o2] = scene.objects;
  const name = (x: SynthObject) => `${x.color} ${x.shape}`;
  switch (scene.kind) {
    case "motion":
      return [
        { type: "color", question: `what color is the ${o.shape}?`, answer: o.color },
        { type: "shape", question: `what shape is the ${o.color} object?`, answer: o.shape },
        { type: "direction", question: `which way does the ${name(o)} move?`, answer: directionOf(o) },
      ];
    case "count":
      return [{ type: "count", question: "how many shapes are there?", answer: String(scene.objects.length) }];
    case "appear":
      return [
        { type: "appear", question: `when does the ${name(o)} appear?`, answer: `at ${formatSeconds(o.appear)} seconds`, times: [o.appear] },
        { type: "shape", question: `what shape is the ${o.color} object?`, answer: o.shape },
      ];
    case "disappear":
      return [
        { type: "disappear", question: `when does the ${name(o)} disappear?`, answer: `at ${formatSeconds(o.disappear)} seconds`, times: [o.disappear] },
        { type: "color", question: `what color is the ${o.shape}?`, answer: o.color },
      ];
    case "span":
      return [
        {
          type: "span",
          question: `when is the ${name(o)} visible?`,
          answer: `from ${formatSeconds(o.appear)} to ${formatSeconds(o.disappear)} seconds`,
          times: [o.appear, o.disappear],
        },
      ];
    case "order": {
      const [first, second] = rng.next() < 0.5 ? [o, o2] : [o2, o];
      const earlier = o.appear < o2.appear ? o : o2;
      return [
        { type: "order", question: `which appears first, the ${name(first)} or the ${name(second)}?`, answer: `the ${name(earlier)}` },
        { type: "count", question: "how many shapes are there?", answer: "2" },
      ];
    }
    case "change":
      return [{ type: "change", question: `what color does the ${o.shape} turn?`, answer: o.colorChange!.to }];
  }
}

/** Parses "at 3.5 seconds" / "from 2.0 to 4.5 seconds" into the times it names (empty when it names none). */
export function parseTimes(answer: string): number[] {
  return [...answer.matchAll(/\d+(?:\.\d+)?/g)].map((m) => Number(m[0]));
}

/**
 * Whether a generated answer is right: exact text, except time answers, which count within ±tolerance seconds.
 * Dense captions must also match the words around the times exactly (every line's text, in order).
 */
export function isCorrect(q: SynthQuestion, predicted: string, tolerance = 0.5): boolean {
  const p = predicted.trim();
  if (!q.times) return p === q.answer;
  const got = parseTimes(p);
  const withoutTimes = (s: string) => s.replace(/\d+(?:\.\d+)?/g, "#");
  if (q.type === "dense" && withoutTimes(p) !== withoutTimes(q.answer)) return false;
  return got.length === q.times.length && got.every((t, i) => Math.abs(t - q.times![i]) <= tolerance + 1e-9);
}
