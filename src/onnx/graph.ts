/**
 * GraphBuilder: emits an ONNX model (ModelProto) from TypeScript, the way onnxruntime-genai's model builder
 * and llama.cpp's per-architecture graph functions do. Weights go to an external-data file as they are added
 * (so a multi-gigabyte checkpoint converts without holding all of it in memory); small constants are inlined
 * and deduplicated.
 *
 * Values in the graph are plain strings (tensor names). Node names follow the onnxruntime-genai convention
 * `/model/layers.0/attn/q_proj/MatMul`, produced from the current scope.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { ProtoWriter } from "./protobuf.js";

export type DType = "float32" | "float16" | "bfloat16" | "int64" | "int32" | "uint8" | "int8" | "bool";

const ONNX_DTYPE: Record<DType, number> = {
  float32: 1,
  uint8: 2,
  int8: 3,
  int32: 6,
  int64: 7,
  bool: 9,
  float16: 10,
  bfloat16: 16,
};

export const BYTES_PER_ELEMENT: Record<DType, number> = {
  float32: 4,
  uint8: 1,
  int8: 1,
  int32: 4,
  int64: 8,
  bool: 1,
  float16: 2,
  bfloat16: 2,
};

/** A float attribute whose value happens to be an integer (plain integers become INT attributes). */
export class FloatAttr {
  constructor(readonly value: number) {}
}
export const float = (v: number): FloatAttr => new FloatAttr(v);

/** A graph-valued attribute (the branches of `If`): a serialised GraphProto. */
export class GraphAttr {
  constructor(readonly graph: ProtoWriter) {}
}

export type AttrValue = number | FloatAttr | string | number[] | { floats: number[] } | GraphAttr;
export type Dim = number | string;

interface OpOptions {
  /** Number of outputs, or explicit output names. Default 1. */
  outputs?: number | string[];
  domain?: string;
  /** Last segment of the node name; defaults to the op type. */
  name?: string;
}

/** Appends weight bytes to a single external-data file, 64-byte aligned. */
class ExternalDataWriter {
  private fd: number;
  private offset = 0;
  constructor(readonly filePath: string) {
    this.fd = fs.openSync(filePath, "w");
  }
  append(bytes: Uint8Array): { offset: number; length: number } {
    const pad = (64 - (this.offset % 64)) % 64;
    if (pad > 0) {
      fs.writeSync(this.fd, new Uint8Array(pad));
      this.offset += pad;
    }
    const at = this.offset;
    let written = 0;
    // fs.writeSync takes at most 2^31 − 1 bytes per call (a 7B model's float32 embedding table is 2.2 GB).
    while (written < bytes.length) written += fs.writeSync(this.fd, bytes, written, Math.min(bytes.length - written, 1 << 30));
    this.offset += bytes.length;
    return { offset: at, length: bytes.length };
  }
  close(): void {
    fs.closeSync(this.fd);
  }
}

export class GraphBuilder {
  private nodes: ProtoWriter[] = [];
  /** While an `ifElse` branch is being built: the values its nodes produce. */
  private branchValues: Set<string> | null = null;
  private initializers: ProtoWriter[] = [];
  /** The initializers made by `weight()` (a branch built with `localWeights` keeps these, not the shared constants). */
  private weightProtos = new WeakSet<ProtoWriter>();
  private inputs: ProtoWriter[] = [];
  private outputs: ProtoWriter[] = [];
  private scopes: string[] = [];
  private usedNames = new Set<string>();
  private constantCache = new Map<string, string>();
  private counter = 0;
  private external: ExternalDataWriter | null = null;
  private externalFileName = "";
  readonly domains = new Set<string>();

  /**
   * @param graphName name of the graph
   * @param externalDataPath where weights added with `weight()` are written; when omitted they are inlined.
   */
  constructor(
    readonly graphName: string,
    externalDataPath?: string,
  ) {
    if (externalDataPath) {
      this.external = new ExternalDataWriter(externalDataPath);
      this.externalFileName = path.basename(externalDataPath);
    }
  }

  /** Runs `fn` with `name` appended to the node-name scope (`/model/layers.3/attn`). */
  scope<T>(name: string, fn: () => T): T {
    this.scopes.push(name);
    try {
      return fn();
    } finally {
      this.scopes.pop();
    }
  }

