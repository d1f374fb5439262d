/**
 * DecoderState on its own: KV layers append each chunk's keys/values into [1, kv_heads, capacity, head_dim] buffers,
 * recurrent layers are replaced by each call's outputs, fork copies, bytes and positions are counted. A fake "graph"
 * (a JS function of the feeds) stands in for the decoder session.
 */
import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { allKvLayers, DecoderState, stateInputNames, stateOutputNames, type LayerStateSpec } from "../src/engine/decoder-state.js";
import { Decoder } from "../src/engine/sessions.js";
import type { FamilyConfig } from "../src/families/family.js";
import { newKey, newState, newValue, pastKey, pastState, pastValue } from "../src/families/graph-io.js";

const H = 2;
const Dh = 3;
const f32 = (dims: number[], data: ArrayLike<number>) => new ort.Tensor("float32", Float32Array.from(data), dims);

/** The chunk's new keys/values [1, S, H·Dh] for tokens at absolute positions p0 … p0+S−1: key = 1000·p + 10·h + d, value = −key. */
function kvOutputs(layer: number, p0: number, S: number): Record<string, ort.Tensor> {
  const k = new Float32Array(S * H * Dh);
  for (let s = 0; s < S; s++) for (let h = 0; h < H; h++) for (let d = 0; d < Dh; d++) k[(s * H + h) * Dh + d] = 1000 * (p0 + s) + 10 * h + d + layer / 10;
  return { [newKey(layer)]: f32([1, S, H * Dh], k), [newValue(layer)]: f32([1, S, H * Dh], k.map((x) => -x)) };
}

/** Reads position p, head h of a KV buffer [1, H, capacity, Dh]. */
function kvAt(t: ort.Tensor, h: number, p: number): number[] {
  const cap = t.dims[2];
  return Array.from((t.data as Float32Array).subarray((h * cap + p) * Dh, (h * cap + p + 1) * Dh));
}

describe("DecoderState: KV layers", () => {
  it("appends chunks at the next positions of every head and feeds the buffers in place", () => {
    const state = new DecoderState(allKvLayers({ numLayers: 2, numKvHeads: H, headDim: Dh }), 8);
    expect(state.layerTensors(0).key.dims).toEqual([1, H, 8, Dh]);
    state.update({ ...kvOutputs(0, 0, 3), ...kvOutputs(1, 0, 3) }, 3);
    state.update({ ...kvOutputs(0, 3, 2), ...kvOutputs(1, 3, 2) }, 2);
    expect(state.length).toBe(5);
    for (const layer of [0, 1]) {
      const { key, value } = state.layerTensors(layer);
      for (let p = 0; p < 5; p++) {
        for (let h = 0; h < H; h++) {
          const want = [0, 1, 2].map((d) => Math.fround(1000 * p + 10 * h + d + layer / 10));
          expect(kvAt(key, h, p)).toEqual(want);
          expect(kvAt(value, h, p)).toEqual(want.map((x) => -x));
        }
      }
      expect(kvAt(key, 1, 5)).toEqual([0, 0, 0]); // not yet filled
    }
    const feeds = state.feeds();
    expect(Object.keys(feeds).sort()).toEqual([pastKey(0), pastKey(1), pastValue(0), pastValue(1)].sort());
    expect(feeds[pastKey(1)]).toBe(state.layerTensors(1).key); // no copy
  });

  it("refuses a chunk past its capacity and outputs of the wrong size", () => {
    const state = new DecoderState(allKvLayers({ numLayers: 1, numKvHeads: H, headDim: Dh }), 4);
    state.update(kvOutputs(0, 0, 3), 3);
    expect(() => state.update(kvOutputs(0, 3, 2), 2)).toThrow(/exceeds the KV cache capacity of 4/);
    expect(() => state.update(kvOutputs(0, 3, 2), 1)).toThrow(/expected 1×2×3/);
    expect(() => state.update({}, 1)).toThrow(/returned no new\.0\.key/);
    expect(state.length).toBe(3);
  });

  it("forks into another capacity: the filled positions copied, the two then independent", () => {
    const state = new DecoderState(allKvLayers({ numLayers: 1, numKvHeads: H, headDim: Dh }), 6);
    state.positionDelta = -2;
    state.update(kvOutputs(0, 0, 4), 4);
    const small = state.fork(5);
    const big = state.fork(12);
    expect(() => state.fork(3)).toThrow(/cannot fork/);
    for (const f of [small, big]) {
      expect(f.length).toBe(4);
      expect(f.nextPosition()).toBe(2);
      expect(f.layerTensors(0).key.dims).toEqual([1, H, f.capacity, Dh]);
      for (let p = 0; p < 4; p++) for (let h = 0; h < H; h++) expect(kvAt(f.layerTensors(0).value, h, p)).toEqual(kvAt(state.layerTensors(0).value, h, p));
    }
    // Continue the original and a fork differently: neither sees the other's token.
    state.update(kvOutputs(0, 100, 1), 1);
    big.update(kvOutputs(0, 200, 1), 1);
    expect(kvAt(state.layerTensors(0).key, 1, 4)[0]).toBe(100_010);
    expect(kvAt(big.layerTensors(0).key, 1, 4)[0]).toBe(200_010);
    expect(kvAt(small.layerTensors(0).key, 1, 4)).toEqual([0, 0, 0]);
    expect(state.nextPosition()).toBe(3);
  });

  it("counts bytes per filled position and per allocated position", () => {
    const state = new DecoderState(allKvLayers({ numLayers: 3, numKvHeads: H, headDim: Dh }), 10);
    const perPosition = 3 * 2 * H * Dh * 4;
    expect(state.bytesUsed()).toBe(0);
    expect(state.bytesAllocated()).toBe(10 * perPosition);
    state.update(Object.assign({}, ...[0, 1, 2].map((l) => kvOutputs(l, 0, 7))), 7);
    expect(state.bytesUsed()).toBe(7 * perPosition);
  });
});

