/**
 * Gated DeltaNet (the linear-attention layers of Qwen3.5 / Qwen3.6) as ONNX graph helpers: the gated delta rule in
 * its one-token recurrent form and its chunk-parallel prefill form, the short causal depthwise conv with its own
 * state, and the gated RMSNorm. Nothing here knows about a family: a family's decoder calls these per layer.
 *
 * References (transformers 5.x, src/transformers/models/qwen3_5/modeling_qwen3_5.py):
 * - `torch_recurrent_gated_delta_rule`: one step per token (decode).
 * - `torch_chunk_gated_delta_rule`: chunks of 64 tokens, a UT transform inside the chunk, a scan over chunks (prefill).
 * - `causal_conv1d_fn` / `causal_conv1d_update`: depthwise conv, kernel `linear_conv_kernel_dim` (4), SiLU.
 * - `Qwen3_5RMSNormGated`: RMSNorm(x)·w·silu(z).
 * - `l2norm`: x · rsqrt(Σx² + 1e-6).
 * Yang et al., "Gated Delta Networks" (arXiv 2412.06464), for the math.
 *
 * Layout: heads first, as the reference uses inside the kernels: q, k [B, H, T, Dk], v [B, H, T, Dv], g and beta
 * [B, H, T], the recurrent state S [B, H, Dk, Dv]. g is the log decay (≤ 0); beta the write strength in (0, 1).
 * Query/key heads must already equal the value heads (the family repeats them, as `repeat_interleave` does).
 */
import { float, GraphBuilder } from "./graph.js";
import { f32bytes } from "./layers.js";

export interface GatedDeltaOptions {
  /** L2-normalise q and k first (`use_qk_l2norm_in_kernel`; Qwen3.5 passes True). */
  l2normQK: boolean;
  /** Dk, the key head size: the query scale is 1/√Dk. */
  keyDim: number;
  /** Dv, the value head size. */
  valueDim: number;
}

/** modeling_qwen3_5.py `l2norm`: x · rsqrt(Σx² + eps) over the last axis (eps inside the root, as FLA does). */
export function l2norm(g: GraphBuilder, x: string, eps = 1e-6): string {
  const sumSq = g.op("ReduceSumSquare", [x, g.ints([-1])], { keepdims: 1 }); // [..., 1]
  return g.op("Mul", [x, g.op("Reciprocal", [g.op("Sqrt", [g.op("Add", [sumSq, g.scalar(eps)])])])]);
}

/** The common start of both reference functions: optional L2 norm of q and k, then q · Dk^-½. */
function prepareQK(g: GraphBuilder, q: string, k: string, o: GatedDeltaOptions): [string, string] {
  if (o.l2normQK) {
    q = l2norm(g, q);
    k = l2norm(g, k);
  }
  return [g.op("Mul", [q, g.scalar(1 / Math.sqrt(o.keyDim))]), k];
}

/**
 * One token of the gated delta rule (modeling_qwen3_5.py `torch_recurrent_gated_delta_rule`, loop body):
 *
 *   S ← S · exp(g)                      [B,H,Dk,Dv] · [B,H,1,1]
 *   kv_mem = k · S                      [B,H,1,Dk] @ [B,H,Dk,Dv] → [B,H,1,Dv]
 *   δ = (v − kv_mem) · β                [B,H,1,Dv] · [B,H,1,1]
 *   S ← S + kᵀ δ                        [B,H,Dk,1] @ [B,H,1,Dv] → [B,H,Dk,Dv]
 *   o = q · S                           [B,H,1,Dk] @ [B,H,Dk,Dv] → [B,H,1,Dv]
 *
 * q, k [B,H,1,Dk], v [B,H,1,Dv], g, beta [B,H,1], state [B,H,Dk,Dv]. Returns { output [B,H,1,Dv], state }.
 */
