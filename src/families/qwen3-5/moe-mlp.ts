/**
 * Qwen3.5-MoE's decoder MLP: the sparse MoE block (src/onnx/moe.ts) over the layer's checkpoint tensors, as the
 * `Qwen3_5DecoderOptions.mlp` hook of text.ts.
 * Reference: docs/qwen3_5-reference.md §2 (MoE weights) and §10 (transformers 5.18.0 qwen3_5_moe
 * Qwen3_5MoeSparseMoeBlock, MoE:903-922).
 *
 * Tensors, prefix `model.language_model.layers.{i}.mlp.`:
 *   gate.weight [E, h]                                          router
 *   experts.gate_up_proj [E, 2·Im, h], experts.down_proj [E, h, Im]      fused (the 5.x layout = moe.ts's canonical one)
 *   or experts.{j}.{gate,up}_proj.weight [Im, h], experts.{j}.down_proj.weight [h, Im]   per expert (older writers;
 *     transformers fuses them on load with the qwen2_moe converter, conversion_mapping.py: gate/up stacked over
 *     experts and concatenated on dim 1 — here each expert's gate rows then its up rows, the same matrix)
 *   shared_expert.{gate,up}_proj.weight [Is, h], shared_expert.down_proj.weight [h, Is], shared_expert_gate.weight [1, h]
 */
import type { WeightMap } from "../../checkpoint/weight-map.js";
import { type MoeWeights, sparseMoe } from "../../onnx/moe.js";
import { expertWeights } from "../moe-experts.js";
import type { Qwen3_5MoeBlockConfig } from "./moe-config.js";
import type { Qwen3_5MlpBuilder } from "./text.js";

/** Hub tensor prefix of the language model. */
const LM = "model.language_model";

/** The MoE block's tensors of decoder layer i. */
export function takeMoeWeights(weights: WeightMap, prefix: string, moe: Qwen3_5MoeBlockConfig, h: number): MoeWeights {
  const { numExperts: E, moeIntermediateSize: Im, sharedExpertIntermediateSize: Is } = moe;
  const router = weights.take(`${prefix}.gate.weight`, [E, h]);
  // Fused ([E, 2·Im, h], [E, h, Im]: the 5.x layout) or per-expert tensors, read one expert at a time.
  const experts = expertWeights(weights, prefix, { numExperts: E, hidden: h, intermediate: Im }, "out-in");
  const sharedGateUp = new Float32Array(2 * Is * h);
  sharedGateUp.set(weights.take(`${prefix}.shared_expert.gate_proj.weight`, [Is, h]), 0);
  sharedGateUp.set(weights.take(`${prefix}.shared_expert.up_proj.weight`, [Is, h]), Is * h);
  return {
    router,
    ...experts,
    shared: {
      gateUp: sharedGateUp,
      down: weights.take(`${prefix}.shared_expert.down_proj.weight`, [h, Is]),
      gate: weights.take(`${prefix}.shared_expert_gate.weight`, [1, h]),
    },
  };
}

/** The text.ts MLP hook for Qwen3.5-MoE: every decoder layer's MLP is the sparse MoE block. */
export function qwen3_5MoeMlp(moe: Qwen3_5MoeBlockConfig, hiddenSize: number, hiddenAct: string): Qwen3_5MlpBuilder {
  return (layers, weights, h, i) => {
    const prefix = `${LM}.layers.${i}.mlp`;
    return sparseMoe(
      layers,
      h,
      "mlp",
      {
        hidden: hiddenSize,
        numExperts: moe.numExperts,
        topK: moe.numExpertsPerTok,
        intermediate: moe.moeIntermediateSize,
        sharedIntermediate: moe.sharedExpertIntermediateSize,
        normTopkProb: true, // Qwen3_5MoeTopKRouter always renormalises
        act: hiddenAct,
      },
      takeMoeWeights(weights, prefix, moe, hiddenSize),
    );
  };
}
