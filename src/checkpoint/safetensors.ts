/**
 * Reader for the safetensors format (https://github.com/huggingface/safetensors#format): an 8-byte little-endian
 * header length, a JSON header mapping tensor names to {dtype, shape, data_offsets}, then the raw data.
 * Every header entry is validated against the file before any tensor is read, so a truncated or corrupt file
 * fails at open with the file and tensor named.
 */
import * as fs from "node:fs";
import { VideolmError } from "../errors.js";
import { bf16ToFloat32, float16ToFloat32 } from "./dtype.js";

export type SafetensorsDType = "BF16" | "F16" | "F32";
const ELEMENT_SIZE: Record<SafetensorsDType, number> = { BF16: 2, F16: 2, F32: 4 };
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export interface TensorInfo {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  /** Absolute byte range in the file. */
  begin: number;
  end: number;
  file: string;
}

export class SafetensorsFile {
  private constructor(
    readonly file: string,
    readonly tensors: Map<string, TensorInfo>,
  ) {}

  static open(file: string): SafetensorsFile {
    let fd: number;
    try {
      fd = fs.openSync(file, "r");
    } catch (e) {
      throw new VideolmError(`cannot open weights file ${file}: ${(e as NodeJS.ErrnoException).code ?? e}`);
    }
    try {
      const size = fs.fstatSync(fd).size;
      const fail = (why: string) => new VideolmError(`corrupt safetensors file ${file}: ${why}; re-download or re-convert it`);
      if (size < 8) throw fail(`only ${size} bytes`);
      const lenBuf = Buffer.alloc(8);
      fs.readSync(fd, lenBuf, 0, 8, 0);
      const headerLen = Number(lenBuf.readBigUInt64LE(0));
      if (headerLen > MAX_HEADER_BYTES || 8 + headerLen > size) throw fail(`header length ${headerLen} exceeds the file size ${size}`);
      const headerBuf = Buffer.alloc(headerLen);
      fs.readSync(fd, headerBuf, 0, headerLen, 8);
      let header: Record<string, unknown>;
      try {
        header = JSON.parse(headerBuf.toString("utf8"));
      } catch {
        throw fail("header is not valid JSON");
      }
      const dataStart = 8 + headerLen;
      const dataSize = size - dataStart;
      const tensors = new Map<string, TensorInfo>();
      const ranges: [number, number, string][] = [];
      for (const [name, raw] of Object.entries(header)) {
        if (name === "__metadata__") continue;
        const entry = raw as { dtype?: string; shape?: number[]; data_offsets?: [number, number] };
        if (!entry || typeof entry !== "object" || !Array.isArray(entry.shape) || !Array.isArray(entry.data_offsets)) {
          throw fail(`tensor ${name} has a malformed header entry`);
        }
        if (!(entry.dtype! in ELEMENT_SIZE)) {
          throw new VideolmError(
            `tensor ${name} in ${file} has dtype ${entry.dtype}; videolm reads BF16, F16 and F32 checkpoints (quantized checkpoints are not supported; use the original weights)`,
          );
        }
        const dtype = entry.dtype as SafetensorsDType;
        const [b, e] = entry.data_offsets;
        const count = entry.shape.reduce((a, d) => a * d, 1);
        if (!entry.shape.every((d) => Number.isInteger(d) && d >= 0)) throw fail(`tensor ${name} has shape [${entry.shape}]`);
        if (!(Number.isInteger(b) && Number.isInteger(e) && 0 <= b && b <= e)) throw fail(`tensor ${name} has offsets [${b}, ${e}]`);
        if (e - b !== count * ELEMENT_SIZE[dtype]) {
          throw fail(`tensor ${name} spans ${e - b} bytes but shape [${entry.shape}] ${dtype} needs ${count * ELEMENT_SIZE[dtype]}`);
        }
        if (e > dataSize) throw fail(`tensor ${name} ends at byte ${dataStart + e} but the file has ${size} bytes (truncated?)`);
        tensors.set(name, { name, dtype, shape: entry.shape, begin: dataStart + b, end: dataStart + e, file });
        ranges.push([b, e, name]);
      }
      ranges.sort((x, y) => x[0] - y[0]);
      for (let i = 1; i < ranges.length; i++) {
        if (ranges[i][0] < ranges[i - 1][1]) throw fail(`tensors ${ranges[i - 1][2]} and ${ranges[i][2]} overlap`);
      }
      return new SafetensorsFile(file, tensors);
    } finally {
      fs.closeSync(fd);
    }
  }
}

/** Reads the raw bytes of one tensor. */
export function readTensorBytes(info: TensorInfo): Uint8Array {
  const length = info.end - info.begin;
  const buf = new Uint8Array(length);
  const fd = fs.openSync(info.file, "r");
  try {
    let read = 0;
    while (read < length) {
      const n = fs.readSync(fd, buf, read, Math.min(length - read, 1 << 30), info.begin + read); // ≤ 2^31 − 1 bytes per call
      if (n === 0) throw new VideolmError(`weights file ${info.file} ended while reading tensor ${info.name} (truncated?)`);
      read += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return buf;
}

/** Reads one tensor as float32, converting from bf16/fp16. */
export function readTensorFloat32(info: TensorInfo): Float32Array {
  const bytes = readTensorBytes(info);
  switch (info.dtype) {
    case "F32":
      return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
    case "BF16":
      return bf16ToFloat32(new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.length / 2));
    case "F16":
      return float16ToFloat32(new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.length / 2));
  }
}
