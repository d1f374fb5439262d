/**
 * A Hugging Face checkpoint folder: config.json, single or sharded *.safetensors (+ model.safetensors.index.json),
 * tokenizer and processor files. Opening validates the folder and every safetensors header; tensors are read
 * lazily, one at a time, during conversion.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { VideolmError } from "../errors.js";
import { describeJson, readBoundedJsonObject } from "./json-file.js";
import { SafetensorsFile, type TensorInfo } from "./safetensors.js";

export interface Checkpoint {
  dir: string;
  config: Record<string, unknown>;
  /** Every tensor in the checkpoint, by its name in the files. */
  tensors: Map<string, TensorInfo>;
  /** The safetensors files, for cache keys (path, size, mtime). */
  files: string[];
}

/** Reads a JSON object file under the size and nesting limits of json-file.ts; `what` names it when missing. */
export function readJsonFile(file: string, what: string): Record<string, unknown> {
  return readBoundedJsonObject(file, what);
}

export function openCheckpoint(dir: string): Checkpoint {
  const resolved = path.resolve(dir);
  if (!fs.existsSync(resolved) || !fs.statSync(resolved).isDirectory()) {
    throw new VideolmError(`model folder not found: ${dir} (give a Hugging Face checkpoint folder with config.json and *.safetensors)`);
  }
  const config = readJsonFile(path.join(resolved, "config.json"), "model config");
  const files = listWeightFiles(resolved);
  const tensors = new Map<string, TensorInfo>();
  for (const file of files) {
    for (const [name, info] of SafetensorsFile.open(file).tensors) {
      const other = tensors.get(name);
      if (other) throw new VideolmError(`tensor ${name} appears in both ${other.file} and ${file}`);
      tensors.set(name, info);
    }
  }
  return { dir: resolved, config, tensors, files };
}

/** The weight files: those listed by model.safetensors.index.json when present, else every *.safetensors. */
function listWeightFiles(dir: string): string[] {
  const indexFile = path.join(dir, "model.safetensors.index.json");
  if (fs.existsSync(indexFile)) {
    const index = readJsonFile(indexFile, "weights index");
    const weightMap = index.weight_map;
    if (!weightMap || typeof weightMap !== "object" || Array.isArray(weightMap)) throw new VideolmError(`model.safetensors.index.json: weight_map must be an object (${indexFile})`);
    const shards = [...new Set(Object.values(weightMap as Record<string, unknown>))].sort();
    for (const shard of shards) {
      // A shard is a plain file name in the checkpoint folder: no paths that leave it.
      if (typeof shard !== "string" || !shard.endsWith(".safetensors") || shard !== path.basename(shard) || shard.startsWith(".")) {
        throw new VideolmError(`model.safetensors.index.json: weight_map lists ${describeJson(shard)}, not a *.safetensors file name in the checkpoint folder (${indexFile})`);
      }
      if (!fs.existsSync(path.join(dir, shard))) throw new VideolmError(`weight shard ${shard} listed in ${indexFile} is missing from ${dir}`);
    }
    return (shards as string[]).map((s) => path.join(dir, s));
  }
  const files = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith(".safetensors"))
    .sort();
  if (files.length === 0) {
    const bins = fs.readdirSync(dir).filter((f) => f.endsWith(".bin") || f.endsWith(".pt") || f.endsWith(".gguf"));
    const hint = bins.length ? ` (found ${bins.join(", ")}: only safetensors weights are supported)` : "";
    throw new VideolmError(`no *.safetensors weights in ${dir}${hint}`);
  }
  return files.map((f) => path.join(dir, f));
}
