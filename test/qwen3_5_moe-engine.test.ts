/**
 * Qwen3.5-MoE through the engine at int8 / int4: the experts are converted with the rest of the decoder (MatMulNBits
 * per expert inside the sparse MoE block, src/onnx/moe.ts) and the tiny fused fixture generates. int8 keeps fp32's
 * greedy tokens (transformers 5.18's, test/fixtures/qwen3_5_moe/qwen3_5_moe-tiny/golden.json); int4 on this random
 * tiny model does not (nor does the dense qwen3_5 fixture's), so its check is that the 4-bit experts convert and run.
 * The fp32 engine golden (every case, fused and per-expert checkpoints) is test/qwen3_5-golden.test.ts.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { VideoModel } from "../src/engine/model.js";
import type { ChatRequestMessage, ContentPart } from "../src/engine/request.js";
import { materializeTinyCheckpoint, repoRoot, testCacheDir } from "../src/testing/tiny-checkpoint.js";

const FIXTURE = path.join(repoRoot(), "test/fixtures/qwen3_5_moe/qwen3_5_moe-tiny");
interface TextCase {
  messages: { role: string; content: { type: string; text?: string }[] }[];
  greedy: { new_tokens: number[] };
}
const c = (JSON.parse(fs.readFileSync(path.join(FIXTURE, "golden.json"), "utf8")) as { cases: { text: TextCase } }).cases.text;
const messages = (): ChatRequestMessage[] =>
  c.messages.map((m) => ({ role: m.role as ChatRequestMessage["role"], content: m.content.map((p): ContentPart => ({ type: "text", text: p.text! })) }));

describe("Qwen3.5-MoE quantised through the engine: qwen3_5_moe-tiny text", () => {
  for (const dtype of ["int8", "int4"] as const) {
    it(`${dtype}: experts converted with the rest; generates${dtype === "int8" ? " fp32's greedy tokens" : ""}`, async () => {
      const dir = await materializeTinyCheckpoint(FIXTURE);
      const model = await VideoModel.load(dir, { cacheDir: testCacheDir(), threads: 1, dtype });
      try {
        const r = await model.generate({ messages: messages(), temperature: 0, maxNewTokens: 4 });
        console.log(`qwen3_5_moe-tiny ${dtype}: ${r.tokens.join(" ")} (fp32 ${c.greedy.new_tokens.slice(0, 4).join(" ")})`);
        expect(r.tokens.length).toBe(4);
        if (dtype === "int8") expect(r.tokens).toEqual(c.greedy.new_tokens.slice(0, 4));
      } finally {
        await model.dispose();
      }
    }, 120_000);
  }
});
