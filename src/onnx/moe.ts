/**
 * Sparse mixture-of-experts block (top-k routed SwiGLU experts + optional gated shared expert) as an ONNX graph on
 * `Layers`, so experts are stored at the model's precision (fp32, fp16, int8/int4 MatMulNBits, rowwise int8) with
 * the same layouts as every dense matrix.
 *
 * Reference: transformers 5.18.0 models/qwen3_5_moe/modeling_qwen3_5_moe.py — Qwen3_5MoeTopKRouter.forward,
 * Qwen3_5MoeExperts.forward, Qwen3_5MoeSparseMoeBlock.forward (docs/qwen3_5-reference.md §10); transformers 4.57.6
 * qwen3_vl_moe Qwen3VLMoeTextTopKRouter (the same routing, top-k always renormalised, no shared expert):
 *
 *   p = softmax(x Wgᵀ) (float32) ; (v, i) = topk(p, k) ; w = v / Σ v  (normTopkProb)
 *   y = Σ_j w_j · down_{i_j}(act(gate_{i_j} x) ⊙ up_{i_j} x)
 *   y += sigmoid(x Wsgᵀ) · shared(x)                                           (shared expert, when present)
 *
 * Graph (cost ∝ the experts the tokens chose, not all of them):
 *
 *   x [..., h] ─ Reshape [T, h] ─ router (fp32) ─ Softmax ─ TopK(k) ─▶ w [T, k] (renormalised), idx [T, k]
 *   idx ─ Reshape [T·k] ─ ScatterElements(ones into zeros [E]) ─ Split ─▶ hit_e [1] (bool), one per expert
 *   for each expert e:  If hit_e                          (optionally inside an If per group of experts: expertGroup)
 *        then  pairs = NonZero(idx_flat == e) [n]  ─ tokens = pairs / k ─ Gather(x) [n, h]
 *              ─ gate_up_e (Layers.linear, constant weights) ─ Split ─ act(gate)·up ─ down_e ─▶ rows_e [n, h], pairs
 *        else  [0, h], [0]                                  (an untaken If costs ~4 µs; measured in bench/moe.ts)
 *   Concat(rows_e), Concat(pairs_e) ─ ScatterND into [T·k, h] (each (token, slot) pair exactly once)
 *   ─ Reshape [T, k, h] · w[..., None] ─ ReduceSum over k ─▶ [T, h]  (+ shared expert) ─ Reshape like x
 *
 * Why one If per expert with constant weights rather than a Loop that Gathers the chosen experts' weights:
 * onnxruntime 1.30's CPU kernels that take quantised weights as runtime values dequantise them slowly (one expert's
 * [1024, 2048] int4 matrix at S = 1: MatMulNBits with a gathered B 21–32 ms, GatherBlockQuantized + Gemm 35–63 ms,
 * blocked DequantizeLinear + Gemm 19 ms), while MatMulNBits on a constant (prepacked) matrix takes ~0.15 ms inside a
 * one-level If. onnxruntime prepacks a subgraph's weights only when they are initializers of the subgraph or its
 * direct parent (a two-level If tree over top-graph weights lost prepacking: 0.13 → 15 ms), hence the flat list of Ifs
 * (or groups holding their own weights, `expertGroup`, at a memory cost). Loop+Gather stays competitive only for fp32
 * (Gather copy + Gemm, ~0.9 ms for the same matrix).
 *
 * The price of a flat If per expert: onnxruntime's session creation is quadratic in the number of If nodes at one
 * graph level (graph partitioning; a graph of trivial Ifs, .notes/ifs.mts: 1,280 → 0.9 s, 2,560 → 2.7–8.7 s, 5,120 →
 * 9–35 s), so a Qwen3.5-35B-A3B decoder (40 layers × 256 experts = 10,240 Ifs) would take ~400 s to create. Nesting
 * the Ifs to cut their count loses the prepacking above (or duplicates the weights), so instead the converter splits
 * such decoders into stages of consecutive layers, one session of at most 256 experts each (the families'
 * `decoderLayerSubgraphs`, src/engine/decoder-stages.ts: 40 layers × 256 experts at tiny widths, int4, one session
 * 538 s to create, 40 stages 32 s).
 *
 * Canonical weight layout the builder takes (families convert other orientations and per-expert tensors):
 *   router    [E, h]
 *   gateUp    [E, 2·Im, h]  (per expert: the Im gate rows, then the Im up rows; nn.Linear [out, in])
 *   down      [E, h, Im]
 *   shared    gateUp [2·Is, h], down [h, Is], gate [1, h]
 * Each of gateUp/down may be one Float32Array stack or a function returning expert e's [out, in] matrix (so a
 * family can convert one expert at a time).
 */
