/**
 * Constrained output through the real engine (VideoModel.generate({ responseFormat })):
 *   - the tiny Qwen2-VL checkpoint (random weights, Qwen's 151 936-id vocabulary), sampled at temperature 1.5:
 *     every output that completes parses and satisfies its schema / matches its regex; outputs cut by maxNewTokens
 *     say finishReason "length" and are not complete documents;
 *   - the demo model (trained weights, its own 384-token vocabulary), greedy and sampled, on the regex its
 *     grounding answers follow and on an events schema;
 *   - no constraint, or {type: "text"}: greedy tokens bit-identical to a plain request;
 *   - a response format that the validator refuses fails the request with a VideolmError.
 */
import * as path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { VideoModel } from "../src/engine/model.js";
import { VideolmError } from "../src/errors.js";
import type { ResponseFormat } from "../src/generation/constrained/response-format.js";
import { materializeTinyCheckpoint, repoRoot, testCacheDir } from "../src/testing/tiny-checkpoint.js";
import { hasDuplicateKeys, satisfies } from "./constrained-helpers.js";

const EVENTS = {
  type: "array",
  items: { type: "object", properties: { start: { type: "number" }, end: { type: "number" }, text: { type: "string", maxLength: 12 } }, required: ["start", "end", "text"] },
  maxItems: 3,
};
const COLOR = { type: "object", properties: { color: { enum: ["red", "green", "blue"] }, n: { type: "integer" } }, required: ["color"] };
const REGEX = "from \\d+\\.\\d to \\d+\\.\\d seconds";

const cases: { name: string; format: ResponseFormat; valid: (text: string) => boolean }[] = [
  { name: "events", format: { type: "json_schema", json_schema: { name: "events", schema: EVENTS, strict: true } }, valid: (t) => parses(t) && satisfies(JSON.parse(t), EVENTS) },
  { name: "json_object", format: { type: "json_object" }, valid: (t) => parses(t) && typeof JSON.parse(t) === "object" && JSON.parse(t) !== null && !Array.isArray(JSON.parse(t)) },
  { name: "enum", format: { type: "json_schema", json_schema: { name: "color", schema: COLOR } }, valid: (t) => parses(t) && satisfies(JSON.parse(t), COLOR) && !hasDuplicateKeys(t) },
  { name: "regex", format: { type: "regex", pattern: REGEX }, valid: (t) => new RegExp(`^${REGEX}$`).test(t) },
];

