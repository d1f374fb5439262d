/**
 * Qwen2 decoder with multimodal rotary embedding (M-RoPE) as an ONNX graph.
 * Reference: transformers 4.57.6 models/qwen2_vl/modeling_qwen2_vl.py — Qwen2VLRotaryEmbedding,
 * apply_multimodal_rotary_pos_emb, Qwen2VLAttention, Qwen2MLP, Qwen2VLDecoderLayer, Qwen2VLTextModel.
 *
 *   input_ids [1, S] ── Gather(embed_tokens) ──▶ [S, D] ── ScatterND(visual_embeds at visual_positions) ──▶ x [1, S, D]
 *   position_ids [3, 1, S] ──▶ cos/sin [S, hd/2]   (frequency j uses the T, H or W position by mrope_section)
 *   layers × { x += o_proj(GQA(rope(q), rope(k), v; KV cache)) ; x += down(silu(gate(x)) · up(x)) }  (RMSNorm before each)
 *   norm ── Gather(logits_indices) ── lm_head ──▶ logits [1, K, V]
 *
 * The KV cache is a preallocated [1, kv_heads, capacity, hd] buffer per layer, fed as `past_key_values.i.*` and
 * read in place; the graph returns only the chunk's own keys/values (`new.i.*`), which the engine appends
 * (graph-io.ts). Prefill chunks attend with GroupQueryAttention, single-token decode steps with
 * singleTokenAttention (no copy of the cache). Rotary is applied before attention because M-RoPE is not the
 * 1-D rotary GQA implements.
 *
 * Decoder stages (family.ts DecoderStage, src/engine/decoder-stages.ts): a stage builds layers [from, to) only; a
 * later stage starts from `hidden_states_in` instead of the embedding, an earlier one ends with `hidden_states_out`
 * instead of the head; DeepStack features are added in whichever stage holds layers 0 … levels−1.
 */
import type { GraphBuilder } from "../../onnx/graph.js";
import { isFloatPrecision, Layers } from "../../onnx/layers.js";
import type { WeightMap } from "../../checkpoint/weight-map.js";
import type { Qwen2VLTextConfig } from "./config.js";
import type { DecoderStage } from "../family.js";
import { DECODER_INPUTS, DECODER_LOGITS, DEEPSTACK_EMBEDS, HIDDEN_STATES_IN, HIDDEN_STATES_OUT, newKey, newValue, pastKey, pastValue } from "../graph-io.js";

/**
 * For each rotary frequency j < hd/2, which position axis (0 = T, 1 = H, 2 = W) drives it.
 * Qwen2-VL: contiguous chunks [T × s0][H × s1][W × s2] (recomposition by mrope_section split, i % 3).
 */
export type MropeAxisOfFrequency = (section: [number, number, number]) => number[];
export const chunkedMrope: MropeAxisOfFrequency = (s) => [...Array(s[0]).fill(0), ...Array(s[1]).fill(1), ...Array(s[2]).fill(2)];

/**
 * Extension points for decoders written as differences from Qwen2-VL (all off by default = Qwen2-VL).
 * - qkNorm: Qwen3 RMSNorm over each head of q and k (`self_attn.q_norm` / `k_norm`, weight [head_dim]) before rotary;
 * - attentionBias: q/k/v projections carry a bias (Qwen2: true; Qwen3: config `attention_bias`, false on the hub);
 * - deepstackLayers: L > 0 adds the input `deepstack_embeds` [L, num_visual, D] whose k-th slice is added to the
 *   hidden states at `visual_positions` after decoder layer k (Qwen3VLTextModel._deepstack_process);
 * - mlp: the feed-forward block of layer i on the normed hidden states x [1, S, D] (weights under `prefix` =
 *   `model.layers.{i}.mlp`), for mixture-of-experts decoders (Qwen3-VL-MoE); default the dense SwiGLU `swigluMlp`;
 * - positionAxes: 3 (default) declares `position_ids` [3, 1, S] for M-RoPE; 1 declares [1, 1, S] and drives every
 *   rotary frequency from that one axis — plain 1-D RoPE (InternVL's Qwen2/Qwen3 LLMs, modeling_qwen3.py
 *   Qwen3RotaryEmbedding); `axisOfFrequency` and mrope_section are then not read.
 */
