// The TypeScript tiny-checkpoint generator must reproduce, byte for byte, the model.safetensors that the Python
// oracle (tools/oracle/tiny_weights.py via record_qwen2_vl.py) generated and hashed into each golden.json.
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { TextTokenizer } from "../src/text/tokenizer.js";
import {
  addTokensToTokenizerJson,
  bf16BitsToFloat32,
  float32BitsToBf16,
  fnv1a32,
  generateTensorChunks,
  generateWeights,
  lowbias32,
  materializeTinyCheckpoint,
  qwen2VlWeightSpec,
  readWeightSpec,
  safetensorsHeader,
  type Qwen2VlShapeConfig,
  type WeightSpec,
} from "../src/testing/tiny-checkpoint.js";

const FIXTURES = path.join(import.meta.dirname, "fixtures", "qwen2-vl");
const CHECKPOINTS = ["qwen2-vl-tiny", "qwen2-vl-tiny-tied"];
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "tiny-checkpoint-test-"));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

function sha256(file: string): string {
  return createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}

interface Golden {
  checkpoint: { name: string; model_safetensors_sha256: string; model_safetensors_bytes: number; num_parameters: number };
}
const readJson = <T>(file: string): T => JSON.parse(fs.readFileSync(file, "utf8")) as T;

describe("hash primitives", () => {
  it("fnv1a32 matches the published FNV-1a 32-bit test vectors", () => {
    // Vectors from the FNV reference test suite (isthe.com/chongo/tech/comp/fnv).
    expect(fnv1a32("")).toBe(0x811c9dc5);
    expect(fnv1a32("a")).toBe(0xe40c292c);
    expect(fnv1a32("foobar")).toBe(0xbf9cf968);
  });

  it("lowbias32 matches values computed by tools/oracle/tiny_weights.lowbias32_int", () => {
    // python: [lowbias32_int(x) for x in (0, 1, 0xdeadbeef, 0xffffffff)]
    expect([0, 1, 0xdeadbeef, 0xffffffff].map(lowbias32)).toEqual([0, 1753845952, 3861431939, 1734902346]);
  });

  it("float32 -> bf16 rounds to nearest, ties to even", () => {
    expect(float32BitsToBf16(0x3f800000)).toBe(0x3f80); // 1.0 exact
    expect(float32BitsToBf16(0x3f808000)).toBe(0x3f80); // tie, 0x3f80 is even: stays
    expect(float32BitsToBf16(0x3f818000)).toBe(0x3f82); // tie, 0x3f81 is odd: rounds up
    expect(float32BitsToBf16(0x3f808001)).toBe(0x3f81); // above the tie
    expect(float32BitsToBf16(0xbf807fff)).toBe(0xbf80); // negative, below the tie
  });
});

describe("weight values", () => {
  it("stays within offset +- scale and depends on seed and name", () => {
    const spec: WeightSpec = {
      seed: 7,
      dtype: "BF16",
      tensors: [
        { name: "a", shape: [1000], offset: 1, scale: 0.1 },
        { name: "b", shape: [1000], offset: 1, scale: 0.1 },
      ],
    };
    const w = generateWeights(spec);
    const a = bf16BitsToFloat32(w.get("a")!.data);
    const b = bf16BitsToFloat32(w.get("b")!.data);
    // bf16 keeps 8 significant bits: 1.1 may round up to 1.1015625.
    expect(Math.min(...a)).toBeGreaterThanOrEqual(0.89);
    expect(Math.max(...a)).toBeLessThanOrEqual(1.1015625);
    const mean = a.reduce((s, v) => s + v, 0) / a.length;
    expect(Math.abs(mean - 1)).toBeLessThan(0.01);
    expect(Array.from(a)).not.toEqual(Array.from(b));
    const chunks = [...generateTensorChunks(7, spec.tensors[0], 300)];
    expect(chunks.map((c) => c.length)).toEqual([300, 300, 300, 100]);
    expect(Array.from(chunks.flatMap((c) => Array.from(c)))).toEqual(Array.from(w.get("a")!.data));
  });
});