function parses(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

const question = (text: string) => [{ role: "user" as const, content: [{ type: "text" as const, text }] }];

describe("tiny Qwen2-VL checkpoint (random weights, Qwen vocabulary)", () => {
  let model: VideoModel;
  beforeAll(async () => {
    const dir = await materializeTinyCheckpoint(path.join(repoRoot(), "test/fixtures/qwen2-vl/qwen2-vl-tiny"));
    model = await VideoModel.load(dir, { cacheDir: testCacheDir(), threads: 1 });
  }, 120_000);

  it("greedy tokens are unchanged without a constraint and with {type: text}", async () => {
    const messages = question("Describe the video.");
    const plain = await model.generate({ messages, maxNewTokens: 12, temperature: 0 });
    const text = await model.generate({ messages, maxNewTokens: 12, temperature: 0, responseFormat: { type: "text" } });
    expect(text.tokens).toEqual(plain.tokens);
    expect(text.text).toBe(plain.text);
    // And a constraint does change them (the comparison above can fail).
    const json = await model.generate({ messages, maxNewTokens: 12, temperature: 0, responseFormat: { type: "json_object" } });
    expect(json.tokens).not.toEqual(plain.tokens);
  });

  it("sampled outputs (temperature 1.5) that complete always parse and validate; cut ones say length", async () => {
    let completed = 0;
    for (const c of cases) {
      for (let seed = 1; seed <= 8; seed++) {
        const r = await model.generate({ messages: question("List the events."), maxNewTokens: 24, temperature: 1.5, topK: 0, seed, responseFormat: c.format });
        if (r.finishReason === "stop") {
          expect(c.valid(r.text), `${c.name} seed ${seed}: ${JSON.stringify(r.text)}`).toBe(true);
          completed++;
        } else {
          expect(r.finishReason).toBe("length");
          expect(r.tokens.length).toBe(24);
          expect(c.valid(r.text), `${c.name} seed ${seed} was cut: ${JSON.stringify(r.text)}`).toBe(false);
        }
      }
    }
    expect(completed).toBeGreaterThanOrEqual(4);
  });
});

describe("Thinking checkpoint (tiny Qwen3-VL Thinking): the constraint starts with the answer", () => {
  let model: VideoModel;
  beforeAll(async () => {
    const dir = await materializeTinyCheckpoint(path.join(repoRoot(), "test/fixtures/qwen3-vl/qwen3-vl-tiny-thinking"));
    model = await VideoModel.load(dir, { cacheDir: testCacheDir(), threads: 1 });
  }, 120_000);

  it("the thinking block and its forced close are unconstrained; the answer after it is held to the format", async () => {
    const messages = question("What happens?");
    const budget = 4;
    const forced = model.tokenizer.encode("\n</think>\n\n").length;
    const n = budget + forced + 16;
    const plain = await model.generate({ messages, temperature: 0, maxNewTokens: n, thinkingBudget: budget });
    const held = await model.generate({ messages, temperature: 0, maxNewTokens: n, thinkingBudget: budget, responseFormat: { type: "regex", pattern: "[a-z ]{1,12}" } });
    expect(held.tokens.slice(0, budget + forced)).toEqual(plain.tokens.slice(0, budget + forced));
    expect(held.reasoning).toBe(plain.reasoning);
    expect(held.text).toMatch(/^[a-z ]{0,12}$/);
    expect(held.text).not.toBe(plain.text);
    if (held.finishReason === "stop") expect(held.text).toMatch(/^[a-z ]{1,12}$/);
  });
});

describe("demo model (trained weights, 384-token vocabulary)", () => {
  let model: VideoModel;
  beforeAll(async () => {
    model = await VideoModel.load(path.join(repoRoot(), "models/videolm-demo"), { cacheDir: testCacheDir(), threads: 1 });
  }, 120_000);

  it("80 sampled outputs, temperature 1.0–1.5: every completed one is valid", async () => {
    let completed = 0;
    let regexCompleted = 0;
    for (const c of cases) {
      for (let seed = 1; seed <= 20; seed++) {
        const r = await model.generate({ messages: question("When is the red square visible?"), maxNewTokens: 40, temperature: 1 + (seed % 3) / 4, seed, responseFormat: c.format });
        if (r.finishReason === "stop") {
          expect(c.valid(r.text), `${c.name} seed ${seed}: ${JSON.stringify(r.text)}`).toBe(true);
          completed++;
          if (c.format.type === "regex") regexCompleted++;
        } else expect(c.valid(r.text), `${c.name} seed ${seed} was cut: ${JSON.stringify(r.text)}`).toBe(false);
      }
    }
    // The model was trained on answers of the regex's shape (they complete), not on JSON (which it pads with whitespace).
    expect(regexCompleted).toBeGreaterThanOrEqual(16);
    expect(completed).toBeGreaterThan(20);
  });

  it("greedy regex answer ends by itself once complete (no end token needed)", async () => {
    const r = await model.generate({ messages: question("When is the red square visible?"), maxNewTokens: 40, temperature: 0, responseFormat: { type: "regex", pattern: REGEX } });
    expect(r.finishReason).toBe("stop");
    expect(r.text).toMatch(new RegExp(`^${REGEX}$`));
  });

  it("maxNewTokens running out mid-JSON: finishReason length, the text is incomplete", async () => {
    const r = await model.generate({ messages: question("List the events."), maxNewTokens: 3, temperature: 0, responseFormat: cases[0].format });
    expect(r.finishReason).toBe("length");
    expect(r.tokens).toHaveLength(3);
    expect(parses(r.text)).toBe(false);
  });

  it("an unsupported response format fails the request with a clear error", async () => {
    const bad = { type: "json_schema", json_schema: { name: "x", schema: { type: "string", format: "hostname" } } } as ResponseFormat;
    await expect(model.generate({ messages: question("hi"), maxNewTokens: 4, responseFormat: bad })).rejects.toThrow(VideolmError);
    await expect(model.generate({ messages: question("hi"), maxNewTokens: 4, responseFormat: bad })).rejects.toThrow(/format "hostname" is not supported/);
  });
});
