/**
 * Qwen2.5-VL vision encoder as an ONNX graph: one call encodes one image or one video (one grid).
 * Reference: transformers 4.57.6 models/qwen2_5_vl/modeling_qwen2_5_vl.py — Qwen2_5_VisionPatchEmbed,
 * Qwen2_5_VisionRotaryEmbedding, Qwen2_5_VisionTransformerPretrainedModel.rot_pos_emb / get_window_index / forward,
 * Qwen2_5_VLVisionBlock, Qwen2_5_VLVisionAttention, Qwen2_5_VLMLP(bias=True), Qwen2_5_VLPatchMerger.
 *
 * Differences from Qwen2-VL (src/families/qwen2-vl/vision.ts):
 *   - norm1 / norm2 / merger.ln_q are RMSNorm (eps 1e-6, no bias) instead of LayerNorm;
 *   - the MLP is SwiGLU with biases: down(act(gate(x)) · up(x)), act = vision hidden_act (silu);
 *   - blocks listed in fullatt_block_indexes attend over their whole frame (as every Qwen2-VL block does); all
 *     other blocks attend within windows of 8×8 patches (window.ts explains the layout and why the reference's
 *     permutation / argsort never has to be applied to the rows).
 * Patch embedding (Conv3d, no bias) and the 2-D rotary embedding are the same as Qwen2-VL.
 *
 *   pixel_values [N, C·2·P·P] ── patch embed ──▶ x [N, E]          vision_pos_ids [N, 2] ──▶ cos/sin [N, 1, hd]
 *   depth × { x += proj(attn(rope(qkv(RMS1(x))))) ; x += down(silu(gate(RMS2(x))) · up(RMS2(x))) }
 *     attn, full block:     per frame            [t, heads, h·w, hd]
 *     attn, windowed block: Gather(window_gather) [W, heads, L, hd] + key mask (slot ≥ window length) ─▶
 *                           Gather(window_scatter) back to [N, E]
 *   merger: RMS(x) ── view [N/4, 4E] ── Linear ── GELU ── Linear ──▶ visual_embeds [N/4, D_llm]
 *
 * Extra graph inputs: WINDOW_INPUTS below (fed through VisionBatch.extraInputs, computed by windowPlan in window.ts).
 */
import { Layers } from "../../onnx/layers.js";
import type { WeightMap } from "../../checkpoint/weight-map.js";
import { VISION_INPUTS, VISION_OUTPUT } from "../graph-io.js";
import type { Qwen2_5VLVisionConfig } from "./config.js";
import { attendWithinFrames, frameLayoutShape, scaledDotAttention, splitQkv, visionRotary } from "../qwen2-vl/vision-attention.js";

export const WINDOW_INPUTS = {
  /** int64 [num_windows, window_len]: natural patch row read by each slot of the padded window layout. */
  gather: "vision_window_gather",
  /** int64 [num_patches]: slot (in the flattened window layout) holding each natural patch row. */
  scatter: "vision_window_scatter",
  /** int64 [num_windows]: real patches per window; later slots are padding, masked out as keys. */
  lengths: "vision_window_lengths",
} as const;

