/**
 * Writes the text the demo tokenizer is trained on: every question and answer of the first N generated scenes
 * plus the chat template's fixed words. Usage: npx tsx tools/demo/corpus.mts <out.txt> [N=20000]
 */
import * as fs from "node:fs";
import { questionsFor, sceneFromSeed } from "../../src/synth/index.js";

const [out, n = "20000"] = process.argv.slice(2);
const lines = new Set<string>(["system", "user", "assistant", "You are a helpful assistant.", "Video 1: ", "Picture 1: "]);
for (let seed = 1; seed <= Number(n); seed++) {
  for (const q of questionsFor(sceneFromSeed(seed))) {
    lines.add(q.question);
    lines.add(q.answer);
  }
}
fs.writeFileSync(out, [...lines].join("\n") + "\n");
console.log(`${lines.size} lines → ${out}`);
