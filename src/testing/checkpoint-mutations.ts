/**
 * Named hostile mutations of a checkpoint folder, for tests and fuzzing. Each `mutate(dir)` edits a *copy* of a
 * valid Qwen2-VL-style checkpoint (e.g. a `materializeTinyCheckpoint` folder copied to a scratch dir) in place;
 * `expect` matches the one-line VideolmError the loader must give (file and key named) — the loader must never
 * hang, allocate gigabytes, or report an internal error. Classes: JSON files (size, nesting, type), config.json
 * values (type, integer-ness, range, relations), preprocessor/generation configs, safetensors headers, tokenizer.json,
 * chat templates, and a valid-but-unsupported config (text head_dim not a multiple of 8).
 *
 *   for (const m of CHECKPOINT_MUTATIONS) { const d = copy(base); await m.mutate(d); expect(load(d)).rejects(m.expect) }
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { qwen2VlWeightSpec, writeSafetensors, type Qwen2VlShapeConfig } from "./tiny-checkpoint.js";

export interface CheckpointMutation {
  name: string;
  /** The class of input it attacks (for grouping in reports). */
  kind: "json" | "config" | "preprocessor" | "generation" | "safetensors" | "tokenizer" | "template" | "unsupported";
  mutate(dir: string): void | Promise<void>;
  /** The error message the loader must give. */
  expect: RegExp;
}

type Json = Record<string, unknown>;

/**
 * Replaces a file by a new one (unlink, then write): a base folder whose files are symlinked into the copy is never
 * written through. Every mutation writes this way, so a copy may symlink the base's files (see `linkCopy`).
 */
export function replaceFile(file: string, data: string | Buffer): void {
  fs.rmSync(file, { force: true });
  fs.writeFileSync(file, data);
}

/** A cheap copy of a checkpoint folder for mutation: a new folder of symlinks to the base's files. */
export function linkCopy(base: string, dir: string): string {
  fs.mkdirSync(dir, { recursive: true });
  for (const f of fs.readdirSync(base)) fs.symlinkSync(path.join(base, f), path.join(dir, f));
  return dir;
}

export function editJson(dir: string, file: string, edit: (value: Json) => Json | void): void {
  const p = path.join(dir, file);
  const value = JSON.parse(fs.readFileSync(p, "utf8")) as Json;
  replaceFile(p, JSON.stringify(edit(value) ?? value));
}

const editConfig = (dir: string, edit: (c: Json) => void) => editJson(dir, "config.json", edit);
const vision = (c: Json) => c.vision_config as Json;

/** Deeply nested JSON text `{"x":{"x":…1…}}` without building the value (JSON.stringify would overflow). */
export function nestedJsonText(depth: number): string {
  return '{"x":'.repeat(depth) + "1" + "}".repeat(depth);
}

/** The safetensors file's parts: header JSON text and the data after it. */
function splitSafetensors(file: string): { header: string; data: Buffer } {
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  return { header: buf.subarray(8, 8 + n).toString("utf8"), data: buf.subarray(8 + n) };
}

/** Rewrites model.safetensors with a new header text (and optionally other data); nothing is validated. */
export function writeRawSafetensors(dir: string, header: string, data?: Buffer, declaredLength?: bigint): void {
  const file = path.join(dir, "model.safetensors");
  const old = splitSafetensors(file);
  const h = Buffer.from(header, "utf8");
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(declaredLength ?? BigInt(h.length));
  replaceFile(file, Buffer.concat([len, h, data ?? old.data]));
}

/** Edits the parsed safetensors header (entries keep their data). */
export function editSafetensorsHeader(dir: string, edit: (header: Record<string, Json>) => void): void {
  const old = splitSafetensors(path.join(dir, "model.safetensors"));
  const header = JSON.parse(old.header) as Record<string, Json>;
  edit(header);
  writeRawSafetensors(dir, JSON.stringify(header), old.data);
}

function firstTensor(header: Record<string, Json>): Json {
  return header[Object.keys(header).find((k) => k !== "__metadata__")!];
}

function setChatTemplate(dir: string, template: string): void {
  replaceFile(path.join(dir, "chat_template.json"), JSON.stringify({ chat_template: template }));
}

