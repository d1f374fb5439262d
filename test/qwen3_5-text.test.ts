/**
 * Qwen3.5 text decoder graph (src/families/qwen3-5/text.ts) against transformers 5.18 on the tiny dense fixture
 * (test/fixtures/qwen3_5/qwen3_5-tiny/golden.json, recorded by tools/oracle/record_qwen3_5.py, float32, eager):
 * the `text` case's prompt ids at their recorded 3-D positions → logits at the recorded positions, and the decoder
 * state after prefill (conv + recurrent state of the linear layers, keys/values of the attention layer); the 12 greedy
 * tokens through prefill + one-token decode steps carrying that state (the reference's cached path), and again by
 * re-running the prefill graph over prompt + tokens so far; prefill with delta-rule chunks of 8 equal to chunks of 64.
 * Graphs are run directly with onnxruntime (not yet through the engine). Also: the config parser's messages.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import "../src/onnx/no-telemetry.js";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openCheckpoint } from "../src/checkpoint/checkpoint.js";
import { WeightMap } from "../src/checkpoint/weight-map.js";
import { defaultLayerTypes, parseQwen3_5Config, type Qwen3_5Config } from "../src/families/qwen3-5/config.js";
import { buildQwen3_5DecodeStep, buildQwen3_5PrefillDecoder, newConvState, newRecurrentState, pastConvState, pastRecurrentState } from "../src/families/qwen3-5/text.js";
import { newKey, newValue, pastKey, pastValue } from "../src/families/graph-io.js";
import { GraphBuilder } from "../src/onnx/graph.js";
import { Layers } from "../src/onnx/layers.js";
import { materializeTinyCheckpoint } from "../src/testing/tiny-checkpoint.js";
import type { LogitRecord } from "./golden-helpers.js";

const FIXTURE = path.join(import.meta.dirname, "fixtures", "qwen3_5", "qwen3_5-tiny");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "qwen3_5-text-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface Summary {
  shape: number[];
  sum: number;
  abs_sum: number;
  indices: number[];
  values: number[];
}
interface LayerState {
  layer: number;
  kind: string;
  conv_state?: Summary;
  recurrent_state?: Summary;
  keys?: Summary;
  values?: Summary;
}
interface TextCase {
  input_ids: number[];
  position_ids: number[][];
  rope_deltas: number;
  logit_ids: number[];
  logits: LogitRecord[];
  decoder_state: { layers: LayerState[]; get_seq_length: number };
  greedy: { new_tokens: number[]; steps: { step: number; max_abs: number; top20: [number, number][]; at_ids: number[] }[]; full_forward_last: { max_abs: number; top20: [number, number][] } };
}
const golden = JSON.parse(fs.readFileSync(path.join(FIXTURE, "golden.json"), "utf8")) as { cases: { text: TextCase } };
const rawConfig = JSON.parse(fs.readFileSync(path.join(FIXTURE, "config.json"), "utf8")) as Record<string, unknown>;

/** The project's fp32 logit tolerance: 1e-4 × max(1, max |logit|). */
const tolerance = (maxAbs: number) => 1e-4 * Math.max(1, maxAbs);

let session: ort.InferenceSession;
/** The same decoder with delta-rule chunks of 8 tokens: the 34-token prompt runs as 5 chunks (the Loop's carry). */
let session8: ort.InferenceSession;
/** The one-token decode step over the decoder state. */
let stepSession: ort.InferenceSession;
let cfg: Qwen3_5Config;
let unused: string[];

