/**
 * Writes the shipped example: examples/demo.mp4 (a held-out synthetic scene, seed 4 000 001, never used in
 * training) and examples/demo.json (its questions and true answers).
 * Usage: npx tsx tools/demo/make-example.mts
 */
import * as fs from "node:fs";
import { encodeScene, questionsFor, sceneFromSeed } from "../../src/synth/index.js";

const SEED = 4_000_001;
const scene = sceneFromSeed(SEED, "motion");
fs.mkdirSync("examples", { recursive: true });
await encodeScene(scene, "examples/demo.mp4");
const questions = questionsFor(scene).map(({ type, question, answer }) => ({ type, question, answer }));
const { seed, kind, width, height, fps, duration } = scene;
fs.writeFileSync("examples/demo.json", JSON.stringify({ video: "demo.mp4", seed, kind, width, height, fps, duration, questions }, null, 2) + "\n");
console.log(JSON.stringify(questions));
