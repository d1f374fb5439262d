// The MoE reference fixtures of issue 16 are self-consistent and reproducible from TypeScript:
//   - test/fixtures/qwen3_5_moe/qwen3_5_moe-tiny{,-per-expert}/ (tools/oracle/record_qwen3_5_moe.py, transformers 5.18)
//   - test/fixtures/qwen3_vl_moe/qwen3_vl_moe-tiny/ (tools/oracle/record_qwen3_vl_moe.py, transformers 4.57.6)
// weights.json equals the TS spec ports, the TS generator writes the model.safetensors whose sha256 Python recorded,
// the per-expert checkpoint holds the fused one's weights (and golden outputs), the prompt side equals the dense
// fixtures' (same processor, template and media), and the recorded routing is well formed and not degenerate.
// No engine code is tested here: the golden logits / greedy tokens are for the family tests.
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  bf16BitsToFloat32,
  generateWeights,
  materializeTinyCheckpoint,
  qwen3_5MoeWeightSpec,
  qwen3VlMoeSparseLayers,
  qwen3VlMoeWeightSpec,
  readWeightSpec,
  type Qwen3_5MoeShapeConfig,
  type Qwen3VlMoeShapeConfig,
  type WeightSpec,
} from "../src/testing/tiny-checkpoint.js";

const FIXTURES = path.join(import.meta.dirname, "fixtures");
const QWEN3_5_MOE = path.join(FIXTURES, "qwen3_5_moe", "qwen3_5_moe-tiny");
const QWEN3_5_MOE_PER_EXPERT = path.join(FIXTURES, "qwen3_5_moe", "qwen3_5_moe-tiny-per-expert");
const QWEN3_VL_MOE = path.join(FIXTURES, "qwen3_vl_moe", "qwen3_vl_moe-tiny");
const CASES = ["text", "image", "video", "video-odd"];
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "moe-fixtures-test-"));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

interface RouterLayer {
  layer: number;
  topk_ids: number[][];
  topk_weights: number[][];
  expert_counts: number[];
  distinct: number;
  min_topk_gap: number;
}
interface Router {
  top_k: number;
  num_experts: number;
  layers: RouterLayer[];
  distinct_experts: number;
  min_topk_gap_all_calls: number;
}
type Top = [number, number][];
interface Case {
  input_ids: number[];
  num_tokens: number;
  mm_token_type_ids?: number[];
  image_grid_thw: number[][] | null;
  video_grid_thw: number[][] | null;
  position_ids: number[][];
  rope_deltas: number;
  expanded_prompt: string;
  logits: { position: number; max_abs: number; top20: Top }[];
  greedy: {
    new_tokens: number[];
    distinct: number;
    min_top1_margin: number;
    steps: { step: number; top20: Top }[];
    full_forward_last: { max_abs: number; top20: Top; max_abs_diff_vs_cached: number };
  };
  router: Router;
  decoder_state?: unknown;
}
interface Golden {
  format: string;
  checkpoint: {
    name: string;
    expert_layout?: string;
    model_safetensors_sha256: string;
    model_safetensors_bytes: number;
    num_parameters: number;
    ignored_on_load?: string[];
    moe_layers?: number[];
  };
  reference: Record<string, unknown>;
  moe_block: MoeBlockCase;
  cases: Record<string, Case>;
}
interface MoeBlockCase {
  layer: number;
  shape: number[];
  input: number[];
  output: number[];
  topk_ids: number[][];
  topk_weights: number[][];
  min_topk_gap: number;
}
const readJson = <T>(file: string): T => JSON.parse(fs.readFileSync(file, "utf8")) as T;
const golden = (dir: string) => readJson<Golden>(path.join(dir, "golden.json"));
const sha256 = (file: string) => createHash("sha256").update(fs.readFileSync(file)).digest("hex");
// Byte equality of bf16 arrays (expect(...).toEqual on multi-million-element typed arrays is very slow).
const sameBits = (a: Uint16Array | undefined, b: Uint16Array) =>
  a !== undefined && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

