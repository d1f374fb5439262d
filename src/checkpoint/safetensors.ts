/**
 * Reader for the safetensors format (https://github.com/huggingface/safetensors#format): an 8-byte little-endian
 * header length, a JSON header mapping tensor names to {dtype, shape, data_offsets}, then the raw data.
 * Every header entry is validated against the file before any tensor is read, so a truncated or corrupt file
 * fails at open with the file and tensor named.
 */
import * as fs from "node:fs";
import { VideolmError } from "../errors.js";
import { bf16ToFloat32, float16ToFloat32 } from "./dtype.js";
import { describeJson } from "./json-file.js";

export type SafetensorsDType = "BF16" | "F16" | "F32";
const ELEMENT_SIZE: Record<SafetensorsDType, number> = { BF16: 2, F16: 2, F32: 4 };
const MAX_HEADER_BYTES = 100 * 1024 * 1024;
/** Deepest tensor rank accepted (the Qwen-VL patch embedding has rank 5). */
const MAX_RANK = 8;

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
      const headerLenBig = lenBuf.readBigUInt64LE(0);
      // Bounded before anything is allocated: a header is ~100 bytes per tensor (a 70B model's is < 1 MiB).
      if (headerLenBig > BigInt(MAX_HEADER_BYTES) || 8n + headerLenBig > BigInt(size)) {
        throw fail(`header length ${headerLenBig} exceeds the file size ${size}${headerLenBig > BigInt(MAX_HEADER_BYTES) ? ` or the ${MAX_HEADER_BYTES}-byte limit` : ""}`);
      }
      const headerLen = Number(headerLenBig);
      const headerBuf = Buffer.alloc(headerLen);
      fs.readSync(fd, headerBuf, 0, headerLen, 8);
      let header: unknown;
      try {
        header = JSON.parse(headerBuf.toString("utf8"));
      } catch {
        throw fail("header is not valid JSON");
      }
      if (header === null || typeof header !== "object" || Array.isArray(header)) throw fail(`header is ${describeJson(header)}, not a JSON object of tensors`);
      const dataStart = 8 + headerLen;
      const dataSize = size - dataStart;
      const tensors = new Map<string, TensorInfo>();
      const ranges: [number, number, string][] = [];
      for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
        if (name === "__metadata__") {
          if (raw !== null && (typeof raw !== "object" || Array.isArray(raw))) throw fail("__metadata__ is not an object");
          continue;
        }
        const shown = name.length > 200 ? `${name.slice(0, 200)}…` : name;
        if (!raw || typeof raw !== "object" || Array.isArray(raw)) throw fail(`tensor ${shown} has a malformed header entry (${describeJson(raw)})`);
        const entry = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
        if (!Array.isArray(entry.shape) || entry.shape.length > MAX_RANK) throw fail(`tensor ${shown} has shape ${describeJson(entry.shape)}, not a list of at most ${MAX_RANK} sizes`);
        if (!Array.isArray(entry.data_offsets) || entry.data_offsets.length !== 2) throw fail(`tensor ${shown} has data_offsets ${describeJson(entry.data_offsets)}, not [begin, end]`);
        if (typeof entry.dtype !== "string" || !Object.hasOwn(ELEMENT_SIZE, entry.dtype)) {
          throw new VideolmError(
            `tensor ${shown} in ${file} has dtype ${typeof entry.dtype === "string" ? entry.dtype.slice(0, 40) : describeJson(entry.dtype)}; videolm reads BF16, F16 and F32 checkpoints (quantized checkpoints are not supported; use the original weights)`,
          );
        }
        const dtype = entry.dtype as SafetensorsDType;
        const shape = entry.shape as unknown[];
        if (!shape.every((d): d is number => typeof d === "number" && Number.isSafeInteger(d) && d >= 0)) throw fail(`tensor ${shown} has shape ${describeJson(shape)}`);
        const [b, e] = entry.data_offsets as unknown[];
        if (!(typeof b === "number" && typeof e === "number" && Number.isSafeInteger(b) && Number.isSafeInteger(e) && 0 <= b && b <= e)) {
          throw fail(`tensor ${shown} has offsets [${describeJson(b)}, ${describeJson(e)}]`);
        }
        // The element count can only be trusted once it is below the file size (no float rounding of huge products).
        let count = 1;
        for (const d of shape) {
          count *= d;
          if (count > dataSize) break;
        }
        if (count * ELEMENT_SIZE[dtype] !== e - b) {
          throw fail(`tensor ${shown} spans ${e - b} bytes but shape [${shape}] ${dtype} needs ${count > dataSize ? "more than the file holds" : count * ELEMENT_SIZE[dtype]}`);
        }
        if (e > dataSize) throw fail(`tensor ${shown} ends at byte ${dataStart + e} but the file has ${size} bytes (truncated?)`);
        tensors.set(name, { name, dtype, shape, begin: dataStart + b, end: dataStart + e, file });
        ranges.push([b, e, shown]);
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
