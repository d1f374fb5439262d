/**
 * Qwen3.5 text decoder as ONNX graphs over all layers: the prefill of a fresh sequence (no state in) and the one-token
 * decode step over the decoder state (below), and the engine's graph (`buildQwen3_5EngineDecoder`: both in one, every
 * call over the incoming state; the one the family module src/families/qwen3-5/family.ts emits).
 * Reference: docs/qwen3_5-reference.md (transformers 5.18.0 models/qwen3_5/modeling_qwen3_5.py, "M:line").
 *
 *   input_ids [1, S] ── Gather(embed_tokens) ── ScatterND(visual_embeds at visual_positions) ──▶ x [1, S, D]
 *   position_ids [3, 1, S] ──▶ cos/sin [1, S, 1, rotary_dim]  (interleaved M-RoPE over the first rotary_dim dims)
 *   layers × { x += mixer(RMSNorm₁₊w(x)) ; x += down(silu(gate(·)) · up(·))(RMSNorm₁₊w(x)) }
 *      (the MLP is a hook, `Qwen3_5DecoderOptions.mlp`: the dense SwiGLU, or Qwen3.5-MoE's sparse MoE block)
 *      mixer = Gated DeltaNet (linear_attention) or gated full attention (full_attention), by layer_types
 *   RMSNorm₁₊w ── Gather(logits_indices) ── lm_head ──▶ logits [1, K, V]
 *
 * Outputs besides the logits: each layer's decoder state after the chunk (§7 of the reference), for the engine to
 * keep — linear layers `present_state.{i}.conv_state` [1, conv_dim, K] (the last K pre-conv in_proj_qkv rows, left
 * zero-padded: the reference cache's layout) and `present_state.{i}.recurrent_state` [1, Hv, dk, dv]; attention
 * layers the chunk's keys (post-norm, post-rotary) and values as `new.{i}.key` / `new.{i}.value` [1, S, KV·hd]
 * (graph-io.ts's layout).
 * Attention runs on plain ops (any head size), the delta rule on src/onnx/gated-delta.ts.
 *
 * `buildQwen3_5DecodeStep` is the one-token graph over that state (the reference's cached path, §7): linear layers
 * read `past_state.{i}.conv_state` / `past_state.{i}.recurrent_state` and run the recurrent form
 * (torch_recurrent_gated_delta_rule); attention layers read `past_key_values.{i}.key/value` [1, KV, P, hd] (exactly
 * the P tokens so far, no capacity padding) and attend over them plus the new token.
 *
 * Decoder stages (family.ts DecoderStage, src/engine/decoder-stages.ts; the engine graph): a stage builds layers
 * [from, to) only, a later stage starting from `hidden_states_in` instead of the embedding, an earlier one ending with
 * `hidden_states_out` instead of the head.
 */
import type { WeightMap } from "../../checkpoint/weight-map.js";
import { causalConv1d, gatedDeltaChunked, gatedDeltaStep, gatedRmsNorm } from "../../onnx/gated-delta.js";
import { f32bytes, isFloatPrecision, type Layers } from "../../onnx/layers.js";
import type { DecoderStage } from "../family.js";
import { DECODER_INPUTS, DECODER_LOGITS, HIDDEN_STATES_IN, HIDDEN_STATES_OUT, newKey, newValue, pastKey, pastValue } from "../graph-io.js";
import { pastBias, singleTokenAttention, swigluMlp } from "../qwen2-vl/text.js";
import { interleavedMrope } from "../qwen3-vl/text.js";
import type { Qwen3_5TextConfig } from "./config.js";

/**
 * Decoder-state outputs of a linear (Gated DeltaNet) layer: whole fixed-size tensors that replace the layer's state,
 * named as the recurrent-state convention being added to graph-io.ts (`present_state.i.<name>`).
 */
export const newConvState = (i: number) => `present_state.${i}.conv_state`;
export const newRecurrentState = (i: number) => `present_state.${i}.recurrent_state`;
/** The same state fed back to a decode step. */
export const pastConvState = (i: number) => `past_state.${i}.conv_state`;
export const pastRecurrentState = (i: number) => `past_state.${i}.recurrent_state`;