  private uniqueName(base: string): string {
    let name = base;
    while (this.usedNames.has(name)) name = `${base}_${++this.counter}`;
    this.usedNames.add(name);
    return name;
  }

  private scoped(leaf: string): string {
    return "/" + [...this.scopes, leaf].join("/");
  }

  input(name: string, dtype: DType, shape: Dim[]): string {
    this.usedNames.add(name);
    this.inputs.push(valueInfo(name, dtype, shape));
    return name;
  }

  /** Declares `value` a graph output named `name` (through an Identity when the names differ). */
  output(value: string, name: string, dtype: DType, shape: Dim[]): string {
    if (value !== name) {
      this.usedNames.add(name);
      this.nodes.push(nodeProto("Identity", [value], [name], this.scoped(`${name}/Identity`), {}, ""));
    }
    this.outputs.push(valueInfo(name, dtype, shape));
    return name;
  }

  /** A weight tensor: written to the external-data file (or inlined when there is none). */
  weight(name: string, dtype: DType, dims: number[], data: Uint8Array): string {
    const expected = dims.reduce((a, b) => a * b, 1) * BYTES_PER_ELEMENT[dtype];
    if (data.length !== expected) throw new Error(`weight ${name}: ${data.length} bytes for dims [${dims}] ${dtype}`);
    const unique = this.uniqueName(name);
    const t = new ProtoWriter().packedInts(1, dims).int(2, ONNX_DTYPE[dtype]).string(8, unique);
    if (this.external && data.length >= 1024) {
      const { offset, length } = this.external.append(data);
      const entry = (k: string, v: string) => new ProtoWriter().string(1, k).string(2, v);
      t.message(13, entry("location", this.externalFileName))
        .message(13, entry("offset", String(offset)))
        .message(13, entry("length", String(length)))
        .int(14, 1);
    } else {
      t.bytes(9, data);
    }
    this.initializers.push(t);
    this.weightProtos.add(t);
    return unique;
  }

  /** A small constant, deduplicated by value (shape + dtype + bytes). */
  constant(dtype: DType, dims: number[], values: ArrayLike<number> | ArrayLike<bigint>): string {
    const bytes = toBytes(dtype, values);
    const key = `${dtype}|${dims.join(",")}|${Buffer.from(bytes).toString("base64")}`;
    const cached = this.constantCache.get(key);
    if (cached) return cached;
    const name = this.uniqueName(`/const/${dtype}_${dims.join("x") || "scalar"}`);
    this.initializers.push(new ProtoWriter().packedInts(1, dims).int(2, ONNX_DTYPE[dtype]).string(8, name).bytes(9, bytes));
    this.constantCache.set(key, name);
    return name;
  }

  /** int64 1-D constant (shapes, axes, indices). */
  ints(values: number[]): string {
    return this.constant("int64", [values.length], values.map((v) => BigInt(v)));
  }
  /** float32 scalar constant. */
  scalar(value: number, dtype: DType = "float32"): string {
    return this.constant(dtype, [], [value]);
  }

  /** Adds one node; returns its output name (or names when `outputs` > 1). */
  op(opType: string, inputs: string[], attrs?: Record<string, AttrValue>, options?: OpOptions): string;
  op(opType: string, inputs: string[], attrs: Record<string, AttrValue>, options: OpOptions & { outputs: number | string[] }): string | string[];
  op(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, options: OpOptions = {}): string | string[] {
    const nodeName = this.uniqueName(this.scoped(options.name ?? opType));
    const domain = options.domain ?? "";
    if (domain) this.domains.add(domain);
    const outSpec = options.outputs ?? 1;
    const outputs =
      typeof outSpec === "number"
        ? Array.from({ length: outSpec }, (_, i) => this.uniqueName(`${nodeName}/output_${i}`))
        : outSpec.map((n) => (n === "" ? "" : this.uniqueName(n)));
    this.nodes.push(nodeProto(opType, inputs, outputs, nodeName, attrs, domain));
    for (const o of outputs) this.branchValues?.add(o);
    return typeof outSpec === "number" && outSpec === 1 ? outputs[0] : outputs;
  }

  /** Like `op` for multi-output nodes: always returns the array of output names. */
  opN(opType: string, inputs: string[], attrs: Record<string, AttrValue>, outputs: number | string[], domain = ""): string[] {
    const r = this.op(opType, inputs, attrs, { outputs, domain });
    return Array.isArray(r) ? r : [r];
  }

