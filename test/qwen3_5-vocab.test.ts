/**
 * Qwen3.5's real vocabulary shape: 248,320 ids with the special tokens at 248,044 … 248,068 (vision_start 248053,
 * image_pad 248056, video_pad 248057: configuration_qwen3_5.py Qwen3_5Config defaults). No real Qwen3.5 tokenizer is
 * at hand, so the golden fixture (test/fixtures/qwen3_5/qwen3_5-tiny) uses Qwen3's 151,936-id tokenizer. This test
 * builds the same model with Qwen3.5's id layout — every added token moved up by 96,401 (151,643 → 248,044), the
 * embedding and lm_head rows moved with them (Qwen3's padding rows above its last added token dropped), the unused
 * rows zero, config / tokenizer / generation ids remapped —
 * and checks that the engine gives the same prompt (ids mapped), positions, logits (at mapped ids) and greedy tokens
 * (mapped) on the golden video case. Any id hard-coded to Qwen3's layout, or a shape that breaks at the real vocab
 * size, fails here. The model is the fixture's own, so transformers 5.18's golden numbers carry over.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VideoModel } from "../src/engine/model.js";
import type { ChatRequestMessage, ContentPart } from "../src/engine/request.js";
import { rewriteWeights } from "../src/testing/rewrite-weights.js";
import { materializeTinyCheckpoint, repoRoot, testCacheDir } from "../src/testing/tiny-checkpoint.js";
import { argmax, fullForward } from "./golden-helpers.js";

const FIXTURE = path.join(repoRoot(), "test/fixtures/qwen3_5/qwen3_5-tiny");
const QWEN3_VOCAB = 151936;
const QWEN3_5_VOCAB = 248320;
const FIRST_ADDED = 151643; // <|endoftext|> in Qwen3's tokenizer
const SHIFT = 248044 - FIRST_ADDED; // <|endoftext|> in Qwen3.5's
const LAST_ADDED = 151668; // Qwen3's last added token (</think>); rows above are padding, dropped
const mapId = (id: number) => (id >= FIRST_ADDED ? id + SHIFT : id);

type Json = Record<string, unknown>;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "videolm-qwen3_5-vocab-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function rewriteJson(dir: string, file: string, edit: (j: Json) => void) {
  const j = JSON.parse(fs.readFileSync(path.join(dir, file), "utf8")) as Json;
  edit(j);
  fs.writeFileSync(path.join(dir, file), JSON.stringify(j));
}

const mapIds = (v: unknown): unknown => (typeof v === "number" ? mapId(v) : Array.isArray(v) ? v.map(mapIds) : v);

/** The fixture's checkpoint with Qwen3.5's id layout (see the file comment). */
function remapCheckpoint(src: string, dst: string) {
  const edits: [string, (j: Json) => void][] = [];
  edits.push(["config.json", (c) => {
    for (const k of ["image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id", "eos_token_id", "bos_token_id", "pad_token_id"]) if (k in c) c[k] = mapIds(c[k]);
    const text = c.text_config as Json;
    text.vocab_size = QWEN3_5_VOCAB;
    for (const k of ["eos_token_id", "bos_token_id", "pad_token_id"]) if (k in text) text[k] = mapIds(text[k]);
  }]);
  edits.push(["generation_config.json", (g) => {
    for (const k of ["eos_token_id", "bos_token_id", "pad_token_id"]) if (k in g) g[k] = mapIds(g[k]);
  }]);
  edits.push(["tokenizer.json", (t) => {
    for (const a of t.added_tokens as { id: number }[]) a.id = mapId(a.id);
  }]);
  edits.push(["tokenizer_config.json", (t) => {
    const decoder = t.added_tokens_decoder as Record<string, unknown>;
    t.added_tokens_decoder = Object.fromEntries(Object.entries(decoder).map(([id, v]) => [String(mapId(Number(id))), v]));
  }]);

  // Weights: the vocab-sized tensors get 248,320 rows; row r of the old table goes to mapId(r).
  rewriteWeights(src, dst, (info, bytes) => {
    if (!(info.shape[0] === QWEN3_VOCAB && /embed_tokens|lm_head/.test(info.name))) return [{ name: info.name, dtype: info.dtype, shape: info.shape, bytes }];
    const rowBytes = bytes.length / QWEN3_VOCAB;
    const out = new Uint8Array(QWEN3_5_VOCAB * rowBytes);
    for (let r = 0; r <= LAST_ADDED; r++) out.set(bytes.subarray(r * rowBytes, (r + 1) * rowBytes), mapId(r) * rowBytes);
    return [{ name: info.name, dtype: info.dtype, shape: [QWEN3_5_VOCAB, ...info.shape.slice(1)], bytes: out }];
  });
  for (const [file, edit] of edits) rewriteJson(dst, file, edit);
}