import { VideolmError } from "../errors.js";
import type { DType } from "./graph.js";
import type { Layers } from "./layers.js";

export interface MoeConfig {
  /** model width h */
  hidden: number;
  /** E */
  numExperts: number;
  /** k, experts per token */
  topK: number;
  /** Im, each expert's intermediate width */
  intermediate: number;
  /** Is, the shared expert's intermediate width (when `weights.shared` is given) */
  sharedIntermediate?: number;
  /** w = topk_p / Σ topk_p (the reference's routers always do; default true) */
  normTopkProb?: boolean;
  /** hidden_act of the experts (default silu) */
  act?: string;
  /**
   * Experts per group in the sparse graph: G > 1 puts an If per group around the If per expert, so an untaken group
   * costs one If instead of G, with the group's weights as initializers of the group branch (where onnxruntime still
   * prepacks them). Default 1 (a flat If per expert). Measured at E 256, k 8, int4, 1 thread (bench/moe.ts
   * --expert-group): G 8 decodes ~15% faster (min 2.8–3.3 vs 3.5–3.6 ms per layer) but the process holds ~0.8× the
   * experts' bytes more (RSS 1.33 vs 0.91 GB for 0.52 GB of experts: onnxruntime keeps a subgraph's initializers next
   * to their prepacked copies), too much where int4 is chosen to fit a model in memory.
   */
  expertGroup?: number;
  /**
   * How an expert runs only when chosen: an If (default), or a Loop of 0 or 1 trips (one subgraph instead of two).
   * onnxruntime 1.30's session creation grows ~quadratically with the number of subgraphs in a model (int4, E 256,
   * tiny widths, 1 thread: 1 MoE layer 0.8 s, 5 layers 7 s, 10 layers 20–24 s, 40 layers 400 s); "loop" halves the
   * subgraphs (10 layers 9.3 s) at a similar or slightly higher per-call cost (decode of one real-width layer 3.5–5.2
   * vs 4.8–5.3 ms; tiny widths, 10 layers 4.1 vs 3.1 ms per layer), so it is an option until measured on a real model.
   * The quadratic part is graph partitioning (onnxruntime's verbose log, from "CreateGraphPartitioner" to
   * "SaveInitializedTensors": 2 layers 0.36 s, 6 layers 3.7 s), and it is the If count alone (a graph of trivial Ifs:
   * 1,280 → 1.0 s, 2,560 → 3.9 s, 5,120 → 12.3 s); decoder graphs of a few layers each would bound it.
   */
  conditional?: "if" | "loop";
  /**
   * "sparse" (default): only the chosen experts run. "dense": every expert runs on every token and the unchosen
   * ones are weighted 0 — the same result at the cost of all experts (a cross-check and the bench's baseline).
   */
  strategy?: "sparse" | "dense";
}

/** One expert's matrix [out, in] from a stack [E, out, in] or a per-expert accessor. */
export type ExpertTensor = Float32Array | ((expert: number) => Float32Array);

