/**
 * Antialiased bicubic resize of 8-bit RGB images, bit-exact ports of the two CPU code paths of
 * `torch.nn.functional.interpolate(mode="bicubic", antialias=True, align_corners=False)` that the
 * Qwen-VL references reach:
 *
 *  - `resizeBicubicAntialias` — the **uint8 kernel**. torchvision.transforms.v2.functional.resize
 *    passes uint8 tensors straight to interpolate for BICUBIC on CPU (`_do_native_uint8_resize_on_cpu`),
 *    and torch runs `upsample_avx_bilinear_bicubic_uint8` (UpSampleKernelAVXAntialias.h; with < AVX2 the
 *    generic `basic_loop_aa_horizontal<uint8_t>` does the same integer math): Pillow-style fixed point,
 *    weights rounded to int16 with a precision shift, int32 sums, +½ rounding, clamp to [0, 255], and a
 *    uint8 intermediate image between the horizontal and the vertical pass.
 *    Used by transformers 4.57.6 `Qwen2VLImageProcessorFast` (what AutoProcessor loads for Qwen2-VL) and
 *    `Qwen2VLVideoProcessor` when they resize.
 *  - `resizeBicubicAntialiasFloat` — the **float32 path**. The legacy torchvision.transforms.functional
 *    .resize (v1, `_functional_tensor.resize`) casts uint8 to float32 first, so torch runs
 *    `separable_upsample_generic_Nd_kernel_impl<float>`, then the result is clamped to [0, 255], rounded
 *    half to even and cast back to uint8. This is what qwen-vl-utils `fetch_video` calls.
 *
 * Both: horizontal pass first (into an intermediate image), then vertical; a pass is skipped when that side
 * keeps its size, and the input is returned as is when both do (torchvision returns the same tensor).
 *
 * Weight tables follow aten/src/ATen/native/cpu/UpSampleKernel.cpp:
 *   HelperInterpBase::_compute_indices_min_size_weights_aa, _compute_index_ranges_weights,
 *   _compute_index_ranges_int16_weights, HelperInterpCubic::aa_filter (Keys cubic with a = −0.5, as PIL),
 *   area_pixel_compute_scale (scale = in/out, no user scale factor).
 */
import { check } from "../errors.js";
import { checkRgbImage, type RgbImage } from "./rgb-image.js";

/** Taps of one output index along one axis: input indices start..start+count-1, weights at kmax·i. */
interface TapTable {
  start: Int32Array;
  count: Int32Array;
  /** row length of the weight table (max taps) */
  kmax: number;
}
interface IntTapTable extends TapTable {
  /** int16-valued weights, scaled by 2^precision */
  weights: Int32Array;
  precision: number;
}
interface FloatTapTable extends TapTable {
  /** float32 weights */
  weights: Float32Array;
}

// Keys cubic convolution, a = −0.5 (UpSample.h cubic_convolution1 / cubic_convolution2, evaluated in double
// for the uint8 path).
function cubicFilterF64(xIn: number): number {
  const a = -0.5;
  const x = Math.abs(xIn);
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
  return 0;
}

/** Support and table width for a scale (in/out): the filter widens by `scale` when downscaling. */
function supportFor(scale: number): number {
  const interpSize = 4; // bicubic
  return scale >= 1.0 ? interpSize * 0.5 * scale : interpSize * 0.5;
}

/** Pillow's bicubic_filter (Resample.c): same Keys a = −0.5 cubic, second piece written differently. */
function pillowCubicFilter(xIn: number): number {
  const a = -0.5;
  const x = Math.abs(xIn);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}
const PILLOW_PRECISION_BITS = 32 - 8 - 2;

/**
 * Integer tap table. "torch" (uint8 path): double-precision weights, normalised, then converted to int16 with
 * the largest common precision that fits. "pillow" (Resample.c precompute_coeffs + normalize_coeffs_8bpc): the
 * same bounds and normalisation, fixed 22-bit precision in int32.
 */