async function expectRecordedSha(dir: string): Promise<void> {
  const g = golden(dir);
  const out = await materializeTinyCheckpoint(dir, path.join(tmpRoot, path.basename(dir)));
  const file = path.join(out, "model.safetensors");
  expect(fs.statSync(file).size).toBe(g.checkpoint.model_safetensors_bytes);
  expect(sha256(file)).toBe(g.checkpoint.model_safetensors_sha256);
  const spec = readWeightSpec(dir);
  expect(spec.tensors.reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0)).toBe(g.checkpoint.num_parameters);
}

/** Routing well formed (ids, weights, counts agree) and not degenerate (several experts, several expert sets). */
function expectRouting(c: Case, layers: number[], numExperts: number, topK: number): void {
  const r = c.router;
  expect([r.top_k, r.num_experts]).toEqual([topK, numExperts]);
  expect(r.layers.map((l) => l.layer)).toEqual(layers);
  const union = new Set<number>();
  for (const l of r.layers) {
    expect(l.topk_ids.length).toBe(c.num_tokens);
    const counts = new Array<number>(numExperts).fill(0);
    l.topk_ids.forEach((ids, t) => {
      expect(new Set(ids).size).toBe(topK);
      for (const e of ids) {
        expect(Number.isInteger(e) && e >= 0 && e < numExperts).toBe(true);
        counts[e] += 1;
        union.add(e);
      }
      const w = l.topk_weights[t];
      expect(w.length).toBe(topK);
      expect(Math.abs(w.reduce((a, b) => a + b, 0) - 1)).toBeLessThan(1e-6);
      for (let k = 1; k < topK; k++) expect(w[k - 1]).toBeGreaterThanOrEqual(w[k]);
    });
    expect(l.expert_counts).toEqual(counts);
    expect(l.distinct).toBe(counts.filter((n) => n > 0).length);
    expect(l.min_topk_gap).toBeGreaterThanOrEqual(r.min_topk_gap_all_calls);
    // Different tokens pick different experts: several distinct expert sets in every layer.
    expect(new Set(l.topk_ids.map((ids) => [...ids].sort().join(","))).size).toBeGreaterThanOrEqual(3);
  }
  expect(union.size).toBe(r.distinct_experts);
  expect(r.distinct_experts).toBeGreaterThanOrEqual(3);
  // No near tie between the k-th and (k+1)-th router logit anywhere (prompt, decode steps, full forward).
  expect(r.min_topk_gap_all_calls).toBeGreaterThanOrEqual(1e-3);
}

/** Greedy tokens, logits rows and the full-forward check agree with each other. */
function expectGreedyConsistent(c: Case): void {
  const g = c.greedy;
  expect(g.new_tokens.length).toBe(12);
  expect(new Set(g.new_tokens).size).toBe(g.distinct);
  expect(g.min_top1_margin).toBeGreaterThanOrEqual(5e-3);
  const last = c.logits.find((l) => l.position === c.num_tokens - 1)!;
  expect(last.top20[0][0]).toBe(g.new_tokens[0]);
  expect(g.steps.map((s) => s.step)).toEqual([0, 11]);
  expect(g.steps[0].top20[0][0]).toBe(g.new_tokens[0]);
  expect(g.steps[1].top20[0][0]).toBe(g.new_tokens[11]);
  expect(g.full_forward_last.top20[0][0]).toBe(g.new_tokens[11]);
  expect(g.full_forward_last.max_abs_diff_vs_cached).toBeLessThan(1e-4 * Math.max(1, g.full_forward_last.max_abs));
}

/**
 * A plain float64 MoE block from the fixture's generated weights (docs/qwen3_5-reference.md §10, §13): router softmax
 * -> top-k -> renormalise; experts SiLU(gate)·up -> down, in the 5.x `linear` layout (gate_up_proj [E, 2·Im, h],
 * down_proj [E, h, Im]) or Qwen3-VL-MoE's `transposed` one ([E, h, 2·Im], [E, Im, h]); optional shared expert with
 * its sigmoid gate.
 */