export interface MoeWeights {
  /** [E, h] (mlp.gate.weight) */
  router: Float32Array;
  /** [E, 2·Im, h], gate rows first (mlp.experts.gate_up_proj) */
  gateUp: ExpertTensor;
  /** [E, h, Im] (mlp.experts.down_proj) */
  down: ExpertTensor;
  shared?: {
    /** [2·Is, h]: shared_expert.gate_proj rows then shared_expert.up_proj rows */
    gateUp: Float32Array;
    /** [h, Is] */
    down: Float32Array;
    /** [1, h] (shared_expert_gate.weight) */
    gate: Float32Array;
  };
}

/** Expert e's [rows, cols] matrix, shape-checked. */
export function expertMatrix(t: ExpertTensor, e: number, rows: number, cols: number, what: string): Float32Array {
  const n = rows * cols;
  const m = typeof t === "function" ? t(e) : t.subarray(e * n, (e + 1) * n);
  if (m.length !== n) throw new VideolmError(`MoE ${what} of expert ${e}: ${m.length} values, expected [${rows}, ${cols}]`);
  return m;
}

/**
 * The sparse MoE block over x [..., h] → [..., h] (see the file comment). Node names under `name`
 * (`/model/layers.3/mlp/experts.17/gate_up_proj/MatMulNBits`).
 */