export interface DecoderVariant {
  qkNorm?: boolean;
  attentionBias?: boolean;
  deepstackLayers?: number;
  mlp?: (layers: Layers, weights: WeightMap, x: string, prefix: string, layer: number) => string;
  positionAxes?: 1 | 3;
}

export function buildQwen2VLDecoder(
  layers: Layers,
  weights: WeightMap,
  cfg: Qwen2VLTextConfig,
  axisOfFrequency: MropeAxisOfFrequency = chunkedMrope,
  variant: DecoderVariant = {},
  /** Layers [from, to) only (decoder stages); default all layers, embedding to logits. */
  stage: DecoderStage = { from: 0, to: cfg.numLayers, first: true, last: true },
): void {
  const g = layers.g;
  const qkNorm = variant.qkNorm ?? false;
  const attentionBias = variant.attentionBias ?? true;
  const deepstackLayers = variant.deepstackLayers ?? 0;
  const positionAxes = variant.positionAxes ?? 3;
  const D = cfg.hiddenSize;
  const hd = cfg.headDim;
  const H = cfg.numHeads;
  const KV = cfg.numKvHeads;
  const F = cfg.intermediateSize;

  // This stage adds DeepStack features when it holds any of layers 0 … deepstackLayers−1.
  const stageDeepstack = stage.from < deepstackLayers;
  // The first stage's token ids, a later stage's incoming hidden states [1, S, D]: either gives S (dimension 1).
  const inputIds = stage.first ? g.input(DECODER_INPUTS.inputIds, "int64", [1, "seq"]) : g.input(HIDDEN_STATES_IN, "float32", [1, "seq", D]);
  const visualEmbeds = stage.first ? g.input(DECODER_INPUTS.visualEmbeds, "float32", ["num_visual", D]) : "";
  const visualPositions = stage.first || stageDeepstack ? g.input(DECODER_INPUTS.visualPositions, "int64", ["num_visual", 1]) : "";
  const positionIds = g.input(DECODER_INPUTS.positionIds, "int64", [positionAxes, 1, "seq"]);
  const seqlensK = g.input(DECODER_INPUTS.seqlensK, "int32", [1]);
  const totalLen = g.input(DECODER_INPUTS.totalSequenceLength, "int32", []);
  const logitsIndices = stage.last ? g.input(DECODER_INPUTS.logitsIndices, "int64", ["num_logits"]) : "";
  const deepstack = stageDeepstack ? g.input(DEEPSTACK_EMBEDS, "float32", [deepstackLayers, "num_visual", D]) : "";

  // The embedding table: claimed by the first stage; the last stage of a tied model reads it again for its head.
  const needsTable = stage.first || (stage.last && cfg.tieWordEmbeddings);
  const embedTable = !needsTable
    ? new Float32Array(0)
    : stage.first
      ? weights.take("model.embed_tokens.weight", [cfg.vocabSize, D])
      : weights.readClaimed("model.embed_tokens.weight", [cfg.vocabSize, D]);
  const embedName = needsTable ? layers.floatWeight("model.embed_tokens.weight", [cfg.vocabSize, D], embedTable) : "";
  let x = !stage.first
    ? inputIds
    : g.scope("embed_tokens", () => {
        const tokens = g.op("Gather", [embedName, g.op("Squeeze", [inputIds, g.ints([0])])], { axis: 0 }); // [S, D]
        const merged = g.op("ScatterND", [tokens, visualPositions, visualEmbeds]); // visual rows replace their placeholders
        return g.op("Unsqueeze", [merged, g.ints([0])]); // [1, S, D]
      });

  // M-RoPE: freqs[b, s, j] = pos[axis(j), b, s] · inv_freq[j]; emb = cat(freqs, freqs). With one position axis
  // every frequency takes axis 0: freqs = pos · inv_freq, plain RoPE.
  const { cos, sin } = g.scope("rotary", () => {
    const half = hd / 2;
    const A = positionAxes;
    const axes = A === 1 ? new Array<number>(half).fill(0) : axisOfFrequency(cfg.mropeSection);
    const masked = new Float32Array(A * half); // [A, half]: inv_freq where axis(j) == a, else 0
    for (let j = 0; j < half; j++) masked[axes[j] * half + j] = 1 / cfg.ropeTheta ** ((2 * j) / hd);
    const pos = g.op("Unsqueeze", [g.op("Cast", [positionIds], { to: 1 }), g.ints([3])]); // [A, 1, S, 1]
    const perAxis = g.op("Mul", [pos, g.constant("float32", [A, 1, 1, half], masked)]); // [A, 1, S, half]
    const freqs = g.op("ReduceSum", [perAxis, g.ints([0])], { keepdims: 0 }); // [1, S, half]: one non-zero term per j
    // RotaryEmbedding reads row p of its caches for position p; with caches of this chunk's S rows and start
    // position 0, row s holds token s's own M-RoPE angles (cos/sin of the first half; the op mirrors them).
    const rows = g.op("Reshape", [freqs, g.ints([-1, half])]); // [S, half]
    return { cos: g.op("Cos", [rows]), sin: g.op("Sin", [rows]) };
  });
  const startPosition = g.ints([0]);
  // rotate_half rotary (non-interleaved) over each head of [1, S, heads·hd], as apply_multimodal_rotary_pos_emb.
  const rotary = (t: string) => g.op("RotaryEmbedding", [t, startPosition, cos, sin], { interleaved: 0 }, { domain: "com.microsoft" });

  // Decode steps (one token) take a different attention path than prefill chunks, see singleTokenAttention.
  const { singleToken, decodePastBias } = g.scope("decode_attention", () => ({
    singleToken: g.op("Squeeze", [g.op("Equal", [g.op("Shape", [inputIds], { start: 1, end: 2 }), g.ints([1])]), g.ints([0])]), // bool scalar
    decodePastBias: pastBias(g, pastKey(stage.from), seqlensK),
  }));

  for (let i = stage.from; i < stage.to; i++) {
    const p = `model.layers.${i}`;
    x = g.scope(`layers.${i}`, () => {
      const h = layers.rmsNorm(x, "input_layernorm", weights.take(`${p}.input_layernorm.weight`, [D]), cfg.rmsNormEps);
      const attn = g.scope("attn", () => {
        const part = (name: string, heads: number) => ({
          weight: weights.take(`${p}.self_attn.${name}_proj.weight`, [heads * hd, D]),
          outFeatures: heads * hd,
          bias: attentionBias ? weights.take(`${p}.self_attn.${name}_proj.bias`, [heads * hd]) : undefined,
        });
        const [qProj, kProj, vProj] = layers.linearFused(h, "qkv_proj", [part("q", H), part("k", KV), part("v", KV)], D);
        // Qwen3: RMSNorm over head_dim of each head, before rotary (Qwen3VLTextAttention: q_norm(q_proj(x).view(..., hd))).
        const norm = (t: string, name: string) => (qkNorm ? layers.rmsNorm(t, `${name}_norm`, weights.take(`${p}.self_attn.${name}_norm.weight`, [hd]), cfg.rmsNormEps) : t);
        const rope = (t: string, heads: number, name: string) =>
          rotary(qkNorm ? g.op("Reshape", [norm(g.op("Reshape", [t, g.ints([0, 0, heads, hd])]), name), g.ints([0, 0, heads * hd])]) : t); // [1,S,heads·hd]
        const q = rope(qProj, H, "q");
        const k = rope(kProj, KV, "k");
        const v = vProj;
        g.output(k, newKey(i), "float32", [1, "seq", KV * hd]);
        g.output(v, newValue(i), "float32", [1, "seq", KV * hd]);
        // One token (decode): attention read straight from the cache buffers; a chunk (prefill): GroupQueryAttention.
        const [ctx] = g.ifElse(
          singleToken,
          () => [singleTokenAttention(g, { q, k, v, pastKey: pastKey(i), pastValue: pastValue(i), pastBias: decodePastBias, H, KV, hd })],
          () =>
            g.opN(
              "GroupQueryAttention",
              [q, k, v, pastKey(i), pastValue(i), seqlensK, totalLen],
              { num_heads: H, kv_num_heads: KV },
              [`/model/layers.${i}/attn/GroupQueryAttention/output_0`, `/model/layers.${i}/attn/present_key`, `/model/layers.${i}/attn/present_value`],
              "com.microsoft",
            ).slice(0, 1),
          [{ dtype: "float32", shape: [1, "seq", H * hd] }],
        );
        return layers.linear(ctx, "o_proj", weights.take(`${p}.self_attn.o_proj.weight`, [D, H * hd]), D, H * hd);
      });
      const x1 = g.op("Add", [x, attn]);
      const h2 = layers.rmsNorm(x1, "post_attention_layernorm", weights.take(`${p}.post_attention_layernorm.weight`, [D]), cfg.rmsNormEps);
      const mlp = variant.mlp ? variant.mlp(layers, weights, h2, `${p}.mlp`, i) : swigluMlp(layers, weights, h2, `${p}.mlp`, D, F, cfg.hiddenAct);
      const out = g.op("Add", [x1, mlp]);
      return i < deepstackLayers ? addAtVisualPositions(g, out, g.op("Gather", [deepstack, g.ints([i])], { axis: 0 }), visualPositions, D) : out;
    });
  }

  if (!stage.last) {
    g.output(x, HIDDEN_STATES_OUT, "float32", [1, "seq", D]);
    declarePastInputs(g, cfg, stage);
    return;
  }
  const logits = g.scope("lm_head", () => {
    const normed = layers.rmsNorm(x, "norm", weights.take("model.norm.weight", [D]), cfg.rmsNormEps);
    const picked = g.op("Gather", [normed, logitsIndices], { axis: 1 }); // [1, K, D]
    // The head reads vocab × hidden weights every token; under int4/int8 it is stored as int8, keeping the output
    // layer at higher precision than the 4-bit layers, as llama.cpp's and onnxruntime-genai's int4 recipes do.
    // (Measured: a 4-bit head would save ~6 ms of the 2B-shaped ~58 ms decode step, but costs the trained demo
    // model's logit cosine with fp32: worst question 0.9995 → 0.985, under the 0.99 target.)
    const headPrecision = isFloatPrecision(layers.precision) ? layers.precision : "int8";
    if (cfg.tieWordEmbeddings && isFloatPrecision(headPrecision)) {
      // Tied, float: reuse the embedding table [V, D] as the head through Gemm(transB) rather than a transposed copy.
      const rows = g.op("Reshape", [picked, g.ints([-1, D])]); // [K, D]
      return g.op("Unsqueeze", [g.op("Gemm", [rows, embedName], { transB: 1 }), g.ints([0])]); // [1, K, V]
    }
    const head = cfg.tieWordEmbeddings ? embedTable : weights.take("lm_head.weight", [cfg.vocabSize, D]);
    return layers.linear(picked, "lm_head", head, cfg.vocabSize, D, undefined, headPrecision);
  });
  g.output(logits, DECODER_LOGITS, "float32", [1, "num_logits", cfg.vocabSize]);
  declarePastInputs(g, cfg, stage);
}

