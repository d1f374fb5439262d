/**
 * Qwen3.5 / Qwen3.6 dense (model_type `qwen3_5`), text path: config.ts (hybrid layer_types, Gated DeltaNet shapes,
 * partial interleaved M-RoPE), text.ts (`buildQwen3_5EngineDecoder`: one graph for prefill chunks and decode steps
 * over the per-layer state), and the decoder state below (conv + recurrent state for linear layers, KV for attention).
 * Reference: docs/qwen3_5-reference.md (transformers 5.18.0 models/qwen3_5/).
 *
 * Image and video input are not supported yet: the processor refuses visual parts with one VideolmError (never a
 * wrong answer), the vision tower's weights are not read and the vision graph is an empty placeholder.
 */
import { ConfigReader, LIMITS } from "../../checkpoint/config-values.js";
import type { LayerStateSpec } from "../../engine/decoder-state.js";
import type { ContentPart, PreparedVisual, VisualPlan } from "../../engine/request.js";
import { VideolmError } from "../../errors.js";
import type { TextTokenizer } from "../../text/tokenizer.js";
import type { FamilyProcessor, ModelFamily } from "../family.js";
import { VISION_INPUTS, VISION_OUTPUT } from "../graph-io.js";
import { parseQwen3_5Config, type Qwen3_5Config } from "./config.js";
import { buildQwen3_5EngineDecoder } from "./text.js";


export const QWEN3_5_VISUAL_UNSUPPORTED = "Qwen3.5 image/video input is not supported yet";

/** The engine's FamilyConfig view: the text config plus the vision fields the engine reads. */
export interface Qwen3_5FamilyConfig extends Qwen3_5Config {
  vision: { numHeads: number; spatialMergeSize: number };
}

export function parseQwen3_5FamilyConfig(raw: Record<string, unknown>): Qwen3_5FamilyConfig {
  const base = parseQwen3_5Config(raw);
  const vis = new ConfigReader(raw).object("vision_config");
  return {
    ...base,
    vision: { numHeads: vis ? vis.int("num_heads", LIMITS.heads, 16) : 16, spatialMergeSize: vis ? vis.int("spatial_merge_size", { min: 1, max: 8 }, 2) : 2 },
  };
}

/**
 * Hub names: `model.language_model.*` (claimed by text.ts as they are), `lm_head.*`, `model.visual.*`, `mtp.*`.
 *   - `mtp.*`: the multi-token-prediction head (Qwen3_5ForConditionalGeneration does not load it: transformers 5.18
 *     lists it in `_keys_to_ignore_on_load_unexpected`; it only serves speculative decoding, which videolm does not do
 *     yet), so it is ignored;
 *   - `model.visual.*` / `visual.*`: the vision tower, unused until Qwen3.5 image/video input is supported.
 */
export function sanitizeQwen3_5TensorName(name: string): string | null {
  if (name.startsWith("mtp.")) return null;
  if (name.startsWith("model.visual.") || name.startsWith("visual.")) return null;
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

/** Text-only requests: the prompt's ids at positions 0 … S−1 on all three rotary axes (no visual, rope delta 0). */
export class Qwen3_5TextProcessor implements FamilyProcessor {
  private refuse(part: ContentPart): null {
    if (part.type === "image" || part.type === "video") throw new VideolmError(QWEN3_5_VISUAL_UNSUPPORTED);
    return null;
  }
  planVisual(part: ContentPart): Promise<VisualPlan | null> {
    return Promise.resolve().then(() => this.refuse(part));
  }
  prepareVisual(part: ContentPart): Promise<PreparedVisual | null> {
    return Promise.resolve().then(() => this.refuse(part));
  }
  buildPrompt(promptText: string, tokenizer: TextTokenizer, visuals: readonly VisualPlan[]) {
    if (visuals.length > 0) throw new VideolmError(QWEN3_5_VISUAL_UNSUPPORTED);
    const inputIds = tokenizer.encode(promptText);
    const S = inputIds.length;
    const positionIds = new Int32Array(3 * S);
    for (let a = 0; a < 3; a++) for (let s = 0; s < S; s++) positionIds[a * S + s] = s;
    return { inputIds: Array.from(inputIds), positionIds, ropeDelta: 0 };
  }
}

export const qwen3_5: ModelFamily<Qwen3_5FamilyConfig> = {
  name: "Qwen3.5",
  modelTypes: ["qwen3_5"],
  parseConfig: parseQwen3_5FamilyConfig,
  sanitizeTensorName: sanitizeQwen3_5TensorName,
  // Placeholder vision graph (never run: the processor refuses visual parts): pixel_values in, no rows out.
  buildVision: (layers, _weights, cfg) => {
    const g = layers.g;
    g.input(VISION_INPUTS.pixelValues, "float32", ["patches", "patch_dim"]);
    g.output(g.op("Expand", [g.scalar(0), g.ints([0, cfg.text.hiddenSize])]), VISION_OUTPUT, "float32", [0, cfg.text.hiddenSize]);
  },
  buildDecoder: (layers, weights, cfg) => buildQwen3_5EngineDecoder(layers, weights, cfg.text),
  decoderState: qwen3_5DecoderState,
  createProcessor: () => new Qwen3_5TextProcessor(),
};
