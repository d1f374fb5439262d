/**
 * The checkpoint campaign: copies of the tiny Qwen2-VL checkpoint with one file made hostile — its JSON files
 * (config, preprocessor, tokenizer, tokenizer config, generation config, chat template) mutated structurally, hostile
 * chat templates (unbounded loops, exponential strings), shifted token ids, damaged safetensors headers — each run
 * through the real CLI (`videolm run`) in its own process. A case passes when it answers (exit 0) or ends with one
 * line on stderr and exit 1, within the time limit, without "internal error", a stack trace or gigabytes of memory.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import type { SeededRng } from "../../synth/rng.js";
import { CHECKPOINT_MUTATIONS, linkCopy, replaceFile } from "../checkpoint-mutations.js";
import type { CampaignResult } from "./api.js";
import { cliCommand, type CliEntry } from "./server-process.js";
import { deepArray, mutateJson, mutateText, stringifyJson, type Json } from "./values.js";

const HOSTILE_TEMPLATES = [
  "{% for i in range(1000000000) %}{{ i }}{% endfor %}",
  "{% set s = 'x' %}{% for i in range(64) %}{% set s = s + s %}{% endfor %}{{ s }}",
  "{{ 'x' * 4294967296 }}",
  "{% for a in range(100000) %}{% for b in range(100000) %}.{% endfor %}{% endfor %}",
  "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
  "{{ messages[0]['content'] * 1000000000 }}",
  "{% for m in messages %}{{ raise_exception('no') }}{% endfor %}",
  "{{ ".repeat(5000) + "x" + " }}".repeat(5000),
  "{% if %}",
  "{{ range(10**12) | length }}",
];

function readJson(file: string): Json {
  return JSON.parse(fs.readFileSync(file, "utf8")) as Json;
}

function writeJson(file: string, value: Json): void {
  replaceFile(file, stringifyJson(value));
}

/**
 * Applies hostile edits to the checkpoint copy in `dir`: one of the named mutations of the hostile-checkpoint tests
 * (src/testing/checkpoint-mutations.ts), a random one, or both; returns what it did.
 */
export async function mutateCheckpoint(dir: string, rng: SeededRng): Promise<string> {
  const r = rng.next();
  if (r < 0.35) {
    const named = rng.pick(CHECKPOINT_MUTATIONS);
    await named.mutate(dir);
    return `named: ${named.name}`;
  }
  if (r < 0.45) {
    const named = rng.pick(CHECKPOINT_MUTATIONS);
    await named.mutate(dir);
    let extra: string;
    try {
      extra = randomCheckpointEdit(dir, rng);
    } catch (err) {
      // The named mutation left a file this editor cannot parse (e.g. a damaged safetensors header): keep it as is.
      extra = `no random edit (${(err as Error).message.split("\n")[0].slice(0, 80)})`;
    }
    return `named: ${named.name} + ${extra}`;
  }
  return randomCheckpointEdit(dir, rng);
}

