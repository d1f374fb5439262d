/**
 * Qwen3-VL frame timestamps: the text `<t seconds>` that precedes each frame pair in the prompt.
 *
 * Reference: transformers 4.57.6 models/qwen3_vl/processing_qwen3_vl.py `Qwen3VLProcessor._calculate_timestamps` and
 * `__call__` (`f"<{curr_time:.1f} seconds>"`). Facts doc §2.5 and §0.5 (rounding).
 */

/**
 * Python `f"{x:.1f}"`: the decimal nearest to the exact binary value of x; an exact tie goes to the even digit
 * (0.25 → "0.2", 0.75 → "0.8", 1.25 → "1.2"). JavaScript's toFixed also works from the exact value but sends ties
 * up, and a double can only be an exact tie at one decimal when 4·x is an odd integer (x = m/4: 10x = 2.5m), so
 * those values are handled apart and every other value goes through toFixed.
 */
export function formatSeconds1dp(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  const q = Math.abs(x) * 4; // exact: scaling by a power of two
  if (Number.isInteger(q) && q % 2 === 1 && q < 2 ** 50) {
    const tenths = (Math.abs(x) * 10 - 0.5) % 2 === 0 ? Math.abs(x) * 10 - 0.5 : Math.abs(x) * 10 + 0.5; // the even neighbour
    const sign = x < 0 ? "-" : "";
    return `${sign}${Math.floor(tenths / 10)}.${tenths % 10}`;
  }
  const s = x.toFixed(1);
  return s === "-0.0" ? "-0.0" : s;
}

/**
 * `_calculate_timestamps(indices, video_fps, merge_size)` on the frames' seconds (`idx / video_fps`, which media/
 * computes the same way): pad to a multiple of `mergeSize` by repeating the last frame, then average the first and
 * last frame of each group.
 */
export function frameGroupTimestamps(frameSeconds: readonly number[], mergeSize = 2): number[] {
  const seconds = [...frameSeconds];
  while (seconds.length % mergeSize !== 0) seconds.push(seconds[seconds.length - 1]);
  const out: number[] = [];
  for (let i = 0; i < seconds.length; i += mergeSize) out.push((seconds[i] + seconds[i + mergeSize - 1]) / 2);
  return out;
}

/** The prompt text of one frame pair: `<1.5 seconds>`. */
export function timestampText(seconds: number): string {
  return `<${formatSeconds1dp(seconds)} seconds>`;
}
