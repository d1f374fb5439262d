/**
 * Events of a synthetic scene and the two event questions the demo model learns (issue 19): grounding ("when is
 * the red circle visible?" → "from 2.0 to 4.5 seconds") for every scene kind, and dense captions ("list the
 * events." → one "from A to B seconds: text" line per event). Both follow from the scene description alone and
 * draw nothing from any random stream, so the scenes and the original questions of every seed stay as they were.
 * docs/demo-model.md ("Events") lists the phrasing per scene kind.
 */
import type { Event } from "../events/types.js";
import { COLOR_NAMES, formatSeconds, questionsFor, SHAPES, type Scene, type SynthObject, type SynthQuestion } from "./scene.js";

/** The dense-caption question, the grounding question's template, and the answer formats (regular expressions). */
export const DENSE_QUESTION = "list the events.";
export const GROUNDING_TEMPLATE = "when is the {query} visible?";
const TIME = String.raw`\d+\.\d`;
const SPAN = String.raw`from ${TIME} to ${TIME} seconds`;
const TEXT = "the [a-z]+(?: [a-z]+)*";
export const GROUNDING_ANSWER_PATTERN = SPAN;
export const DENSE_ANSWER_PATTERN = String.raw`${SPAN}: ${TEXT}(?:\n${SPAN}: ${TEXT})*`;

/** "red circle": how questions and captions name an object (its colour at t = 0). */
export function objectName(o: SynthObject): string {
  return `${o.color} ${o.shape}`;
}

/** [appear, disappear) clamped to the clip: the seconds in which the object is drawn. */
export function visibleSpan(scene: Scene, o: SynthObject): [number, number] {
  return [Math.max(0, o.appear), Math.min(scene.duration, o.disappear)];
}

/**
 * The order in which a count scene's objects are listed: by colour (COLOR_NAMES order: red, green, blue, yellow,
 * white, purple), then shape (SHAPES order). A rule on what each object looks like rather than where it is: the
 * decoder barely sees the layout of a frame (M-RoPE gives the height/width axes rotary frequencies too low to
 * tell neighbouring tokens apart; docs/demo-model.md), while colour and shape are what the vision tower exposes.
 */
function listingOrder(o: SynthObject): number {
  return COLOR_NAMES.indexOf(o.color) * SHAPES.length + SHAPES.indexOf(o.shape);
}

function directionWord(o: SynthObject): string {
  if (Math.abs(o.vx) >= Math.abs(o.vy)) return o.vx < 0 ? "left" : "right";
  return o.vy < 0 ? "up" : "down";
}

/**
 * The ground-truth events of a scene, in order of start (ties: the order listed here):
 * - motion: [0, D] "the purple triangle moves left"
 * - count: [0, D] "the red circle is visible", one per object, by colour then shape (listingOrder)
 * - appear: [t, D] "the red circle appears"; disappear: [0, t] "the red circle disappears"
 * - span: [a, b] "the red circle appears and disappears"
 * - order: [a, D] and [b, D] "the red circle appears", the earlier one first
 * - change: [0, t] "the red circle is visible", then [t, D] "the red circle turns blue"
 */
export function eventsFor(scene: Scene): Event[] {
  const D = scene.duration;
  const event = (start: number, end: number, text: string): Event => ({ start, end, text });
  const [o] = scene.objects;
  switch (scene.kind) {
    case "motion":
      return [event(0, D, `the ${objectName(o)} moves ${directionWord(o)}`)];
    case "count":
      return [...scene.objects]
        .sort((a, b) => listingOrder(a) - listingOrder(b))
        .map((x) => event(0, D, `the ${objectName(x)} is visible`));
    case "appear":
      return [event(...visibleSpan(scene, o), `the ${objectName(o)} appears`)];
    case "disappear":
      return [event(...visibleSpan(scene, o), `the ${objectName(o)} disappears`)];
    case "span":
      return [event(...visibleSpan(scene, o), `the ${objectName(o)} appears and disappears`)];
    case "order":
      return [...scene.objects]
        .sort((a, b) => a.appear - b.appear)
        .map((x) => event(...visibleSpan(scene, x), `the ${objectName(x)} appears`));
    case "change": {
      const at = o.colorChange!.at;
      return [event(0, at, `the ${objectName(o)} is visible`), event(at, D, `the ${objectName(o)} turns ${o.colorChange!.to}`)];
    }
  }
}

/** "from 2.0 to 4.5 seconds": a span the way the demo model spells it. */
export function formatSpan(start: number, end: number): string {
  return `from ${formatSeconds(start)} to ${formatSeconds(end)} seconds`;
}

/** One dense-caption line: "from 0.0 to 3.5 seconds: the red circle appears". */
export function formatEventLine(e: Event): string {
  return `${formatSpan(e.start, e.end)}: ${e.text}`;
}

/** Reads answers in the demo's own format back into events (lines that do not match are skipped). */
export function parseEventLines(text: string): Event[] {
  const events: Event[] = [];
  for (const line of text.split("\n")) {
    const m = /^\s*from (\d+(?:\.\d+)?) to (\d+(?:\.\d+)?) seconds(?:: (.*\S))?\s*$/.exec(line);
    if (m) events.push({ start: Number(m[1]), end: Number(m[2]), text: m[3] ?? "" });
  }
  return events;
}

/**
 * The grounding questions of a scene: the visibility span of each object it names. Span scenes already ask
 * exactly this (type "span"), so they get none here. Change scenes ask for the object under each of its
 * colours: "the red circle" before the change, "the blue circle" after it. Count scenes ask for their first
 * object only (every object is visible throughout), order scenes for both.
 */
export function groundingQuestionsFor(scene: Scene): SynthQuestion[] {
  const ask = (name: string, [start, end]: [number, number]): SynthQuestion => ({
    type: "ground",
    question: GROUNDING_TEMPLATE.replace("{query}", name),
    answer: formatSpan(start, end),
    times: [start, end],
  });
  const [o] = scene.objects;
  switch (scene.kind) {
    case "span":
      return [];
    case "order":
      return scene.objects.map((x) => ask(objectName(x), visibleSpan(scene, x)));
    case "change": {
      const at = o.colorChange!.at;
      return [ask(objectName(o), [0, at]), ask(`${o.colorChange!.to} ${o.shape}`, [at, scene.duration])];
    }
    default:
      return [ask(objectName(o), visibleSpan(scene, o))];
  }
}

/** The dense-caption question of a scene; `times` holds every event's start and end, in order. */
export function denseQuestionFor(scene: Scene): SynthQuestion {
  const events = eventsFor(scene);
  return { type: "dense", question: DENSE_QUESTION, answer: events.map(formatEventLine).join("\n"), times: events.flatMap((e) => [e.start, e.end]) };
}

/** The event questions of a scene (grounding, then the dense caption): asked after its original questions. */
export function eventQuestionsFor(scene: Scene): SynthQuestion[] {
  return [...groundingQuestionsFor(scene), denseQuestionFor(scene)];
}

/** Every question of a scene: the original ones (`questionsFor`, unchanged), then the event questions. */
export function allQuestionsFor(scene: Scene): SynthQuestion[] {
  return [...questionsFor(scene), ...eventQuestionsFor(scene)];
}
