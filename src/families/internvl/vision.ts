/**
 * InternVL vision encoder as an ONNX graph: InternViT on independent tiles, CLS dropped, 2×2 pixel shuffle, projector.
 * Reference: transformers 4.57.6 models/internvl/modeling_internvl.py — InternVLVisionPatchEmbeddings,
 * InternVLVisionEmbeddings, InternVLVisionLayer, InternVLVisionAttention, InternVLVisionRMSNorm, InternVLVisionModel,
 * InternVLModel.get_image_features / pixel_shuffle, InternVLMultiModalProjector. Facts doc §4.4.
 *
 *   pixel_values [T·P², C·p·p] ── Conv2d(stride p) as MatMul + bias ── Reshape ──▶ [T, P², E]
 *   Concat(cls_token, ·) + position_embeddings ──▶ x [T, 1+P², E]          (one tile = one attention block)
 *   k × { x += λ1 · proj(attn(qk_norm(q, k), v; norm_before(x))) ; x += λ2 · fc2(act(fc1(norm_after(x)))) }
 *   drop CLS ── pixel shuffle ──▶ [T·(P/2)², 4E] ── LayerNorm ── linear_1 ── GELU ── linear_2 ──▶ visual_embeds
 *
 * k = `featureLayers` (vision_feature_layer / select_layer: hidden_states[k]); the tensors of later layers are claimed
 * and not used. Tiles are always `imageSize` pixels (the processor cuts them from the config's image_size), so the
 * position table is used as stored: InternVLVisionEmbeddings.interpolate_pos_encoding returns it unchanged when the
 * patch count matches and the tile is square.
 */
import type { WeightMap } from "../../checkpoint/weight-map.js";
import { f32bytes, type Layers } from "../../onnx/layers.js";
import { VISION_INPUTS, VISION_OUTPUT } from "../graph-io.js";
import { scaledDotAttention } from "../qwen2-vl/vision-attention.js";
import type { InternVLVisionConfig } from "./config.js";

/** InternVLVisionRMSNorm's default eps: q_norm / k_norm are built without the config's layer_norm_eps. */
const QK_NORM_EPS = 1e-6;
/** nn.LayerNorm's default eps: the projector's LayerNorm(4C) is built without one (InternVLMultiModalProjector). */
const PROJECTOR_LN_EPS = 1e-5;

/** The tensors of encoder layer `i` (canonical names, names.ts) with their shapes. */
function layerTensors(cfg: InternVLVisionConfig, i: number, fusedQkv: boolean): [string, number[]][] {
  const E = cfg.embedDim;
  const I = cfg.intermediateSize;
  const p = `vision_tower.encoder.layer.${i}`;
  const norm = (n: string): [string, number[]][] => (cfg.normType === "layer_norm" ? [[`${p}.${n}.weight`, [E]], [`${p}.${n}.bias`, [E]]] : [[`${p}.${n}.weight`, [E]]]);
  const qkv: [string, number[]][] = fusedQkv
    ? [[`${p}.attention.qkv.weight`, [3 * E, E]], ...(cfg.attentionBias ? [[`${p}.attention.qkv.bias`, [3 * E]] as [string, number[]]] : [])]
    : ["q", "k", "v"].flatMap((n): [string, number[]][] => [[`${p}.attention.${n}_proj.weight`, [E, E]], ...(cfg.attentionBias ? [[`${p}.attention.${n}_proj.bias`, [E]] as [string, number[]]] : [])]);
  return [
    ...norm("layernorm_before"),
    ...qkv,
    ...(cfg.qkNorm ? ([[`${p}.attention.q_norm.weight`, [E]], [`${p}.attention.k_norm.weight`, [E]]] as [string, number[]][]) : []),
    [`${p}.attention.projection_layer.weight`, [E, E]],
    [`${p}.attention.projection_layer.bias`, [E]],
    [`${p}.lambda_1`, [E]],
    ...norm("layernorm_after"),
    [`${p}.mlp.fc1.weight`, [I, E]],
    [`${p}.mlp.fc1.bias`, [I]],
    [`${p}.mlp.fc2.weight`, [E, I]],
    [`${p}.mlp.fc2.bias`, [E]],
    [`${p}.lambda_2`, [E]],
  ];
}