export function gatedDeltaStep(
  g: GraphBuilder,
  inputs: { q: string; k: string; v: string; g: string; beta: string; state: string },
  o: GatedDeltaOptions,
): { output: string; state: string } {
  return g.scope("gated_delta_step", () => {
    const [q, k] = prepareQK(g, inputs.q, inputs.k, o);
    const decay = g.op("Unsqueeze", [g.op("Exp", [inputs.g]), g.ints([-1])]); // [B,H,1] → [B,H,1,1]
    const beta = g.op("Unsqueeze", [inputs.beta, g.ints([-1])]); // [B,H,1] → [B,H,1,1]
    const decayed = g.op("Mul", [inputs.state, decay]);
    const kvMem = g.op("MatMul", [k, decayed]);
    const delta = g.op("Mul", [g.op("Sub", [inputs.v, kvMem]), beta]);
    const kT = g.op("Transpose", [k], { perm: [0, 1, 3, 2] }); // [B,H,1,Dk] → [B,H,Dk,1]
    const state = g.op("Add", [decayed, g.op("MatMul", [kT, delta])]);
    return { output: g.op("MatMul", [q, state]), state };
  });
}

/**
 * The chunk-parallel gated delta rule over T tokens (T dynamic; modeling_qwen3_5.py `torch_chunk_gated_delta_rule`),
 * equal to T steps of `gatedDeltaStep` from `state`. Within a chunk of C tokens (decay cumulated as Γ = cumsum g):
 *
 *   D[i,j]   = exp(Γi − Γj) for j ≤ i, else 0                      pairwise decay         [.., C, C]
 *   L        = strictly_lower((β k) kᵀ ∘ D)                         UT system              [.., C, C]
 *   u, w     = (I + L)⁻¹ [βv | βk·expΓ]                             new_values [.., C, Dv], k_cumdecay [.., C, Dk]
 *              (the inverse by log2 C levels of block products: unitLowerInverse)
 *   P        = (q kᵀ) ∘ D                                           intra-chunk attention  [.., C, C]
 * then over chunks n (an ONNX Loop, one iteration per chunk, no per-token work):
 *   v' = u − w S;   o = (q·expΓ) S + P v';   S ← S·exp(Γ_C) + (k·exp(Γ_C − Γ))ᵀ v'
 *
 * T is padded with zeros (k = v = β = g = 0 changes nothing) to a multiple of C and the padding dropped at the end.
 * Inputs as `gatedDeltaStep` with T tokens; `state` is required (zeros for a fresh sequence).
 * Returns { output [B,H,T,Dv], state [B,H,Dk,Dv] }.
 */