export function sparseMoe(layers: Layers, x: string, name: string, cfg: MoeConfig, weights: MoeWeights): string {
  const g = layers.g;
  const { hidden: h, numExperts: E, topK: k, intermediate: Im } = cfg;
  const act = cfg.act ?? "silu";
  if (!(k >= 1 && k <= E)) throw new VideolmError(`MoE top-k ${k} must be in [1, ${E}]`);
  if (weights.router.length !== E * h) throw new VideolmError(`MoE router: ${weights.router.length} values, expected [${E}, ${h}]`);
  if (typeof weights.gateUp !== "function" && weights.gateUp.length !== E * 2 * Im * h) throw new VideolmError(`MoE gate_up: ${weights.gateUp.length} values, expected [${E}, ${2 * Im}, ${h}]`);
  if (typeof weights.down !== "function" && weights.down.length !== E * h * Im) throw new VideolmError(`MoE down: ${weights.down.length} values, expected [${E}, ${h}, ${Im}]`);

  return g.scope(name, () => {
    const rows = g.op("Reshape", [x, g.ints([-1, h])]); // [..., h] → [T, h]

    // Qwen3_5MoeTopKRouter.forward: softmax over float32 logits, top-k, renormalised. The router stays float32 at
    // every precision (a quantised router could change which experts run).
    const { weights: w, indices: idx } = g.scope("gate", () => {
      const logits = layers.linear(rows, "router", weights.router, E, h, undefined, "fp32"); // [T, E]
      const probs = g.op("Softmax", [logits], { axis: -1 });
      const [top, topIdx] = g.opN("TopK", [probs, g.ints([k])], { axis: -1, largest: 1, sorted: 1 }, 2); // [T, k] each
      const norm = cfg.normTopkProb ?? true ? g.op("Div", [top, g.op("ReduceSum", [top, g.ints([-1])], { keepdims: 1 })]) : top;
      return { weights: norm, indices: topIdx };
    });
    const flatIdx = g.op("Reshape", [idx, g.ints([-1])]); // [T, k] → [T·k], pair p = t·k + j

    const expertMlp = (e: number, input: string) =>
      g.scope(`experts.${e}`, () => {
        const gu = layers.linear(input, "gate_up_proj", expertMatrix(weights.gateUp, e, 2 * Im, h, "gate_up_proj"), 2 * Im, h); // [n, 2·Im]
        const [gate, up] = g.opN("Split", [gu, g.ints([Im, Im])], { axis: -1 }, 2); // chunk(2): gate first
        return layers.linear(g.op("Mul", [layers.activation(gate, act), up]), "down_proj", expertMatrix(weights.down, e, h, Im, "down_proj"), h, Im); // [n, h]
      });

    let routed: string;
    if ((cfg.strategy ?? "sparse") === "dense") {
      // Every expert on every token; the dense weight matrix [T, E] is w at the chosen experts, 0 elsewhere.
      const dense = g.op("ScatterElements", [g.op("Expand", [g.scalar(0), g.op("Concat", [g.op("Shape", [rows], { start: 0, end: 1 }), g.ints([E])], { axis: 0 })]), idx, w], { axis: 1 }); // [T, E]
      const all = g.op("Concat", Array.from({ length: E }, (_, e) => g.op("Unsqueeze", [expertMlp(e, rows), g.ints([1])])), { axis: 1 }); // E × [T, 1, h] → [T, E, h]
      routed = g.op("ReduceSum", [g.op("Mul", [all, g.op("Unsqueeze", [dense, g.ints([-1])])]), g.ints([1])], { keepdims: 0 }); // [T, h]
    } else {
      // Which experts any token chose: ones scattered over zeros [E], split into E one-element conditions.
      // Experts in groups of G (cfg.expertGroup, default 1): an If per group whose branch holds an If per expert of the
      // group. The group branch keeps its experts' weights as its own initializers (localWeights), the direct parent of
      // the expert Ifs, where onnxruntime still prepacks them.
      const G = cfg.expertGroup ?? 1;
      if (!(G >= 1 && E % G === 0)) throw new VideolmError(`MoE expert group ${G} must divide ${E} experts`);
      const split = (cond: string, n: number) => (n === 1 ? [cond] : g.opN("Split", [cond, g.ints(new Array(n).fill(1))], { axis: 0 }, n)); // [n] → n × [1]
      let hitCount = "";
      const { hit, groupHit } = g.scope("experts_hit", () => {
        const ones = g.op("Expand", [g.scalar(1), g.op("Shape", [flatIdx])]); // [T·k]
        const chosen = g.op("ScatterElements", [g.constant("float32", [E], new Float32Array(E)), flatIdx, ones], { axis: 0 }); // [E]: 1 where chosen
        hitCount = chosen;
        const perGroup = G === 1 ? null : g.op("ReduceMax", [g.op("Reshape", [chosen, g.ints([E / G, G])]), g.ints([1])], { keepdims: 0 }); // [E/G, G] → [E/G]
        return { hit: split(g.op("Cast", [chosen], { to: 9 }), E), groupHit: perGroup ? split(g.op("Cast", [perGroup], { to: 9 }), E / G) : null }; // bool
      });
      const emptyRows = g.constant("float32", [0, h], new Float32Array(0));
      const emptyPairs = g.constant("int64", [0], []);
      const rowsAndPairs = (n: string): { dtype: DType; shape: (string | number)[] }[] => [
        { dtype: "float32", shape: [n, h] },
        { dtype: "int64", shape: [n] },
      ];
      // Qwen3_5MoeExperts.forward: token_idx / top_k_pos where top_k_index == e; the expert on those rows.
      const expertBody = (e: number) =>
        g.scope(`experts.${e}`, () => {
          const p = g.op("Squeeze", [g.op("NonZero", [g.op("Equal", [flatIdx, g.constant("int64", [], [BigInt(e)])])]), g.ints([0])]); // [1, n] → [n]
          const tokens = g.op("Div", [p, g.constant("int64", [], [BigInt(k)])]); // pair t·k + j → token t
          return [expertMlp(e, g.op("Gather", [rows, tokens], { axis: 0 })), p]; // [n, h], [n]
        });
      const trips = cfg.conditional === "loop" ? split(g.op("Cast", [hitCount], { to: 7 }), E) : [];
      const expertIf = (e: number) =>
        cfg.conditional === "loop"
          ? g.loop(
              g.op("Squeeze", [trips[e], g.ints([0])]),
              [
                { init: emptyRows, dtype: "float32", shape: [`n_${e}`, h] },
                { init: emptyPairs, dtype: "int64", shape: [`n_${e}`] },
              ],
              [],
              () => expertBody(e),
            )
          : g.ifElse(hit[e], () => expertBody(e), () => [emptyRows, emptyPairs], rowsAndPairs(`n_${e}`));
      const outs = { rows: [] as string[], pairs: [] as string[] };
      for (let first = 0; first < E; first += G) {
        const experts = Array.from({ length: G }, (_, j) => first + j);
        const [y, pairs] = !groupHit
          ? expertIf(first)
          : g.ifElse(
              groupHit[first / G],
              () => {
                const parts = experts.map(expertIf);
                return [g.op("Concat", parts.map((r) => r[0]), { axis: 0 }), g.op("Concat", parts.map((r) => r[1]), { axis: 0 })];
              },
              () => [emptyRows, emptyPairs],
              rowsAndPairs(`n_group_${first / G}`),
              { localWeights: true },
            );
        outs.rows.push(y);
        outs.pairs.push(pairs);
      }
      routed = g.scope("combine", () => {
        const allRows = g.op("Concat", outs.rows, { axis: 0 }); // [T·k, h], expert order
        const allPairs = g.op("Unsqueeze", [g.op("Concat", outs.pairs, { axis: 0 }), g.ints([-1])]); // [T·k, 1]
        const zeros = g.op("Expand", [g.scalar(0), g.op("Concat", [g.op("Shape", [flatIdx]), g.ints([h])], { axis: 0 })]); // [T·k, h]
        const perPair = g.op("ScatterND", [zeros, allPairs, allRows]); // back in (token, slot) order; every pair once
        const perSlot = g.op("Reshape", [perPair, g.ints([-1, k, h])]); // [T·k, h] → [T, k, h]
        return g.op("ReduceSum", [g.op("Mul", [perSlot, g.op("Unsqueeze", [w, g.ints([-1])])]), g.ints([1])], { keepdims: 0 }); // [T, h]
      });
    }

    let out = routed;
    if (weights.shared) {
      // Qwen3_5MoeSparseMoeBlock.forward: shared_expert(x) · sigmoid(shared_expert_gate(x)).
      const Is = cfg.sharedIntermediate;
      if (!Is) throw new VideolmError("MoE shared expert given without sharedIntermediate");
      const s = weights.shared;
      if (s.gateUp.length !== 2 * Is * h || s.down.length !== h * Is || s.gate.length !== h) throw new VideolmError(`MoE shared expert: shapes do not match h ${h}, Is ${Is}`);
      out = g.scope("shared_expert", () => {
        const gu = layers.linear(rows, "gate_up_proj", s.gateUp, 2 * Is, h); // [T, 2·Is]
        const [gate, up] = g.opN("Split", [gu, g.ints([Is, Is])], { axis: -1 }, 2);
        const y = layers.linear(g.op("Mul", [layers.activation(gate, act), up]), "down_proj", s.down, h, Is); // [T, h]
        const gateValue = g.op("Sigmoid", [layers.linear(rows, "shared_expert_gate", s.gate, 1, h, undefined, "fp32")]); // [T, 1]
        return g.op("Add", [routed, g.op("Mul", [y, gateValue])]);
      });
    }
    return g.op("Reshape", [out, g.op("Shape", [x])]); // [T, h] → [..., h]
  });
}

/** Bytes of expert weights a token reads at `precision` (k experts when sparse; for reporting). */
export function expertBytes(cfg: MoeConfig, bytesPerWeight: number, experts = cfg.topK): number {
  const perExpert = 3 * cfg.intermediate * cfg.hidden;
  const shared = cfg.sharedIntermediate ? 3 * cfg.sharedIntermediate * cfg.hidden + cfg.hidden : 0;
  return (experts * perExpert + shared) * bytesPerWeight + cfg.numExperts * cfg.hidden * 4;
}
