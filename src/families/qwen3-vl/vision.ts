/**
 * Qwen3-VL vision encoder as an ONNX graph, written as differences from Qwen2-VL's (../qwen2-vl/vision.ts):
 *   - patch 16 and the patch-embedding Conv3d has a bias;
 *   - learned position embeddings: `pos_embed` (a √n × √n table) resized bilinearly to the grid and added after the
 *     patch embedding — the taps/weights come in as inputs (pos-embed.ts), the weighted gather-sum is here;
 *   - blocks: LayerNorm, attention as Qwen2-VL (2-D rotary, per-frame), MLP `linear_fc1` → hidden_act → `linear_fc2`;
 *   - merger names `norm`, `linear_fc1`, `linear_fc2`; DeepStack: after each block listed in deepstack_visual_indexes,
 *     its own merger with the LayerNorm *after* the 2×2 shuffle (use_postshuffle_norm: view [N/4, 4E] then LN(4E)).
 * Qwen3.5's tower (transformers 5.18 models/qwen3_5/modeling_qwen3_5.py Qwen3_5VisionModel) is this one with no
 * DeepStack levels (empty deepstack_visual_indexes: the graph then has only `visual_embeds`).
 * Reference: transformers 4.57.6 models/qwen3_vl/modeling_qwen3_vl.py — Qwen3VLVisionPatchEmbed, Qwen3VLVisionModel
 * (fast_pos_embed_interpolate, rot_pos_emb, forward), Qwen3VLVisionBlock, Qwen3VLVisionAttention,
 * Qwen3VLVisionPatchMerger. Facts doc §2.4, §2.9, §2.10.
 *
 *   pixel_values [N, C·2·P·P] ── Conv3d as MatMul + bias ──▶ x [N, E]
 *   pos_embed_indices/weights [4, N] ── Σ_q w_q · pos_embed[idx_q] ──▶ + x
 *   depth × block;  after block i ∈ deepstack_visual_indexes: deepstack_k = merger_k(x)  [N/4, D]
 *   merger: LN(x) ── view [N/4, 4E] ── fc1 ── GELU ── fc2 ──▶ visual_embeds [N/4, D]
 *   deepstack_embeds = stack_k(deepstack_k) [L, N/4, D]
 */
import type { WeightMap } from "../../checkpoint/weight-map.js";
import type { Layers } from "../../onnx/layers.js";
import { f32bytes } from "../../onnx/layers.js";
import { VISION_INPUTS, VISION_OUTPUT } from "../graph-io.js";
import { DEEPSTACK_EMBEDS } from "../graph-io.js";
import { attendWithinFrames, frameLayoutShape, splitQkv, visionRotary } from "../qwen2-vl/vision-attention.js";
import type { Qwen3VLVisionConfig } from "./config.js";

/** Extra vision inputs of Qwen3-VL (computed per grid by `posEmbedTaps`). */
export const POS_EMBED_INPUTS = {
  /** int64 [4, N]: table rows of the 4 bilinear taps per patch. */
  indices: "pos_embed_indices",
  /** float32 [4, N]: their weights. */
  weights: "pos_embed_weights",
} as const;