describe("DecoderState: recurrent and mixed layers", () => {
  // Layer 0: attention; layer 1: a linear layer with a conv state [1, C, K−1] and a recurrent state [1, 2, 2, 2].
  const C = 3;
  const specs: LayerStateSpec[] = [
    { kind: "kv", numKvHeads: H, headDim: Dh },
    { kind: "recurrent", shapes: { conv: [1, C, 2], recurrent: [1, 2, 2, 2] } },
  ];

  /**
   * A fake decoder call over tokens x (values): the recurrent layer's conv state keeps the last 2 inputs per channel
   * (channel c sees x + c), its recurrent state decays by ½ and adds the token, element-wise; the KV layer appends.
   * Returns the outputs a graph would.
   */
  function fakeCall(feeds: Record<string, ort.Tensor>, p0: number, xs: number[]): Record<string, ort.Tensor> {
    const conv = Float32Array.from(feeds[pastState(1, "conv")].data as Float32Array);
    const rec = Float32Array.from(feeds[pastState(1, "recurrent")].data as Float32Array);
    for (const x of xs) {
      for (let c = 0; c < C; c++) {
        conv[c * 2] = conv[c * 2 + 1];
        conv[c * 2 + 1] = x + c;
      }
      for (let i = 0; i < rec.length; i++) rec[i] = rec[i] / 2 + x * (i + 1);
    }
    return { ...kvOutputs(0, p0, xs.length), [newState(1, "conv")]: f32([1, C, 2], conv), [newState(1, "recurrent")]: f32([1, 2, 2, 2], rec) };
  }

  function run(state: DecoderState, xs: number[]): void {
    state.update(fakeCall(state.feeds(), state.length, xs), xs.length);
  }

  it("names inputs and outputs per kind (graph-io.ts)", () => {
    expect(stateInputNames(specs)).toEqual(["past_key_values.0.key", "past_key_values.0.value", "past_state.1.conv", "past_state.1.recurrent"]);
    expect(stateOutputNames(specs)).toEqual(["new.0.key", "new.0.value", "present_state.1.conv", "present_state.1.recurrent"]);
    expect(Object.keys(new DecoderState(specs, 4).feeds())).toEqual(stateInputNames(specs));
  });

  it("replaces the recurrent state per call: chunked calls equal one call per token", () => {
    const tokens = [3, 1, 4, 1, 5, 9, 2];
    const perToken = new DecoderState(specs, 8);
    for (const x of tokens) run(perToken, [x]);
    const chunked = new DecoderState(specs, 8);
    run(chunked, tokens.slice(0, 3));
    run(chunked, tokens.slice(3));
    for (const s of [perToken, chunked]) {
      expect(s.length).toBe(7);
      expect(Array.from(s.layerTensors(1).conv.data as Float32Array)).toEqual([9, 2, 10, 3, 11, 4]); // the last two tokens (9, 2) + channel
      expect(s.layerTensors(0).key.dims).toEqual([1, H, 8, Dh]);
    }
    expect(Array.from(chunked.layerTensors(1).recurrent.data as Float32Array)).toEqual(Array.from(perToken.layerTensors(1).recurrent.data as Float32Array));
    // The new state is what the next call is fed (taken from the outputs, not copied into the old buffer).
    const out = fakeCall(chunked.feeds(), chunked.length, [7]);
    chunked.update(out, 1);
    expect(chunked.feeds()[pastState(1, "recurrent")]).toBe(out[newState(1, "recurrent")]);
    expect(kvAt(chunked.layerTensors(0).key, 0, 7)[0]).toBe(7000);
  });

  it("forks a mixed state: recurrent tensors copied, not shared", () => {
    const a = new DecoderState(specs, 6);
    run(a, [1, 2]);
    const b = a.fork();
    expect(Array.from(b.layerTensors(1).recurrent.data as Float32Array)).toEqual(Array.from(a.layerTensors(1).recurrent.data as Float32Array));
    expect(b.layerTensors(1).conv).not.toBe(a.layerTensors(1).conv);
    run(a, [5]);
    run(b, [6]);
    expect((a.layerTensors(1).conv.data as Float32Array)[1]).toBe(5);
    expect((b.layerTensors(1).conv.data as Float32Array)[1]).toBe(6);
    // Continuing the fork equals running its whole history on a fresh state.
    const fresh = new DecoderState(specs, 6);
    run(fresh, [1, 2, 6]);
    expect(Array.from(b.layerTensors(1).recurrent.data as Float32Array)).toEqual(Array.from(fresh.layerTensors(1).recurrent.data as Float32Array));
    expect(kvAt(b.layerTensors(0).key, 0, 2)).toEqual(kvAt(fresh.layerTensors(0).key, 0, 2));
  });

  it("counts recurrent bytes as constant in length, KV bytes per position", () => {
    const s = new DecoderState(specs, 100);
    const recurrentBytes = (C * 2 + 8) * 4;
    const kvPerPosition = 2 * H * Dh * 4;
    expect(s.bytesUsed()).toBe(recurrentBytes);
    run(s, [1, 2, 3]);
    expect(s.bytesUsed()).toBe(recurrentBytes + 3 * kvPerPosition);
    expect(s.bytesAllocated()).toBe(recurrentBytes + 100 * kvPerPosition);
  });

  it("refuses a recurrent output of the wrong size", () => {
    const s = new DecoderState(specs, 4);
    const out = fakeCall(s.feeds(), 0, [1]);
    out[newState(1, "conv")] = f32([1, C, 3], new Float32Array(C * 3));
    expect(() => s.update(out, 1)).toThrow(/present_state\.1\.conv has 9 float32 values, expected 6/);
  });
});

describe("Decoder and its state layers", () => {
  it("refuses a graph whose state inputs/outputs do not match the family's layers", () => {
    const kv = allKvLayers({ numLayers: 2, numKvHeads: H, headDim: Dh });
    const session = { inputNames: ["input_ids", ...stateInputNames(kv)], outputNames: ["logits", ...stateOutputNames(kv)], inputMetadata: [] } as unknown as ort.InferenceSession;
    const config = {} as FamilyConfig;
    expect(() => new Decoder(session, config, kv)).not.toThrow();
    const mixed: LayerStateSpec[] = [kv[0], { kind: "recurrent", shapes: { conv: [1, 4, 3] } }];
    expect(() => new Decoder(session, config, mixed)).toThrow(/does not match .* no past_state\.1\.conv, present_state\.1\.conv/);
  });
});
