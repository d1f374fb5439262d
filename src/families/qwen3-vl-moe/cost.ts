/**
 * Qwen3-VL-MoE's decoder for the cost estimate (bench/cost.ts `DecoderLayerCost`): Qwen3-VL's attention layer with
 * the feed-forward of its kind — sparse layers: router [E, h] and E experts of gate/up [Im, h] + down [h, Im], of which
 * one token goes through the router and k experts (`activeParams`); dense layers: Qwen3-VL's SwiGLU MLP.
 */
import { qwen2VLLayerCost, type DecoderLayerCost } from "../../bench/cost.js";
import { isSparseLayer, type Qwen3VLMoeConfig } from "./config.js";

export function qwen3VLMoeDecoderCost(cfg: Qwen3VLMoeConfig): DecoderLayerCost[] {
  const t = cfg.text;
  const h = t.hiddenSize;
  const { numExperts: E, numExpertsPerTok: k, moeIntermediateSize: Im } = cfg.moe;
  const dense = qwen2VLLayerCost(t);
  const attention = dense.params - 3 * h * t.intermediateSize;
  return Array.from({ length: t.numLayers }, (_, i): DecoderLayerCost => {
    if (!isSparseLayer(cfg.moe, i)) return dense;
    const router = E * h;
    const expert = 3 * h * Im;
    return { params: attention + router + E * expert, activeParams: attention + router + k * expert, mixer: dense.mixer };
  });
}
