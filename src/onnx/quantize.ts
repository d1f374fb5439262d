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