function moeBlockReference(spec: WeightSpec, pre: string, c: MoeBlockCase, layout: "linear" | "transposed", sharedExpert: boolean) {
  const names = new Set([`${pre}.mlp.gate.weight`, `${pre}.mlp.experts.gate_up_proj`, `${pre}.mlp.experts.down_proj`]);
  if (sharedExpert) for (const p of ["gate_proj", "up_proj", "down_proj"]) names.add(`${pre}.mlp.shared_expert.${p}.weight`);
  if (sharedExpert) names.add(`${pre}.mlp.shared_expert_gate.weight`);
  const gen = generateWeights({ ...spec, tensors: spec.tensors.filter((t) => names.has(t.name)) });
  const w = (name: string) => ({ v: bf16BitsToFloat32(gen.get(`${pre}.mlp.${name}`)!.data), shape: gen.get(`${pre}.mlp.${name}`)!.shape });
  const router = w("gate.weight");
  const gu = w("experts.gate_up_proj");
  const dn = w("experts.down_proj");
  const [, T, h] = c.shape;
  const E = router.shape[0];
  const im = layout === "linear" ? gu.shape[1] / 2 : gu.shape[2] / 2;
  const k = c.topk_ids[0].length;
  const silu = (z: number) => z / (1 + Math.exp(-z));
  const y = new Float64Array(T * h);
  const ids: number[][] = [];
  for (let t = 0; t < T; t++) {
    const x = c.input.slice(t * h, (t + 1) * h).map(Math.fround);
    const logits = Array.from({ length: E }, (_, e) => x.reduce((a, xi, i) => a + router.v[e * h + i] * xi, 0));
    const mx = Math.max(...logits);
    const p = logits.map((l) => Math.exp(l - mx));
    const top = [...p.keys()].sort((a, b) => p[b] - p[a]).slice(0, k);
    ids.push(top);
    const norm = top.reduce((a, e) => a + p[e], 0);
    for (const e of top) {
      const act = Array.from({ length: im }, (_, r) => {
        let g = 0;
        let u = 0;
        for (let i = 0; i < h; i++) {
          g += x[i] * (layout === "linear" ? gu.v[(e * 2 * im + r) * h + i] : gu.v[(e * h + i) * 2 * im + r]);
          u += x[i] * (layout === "linear" ? gu.v[(e * 2 * im + im + r) * h + i] : gu.v[(e * h + i) * 2 * im + im + r]);
        }
        return silu(g) * u;
      });
      for (let o = 0; o < h; o++) {
        let s = 0;
        for (let r = 0; r < im; r++) s += act[r] * (layout === "linear" ? dn.v[(e * h + o) * im + r] : dn.v[(e * im + r) * h + o]);
        y[t * h + o] += (p[e] / norm) * s;
      }
    }
    if (sharedExpert) {
      const [sg, su, sd, sgate] = [w("shared_expert.gate_proj.weight"), w("shared_expert.up_proj.weight"), w("shared_expert.down_proj.weight"), w("shared_expert_gate.weight")];
      const si = sg.shape[0];
      const gate = 1 / (1 + Math.exp(-x.reduce((a, xi, i) => a + sgate.v[i] * xi, 0)));
      const act = Array.from({ length: si }, (_, r) => {
        let g = 0;
        let u = 0;
        for (let i = 0; i < h; i++) {
          g += x[i] * sg.v[r * h + i];
          u += x[i] * su.v[r * h + i];
        }
        return silu(g) * u;
      });
      for (let o = 0; o < h; o++) {
        let s = 0;
        for (let r = 0; r < si; r++) s += act[r] * sd.v[o * si + r];
        y[t * h + o] += gate * s;
      }
    }
  }
  return { y, ids };
}

function expectMoeBlock(dir: string, layout: "linear" | "transposed", sharedExpert: boolean): void {
  const c = golden(dir).moe_block;
  const ref = moeBlockReference(readWeightSpec(dir), `model.language_model.layers.${c.layer}`, c, layout, sharedExpert);
  expect(ref.ids).toEqual(c.topk_ids);
  expect(c.min_topk_gap).toBeGreaterThanOrEqual(1e-3);
  const maxAbs = c.output.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  expect(maxAbs).toBeGreaterThan(0.1);
  const diff = c.output.reduce((m, v, i) => Math.max(m, Math.abs(v - ref.y[i])), 0);
  expect(diff).toBeLessThan(1e-5 * Math.max(1, maxAbs));
}