/** Hub tensor prefix of the language model (`Qwen3_5ForConditionalGeneration.model.language_model`). */
const LM = "model.language_model";

/**
 * The MLP of decoder layer i over h [1, S, D] → [1, S, D] (after post_attention_layernorm). Default: Qwen3_5MLP, the
 * dense SwiGLU of width `intermediate_size`; Qwen3.5-MoE passes its sparse MoE block (src/families/qwen3-5/moe-config.ts).
 */
export type Qwen3_5MlpBuilder = (layers: Layers, weights: WeightMap, h: string, layer: number) => string;

export interface Qwen3_5DecoderOptions {
  /** Chunk size of the chunk-parallel delta rule (the reference's 64; a power of two). */
  deltaChunkSize?: number;
  /** The per-layer MLP (default: the dense SwiGLU). */
  mlp?: Qwen3_5MlpBuilder;
}

/** Qwen3_5MLP (M:823): down(silu(gate(x)) · up(x)), Qwen2-VL's MLP. */
const denseMlp =
  (cfg: Qwen3_5TextConfig): Qwen3_5MlpBuilder =>
  (layers, weights, h, i) =>
    swigluMlp(layers, weights, h, `${LM}.layers.${i}.mlp`, cfg.hiddenSize, cfg.intermediateSize, cfg.hiddenAct);

/** Prefill of a fresh sequence (no state in); S tokens, visual rows placed at visual_positions. */
export function buildQwen3_5PrefillDecoder(layers: Layers, weights: WeightMap, cfg: Qwen3_5TextConfig, options: Qwen3_5DecoderOptions = {}): void {
  buildDecoder(layers, weights, cfg, { kind: "prefill", chunkSize: options.deltaChunkSize ?? 64 }, options.mlp ?? denseMlp(cfg));
}

/** One token over the decoder state (text token; positions [3, 1, 1]). */
export function buildQwen3_5DecodeStep(layers: Layers, weights: WeightMap, cfg: Qwen3_5TextConfig, options: Pick<Qwen3_5DecoderOptions, "mlp"> = {}): void {
  buildDecoder(layers, weights, cfg, { kind: "step" }, options.mlp ?? denseMlp(cfg));
}

/**
 * The engine's decoder graph (src/engine/sessions.ts Decoder): one graph for prefill chunks and decode steps alike,
 * every call over the incoming state. Linear layers run the chunk-parallel delta rule from `past_state.i.recurrent_state`
 * and the conv over `past_state.i.conv_state` (a one-token call takes the recurrent form instead, as the reference's
 * cached decode does);
 * attention layers read the capacity-sized cache `past_key_values.i.key/value` [1, KV, capacity, hd] in place, as the
 * Qwen-VL decoders do: GroupQueryAttention for a chunk (its filled length from `seqlens_k` / `total_sequence_length`),
 * singleTokenAttention for one token.
 */
export function buildQwen3_5EngineDecoder(layers: Layers, weights: WeightMap, cfg: Qwen3_5TextConfig, options: Qwen3_5DecoderOptions = {}, stage?: DecoderStage): void {
  buildDecoder(layers, weights, cfg, { kind: "engine", chunkSize: options.deltaChunkSize ?? 64 }, options.mlp ?? denseMlp(cfg), stage);
}

type Mode = { kind: "prefill"; chunkSize: number } | { kind: "step" } | { kind: "engine"; chunkSize: number };