export function gatedDeltaChunked(
  g: GraphBuilder,
  inputs: { q: string; k: string; v: string; g: string; beta: string; state: string },
  o: GatedDeltaOptions & { chunkSize?: number },
): { output: string; state: string } {
  const C = o.chunkSize ?? 64;
  const { keyDim: Dk, valueDim: Dv } = o;
  return g.scope("gated_delta_chunked", () => {
    let [q, k] = prepareQK(g, inputs.q, inputs.k, o);
    let v = inputs.v;
    let decay = inputs.g;
    let beta = inputs.beta;

    // Pad T to a multiple of C: pad = (C − T mod C) mod C.
    const T = g.op("Gather", [g.op("Shape", [v]), g.ints([2])], { axis: 0 }); // [1]
    const cC = g.ints([C]);
    const pad = g.op("Mod", [g.op("Sub", [cC, g.op("Mod", [T, cC])]), cC]); // [1]
    const zeros2 = g.ints([0, 0]);
    const zero1 = g.ints([0]);
    const pads4 = g.op("Concat", [zeros2, zero1, zero1, zeros2, pad, zero1], { axis: 0 }); // [8]: begin B,H,T,D; end B,H,T,D
    const pads3 = g.op("Concat", [zeros2, zero1, zeros2, pad], { axis: 0 }); // [6]: begin B,H,T; end B,H,T
    [q, k, v] = [q, k, v].map((x) => g.op("Pad", [x, pads4])); // [B,H,Tp,D]
    [beta, decay] = [beta, decay].map((x) => g.op("Pad", [x, pads3])); // [B,H,Tp]

    const betaU = g.op("Unsqueeze", [beta, g.ints([-1])]); // [B,H,Tp] → [B,H,Tp,1]
    const vBeta = g.op("Mul", [v, betaU]);
    const kBeta = g.op("Mul", [k, betaU]);
    // Chunk the sequence axis: [B,H,Tp,D] → [B,H,N,C,D]; [B,H,Tp] → [B,H,N,C].
    const chunk = (x: string, d: number) => g.op("Reshape", [x, g.ints([0, 0, -1, C, d])]);
    const qc = chunk(q, Dk);
    const kc = chunk(k, Dk);
    const kBetaC = chunk(kBeta, Dk);
    const vBetaC = chunk(vBeta, Dv);
    const decayC = g.op("Reshape", [decay, g.ints([0, 0, -1, C])]);

    // Cumulative log decay within each chunk: cum[.., t] = Σ_{s ≤ t} g_s. [B,H,N,C]
    const cum = g.op("CumSum", [decayC, g.constant("int64", [], [3n])]);
    const cumCol = g.op("Unsqueeze", [cum, g.ints([-1])]); // [B,H,N,C] → [B,H,N,C,1]  (Γi down the rows)
    const cumRow = g.op("Unsqueeze", [cum, g.ints([-2])]); // [B,H,N,C] → [B,H,N,1,C]  (Γj across the columns)
    // pairwise_decay: strictly upper entries to −∞ before exp (avoids overflow), then exp → 0.
    const upper = new Uint8Array(C * C);
    for (let i = 0; i < C; i++) for (let j = i + 1; j < C; j++) upper[i * C + j] = 1;
    const pairwise = g.op("Exp", [
      g.op("Where", [g.constant("bool", [C, C], upper), g.scalar(-Infinity), g.op("Sub", [cumCol, cumRow])]),
    ]); // [B,H,N,C,C]

    const kcT = g.op("Transpose", [kc], { perm: [0, 1, 2, 4, 3] }); // [B,H,N,C,Dk] → [B,H,N,Dk,C]
    const utSystem = g.op("Mul", [g.op("MatMul", [kBetaC, kcT]), pairwise]); // [B,H,N,C,C]
    const intra = g.op("Mul", [g.op("MatMul", [qc, kcT]), pairwise]); // [B,H,N,C,C]
    const cumExp = g.op("Exp", [cumCol]); // [B,H,N,C,1]
    const decayedKBeta = g.op("Mul", [kBetaC, cumExp]); // [B,H,N,C,Dk]

    // The reference's unitriangular solve (torch.linalg.solve_triangular(ut_system, ·, upper=False,
    // unitriangular=True); its export path builds the same (I + L)⁻¹ by a row loop): the inverse by recursive 2×2
    // block inversion (see unitLowerInverse), then one product for both right-hand sides.
    const inv = unitLowerInverse(g, utSystem, C); // [B,H,N,C,C]
    const X = g.op("MatMul", [inv, g.op("Concat", [vBetaC, decayedKBeta], { axis: -1 })]); // [B,H,N,C,Dv+Dk]
    const [newValues, kCumDecay] = g.opN("Split", [X, g.ints([Dv, Dk])], { axis: -1 }, 2); // [B,H,N,C,Dv], [B,H,N,C,Dk]

    // Decays applied once, outside the scan (as the reference does).
    const qDecayed = g.op("Mul", [qc, cumExp]); // [B,H,N,C,Dk]
    const cumLast = g.op("Slice", [cumCol, g.ints([-1]), g.ints([C]), g.ints([3])]); // [B,H,N,1,1]
    const kDecayedT = g.op("Transpose", [g.op("Mul", [kc, g.op("Exp", [g.op("Sub", [cumLast, cumCol])])])], { perm: [0, 1, 2, 4, 3] }); // [B,H,N,Dk,C]
    const chunkDecay = g.op("Exp", [cumLast]); // [B,H,N,1,1]

    const N = g.op("Squeeze", [g.op("Div", [g.op("Add", [T, pad]), cC])]); // int64 scalar: number of chunks
    const [finalState, outChunks] = g.loop(
      N,
      [{ init: inputs.state, dtype: "float32", shape: ["batch", "heads", Dk, Dv] }],
      [{ dtype: "float32", shape: ["batch", "heads", C, Dv] }],
      (n, [S]) => {
        const at = (x: string) => g.op("Gather", [x, n], { axis: 2 }); // [B,H,N,…] → [B,H,…]: chunk n
        const vNew = g.op("Sub", [at(newValues), g.op("MatMul", [at(kCumDecay), S])]); // [B,H,C,Dv]
        const out = g.op("Add", [g.op("MatMul", [at(qDecayed), S]), g.op("MatMul", [at(intra), vNew])]); // [B,H,C,Dv]
        const next = g.op("Add", [g.op("Mul", [S, at(chunkDecay)]), g.op("MatMul", [at(kDecayedT), vNew])]); // [B,H,Dk,Dv]
        return [next, out];
      },
    );
    // [N,B,H,C,Dv] → [B,H,N,C,Dv] → [B,H,N·C,Dv] → [B,H,T,Dv]
    const outPadded = g.op("Reshape", [g.op("Transpose", [outChunks], { perm: [1, 2, 0, 3, 4] }), g.ints([0, 0, -1, Dv])]);
    const output = g.op("Slice", [outPadded, zero1, T, g.ints([2])]);
    return { output, state: finalState };
  });
}

