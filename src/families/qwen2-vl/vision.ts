/**
 * Qwen2-VL vision encoder as an ONNX graph: one call encodes one image or one video (one grid).
 * Reference: transformers 4.57.6 models/qwen2_vl/modeling_qwen2_vl.py — PatchEmbed, VisionRotaryEmbedding,
 * Qwen2VisionTransformerPretrainedModel.rot_pos_emb / forward, Qwen2VLVisionBlock, VisionAttention, PatchMerger.
 *
 *   pixel_values [N, C·2·P·P] ── patch embed (Conv3d, kernel = stride = (2,P,P), as a MatMul) ──▶ x [N, E]
 *   vision_pos_ids [N, 2] ──▶ 2-D rotary cos/sin [N, 1, E/heads]
 *   depth × { x += proj(attn_within_frame(rope(qkv(LN1(x))))) ; x += fc2(act(fc1(LN2(x)))) }
 *   merger: LN(x) ── view [N/4, 4E] ── Linear ── GELU ── Linear ──▶ visual_embeds [N/4, D_llm]
 *
 * Attention is restricted to one temporal slice (cu_seqlens = h·w per t in the reference); since every
 * slice of one grid has the same size, it is a batched attention over t slices: [t, heads, h·w, head_dim].
 */
import { Layers } from "../../onnx/layers.js";
import type { WeightMap } from "../../checkpoint/weight-map.js";
import type { Qwen2VLVisionConfig } from "./config.js";
import { VISION_INPUTS, VISION_OUTPUT } from "../graph-io.js";
import { attendWithinFrames, frameLayoutShape, splitQkv, visionRotary } from "./vision-attention.js";


export function buildQwen2VLVision(layers: Layers, weights: WeightMap, cfg: Qwen2VLVisionConfig): void {
  const g = layers.g;
  const E = cfg.embedDim;
  const heads = cfg.numHeads;
  const hd = E / heads;
  const patchDim = cfg.inChannels * cfg.temporalPatchSize * cfg.patchSize * cfg.patchSize;
  const mlpHidden = E * cfg.mlpRatio;
  const mergeDim = E * cfg.spatialMergeSize ** 2;

  const pixels = g.input(VISION_INPUTS.pixelValues, "float32", ["num_patches", patchDim]);
  const posIds = g.input(VISION_INPUTS.posIds, "int64", ["num_patches", 2]);
  const grid = g.input(VISION_INPUTS.grid, "int64", [3]);

  // Patch embedding: Conv3d with kernel == stride over rows already laid out (C, T, P, P) = a MatMul, no bias.
  let x = g.scope("patch_embed", () =>
    layers.linear(pixels, "visual.patch_embed.proj", weights.take("visual.patch_embed.proj.weight", [E, cfg.inChannels, cfg.temporalPatchSize, cfg.patchSize, cfg.patchSize]), E, patchDim),
  );

  const { cos, sin } = visionRotary(g, posIds, hd);
  const frameShape = frameLayoutShape(g, grid, heads, hd);

  for (let i = 0; i < cfg.depth; i++) {
    const p = `visual.blocks.${i}`;
    x = g.scope(`blocks.${i}`, () => {
      const h1 = layers.layerNorm(x, "norm1", weights.take(`${p}.norm1.weight`, [E]), weights.take(`${p}.norm1.bias`, [E]), 1e-6);
      const attn = g.scope("attn", () => {
        const qkv = layers.linear(h1, "qkv", weights.take(`${p}.attn.qkv.weight`, [3 * E, E]), 3 * E, E, weights.take(`${p}.attn.qkv.bias`, [3 * E]));
        const [q, k, v] = splitQkv(g, qkv, E, heads, hd);
        const merged = attendWithinFrames(g, layers.applyRotary(q, cos, sin, hd), layers.applyRotary(k, cos, sin, hd), v, frameShape, E, hd);
        return layers.linear(merged, "proj", weights.take(`${p}.attn.proj.weight`, [E, E]), E, E, weights.take(`${p}.attn.proj.bias`, [E]));
      });
      const x1 = g.op("Add", [x, attn]);
      const h2 = layers.layerNorm(x1, "norm2", weights.take(`${p}.norm2.weight`, [E]), weights.take(`${p}.norm2.bias`, [E]), 1e-6);
      const mlp = g.scope("mlp", () => {
        const up = layers.linear(h2, "fc1", weights.take(`${p}.mlp.fc1.weight`, [mlpHidden, E]), mlpHidden, E, weights.take(`${p}.mlp.fc1.bias`, [mlpHidden]));
        const act = layers.activation(up, cfg.hiddenAct);
        return layers.linear(act, "fc2", weights.take(`${p}.mlp.fc2.weight`, [E, mlpHidden]), E, mlpHidden, weights.take(`${p}.mlp.fc2.bias`, [E]));
      });
      return g.op("Add", [x1, mlp]);
    });
  }

  const out = g.scope("merger", () => {
    const ln = layers.layerNorm(x, "ln_q", weights.take("visual.merger.ln_q.weight", [E]), weights.take("visual.merger.ln_q.bias", [E]), 1e-6);
    const grouped = g.op("Reshape", [ln, g.ints([-1, mergeDim])]); // [N/4, 4E]: the 4 patches of a 2×2 block are consecutive rows
    const h = layers.linear(grouped, "mlp.0", weights.take("visual.merger.mlp.0.weight", [mergeDim, mergeDim]), mergeDim, mergeDim, weights.take("visual.merger.mlp.0.bias", [mergeDim]));
    const D = cfg.outHiddenSize;
    return layers.linear(layers.activation(h, "gelu"), "mlp.2", weights.take("visual.merger.mlp.2.weight", [D, mergeDim]), D, mergeDim, weights.take("visual.merger.mlp.2.bias", [D]));
  });
  g.output(out, VISION_OUTPUT, "float32", ["num_tokens", cfg.outHiddenSize]);
}