function buildDecoder(
  layers: Layers,
  weights: WeightMap,
  cfg: Qwen3_5TextConfig,
  mode: Mode,
  mlpBuilder: Qwen3_5MlpBuilder,
  stage: DecoderStage = { from: 0, to: cfg.numLayers, first: true, last: true },
): void {
  const g = layers.g;
  const D = cfg.hiddenSize;
  const eps = cfg.rmsNormEps;
  const step = mode.kind === "step";

  // The first stage's token ids, a later stage's incoming hidden states [1, S, D]: either gives S (dimension 1).
  const inputIds = stage.first ? g.input(DECODER_INPUTS.inputIds, "int64", [1, step ? 1 : "seq"]) : g.input(HIDDEN_STATES_IN, "float32", [1, step ? 1 : "seq", D]);
  const visual =
    step || !stage.first
      ? null
      : { embeds: g.input(DECODER_INPUTS.visualEmbeds, "float32", ["num_visual", D]), positions: g.input(DECODER_INPUTS.visualPositions, "int64", ["num_visual", 1]) };
  const positionIds = g.input(DECODER_INPUTS.positionIds, "int64", [3, 1, step ? 1 : "seq"]);
  const logitsIndices = stage.last ? g.input(DECODER_INPUTS.logitsIndices, "int64", ["num_logits"]) : "";
  // Engine graph: the cache inputs GroupQueryAttention reads (seqlens_k = total − 1, total_sequence_length) and whether
  // this call is a single token (decode step: attention straight from the cache, see gatedAttention).
  const engine =
    mode.kind === "engine"
      ? g.scope("past_length", () => {
          const seqlensK = g.input(DECODER_INPUTS.seqlensK, "int32", [1]);
          const totalLen = g.input(DECODER_INPUTS.totalSequenceLength, "int32", []);
          const S = g.op("Shape", [inputIds], { start: 1, end: 2 }); // [1]
          const singleToken = g.op("Squeeze", [g.op("Equal", [S, g.ints([1])]), g.ints([0])]); // bool scalar
          return { seqlensK, totalLen, singleToken };
        })
      : null;

  // Qwen3_5RMSNorm (M:840): x · rsqrt(mean(x²) + eps) · (1 + w) — zero-centred weights; 1 + w rounds once to float32,
  // as the reference's float32 `1.0 + self.weight.float()` does.
  const rmsNorm1p = (x: string, name: string, tensor: string, n: number) =>
    layers.rmsNorm(
      x,
      name,
      Float32Array.from(weights.take(tensor, [n]), (w) => 1 + w),
      eps,
    );

  // Qwen3_5TextModel.forward (M:1239): inputs_embeds = embed_tokens(input_ids); visual rows are placed by the caller.
  // The table: claimed by the first stage; the last stage of a tied model reads it again for its head.
  const embedKey = `${LM}.embed_tokens.weight`;
  const needsTable = stage.first || (stage.last && cfg.tieWordEmbeddings);
  const embedTable = !needsTable ? new Float32Array(0) : stage.first ? weights.take(embedKey, [cfg.vocabSize, D]) : weights.readClaimed(embedKey, [cfg.vocabSize, D]);
  const embedName = needsTable ? layers.floatWeight(embedKey, [cfg.vocabSize, D], embedTable) : "";
  let x = !stage.first
    ? inputIds
    : g.scope("embed_tokens", () => {
        const tokens = g.op("Gather", [embedName, g.op("Squeeze", [inputIds, g.ints([0])])], { axis: 0 }); // [S] → [S, D]
        const merged = visual ? g.op("ScatterND", [tokens, visual.positions, visual.embeds]) : tokens; // visual rows replace their placeholders
        return g.op("Unsqueeze", [merged, g.ints([0])]); // [S, D] → [1, S, D]
      });

  // Qwen3_5TextRotaryEmbedding (M:142-212): inv_freq[j] = θ^(−2j/rd), j < rd/2; freqs per axis T/H/W recomposed
  // interleaved (apply_interleaved: H at j ≡ 1 mod 3, j < 3·s1; W at j ≡ 2 mod 3, j < 3·s2; else T); emb = cat(f, f).
  const rd = cfg.rotaryDim;
  const { cos, sin } = g.scope("rotary", () => {
    const half = rd / 2;
    const axes = interleavedMrope(half)(cfg.mropeSection);
    const masked = new Float32Array(3 * half); // [3, half]: inv_freq where axis(j) == a, else 0
    for (let j = 0; j < half; j++) masked[axes[j] * half + j] = 1 / cfg.ropeTheta ** ((2 * j) / rd);
    const pos = g.op("Unsqueeze", [g.op("Cast", [positionIds], { to: 1 }), g.ints([3])]); // [3, 1, S] → [3, 1, S, 1]
    const perAxis = g.op("Mul", [pos, g.constant("float32", [3, 1, 1, half], masked)]); // [3, 1, S, half]
    const freqs = g.op("ReduceSum", [perAxis, g.ints([0])], { keepdims: 0 }); // [1, S, half]: one non-zero term per j
    const emb = g.op("Unsqueeze", [g.op("Concat", [freqs, freqs], { axis: -1 }), g.ints([2])]); // [1, S, rd] → [1, S, 1, rd]
    return { cos: g.op("Cos", [emb]), sin: g.op("Sin", [emb]) };
  });

  // Causal mask for a prefill chunk (no past): scores[.., i, j] += −∞ for j > i. A step's one query sees everything.
  // (The engine graph's attention masks inside GroupQueryAttention.)
  const causalBias = step || engine ? null : g.scope("causal_mask", () => {
    const S = g.op("Squeeze", [g.op("Shape", [inputIds], { start: 1, end: 2 }), g.ints([0])]); // int64 scalar
    const zero = g.constant("int64", [], [0n]);
    const one = g.constant("int64", [], [1n]);
    const idx = g.op("Range", [zero, S, one]); // [S]
    const future = g.op("Greater", [g.op("Unsqueeze", [idx, g.ints([0])]), g.op("Unsqueeze", [idx, g.ints([1])])]); // [1, S] > [S, 1] → [S, S]
    return g.op("Where", [future, g.scalar(-Infinity), g.scalar(0)]); // [S, S]
  });

  for (let i = stage.from; i < stage.to; i++) {
    const p = `${LM}.layers.${i}`;
    x = g.scope(`layers.${i}`, () => {
      // Qwen3_5DecoderLayer.forward (M:873): x += mixer(input_layernorm(x)); x += mlp(post_attention_layernorm(x)).
      const h = rmsNorm1p(x, "input_layernorm", `${p}.input_layernorm.weight`, D);
      const mixer =
        cfg.layerTypes[i] === "linear_attention"
          ? g.scope("linear_attn", () => gatedDeltaNet(layers, weights, cfg, h, i, mode))
          : g.scope("attn", () => gatedAttention(layers, weights, cfg, h, i, { cos, sin, causalBias }, engine));
      const x1 = g.op("Add", [x, mixer]);
      const h2 = rmsNorm1p(x1, "post_attention_layernorm", `${p}.post_attention_layernorm.weight`, D);
      // Qwen3_5MLP (M:823) or, in Qwen3.5-MoE, Qwen3_5MoeSparseMoeBlock (MoE:903): options.mlp.
      const mlp = mlpBuilder(layers, weights, h2, i);
      return g.op("Add", [x1, mlp]);
    });
  }

  if (!stage.last) {
    g.output(x, HIDDEN_STATES_OUT, "float32", [1, step ? 1 : "seq", D]);
    return;
  }
  // Final norm (Qwen3_5TextModel.norm, M:1239+) and lm_head (untied unless tie_word_embeddings, M:1766).
  const logits = g.scope("lm_head", () => {
    const normed = rmsNorm1p(x, "norm", `${LM}.norm.weight`, D);
    const picked = g.op("Gather", [normed, logitsIndices], { axis: 1 }); // [1, S, D] → [1, K, D]
    const headPrecision = isFloatPrecision(layers.precision) ? layers.precision : "int8";
    if (cfg.tieWordEmbeddings && isFloatPrecision(headPrecision)) {
      const rows = g.op("Reshape", [picked, g.ints([-1, D])]); // [1, K, D] → [K, D]
      return g.op("Unsqueeze", [g.op("Gemm", [rows, embedName], { transB: 1 }), g.ints([0])]); // [K, V] → [1, K, V]
    }
    const head = cfg.tieWordEmbeddings ? embedTable : weights.take("lm_head.weight", [cfg.vocabSize, D]);
    return layers.linear(picked, "lm_head", head, cfg.vocabSize, D, undefined, headPrecision);
  });
  g.output(logits, DECODER_LOGITS, "float32", [1, "num_logits", cfg.vocabSize]);
}