/**
 * Additive attention bias over the cache for a one-token step: 0 for the filled positions (the first seqlens_k =
 * total − 1 of them), −∞ for the rest of the capacity. float32 [capacity].
 */
/**
 * The decoder's SwiGLU MLP, `down(act(gate(x)) · up(x))` (modeling_qwen2_vl.py Qwen2MLP; Qwen3.5's Qwen3_5MLP is the
 * same), with gate and up as one fused product. Weights `${prefix}.{gate,up,down}_proj.weight`; D model width, F
 * intermediate width.
 */
export function swigluMlp(layers: Layers, weights: WeightMap, x: string, prefix: string, D: number, F: number, act: string): string {
  return layers.g.scope("mlp", () => {
    const [gate, up] = layers.linearFused(
      x,
      "gate_up_proj",
      [
        { weight: weights.take(`${prefix}.gate_proj.weight`, [F, D]), outFeatures: F },
        { weight: weights.take(`${prefix}.up_proj.weight`, [F, D]), outFeatures: F },
      ],
      D,
    );
    return layers.linear(layers.g.op("Mul", [layers.activation(gate, act), up]), "down_proj", weights.take(`${prefix}.down_proj.weight`, [D, F]), D, F);
  });
}

export function pastBias(g: GraphBuilder, pastKeyInput: string, seqlensK: string): string {
  const capacity = g.op("Squeeze", [g.op("Shape", [pastKeyInput], { start: 2, end: 3 }), g.ints([0])]);
  const positions = g.op("Range", [g.constant("int64", [], [0n]), capacity, g.constant("int64", [], [1n])]);
  const filled = g.op("Less", [positions, g.op("Cast", [seqlensK], { to: 7 })]);
  return g.op("Where", [filled, g.scalar(0), g.scalar(-Infinity)]);
}

