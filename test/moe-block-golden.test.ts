/**
 * src/onnx/moe.ts against the transformers MoE blocks themselves: each MoE fixture's `moe_block` case (layer 0's
 * `mlp` alone on 6 random rows, recorded in float32 by tools/oracle/record_qwen3_5_moe.py with 5.18's
 * Qwen3_5MoeSparseMoeBlock, and by record_qwen3_vl_moe.py with 4.57.6's Qwen3VLMoeTextSparseMoeBlock). The 5.x
 * checkpoint's fused experts are the builder's canonical layout (+ shared expert, via moe-mlp.ts's takeMoeWeights);
 * 4.57.6's are x @ W stacks ([E, h, 2·Im], [E, Im, h]) read through the family's loader (families/moe-experts.ts "in-out"), no shared expert. fp32 within
 * 1e-5 of max |y| (measured 2.6e-7, 2.2e-7); int8 within 3e-2 (measured 0.9e-2, 1.4e-2); int4 within 0.2 (measured 0.13,
 * 0.11: 4-bit blocks of uniformly random weights, a step of 1/15 of each block's range; test/moe.test.ts checks int4
 * against the dequantised weights, where the error is only the activations' int8 rounding).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import "../src/onnx/no-telemetry.js";
import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { openCheckpoint } from "../src/checkpoint/checkpoint.js";
import { WeightMap } from "../src/checkpoint/weight-map.js";
import { takeMoeWeights } from "../src/families/qwen3-5/moe-mlp.js";
import { GraphBuilder } from "../src/onnx/graph.js";
import { Layers, type WeightPrecision } from "../src/onnx/layers.js";
import { expertWeights } from "../src/families/moe-experts.js";
import { type MoeConfig, type MoeWeights, sparseMoe } from "../src/onnx/moe.js";
import { materializeTinyCheckpoint } from "../src/testing/tiny-checkpoint.js";

const FIXTURES = path.join(import.meta.dirname, "fixtures");

interface BlockCase {
  layer: number;
  shape: number[];
  input: number[];
  output: number[];
  topk_ids: number[][];
}

async function fixture(rel: string): Promise<{ block: BlockCase; text: Record<string, unknown>; weights: WeightMap }> {
  const dir = path.join(FIXTURES, rel);
  const golden = JSON.parse(fs.readFileSync(path.join(dir, "golden.json"), "utf8")) as { moe_block: BlockCase };
  const ckpt = openCheckpoint(await materializeTinyCheckpoint(dir));
  return { block: golden.moe_block, text: ckpt.config.text_config as Record<string, unknown>, weights: new WeightMap(ckpt.tensors, ckpt.dir) };
}

async function run(cfg: MoeConfig, weights: MoeWeights, precision: WeightPrecision, block: BlockCase): Promise<number> {
  const g = new GraphBuilder("moe_block");
  g.output(sparseMoe(new Layers(g, precision), g.input("x", "float32", block.shape), "mlp", cfg, weights), "y", "float32", block.shape);
  const session = await ort.InferenceSession.create(g.toBytes(), { intraOpNumThreads: 1 });
  const y = (await session.run({ x: new ort.Tensor("float32", Float32Array.from(block.input), block.shape) })).y.data as Float32Array;
  await session.release();
  let err = 0;
  let scale = 0;
  block.output.forEach((v, i) => {
    err = Math.max(err, Math.abs(y[i] - v));
    scale = Math.max(scale, Math.abs(v));
  });
  return err / scale;
}

const tolerance: Record<WeightPrecision, number> = { fp32: 1e-5, fp16: 5e-3, int8: 3e-2, int4: 0.2 };

describe("sparse MoE block = the transformers block (fixtures' moe_block case)", () => {
  for (const precision of ["fp32", "int8", "int4"] as const) {
    it(`Qwen3.5-MoE (5.18, fused experts + shared expert), ${precision}`, async () => {
      const { block, text, weights } = await fixture("qwen3_5_moe/qwen3_5_moe-tiny");
      const moe = { numExperts: text.num_experts as number, numExpertsPerTok: text.num_experts_per_tok as number, moeIntermediateSize: text.moe_intermediate_size as number, sharedExpertIntermediateSize: text.shared_expert_intermediate_size as number };
      const h = text.hidden_size as number;
      const cfg: MoeConfig = { hidden: h, numExperts: moe.numExperts, topK: moe.numExpertsPerTok, intermediate: moe.moeIntermediateSize, sharedIntermediate: moe.sharedExpertIntermediateSize };
      const rel = await run(cfg, takeMoeWeights(weights, `model.language_model.layers.${block.layer}.mlp`, moe, h), precision, block);
      console.log(`qwen3_5_moe moe_block ${precision}: max |Δ| / max |y| = ${rel.toExponential(2)}`);
      expect(rel).toBeLessThan(tolerance[precision]);
    });

    it(`Qwen3-VL-MoE (4.57.6, x @ W experts, no shared expert), ${precision}`, async () => {
      const { block, text, weights } = await fixture("qwen3_vl_moe/qwen3_vl_moe-tiny");
      const [E, k, Im, h] = [text.num_experts, text.num_experts_per_tok, text.moe_intermediate_size, text.hidden_size] as number[];
      const p = `model.language_model.layers.${block.layer}.mlp`;
      const cfg: MoeConfig = { hidden: h, numExperts: E, topK: k, intermediate: Im, normTopkProb: true };
      const w: MoeWeights = {
        router: weights.take(`${p}.gate.weight`, [E, h]),
        ...expertWeights(weights, p, { numExperts: E, hidden: h, intermediate: Im }, "in-out"), // the family's loader
      };
      const rel = await run(cfg, w, precision, block);
      console.log(`qwen3_vl_moe moe_block ${precision}: max |Δ| / max |y| = ${rel.toExponential(2)}`);
      expect(rel).toBeLessThan(tolerance[precision]);
    });
  }
});