/**
 * One Gated DeltaNet mixer (Qwen3_5GatedDeltaNet.forward, M:549-662; reference §4): over a prefill chunk from a zero
 * state, or one step over the cached state. h [1, S, D] → [1, S, D]; declares the layer's state inputs (step) and
 * outputs.
 */
function gatedDeltaNet(layers: Layers, weights: WeightMap, cfg: Qwen3_5TextConfig, h: string, i: number, mode: Mode): string {
  const g = layers.g;
  const D = cfg.hiddenSize;
  const { convKernel: K, numKeyHeads: Hk, keyHeadDim: dk, numValueHeads: Hv, valueHeadDim: dv } = cfg.linear;
  const keyDim = Hk * dk;
  const valueDim = Hv * dv;
  const convDim = 2 * keyDim + valueDim;
  const p = `${LM}.layers.${i}.linear_attn`;

  // M:571-579: in_proj_qkv → mixed [1, S, conv_dim]; in_proj_z → z; in_proj_b → b; in_proj_a → a (separate
  // projections in Qwen3.5, §2; fused here into one product and split back).
  const [mixed, zFlat, b, a] = layers.linearFused(
    h,
    "in_proj_qkvzba",
    [
      { weight: weights.take(`${p}.in_proj_qkv.weight`, [convDim, D]), outFeatures: convDim },
      { weight: weights.take(`${p}.in_proj_z.weight`, [valueDim, D]), outFeatures: valueDim },
      { weight: weights.take(`${p}.in_proj_b.weight`, [Hv, D]), outFeatures: Hv },
      { weight: weights.take(`${p}.in_proj_a.weight`, [Hv, D]), outFeatures: Hv },
    ],
    D,
  );

  // causal_conv1d_fn (M:269) from a zero state, or causal_conv1d_update (M:249) over the cached one, then SiLU;
  // conv1d.weight [conv_dim, 1, K], no bias. The cache holds K rows (§7), the conv reads the last K − 1.
  const pastConv = mode.kind !== "prefill" ? g.input(pastConvState(i), "float32", [1, convDim, K]) : g.op("Expand", [g.scalar(0), g.ints([1, convDim, K])]); // [1, conv_dim, K]
  const lastRows = (t: string, n: number) => g.op("Slice", [t, g.ints([-n]), g.ints([Number.MAX_SAFE_INTEGER]), g.ints([2])]); // [1, conv_dim, ≥n] → [1, conv_dim, n]
  const conv = causalConv1d(g, mixed, lastRows(pastConv, K - 1), "conv1d", weights.take(`${p}.conv1d.weight`, [convDim, 1, K]), convDim, K); // [1, S, conv_dim]
  // The reference cache's conv state (§7): the last K pre-conv rows (left zero-padded when fewer were seen).
  const convState = g.scope("conv_state", () => lastRows(g.op("Concat", [pastConv, g.op("Transpose", [mixed], { perm: [0, 2, 1] })], { axis: 2 }), K)); // [1, conv_dim, K + S] → [1, conv_dim, K]
  g.output(convState, newConvState(i), "float32", [1, convDim, K]);

  // M:600-621: split into q, k [1, S, Hk, dk], v [1, S, Hv, dv]; heads first for the kernel; q/k heads repeated
  // (repeat_interleave: value head j reads key head ⌊j / (Hv/Hk)⌋) when Hv > Hk.
  const [qFlat, kFlat, vFlat] = g.opN("Split", [conv.output, g.ints([keyDim, keyDim, valueDim])], { axis: -1 }, 3);
  const r = Hv / Hk;
  const keyHeads = (t: string) => {
    let y = g.op("Reshape", [t, g.ints([0, 0, Hk, 1, dk])]); // [1, S, Hk·dk] → [1, S, Hk, 1, dk]
    if (r > 1) y = g.op("Expand", [y, g.ints([1, 1, Hk, r, dk])]); // [1, S, Hk, r, dk]
    y = g.op("Reshape", [y, g.ints([0, 0, Hv, dk])]); // [1, S, Hk, r, dk] → [1, S, Hv, dk]
    return g.op("Transpose", [y], { perm: [0, 2, 1, 3] }); // [1, S, Hv, dk] → [1, Hv, S, dk]
  };
  const q = keyHeads(qFlat);
  const k = keyHeads(kFlat);
  const v = g.op("Transpose", [g.op("Reshape", [vFlat, g.ints([0, 0, Hv, dv])])], { perm: [0, 2, 1, 3] }); // [1, S, Hv·dv] → [1, S, Hv, dv] → [1, Hv, S, dv]

  // M:616-618: β = sigmoid(b); g = −exp(A_log) · softplus(a + dt_bias), float32, [1, S, Hv] → [1, Hv, S].
  const beta = g.op("Transpose", [g.op("Sigmoid", [b])], { perm: [0, 2, 1] });
  const aLog = g.weight(`${p}.A_log`, "float32", [Hv], f32bytes(weights.take(`${p}.A_log`, [Hv])));
  const dtBias = g.weight(`${p}.dt_bias`, "float32", [Hv], f32bytes(weights.take(`${p}.dt_bias`, [Hv])));
  const decay = g.op("Transpose", [g.op("Mul", [g.op("Neg", [g.op("Exp", [aLog])]), g.op("Softplus", [g.op("Add", [a, dtBias])])])], { perm: [0, 2, 1] });

  // use_qk_l2norm_in_kernel=True. Prefill: torch_chunk_gated_delta_rule (M:300, §5) from a zero state; a step:
  // torch_recurrent_gated_delta_rule (M:437) from the cached state (M:624-649).
  // Engine graph: one token (a decode step) takes the recurrent form, as the reference's cached path does; longer
  // chunks the chunk-parallel form from the incoming state (an If on S == 1).
  const gdOptions = { l2normQK: true, keyDim: dk, valueDim: dv };
  const zeroState = () => g.op("Expand", [g.scalar(0), g.ints([1, Hv, dk, dv])]);
  const stepCore = (state: string) => gatedDeltaStep(g, { q, k, v, g: decay, beta, state }, gdOptions);
  const chunkCore = (state: string, chunkSize: number) => gatedDeltaChunked(g, { q, k, v, g: decay, beta, state }, { ...gdOptions, chunkSize });
  let core: { output: string; state: string };
  if (mode.kind === "step") core = stepCore(g.input(pastRecurrentState(i), "float32", [1, Hv, dk, dv]));
  else if (mode.kind === "prefill") core = chunkCore(zeroState(), mode.chunkSize);
  else {
    const past = g.input(pastRecurrentState(i), "float32", [1, Hv, dk, dv]);
    const oneToken = g.op("Equal", [g.op("Shape", [h], { start: 1, end: 2 }), g.ints([1])]); // [1] bool
    const pick = (c: { output: string; state: string }) => [c.output, c.state];
    const [output, state] = g.ifElse(
      oneToken,
      () => pick(stepCore(past)),
      () => pick(chunkCore(past, mode.chunkSize)),
      [
        { dtype: "float32", shape: [1, Hv, "seq", dv] },
        { dtype: "float32", shape: [1, Hv, dk, dv] },
      ],
    );
    core = { output, state };
  }
  g.output(core.state, newRecurrentState(i), "float32", [1, Hv, dk, dv]);

  // M:656-661: Qwen3_5RMSNormGated per head over dv with z, then out_proj.
  const coreRows = g.op("Transpose", [core.output], { perm: [0, 2, 1, 3] }); // [1, Hv, S, dv] → [1, S, Hv, dv]
  const z = g.op("Reshape", [zFlat, g.ints([0, 0, Hv, dv])]); // [1, S, Hv·dv] → [1, S, Hv, dv]
  const normed = gatedRmsNorm(g, coreRows, z, "norm", weights.take(`${p}.norm.weight`, [dv]), cfg.rmsNormEps); // [1, S, Hv, dv]
  const flat = g.op("Reshape", [normed, g.ints([0, 0, valueDim])]); // [1, S, Hv, dv] → [1, S, Hv·dv]
  return layers.linear(flat, "out_proj", weights.take(`${p}.out_proj.weight`, [D, valueDim]), D, valueDim);
}