beforeAll(async () => {
  const dir = await materializeTinyCheckpoint(FIXTURE);
  const ckpt = openCheckpoint(dir);
  cfg = parseQwen3_5Config(ckpt.config);
  const weights = new WeightMap(ckpt.tensors, dir);
  const g = new GraphBuilder("qwen3_5_prefill", path.join(tmp, "decoder.onnx.data"));
  buildQwen3_5PrefillDecoder(new Layers(g, "fp32"), weights, cfg.text);
  const g8 = new GraphBuilder("qwen3_5_prefill", path.join(tmp, "decoder8.onnx.data"));
  buildQwen3_5PrefillDecoder(new Layers(g8, "fp32"), new WeightMap(ckpt.tensors, dir), cfg.text, { deltaChunkSize: 8 });
  fs.writeFileSync(path.join(tmp, "decoder8.onnx"), g8.toBytes());
  session8 = await ort.InferenceSession.create(path.join(tmp, "decoder8.onnx"), { intraOpNumThreads: 1 });
  const gs = new GraphBuilder("qwen3_5_step", path.join(tmp, "step.onnx.data"));
  buildQwen3_5DecodeStep(new Layers(gs, "fp32"), new WeightMap(ckpt.tensors, dir), cfg.text);
  fs.writeFileSync(path.join(tmp, "step.onnx"), gs.toBytes());
  stepSession = await ort.InferenceSession.create(path.join(tmp, "step.onnx"), { intraOpNumThreads: 1 });
  // Claiming a tensor the builder already claimed throws ("mapped twice"); one it left succeeds.
  unused = [...ckpt.tensors].filter(([name, info]) => {
    try {
      weights.info(name, info.shape);
      return true;
    } catch {
      return false;
    }
  }).map(([name]) => name);
  const file = path.join(tmp, "decoder.onnx");
  fs.writeFileSync(file, g.toBytes());
  session = await ort.InferenceSession.create(file, { intraOpNumThreads: 1 });
}, 120_000);

async function prefill(ids: number[], positions: number[][], logitPositions: number[], on = session): Promise<ort.InferenceSession.OnnxValueMapType> {
  const S = ids.length;
  return on.run({
    input_ids: new ort.Tensor("int64", BigInt64Array.from(ids.map(BigInt)), [1, S]),
    visual_embeds: new ort.Tensor("float32", new Float32Array(0), [0, cfg.text.hiddenSize]),
    visual_positions: new ort.Tensor("int64", new BigInt64Array(0), [0, 1]),
    position_ids: new ort.Tensor("int64", BigInt64Array.from(positions.flat().map(BigInt)), [3, 1, S]),
    logits_indices: new ort.Tensor("int64", BigInt64Array.from(logitPositions.map(BigInt)), [logitPositions.length]),
  });
}

/** Largest |row[id] − expected| over the reference's sampled ids and its top 20. */
function rowDiff(row: Float32Array, ids: number[], atIds: number[], top20: [number, number][]): number {
  let worst = 0;
  ids.forEach((id, j) => (worst = Math.max(worst, Math.abs(row[id] - atIds[j]))));
  for (const [id, v] of top20) worst = Math.max(worst, Math.abs(row[id] - v));
  return worst;
}

