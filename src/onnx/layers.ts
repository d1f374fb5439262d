/**
 * Shared layers for the model graph builders: linear projections, norms, activations, rotary embedding and
 * attention. Each helper emits a handful of ONNX nodes under the current scope and returns the output name.
 * Weights arrive in Hugging Face layout (nn.Linear: [out, in]) as float32 and are converted here to the
 * chosen precision, so model files never deal with layouts.
 */
import { VideolmError } from "../errors.js";
import { float, GraphBuilder } from "./graph.js";
import { float32ArrayToFloat16Bytes } from "./fp16.js";
import { quantizeBlockwise, quantizePerOutputSymmetric } from "./quantize.js";

/**
 * Storage precision of the large matrices (norms and biases stay float32). fp16 stores matrices and embeddings as
 * float16 and computes in float32 (onnxruntime folds the Cast when it loads the graph): half the cache on disk, the
 * memory and speed of fp32, and no loss for bf16 checkpoints, whose values float16 holds exactly within its range.
 */
export type WeightPrecision = "fp32" | "fp16" | "int8" | "int4";
export const WEIGHT_PRECISIONS: WeightPrecision[] = ["fp32", "fp16", "int8", "int4"];

/** Whether matrices at this precision are floating point (multiplied with MatMul/Gemm in float32). */
export function isFloatPrecision(p: WeightPrecision): p is "fp32" | "fp16" {
  return p === "fp32" || p === "fp16";
}

/** MatMulNBits block size along the input dimension. */
const QUANT_BLOCK = 32;

/**
 * How a quantised (int8/int4) matrix meets its activations. Measured on this project's AVX2 CPU without VNNI in
 * docs/performance.md:
 * - "nbits-acc4": MatMulNBits, accuracy_level 4 (activations quantised to int8 per block, integer dot products):
 *   the fastest matrix-vector products, for decode steps.
 * - "nbits-acc1": MatMulNBits, accuracy_level 1 (weights dequantised, float32 compute).
 * - "rowwise-int8": each row of activations quantised to int8 with its own scale, int8 weights with one scale per
 *   output feature, MatMulInteger (MLAS's integer GEMM), then both scales applied: ~1.8× float32's throughput for
 *   products with many rows (vision encoding). Weights are int8 whatever the precision, int4 included.
 */
export type QuantizedKernel = "nbits-acc4" | "nbits-acc1" | "rowwise-int8";

export class Layers {
  constructor(
    readonly g: GraphBuilder,
    readonly precision: WeightPrecision,
    readonly quantizedKernel: QuantizedKernel = "nbits-acc4",
  ) {}

  /**
   * y = x · Wᵀ (+ b) for an nn.Linear weight W of shape [out, in].
   *
   *   x [..., in] ── MatMul(Wᵀ [in, out]) ──▶ [..., out] ── Add(b) ──▶ y      (fp32)
   *   x [..., in] ── MatMulNBits(W quantised per 32-block) ──▶ y              (int8 / int4, nbits kernels)
   *   x [..., in] ── rowwiseInt8 (see below) ──▶ y                           (int8 / int4, rowwise-int8)
   */
  linear(x: string, name: string, weight: Float32Array, outFeatures: number, inFeatures: number, bias?: Float32Array, precision = this.precision): string {
    const g = this.g;
    return g.scope(name, () => {
      let y: string;
      // Matrices whose input features are not a multiple of the block stay float (the patch embedding, 3·2·14·14 =
      // 1,176 inputs: ~0.2% of the vision tower's work, and its pixel rows are the most sensitive to rounding).
      if (isFloatPrecision(precision) || inFeatures % QUANT_BLOCK !== 0) {
        const wT = this.floatWeight(`${name}.weight`, [inFeatures, outFeatures], transpose(weight, outFeatures, inFeatures), precision === "fp16" ? "fp16" : "fp32");
        y = g.op("MatMul", [x, wT]);
      } else if (this.quantizedKernel === "rowwise-int8") {
        y = this.rowwiseInt8(x, name, weight, outFeatures, inFeatures);
      } else {
        const bits = precision === "int4" ? 4 : 8;
        const q = quantizeBlockwise(weight, outFeatures, inFeatures, bits, QUANT_BLOCK);
        const blocks = inFeatures / QUANT_BLOCK;
        const qw = g.weight(`${name}.weight_q`, "uint8", [outFeatures, blocks, (QUANT_BLOCK * bits) / 8], q.data);
        const scales = g.weight(`${name}.scales`, "float32", [outFeatures * blocks], f32bytes(q.scales));
        const zeros = g.weight(`${name}.zero_points`, "uint8", [q.zeroPoints.length], q.zeroPoints);
        const accuracy_level = this.quantizedKernel === "nbits-acc1" ? 1 : 4;
        y = g.op("MatMulNBits", [x, qw, scales, zeros], { K: inFeatures, N: outFeatures, bits, block_size: QUANT_BLOCK, accuracy_level }, { domain: "com.microsoft" });
      }
      if (bias) y = g.op("Add", [y, g.weight(`${name}.bias`, "float32", [outFeatures], f32bytes(bias))]);
      return y;
    });
  }