/**
 * One gated full-attention mixer (Qwen3_5Attention.forward, M:775-820; reference §6): a causal prefill chunk without
 * past (causalBias given), or one step over the cached keys/values (causalBias null). h [1, S, D] → [1, S, D];
 * declares the past inputs (step) and the new keys and values as outputs.
 */
function gatedAttention(
  layers: Layers,
  weights: WeightMap,
  cfg: Qwen3_5TextConfig,
  h: string,
  i: number,
  rope: { cos: string; sin: string; causalBias: string | null },
  engine: { seqlensK: string; totalLen: string; singleToken: string } | null = null,
): string {
  const g = layers.g;
  const D = cfg.hiddenSize;
  const { numHeads: H, numKvHeads: KV, headDim: hd, rotaryDim: rd } = cfg;
  const G = H / KV;
  const p = `${LM}.layers.${i}.self_attn`;
  const part = (name: string, out: number) => ({
    weight: weights.take(`${p}.${name}_proj.weight`, [out, D]),
    outFeatures: out,
    bias: cfg.attentionBias ? weights.take(`${p}.${name}_proj.bias`, [out]) : undefined,
  });
  const [qg, kFlat, vFlat] = layers.linearFused(h, "qkv_proj", [part("q", 2 * H * hd), part("k", KV * hd), part("v", KV * hd)], D);

  // M:783-786: q_proj(x).view(S, H, 2·hd).chunk(2): per head [query (hd) ‖ gate (hd)].
  const [qHeads, gateHeads] = g.opN("Split", [g.op("Reshape", [qg, g.ints([0, 0, H, 2 * hd])]), g.ints([hd, hd])], { axis: -1 }, 2); // [1, S, 2·H·hd] → [1, S, H, 2·hd] → 2 × [1, S, H, hd]
  const gate = g.op("Reshape", [gateHeads, g.ints([0, 0, H * hd])]); // [1, S, H, hd] → [1, S, H·hd]

  // M:788-789: q_norm / k_norm (Qwen3_5RMSNorm, 1 + w) over each head's hd.
  const qkNorm = (t: string, name: string) =>
    layers.rmsNorm(
      t,
      `${name}_norm`,
      Float32Array.from(weights.take(`${p}.${name}_norm.weight`, [hd]), (w) => 1 + w),
      cfg.rmsNormEps,
    );
  const qn = qkNorm(qHeads, "q"); // [1, S, H, hd]
  const kn = qkNorm(g.op("Reshape", [kFlat, g.ints([0, 0, KV, hd])]), "k"); // [1, S, KV·hd] → [1, S, KV, hd]

  // apply_rotary_pos_emb (M:697-707): rotate_half rotary on the first rotary_dim dims of each head, the rest passes.
  const rotate = (t: string) => {
    if (rd === hd) return layers.applyRotary(t, rope.cos, rope.sin, rd);
    const [rot, pass] = g.opN("Split", [t, g.ints([rd, hd - rd])], { axis: -1 }, 2); // [1, S, n, hd] → [1, S, n, rd], [1, S, n, hd − rd]
    return g.op("Concat", [layers.applyRotary(rot, rope.cos, rope.sin, rd), pass], { axis: -1 });
  };
  const q = rotate(qn); // [1, S, H, hd]
  const k = rotate(kn); // [1, S, KV, hd]
  g.output(g.op("Reshape", [k, g.ints([0, 0, KV * hd])]), newKey(i), "float32", [1, "seq", KV * hd]); // [1, S, KV, hd] → [1, S, KV·hd]
  g.output(vFlat, newValue(i), "float32", [1, "seq", KV * hd]);

  // eager_attention_forward: softmax(q kᵀ · hd^-½ + causal) v, query head j on KV head ⌊j / G⌋ (repeat_kv).
  // Engine graph: the same math over the capacity-sized cache read in place, as the Qwen-VL decoders do
  // (qwen2-vl/text.ts): GroupQueryAttention for a chunk (causal from its past length), singleTokenAttention for one
  // token. (Slicing the filled rows and concatenating the chunk copied each layer's cache every call: measured on the
  // qwen3_5-2b bench shape, the decode step grew ~180 ms from 1k to 16k context for 384 MiB of KV.)
  const ctx = engine ? g.scope("attention", () => {
    const qFlat = g.op("Reshape", [q, g.ints([0, 0, H * hd])]); // [1, S, H, hd] → [1, S, H·hd]
    const kNew = g.op("Reshape", [k, g.ints([0, 0, KV * hd])]);
    const pk = g.input(pastKey(i), "float32", [1, KV, "capacity", hd]);
    const pv = g.input(pastValue(i), "float32", [1, KV, "capacity", hd]);
    const [out] = g.ifElse(
      engine.singleToken,
      () => [singleTokenAttention(g, { q: qFlat, k: kNew, v: vFlat, pastKey: pk, pastValue: pv, pastBias: pastBias(g, pk, engine.seqlensK), H, KV, hd })],
      () =>
        g.opN(
          "GroupQueryAttention",
          [qFlat, kNew, vFlat, pk, pv, engine.seqlensK, engine.totalLen],
          { num_heads: H, kv_num_heads: KV },
          [`/model/layers.${i}/attn/GroupQueryAttention/output_0`, `/model/layers.${i}/attn/present_key`, `/model/layers.${i}/attn/present_value`],
          "com.microsoft",
        ).slice(0, 1),
      [{ dtype: "float32", shape: [1, "seq", H * hd] }],
    );
    return out;
  }) : g.scope("attention", () => {
    const qT = g.op("Reshape", [g.op("Transpose", [q], { perm: [0, 2, 1, 3] }), g.ints([0, KV, G, -1, hd])]); // [1, S, H, hd] → [1, H, S, hd] → [1, KV, G, S, hd]
    let kH = g.op("Transpose", [k], { perm: [0, 2, 1, 3] }); // [1, S, KV, hd] → [1, KV, S, hd]
    let vH = g.op("Transpose", [g.op("Reshape", [vFlat, g.ints([0, 0, KV, hd])])], { perm: [0, 2, 1, 3] }); // [1, S, KV·hd] → [1, S, KV, hd] → [1, KV, S, hd]
    if (!rope.causalBias) {
      // A step: the cached keys/values [1, KV, P, hd] (DynamicLayer.update, past_key_values.update M:796) then the new one.
      kH = g.op("Concat", [g.input(pastKey(i), "float32", [1, KV, "past", hd]), kH], { axis: 2 }); // [1, KV, P + 1, hd]
      vH = g.op("Concat", [g.input(pastValue(i), "float32", [1, KV, "past", hd]), vH], { axis: 2 }); // [1, KV, P + 1, hd]
    }
    const kT = g.op("Unsqueeze", [g.op("Transpose", [kH], { perm: [0, 1, 3, 2] }), g.ints([2])]); // [1, KV, T, hd] → [1, KV, hd, T] → [1, KV, 1, hd, T]
    const vT = g.op("Unsqueeze", [vH, g.ints([2])]); // [1, KV, T, hd] → [1, KV, 1, T, hd]
    const raw = g.op("Mul", [g.op("MatMul", [qT, kT]), g.scalar(1 / Math.sqrt(hd))]); // [1, KV, G, S, T]
    const scores = rope.causalBias ? g.op("Add", [raw, rope.causalBias]) : raw;
    const probs = g.op("Softmax", [scores], { axis: -1 });
    const out = g.op("MatMul", [probs, vT]); // [1, KV, G, S, hd]
    const heads = g.op("Reshape", [out, g.ints([0, H, -1, hd])]); // [1, KV, G, S, hd] → [1, H, S, hd]
    return g.op("Reshape", [g.op("Transpose", [heads], { perm: [0, 2, 1, 3] }), g.ints([0, 0, H * hd])]); // [1, H, S, hd] → [1, S, H, hd] → [1, S, H·hd]
  });

  // M:815-818: attn · sigmoid(gate), then o_proj.
  const gated = g.op("Mul", [ctx, g.op("Sigmoid", [gate])]);
  return layers.linear(gated, "o_proj", weights.take(`${p}.o_proj.weight`, [D, H * hd]), D, H * hd);
}
