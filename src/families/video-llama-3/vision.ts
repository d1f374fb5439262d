/**
 * VideoLLaMA3 vision encoder as an ONNX graph: one call encodes one image or one video (or a chunk of whole frames).
 * Reference: transformers 5.18.0 models/video_llama_3/modeling_video_llama_3.py — VideoLlama3VisionEmbeddings,
 * VideoLlama3VisionRotaryEmbedding, VideoLlama3VisionAttention, VideoLlama3VisionEncoderLayer,
 * VideoLlama3VisionModel.forward / pixel_unshuffle, VideoLlama3Projector; vision_utils.py get_vision_position_ids,
 * get_vision_cu_seqlens. Spec: docs/video_llama_3-reference.md §3. What differs from Qwen2-VL's ViT: SigLIP layers
 * (separate q/k/v with bias, LayerNorm eps from the config, fc1/fc2), a Conv2d patch embedding with bias (no
 * temporal patch), a post LayerNorm, every frame attends within itself, and the "merge" is a bilinear 2× downscale
 * (= the 2×2 mean) for videos and none for images, then a Linear-GELU-Linear projector.
 *
 *   pixel_values [N, C·P·P] ── patch embedding (Conv2d, kernel = stride = P, bias, as a MatMul) ──▶ x [N, E]
 *   vision_pos_ids [N, 2] (row, col; block-major with the visual's merge size) ──▶ 2-D rotary cos/sin [N, 1, hd]
 *   depth × { x += out_proj(attn_within_frame(rope(q), rope(k), v; LN1(x))) ; x += fc2(gelu_tanh(fc1(LN2(x)))) }
 *   post_layernorm ── Reshape [N/m², m², E] ── ReduceMean ──▶ [N/m², E] ── readout.0 ── GELU ── readout.2 ──▶ visual_embeds
 *
 * `merge_size` (int64 [1]) is the visual's merge m: 1 for images (the identity), 2 for videos. The processor lays the
 * rows of each m×m block out consecutively (block-major), so the reference's undo-the-block-order + bilinear
 * interpolate to (h/m, w/m) (align_corners false: source coordinate 2i + 0.5, weights ½·½) is the mean of m² consecutive
 * rows, and the merged rows come out in raster order of the merged grid, frame by frame, as the reference's.
 */
import type { WeightMap } from "../../checkpoint/weight-map.js";
import type { GraphBuilder } from "../../onnx/graph.js";
import type { Layers } from "../../onnx/layers.js";
import { VISION_INPUTS, VISION_OUTPUT } from "../graph-io.js";
import { attendWithinFrames, frameLayoutShape } from "../qwen2-vl/vision-attention.js";
import type { VideoLlama3VisionConfig } from "./config.js";

/** The extra vision input: int64 [1], the visual's merge size (1 image, 2 video). */
export const MERGE_SIZE_INPUT = "merge_size";

/**
 * VideoLlama3VisionRotaryEmbedding (M:49-112): inv_freq[j] = θ^(−2j / (hd/2)), j < hd/4; per patch
 * [row·inv_freq, col·inv_freq] ([N, hd/2]), duplicated to [N, hd]; cos/sin as [N, 1, hd] to broadcast over heads.
 */
function axialRotary(g: GraphBuilder, posIds: string, headDim: number, theta: number): { cos: string; sin: string } {
  return g.scope("rotary", () => {
    const dim = headDim / 2;
    const invFreq = Float32Array.from({ length: dim / 2 }, (_, i) => 1 / theta ** ((2 * i) / dim));
    const pos = g.op("Unsqueeze", [g.op("Cast", [posIds], { to: 1 }), g.ints([2])]); // [N, 2, 1]
    const freqs = g.op("Reshape", [g.op("Mul", [pos, g.constant("float32", [invFreq.length], invFreq)]), g.ints([0, dim])]); // [N, hd/2]
    const emb = g.op("Unsqueeze", [g.op("Concat", [freqs, freqs], { axis: -1 }), g.ints([1])]); // [N, 1, hd]
    return { cos: g.op("Cos", [emb]), sin: g.op("Sin", [emb]) };
  });
}

