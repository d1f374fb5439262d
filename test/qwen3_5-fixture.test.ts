// Groundwork for Qwen3.5 (issue 16): the tiny fixture recorded by tools/oracle/record_qwen3_5.py (transformers 5.18)
// is self-consistent, and the TypeScript generator reproduces its weights byte for byte. No engine code is tested
// here yet: the golden logits / greedy tokens wait for the Qwen3.5 graph (docs/qwen3_5-reference.md).
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { materializeTinyCheckpoint, qwen3_5WeightSpec, readWeightSpec, type Qwen3_5ShapeConfig } from "../src/testing/tiny-checkpoint.js";

const FIXTURE = path.join(import.meta.dirname, "fixtures", "qwen3_5", "qwen3_5-tiny");
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "qwen3_5-fixture-test-"));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

interface DeltaRuleCase {
  function: string;
  chunk_size?: number;
  initial_state: boolean;
  output: number[];
  final_state: number[];
}
interface Golden {
  checkpoint: { model_safetensors_sha256: string; model_safetensors_bytes: number; num_parameters: number; ignored_on_load: string[] };
  gated_delta_rule: {
    shapes: Record<string, number[]>;
    inputs: Record<"query" | "key" | "value" | "g" | "beta" | "initial_state", number[]>;
    cases: DeltaRuleCase[];
  };
  cases: Record<string, {
    input_ids: number[];
    num_tokens: number;
    mm_token_type_ids: number[];
    image_grid_thw: number[][] | null;
    video_grid_thw: number[][] | null;
    position_ids: number[][];
    rope_deltas: number;
  }>;
}
const readJson = <T>(file: string): T => JSON.parse(fs.readFileSync(file, "utf8")) as T;
const golden = readJson<Golden>(path.join(FIXTURE, "golden.json"));
const config = readJson<Qwen3_5ShapeConfig & { image_token_id: number; video_token_id: number }>(path.join(FIXTURE, "config.json"));

describe("Qwen3.5 tiny fixture", () => {
  it("weights.json equals qwen3_5WeightSpec(config.json, seed) (TS port of the Python spec builder)", () => {
    const spec = readWeightSpec(FIXTURE);
    expect(qwen3_5WeightSpec(config, spec.seed)).toEqual(spec);
    expect(spec.tensors.filter((t) => t.name.startsWith("mtp.")).map((t) => t.name)).toEqual(golden.checkpoint.ignored_on_load);
  });

  it("materializes a checkpoint whose model.safetensors has the sha256 recorded by Python", async () => {
    const dir = await materializeTinyCheckpoint(FIXTURE, path.join(tmpRoot, "qwen3_5-tiny"));
    const file = path.join(dir, "model.safetensors");
    expect(fs.statSync(file).size).toBe(golden.checkpoint.model_safetensors_bytes);
    expect(createHash("sha256").update(fs.readFileSync(file)).digest("hex")).toBe(golden.checkpoint.model_safetensors_sha256);
  });

  // The 5.x rope index (docs/qwen3_5-reference.md §9), recomputed from mm_token_type_ids and the grids.
  it.each(Object.keys(golden.cases))("%s: position ids follow the 5.x rope-index rule", (name) => {
    const c = golden.cases[name];
    expect(c.input_ids.length).toBe(c.num_tokens);
    c.input_ids.forEach((id, i) => {
      expect(c.mm_token_type_ids[i]).toBe(id === config.image_token_id ? 1 : id === config.video_token_id ? 2 : 0);
    });
    const images = [...(c.image_grid_thw ?? [])];
    const frames = (c.video_grid_thw ?? []).flatMap(([t, h, w]) => Array.from({ length: t }, () => [1, h, w]));
    const merge = 2;
    const pos: number[][] = [[], [], []];
    let cur = 0;
    for (let i = 0; i < c.num_tokens;) {
      const type = c.mm_token_type_ids[i];
      if (type === 0) {
        for (const axis of pos) axis.push(cur);
        cur += 1;
        i += 1;
        continue;
      }
      const [, gh, gw] = (type === 1 ? images : frames).shift()!;
      const [h, w] = [gh / merge, gw / merge];
      for (let r = 0; r < h; r++) for (let q = 0; q < w; q++) {
        pos[0].push(cur);
        pos[1].push(cur + r);
        pos[2].push(cur + q);
      }
      cur += Math.max(h, w);
      i += h * w;
    }
    expect(pos).toEqual(c.position_ids);
    expect(c.rope_deltas).toBe(Math.max(...pos.flat()) + 1 - c.num_tokens);
  });

  it("gated delta rule: every recorded form equals a plain per-token recurrence", () => {
    const { shapes, inputs } = golden.gated_delta_rule;
    const [, T, H, dk] = shapes.query;
    const dv = shapes.value[3];
    const f32 = (a: number[]) => Float32Array.from(a);
    const [q, k, v, g, beta, s0] = [inputs.query, inputs.key, inputs.value, inputs.g, inputs.beta, inputs.initial_state].map(f32);
    const run = (withState: boolean) => {
      const out = new Float64Array(T * H * dv);
      const state = new Float64Array(H * dk * dv);
      if (withState) state.set(s0);
      for (let hh = 0; hh < H; hh++) {
        const S = state.subarray(hh * dk * dv, (hh + 1) * dk * dv);
        for (let t = 0; t < T; t++) {
          const base = (t * H + hh) * dk;
          const norm = (x: Float32Array) => {
            let ss = 0;
            for (let i = 0; i < dk; i++) ss += x[base + i] ** 2;
            const inv = 1 / Math.sqrt(ss + 1e-6);
            return Array.from({ length: dk }, (_, i) => x[base + i] * inv);
          };
          const qt = norm(q).map((x) => x / Math.sqrt(dk));
          const kt = norm(k);
          const decay = Math.exp(g[t * H + hh]);
          const b = beta[t * H + hh];
          for (let i = 0; i < dk * dv; i++) S[i] *= decay;
          for (let j = 0; j < dv; j++) {
            let kv = 0;
            for (let i = 0; i < dk; i++) kv += S[i * dv + j] * kt[i];
            const delta = (v[(t * H + hh) * dv + j] - kv) * b;
            for (let i = 0; i < dk; i++) S[i * dv + j] += kt[i] * delta;
          }
          for (let j = 0; j < dv; j++) {
            let o = 0;
            for (let i = 0; i < dk; i++) o += S[i * dv + j] * qt[i];
            out[(t * H + hh) * dv + j] = o;
          }
        }
      }
      return { out, state };
    };
    const maxDiff = (a: ArrayLike<number>, b: number[]) => b.reduce((m, x, i) => Math.max(m, Math.abs(x - a[i])), 0);
    expect(golden.gated_delta_rule.cases.length).toBeGreaterThanOrEqual(8);
    for (const c of golden.gated_delta_rule.cases) {
      const ref = run(c.initial_state);
      expect(c.output.length).toBe(T * H * dv);
      expect(maxDiff(ref.out, c.output)).toBeLessThan(2e-5);
      expect(maxDiff(ref.state, c.final_state)).toBeLessThan(2e-5);
    }
  });
});