const PROMPT_KEYS = ["input_ids", "num_tokens", "expanded_prompt", "image_grid_thw", "video_grid_thw", "position_ids", "rope_deltas"] as const;

describe("Qwen3.5-MoE tiny fixtures (transformers 5.18)", () => {
  const config = readJson<Qwen3_5MoeShapeConfig & { text_config: { num_experts_per_tok: number } }>(path.join(QWEN3_5_MOE, "config.json"));
  const fused = golden(QWEN3_5_MOE);
  const perExpert = golden(QWEN3_5_MOE_PER_EXPERT);
  const tc = config.text_config;

  it("weights.json equals qwen3_5MoeWeightSpec(config.json, seed) for both expert layouts", () => {
    const spec = readWeightSpec(QWEN3_5_MOE);
    expect(qwen3_5MoeWeightSpec(config, spec.seed)).toEqual(spec);
    const specPe = readWeightSpec(QWEN3_5_MOE_PER_EXPERT);
    expect(specPe.seed).toBe(spec.seed);
    expect(qwen3_5MoeWeightSpec(config, specPe.seed, { perExpert: true })).toEqual(specPe);
    expect(fs.readFileSync(path.join(QWEN3_5_MOE_PER_EXPERT, "config.json"))).toEqual(fs.readFileSync(path.join(QWEN3_5_MOE, "config.json")));
    expect([fused.checkpoint.expert_layout, perExpert.checkpoint.expert_layout]).toEqual(["fused", "per_expert"]);
    expect(spec.tensors.filter((t) => t.name.startsWith("mtp.")).map((t) => t.name)).toEqual(fused.checkpoint.ignored_on_load);

    // Every decoder layer has a MoE block in the 5.x orientation, no dense MLP.
    const byName = new Map(spec.tensors.map((t) => [t.name, t.shape]));
    const [h, E, im, si] = [tc.hidden_size, tc.num_experts, tc.moe_intermediate_size, tc.shared_expert_intermediate_size];
    tc.layer_types.forEach((_, i) => {
      const p = `model.language_model.layers.${i}.mlp`;
      expect(byName.get(`${p}.gate.weight`)).toEqual([E, h]);
      expect(byName.get(`${p}.experts.gate_up_proj`)).toEqual([E, 2 * im, h]);
      expect(byName.get(`${p}.experts.down_proj`)).toEqual([E, h, im]);
      expect(byName.get(`${p}.shared_expert.gate_proj.weight`)).toEqual([si, h]);
      expect(byName.get(`${p}.shared_expert.down_proj.weight`)).toEqual([h, si]);
      expect(byName.get(`${p}.shared_expert_gate.weight`)).toEqual([1, h]);
      expect(byName.has(`${p}.gate_proj.weight`)).toBe(false);
    });
  });

  it.each([QWEN3_5_MOE, QWEN3_5_MOE_PER_EXPERT])("%s: the TS generator writes the model.safetensors Python hashed", async (dir) => {
    await expectRecordedSha(dir);
  });

  it("the per-expert checkpoint holds the fused checkpoint's weights, and its golden outputs equal the fused one's", () => {
    const fusedW = generateWeights(readWeightSpec(QWEN3_5_MOE));
    const peW = generateWeights(readWeightSpec(QWEN3_5_MOE_PER_EXPERT));
    const [h, im] = [tc.hidden_size, tc.moe_intermediate_size];
    let experts = 0;
    for (const [name, t] of peW) {
      const m = /^(.*\.mlp\.experts)\.(\d+)\.(gate|up|down)_proj\.weight$/.exec(name);
      if (!m) {
        expect(sameBits(fusedW.get(name)?.data, t.data), name).toBe(true);
        continue;
      }
      const j = Number(m[2]);
      const fusedT = fusedW.get(`${m[1]}.${m[3] === "down" ? "down_proj" : "gate_up_proj"}`)!;
      const start = m[3] === "down" ? j * h * im : (2 * j + (m[3] === "up" ? 1 : 0)) * im * h;
      expect(sameBits(fusedT.data.subarray(start, start + im * h), t.data), name).toBe(true);
      experts += 1;
    }
    expect(experts).toBe(3 * tc.num_experts * (tc.layer_types.length + 1)); // decoder layers + the mtp layer
    expect(fusedW.size).toBe(peW.size - experts + 2 * (tc.layer_types.length + 1));
    for (const name of CASES) {
      const [a, b] = [fused.cases[name], perExpert.cases[name]];
      for (const k of ["input_ids", "position_ids", "logits", "greedy", "router", "decoder_state"] as const) expect(b[k]).toEqual(a[k]);
    }
  });

  it("moe_block: layer 0's MoE block recomputed in float64 from the generated weights (5.x expert layout + shared expert)", () => {
    expectMoeBlock(QWEN3_5_MOE, "linear", true);
    expect(perExpert.moe_block).toEqual(fused.moe_block);
  });

  it.each(CASES)("%s: prompt, positions and grids equal the dense Qwen3.5 fixture's", (name) => {
    const dense = golden(path.join(FIXTURES, "qwen3_5", "qwen3_5-tiny")).cases[name];
    const c = fused.cases[name];
    for (const k of [...PROMPT_KEYS, "mm_token_type_ids"] as const) expect(c[k]).toEqual(dense[k]);
  });

  it.each(CASES)("%s: routing uses several experts, no near ties; greedy tokens and logits agree", (name) => {
    const c = fused.cases[name];
    expectRouting(c, tc.layer_types.map((_, i) => i), tc.num_experts, config.text_config.num_experts_per_tok);
    expectGreedyConsistent(c);
  });
});

