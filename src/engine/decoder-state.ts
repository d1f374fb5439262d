/**
 * DecoderState: one sequence's decoder state, per layer and per kind (docs: DESIGN.md "Generalising the core").
 *
 *   family.decoderState(config) ─▶ LayerStateSpec[] (one per decoder layer)
 *        "kv"        attention layer: preallocated K and V buffers [1, kv_heads, capacity, head_dim] (the layout the
 *                    attention reads in place); the graph returns only the chunk's new keys/values, appended here
 *        "recurrent" linear-attention layer (Gated DeltaNet, Mamba-style): fixed-size named tensors (e.g. conv +
 *                    recurrent state), zeros for a fresh sequence; the graph returns the whole new value of each,
 *                    which replaces the old one (no copy: the output tensor becomes the next call's input)
 *
 * Per decoder call: `feeds()` gives the past inputs (names from graph-io.ts), the session runs, `update(outputs, S)`
 * takes the new parts and advances `length` by the chunk's S tokens. `fork()` copies the state (a snapshot that can
 * continue independently); `bytesUsed()` / `bytesAllocated()` say what it costs.
 */
import * as ort from "onnxruntime-node";
import { VideolmError } from "../errors.js";
import { newKey, newState, newValue, pastKey, pastState, pastValue } from "../families/graph-io.js";
import { stateBytes } from "./state-bytes.js";

/** The state one decoder layer keeps per sequence. */
export type LayerStateSpec =
  | { kind: "kv"; numKvHeads: number; headDim: number }
  /** name → full dims of that tensor (batch 1 included), float32, constant in sequence length. */
  | { kind: "recurrent"; shapes: Record<string, number[]> };

/** Every layer an attention layer with the same KV shape (the Qwen-VL decoders). */
export function allKvLayers(text: { numLayers: number; numKvHeads: number; headDim: number }): LayerStateSpec[] {
  return Array.from({ length: text.numLayers }, () => ({ kind: "kv" as const, numKvHeads: text.numKvHeads, headDim: text.headDim }));
}

/** The graph inputs a state with these layers feeds. */
export function stateInputNames(specs: readonly LayerStateSpec[]): string[] {
  return specs.flatMap((spec, i) => (spec.kind === "kv" ? [pastKey(i), pastValue(i)] : Object.keys(spec.shapes).map((n) => pastState(i, n))));
}

/** The graph outputs `DecoderState.update` reads for these layers. */
export function stateOutputNames(specs: readonly LayerStateSpec[]): string[] {
  return specs.flatMap((spec, i) => (spec.kind === "kv" ? [newKey(i), newValue(i)] : Object.keys(spec.shapes).map((n) => newState(i, n))));
}

interface KvLayer {
  kind: "kv";
  spec: Extract<LayerStateSpec, { kind: "kv" }>;
  key: ort.Tensor;
  value: ort.Tensor;
}
interface RecurrentLayer {
  kind: "recurrent";
  spec: Extract<LayerStateSpec, { kind: "recurrent" }>;
  tensors: Record<string, ort.Tensor>;
}
type Layer = KvLayer | RecurrentLayer;

const count = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);

export class DecoderState {
  /** Number of positions consumed (tokens fed so far). */
  length = 0;
  /**
   * Added to `length` to give the rotary position of the next token (Qwen's rope delta: a visual compresses
   * positions); set by prefill from the prompt, continued by decode and later streaming appends.
   */
  positionDelta = 0;
  private readonly layers: Layer[];

  /** `capacity`: positions the KV layers can hold (recurrent layers do not depend on it). */
  constructor(
    readonly specs: readonly LayerStateSpec[],
    readonly capacity: number,
  ) {
    this.layers = specs.map((spec): Layer => {
      if (spec.kind === "kv") {
        const dims = [1, spec.numKvHeads, capacity, spec.headDim];
        return { kind: "kv", spec, key: new ort.Tensor("float32", new Float32Array(count(dims)), dims), value: new ort.Tensor("float32", new Float32Array(count(dims)), dims) };
      }
      const tensors: Record<string, ort.Tensor> = {};
      for (const [name, dims] of Object.entries(spec.shapes)) tensors[name] = new ort.Tensor("float32", new Float32Array(count(dims)), dims);
      return { kind: "recurrent", spec, tensors };
    });
  }

  /** Rotary position of the next token fed. */
  nextPosition(): number {
    return this.length + this.positionDelta;
  }

  /** Throws unless `S` more tokens fit. */
  checkRoom(S: number): void {
    if (this.length + S > this.capacity) throw new VideolmError(`sequence of ${this.length + S} tokens exceeds the KV cache capacity of ${this.capacity}`);
  }