/**
 * (I + L)⁻¹ for L the strictly lower triangle of `m` [..., C, C] (its diagonal and upper triangle are not read, as
 * solve_triangular(unitriangular=True) does not), C a power of two, by recursive 2×2 block inversion: starting from
 * the 1×1 diagonal blocks (= 1), each level pairs neighbouring diagonal blocks into one twice the size,
 *
 *   [ X₁  0  ]⁻¹   [ X₁⁻¹            0    ]
 *   [ M₂₁ X₂ ]   = [ −X₂⁻¹ M₂₁ X₁⁻¹  X₂⁻¹ ]          (all C/2s pairs of a level in one batched product)
 *
 * log2 C levels, none sequential in the tokens. Not the truncated Neumann series Σ Aᵏ = Π (I + A^(2^j)): that is
 * exact in real arithmetic (L is nilpotent) but its powers hold binomially large terms that cancel, so in float32 it
 * fails (by 10⁷ and more) on chunks with little decay, aligned keys and β near 1; block inversion never forms them.
 */
export function unitLowerInverse(g: GraphBuilder, m: string, C: number): string {
  if (!Number.isInteger(Math.log2(C))) throw new Error(`unitLowerInverse: the size (${C}) must be a power of two`);
  return g.scope("unit_lower_inverse", () => {
    const batch = g.op("Slice", [g.op("Shape", [m]), g.ints([0]), g.ints([-2])]); // the leading dims of m
    const flat = g.op("Reshape", [m, g.op("Concat", [batch, g.ints([C * C])], { axis: 0 })]); // [..., C, C] → [..., C·C]
    // inverses of the diagonal blocks of size s: [..., C/s, s, s]; 1×1 blocks of a unit diagonal are 1
    let blocks = g.op("Expand", [g.constant("float32", [C, 1, 1], new Array(C).fill(1)), g.op("Concat", [batch, g.ints([C, 1, 1])], { axis: 0 })]);
    for (let s = 1; s < C; s *= 2) {
      const P = C / (2 * s); // pairs at this level
      const idx: bigint[] = [];
      for (let p = 0; p < P; p++) for (let r = 0; r < s; r++) for (let c = 0; c < s; c++) idx.push(BigInt(((2 * p + 1) * s + r) * C + 2 * p * s + c));
      const m21 = g.op("Gather", [flat, g.constant("int64", [P, s, s], idx)], { axis: -1 }); // [..., P, s, s]
      const pairs = g.op("Reshape", [blocks, g.op("Concat", [batch, g.ints([P, 2, s, s])], { axis: 0 })]); // [..., C/s, s, s] → [..., P, 2, s, s]
      const [x1, x2] = g.opN("Split", [pairs], { axis: -3, num_outputs: 2 }, 2).map((x) => g.op("Squeeze", [x, g.ints([-3])])); // [..., P, s, s] each
      const x21 = g.op("Neg", [g.op("MatMul", [g.op("MatMul", [x2, m21]), x1])]); // [..., P, s, s]
      const zero = g.op("Expand", [g.scalar(0), g.op("Shape", [x1])]);
      const top = g.op("Concat", [x1, zero], { axis: -1 }); // [..., P, s, 2s]
      const bottom = g.op("Concat", [x21, x2], { axis: -1 }); // [..., P, s, 2s]
      blocks = g.op("Concat", [top, bottom], { axis: -2 }); // [..., P, 2s, 2s]
    }
    return g.op("Reshape", [blocks, g.op("Concat", [batch, g.ints([C, C])], { axis: 0 })]); // [..., 1, C, C] → [..., C, C]
  });
}

