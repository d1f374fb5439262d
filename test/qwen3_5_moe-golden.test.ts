/**
 * Qwen3.5-MoE (model_type `qwen3_5_moe`) text decoder with the sparse MoE block against transformers 5.18 on the tiny
 * fixtures (test/fixtures/qwen3_5_moe/, recorded by tools/oracle/record_qwen3_5_moe.py, float32, eager experts):
 * the `text` case's logits at the recorded positions and its 12 greedy tokens (each step one full prefill over the
 * prompt and the tokens so far), for the fused expert tensors (`experts.gate_up_proj` / `experts.down_proj`) and the
 * per-expert ones (`experts.{j}.{gate,up,down}_proj.weight`, the same values), which must give identical logits.
 * Graphs are built by text.ts with moe-mlp.ts's hook and run directly with onnxruntime (the engine path is the
 * family's `buildQwen3_5EngineDecoder` with the same hook, once `qwen3_5_moe` is registered). Also the config parser.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import "../src/onnx/no-telemetry.js";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openCheckpoint } from "../src/checkpoint/checkpoint.js";
import { WeightMap } from "../src/checkpoint/weight-map.js";
import { parseQwen3_5MoeFamilyConfig, type Qwen3_5MoeFamilyConfig } from "../src/families/qwen3-5/moe-family.js";
import { qwen3_5MoeMlp } from "../src/families/qwen3-5/moe-mlp.js";
import { buildQwen3_5PrefillDecoder } from "../src/families/qwen3-5/text.js";
import { sanitizeQwen3_5TensorName } from "../src/families/qwen3-5/family.js";
import { GraphBuilder } from "../src/onnx/graph.js";
import { Layers, type WeightPrecision } from "../src/onnx/layers.js";
import { materializeTinyCheckpoint } from "../src/testing/tiny-checkpoint.js";
import type { LogitRecord } from "./golden-helpers.js";

const FIXTURES = path.join(import.meta.dirname, "fixtures", "qwen3_5_moe");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "qwen3_5_moe-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface TextCase {
  input_ids: number[];
  position_ids: number[][];
  logit_ids: number[];
  logits: LogitRecord[];
  greedy: { new_tokens: number[] };
}
const readGolden = (name: string) => JSON.parse(fs.readFileSync(path.join(FIXTURES, name, "golden.json"), "utf8")) as { cases: { text: TextCase } };

/** The project's fp32 logit tolerance: 1e-4 × max(1, max |logit|). */
const tolerance = (maxAbs: number) => 1e-4 * Math.max(1, maxAbs);

/** The prefill decoder of a fixture with the MoE hook; `unused` lists the checkpoint tensors it did not claim. */
async function load(name: string, precision: WeightPrecision = "fp32"): Promise<{ session: ort.InferenceSession; cfg: Qwen3_5MoeFamilyConfig; unused: string[] }> {
  const dir = await materializeTinyCheckpoint(path.join(FIXTURES, name));
  const ckpt = openCheckpoint(dir);
  const cfg = parseQwen3_5MoeFamilyConfig(ckpt.config);
  const tensors = new Map([...ckpt.tensors].flatMap(([n, info]) => {
    const s = sanitizeQwen3_5TensorName(n);
    return s ? [[s, info] as const] : [];
  }));
  const weights = new WeightMap(tensors, dir);
  const file = path.join(tmp, `${name}-${precision}.onnx`);
  const g = new GraphBuilder("qwen3_5_moe_prefill", `${file}.data`);
  buildQwen3_5PrefillDecoder(new Layers(g, precision), weights, cfg.text, { mlp: qwen3_5MoeMlp(cfg.moe, cfg.text.hiddenSize, cfg.text.hiddenAct) });
  fs.writeFileSync(file, g.toBytes());
  const unused = [...tensors].filter(([n]) => !n.startsWith("model.visual.")).filter(([n, info]) => {
    try {
      weights.info(n, info.shape); // succeeds only for a tensor the builder left
      return true;
    } catch {
      return false;
    }
  }).map(([n]) => n);
  return { session: await ort.InferenceSession.create(file, { intraOpNumThreads: 1 }), cfg, unused };
}

async function logitsAt(session: ort.InferenceSession, h: number, ids: number[], positions: number[][], at: number[]): Promise<Float32Array> {
  const S = ids.length;
  const out = await session.run({
    input_ids: new ort.Tensor("int64", BigInt64Array.from(ids.map(BigInt)), [1, S]),
    visual_embeds: new ort.Tensor("float32", new Float32Array(0), [0, h]),
    visual_positions: new ort.Tensor("int64", new BigInt64Array(0), [0, 1]),
    position_ids: new ort.Tensor("int64", BigInt64Array.from(positions.flat().map(BigInt)), [3, 1, S]),
    logits_indices: new ort.Tensor("int64", BigInt64Array.from(at.map(BigInt)), [at.length]),
  });
  return out.logits.data as Float32Array;
}