const addedTokens = (t: Json) => t.added_tokens as { id: number; content: string }[];

/**
 * A valid Qwen2-VL config whose text head_dim is 12 (hidden 24, 2 heads): transformers runs it; videolm refuses it
 * at load (onnxruntime's GroupQueryAttention needs head_dim % 8 == 0). Weights are regenerated to match.
 */
async function headDim12(dir: string): Promise<void> {
  editConfig(dir, (c) => {
    c.hidden_size = 24;
    c.num_attention_heads = 2;
    c.num_key_value_heads = 1;
    (c.rope_scaling as Json).mrope_section = [2, 2, 2];
    vision(c).hidden_size = 24;
  });
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8")) as Qwen2VlShapeConfig;
  fs.rmSync(path.join(dir, "model.safetensors"), { force: true });
  await writeSafetensors(qwen2VlWeightSpec(cfg, 7), path.join(dir, "model.safetensors"));
}

export const CHECKPOINT_MUTATIONS: CheckpointMutation[] = [
  // ---- JSON files: size, nesting, top-level type ----
  {
    name: "config nested 200000 deep",
    kind: "json",
    mutate: (d) => {
      const text = fs.readFileSync(path.join(d, "config.json"), "utf8");
      replaceFile(path.join(d, "config.json"), text.replace(/^\{/, `{"junk":${nestedJsonText(200_000)},`));
    },
    expect: /config\.json: junk(\.x)+ nests deeper than 64 levels/,
  },
  { name: "config is only nesting", kind: "json", mutate: (d) => replaceFile(path.join(d, "config.json"), nestedJsonText(200_000)), expect: /config\.json: x(\.x)+ nests deeper than 64 levels/ },
  {
    name: "config with a deep extra key",
    kind: "json",
    mutate: (d) => {
      const text = fs.readFileSync(path.join(d, "config.json"), "utf8");
      replaceFile(path.join(d, "config.json"), text.replace(/^\{/, `{"junk":${nestedJsonText(100)},`));
    },
    expect: /config\.json: junk(\.x)+ nests deeper than 64 levels/,
  },
  { name: "config is an array", kind: "json", mutate: (d) => replaceFile(path.join(d, "config.json"), "[1,2,3]"), expect: /config\.json: expected a JSON object at the top level/ },
  { name: "config is null", kind: "json", mutate: (d) => replaceFile(path.join(d, "config.json"), "null"), expect: /config\.json: expected a JSON object at the top level .*got null/ },
  { name: "config is not JSON", kind: "json", mutate: (d) => replaceFile(path.join(d, "config.json"), "{model_type: qwen2_vl"), expect: /config\.json: .* is not valid JSON/ },
  {
    name: "config.json over 16 MiB",
    kind: "json",
    mutate: (d) => editConfig(d, (c) => void (c.padding = "x".repeat(17 * 1024 * 1024))),
    expect: /config\.json: the file has \d+ bytes, more than the 16777216/,
  },
  { name: "tokenizer.json nested deep", kind: "json", mutate: (d) => replaceFile(path.join(d, "tokenizer.json"), nestedJsonText(200_000)), expect: /tokenizer\.json: x(\.x)+ nests deeper than 64 levels/ },
  { name: "tokenizer_config.json is a string", kind: "json", mutate: (d) => replaceFile(path.join(d, "tokenizer_config.json"), '"hello"'), expect: /tokenizer_config\.json: expected a JSON object/ },
  {
    name: "weight index escapes the folder",
    kind: "json",
    mutate: (d) => replaceFile(path.join(d, "model.safetensors.index.json"), JSON.stringify({ weight_map: { "model.norm.weight": "../../../etc/passwd" } })),
    expect: /model\.safetensors\.index\.json: weight_map lists "\.\.\/\.\.\/\.\.\/etc\/passwd", not a \*\.safetensors file name/,
  },
  // ---- config.json values ----
  { name: "temporal_patch_size 0", kind: "config", mutate: (d) => editConfig(d, (c) => void (vision(c).temporal_patch_size = 0)), expect: /config\.json: vision_config\.temporal_patch_size must be an integer in \[1, 16\] \(got 0\)/ },
  { name: "absurd patch_size", kind: "config", mutate: (d) => editConfig(d, (c) => void (vision(c).patch_size = 1e9)), expect: /config\.json: vision_config\.patch_size must be an integer in \[1, 256\] \(got 1000000000\)/ },
  { name: "fractional patch_size", kind: "config", mutate: (d) => editConfig(d, (c) => void (vision(c).patch_size = 14.5)), expect: /config\.json: vision_config\.patch_size must be an integer/ },
  { name: "spatial_merge_size 0", kind: "config", mutate: (d) => editConfig(d, (c) => void (vision(c).spatial_merge_size = 0)), expect: /config\.json: vision_config\.spatial_merge_size must be an integer in \[1, 16\]/ },
  { name: "hidden_size as a string", kind: "config", mutate: (d) => editConfig(d, (c) => void (c.hidden_size = "32")), expect: /config\.json: hidden_size must be an integer in \[1, 65536\] \(got "32"\)/ },
  { name: "num_attention_heads 0", kind: "config", mutate: (d) => editConfig(d, (c) => void (c.num_attention_heads = 0)), expect: /config\.json: num_attention_heads must be an integer in \[1, 1024\] \(got 0\)/ },
  { name: "hidden_size not divisible by heads", kind: "config", mutate: (d) => editConfig(d, (c) => void (c.num_attention_heads = 3)), expect: /config\.json: hidden_size 32 must be a multiple of num_attention_heads 3/ },
  { name: "kv heads do not divide heads", kind: "config", mutate: (d) => editConfig(d, (c) => void ((c.num_attention_heads = 4), (c.num_key_value_heads = 3))), expect: /config\.json: num_attention_heads 4 is not a multiple of num_key_value_heads 3/ },
  { name: "more kv heads than heads", kind: "config", mutate: (d) => editConfig(d, (c) => void (c.num_key_value_heads = 64)), expect: /config\.json: num_key_value_heads must be an integer in \[1, 2\] \(got 64\)/ },
  { name: "mrope_section sums wrong", kind: "config", mutate: (d) => editConfig(d, (c) => void ((c.rope_scaling as Json).mrope_section = [2, 3, 4])), expect: /config\.json: rope_scaling\.mrope_section \[2,3,4\] must sum to head_dim\/2 = 8/ },
  { name: "mrope_section negative", kind: "config", mutate: (d) => editConfig(d, (c) => void ((c.rope_scaling as Json).mrope_section = [-2, 5, 5])), expect: /config\.json: rope_scaling\.mrope_section must list 3 integers in \[0, 8\]/ },
  { name: "rope_scaling null", kind: "config", mutate: (d) => editConfig(d, (c) => void (c.rope_scaling = null)), expect: /config\.json: rope_scaling\.mrope_section must list 3 integers/ },
  { name: "rope_theta 0", kind: "config", mutate: (d) => editConfig(d, (c) => void (c.rope_theta = 0)), expect: /config\.json: rope_theta must be a number in \(0, / },
  { name: "rms_norm_eps negative", kind: "config", mutate: (d) => editConfig(d, (c) => void (c.rms_norm_eps = -1)), expect: /config\.json: rms_norm_eps must be a number in \(0, 1\]/ },
  { name: "vocab_size 2^40", kind: "config", mutate: (d) => editConfig(d, (c) => void (c.vocab_size = 2 ** 40)), expect: /config\.json: vocab_size must be an integer in \[1, 16777216\]/ },
  { name: "vocab_size smaller than the weights", kind: "config", mutate: (d) => editConfig(d, (c) => void (c.vocab_size = 151700)), expect: /config\.json: vocab_size 151700 × hidden_size 32 does not match tensor model\.embed_tokens\.weight \[151936,32\]/ },
  { name: "image_token_id outside the vocabulary", kind: "config", mutate: (d) => editConfig(d, (c) => void (c.image_token_id = 10 ** 7)), expect: /config\.json: image_token_id must be an integer in \[0, 151935\] \(got 10000000\)/ },
  { name: "eos_token_id a string", kind: "config", mutate: (d) => editConfig(d, (c) => void (c.eos_token_id = "</s>")), expect: /config\.json: eos_token_id must list .*integers/ },
  { name: "num_hidden_layers 10^9", kind: "config", mutate: (d) => editConfig(d, (c) => void (c.num_hidden_layers = 1e9)), expect: /config\.json: num_hidden_layers must be an integer in \[1, 1024\]/ },
  { name: "max_position_embeddings negative", kind: "config", mutate: (d) => editConfig(d, (c) => void (c.max_position_embeddings = -5)), expect: /config\.json: max_position_embeddings must be an integer in \[1, 16777216\]/ },
  { name: "unknown hidden_act", kind: "config", mutate: (d) => editConfig(d, (c) => void (c.hidden_act = "relu6")), expect: /config\.json: hidden_act must be one of silu, quick_gelu, gelu, gelu_pytorch_tanh \(got "relu6"\)/ },
  { name: "vision_config a list", kind: "config", mutate: (d) => editConfig(d, (c) => void (c.vision_config = [1])), expect: /config\.json: vision_config must be an object/ },
  { name: "vision heads do not divide width", kind: "config", mutate: (d) => editConfig(d, (c) => void (vision(c).num_heads = 3)), expect: /config\.json: vision_config\.embed_dim 32 is not a multiple of vision_config\.num_heads 3/ },
  { name: "merger width differs from text width", kind: "config", mutate: (d) => editConfig(d, (c) => void (vision(c).hidden_size = 64)), expect: /config\.json: vision_config\.hidden_size 64 \(the merger output\) must equal the text hidden_size 32/ },
  { name: "patch_size disagrees with the weights", kind: "config", mutate: (d) => editConfig(d, (c) => void (vision(c).patch_size = 16)), expect: /config\.json: vision_config .* does not match tensor visual\.patch_embed\.proj\.weight/ },
  // ---- preprocessor_config.json ----
  { name: "absurd max_pixels", kind: "preprocessor", mutate: (d) => editJson(d, "preprocessor_config.json", (p) => void (p.max_pixels = 1e15)), expect: /preprocessor_config\.json: max_pixels must be an integer in \[1, 67108864\] \(got 1000000000000000\)/ },
  { name: "min_pixels above max_pixels", kind: "preprocessor", mutate: (d) => editJson(d, "preprocessor_config.json", (p) => void ((p.min_pixels = 1 << 20), (p.max_pixels = 1 << 10))), expect: /preprocessor_config\.json: min_pixels 1048576 must not exceed max_pixels 1024/ },
  { name: "image_std zero", kind: "preprocessor", mutate: (d) => editJson(d, "preprocessor_config.json", (p) => void (p.image_std = [0, 0, 0])), expect: /preprocessor_config\.json: image_std must list 3 positive numbers/ },
  { name: "image_mean a string", kind: "preprocessor", mutate: (d) => editJson(d, "preprocessor_config.json", (p) => void (p.image_mean = "imagenet")), expect: /preprocessor_config\.json: image_mean must list 3 numbers/ },
  // ---- generation_config.json ----
  { name: "generation eos outside the vocabulary", kind: "generation", mutate: (d) => editJson(d, "generation_config.json", (g) => void (g.eos_token_id = [151645, -1])), expect: /generation_config\.json: eos_token_id must list .*integers in \[0, 151935\]/ },
  { name: "generation temperature negative", kind: "generation", mutate: (d) => editJson(d, "generation_config.json", (g) => void ((g.do_sample = true), (g.temperature = -1))), expect: /generation_config\.json: .*temperature/ },
  // ---- safetensors headers ----
  { name: "null safetensors header", kind: "safetensors", mutate: (d) => writeRawSafetensors(d, "null"), expect: /corrupt safetensors file .*model\.safetensors: header is null, not a JSON object of tensors/ },
  { name: "safetensors header an array", kind: "safetensors", mutate: (d) => writeRawSafetensors(d, "[]"), expect: /corrupt safetensors file .*: header is \[\], not a JSON object/ },
  { name: "safetensors header length 2^63", kind: "safetensors", mutate: (d) => writeRawSafetensors(d, "{}", undefined, 1n << 63n), expect: /corrupt safetensors file .*: header length 9223372036854775808 exceeds the file size/ },
  { name: "safetensors entry null", kind: "safetensors", mutate: (d) => editSafetensorsHeader(d, (h) => void (h["model.norm.weight"] = null as unknown as Json)), expect: /corrupt safetensors file .*: tensor model\.norm\.weight has a malformed header entry \(null\)/ },
  { name: "safetensors negative shape", kind: "safetensors", mutate: (d) => editSafetensorsHeader(d, (h) => void (firstTensor(h).shape = [-1, 32])), expect: /corrupt safetensors file .*: tensor .* has shape \[-1, 32\]/ },
  { name: "safetensors fractional shape", kind: "safetensors", mutate: (d) => editSafetensorsHeader(d, (h) => void (firstTensor(h).shape = [0.5, 32])), expect: /corrupt safetensors file .*: tensor .* has shape \[0\.5, 32\]/ },
  { name: "safetensors huge shape", kind: "safetensors", mutate: (d) => editSafetensorsHeader(d, (h) => void (firstTensor(h).shape = [1e9, 1e9, 1e9])), expect: /corrupt safetensors file .*: tensor .* spans \d+ bytes but shape \[1000000000,1000000000,1000000000\] BF16 needs more than the file holds/ },
  { name: "safetensors offsets past the end", kind: "safetensors", mutate: (d) => editSafetensorsHeader(d, (h) => void (h["model.norm.weight"].data_offsets = [2 ** 40, 2 ** 40 + 64])), expect: /corrupt safetensors file .*: tensor model\.norm\.weight ends at byte \d+ but the file has \d+ bytes/ },
  { name: "safetensors offsets reversed", kind: "safetensors", mutate: (d) => editSafetensorsHeader(d, (h) => void (h["model.norm.weight"].data_offsets = [64, 0])), expect: /corrupt safetensors file .*: tensor model\.norm\.weight has offsets \[64, 0\]/ },
  { name: "safetensors offsets a string", kind: "safetensors", mutate: (d) => editSafetensorsHeader(d, (h) => void (h["model.norm.weight"].data_offsets = "0-64" as unknown as Json)), expect: /corrupt safetensors file .*: tensor model\.norm\.weight has data_offsets "0-64", not \[begin, end\]/ },
  {
    name: "safetensors overlapping tensors",
    kind: "safetensors",
    mutate: (d) =>
      editSafetensorsHeader(d, (h) => {
        const a = h["model.norm.weight"];
        const b = h["model.layers.0.input_layernorm.weight"];
        b.data_offsets = a.data_offsets;
      }),
    expect: /corrupt safetensors file .*: tensors .* and .* overlap/,
  },
  { name: "safetensors dtype an object", kind: "safetensors", mutate: (d) => editSafetensorsHeader(d, (h) => void (h["model.norm.weight"].dtype = { x: 1 } as unknown as Json)), expect: /tensor model\.norm\.weight in .* has dtype an object; videolm reads BF16, F16 and F32/ },
  { name: "safetensors dtype toString", kind: "safetensors", mutate: (d) => editSafetensorsHeader(d, (h) => void (h["model.norm.weight"].dtype = "toString")), expect: /tensor model\.norm\.weight in .* has dtype toString; videolm reads BF16/ },
  // ---- tokenizer.json ----
  {
    name: "shifted added-token ids",
    kind: "tokenizer",
    mutate: (d) => editJson(d, "tokenizer.json", (t) => void addedTokens(t).forEach((a) => (a.id += 1))),
    expect: /tokenizer\.json: <\|image_pad\|> has id 151656 but config\.json image_token_id is 151655/,
  },
  {
    name: "duplicate added-token ids",
    kind: "tokenizer",
    mutate: (d) => editJson(d, "tokenizer.json", (t) => void (addedTokens(t)[1].id = addedTokens(t)[0].id)),
    expect: /tokenizer\.json: added_tokens\[1\] gives id \d+ to "[^"]+", already used by/,
  },
  { name: "negative added-token id", kind: "tokenizer", mutate: (d) => editJson(d, "tokenizer.json", (t) => void (addedTokens(t)[0].id = -1)), expect: /tokenizer\.json: added_tokens\[0\]\.id must be an integer in \[0, 16777216\) \(got -1\)/ },
  { name: "added_tokens not a list", kind: "tokenizer", mutate: (d) => editJson(d, "tokenizer.json", (t) => void (t.added_tokens = { a: 1 })), expect: /tokenizer\.json: added_tokens must be a list \(got an object\)/ },
  { name: "tokenizer without a model", kind: "tokenizer", mutate: (d) => editJson(d, "tokenizer.json", (t) => void delete t.model), expect: /tokenizer\.json has no "model" section/ },
  { name: "added token beyond vocab_size", kind: "tokenizer", mutate: (d) => editJson(d, "tokenizer.json", (t) => void addedTokens(t).push({ ...addedTokens(t)[0], id: 200000, content: "<|extra|>" })), expect: /tokenizer\.json: token id 200000 \("<\|extra\|>"\) is outside config\.json vocab_size 151936/ },
  // ---- chat templates ----
  {
    name: "template with a huge loop",
    kind: "template",
    mutate: (d) => setChatTemplate(d, "{% for i in range(99999) %}{% for j in range(99999) %}{{ 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' }}{% endfor %}{% endfor %}"),
    expect: /chat template from .*chat_template\.json was stopped: it took more than \d+ evaluation steps/,
  },
  { name: "template with range(10^12)", kind: "template", mutate: (d) => setChatTemplate(d, "{% for i in range(10**12) %}x{% endfor %}"), expect: /chat template from .*chat_template\.json was stopped: range\(\) of 1000000000000 items exceeds the limit/ },
  { name: "template recursing forever", kind: "template", mutate: (d) => setChatTemplate(d, "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}"), expect: /chat template from .*chat_template\.json was stopped: it nested deeper than \d+ levels/ },
  {
    name: "template doubling a string",
    kind: "template",
    mutate: (d) => setChatTemplate(d, "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s }}"),
    expect: /chat template from .*chat_template\.json was stopped: it built a string of \d+ characters/,
  },
  {
    name: "template over 1 MiB in tokenizer_config.json",
    kind: "template",
    mutate: (d) => {
      fs.rmSync(path.join(d, "chat_template.json"));
      editJson(d, "tokenizer_config.json", (t) => void (t.chat_template = "x".repeat(1024 * 1024 + 1)));
    },
    expect: /chat template in .*tokenizer_config\.json has 1048577 characters, more than the 1048576/,
  },
  {
    name: "chat_template.jinja over 1 MiB",
    kind: "template",
    mutate: (d) => {
      fs.rmSync(path.join(d, "chat_template.json"));
      replaceFile(path.join(d, "chat_template.jinja"), "x".repeat(1024 * 1024 + 1));
    },
    expect: /chat_template\.jinja: the file has 1048577 bytes, more than the 1048576/,
  },
  { name: "template that does not parse", kind: "template", mutate: (d) => setChatTemplate(d, "{% for %}"), expect: /chat template in .*chat_template\.json does not parse/ },
  { name: "template nested 100000 parentheses", kind: "template", mutate: (d) => setChatTemplate(d, "{{ " + "(".repeat(100_000) + "1" + ")".repeat(100_000) + " }}"), expect: /chat template in .*chat_template\.json does not parse/ },
  // ---- valid for transformers, refused by videolm ----
  { name: "text head_dim 12", kind: "unsupported", mutate: headDim12, expect: /config\.json: head_dim 12 \(hidden_size \/ num_attention_heads\) is not a multiple of 8; videolm's decoder attention runs on onnxruntime's GroupQueryAttention/ },
];

/** The mutations issue 14 names (hostile checkpoints), run against the real CLI too. */
export const ISSUE_14_MUTATIONS = [
  "template with a huge loop",
  "temporal_patch_size 0",
  "shifted added-token ids",
  "absurd max_pixels",
  "absurd patch_size",
  "null safetensors header",
  "config nested 200000 deep",
  "text head_dim 12",
];