describe("Qwen3-VL-MoE tiny fixture (transformers 4.57.6)", () => {
  const config = readJson<Qwen3VlMoeShapeConfig & { text_config: { num_experts_per_tok: number } }>(path.join(QWEN3_VL_MOE, "config.json"));
  const g = golden(QWEN3_VL_MOE);
  const tc = config.text_config;

  it("weights.json equals qwen3VlMoeWeightSpec(config.json, seed): transposed experts, no shared expert", () => {
    const spec = readWeightSpec(QWEN3_VL_MOE);
    expect(qwen3VlMoeWeightSpec(config, spec.seed)).toEqual(spec);
    const sparse = qwen3VlMoeSparseLayers(tc);
    expect(sparse).toEqual(g.checkpoint.moe_layers);
    expect(sparse.length).toBe(tc.num_hidden_layers);
    const byName = new Map(spec.tensors.map((t) => [t.name, t.shape]));
    const [h, E, im] = [tc.hidden_size, tc.num_experts, tc.moe_intermediate_size];
    for (const i of sparse) {
      const p = `model.language_model.layers.${i}.mlp`;
      expect(byName.get(`${p}.gate.weight`)).toEqual([E, h]);
      expect(byName.get(`${p}.experts.gate_up_proj`)).toEqual([E, h, 2 * im]);
      expect(byName.get(`${p}.experts.down_proj`)).toEqual([E, im, h]);
      expect([...byName.keys()].filter((n) => n.startsWith(`${p}.`)).length).toBe(3);
    }
  });

  it("the TS generator writes the model.safetensors Python hashed", async () => {
    await expectRecordedSha(QWEN3_VL_MOE);
  });

  it("moe_block: layer 0's MoE block recomputed in float64 from the generated weights (transposed experts, no shared expert)", () => {
    expectMoeBlock(QWEN3_VL_MOE, "transposed", false);
  });

  it.each(CASES)("%s: prompt, positions and grids equal the dense Qwen3-VL fixture's (4.57.6 layout)", (name) => {
    const dense = golden(path.join(FIXTURES, "qwen3-vl", "qwen3-vl-tiny")).cases[name];
    const c = g.cases[name];
    for (const k of PROMPT_KEYS) expect(c[k]).toEqual(dense[k]);
  });

  it.each(CASES)("%s: routing uses several experts, no near ties; greedy tokens and logits agree", (name) => {
    const c = g.cases[name];
    expectRouting(c, qwen3VlMoeSparseLayers(tc), tc.num_experts, config.text_config.num_experts_per_tok);
    expectGreedyConsistent(c);
  });
});
