/**
 * Checks shared by the family golden tests (test/*-golden.test.ts): logits against recorded reference rows within
 * the DESIGN tolerance, and greedy decoding with the KV cache (chunked prefill, then one token per call) compared
 * with the reference's greedy tokens and with one full forward pass.
 */
import { expect } from "vitest";
import type { VideoModel } from "../src/engine/model.js";
import type { PreparedRequest } from "../src/engine/preparer.js";
import { prefill, type PreparedPrompt } from "../src/engine/generate.js";
import { concatFloat32 } from "../src/util/float32.js";

export { concatFloat32 };

/** fp32 logits within 1e-4 × max(1, max |logit|) of the reference. */
export const tolerance = (maxAbs: number) => 1e-4 * Math.max(1, maxAbs);

export function argmax(row: Float32Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

export function sumStats(values: Float32Array): { sum: number; abs: number } {
  let sum = 0;
  let abs = 0;
  for (const v of values) {
    sum += v;
    abs += Math.abs(v);
  }
  return { sum, abs };
}

/** The largest |a[i] − b[i]| over the first `n` values (default: all of `a`). */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>, n = a.length): number {
  let worst = 0;
  for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

/** Asserts `row[ids[j]]` ≈ `expected[j]` within the tolerance; returns the largest difference. */
export function checkRow(row: Float32Array, ids: number[], expected: number[], maxAbs: number): number {
  let worst = 0;
  ids.forEach((id, j) => (worst = Math.max(worst, Math.abs(row[id] - expected[j]))));
  expect(worst).toBeLessThanOrEqual(tolerance(maxAbs));
  return worst;
}


/** The pixel values of all images (or all videos) of a request, concatenated as the reference's `pixel_values`. */
export function pixelValuesOf(prepared: PreparedRequest, kind: "image" | "video"): Float32Array {
  return concatFloat32(prepared.visuals.filter((v) => v.kind === kind).map((v) => v.batch.pixelValues));
}

export interface LogitRecord {
  position: number;
  max_abs: number;
  top20: [number, number][];
  at_ids: number[];
}

/**
 * One full forward pass; at each recorded position, the logits at `logitIds` and at the reference's top-20 ids must
 * match. Returns the largest difference seen.
 */
export async function checkLogitRecords(model: VideoModel, prompt: PreparedPrompt, logitIds: number[], records: LogitRecord[]): Promise<number> {
  const V = model.config.text.vocabSize;
  const logits = await fullForward(model, prompt, records.map((r) => r.position));
  let worst = 0;
  records.forEach((rec, k) => {
    const row = logits.subarray(k * V, (k + 1) * V);
    worst = Math.max(worst, checkRow(row, logitIds, rec.at_ids, rec.max_abs));
    worst = Math.max(worst, checkRow(row, rec.top20.map(([id]) => id), rec.top20.map(([, v]) => v), rec.max_abs));
  });
  return worst;
}

/** Logits of one full forward pass (fresh cache) at `positions`, [positions.length, vocab]. */
export function fullForward(model: VideoModel, prompt: PreparedPrompt, positions: number[]): Promise<Float32Array> {
  return model.decoder.forward(
    {
      inputIds: prompt.inputIds,
      positionIds: prompt.positionIds,
      visualEmbeds: prompt.visualEmbeds,
      visualPositions: prompt.visualPositions,
      deepstackEmbeds: prompt.deepstackEmbeds,
      logitsIndices: positions,
    },
    model.decoder.createState(prompt.inputIds.length),
  );
}

/**
 * The prompt followed by generated[:-1], as one sequence for a full pass: generated token i sits at
 * S + i + ropeDelta on every rotary axis (the positions cached decoding gives it; 3 axes for M-RoPE, 1 for 1-D RoPE).
 */
export function withContinuation(prompt: PreparedPrompt, generated: number[]): PreparedPrompt {
  const S = prompt.inputIds.length;
  const axes = prompt.positionIds.length / S;
  const ids = [...prompt.inputIds, ...generated.slice(0, -1)];
  const T = ids.length;
  const pos = new Int32Array(axes * T);
  for (let a = 0; a < axes; a++) {
    pos.set(prompt.positionIds.subarray(a * S, (a + 1) * S), a * T);
    for (let i = S; i < T; i++) pos[a * T + i] = i + prompt.ropeDelta;
  }
  return { ...prompt, inputIds: ids, positionIds: pos };
}

export interface GreedyGolden {
  new_tokens: number[];
  steps: { step: number; max_abs: number; at_ids: number[] }[];
  full_forward_last: { max_abs: number; top20: [number, number][] };
}

/**
 * Greedy decoding with the decoder state (prefill in chunks of `prefillChunk`, so visual rows straddle chunks) must give
 * the reference's tokens and step logits, and its last step must equal one full pass over prompt + generated[:-1].
 * Returns the largest logit difference seen.
 */
export async function checkGreedyDecoding(model: VideoModel, prompt: PreparedPrompt, greedy: GreedyGolden, logitIds: number[], prefillChunk = 7): Promise<number> {
  const S = prompt.inputIds.length;
  const V = model.config.text.vocabSize;
  const steps = greedy.new_tokens.length;
  const state = model.decoder.createState(S + steps);
  let row = await prefill(model.decoder, prompt, state, prefillChunk);
  // A snapshot after prefill (forked into just the room one more step needs) must continue exactly like the original.
  const snapshot = state.fork(S + 1);
  const tokens: number[] = [];
  const stepRows: Float32Array[] = [];
  for (let i = 0; i < steps; i++) {
    stepRows.push(row);
    tokens.push(argmax(row));
    if (i === steps - 1) break;
    const pos = S + i + prompt.ropeDelta;
    expect(state.nextPosition()).toBe(pos);
    row = await model.decoder.forward({ inputIds: [tokens[i]], positionIds: new Array<number>(model.decoder.positionAxes).fill(pos), logitsIndices: [0] }, state);
  }
  expect(tokens).toEqual(greedy.new_tokens);
  expect(new Set(tokens).size).toBeGreaterThanOrEqual(6); // a broken cache could not hide behind a repeated token
  if (steps > 1) {
    const pos = snapshot.nextPosition();
    const fromSnapshot = await model.decoder.forward({ inputIds: [tokens[0]], positionIds: new Array<number>(model.decoder.positionAxes).fill(pos), logitsIndices: [0] }, snapshot);
    // Not bit-equal: the attention reads a cache of another capacity (masked past the filled length).
    let d = 0;
    let scale = 1;
    for (let i = 0; i < V; i++) {
      d = Math.max(d, Math.abs(fromSnapshot[i] - stepRows[1][i]));
      scale = Math.max(scale, Math.abs(stepRows[1][i]));
    }
    expect(d).toBeLessThanOrEqual(1e-5 * scale);
  }
  let worst = 0;
  for (const step of greedy.steps) worst = Math.max(worst, checkRow(stepRows[step.step], logitIds, step.at_ids, step.max_abs));

  // One full pass over prompt + generated[:-1].
  const continued = withContinuation(prompt, tokens);
  const onePass = await fullForward(model, continued, [continued.inputIds.length - 1]);
  const last = stepRows[steps - 1];
  const diff = maxAbsDiff(onePass, last, V);
  expect(diff).toBeLessThanOrEqual(tolerance(greedy.full_forward_last.max_abs));
  const ref = greedy.full_forward_last.top20;
  return Math.max(worst, diff, checkRow(onePass, ref.map(([id]) => id), ref.map(([, v]) => v), greedy.full_forward_last.max_abs));
}

/** A recorded float tensor's summary (golden.json): sums, and values at a few flat indices. */
export interface Summary {
  sum: number;
  abs_sum: number;
  indices: number[];
  values: number[];
  shape: number[];
}

/** `ours` matches a recorded summary: same size, sums within `tol` relative, sampled values within 10 × `tol`. */
export function checkSummary(ours: Float32Array, ref: Summary, tol: number): void {
  expect(ours.length).toBe(ref.shape.reduce((a, b) => a * b, 1));
  const { sum, abs } = sumStats(ours);
  expect(Math.abs(abs - ref.abs_sum)).toBeLessThan(tol * (1 + ref.abs_sum));
  expect(Math.abs(sum - ref.sum)).toBeLessThan(tol * (1 + ref.abs_sum));
  ref.indices.forEach((idx, j) => expect(Math.abs(ours[idx] - ref.values[j])).toBeLessThan(tol * Math.max(1, Math.abs(ref.values[j])) * 10));
}