/** One random hostile edit of a JSON file, the chat template, tokenizer.json or the safetensors header. */
function randomCheckpointEdit(dir: string, rng: SeededRng): string {
  const file = (name: string) => path.join(dir, name);
  const r = rng.next();
  const jsonEdit = (name: string, times = rng.int(1, 3)) => {
    let v: Json;
    try {
      v = readJson(file(name));
    } catch {
      // An earlier (named) mutation left text that is not JSON: damage the text further instead.
      const m = mutateText(fs.readFileSync(file(name), "utf8"), rng);
      replaceFile(file(name), m.data);
      return `${name}: text ${m.what}`;
    }
    const whats: string[] = [];
    for (let i = 0; i < times; i++) {
      const m = mutateJson(v, rng);
      v = m.value;
      whats.push(m.what);
    }
    writeJson(file(name), v);
    return `${name}: ${whats.join("; ").slice(0, 200)}`;
  };
  if (r < 0.3) return jsonEdit("config.json");
  if (r < 0.42) return jsonEdit("preprocessor_config.json");
  if (r < 0.47) return jsonEdit("generation_config.json");
  if (r < 0.52) return jsonEdit("tokenizer_config.json", 1);
  if (r < 0.6) {
    const template = rng.pick(HOSTILE_TEMPLATES);
    writeJson(file("chat_template.json"), { chat_template: template });
    return `chat_template.json: ${template.slice(0, 80)}`;
  }
  if (r < 0.66) {
    const m = mutateText(fs.readFileSync(file(rng.pick(["config.json", "preprocessor_config.json", "chat_template.json", "tokenizer_config.json"])), "utf8"), rng);
    const name = rng.pick(["config.json", "preprocessor_config.json", "tokenizer_config.json"]);
    replaceFile(file(name), m.data);
    return `${name}: text ${m.what}`;
  }
  if (r < 0.7) {
    const name = rng.pick(["config.json", "preprocessor_config.json", "tokenizer_config.json"]);
    writeJson(file(name), deepArray(rng.int(10_000, 300_000)));
    return `${name}: nested ${"deep"}`;
  }
  if (r < 0.8) {
    let tok: { added_tokens?: { id: number }[]; model?: Record<string, Json> };
    try {
      tok = readJson(file("tokenizer.json")) as typeof tok;
    } catch {
      tok = {};
    }
    if (!tok || typeof tok !== "object") tok = {};
    const op = rng.int(0, 3);
    if (op === 0 && tok.added_tokens) {
      const shift = rng.pick([1, -1, 1000, 10_000_000, -200_000]);
      for (const t of tok.added_tokens) t.id += shift;
      writeJson(file("tokenizer.json"), tok as Json);
      return `tokenizer.json: added token ids shifted by ${shift}`;
    }
    if (op === 1 && tok.added_tokens) {
      const t = rng.pick(tok.added_tokens);
      t.id = rng.pick([-1, 2 ** 31, 1e15, 0.5]);
      writeJson(file("tokenizer.json"), tok as Json);
      return `tokenizer.json: an added token id set to ${t.id}`;
    }
    if (op === 2 && tok.model) {
      tok.model[rng.pick(["vocab", "merges", "type"])] = rng.pick([null, 7, "Unknown", [], {}]);
      writeJson(file("tokenizer.json"), tok as Json);
      return "tokenizer.json: model field replaced";
    }
    const data = fs.readFileSync(file("tokenizer.json"));
    replaceFile(file("tokenizer.json"), data.subarray(0, rng.int(0, data.length)));
    return "tokenizer.json: truncated";
  }
  // safetensors: 8-byte little-endian header length, then the JSON header, then the data.
  const st = fs.readFileSync(file("model.safetensors"));
  const n = Number(st.readBigUInt64LE(0));
  const header = JSON.parse(st.subarray(8, 8 + n).toString("utf8")) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const names = Object.keys(header).filter((k) => k !== "__metadata__");
  const victim = rng.pick(names);
  const op = rng.int(0, 7);
  let what: string;
  let newHeader: Json = header as unknown as Json;
  if (op === 0) {
    const out = Buffer.from(st);
    out.writeBigUInt64LE(rng.pick([0n, 2n ** 63n, BigInt(st.length), 100_000_000_000n]), 0);
    replaceFile(file("model.safetensors"), out);
    return "model.safetensors: header length out of range";
  } else if (op === 1) {
    newHeader = null;
    what = "header is null";
  } else if (op === 2) {
    header[victim].dtype = rng.pick(["F64", "Q4", "", "I8", "BOOL"]);
    what = `${victim} dtype changed`;
  } else if (op === 3) {
    header[victim].shape = rng.pick([[-1], [2 ** 40, 2 ** 40], [], [0], [1.5]]);
    what = `${victim} shape changed`;
  } else if (op === 4) {
    header[victim].data_offsets = rng.pick([[0, 2 ** 53], [-8, 0], [10, 5], [0, 0]] as [number, number][]);
    what = `${victim} offsets changed`;
  } else if (op === 5) {
    delete header[victim];
    what = `${victim} removed`;
  } else if (op === 6) {
    newHeader = deepArray(rng.int(10_000, 200_000));
    what = "header nested deep";
  } else {
    replaceFile(file("model.safetensors"), st.subarray(0, rng.int(8, st.length - 1)));
    return "model.safetensors: truncated";
  }
  const json = Buffer.from(stringifyJson(newHeader));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  // Keep the data where it was when the header still fits in the old space (pad with spaces, as the format allows).
  const pad = n >= json.length ? Buffer.alloc(n - json.length, 0x20) : Buffer.alloc(0);
  if (pad.length) len.writeBigUInt64LE(BigInt(n));
  replaceFile(file("model.safetensors"), Buffer.concat([len, json, pad, st.subarray(8 + n)]));
  return `model.safetensors: ${what}`;
}