function intTaps(inSize: number, outSize: number, flavour: "torch" | "pillow" = "torch"): IntTapTable {
  const filter = flavour === "torch" ? cubicFilterF64 : pillowCubicFilter;
  const scale = inSize / outSize; // area_pixel_compute_scale<double>
  const support = supportFor(scale);
  const kmax = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const wf = new Float64Array(outSize * kmax);
  const invscale = scale >= 1.0 ? 1.0 / scale : 1.0;
  let wtMax = 0;
  for (let i = 0; i < outSize; i++) {
    const center = scale * (i + 0.5);
    // static_cast<int64_t> truncates toward zero.
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    let xsize = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    xsize = Math.min(Math.max(xsize, 0), kmax);
    let total = 0;
    const base = i * kmax;
    for (let j = 0; j < xsize; j++) {
      const w = filter((j + xmin - center + 0.5) * invscale);
      wf[base + j] = w;
      total += w;
    }
    if (total !== 0) {
      for (let j = 0; j < xsize; j++) {
        wf[base + j] /= total;
        if (wf[base + j] > wtMax) wtMax = wf[base + j];
      }
    }
    start[i] = xmin;
    count[i] = xsize;
  }
  // Largest precision whose rounded max weight · 2 still fits below 2^15 (the loop in
  // _compute_index_ranges_int16_weights stops one step before overflow).
  let precision = 0;
  for (precision = 0; flavour === "torch" && precision < 22; ++precision) {
    const next = Math.trunc(0.5 + wtMax * 2 ** (precision + 1));
    if (next >= 1 << 15) break;
  }
  if (flavour === "pillow") precision = PILLOW_PRECISION_BITS;
  const weights = new Int32Array(outSize * kmax);
  const mult = 2 ** precision;
  for (let k = 0; k < weights.length; k++) {
    const v = wf[k] * mult;
    weights[k] = v < 0 ? Math.trunc(-0.5 + v) : Math.trunc(0.5 + v);
  }
  return { start, count, kmax, weights, precision };
}

/** Horizontal uint8 pass: rows × inW × 3 → rows × outW × 3. */
function horizontalU8(src: Uint8Array, rows: number, inW: number, outW: number, t: IntTapTable): Uint8Array {
  const out = new Uint8Array(rows * outW * 3);
  const { start, count, kmax, weights, precision } = t;
  const half = 1 << (precision - 1);
  for (let y = 0; y < rows; y++) {
    const rowIn = y * inW * 3;
    let o = y * outW * 3;
    for (let x = 0; x < outW; x++) {
      let s0 = half;
      let s1 = half;
      let s2 = half;
      let p = rowIn + start[x] * 3;
      const wBase = x * kmax;
      const n = count[x];
      for (let k = 0; k < n; k++) {
        const w = weights[wBase + k];
        s0 += src[p] * w;
        s1 += src[p + 1] * w;
        s2 += src[p + 2] * w;
        p += 3;
      }
      // >> is an arithmetic shift like _mm256_srai_epi32; the packs/packus pair clamps to [0, 255].
      s0 >>= precision;
      s1 >>= precision;
      s2 >>= precision;
      out[o++] = s0 < 0 ? 0 : s0 > 255 ? 255 : s0;
      out[o++] = s1 < 0 ? 0 : s1 > 255 ? 255 : s1;
      out[o++] = s2 < 0 ? 0 : s2 > 255 ? 255 : s2;
    }
  }
  return out;
}