export function buildQwen2_5VLVision(layers: Layers, weights: WeightMap, cfg: Qwen2_5VLVisionConfig): void {
  const g = layers.g;
  const E = cfg.embedDim;
  const heads = cfg.numHeads;
  const hd = E / heads;
  const F = cfg.intermediateSize;
  const patchDim = cfg.inChannels * cfg.temporalPatchSize * cfg.patchSize * cfg.patchSize;
  const mergeDim = E * cfg.spatialMergeSize ** 2;
  const fullAtt = new Set(cfg.fullAttBlockIndexes);

  const pixels = g.input(VISION_INPUTS.pixelValues, "float32", ["num_patches", patchDim]);
  const posIds = g.input(VISION_INPUTS.posIds, "int64", ["num_patches", 2]);
  const grid = g.input(VISION_INPUTS.grid, "int64", [3]);
  const winGather = g.input(WINDOW_INPUTS.gather, "int64", ["num_windows", "window_len"]);
  const winScatter = g.input(WINDOW_INPUTS.scatter, "int64", ["num_patches"]);
  const winLengths = g.input(WINDOW_INPUTS.lengths, "int64", ["num_windows"]);

  let x = g.scope("patch_embed", () =>
    layers.linear(pixels, "visual.patch_embed.proj", weights.take("visual.patch_embed.proj.weight", [E, cfg.inChannels, cfg.temporalPatchSize, cfg.patchSize, cfg.patchSize]), E, patchDim),
  );

  // 2-D rotary and the full-attention (per-frame) layout, as Qwen2-VL.
  const { cos, sin } = visionRotary(g, posIds, hd);
  const frameShape = frameLayoutShape(g, grid, heads, hd);

  // Window layout, shared by all windowed blocks: slot gather indices, rotary tables and the key mask.
  const win = g.scope("windows", () => {
    const flat = g.op("Reshape", [winGather, g.ints([-1])]); // [W·L]
    const gatherShape = g.op("Shape", [winGather]); // [W, L]
    const shape = g.op("Concat", [gatherShape, g.ints([heads, hd])], { axis: 0 }); // [W, L, heads, hd]
    const L = g.op("Gather", [gatherShape, g.constant("int64", [], [1n])], { axis: 0 }); // scalar
    const slots = g.op("Range", [g.constant("int64", [], [0n]), L, g.constant("int64", [], [1n])]); // [L]
    const valid = g.op("Less", [slots, g.op("Unsqueeze", [winLengths, g.ints([1])])]); // [W, L]
    const maskAdd = g.op("Where", [valid, g.scalar(0), g.scalar(-Infinity)]); // [W, L]
    return {
      flat,
      shape,
      mask: g.op("Unsqueeze", [maskAdd, g.ints([1, 2])]), // [W, 1, 1, L]
      cos: g.op("Gather", [cos, flat], { axis: 0 }), // [W·L, 1, hd]
      sin: g.op("Gather", [sin, flat], { axis: 0 }),
    };
  });

  for (let i = 0; i < cfg.depth; i++) {
    const p = `visual.blocks.${i}`;
    const windowed = !fullAtt.has(i);
    x = g.scope(`blocks.${i}`, () => {
      const h1 = layers.rmsNorm(x, "norm1", weights.take(`${p}.norm1.weight`, [E]), 1e-6);
      const attn = g.scope("attn", () => {
        const qkv = layers.linear(h1, "qkv", weights.take(`${p}.attn.qkv.weight`, [3 * E, E]), 3 * E, E, weights.take(`${p}.attn.qkv.bias`, [3 * E])); // [N, 3E]
        let merged: string;
        if (windowed) {
          const rows = g.op("Gather", [qkv, win.flat], { axis: 0 }); // [W·L, 3E]
          const [q, k, v] = splitQkv(g, rows, E, heads, hd); // [W·L, heads, hd]
          const perWindow = (t: string) => g.op("Transpose", [g.op("Reshape", [t, win.shape])], { perm: [0, 2, 1, 3] }); // [W, heads, L, hd]
          const qr = perWindow(layers.applyRotary(q, win.cos, win.sin, hd));
          const kr = perWindow(layers.applyRotary(k, win.cos, win.sin, hd));
          const ctx = scaledDotAttention(g, qr, kr, perWindow(v), hd, win.mask); // [W, heads, L, hd]
          const slots = g.op("Reshape", [g.op("Transpose", [ctx], { perm: [0, 2, 1, 3] }), g.ints([-1, E])]); // [W·L, E]
          merged = g.op("Gather", [slots, winScatter], { axis: 0 }); // [N, E], natural order
        } else {
          const [q, k, v] = splitQkv(g, qkv, E, heads, hd);
          merged = attendWithinFrames(g, layers.applyRotary(q, cos, sin, hd), layers.applyRotary(k, cos, sin, hd), v, frameShape, E, hd);
        }
        return layers.linear(merged, "proj", weights.take(`${p}.attn.proj.weight`, [E, E]), E, E, weights.take(`${p}.attn.proj.bias`, [E]));
      });
      const x1 = g.op("Add", [x, attn]);
      const h2 = layers.rmsNorm(x1, "norm2", weights.take(`${p}.norm2.weight`, [E]), 1e-6);
      const mlp = g.scope("mlp", () => {
        const gate = layers.linear(h2, "gate_proj", weights.take(`${p}.mlp.gate_proj.weight`, [F, E]), F, E, weights.take(`${p}.mlp.gate_proj.bias`, [F]));
        const up = layers.linear(h2, "up_proj", weights.take(`${p}.mlp.up_proj.weight`, [F, E]), F, E, weights.take(`${p}.mlp.up_proj.bias`, [F]));
        const act = g.op("Mul", [layers.activation(gate, cfg.hiddenAct), up]);
        return layers.linear(act, "down_proj", weights.take(`${p}.mlp.down_proj.weight`, [E, F]), E, F, weights.take(`${p}.mlp.down_proj.bias`, [E]));
      });
      return g.op("Add", [x1, mlp]);
    });
  }

  const out = g.scope("merger", () => {
    const ln = layers.rmsNorm(x, "ln_q", weights.take("visual.merger.ln_q.weight", [E]), 1e-6);
    const grouped = g.op("Reshape", [ln, g.ints([-1, mergeDim])]); // [N/4, 4E]: the 4 patches of a 2×2 block are consecutive rows
    const h = layers.linear(grouped, "mlp.0", weights.take("visual.merger.mlp.0.weight", [mergeDim, mergeDim]), mergeDim, mergeDim, weights.take("visual.merger.mlp.0.bias", [mergeDim]));
    const D = cfg.outHiddenSize;
    return layers.linear(layers.activation(h, "gelu"), "mlp.2", weights.take("visual.merger.mlp.2.weight", [D, mergeDim]), D, mergeDim, weights.take("visual.merger.mlp.2.bias", [D]));
  });
  g.output(out, VISION_OUTPUT, "float32", ["num_tokens", cfg.outHiddenSize]);
}