export function buildVideoLlama3Vision(layers: Layers, weights: WeightMap, cfg: VideoLlama3VisionConfig): void {
  const g = layers.g;
  const E = cfg.embedDim;
  const heads = cfg.numHeads;
  const hd = E / heads;
  const P = cfg.patchSize;
  const patchDim = cfg.inChannels * P * P;
  const I = cfg.intermediateSize;
  const D = cfg.outHiddenSize;
  const eps = cfg.layerNormEps;
  const v = "vision_model";

  const pixels = g.input(VISION_INPUTS.pixelValues, "float32", ["num_patches", patchDim]);
  const posIds = g.input(VISION_INPUTS.posIds, "int64", ["num_patches", 2]);
  const grid = g.input(VISION_INPUTS.grid, "int64", [3]);
  const mergeSize = g.input(MERGE_SIZE_INPUT, "int64", [1]);

  // Patch embedding (VideoLlama3VisionEmbeddings): each row viewed as [C, P, P] → Conv2d(stride P, bias) = a MatMul.
  let x = g.scope("embeddings", () =>
    layers.linear(pixels, "patch_embedding", weights.take(`${v}.embeddings.patch_embedding.weight`, [E, cfg.inChannels, P, P]), E, patchDim, weights.take(`${v}.embeddings.patch_embedding.bias`, [E])),
  );

  const { cos, sin } = axialRotary(g, posIds, hd, cfg.ropeTheta);
  // Every frame (and every image) attends only within itself (cu_seqlens = h·w per frame): [t, heads, h·w, hd] batches.
  const frameShape = frameLayoutShape(g, grid, heads, hd);
  const ln = (t: string, name: string, prefix: string) => layers.layerNorm(t, name, weights.take(`${prefix}.weight`, [E]), weights.take(`${prefix}.bias`, [E]), eps);

  for (let i = 0; i < cfg.depth; i++) {
    const p = `${v}.encoder.layers.${i}`;
    x = g.scope(`encoder.layers.${i}`, () => {
      const h1 = ln(x, "layer_norm1", `${p}.layer_norm1`);
      const attn = g.scope("self_attn", () => {
        const a = `${p}.self_attn`;
        const [q, k, val] = layers.linearFused(
          h1,
          "qkv",
          ["q", "k", "v"].map((n) => ({ weight: weights.take(`${a}.${n}_proj.weight`, [E, E]), outFeatures: E, bias: weights.take(`${a}.${n}_proj.bias`, [E]) })),
          E,
        );
        const perHead = (t: string) => g.op("Reshape", [t, g.ints([0, heads, hd])]); // [N, heads, hd]
        const ctx = attendWithinFrames(g, layers.applyRotary(perHead(q), cos, sin, hd), layers.applyRotary(perHead(k), cos, sin, hd), perHead(val), frameShape, E, hd);
        return layers.linear(ctx, "out_proj", weights.take(`${a}.out_proj.weight`, [E, E]), E, E, weights.take(`${a}.out_proj.bias`, [E]));
      });
      const x1 = g.op("Add", [x, attn]);
      const h2 = ln(x1, "layer_norm2", `${p}.layer_norm2`);
      const mlp = g.scope("mlp", () => {
        const up = layers.linear(h2, "fc1", weights.take(`${p}.mlp.fc1.weight`, [I, E]), I, E, weights.take(`${p}.mlp.fc1.bias`, [I]));
        return layers.linear(layers.activation(up, cfg.hiddenAct), "fc2", weights.take(`${p}.mlp.fc2.weight`, [E, I]), E, I, weights.take(`${p}.mlp.fc2.bias`, [E]));
      });
      return g.op("Add", [x1, mlp]);
    });
  }
  const normed = ln(x, "post_layernorm", `${v}.post_layernorm`);

  // pixel_unshuffle (M:436-457): the bilinear 2× downscale = mean of each m×m block's m² consecutive rows (m = 1: identity).
  const merged = g.scope("downscale", () => {
    const blockRows = g.op("Mul", [mergeSize, mergeSize]); // [1]: m²
    const blocks = g.op("Reshape", [normed, g.op("Concat", [g.ints([-1]), blockRows, g.ints([E])], { axis: 0 })]); // [N/m², m², E]
    return g.op("ReduceMean", [blocks, g.ints([1])], { keepdims: 0 }); // [N/m², E]
  });

  // VideoLlama3Projector (M:496-509): readout.2(GELU(readout.0(x))), nn.GELU() = exact erf GELU.
  const out = g.scope("projector", () => {
    const h = layers.linear(merged, "readout.0", weights.take("projector.readout.0.weight", [D, E]), D, E, weights.take("projector.readout.0.bias", [D]));
    return layers.linear(layers.activation(h, "gelu"), "readout.2", weights.take("projector.readout.2.weight", [D, D]), D, D, weights.take("projector.readout.2.bias", [D]));
  });
  g.output(out, VISION_OUTPUT, "float32", ["num_tokens", D]);
}