  /** The past-state inputs of one decoder call, by graph input name; the KV buffers are fed without copying. */
  feeds(): Record<string, ort.Tensor> {
    const feeds: Record<string, ort.Tensor> = {};
    this.layers.forEach((layer, i) => {
      if (layer.kind === "kv") {
        feeds[pastKey(i)] = layer.key;
        feeds[pastValue(i)] = layer.value;
      } else for (const [name, t] of Object.entries(layer.tensors)) feeds[pastState(i, name)] = t;
    });
    return feeds;
  }

  /**
   * Takes a call's new state from its outputs: KV layers append the chunk's keys/values ([1, S, kv_heads·head_dim])
   * at positions length … length+S−1, recurrent layers replace each tensor; then advances `length` by S.
   */
  update(outputs: Record<string, ort.Tensor>, S: number): void {
    this.checkRoom(S);
    const get = (name: string) => {
      const t = outputs[name];
      if (!t) throw new VideolmError(`the decoder returned no ${name}`);
      return t;
    };
    this.layers.forEach((layer, i) => {
      if (layer.kind === "kv") {
        this.appendKv(layer, get(newKey(i)).data as Float32Array, get(newValue(i)).data as Float32Array, S);
        return;
      }
      for (const [name, old] of Object.entries(layer.tensors)) {
        const t = get(newState(i, name));
        if (t.type !== "float32" || t.data.length !== old.data.length) throw new VideolmError(`decoder output ${newState(i, name)} has ${t.data.length} ${t.type} values, expected ${old.data.length} float32 [${old.dims.join(", ")}]`);
        layer.tensors[name] = t.dims.length === old.dims.length && t.dims.every((d, k) => d === old.dims[k]) ? t : new ort.Tensor("float32", t.data as Float32Array, old.dims);
      }
    });
    this.length += S;
  }

  private appendKv(layer: KvLayer, keys: Float32Array, values: Float32Array, S: number): void {
    const { numKvHeads: H, headDim: Dh } = layer.spec;
    const { capacity, length } = this;
    if (keys.length !== S * H * Dh || values.length !== S * H * Dh) throw new VideolmError(`new keys/values hold ${keys.length}/${values.length} values, expected ${S}×${H}×${Dh}`);
    const K = layer.key.data as Float32Array;
    const V = layer.value.data as Float32Array;
    for (let s = 0; s < S; s++) {
      for (let h = 0; h < H; h++) {
        const from = (s * H + h) * Dh;
        const to = (h * capacity + length + s) * Dh;
        K.set(keys.subarray(from, from + Dh), to);
        V.set(values.subarray(from, from + Dh), to);
      }
    }
  }

  /**
   * An independent copy (a snapshot that can continue on its own), with room for `capacity` positions (default: the
   * same); only the filled KV positions are copied.
   */
  fork(capacity = this.capacity): DecoderState {
    if (capacity < this.length) throw new VideolmError(`cannot fork a state of ${this.length} positions into a capacity of ${capacity}`);
    const copy = new DecoderState(this.specs, capacity);
    copy.length = this.length;
    copy.positionDelta = this.positionDelta;
    this.layers.forEach((layer, i) => {
      const target = copy.layers[i];
      if (layer.kind === "kv" && target.kind === "kv") {
        const { numKvHeads: H, headDim: Dh } = layer.spec;
        for (const [from, to] of [
          [layer.key, target.key],
          [layer.value, target.value],
        ] as const) {
          const src = from.data as Float32Array;
          const dst = to.data as Float32Array;
          for (let h = 0; h < H; h++) dst.set(src.subarray(h * this.capacity * Dh, (h * this.capacity + this.length) * Dh), h * capacity * Dh);
        }
      } else if (layer.kind === "recurrent" && target.kind === "recurrent") {
        for (const [name, t] of Object.entries(layer.tensors)) (target.tensors[name].data as Float32Array).set(t.data as Float32Array);
      }
    });
    return copy;
  }

  /** Bytes the state's content occupies: KV layers per filled position, recurrent layers in full. */
  bytesUsed(): number {
    return this.bytesFor(this.length);
  }

  /** Bytes of the buffers held: KV layers at full capacity, recurrent layers in full. */
  bytesAllocated(): number {
    return this.bytesFor(this.capacity);
  }

  /** state-bytes.ts: the same rule the cost estimate uses. */
  private bytesFor(positions: number): number {
    return stateBytes(this.specs, positions);
  }

  /** Layer `i`'s tensors (for tests and diagnostics): K/V buffers, or the recurrent tensors by name. */
  layerTensors(i: number): Record<string, ort.Tensor> {
    const layer = this.layers[i];
    return layer.kind === "kv" ? { key: layer.key, value: layer.value } : { ...layer.tensors };
  }
}