/** Records each child's peak memory (KiB) into $VIDEOLM_FUZZ_RSS when it exits. */
const RSS_PRELOAD = `import fs from "node:fs";
process.on("exit", () => {
  if (process.env.VIDEOLM_FUZZ_RSS) fs.appendFileSync(process.env.VIDEOLM_FUZZ_RSS, process.resourceUsage().maxRSS + "\\n");
});
`;

function runCli(argv: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<{ code: number | null; signal: string | null; stderr: string; ms: number; timedOut: boolean }> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, argv, { env, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    let timedOut = false;
    child.stderr!.setEncoding("utf8");
    child.stderr!.on("data", (s: string) => {
      stderr = (stderr + s).slice(-10_000);
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stderr, ms: performance.now() - t0, timedOut });
    });
  });
}

export async function checkpointCampaign(model: string, image: string, work: string, entry: CliEntry, rngFor: (i: number) => SeededRng, opts: { count: number; timeoutMs: number; maxRssBytes: number; firstSeed: number; onCase?: (i: number) => void }): Promise<CampaignResult & { maxCaseMs: number; maxRssBytes: number }> {
  const result = { count: 0, statuses: {} as Record<string, number>, findings: [] as CampaignResult["findings"], maxMs: 0, maxCaseMs: 0, maxRssBytes: 0 };
  const preload = path.join(work, "rss-preload.mjs");
  fs.writeFileSync(preload, RSS_PRELOAD);
  for (let i = 0; i < opts.count; i++) {
    const rng = rngFor(i);
    const dir = path.join(work, `ckpt-${opts.firstSeed + i}`);
    const cache = path.join(work, `cache-${opts.firstSeed + i}`);
    const rssFile = path.join(work, `rss-${opts.firstSeed + i}`);
    linkCopy(model, dir);
    const what = await mutateCheckpoint(dir, rng);
    const argv = [...cliCommand(entry), "run", "-q", "--model", dir, "--image", image, "--max-new-tokens", "2", "What is it?"];
    const env = { ...process.env, VIDEOLM_CACHE: cache, VIDEOLM_FUZZ_RSS: rssFile, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} --import=${pathToFileURL(preload).href}`.trim() };
    const r = await runCli(argv, env, opts.timeoutMs);
    const rss = fs.existsSync(rssFile) ? Math.max(...fs.readFileSync(rssFile, "utf8").trim().split("\n").map(Number)) * 1024 : 0;
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(cache, { recursive: true, force: true });
    fs.rmSync(rssFile, { force: true });
    result.count++;
    result.maxCaseMs = Math.max(result.maxCaseMs, r.ms);
    result.maxMs = result.maxCaseMs;
    result.maxRssBytes = Math.max(result.maxRssBytes, rss);
    const status = r.timedOut ? "timeout" : r.signal ? `signal ${r.signal}` : `exit ${r.code}`;
    result.statuses[status] = (result.statuses[status] ?? 0) + 1;
    const lines = r.stderr.trim().split("\n").filter(Boolean);
    const finding = (problem: string, detail?: string) => result.findings.push({ campaign: "checkpoint", seed: opts.firstSeed + i, problem, what, detail });
    if (r.timedOut) finding("hang", `no answer within ${opts.timeoutMs} ms`);
    else if (r.code !== 0 && r.code !== 1) finding("crash", `${status}: ${r.stderr.slice(-300)}`);
    else if (r.code === 1 && (lines.length !== 1 || /internal error|please report|\n\s+at /i.test(r.stderr))) finding("not-one-line", r.stderr.slice(0, 400));
    // The loader's last resort turns an unforeseen failure into one line; reaching it means a check is missing.
    else if (r.code === 1 && /could not be loaded: .*\(a corrupt or unsupported checkpoint\?\)/.test(r.stderr)) finding("unchecked", r.stderr.slice(0, 400));
    if (rss > opts.maxRssBytes) finding("memory", `peak ${(rss / 1024 ** 3).toFixed(2)} GiB`);
    opts.onCase?.(i);
  }
  return result;
}
