/**
 * Seeded pseudo-random numbers for sampling: xoshiro128** (Blackman & Vigna, https://prng.di.unimi.it/xoshiro128starstar.c),
 * state expanded from the seed with splitmix32. 32-bit integer math via Math.imul / >>> 0, so the sequence is the same
 * on every platform and Node version. Not cryptographic; it only has to make sampling reproducible.
 */
import { webcrypto } from "node:crypto";

/** splitmix32 step: a good avalanche of a 32-bit counter; used only to fill the xoshiro state. */
function splitmix32(state: { s: number }): number {
  state.s = (state.s + 0x9e3779b9) >>> 0;
  let z = state.s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}

export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /** `seed`: a non-negative safe integer (all 53 bits are used); undefined = random seed from the OS. */
  constructor(seed?: number) {
    let words: number[];
    if (seed === undefined) {
      words = Array.from(webcrypto.getRandomValues(new Uint32Array(4)));
    } else {
      // Two 32-bit halves of the seed feed two splitmix streams, so seeds differing only in high bits differ.
      const lo = { s: seed >>> 0 };
      const hi = { s: (Math.floor(seed / 0x100000000) ^ 0x5bd1e995) >>> 0 };
      words = [splitmix32(lo), splitmix32(hi), splitmix32(lo), splitmix32(hi)];
    }
    // xoshiro's all-zero state is a fixed point; astronomically unlikely, but cheap to rule out.
    if (!words.some((w) => w !== 0)) words[0] = 1;
    [this.s0, this.s1, this.s2, this.s3] = words as [number, number, number, number];
  }

  /** Next 32-bit unsigned integer (xoshiro128**). */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform float in [0, 1) with 53 random bits (two draws: 27 high bits + 26 low bits). */
  nextFloat(): number {
    const a = this.nextUint32() >>> 5; // 27 bits
    const b = this.nextUint32() >>> 6; // 26 bits
    return (a * 67108864 + b) / 9007199254740992; // (a·2^26 + b) / 2^53
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
