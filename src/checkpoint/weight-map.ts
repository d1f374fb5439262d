/**
 * The one place where a family claims checkpoint tensors. `take(name, shape)` asserts the tensor exists with
 * exactly that shape and marks it used; `assertAllUsed()` fails on any tensor nobody claimed. Together they
 * guarantee every checkpoint tensor is mapped exactly once, and name the offending tensor when not.
 */
import { VideolmError } from "../errors.js";
import { readTensorFloat32, type TensorInfo } from "./safetensors.js";

export class WeightMap {
  private used = new Set<string>();
  /**
   * @param tensors the checkpoint's tensors under their canonical names (after the family's sanitize step)
   * @param dir the checkpoint folder, for messages
   * @param onTake called with each claimed tensor's size in bytes (conversion progress)
   */
  constructor(
    private readonly tensors: Map<string, TensorInfo>,
    private readonly dir: string,
    private readonly onTake?: (bytes: number) => void,
  ) {}

  /** Total bytes of all tensors, for progress. */
  totalBytes(): number {
    let total = 0;
    for (const t of this.tensors.values()) total += t.end - t.begin;
    return total;
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  info(name: string, shape: number[]): TensorInfo {
    const info = this.tensors.get(name);
    if (!info) throw new VideolmError(`checkpoint ${this.dir} is missing tensor ${name} [${shape}] (is it a complete checkpoint of this model type?)`);
    if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
      throw new VideolmError(`tensor ${name} in ${info.file} has shape [${info.shape}] but config.json implies [${shape}]`);
    }
    if (this.used.has(name)) throw new Error(`tensor ${name} mapped twice`);
    this.used.add(name);
    this.onTake?.(info.end - info.begin);
    return info;
  }

  /** Claims a tensor and reads it as float32. */
  take(name: string, shape: number[]): Float32Array {
    return readTensorFloat32(this.info(name, shape));
  }

  /**
   * Claims a tensor [N, ...] and returns a reader of its i-th slice along the first axis, read from disk on demand
   * (float32): a mixture-of-experts layer's stacked expert weights are converted one expert at a time instead of
   * holding the whole stack (a 128-expert layer's gate_up stack is ~1.6 GB as float32).
   */
  takeSlices(name: string, shape: number[]): (i: number) => Float32Array {
    const info = this.info(name, shape);
    const sliceBytes = (info.end - info.begin) / shape[0];
    return (i: number) => {
      if (!(Number.isInteger(i) && i >= 0 && i < shape[0])) throw new Error(`slice ${i} of tensor ${name} [${shape}] is out of range`);
      return readTensorFloat32({ ...info, begin: info.begin + i * sliceBytes, end: info.begin + (i + 1) * sliceBytes, shape: shape.slice(1) });
    };
  }

  /**
   * Reads again (float32) a tensor that was already claimed with `take`, asserting the same shape: for a graph that
   * needs a tensor another graph of the same conversion claimed, e.g. the last decoder stage's tied head reading the
   * embedding table the first stage took. Throws when the tensor was not claimed (a tensor still needs exactly one
   * `take`); not counted again in the conversion's progress.
   */
  readClaimed(name: string, shape: number[]): Float32Array {
    if (!this.used.has(name)) throw new Error(`tensor ${name} is read again before it was claimed`);
    const info = this.tensors.get(name)!;
    if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) throw new Error(`tensor ${name} [${info.shape}] read again as [${shape}]`);
    return readTensorFloat32(info);
  }

  assertAllUsed(): void {
    const unused = [...this.tensors.keys()].filter((n) => !this.used.has(n));
    if (unused.length > 0) {
      const list = unused.slice(0, 5).join(", ") + (unused.length > 5 ? `, … (${unused.length} in all)` : "");
      throw new VideolmError(`checkpoint ${this.dir} has tensors this model does not use: ${list} (does config.json match the weights?)`);
    }
  }
}