  /**
   * ONNX `If`: `cond` (bool, one element) picks which branch runs. Each branch builds its nodes with this builder
   * (they may read any value of the enclosing graph) and returns its result values, one per entry of `outputs`.
   * Constants a branch creates live in the enclosing graph, which ONNX subgraphs may reference.
   *
   * `localWeights`: the weights (`weight()`) created while building a branch, nested branches included, become that
   * branch graph's initializers instead of the top graph's. onnxruntime 1.30 prepacks a kernel's constant weights
   * (MatMulNBits) only when they are initializers of the kernel's own graph or of its direct parent: a kernel two
   * If levels below the top graph's initializer runs unpacked, ~100× slower (measured in src/onnx/moe.ts).
   */
  ifElse(
    cond: string,
    thenBranch: () => string[],
    elseBranch: () => string[],
    outputs: { dtype: DType; shape: Dim[] }[],
    options: { localWeights?: boolean } = {},
  ): string[] {
    const branch = (label: string, build: () => string[]): GraphAttr => {
      const outer = { nodes: this.nodes, values: this.branchValues, initializers: this.initializers };
      this.nodes = [];
      this.branchValues = new Set();
      if (options.localWeights) this.initializers = [];
      try {
        const results = build();
        // Weights stay in the branch; deduplicated constants go back out (other branches may share them).
        const local = options.localWeights ? this.initializers.filter((t) => this.weightProtos.has(t)) : [];
        if (options.localWeights) outer.initializers.push(...this.initializers.filter((t) => !this.weightProtos.has(t)));
        if (results.length !== outputs.length) throw new Error(`If ${label} branch returned ${results.length} values, expected ${outputs.length}`);
        // A branch output must be produced inside the branch: values of the enclosing graph pass through an Identity.
        const names = results.map((r) => (this.branchValues!.has(r) ? r : this.op("Identity", [r], {}, { name: `${label}/Identity` })));
        const graph = new ProtoWriter();
        for (const n of this.nodes) graph.message(1, n);
        graph.string(2, this.uniqueName(this.scoped(label)));
        for (const t of local) graph.message(5, t);
        names.forEach((n, i) => graph.message(12, valueInfo(n, outputs[i].dtype, outputs[i].shape)));
        return new GraphAttr(graph);
      } finally {
        this.nodes = outer.nodes;
        this.branchValues = outer.values;
        this.initializers = outer.initializers;
      }
    };
    const thenGraph = branch("then", thenBranch);
    const elseGraph = branch("else", elseBranch);
    return this.opN("If", [cond], { then_branch: thenGraph, else_branch: elseGraph }, outputs.length);
  }

  /**
   * ONNX `Loop` run `tripCount` times (int64 scalar value), no condition. `body(iter, carried)` builds the body with
   * this builder (it may read any value of the enclosing graph, e.g. Gather one chunk by `iter`) and returns the new
   * carried values followed by the per-iteration scan outputs. Returns the final carried values, then each scan
   * output stacked along a new leading axis: [tripCount, ...shape].
   *
   *   carried₀ ──▶ body(0) ──▶ carried₁ ──▶ body(1) ──▶ … ──▶ final carried
   *                  └─ scan₀        └─ scan₁          ──▶ stacked scans
   */
  loop(
    tripCount: string,
    carried: { init: string; dtype: DType; shape: Dim[] }[],
    scanOutputs: { dtype: DType; shape: Dim[] }[],
    body: (iter: string, carried: string[]) => string[],
  ): string[] {
    const outer = { nodes: this.nodes, values: this.branchValues };
    this.nodes = [];
    this.branchValues = new Set();
    let graph: ProtoWriter;
    try {
      const iter = this.uniqueName(this.scoped("loop/iter"));
      const cond = this.uniqueName(this.scoped("loop/cond"));
      const carriedIn = carried.map((_, i) => this.uniqueName(this.scoped(`loop/carried_${i}`)));
      const results = body(iter, carriedIn);
      if (results.length !== carried.length + scanOutputs.length) {
        throw new Error(`Loop body returned ${results.length} values, expected ${carried.length} carried + ${scanOutputs.length} scan`);
      }
      // Body outputs must be produced inside the body: anything else passes through an Identity.
      const names = results.map((r) => (this.branchValues!.has(r) ? r : this.op("Identity", [r], {}, { name: "loop/Identity" })));
      const condOut = this.op("Identity", [cond], {}, { name: "loop/cond_Identity" });
      graph = new ProtoWriter();
      for (const n of this.nodes) graph.message(1, n);
      graph.string(2, this.uniqueName(this.scoped("loop_body")));
      graph.message(11, valueInfo(iter, "int64", []));
      graph.message(11, valueInfo(cond, "bool", []));
      carriedIn.forEach((n, i) => graph.message(11, valueInfo(n, carried[i].dtype, carried[i].shape)));
      graph.message(12, valueInfo(condOut, "bool", []));
      const types = [...carried, ...scanOutputs];
      names.forEach((n, i) => graph.message(12, valueInfo(n, types[i].dtype, types[i].shape)));
    } finally {
      this.nodes = outer.nodes;
      this.branchValues = outer.values;
    }
    return this.opN("Loop", [tripCount, "", ...carried.map((c) => c.init)], { body: new GraphAttr(graph) }, carried.length + scanOutputs.length);
  }

