/**
 * InternVL3.5-Flash: the Visual Resolution Router (ViR) parts of the vision graph — the 64-token projector `mlp2` and
 * the gate that decides, per tile, whether 64 tokens suffice. Spec: docs/internvl-flash-reference.md (the released
 * `modeling_internvl_chat.py` of OpenGVLab/InternVL3_5-*-Flash, `InternVLChatModel.extract_feature_flash`,
 * `CrossAttentionPooling`, `Gating`; statement for statement as LMDeploy's port
 * lmdeploy/pytorch/models/internvl.py @1263d5cd L26-135, L527-538, L640-666).
 *
 *   patches [T, P², E] (CLS dropped) ─┬─ pixel shuffle 0.25 ─ mlp2 (LN ─ Linear ─ GELU ─ Linear ─ GELU ─ Linear) ─▶ [T·(P/4)², D]
 *                                     └─ pooling: q = query_token; q = norm1(attn1(q, tokens)); 3 × q = norm2(attn2(q, tokens))
 *                                        ─ 4 × { x += LN(fc2(GELU(fc1(x)))) } ─ LN ─ Linear(E, 2) ─ softmax ─▶ p0 [T]
 *
 * The gate and the pooling run in fp32 whatever the weight precision: they decide, and a quantised decision that
 * flips would change the prompt, not just a logit's last digits.
 */
import type { WeightMap } from "../../checkpoint/weight-map.js";
import { ConfigReader } from "../../checkpoint/config-values.js";
import { f32bytes, type Layers } from "../../onnx/layers.js";
import { scaledDotAttention } from "../qwen2-vl/vision-attention.js";

/** Vision graph outputs of Flash checkpoints (besides `visual_embeds`, the 256-token rows of every tile). */
export const FLASH_OUTPUTS = {
  /** float32 [T·(P/4)², D]: every tile's 64-token rows (mlp2 on the 0.25 pixel shuffle). */
  compressedEmbeds: "visual_embeds_compressed",
  /** float32 [T]: the gate's probability of the "compress" choice per tile. */
  gateP0: "gate_p0",
} as const;

/** `config.json` Flash keys (R `InternVLChatModel.__init__`): the relative quantile q and the absolute floor on p0. */
export interface FlashConfig {
  relativeThreshold: number;
  absoluteThreshold: number;
}

/**
 * The Flash keys of an original-format config, or undefined when Flash is off. R turns Flash on when `flash_mode` is
 * truthy (LMDeploy when the key exists at all); both thresholds must then be given: R has no defaults.
 */
export function parseFlashConfig(raw: Record<string, unknown>): FlashConfig | undefined {
  if (!raw.flash_mode) return undefined;
  const r = new ConfigReader(raw);
  return {
    relativeThreshold: r.num("flash_relative_threshold", { min: 0, max: 1 }),
    absoluteThreshold: r.num("flash_absolute_threshold", { min: 0, max: 1 }),
  };
}

/** nn.LayerNorm / nn.MultiheadAttention defaults in the Flash modules (no eps or head count is configured). */
const LN_EPS = 1e-5;
const POOLING_HEADS = 16;

/**
 * Builds mlp2 and the gate on `patches` [T, P², E] (the ViT's last hidden state without CLS) and declares their
 * outputs (FLASH_OUTPUTS). `P` patches per side (the reference requires 32: blocks of 256 placeholders), `D` the
 * LLM width.
 */