describe.each(CHECKPOINTS)("fixture %s", (name) => {
  const fixtureDir = path.join(FIXTURES, name);
  const golden = readJson<Golden>(path.join(fixtureDir, "golden.json"));

  it("weights.json equals qwen2VlWeightSpec(config.json, seed) (TS port of the Python spec builder)", () => {
    const spec = readWeightSpec(fixtureDir);
    const config = readJson<Qwen2VlShapeConfig>(path.join(fixtureDir, "config.json"));
    expect(qwen2VlWeightSpec(config, spec.seed)).toEqual(spec);
    expect(spec.tensors.some((t) => t.name === "lm_head.weight")).toBe(!config.tie_word_embeddings);
  });

  it("materializes a checkpoint whose model.safetensors has the sha256 recorded by Python", async () => {
    const dir = await materializeTinyCheckpoint(fixtureDir, path.join(tmpRoot, name));
    const file = path.join(dir, "model.safetensors");
    expect(fs.statSync(file).size).toBe(golden.checkpoint.model_safetensors_bytes);
    expect(sha256(file)).toBe(golden.checkpoint.model_safetensors_sha256);
    for (const f of ["config.json", "generation_config.json", "preprocessor_config.json", "tokenizer_config.json", "chat_template.json"]) {
      expect(fs.readFileSync(path.join(dir, f))).toEqual(fs.readFileSync(path.join(fixtureDir, f)));
    }
    expect(fs.statSync(path.join(dir, "tokenizer.json")).size).toBeGreaterThan(1_000_000);

    // The layout documented in tiny-checkpoint.ts: padded header, sorted names, contiguous offsets.
    const bytes = fs.readFileSync(file);
    const n = Number(bytes.readBigUInt64LE(0));
    expect(n % 8).toBe(0);
    const headerText = bytes.subarray(8, 8 + n).toString("ascii");
    const header = JSON.parse(headerText) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
    const names = Object.keys(header);
    expect(names).toEqual([...names].sort());
    expect(names).not.toContain("__metadata__");
    let pos = 0;
    let params = 0;
    for (const k of names) {
      expect(Object.keys(header[k])).toEqual(["dtype", "shape", "data_offsets"]);
      expect(header[k].data_offsets[0]).toBe(pos);
      pos = header[k].data_offsets[1];
      params += header[k].shape.reduce((a, b) => a * b, 1);
    }
    expect(8 + n + pos).toBe(bytes.length);
    expect(params).toBe(golden.checkpoint.num_parameters);
    expect(headerText.trimEnd()).toBe(safetensorsHeader(readWeightSpec(fixtureDir).tensors).subarray(8).toString("ascii").trimEnd());
  });

  it("reuses a complete folder and rebuilds a corrupted one", async () => {
    const out = path.join(tmpRoot, `${name}-reuse`);
    const dir = await materializeTinyCheckpoint(fixtureDir, out);
    const file = path.join(dir, "model.safetensors");
    const mtime = fs.statSync(file).mtimeMs;
    expect(await materializeTinyCheckpoint(fixtureDir, out)).toBe(dir);
    expect(fs.statSync(file).mtimeMs).toBe(mtime);
    const fd = fs.openSync(file, "r+");
    fs.writeSync(fd, Buffer.from([0xff, 0xff]), 0, 2, fs.statSync(file).size - 2);
    fs.closeSync(fd);
    await materializeTinyCheckpoint(fixtureDir, out);
    expect(sha256(file)).toBe(golden.checkpoint.model_safetensors_sha256);
  });
});

// InternVL3.5 fixtures (tools/oracle/record_internvl.py): optional processor files, the original InternVLChatModel
// layout without HF processor files, and InternVL's added tokens inserted into tokenizer.json by both materializers.
const INTERNVL = path.join(import.meta.dirname, "fixtures", "internvl");
describe.each(["internvl-tiny", "internvl-tiny-6b-style", "internvl-tiny-original"])("fixture internvl/%s", (name) => {
  const fixtureDir = path.join(INTERNVL, name);
  const golden = readJson<Golden & { checkpoint: { tokenizer_json_sha256: string } }>(path.join(fixtureDir, "golden.json"));

  it("materializes model.safetensors and tokenizer.json with the sha256 recorded by Python, and copies the fixture's files", async () => {
    const dir = await materializeTinyCheckpoint(fixtureDir, path.join(tmpRoot, name));
    expect(sha256(path.join(dir, "model.safetensors"))).toBe(golden.checkpoint.model_safetensors_sha256);
    expect(fs.statSync(path.join(dir, "model.safetensors")).size).toBe(golden.checkpoint.model_safetensors_bytes);
    expect(sha256(path.join(dir, "tokenizer.json"))).toBe(golden.checkpoint.tokenizer_json_sha256);
    const copied = fs.readdirSync(dir).filter((f) => f.endsWith(".json") && f !== "tokenizer.json" && !f.startsWith(".")).sort();
    const expected = ["config.json", "generation_config.json", "tokenizer_config.json"].concat(
      name.endsWith("original") ? [] : ["chat_template.json", "preprocessor_config.json", "processor_config.json", "video_preprocessor_config.json"],
    );
    expect(copied).toEqual(expected.sort());
    for (const f of copied) expect(fs.readFileSync(path.join(dir, f))).toEqual(fs.readFileSync(path.join(fixtureDir, f)));
  });

  it("the tokenizer maps InternVL's added tokens to their ids and round-trips an expanded prompt", async () => {
    const dir = await materializeTinyCheckpoint(fixtureDir, path.join(tmpRoot, `${name}-tok`));
    const tok = await TextTokenizer.load(dir);
    const added = readJson<{ added_tokens: { id: number; content: string }[] }>(path.join(fixtureDir, "tokenizer_added_tokens.json")).added_tokens;
    expect(added.map((t) => t.content)).toEqual(["<img>", "</img>", "<IMG_CONTEXT>", "<quad>", "</quad>", "<ref>", "</ref>", "<box>", "</box>"]);
    for (const t of added) expect(tok.encode(t.content)).toEqual([t.id]);
    const cases = readJson<{ cases: Record<string, { expanded_prompt: string; input_ids: number[] }> }>(path.join(fixtureDir, "golden.json")).cases;
    for (const c of Object.values(cases)) expect(tok.encode(c.expanded_prompt)).toEqual(c.input_ids);
  });
});

describe("addTokensToTokenizerJson", () => {
  it("inserts after the last added token in the file's own format and refuses ids that do not increase", () => {
    const base = Buffer.from('{\n  "added_tokens": [\n    {\n      "id": 5,\n      "content": "a"\n    }\n  ],\n  "model": {}\n}');
    const out = addTokensToTokenizerJson(base, [{ id: 6, content: "<b>", special: true }]).toString("utf8");
    expect(JSON.parse(out)).toEqual({ added_tokens: [{ id: 5, content: "a" }, { id: 6, content: "<b>", single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }], model: {} });
    expect(() => addTokensToTokenizerJson(base, [{ id: 5, content: "<b>", special: true }])).toThrow(/must exceed 5/);
    expect(() => addTokensToTokenizerJson(base, [{ id: 7, content: 'a"b', special: true }])).toThrow(/unsupported/);
  });
});