function checkLogits(logits: Float32Array, V: number, c: TextCase): number {
  let worst = 0;
  c.logits.forEach((rec, r) => {
    const row = logits.subarray(r * V, (r + 1) * V);
    let d = 0;
    c.logit_ids.forEach((id, j) => (d = Math.max(d, Math.abs(row[id] - rec.at_ids[j]))));
    for (const [id, v] of rec.top20) d = Math.max(d, Math.abs(row[id] - v));
    expect(d).toBeLessThan(tolerance(rec.max_abs));
    worst = Math.max(worst, d);
  });
  return worst;
}

/** Greedy tokens by full passes: the text case's positions continue as t on all three axes (rope delta 0). */
async function greedy(session: ort.InferenceSession, h: number, V: number, c: TextCase, n: number): Promise<number[]> {
  const ids = [...c.input_ids];
  const positions = c.position_ids.map((axis) => [...axis]);
  const out: number[] = [];
  for (let step = 0; step < n; step++) {
    const row = await logitsAt(session, h, ids, positions, [ids.length - 1]);
    let best = 0;
    for (let i = 1; i < V; i++) if (row[i] > row[best]) best = i;
    out.push(best);
    const next = positions[0][positions[0].length - 1] + 1;
    ids.push(best);
    positions.forEach((axis) => axis.push(next));
  }
  return out;
}

describe("Qwen3.5-MoE golden (text): sparse MoE block in the Qwen3.5 decoder", () => {
  const fused: { name: string; logits: Float32Array } = { name: "qwen3_5_moe-tiny", logits: new Float32Array(0) };
  let fusedModel: Awaited<ReturnType<typeof load>>;
  beforeAll(async () => {
    fusedModel = await load(fused.name);
  }, 120_000);

  it("config: the MoE keys, and every language-model tensor claimed (mtp.* ignored)", () => {
    expect(fusedModel.cfg.modelType).toBe("qwen3_5_moe");
    expect(fusedModel.cfg.moe).toEqual({ numExperts: 8, numExpertsPerTok: 2, moeIntermediateSize: 32, sharedExpertIntermediateSize: 48 });
    expect(fusedModel.unused).toEqual([]);
  });

  it("fused experts: logits at the recorded positions within 1e-4 × max|logit|, 12 greedy tokens", async () => {
    const c = readGolden(fused.name).cases.text;
    const { hiddenSize: h, vocabSize: V } = fusedModel.cfg.text;
    fused.logits = await logitsAt(fusedModel.session, h, c.input_ids, c.position_ids, c.logits.map((r) => r.position));
    const worst = checkLogits(fused.logits, V, c);
    console.log(`qwen3_5_moe-tiny text: max |Δlogit| ${worst.toExponential(2)}`);
    expect(await greedy(fusedModel.session, h, V, c, c.greedy.new_tokens.length)).toEqual(c.greedy.new_tokens);
  }, 120_000);

  it("per-expert tensors: the same logits as the fused ones (bit for bit), and the recorded ones", async () => {
    const name = "qwen3_5_moe-tiny-per-expert";
    const c = readGolden(name).cases.text;
    const m = await load(name);
    expect(m.unused).toEqual([]);
    const logits = await logitsAt(m.session, m.cfg.text.hiddenSize, c.input_ids, c.position_ids, c.logits.map((r) => r.position));
    checkLogits(logits, m.cfg.text.vocabSize, c);
    expect(Array.from(logits)).toEqual(Array.from(fused.logits));
  }, 120_000);

  it("config errors name the key", () => {
    const raw = JSON.parse(fs.readFileSync(path.join(FIXTURES, fused.name, "config.json"), "utf8")) as { text_config: Record<string, unknown> };
    const bad = (patch: Record<string, unknown>) => () => parseQwen3_5MoeFamilyConfig({ ...raw, text_config: { ...raw.text_config, ...patch } });
    expect(bad({ num_experts_per_tok: 9 })).toThrow(/text_config\.num_experts_per_tok must be an integer in \[1, 8\]/);
    expect(bad({ num_experts: 0 })).toThrow(/text_config\.num_experts must be/);
    expect(bad({ moe_intermediate_size: undefined })).toThrow(/text_config\.moe_intermediate_size/);
  });
});