function argmax(row: Float32Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

/** Our tensor (in the reference's layout) against a recorded summary: shape, sum, |sum| and sampled values. */
function checkSummary(ours: Float32Array, shape: number[], ref: Summary, label: string): void {
  expect(shape, label).toEqual(ref.shape);
  let sum = 0;
  let abs = 0;
  for (const v of ours) {
    sum += v;
    abs += Math.abs(v);
  }
  const tol = 1e-5 * (1 + ref.abs_sum);
  expect(Math.abs(sum - ref.sum), `${label} sum`).toBeLessThan(tol);
  expect(Math.abs(abs - ref.abs_sum), `${label} abs_sum`).toBeLessThan(tol);
  ref.indices.forEach((idx, j) => expect(Math.abs(ours[idx] - ref.values[j]), `${label}[${idx}]`).toBeLessThan(1e-4 * Math.max(1, Math.abs(ref.values[j]))));
}

/** [1, S, KV·hd] → [1, KV, S, hd] (the reference cache's layout). */
function headsFirst(t: Float32Array, S: number, KV: number, hd: number): Float32Array {
  const out = new Float32Array(t.length);
  for (let s = 0; s < S; s++) for (let h = 0; h < KV; h++) for (let d = 0; d < hd; d++) out[(h * S + s) * hd + d] = t[(s * KV + h) * hd + d];
  return out;
}

describe("Qwen3.5 text decoder graph vs transformers 5.18 (tiny dense, text case)", () => {
  const c = golden.cases.text;

  it("claims every language-model tensor (mtp.* and model.visual.* are not the decoder's)", () => {
    expect(unused.filter((n) => !n.startsWith("mtp.") && !n.startsWith("model.visual."))).toEqual([]);
  });

  it("prefill logits at the recorded positions match within 1e-4 × max(1, max|logit|)", async () => {
    const positions = c.logits.map((r) => r.position);
    const out = await prefill(c.input_ids, c.position_ids, positions);
    const V = cfg.text.vocabSize;
    expect(out.logits.dims).toEqual([1, positions.length, V]);
    const logits = out.logits.data as Float32Array;
    c.logits.forEach((rec, k) => {
      const row = logits.subarray(k * V, (k + 1) * V);
      expect(rowDiff(row, c.logit_ids, rec.at_ids, rec.top20), `position ${rec.position}`).toBeLessThanOrEqual(tolerance(rec.max_abs));
    });
  });

  it("decoder state after prefill equals the reference cache (conv, recurrent, keys, values)", async () => {
    const S = c.input_ids.length;
    expect(c.decoder_state.get_seq_length).toBe(S);
    const out = await prefill(c.input_ids, c.position_ids, [S - 1]);
    const { numKvHeads: KV, headDim: hd } = cfg.text;
    for (const layer of c.decoder_state.layers) {
      const i = layer.layer;
      expect(layer.kind).toBe(cfg.text.layerTypes[i]);
      if (layer.kind === "linear_attention") {
        const conv = out[newConvState(i)];
        checkSummary(conv.data as Float32Array, [...conv.dims], layer.conv_state!, `layer ${i} conv_state`);
        const rec = out[newRecurrentState(i)];
        checkSummary(rec.data as Float32Array, [...rec.dims], layer.recurrent_state!, `layer ${i} recurrent_state`);
      } else {
        for (const [name, ref] of [[newKey(i), layer.keys!], [newValue(i), layer.values!]] as const) {
          const t = out[name];
          expect(t.dims).toEqual([1, S, KV * hd]);
          checkSummary(headsFirst(t.data as Float32Array, S, KV, hd), [1, KV, S, hd], ref, `layer ${i} ${name}`);
        }
      }
    }
  });

  it("delta-rule chunks of 8 (5 chunks, state carried between them) give the same logits and state", async () => {
    const S = c.input_ids.length;
    const positions = c.logits.map((r) => r.position);
    const [one, five] = [await prefill(c.input_ids, c.position_ids, positions), await prefill(c.input_ids, c.position_ids, positions, session8)];
    const maxDiff = (a: ort.Tensor, b: ort.Tensor) => (a.data as Float32Array).reduce((m, v, j) => Math.max(m, Math.abs(v - (b.data as Float32Array)[j])), 0);
    expect(maxDiff(one.logits, five.logits)).toBeLessThanOrEqual(tolerance(Math.max(...c.logits.map((r) => r.max_abs))));
    for (const layer of c.decoder_state.layers.filter((l) => l.kind === "linear_attention")) {
      expect(maxDiff(one[newRecurrentState(layer.layer)], five[newRecurrentState(layer.layer)]), `layer ${layer.layer}, S = ${S}`).toBeLessThan(1e-5);
    }
  });

  it("12 greedy tokens equal the reference's: prefill, then one-token steps over the carried state (cached decode)", async () => {
    const S = c.input_ids.length;
    const { numKvHeads: KV, headDim: hd, vocabSize: V } = cfg.text;
    const pre = await prefill(c.input_ids, c.position_ids, [S - 1]);
    // The state: linear layers' conv/recurrent tensors as returned; attention layers' keys/values grown per token.
    const state: Record<string, ort.Tensor> = {};
    const kv: Record<string, { data: Float32Array; len: number }> = {};
    cfg.text.layerTypes.forEach((kind, i) => {
      if (kind === "linear_attention") {
        state[pastConvState(i)] = pre[newConvState(i)];
        state[pastRecurrentState(i)] = pre[newRecurrentState(i)];
      } else {
        kv[pastKey(i)] = { data: headsFirst(pre[newKey(i)].data as Float32Array, S, KV, hd), len: S };
        kv[pastValue(i)] = { data: headsFirst(pre[newValue(i)].data as Float32Array, S, KV, hd), len: S };
      }
    });
    /** [1, KV, P, hd] + [1, 1, KV·hd] → [1, KV, P + 1, hd]. */
    const append = (past: { data: Float32Array; len: number }, t: Float32Array) => {
      const P = past.len;
      const out = new Float32Array(KV * (P + 1) * hd);
      for (let h = 0; h < KV; h++) {
        out.set(past.data.subarray(h * P * hd, (h + 1) * P * hd), h * (P + 1) * hd);
        out.set(t.subarray(h * hd, (h + 1) * hd), (h * (P + 1) + P) * hd);
      }
      return { data: out, len: P + 1 };
    };
    let row = pre.logits.data as Float32Array;
    const tokens: number[] = [];
    for (let step = 0; ; step++) {
      const rec = c.greedy.steps.find((r) => r.step === step);
      if (rec) expect(rowDiff(row, c.logit_ids, rec.at_ids, rec.top20), `step ${step}`).toBeLessThanOrEqual(tolerance(rec.max_abs));
      tokens.push(argmax(row.subarray(0, V)));
      if (tokens.length === c.greedy.new_tokens.length) break;
      // Generated token k sits at S + k + rope_deltas on all three axes (M:1896-1932).
      const pos = BigInt(S + step + c.rope_deltas);
      const feeds: Record<string, ort.Tensor> = {
        ...state,
        input_ids: new ort.Tensor("int64", BigInt64Array.from([BigInt(tokens[step])]), [1, 1]),
        position_ids: new ort.Tensor("int64", BigInt64Array.from([pos, pos, pos]), [3, 1, 1]),
        logits_indices: new ort.Tensor("int64", BigInt64Array.from([0n]), [1]),
      };
      for (const [name, t] of Object.entries(kv)) feeds[name] = new ort.Tensor("float32", t.data, [1, KV, t.len, hd]);
      const out = await stepSession.run(feeds);
      cfg.text.layerTypes.forEach((kind, i) => {
        if (kind === "linear_attention") {
          expect(out[newConvState(i)].dims).toEqual(state[pastConvState(i)].dims);
          state[pastConvState(i)] = out[newConvState(i)];
          state[pastRecurrentState(i)] = out[newRecurrentState(i)];
        } else {
          kv[pastKey(i)] = append(kv[pastKey(i)], out[newKey(i)].data as Float32Array);
          kv[pastValue(i)] = append(kv[pastValue(i)], out[newValue(i)].data as Float32Array);
        }
      });
      row = out.logits.data as Float32Array;
    }
    expect(tokens).toEqual(c.greedy.new_tokens);
  }, 60_000);

  it("12 greedy tokens equal the reference's (prefill graph re-run over prompt + tokens so far)", async () => {
    const ids = [...c.input_ids];
    const positions = c.position_ids.map((row) => [...row]);
    const V = cfg.text.vocabSize;
    const tokens: number[] = [];
    for (let step = 0; step < c.greedy.new_tokens.length; step++) {
      const out = await prefill(ids, positions, [ids.length - 1]);
      const row = out.logits.data as Float32Array;
      const rec = c.greedy.steps.find((s) => s.step === step);
      if (rec) expect(rowDiff(row, c.logit_ids, rec.at_ids, rec.top20), `step ${step}`).toBeLessThanOrEqual(tolerance(rec.max_abs));
      const next = argmax(row.subarray(0, V));
      tokens.push(next);
      // Generated token k sits at S + k + rope_deltas on all three axes (M:1896-1932).
      const pos = ids.length + c.rope_deltas;
      ids.push(next);
      for (const axis of positions) axis.push(pos);
    }
    expect(tokens).toEqual(c.greedy.new_tokens);
  }, 60_000);
});

describe("Qwen3.5 config parser", () => {
  const text = rawConfig.text_config as Record<string, unknown>;
  const withText = (patch: Record<string, unknown>) => ({ ...rawConfig, text_config: { ...text, ...patch } });
  const rope = text.rope_parameters as Record<string, unknown>;

  it("reads the tiny fixture's config", () => {
    const c = parseQwen3_5Config(rawConfig);
    expect(c.text.layerTypes).toEqual(["linear_attention", "linear_attention", "linear_attention", "full_attention"]);
    expect(c.text.linear).toEqual({ convKernel: 4, numKeyHeads: 2, keyHeadDim: 32, numValueHeads: 4, valueHeadDim: 48 });
    expect(c.text.rotaryDim).toBe(16);
    expect(c.text.mropeSection).toEqual([3, 3, 2]);
    expect(c.text.ropeTheta).toBe(1e7);
    expect(c.text.tieWordEmbeddings).toBe(false);
    expect(c.videoTokenId).toBe(151656);
  });

  it("defaults layer_types from full_attention_interval (C:112) and accepts the 4.x rope_scaling spelling", () => {
    expect(defaultLayerTypes(8, 4)).toEqual([...Array(3).fill("linear_attention"), "full_attention", ...Array(3).fill("linear_attention"), "full_attention"]);
    const c = parseQwen3_5Config(withText({ layer_types: undefined, full_attention_interval: 2, rope_parameters: undefined, rope_scaling: { ...rope, rope_theta: undefined }, rope_theta: 5e6 }));
    expect(c.text.layerTypes).toEqual(["linear_attention", "full_attention", "linear_attention", "full_attention"]);
    expect(c.text.ropeTheta).toBe(5e6);
  });

  it.each([
    [{ layer_types: ["linear_attention", "full_attention"] }, /^config\.json: text_config\.layer_types must list num_hidden_layers \(4\) entries/],
    [{ layer_types: ["linear_attention", "linear_attention", "linear_attention", "sliding_attention"] }, /text_config\.layer_types must list/],
    [{ linear_num_value_heads: 3 }, /^config\.json: text_config\.linear_num_value_heads must be a multiple of linear_num_key_heads 2 \(got 3\)$/],
    [{ linear_conv_kernel_dim: 0 }, /^config\.json: text_config\.linear_conv_kernel_dim must be an integer in \[1, 64\] \(got 0\)$/],
    [{ linear_key_head_dim: "32" }, /^config\.json: text_config\.linear_key_head_dim must be an integer/],
    [{ rope_parameters: { ...rope, mrope_section: [3, 3, 3] } }, /^config\.json: text_config\.rope_parameters\.mrope_section must sum to rotary_dim\/2 = 8/],
    [{ rope_parameters: { ...rope, partial_rotary_factor: 1.5 } }, /^config\.json: text_config\.rope_parameters\.partial_rotary_factor must be a number in \(0, 1\]/],
    [{ rope_parameters: { ...rope, rope_type: "yarn" } }, /^config\.json: text_config\.rope_parameters\.rope_type must be one of default/],
    [{ rope_parameters: undefined }, /^config\.json: text_config\.rope_parameters must be an object/],
    [{ num_key_value_heads: 3 }, /^config\.json: text_config\.num_key_value_heads must divide num_attention_heads 4/],
    [{ rms_norm_eps: -1 }, /^config\.json: text_config\.rms_norm_eps must be a number/],
    [{ hidden_act: "relu2" }, /^config\.json: text_config\.hidden_act must be one of/],
  ])("rejects %j in one line naming the key", (patch, message) => {
    let err: Error | undefined;
    try {
      parseQwen3_5Config(withText(patch));
    } catch (e) {
      err = e as Error;
    }
    expect(err?.message).toMatch(message);
    expect(err?.message).not.toContain("\n");
  });

  it("requires text_config", () => {
    expect(() => parseQwen3_5Config({ ...rawConfig, text_config: undefined })).toThrow(/^config\.json: text_config is missing/);
  });
});
