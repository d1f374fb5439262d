/**
 * Block-wise asymmetric quantisation to the layout of onnxruntime's com.microsoft MatMulNBits
 * (onnxruntime/core/graph/contrib_ops/contrib_defs.cc, MatMulNBits schema; the same layout as
 * onnxruntime/python/tools/quantization/matmul_nbits_quantizer.py):
 *   B            uint8 [N, K/block, block·bits/8]   rows = output features; for 4 bits the first element of
 *                                                    each pair is in the low nibble
 *   scales       float [N · K/block]
 *   zero_points  uint8 [N · ceil(K/block · bits/8)]  4 bits: two per byte, low nibble first, rows padded
 * Dequantised weight = (q − zero_point) · scale.
 */
export interface QuantizedMatrix {
  data: Uint8Array;
  scales: Float32Array;
  zeroPoints: Uint8Array;
}

export function quantizeBlockwise(weight: Float32Array, rows: number, cols: number, bits: 4 | 8, block: number): QuantizedMatrix {
  const blocks = cols / block;
  const qmax = (1 << bits) - 1;
  const blobBytes = (block * bits) / 8;
  const data = new Uint8Array(rows * blocks * blobBytes);
  const scales = new Float32Array(rows * blocks);
  const zpRowBytes = Math.ceil((blocks * bits) / 8);
  const zeroPoints = new Uint8Array(rows * zpRowBytes);
  const q = new Uint8Array(block);
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < blocks; b++) {
      const base = r * cols + b * block;
      let min = 0;
      let max = 0; // the range always contains 0 so that 0 is exactly representable
      for (let i = 0; i < block; i++) {
        const v = weight[base + i];
        if (v < min) min = v;
        if (v > max) max = v;
      }
      const scale = max > min ? (max - min) / qmax : 1;
      const zp = Math.min(qmax, Math.max(0, Math.round(-min / scale)));
      for (let i = 0; i < block; i++) q[i] = Math.min(qmax, Math.max(0, Math.round(weight[base + i] / scale) + zp));
      scales[r * blocks + b] = scale;
      const out = (r * blocks + b) * blobBytes;
      if (bits === 8) {
        data.set(q, out);
        zeroPoints[r * zpRowBytes + b] = zp;
      } else {
        for (let i = 0; i < block; i += 2) data[out + i / 2] = q[i] | (q[i + 1] << 4);
        const zi = r * zpRowBytes + (b >> 1);
        zeroPoints[zi] |= b & 1 ? zp << 4 : zp;
      }
    }
  }
  return { data, scales, zeroPoints };
}

/**
 * Symmetric per-output-feature int8 quantisation for MatMulInteger (weights stored transposed, [in, out], as
 * MatMulInteger's B, zero point 0). The magnitudes are limited to 63 (7 bits), as onnxruntime's quantiser does with
 * `reduce_range`: on AVX2 CPUs without VNNI, MLAS multiplies uint8 activations by int8 weights with VPMADDUBSW,
 * which adds two products into a saturating int16 (onnxruntime/core/mlas/lib/qgemm_kernel_avx2.cpp); with
 * |w| ≤ 63 the largest pair, 2·255·63 = 32,130, still fits, so the integer sums are exact on every CPU.
 * Dequantised weight = q · scale[out].
 */
export interface ColumnQuantizedMatrix {
  /** int8 values (as bytes), [inFeatures, outFeatures] row-major. */
  data: Uint8Array;
  /** one scale per output feature */
  scales: Float32Array;
}

export const ROWWISE_WEIGHT_QMAX = 63;

export function quantizePerOutputSymmetric(weight: Float32Array, outFeatures: number, inFeatures: number, qmax = ROWWISE_WEIGHT_QMAX): ColumnQuantizedMatrix {
  const data = new Int8Array(inFeatures * outFeatures);
  const scales = new Float32Array(outFeatures);
  for (let o = 0; o < outFeatures; o++) {
    const base = o * inFeatures;
    let amax = 0;
    for (let i = 0; i < inFeatures; i++) amax = Math.max(amax, Math.abs(weight[base + i]));
    const scale = amax > 0 ? amax / qmax : 1;
    scales[o] = scale;
    for (let i = 0; i < inFeatures; i++) data[i * outFeatures + o] = Math.max(-qmax, Math.min(qmax, Math.round(weight[base + i] / scale)));
  }
  return { data: new Uint8Array(data.buffer), scales };
}
