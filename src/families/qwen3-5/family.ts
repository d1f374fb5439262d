/**
 * Qwen3.5 / Qwen3.6 dense (model_type `qwen3_5`): config.ts (hybrid layer_types, Gated DeltaNet shapes, partial
 * interleaved M-RoPE), text.ts (`buildQwen3_5EngineDecoder`: one graph for prefill chunks and decode steps over the
 * per-layer state), the decoder state below (conv + recurrent state for linear layers, KV for attention), and
 * Qwen3-VL's vision tower and processor: the tower without DeepStack (qwen3-vl/vision.ts with no levels), the
 * processor with the transformers 5.x prompt layout (an outer vision_start/end around the timestamped frame blocks;
 * qwen3-vl/prompt.ts "5.x"). For this family 5.x is the authors' release, so its layout is the one to match.
 * Reference: docs/qwen3_5-reference.md (transformers 5.18.0 models/qwen3_5/, §8 vision, §9 prompt and positions).
 */
import { ConfigReader } from "../../checkpoint/config-values.js";
import type { LayerStateSpec } from "../../engine/decoder-state.js";
import { VideolmError } from "../../errors.js";
import type { ModelFamily } from "../family.js";
import { qwen3VLEventPrompt } from "../event-prompts.js";
import { parseQwen3VLVisionConfig, type Qwen3VLVisionConfig } from "../qwen3-vl/config.js";
import { Qwen3VLProcessor } from "../qwen3-vl/processor.js";
import { buildQwen3VLVision } from "../qwen3-vl/vision.js";
import { parseQwen3_5Config, type Qwen3_5Config } from "./config.js";
import { qwen3_5DecoderCost } from "./cost.js";
import { buildQwen3_5EngineDecoder } from "./text.js";

/** The engine's FamilyConfig view: the text config plus the vision tower's (Qwen3-VL's, no DeepStack). */
export interface Qwen3_5FamilyConfig extends Qwen3_5Config {
  vision: Qwen3VLVisionConfig;
}

export function parseQwen3_5FamilyConfig(raw: Record<string, unknown>): Qwen3_5FamilyConfig {
  const base = parseQwen3_5Config(raw);
  const vis = new ConfigReader(raw).object("vision_config");
  if (!vis) throw new VideolmError("config.json: vision_config is missing");
  // Qwen3_5VisionConfig has no deepstack_visual_indexes (modular_qwen3_5.py:153): the key is not read.
  return { ...base, vision: parseQwen3VLVisionConfig(vis, base.text.hiddenSize, { deepstackLayers: null }) };
}

/**
 * Hub names: `model.language_model.*` (claimed by text.ts as they are), `lm_head.*`, `model.visual.*`, `mtp.*`.
 *   - `mtp.*`: the multi-token-prediction head (Qwen3_5ForConditionalGeneration does not load it: transformers 5.18
 *     lists it in `_keys_to_ignore_on_load_unexpected`; it only serves speculative decoding, which videolm does not do
 *     yet), so it is ignored;
 *   - `visual.*` from older writers maps to the hub's `model.visual.*`, which the vision builder claims.
 */
export function sanitizeQwen3_5TensorName(name: string): string | null {
  if (name.startsWith("mtp.")) return null;
  if (name.startsWith("visual.")) return "model." + name;
  return name;
}

/** Per layer: linear layers the conv state [1, conv_dim, K] and recurrent state [1, Hv, dk, dv]; attention layers KV. */
export function qwen3_5DecoderState(cfg: Qwen3_5Config): LayerStateSpec[] {
  const t = cfg.text;
  const { convKernel: K, numKeyHeads: Hk, keyHeadDim: dk, numValueHeads: Hv, valueHeadDim: dv } = t.linear;
  const convDim = 2 * Hk * dk + Hv * dv;
  return t.layerTypes.map(
    (type): LayerStateSpec =>
      type === "linear_attention"
        ? { kind: "recurrent", shapes: { conv_state: [1, convDim, K], recurrent_state: [1, Hv, dk, dv] } }
        : { kind: "kv", numKvHeads: t.numKvHeads, headDim: t.headDim },
  );
}

export const qwen3_5: ModelFamily<Qwen3_5FamilyConfig> = {
  name: "Qwen3.5",
  modelTypes: ["qwen3_5"],
  parseConfig: parseQwen3_5FamilyConfig,
  sanitizeTensorName: sanitizeQwen3_5TensorName,
  buildVision: (layers, weights, cfg) => buildQwen3VLVision(layers, weights, cfg.vision),
  buildDecoder: (layers, weights, cfg, stage) => buildQwen3_5EngineDecoder(layers, weights, cfg.text, {}, stage),
  decoderState: qwen3_5DecoderState,
  decoderCost: qwen3_5DecoderCost,
  eventPrompt: qwen3VLEventPrompt,
  createProcessor: (dir, cfg) => new Qwen3VLProcessor(dir, cfg, "5.x"),
};