export function buildFlashOutputs(layers: Layers, weights: WeightMap, patches: string, E: number, P: number, D: number): void {
  const g = layers.g;
  const fp32 = (x: string, name: string, w: string, out: number, inF: number, b?: string) =>
    layers.linear(x, name, weights.take(w, [out, inF]), out, inF, b ? weights.take(b, [out]) : undefined, "fp32");
  const ln = (x: string, name: string, prefix: string, width: number) => layers.layerNorm(x, name, weights.take(`${prefix}.weight`, [width]), weights.take(`${prefix}.bias`, [width]), LN_EPS);

  // mlp2 on pixel_shuffle(x, 0.25): token (i, j) of the (P/4)² grid concatenates rows 4i+r, cols 4j+c, r-major (the
  // same view/permute pairs as the 0.5 shuffle, vision.ts).
  const compressed = g.scope("mlp2", () => {
    const blocks = g.op("Reshape", [patches, g.ints([-1, P / 4, 4, P / 4, 4, E])]); // [T, i, r, j, c, E]
    const grouped = g.op("Reshape", [g.op("Transpose", [blocks], { perm: [0, 1, 3, 2, 4, 5] }), g.ints([-1, 16 * E])]); // [T·(P/4)², 16E]
    const h0 = ln(grouped, "0", "mlp2.0", 16 * E);
    const h1 = layers.activation(layers.linear(h0, "1", weights.take("mlp2.1.weight", [2 * D, 16 * E]), 2 * D, 16 * E, weights.take("mlp2.1.bias", [2 * D])), "gelu");
    const h4 = layers.activation(layers.linear(h1, "4", weights.take("mlp2.4.weight", [2 * D, 2 * D]), 2 * D, 2 * D, weights.take("mlp2.4.bias", [2 * D])), "gelu");
    return layers.linear(h4, "7", weights.take("mlp2.7.weight", [D, 2 * D]), D, 2 * D, weights.take("mlp2.7.bias", [D]));
  });
  g.output(compressed, FLASH_OUTPUTS.compressedEmbeds, "float32", ["num_compressed_tokens", D]);

  // CrossAttentionPooling.forward: a learned query attends over each tile's P² tokens (nn.MultiheadAttention, 16 heads,
  // biases; no residual). The released code calls attn1/norm1 once, then attn2/norm2 three times; attn3/attn4 and
  // norm3/norm4 are stored but never called (claimed below so the checkpoint loads, not used).
  const hd = E / POOLING_HEADS;
  const pooled = g.scope("pooling_before_gating", () => {
    const pb = "pooling_before_gating";
    const query = g.weight("query_token", "float32", [1, 1, E], f32bytes(weights.take(`${pb}.query_token`, [1, E])));
    const tiles = g.op("Shape", [patches], { start: 0, end: 1 });
    const heads = (t: string) => g.op("Transpose", [g.op("Reshape", [t, g.ints([0, 0, POOLING_HEADS, hd])])], { perm: [0, 2, 1, 3] }); // [T, 16, n, hd]
    /**
     * One nn.MultiheadAttention(E, 16) over the tile tokens: its key/value projections of `patches` are computed
     * once (the three attn2 passes share them); the returned function attends a query [T, 1, E] and applies norm.
     */
    const attention = (name: string, norm: string) =>
      g.scope(name, () => {
        const a = `${pb}.${name}`;
        const w = weights.take(`${a}.in_proj_weight`, [3 * E, E]);
        const b = weights.take(`${a}.in_proj_bias`, [3 * E]);
        // in_proj rows [0,E) query, [E,2E) key, [2E,3E) value (nn.MultiheadAttention's packed projection).
        const part = (k: number) => [w.subarray(k * E * E, (k + 1) * E * E), b.subarray(k * E, (k + 1) * E)] as const;
        const [wq, bq] = part(0);
        const keys = heads(layers.linear(patches, "k_proj", part(1)[0], E, E, part(1)[1], "fp32")); // [T, 16, P², hd]
        const values = heads(layers.linear(patches, "v_proj", part(2)[0], E, E, part(2)[1], "fp32"));
        const wo = weights.take(`${a}.out_proj.weight`, [E, E]);
        const bo = weights.take(`${a}.out_proj.bias`, [E]);
        const nw = weights.take(`${pb}.${norm}.weight`, [E]);
        const nb = weights.take(`${pb}.${norm}.bias`, [E]);
        let pass = 0;
        return (x: string) =>
          g.scope(`pass${pass++}`, () => {
            const qp = heads(layers.linear(x, "q_proj", wq, E, E, bq, "fp32")); // [T, 16, 1, hd]
            const ctx = scaledDotAttention(g, qp, keys, values, hd);
            const merged = g.op("Reshape", [g.op("Transpose", [ctx], { perm: [0, 2, 1, 3] }), g.ints([0, 0, E])]); // [T, 1, E]
            return layers.layerNorm(layers.linear(merged, "out_proj", wo, E, E, bo, "fp32"), norm, nw, nb, LN_EPS);
          });
      });
    const attn1 = attention("attn1", "norm1");
    const attn2 = attention("attn2", "norm2");
    let q = g.op("Expand", [query, g.op("Concat", [tiles, g.ints([1, E])], { axis: 0 })]); // [T, 1, E]
    q = attn2(attn2(attn2(attn1(q)))); // the released code's attn1/norm1, then attn2/norm2 three times
    // attn3 / attn4 and norm3 / norm4: stored, never called by the released code; claimed (shape-checked), unused.
    for (const n of [3, 4]) {
      weights.info(`${pb}.attn${n}.in_proj_weight`, [3 * E, E]);
      weights.info(`${pb}.attn${n}.in_proj_bias`, [3 * E]);
      weights.info(`${pb}.attn${n}.out_proj.weight`, [E, E]);
      weights.info(`${pb}.attn${n}.out_proj.bias`, [E]);
      weights.info(`${pb}.norm${n}.weight`, [E]);
      weights.info(`${pb}.norm${n}.bias`, [E]);
    }
    return g.op("Reshape", [q, g.ints([-1, E])]); // [T, E]
  });

  // Gating.forward: four residual blocks x + LN(fc2(GELU(fc1(x)))), then LN → Linear(E, 2) → softmax; p0 = probs[:, 0].
  const p0 = g.scope("gating", () => {
    let x = pooled;
    for (let b = 1; b <= 4; b++) {
      x = g.scope(`block${b}`, () => {
        const p = `gating.block${b}`;
        const up = layers.activation(fp32(x, "0", `${p}.0.weight`, 4 * E, E, `${p}.0.bias`), "gelu");
        const down = fp32(up, "3", `${p}.3.weight`, E, 4 * E, `${p}.3.bias`);
        return g.op("Add", [x, ln(down, "5", `${p}.5`, E)]);
      });
    }
    const logits = fp32(ln(x, "gate.0", "gating.gate.0", E), "gate.1", "gating.gate.1.weight", 2, E, "gating.gate.1.bias"); // [T, 2]
    const probs = g.op("Softmax", [logits], { axis: -1 });
    return g.op("Reshape", [g.op("Slice", [probs, g.ints([0]), g.ints([1]), g.ints([1])]), g.ints([-1])]); // [T]
  });
  g.output(p0, FLASH_OUTPUTS.gateP0, "float32", ["num_tiles"]);
}