/**
 * Attention of one new token over the KV cache, read in place. GroupQueryAttention would first copy the whole past
 * into its own present buffer (onnxruntime shares the two only when the caller binds the same buffer as input and
 * output, which onnxruntime-node cannot do), and at a decode step that copy costs as much as the attention itself.
 * Same math as GroupQueryAttention (scale 1/√hd, query head j reads KV head ⌊j / (H/KV)⌋, float32 softmax):
 *
 *   q [1,1,H·hd] ─ ×1/√hd ─ Reshape [1,KV,G,hd] ─┬─ FusedMatMul(transB) with past keys [1,KV,cap,hd] ─ + bias ─┐
 *                                                 └─ FusedMatMul(transB) with the new key [1,KV,1,hd] ──────────┴─ Concat ─ Softmax
 *   ─┬─ [.., :cap] ─ MatMul past values [1,KV,cap,hd] ─┐
 *    └─ [.., cap]  ─ × new value [1,KV,1,hd] ──────────┴─ Add ─ Reshape [1, 1, H·hd]
 */
export function singleTokenAttention(
  g: GraphBuilder,
  a: { q: string; k: string; v: string; pastKey: string; pastValue: string; pastBias: string; H: number; KV: number; hd: number },
): string {
  const { H, KV, hd } = a;
  const G = H / KV;
  const ms = (op: string, inputs: string[], attrs = {}) => g.op(op, inputs, attrs, { domain: "com.microsoft" });
  // 4-D throughout: the cache inputs [1, KV, cap, hd] are used as fed (a Reshape of a graph input may copy it).
  const q = g.op("Reshape", [g.op("Mul", [a.q, g.scalar(1 / Math.sqrt(hd))]), g.ints([1, KV, G, hd])]);
  const newK = g.op("Reshape", [a.k, g.ints([1, KV, 1, hd])]);
  const newV = g.op("Reshape", [a.v, g.ints([1, KV, 1, hd])]);
  const scoresPast = g.op("Add", [ms("FusedMatMul", [q, a.pastKey], { transB: 1 }), a.pastBias]); // [1, KV, G, cap]
  const scoresNew = ms("FusedMatMul", [q, newK], { transB: 1 }); // [1, KV, G, 1]
  const probs = g.op("Softmax", [g.op("Concat", [scoresPast, scoresNew], { axis: -1 })], { axis: -1 });
  const capacity = g.op("Shape", [a.pastKey], { start: 2, end: 3 });
  const probsPast = g.op("Slice", [probs, g.ints([0]), capacity, g.ints([-1])]);
  const probsNew = g.op("Slice", [probs, capacity, g.ints([2 ** 53]), g.ints([-1])]);
  const ctx = g.op("Add", [g.op("MatMul", [probsPast, a.pastValue]), g.op("Mul", [probsNew, newV])]); // [1, KV, G, hd]
  return g.op("Reshape", [ctx, g.ints([1, 1, H * hd])]);
}

/**
 * x[visual_positions] += rows, for x [1, S, D] and rows [1, M, D] (one DeepStack slice).
 *
 *   x ─ Reshape [S, D] ─ GatherND(visual_positions) ─ Add(rows [M, D]) ─ ScatterND back ─ Unsqueeze ─▶ [1, S, D]
 */
function addAtVisualPositions(g: GraphBuilder, x: string, rows: string, visualPositions: string, D: number): string {
  const flat = g.op("Reshape", [x, g.ints([-1, D])]); // [S, D]
  const updated = g.op("Add", [g.op("GatherND", [flat, visualPositions]), g.op("Reshape", [rows, g.ints([-1, D])])]); // [M, D]
  return g.op("Unsqueeze", [g.op("ScatterND", [flat, visualPositions, updated]), g.ints([0])]);
}

function declarePastInputs(g: GraphBuilder, cfg: Qwen2VLTextConfig, stage: DecoderStage): void {
  for (let i = stage.from; i < stage.to; i++) {
    g.input(pastKey(i), "float32", [1, cfg.numKvHeads, "capacity", cfg.headDim]);
    g.input(pastValue(i), "float32", [1, cfg.numKvHeads, "capacity", cfg.headDim]);
  }
}
