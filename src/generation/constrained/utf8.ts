/**
 * UTF-8 helpers for byte-level automata: code point ranges → byte-range sequences, and a validator that follows a
 * character across token boundaries.
 *
 * `utf8Sequences` is RE2's / Rust regex-syntax's `Utf8Sequences` algorithm (regex-syntax `src/utf8.rs`): split a
 * code point range at the encoded-length boundaries (0x7F, 0x7FF, 0xFFFF) and wherever the lower bytes of the
 * two ends are not aligned, until each piece is a product of per-byte ranges.
 */

export const MAX_CODE_POINT = 0x10ffff;
export const SURROGATE_LO = 0xd800;
export const SURROGATE_HI = 0xdfff;

/** One UTF-8 byte sequence class: per byte position an inclusive [lo, hi] range. */
export type ByteRangeSeq = [number, number][];

/** The byte-range sequences whose union encodes exactly the code points lo..hi (surrogates are skipped). */
export function utf8Sequences(lo: number, hi: number): ByteRangeSeq[] {
  const out: ByteRangeSeq[] = [];
  if (lo <= SURROGATE_HI && hi >= SURROGATE_LO) {
    if (lo < SURROGATE_LO) split(lo, SURROGATE_LO - 1, out);
    if (hi > SURROGATE_HI) split(SURROGATE_HI + 1, hi, out);
  } else split(lo, hi, out);
  return out;
}

const LENGTH_LIMITS = [0x7f, 0x7ff, 0xffff, MAX_CODE_POINT];

function split(lo: number, hi: number, out: ByteRangeSeq[]): void {
  if (lo > hi) return;
  // Same encoded length at both ends.
  for (const limit of LENGTH_LIMITS) {
    if (lo <= limit && hi > limit) {
      split(lo, limit, out);
      split(limit + 1, hi, out);
      return;
    }
  }
  const n = encodedLength(lo);
  // Align the continuation bytes: below position i both ends must share their prefix or span full ranges.
  for (let i = 1; i < n; i++) {
    const m = (1 << (6 * i)) - 1;
    if ((lo & ~m) !== (hi & ~m)) {
      if ((lo & m) !== 0) {
        split(lo, lo | m, out);
        split((lo | m) + 1, hi, out);
        return;
      }
      if ((hi & m) !== m) {
        split(lo, (hi & ~m) - 1, out);
        split(hi & ~m, hi, out);
        return;
      }
    }
  }
  const a = encode(lo);
  const b = encode(hi);
  out.push(a.map((x, i) => [x, b[i]]));
}

export function encodedLength(cp: number): number {
  return cp <= 0x7f ? 1 : cp <= 0x7ff ? 2 : cp <= 0xffff ? 3 : 4;
}

/** UTF-8 bytes of one code point. */
export function encode(cp: number): number[] {
  if (cp <= 0x7f) return [cp];
  if (cp <= 0x7ff) return [0xc0 | (cp >> 6), 0x80 | (cp & 0x3f)];
  if (cp <= 0xffff) return [0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f)];
  return [0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 0x3f), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f)];
}

/**
 * Strict UTF-8 validation one byte at a time (Unicode Table 3-7, "well-formed UTF-8 byte sequences": no overlongs,
 * no surrogates, nothing above U+10FFFF), so a character split across tokens is followed exactly.
 *
 * State encoding: 0 = at a character boundary; 1..3 = that many continuation bytes 0x80..0xBF still needed;
 * 4 = one byte 0xA0..0xBF then 1 more (after E0); 5 = 0x80..0x9F then 1 more (after ED);
 * 6 = 0x90..0xBF then 2 more (after F0); 7 = 0x80..0x8F then 2 more (after F4).
 * Returns the next state, or -1 when the byte is not allowed here.
 */
export function utf8Step(state: number, b: number): number {
  switch (state) {
    case 0:
      if (b < 0x80) return 0;
      if (b >= 0xc2 && b <= 0xdf) return 1;
      if (b === 0xe0) return 4;
      if (b === 0xed) return 5;
      if (b >= 0xe1 && b <= 0xef) return 2;
      if (b === 0xf0) return 6;
      if (b >= 0xf1 && b <= 0xf3) return 3;
      if (b === 0xf4) return 7;
      return -1;
    case 1:
    case 2:
    case 3:
      return b >= 0x80 && b <= 0xbf ? state - 1 : -1;
    case 4:
      return b >= 0xa0 && b <= 0xbf ? 1 : -1;
    case 5:
      return b >= 0x80 && b <= 0x9f ? 1 : -1;
    case 6:
      return b >= 0x90 && b <= 0xbf ? 2 : -1;
    case 7:
      return b >= 0x80 && b <= 0x8f ? 2 : -1;
    default:
      return -1;
  }
}