interface GoldenCase {
  messages: { role: string; content: { type: string; text?: string; video?: string[]; sample_fps?: number }[] }[];
  input_ids: number[];
  greedy: { new_tokens: number[] };
}
const golden = JSON.parse(fs.readFileSync(path.join(FIXTURE, "golden.json"), "utf8")) as { cases: Record<string, GoldenCase> };
const video = golden.cases.video;
const messages: ChatRequestMessage[] = video.messages.map((m) => ({
  role: m.role as ChatRequestMessage["role"],
  content: m.content.map((p): ContentPart =>
    p.type === "video" ? { type: "video", video: p.video!.map((f) => path.join(path.dirname(FIXTURE), f)), fps: p.sample_fps, minPixels: 32 * 32 } : { type: "text", text: p.text! },
  ),
}));

describe("Qwen3.5 at its real vocabulary size and special-token ids (248,320; vision ids 248053-248057)", () => {
  let qwen3Ids: VideoModel;
  let qwen3_5Ids: VideoModel;
  beforeAll(async () => {
    const dir = await materializeTinyCheckpoint(FIXTURE);
    const remapped = path.join(tmp, "qwen3_5-tiny-vocab248k");
    remapCheckpoint(dir, remapped);
    qwen3Ids = await VideoModel.load(dir, { cacheDir: testCacheDir(), threads: 1 });
    qwen3_5Ids = await VideoModel.load(remapped, { cacheDir: path.join(tmp, "cache"), threads: 1 });
  });

  it("reads the ids from config.json: the prompt is the golden one with every special id moved", async () => {
    expect(qwen3_5Ids.config.text.vocabSize).toBe(QWEN3_5_VOCAB);
    expect([qwen3_5Ids.config.visionStartTokenId, qwen3_5Ids.config.imageTokenId, qwen3_5Ids.config.videoTokenId]).toEqual([248053, 248056, 248057]);
    const a = await qwen3Ids.prepare(messages);
    const b = await qwen3_5Ids.prepare(messages);
    expect(a.inputIds).toEqual(video.input_ids);
    expect(b.inputIds).toEqual(video.input_ids.map(mapId));
    expect(b.inputIds.filter((id) => id === 248057)).toHaveLength(18); // 3 frame pairs × 6 tokens
    expect(Array.from(b.positionIds)).toEqual(Array.from(a.positionIds));
    expect(b.ropeDelta).toBe(a.ropeDelta);
  });

  it("same logits at the mapped ids and the same greedy tokens (mapped)", async () => {
    const a = await qwen3Ids.encodeVisuals(await qwen3Ids.prepare(messages));
    const b = await qwen3_5Ids.encodeVisuals(await qwen3_5Ids.prepare(messages));
    const last = a.inputIds.length - 1;
    const la = await fullForward(qwen3Ids, a, [last]);
    const lb = await fullForward(qwen3_5Ids, b, [last]);
    expect(lb.length).toBe(QWEN3_5_VOCAB);
    let worst = 0;
    for (let id = 0; id <= LAST_ADDED; id++) worst = Math.max(worst, Math.abs(la[id] - lb[mapId(id)]));
    expect(worst).toBeLessThan(1e-5);
    expect(argmax(lb)).toBe(mapId(argmax(la)));

    const n = video.greedy.new_tokens.length;
    const ra = await qwen3Ids.generate({ messages, temperature: 0, maxNewTokens: n });
    const rb = await qwen3_5Ids.generate({ messages, temperature: 0, maxNewTokens: n });
    expect(ra.tokens).toEqual(video.greedy.new_tokens.slice(0, ra.tokens.length));
    expect(rb.tokens).toEqual(ra.tokens.map(mapId));
    expect(rb.text).toBe(ra.text);
  });
});