/**
 * `onPatches` (optional) receives the tower's features without CLS, [T, P², E], before the pixel shuffle: for graphs
 * that add outputs computed from them (InternVL3.5-Flash's router, flash.ts `buildFlashOutputs`).
 */
export function buildInternVLVision(layers: Layers, weights: WeightMap, cfg: InternVLVisionConfig, onPatches?: (patches: string) => void): void {
  const g = layers.g;
  const E = cfg.embedDim;
  const heads = cfg.numHeads;
  const hd = E / heads;
  const p = cfg.patchSize;
  const P = cfg.imageSize / p; // patches per tile side
  const patchDim = cfg.inChannels * p * p;
  const I = cfg.intermediateSize;
  const s = cfg.shuffle;
  const shuffled = E * s * s;
  const D = cfg.outHiddenSize;
  const v = "vision_tower";
  // Original checkpoints keep q, k, v as one `attn.qkv` matrix (names.ts); HF ones as three.
  const fusedQkv = weights.has(`${v}.encoder.layer.0.attention.qkv.weight`);

  const pixels = g.input(VISION_INPUTS.pixelValues, "float32", ["num_patches", patchDim]);

  // Embeddings (InternVLVisionEmbeddings.forward): patches, CLS in front, + the learned position table.
  let x = g.scope("embeddings", () => {
    const patches = layers.linear(
      pixels,
      "patch_embeddings.projection",
      weights.take(`${v}.embeddings.patch_embeddings.projection.weight`, [E, cfg.inChannels, p, p]),
      E,
      patchDim,
      weights.take(`${v}.embeddings.patch_embeddings.projection.bias`, [E]),
    );
    const tiles = g.op("Reshape", [patches, g.ints([-1, P * P, E])]); // [T, P², E]: rows of one tile are row-major patches
    const cls = g.weight("cls_token", "float32", [1, 1, E], f32bytes(weights.take(`${v}.embeddings.cls_token`, [1, 1, E])));
    const clsPerTile = g.op("Expand", [cls, g.op("Concat", [g.op("Shape", [tiles], { start: 0, end: 1 }), g.ints([1, E])], { axis: 0 })]); // [T, 1, E]
    const pos = g.weight("position_embeddings", "float32", [1, P * P + 1, E], f32bytes(weights.take(`${v}.embeddings.position_embeddings`, [1, P * P + 1, E])));
    return g.op("Add", [g.op("Concat", [clsPerTile, tiles], { axis: 1 }), pos]); // [T, 1+P², E]
  });

  const norm = (t: string, name: string, prefix: string) =>
    cfg.normType === "layer_norm"
      ? layers.layerNorm(t, name, weights.take(`${prefix}.${name}.weight`, [E]), weights.take(`${prefix}.${name}.bias`, [E]), cfg.layerNormEps)
      : layers.rmsNorm(t, name, weights.take(`${prefix}.${name}.weight`, [E]), cfg.layerNormEps);
  const scale = (t: string, name: string) => g.op("Mul", [t, g.weight(name, "float32", [E], f32bytes(weights.take(name, [E])))]);

  for (let i = 0; i < cfg.featureLayers; i++) {
    const lp = `${v}.encoder.layer.${i}`;
    x = g.scope(`encoder.layer.${i}`, () => {
      const h = norm(x, "layernorm_before", lp);
      const attn = g.scope("attention", () => {
        const a = `${lp}.attention`;
        const bias = (n: string, rows: number) => (cfg.attentionBias ? weights.take(`${a}.${n}.bias`, [rows]) : undefined);
        const [q0, k0, val] = fusedQkv
          ? g.scope("qkv", () => g.opN("Split", [layers.linear(h, "qkv", weights.take(`${a}.qkv.weight`, [3 * E, E]), 3 * E, E, bias("qkv", 3 * E)), g.ints([E, E, E])], { axis: -1 }, 3))
          : layers.linearFused(h, "qkv", ["q", "k", "v"].map((n) => ({ weight: weights.take(`${a}.${n}_proj.weight`, [E, E]), outFeatures: E, bias: bias(`${n}_proj`, E) })), E);
        // InternViT-6B: RMSNorm over the whole q / k width, before the heads are split.
        const q = cfg.qkNorm ? layers.rmsNorm(q0, "q_norm", weights.take(`${a}.q_norm.weight`, [E]), QK_NORM_EPS) : q0;
        const k = cfg.qkNorm ? layers.rmsNorm(k0, "k_norm", weights.take(`${a}.k_norm.weight`, [E]), QK_NORM_EPS) : k0;
        const perHead = (t: string) => g.op("Transpose", [g.op("Reshape", [t, g.ints([0, 0, heads, hd])])], { perm: [0, 2, 1, 3] }); // [T, heads, 1+P², hd]
        const ctx = scaledDotAttention(g, perHead(q), perHead(k), perHead(val), hd); // [T, heads, 1+P², hd]
        const merged = g.op("Reshape", [g.op("Transpose", [ctx], { perm: [0, 2, 1, 3] }), g.ints([0, 0, E])]); // [T, 1+P², E]
        return layers.linear(merged, "projection_layer", weights.take(`${a}.projection_layer.weight`, [E, E]), E, E, weights.take(`${a}.projection_layer.bias`, [E]));
      });
      const x1 = g.op("Add", [x, scale(attn, `${lp}.lambda_1`)]);
      const h2 = norm(x1, "layernorm_after", lp);
      const mlp = g.scope("mlp", () => {
        const up = layers.linear(h2, "fc1", weights.take(`${lp}.mlp.fc1.weight`, [I, E]), I, E, weights.take(`${lp}.mlp.fc1.bias`, [I]));
        return layers.linear(layers.activation(up, cfg.hiddenAct), "fc2", weights.take(`${lp}.mlp.fc2.weight`, [E, I]), E, I, weights.take(`${lp}.mlp.fc2.bias`, [E]));
      });
      return g.op("Add", [x1, scale(mlp, `${lp}.lambda_2`)]);
    });
  }
  // Layers after the feature layer do not contribute: claimed (shape-checked) and left out of the graph.
  for (let i = cfg.featureLayers; i < cfg.depth; i++) for (const [name, shape] of layerTensors(cfg, i, fusedQkv)) weights.info(name, shape);
  if (cfg.finalLayerNorm) {
    if (cfg.featureLayers === cfg.depth) x = layers.layerNorm(x, "layernorm", weights.take(`${v}.layernorm.weight`, [E]), weights.take(`${v}.layernorm.bias`, [E]), cfg.layerNormEps);
    else for (const n of ["weight", "bias"]) weights.info(`${v}.layernorm.${n}`, [E]);
  }

  // get_image_features: drop CLS, then pixel_shuffle(scale 0.5) on the [T, P, P, E] grid. Its view/permute pairs
  // give out[t, i, j] = concat(x[2i, 2j], x[2i, 2j+1], x[2i+1, 2j], x[2i+1, 2j+1]) (facts §4.4), row-major over (i, j).
  const patches = g.op("Slice", [x, g.ints([1]), g.ints([P * P + 1]), g.ints([1])]); // [T, P², E]: CLS dropped
  onPatches?.(patches);
  const features = g.scope("pixel_shuffle", () => {
    const blocks = g.op("Reshape", [patches, g.ints([-1, P / s, s, P / s, s, E])]); // [T, i, r, j, c, E]: row 2i+r, col 2j+c
    const grouped = g.op("Transpose", [blocks], { perm: [0, 1, 3, 2, 4, 5] }); // [T, i, j, r, c, E]
    return g.op("Reshape", [grouped, g.ints([-1, shuffled])]); // [T·(P/2)², 4E]
  });

  const out = g.scope("multi_modal_projector", () => {
    const m = "multi_modal_projector";
    const ln = layers.layerNorm(features, "layer_norm", weights.take(`${m}.layer_norm.weight`, [shuffled]), weights.take(`${m}.layer_norm.bias`, [shuffled]), PROJECTOR_LN_EPS);
    const h = layers.linear(ln, "linear_1", weights.take(`${m}.linear_1.weight`, [D, shuffled]), D, shuffled, weights.take(`${m}.linear_1.bias`, [D]));
    return layers.linear(layers.activation(h, cfg.projectorAct), "linear_2", weights.take(`${m}.linear_2.weight`, [D, D]), D, D, weights.take(`${m}.linear_2.bias`, [D]));
  });
  g.output(out, VISION_OUTPUT, "float32", ["num_tokens", D]);
}
