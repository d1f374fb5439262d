/**
 * Writes a copy of a checkpoint folder whose model.safetensors is the source's with its tensors transformed —
 * renamed, reshaped, split or dropped — for metamorphic tests (the same model in another layout must give the same
 * outputs). Every other file is copied as it is (edit them afterwards).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { SafetensorsFile, readTensorBytes, type SafetensorsDType, type TensorInfo } from "../checkpoint/safetensors.js";

export interface OutputTensor {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  bytes: Uint8Array;
}

/** `transform(info, bytes)` returns the tensors to write for one source tensor (itself by default). */
export function rewriteWeights(src: string, dst: string, transform: (info: TensorInfo, bytes: Uint8Array) => OutputTensor[]): void {
  fs.mkdirSync(dst, { recursive: true });
  for (const f of fs.readdirSync(src)) if (f !== "model.safetensors") fs.copyFileSync(path.join(src, f), path.join(dst, f));
  const st = SafetensorsFile.open(path.join(src, "model.safetensors"));
  const header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }> = {};
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const info of st.tensors.values()) {
    for (const t of transform(info, readTensorBytes(info))) {
      header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.bytes.length] };
      chunks.push(t.bytes);
      offset += t.bytes.length;
    }
  }
  const h = Buffer.from(JSON.stringify(header), "utf8");
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  fs.writeFileSync(path.join(dst, "model.safetensors"), Buffer.concat([len, h, ...chunks]));
}

/** A [rows, cols] matrix of `elementBytes`-byte elements, transposed to [cols, rows]. */
export function transposeBytes(m: Uint8Array, rows: number, cols: number, elementBytes: number): Uint8Array {
  const out = new Uint8Array(m.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out.set(m.subarray((r * cols + c) * elementBytes, (r * cols + c + 1) * elementBytes), (c * rows + r) * elementBytes);
  return out;
}
