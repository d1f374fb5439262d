/**
 * A mixture-of-experts layer's expert weights, from whichever layout the checkpoint has, in the canonical layout of
 * src/onnx/moe.ts (per expert e: gate_up [2·Im, h] with the gate rows first, down [h, Im]; nn.Linear [out, in]):
 *
 *   fused, "out-in"  `{prefix}.experts.gate_up_proj` [E, 2·Im, h], `{prefix}.experts.down_proj` [E, h, Im]
 *                    (transformers 5.x Qwen3_5MoeExperts, qwen3_5_moe/modeling_qwen3_5_moe.py: F.linear per expert)
 *   fused, "in-out"  `{prefix}.experts.gate_up_proj` [E, h, 2·Im], `{prefix}.experts.down_proj` [E, Im, h]
 *                    (transformers 4.57.6 Qwen3VLMoeTextExperts, qwen3_vl_moe/modeling_qwen3_vl_moe.py:74-75:
 *                    `x @ gate_up_proj[e]`; the Qwen3-VL-MoE hub checkpoints)
 *   per expert       `{prefix}.experts.{j}.gate_proj.weight` [Im, h], `.up_proj.weight` [Im, h], `.down_proj.weight`
 *                    [h, Im] (Qwen2/Qwen3-MoE style; transformers 5.x fuses them on load with the `qwen2_moe`
 *                    conversion mapping, conversion_mapping.py, so both layouts describe the same model)
 *
 * The fused orientation is the family's (both are square-ambiguous when h = 2·Im), the per-expert layout is detected
 * by name. Experts are read one at a time (WeightMap.takeSlices) so converting a 128-expert layer never holds the
 * whole stack in float32.
 */
import { readTensorFloat32 } from "../checkpoint/safetensors.js";
import type { WeightMap } from "../checkpoint/weight-map.js";
import { transpose } from "../onnx/layers.js";
import type { ExpertTensor } from "../onnx/moe.js";

export type FusedExpertOrientation = "out-in" | "in-out";

export interface ExpertShape {
  numExperts: number;
  hidden: number;
  intermediate: number;
}

export function expertWeights(weights: WeightMap, prefix: string, shape: ExpertShape, fused: FusedExpertOrientation): { gateUp: ExpertTensor; down: ExpertTensor } {
  const { numExperts: E, hidden: h, intermediate: Im } = shape;
  if (weights.has(`${prefix}.experts.gate_up_proj`)) {
    if (fused === "out-in") {
      return { gateUp: weights.takeSlices(`${prefix}.experts.gate_up_proj`, [E, 2 * Im, h]), down: weights.takeSlices(`${prefix}.experts.down_proj`, [E, h, Im]) };
    }
    const gateUp = weights.takeSlices(`${prefix}.experts.gate_up_proj`, [E, h, 2 * Im]);
    const down = weights.takeSlices(`${prefix}.experts.down_proj`, [E, Im, h]);
    return { gateUp: (e) => transpose(gateUp(e), h, 2 * Im), down: (e) => transpose(down(e), Im, h) };
  }
  // Per-expert tensors: claimed now (a missing or misshapen one is reported before any graph is built), read on use.
  const claim = (j: number, name: string, dims: number[]) => weights.info(`${prefix}.experts.${j}.${name}.weight`, dims);
  const perExpert = Array.from({ length: E }, (_, j) => ({ gate: claim(j, "gate_proj", [Im, h]), up: claim(j, "up_proj", [Im, h]), down: claim(j, "down_proj", [h, Im]) }));
  return {
    gateUp: (e) => {
      const out = new Float32Array(2 * Im * h);
      out.set(readTensorFloat32(perExpert[e].gate), 0);
      out.set(readTensorFloat32(perExpert[e].up), Im * h);
      return out;
    },
    down: (e) => readTensorFloat32(perExpert[e].down),
  };
}