/**
 * Causal depthwise conv1d with its own state, for prefill and one-token steps alike (modeling_qwen3_5.py
 * `causal_conv1d_fn` for a fresh sequence, `causal_conv1d_update` with a cache; no bias in Qwen3.5), then SiLU.
 * The state is the last K−1 inputs (zeros for a fresh sequence); the reference's cache keeps K, whose oldest one
 * no output reads.
 *
 *   x [B,T,Cₕ] ─Transpose─▶ [B,Cₕ,T] ─Concat(state [B,Cₕ,K−1])─▶ [B,Cₕ,T+K−1] ─Conv(group=Cₕ, no pad)─▶ [B,Cₕ,T]
 *   new state = last K−1 columns of the concatenation
 *
 * weight: conv1d.weight [Cₕ, 1, K] (or [Cₕ, K]) as float32. Returns { output [B,T,Cₕ], state [B,Cₕ,K−1] }.
 */
export function causalConv1d(
  g: GraphBuilder,
  x: string,
  state: string,
  name: string,
  weight: Float32Array,
  channels: number,
  kernel: number,
  activation: "silu" | null = "silu",
): { output: string; state: string } {
  if (weight.length !== channels * kernel) throw new Error(`${name}.weight: ${weight.length} values, expected ${channels}×${kernel}`);
  return g.scope(name, () => {
    const xT = g.op("Transpose", [x], { perm: [0, 2, 1] }); // [B,T,Cₕ] → [B,Cₕ,T]
    const full = g.op("Concat", [state, xT], { axis: 2 }); // [B,Cₕ,K−1+T]
    const w = g.weight(`${name}.weight`, "float32", [channels, 1, kernel], f32bytes(weight));
    let y = g.op("Conv", [full, w], { group: channels, kernel_shape: [kernel], pads: [0, 0], strides: [1] }); // [B,Cₕ,T]
    if (activation === "silu") y = g.op("Mul", [y, g.op("Sigmoid", [y])]);
    const newState = g.op("Slice", [full, g.ints([-(kernel - 1)]), g.ints([Number.MAX_SAFE_INTEGER]), g.ints([2])]); // [B,Cₕ,K−1]
    return { output: g.op("Transpose", [y], { perm: [0, 2, 1] }), state: newState }; // [B,Cₕ,T] → [B,T,Cₕ]
  });
}

/**
 * modeling_qwen3_5.py `Qwen3_5RMSNormGated`: x · rsqrt(mean(x²) + eps) · w · silu(z) over the last axis (the head's
 * Dv), all in float32. x, z [..., Dv]; weight [Dv].
 */
export function gatedRmsNorm(g: GraphBuilder, x: string, z: string, name: string, weight: Float32Array, eps: number): string {
  return g.scope(name, () => {
    const w = g.weight(`${name}.weight`, "float32", [weight.length], f32bytes(weight));
    const normed = g.op("SimplifiedLayerNormalization", [x, w], { axis: -1, epsilon: float(eps), stash_type: 1 });
    return g.op("Mul", [normed, g.op("Mul", [z, g.op("Sigmoid", [z])])]);
  });
}