/** Vertical uint8 pass: inH × width × 3 → outH × width × 3, one accumulator row at a time. */
function verticalU8(src: Uint8Array, width: number, outH: number, t: IntTapTable): Uint8Array {
  const rowLen = width * 3;
  const out = new Uint8Array(outH * rowLen);
  const acc = new Int32Array(rowLen);
  const { start, count, kmax, weights, precision } = t;
  const half = 1 << (precision - 1);
  for (let y = 0; y < outH; y++) {
    acc.fill(half);
    const n = count[y];
    for (let k = 0; k < n; k++) {
      const w = weights[y * kmax + k];
      const base = (start[y] + k) * rowLen;
      for (let i = 0; i < rowLen; i++) acc[i] += src[base + i] * w;
    }
    const o = y * rowLen;
    for (let i = 0; i < rowLen; i++) {
      const v = acc[i] >> precision;
      out[o + i] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  }
  return out;
}

function checkResizeArgs(src: RgbImage, outH: number, outW: number): void {
  checkRgbImage(src, "resize input");
  check(
    Number.isInteger(outH) && Number.isInteger(outW) && outH > 0 && outW > 0,
    () => `resize: output size ${outW}x${outH} must be positive integers`,
  );
}

/**
 * torchvision.transforms.v2.functional.resize(uint8 CHW, [outH, outW], BICUBIC, antialias=True) on CPU,
 * bit-exact. Returns `src` itself when the size is unchanged.
 */
export function resizeBicubicAntialias(src: RgbImage, outH: number, outW: number): RgbImage {
  checkResizeArgs(src, outH, outW);
  const { width: inW, height: inH } = src;
  if (inW === outW && inH === outH) return src;
  let data = src.data;
  if (outW !== inW) data = horizontalU8(data, inH, inW, outW, intTaps(inW, outW));
  if (outH !== inH) data = verticalU8(data, outW, outH, intTaps(inH, outH));
  return { width: outW, height: outH, data };
}

/**
 * Pillow `Image.resize((outW, outH), Image.BICUBIC)` of an RGB image (what qwen-vl-utils `fetch_image` does to
 * still images). Same structure as the torch uint8 kernel, but 22-bit int32 coefficients: it differs from
 * `resizeBicubicAntialias` by up to 2 on ~0.5% of values. Returns `src` itself when the size is unchanged.
 */
export function resizeBicubicPillow(src: RgbImage, outH: number, outW: number): RgbImage {
  checkResizeArgs(src, outH, outW);
  const { width: inW, height: inH } = src;
  if (inW === outW && inH === outH) return src;
  let data = src.data;
  if (outW !== inW) data = horizontalU8(data, inH, inW, outW, intTaps(inW, outW, "pillow"));
  if (outH !== inH) data = verticalU8(data, outW, outH, intTaps(inH, outH, "pillow"));
  return { width: outW, height: outH, data };
}

// ---------------------------------------------------------------------------------------------------------
// float32 path (torchvision v1 functional.resize on a uint8 tensor)
// ---------------------------------------------------------------------------------------------------------

const f32 = Math.fround;

/**
 * HelperInterpCubic::aa_filter<float>. The AVX2/AVX512 builds of UpSampleKernel.cpp are compiled with FMA
 * and GCC contracts `a*b + c` into fused multiply-adds; `fma32` reproduces that: the product of two
 * float32 values is exact in double, so one rounding of (a·b + c) to float32 is the fused result (up to
 * a double-rounding case that needs > 53 bits of spread, not reachable with these magnitudes).
 */
function fma32(a: number, b: number, c: number): number {
  return f32(a * b + c);
}
function cubicFilterF32(xIn: number): number {
  const x = f32(Math.abs(xIn));
  // A = -0.5f: A+2 = 1.5, A+3 = 2.5, 5A = -2.5, 8A = -4, 4A = -2 (all exact).
  if (x < 1) return fma32(f32(fma32(1.5, x, -2.5) * x), x, 1);
  if (x < 2) return fma32(fma32(fma32(-0.5, x, 2.5), x, -4), x, 2);
  return 0;
}

/** float path weights: HelperInterpBase::_compute_indices_min_size_weights_aa<float>, C++ promotions kept. */
function floatTaps(inSize: number, outSize: number): FloatTapTable {
  const scale = f32(inSize / outSize); // static_cast<float>(in) / out, float division
  const support = f32(scale >= 1.0 ? 4 * 0.5 * scale : 4 * 0.5);
  const kmax = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Float32Array(outSize * kmax);
  const invscale = f32(scale >= 1.0 ? 1.0 / scale : 1.0);
  for (let i = 0; i < outSize; i++) {
    const center = f32(scale * (i + 0.5)); // float * double → double → float
    const xmin = Math.max(Math.trunc(f32(center - support) + 0.5), 0);
    let xsize = Math.min(Math.trunc(f32(center + support) + 0.5), inSize) - xmin;
    xsize = Math.min(Math.max(xsize, 0), kmax);
    const base = i * kmax;
    let total = 0;
    for (let j = 0; j < xsize; j++) {
      // (j + xmin) is int64, minus a float → float; + 0.5 and * invscale in double; the call converts to float.
      const arg = f32((f32(j + xmin - center) + 0.5) * invscale);
      const w = cubicFilterF32(arg);
      weights[base + j] = w;
      total = f32(total + w);
    }
    if (total !== 0) for (let j = 0; j < xsize; j++) weights[base + j] = f32(weights[base + j] / total);
    start[i] = xmin;
    count[i] = xsize;
  }
  return { start, count, kmax, weights };
}

/**
 * One float32 dot product the way the compiled torch kernel evaluates it (interpolate_aa_single_dim and
 * interpolate_aa_single_dim_zero_strides: `out = t0*w0; for j in 1..n-1: out += tj*wj`).
 * Measured against torch 2.13 CPU (oracle venv, cpu capability AVX2): the j-loop is unrolled by 4 and the unrolled body multiplies
 * as a vector (each product rounded to float32, then added), while the remainder iterations are fused
 * multiply-adds (one rounding). So with m = n-1 iterations, the first 4·⌊m/4⌋ are mul-then-add and the last
 * m mod 4 are FMA. A product of two float32 values is exact in double, so `f32(s + t*w)` is the FMA.
 */
function dotF32(src: ArrayLike<number>, p: number, stride: number, weights: Float32Array, wBase: number, n: number) {
  let s = f32(src[p] * weights[wBase]);
  const unrolledEnd = 1 + ((n - 1) & ~3);
  let j = 1;
  for (; j < unrolledEnd; j++) s = f32(s + f32(src[p + j * stride] * weights[wBase + j]));
  for (; j < n; j++) s = f32(s + src[p + j * stride] * weights[wBase + j]);
  return s;
}

/** Horizontal float pass: rows × inW × 3 → rows × outW × 3. */
function horizontalF32(
  src: ArrayLike<number>,
  rows: number,
  inW: number,
  outW: number,
  t: FloatTapTable,
): Float32Array {
  const out = new Float32Array(rows * outW * 3);
  const { start, count, kmax, weights } = t;
  for (let y = 0; y < rows; y++) {
    const rowIn = y * inW * 3;
    let o = y * outW * 3;
    for (let x = 0; x < outW; x++) {
      const p = rowIn + start[x] * 3;
      const wBase = x * kmax;
      const n = count[x];
      out[o++] = dotF32(src, p, 3, weights, wBase, n);
      out[o++] = dotF32(src, p + 1, 3, weights, wBase, n);
      out[o++] = dotF32(src, p + 2, 3, weights, wBase, n);
    }
  }
  return out;
}

/** Vertical float pass: inH × width × 3 → outH × width × 3. */
function verticalF32(src: ArrayLike<number>, width: number, outH: number, t: FloatTapTable): Float32Array {
  const rowLen = width * 3;
  const out = new Float32Array(outH * rowLen);
  const { start, count, kmax, weights } = t;
  for (let y = 0; y < outH; y++) {
    const o = y * rowLen;
    const b0 = start[y] * rowLen;
    for (let i = 0; i < rowLen; i++) out[o + i] = dotF32(src, b0 + i, rowLen, weights, y * kmax, count[y]);
  }
  return out;
}

/** Python/torch round-half-to-even of a float, then clamp into uint8 (clamp first, as torchvision does). */
function toUint8(values: Float32Array): Uint8Array {
  const out = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) {
    let v = values[i];
    v = v < 0 ? 0 : v > 255 ? 255 : v;
    let r = Math.round(v);
    if (r - v === 0.5 && (r & 1) === 1) r -= 1;
    out[i] = r;
  }
  return out;
}

/**
 * torchvision.transforms.functional.resize (v1) of a uint8 CHW tensor, [outH, outW], BICUBIC,
 * antialias=True, on CPU: float32 interpolation, clamp to [0, 255], round half to even.
 * Returns `src` itself when the size is unchanged.
 */
export function resizeBicubicAntialiasFloat(src: RgbImage, outH: number, outW: number): RgbImage {
  checkResizeArgs(src, outH, outW);
  const { width: inW, height: inH } = src;
  if (inW === outW && inH === outH) return src;
  let data: Uint8Array | Float32Array = src.data;
  if (outW !== inW) data = horizontalF32(data, inH, inW, outW, floatTaps(inW, outW));
  if (outH !== inH) data = verticalF32(data, outW, outH, floatTaps(inH, outH));
  return { width: outW, height: outH, data: toUint8(data as Float32Array) };
}