  /** Serialises the model; closes the external-data file. */
  toBytes(opsetVersion = 21): Uint8Array {
    this.external?.close();
    this.external = null;
    const graph = new ProtoWriter();
    for (const n of this.nodes) graph.message(1, n);
    graph.string(2, this.graphName);
    for (const t of this.initializers) graph.message(5, t);
    for (const i of this.inputs) graph.message(11, i);
    for (const o of this.outputs) graph.message(12, o);
    const model = new ProtoWriter().int(1, 10).string(2, "videolm").string(3, "0.1").message(7, graph);
    model.message(8, new ProtoWriter().string(1, "").int(2, opsetVersion));
    for (const d of this.domains) model.message(8, new ProtoWriter().string(1, d).int(2, 1));
    return model.finish();
  }
}

function valueInfo(name: string, dtype: DType, shape: Dim[]): ProtoWriter {
  const shapeProto = new ProtoWriter();
  for (const d of shape) {
    const dim = new ProtoWriter();
    if (typeof d === "number") dim.int(1, d);
    else dim.string(2, d);
    shapeProto.message(1, dim);
  }
  const tensorType = new ProtoWriter().int(1, ONNX_DTYPE[dtype]).message(2, shapeProto);
  return new ProtoWriter().string(1, name).message(2, new ProtoWriter().message(1, tensorType));
}

function nodeProto(
  opType: string,
  inputs: string[],
  outputs: string[],
  name: string,
  attrs: Record<string, AttrValue>,
  domain: string,
): ProtoWriter {
  const n = new ProtoWriter();
  for (const i of inputs) n.string(1, i);
  for (const o of outputs) n.string(2, o);
  n.string(3, name).string(4, opType);
  for (const [key, v] of Object.entries(attrs)) n.message(5, attribute(key, v));
  if (domain) n.string(7, domain);
  return n;
}

function attribute(name: string, v: AttrValue): ProtoWriter {
  const a = new ProtoWriter().string(1, name);
  if (v instanceof FloatAttr) return a.float(2, v.value).int(20, 1);
  if (v instanceof GraphAttr) return a.message(6, v.graph).int(20, 5);
  if (typeof v === "number") return Number.isInteger(v) ? a.int(3, v).int(20, 2) : a.float(2, v).int(20, 1);
  if (typeof v === "string") return a.bytes(4, new TextEncoder().encode(v)).int(20, 3);
  if (Array.isArray(v)) return a.packedInts(8, v).int(20, 7);
  return a.packedFloats(7, v.floats).int(20, 6);
}

function toBytes(dtype: DType, values: ArrayLike<number> | ArrayLike<bigint>): Uint8Array {
  const n = values.length;
  switch (dtype) {
    case "float32":
      return new Uint8Array(Float32Array.from(values as ArrayLike<number>).buffer);
    case "int64":
      return new Uint8Array(BigInt64Array.from(Array.from(values as ArrayLike<bigint>, (x) => BigInt(x))).buffer);
    case "int32":
      return new Uint8Array(Int32Array.from(values as ArrayLike<number>).buffer);
    case "uint8":
    case "bool":
      return Uint8Array.from(values as ArrayLike<number>);
    case "int8":
      return new Uint8Array(Int8Array.from(values as ArrayLike<number>).buffer);
    default:
      throw new Error(`constant of dtype ${dtype} (${n} values) is not supported`);
  }
}