  /**
   * x · Wᵀ with integer arithmetic, each activation row quantised on the fly with its own scale (a token with large
   * values does not coarsen the others, as one scale per call — DynamicQuantizeMatMul — would):
   *
   *   s_row = max|x_row| / 127                        [..., 1]
   *   x_q   = QuantizeLinear(x / s_row, 1, 128)       uint8, zero point 128 (symmetric)
   *   acc   = MatMulInteger(x_q, W_q, 128)            int32, exact (see quantizePerOutputSymmetric)
   *   y     = float(acc) · s_row · s_out
   */
  private rowwiseInt8(x: string, name: string, weight: Float32Array, outFeatures: number, inFeatures: number): string {
    const g = this.g;
    const q = quantizePerOutputSymmetric(weight, outFeatures, inFeatures);
    const rowMax = g.op("ReduceMax", [g.op("Abs", [x]), g.ints([-1])], { keepdims: 1 });
    // the floor keeps an all-zero row at scale > 0 (it quantises to zeros either way)
    const rowScale = g.op("Max", [g.op("Mul", [rowMax, g.scalar(1 / 127)]), g.scalar(1e-30)]);
    const zeroPoint = g.constant("uint8", [], [128]);
    const xq = g.op("QuantizeLinear", [g.op("Div", [x, rowScale]), g.scalar(1), zeroPoint]);
    const acc = g.op("MatMulInteger", [xq, g.weight(`${name}.weight_q`, "int8", [inFeatures, outFeatures], q.data), zeroPoint]);
    const outScale = g.weight(`${name}.scales`, "float32", [outFeatures], f32bytes(q.scales));
    return g.op("Mul", [g.op("Mul", [g.op("Cast", [acc], { to: 1 }), rowScale]), outScale]);
  }

  /**
   * Several nn.Linear layers over the same input as one matrix product, split back into their outputs: fewer, larger
   * kernels (q/k/v and gate/up), which matters most for single-token decode steps. Each output equals its own
   * `linear` (the weights are stacked along the output features, so every output column, and under MatMulNBits every
   * quantization block, is the same as before).
   */
  linearFused(x: string, name: string, parts: { weight: Float32Array; outFeatures: number; bias?: Float32Array }[], inFeatures: number): string[] {
    const total = parts.reduce((n, p) => n + p.outFeatures, 0);
    const weight = new Float32Array(total * inFeatures);
    const withBias = parts.some((p) => p.bias);
    const bias = withBias ? new Float32Array(total) : undefined;
    let row = 0;
    for (const p of parts) {
      weight.set(p.weight, row * inFeatures);
      if (bias && p.bias) bias.set(p.bias, row);
      row += p.outFeatures;
    }
    const y = this.linear(x, name, weight, total, inFeatures, bias);
    return this.g.scope(name, () => this.g.opN("Split", [y, this.g.ints(parts.map((p) => p.outFeatures))], { axis: -1 }, parts.length));
  }

  /** A float matrix as a graph value: float32, or float16 storage + Cast to float32 (folded by onnxruntime at load). */
  floatWeight(name: string, dims: number[], data: Float32Array, storage: "fp32" | "fp16" = this.precision === "fp16" ? "fp16" : "fp32"): string {
    if (storage === "fp32") return this.g.weight(name, "float32", dims, f32bytes(data));
    return this.g.op("Cast", [this.g.weight(name, "float16", dims, float32ArrayToFloat16Bytes(data))], { to: 1 });
  }

  /** Qwen2RMSNorm: x · rsqrt(mean(x²) + eps) · w, in float32. */
  rmsNorm(x: string, name: string, weight: Float32Array, eps: number): string {
    const g = this.g;
    return g.scope(name, () =>
      g.op("SimplifiedLayerNormalization", [x, g.weight(`${name}.weight`, "float32", [weight.length], f32bytes(weight))], {
        axis: -1,
        epsilon: float(eps),
        stash_type: 1,
      }),
    );
  }

  /** nn.LayerNorm over the last axis. */
  layerNorm(x: string, name: string, weight: Float32Array, bias: Float32Array, eps: number): string {
    const g = this.g;
    return g.scope(name, () =>
      g.op(
        "LayerNormalization",
        [x, g.weight(`${name}.weight`, "float32", [weight.length], f32bytes(weight)), g.weight(`${name}.bias`, "float32", [bias.length], f32bytes(bias))],
        { axis: -1, epsilon: float(eps) },
      ),
    );
  }

  /** Activation by its Hugging Face `hidden_act` name. */
  activation(x: string, act: string): string {
    const g = this.g;
    switch (act) {
      case "silu":
        return g.op("Mul", [x, g.op("Sigmoid", [x])]);
      case "quick_gelu": // x · σ(1.702 x)   (transformers activations.QuickGELUActivation)
        return g.op("Mul", [x, g.op("Sigmoid", [g.op("Mul", [x, g.scalar(1.702)])])]);
      case "gelu": // exact erf GELU (nn.GELU())
        return g.op("Gelu", [x], { approximate: "none" });
      case "gelu_pytorch_tanh":
        return g.op("Gelu", [x], { approximate: "tanh" });
      default:
        throw new VideolmError(`activation ${act} is not supported`);
    }
  }

  /**
   * rotate_half(x)·sin + x·cos over the last axis (Hugging Face's rotate-half rotary layout).
   *
   *   x [..., d] ─ Split ─▶ x1 [..., d/2], x2 [..., d/2] ─▶ Concat(-x2, x1) = rot
   *   y = x·cos + rot·sin        (cos, sin broadcast to x)
   */
  applyRotary(x: string, cos: string, sin: string, headDim: number): string {
    const g = this.g;
    const [x1, x2] = g.opN("Split", [x, g.ints([headDim / 2, headDim / 2])], { axis: -1 }, 2);
    const rot = g.op("Concat", [g.op("Neg", [x2]), x1], { axis: -1 });
    return g.op("Add", [g.op("Mul", [x, cos]), g.op("Mul", [rot, sin])]);
  }
}

export function transpose(w: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(w.length);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let c = 0; c < cols; c++) out[c * rows + r] = w[base + c];
  }
  return out;
}

export function f32bytes(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}