export function buildQwen3VLVision(layers: Layers, weights: WeightMap, cfg: Qwen3VLVisionConfig): void {
  const g = layers.g;
  const E = cfg.embedDim;
  const heads = cfg.numHeads;
  const hd = E / heads;
  const patchDim = cfg.inChannels * cfg.temporalPatchSize * cfg.patchSize * cfg.patchSize;
  const I = cfg.intermediateSize;
  const mergeDim = E * cfg.spatialMergeSize ** 2;
  const D = cfg.outHiddenSize;
  const v = "model.visual";

  const pixels = g.input(VISION_INPUTS.pixelValues, "float32", ["num_patches", patchDim]);
  const posIds = g.input(VISION_INPUTS.posIds, "int64", ["num_patches", 2]);
  const grid = g.input(VISION_INPUTS.grid, "int64", [3]);
  const tapIndices = g.input(POS_EMBED_INPUTS.indices, "int64", [4, "num_patches"]);
  const tapWeights = g.input(POS_EMBED_INPUTS.weights, "float32", [4, "num_patches"]);

  let x = g.scope("patch_embed", () =>
    layers.linear(
      pixels,
      "proj",
      weights.take(`${v}.patch_embed.proj.weight`, [E, cfg.inChannels, cfg.temporalPatchSize, cfg.patchSize, cfg.patchSize]),
      E,
      patchDim,
      weights.take(`${v}.patch_embed.proj.bias`, [E]),
    ),
  );

  // Bilinear position embedding: pos_embed(idx) · w summed over the 4 taps in the reference's order (p0+p1)+p2+p3.
  x = g.scope("pos_embed", () => {
    const table = g.weight("pos_embed.weight", "float32", [cfg.numPositionEmbeddings, E], f32bytes(weights.take(`${v}.pos_embed.weight`, [cfg.numPositionEmbeddings, E])));
    const weighted = g.op("Mul", [g.op("Gather", [table, tapIndices], { axis: 0 }), g.op("Unsqueeze", [tapWeights, g.ints([2])])]); // [4, N, E]
    const taps = g.opN("Split", [weighted, g.ints([1, 1, 1, 1])], { axis: 0 }, 4); // 4 × [1, N, E]
    const sum = g.op("Add", [g.op("Add", [g.op("Add", [taps[0], taps[1]]), taps[2]]), taps[3]]);
    return g.op("Add", [x, g.op("Squeeze", [sum, g.ints([0])])]); // [N, E]
  });

  // 2-D rotary and per-frame attention as Qwen2-VL (Qwen3VLVisionRotaryEmbedding(head_dim / 2), theta 10000).
  const { cos, sin } = visionRotary(g, posIds, hd);
  const frameShape = frameLayoutShape(g, grid, heads, hd);

  const merger = (prefix: string, scope: string, input: string, postShuffle: boolean): string =>
    g.scope(scope, () => {
      const normDim = postShuffle ? mergeDim : E;
      const pre = postShuffle ? g.op("Reshape", [input, g.ints([-1, mergeDim])]) : input; // [N/4, 4E] before the norm
      const ln = layers.layerNorm(pre, "norm", weights.take(`${prefix}.norm.weight`, [normDim]), weights.take(`${prefix}.norm.bias`, [normDim]), 1e-6);
      const grouped = g.op("Reshape", [ln, g.ints([-1, mergeDim])]); // [N/4, 4E]: a 2×2 block's patches are consecutive rows
      const h = layers.linear(grouped, "linear_fc1", weights.take(`${prefix}.linear_fc1.weight`, [mergeDim, mergeDim]), mergeDim, mergeDim, weights.take(`${prefix}.linear_fc1.bias`, [mergeDim]));
      return layers.linear(layers.activation(h, "gelu"), "linear_fc2", weights.take(`${prefix}.linear_fc2.weight`, [D, mergeDim]), D, mergeDim, weights.take(`${prefix}.linear_fc2.bias`, [D]));
    });

  const deepstack: string[] = [];
  for (let i = 0; i < cfg.depth; i++) {
    const p = `${v}.blocks.${i}`;
    x = g.scope(`blocks.${i}`, () => {
      const h1 = layers.layerNorm(x, "norm1", weights.take(`${p}.norm1.weight`, [E]), weights.take(`${p}.norm1.bias`, [E]), 1e-6);
      const attn = g.scope("attn", () => {
        const qkv = layers.linear(h1, "qkv", weights.take(`${p}.attn.qkv.weight`, [3 * E, E]), 3 * E, E, weights.take(`${p}.attn.qkv.bias`, [3 * E]));
        const [q, k, val] = splitQkv(g, qkv, E, heads, hd);
        const merged = attendWithinFrames(g, layers.applyRotary(q, cos, sin, hd), layers.applyRotary(k, cos, sin, hd), val, frameShape, E, hd);
        return layers.linear(merged, "proj", weights.take(`${p}.attn.proj.weight`, [E, E]), E, E, weights.take(`${p}.attn.proj.bias`, [E]));
      });
      const x1 = g.op("Add", [x, attn]);
      const h2 = layers.layerNorm(x1, "norm2", weights.take(`${p}.norm2.weight`, [E]), weights.take(`${p}.norm2.bias`, [E]), 1e-6);
      const mlp = g.scope("mlp", () => {
        const up = layers.linear(h2, "linear_fc1", weights.take(`${p}.mlp.linear_fc1.weight`, [I, E]), I, E, weights.take(`${p}.mlp.linear_fc1.bias`, [I]));
        return layers.linear(layers.activation(up, cfg.hiddenAct), "linear_fc2", weights.take(`${p}.mlp.linear_fc2.weight`, [E, I]), E, I, weights.take(`${p}.mlp.linear_fc2.bias`, [E]));
      });
      return g.op("Add", [x1, mlp]);
    });
    const level = cfg.deepstackVisualIndexes.indexOf(i);
    if (level >= 0) deepstack[level] = merger(`${v}.deepstack_merger_list.${level}`, `deepstack_merger_list.${level}`, x, true);
  }

  const out = merger(`${v}.merger`, "merger", x, false);
  g.output(out, VISION_OUTPUT, "float32", ["num_tokens", D]);
  if (deepstack.length === 0) return; // Qwen3.5's tower: no DeepStack levels, no second output
  const stacked = g.op("Concat", deepstack.map((d) => g.op("Unsqueeze", [d, g.ints([0])])), { axis: 0 }); // [L, N/4, D]
  g.output(stacked, DEEPSTACK_EMBEDS, "float32", [cfg.deepstackVisualIndexes.length, "num_tokens", D]);
}
