/**
 * Bad checkpoints fail at load with one clear message naming the file / tensor / limit, and never leave a
 * half-written conversion cache behind.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VideoModel } from "../src/engine/model.js";
import { VideolmError } from "../src/errors.js";
import { SafetensorsFile, readTensorBytes } from "../src/checkpoint/safetensors.js";
import { materializeTinyCheckpoint, repoRoot } from "../src/testing/tiny-checkpoint.js";

let source: string;
let work: string;
const cacheDir = () => path.join(work, "cache");

/** Copies the tiny checkpoint to a scratch folder, applies `mutate`, returns the folder. */
function variant(name: string, mutate: (dir: string) => void): string {
  const dir = path.join(work, name);
  fs.cpSync(source, dir, { recursive: true });
  mutate(dir);
  return dir;
}

/** Rewrites model.safetensors with `edit` applied to the list of (name, dtype, shape, bytes). */
function rewriteWeights(dir: string, edit: (tensors: { name: string; dtype: string; shape: number[]; bytes: Uint8Array }[]) => void) {
  const file = path.join(dir, "model.safetensors");
  const st = SafetensorsFile.open(file);
  const tensors = [...st.tensors.values()].map((t) => ({ name: t.name, dtype: t.dtype as string, shape: t.shape, bytes: readTensorBytes(t) }));
  edit(tensors);
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.bytes.length] };
    offset += t.bytes.length;
  }
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  fs.writeFileSync(file, Buffer.concat([len, json, ...tensors.map((t) => Buffer.from(t.bytes))]));
}

function editConfig(dir: string, edit: (c: Record<string, unknown>) => void) {
  const file = path.join(dir, "config.json");
  const config = JSON.parse(fs.readFileSync(file, "utf8"));
  edit(config);
  fs.writeFileSync(file, JSON.stringify(config));
}

async function loadError(dir: string): Promise<VideolmError> {
  try {
    await VideoModel.load(dir, { cacheDir: cacheDir() });
  } catch (e) {
    expect(e).toBeInstanceOf(VideolmError);
    expect((e as Error).message).not.toContain("\n");
    return e as VideolmError;
  }
  throw new Error(`loading ${dir} should have failed`);
}

beforeAll(async () => {
  source = await materializeTinyCheckpoint(path.join(repoRoot(), "test/fixtures/qwen2-vl/qwen2-vl-tiny"));
  work = fs.mkdtempSync(path.join(os.tmpdir(), "videolm-ckpt-"));
});
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

describe("checkpoint errors", () => {
  it("a missing folder", async () => {
    expect((await loadError(path.join(work, "nope"))).message).toMatch(/model folder not found: .*nope/);
  });

  it("a missing config.json", async () => {
    const dir = variant("no-config", (d) => fs.rmSync(path.join(d, "config.json")));
    expect((await loadError(dir)).message).toMatch(/model config not found: .*config\.json/);
  });

  it("an unknown model_type", async () => {
    const dir = variant("llama", (d) => editConfig(d, (c) => (c.model_type = "llama")));
    expect((await loadError(dir)).message).toMatch(/model_type "llama" is not supported; videolm runs qwen2_vl/);
  });

  it("a truncated safetensors file", async () => {
    const dir = variant("truncated", (d) => {
      const f = path.join(d, "model.safetensors");
      fs.truncateSync(f, fs.statSync(f).size - 1000);
    });
    expect((await loadError(dir)).message).toMatch(/corrupt safetensors file .*model\.safetensors: tensor .* ends at byte \d+ but the file has \d+ bytes \(truncated\?\)/);
  });

  it("a garbage header", async () => {
    const dir = variant("garbage", (d) => fs.writeFileSync(path.join(d, "model.safetensors"), Buffer.from("this is not a safetensors file at all")));
    expect((await loadError(dir)).message).toMatch(/corrupt safetensors file .*header length/);
  });

  it("an unsupported dtype", async () => {
    const dir = variant("int8", (d) =>
      rewriteWeights(d, (ts) => {
        const t = ts.find((x) => x.name === "model.norm.weight")!;
        t.dtype = "I8";
        t.bytes = t.bytes.subarray(0, t.bytes.length / 2);
      }),
    );
    expect((await loadError(dir)).message).toMatch(/tensor model\.norm\.weight in .* has dtype I8; videolm reads BF16, F16 and F32/);
  });

  it("a shape that does not match config.json", async () => {
    const dir = variant("shape", (d) => editConfig(d, (c) => (c.intermediate_size = 96)));
    expect((await loadError(dir)).message).toMatch(/tensor model\.layers\.0\.mlp\.gate_proj\.weight in .* has shape \[64,32\] but config\.json implies \[96,32\]/);
  });

  it("a missing tensor", async () => {
    const dir = variant("missing", (d) => rewriteWeights(d, (ts) => ts.splice(ts.findIndex((t) => t.name === "model.layers.1.mlp.up_proj.weight"), 1)));
    expect((await loadError(dir)).message).toMatch(/is missing tensor model\.layers\.1\.mlp\.up_proj\.weight \[64,32\]/);
  });

  it("an unused tensor", async () => {
    const dir = variant("extra", (d) => rewriteWeights(d, (ts) => ts.push({ name: "model.layers.9.extra.weight", dtype: "BF16", shape: [4], bytes: new Uint8Array(8) })));
    expect((await loadError(dir)).message).toMatch(/has tensors this model does not use: model\.layers\.9\.extra\.weight/);
    // The failed conversion left nothing in the cache.
    const converted = path.join(cacheDir(), "converted");
    expect(fs.existsSync(converted) ? fs.readdirSync(converted).filter((f) => f.includes("extra")) : []).toEqual([]);
  });

  it("a prompt longer than the context", async () => {
    const dir = variant("short-context", (d) => editConfig(d, (c) => (c.max_position_embeddings = 40)));
    const model = await VideoModel.load(dir, { cacheDir: cacheDir() });
    await expect(model.generate({ messages: [{ role: "user", content: "Tell me a long story about a fox." }], maxNewTokens: 16 })).rejects.toThrow(
      /the prompt has \d+ tokens and 16 new tokens were requested, but the model's context is 40 tokens: lower --max-new-tokens/,
    );
  });
});
