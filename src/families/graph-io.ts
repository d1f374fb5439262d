/**
 * Input/output names of the graphs every family emits — the contract between the graph builders and the
 * engine's sessions. Names follow Hugging Face / onnxruntime-genai conventions where one exists.
 */
export const VISION_INPUTS = {
  /** float32 [t·h·w, C·T·P·P]: patch rows of one image or video. */
  pixelValues: "pixel_values",
  /** int64 [t·h·w, 2]: (row, col) of each patch for the 2-D rotary embedding. */
  posIds: "vision_pos_ids",
  /** int64 [3]: the grid (t, h, w) in patches. */
  grid: "grid_thw",
} as const;
/** float32 [t·h·w / merge², hidden]: merged visual tokens. */
export const VISION_OUTPUT = "visual_embeds";

export const DECODER_INPUTS = {
  inputIds: "input_ids", // int64 [1, S]
  visualEmbeds: "visual_embeds", // float32 [M, hidden]
  visualPositions: "visual_positions", // int64 [M, 1], chunk-relative
  positionIds: "position_ids", // int64 [axes, 1, S]: 3 (M-RoPE T, H, W) or 1 (1-D RoPE); the engine reads axes from the graph
  seqlensK: "seqlens_k", // int32 [1] = total length − 1
  totalSequenceLength: "total_sequence_length", // int32 scalar
  logitsIndices: "logits_indices", // int64 [K], chunk-relative
} as const;
export const DECODER_LOGITS = "logits"; // float32 [1, K, vocab]
/**
 * Decoder stages (a decoder split into several graphs of consecutive layers, family.ts `DecoderStage`): every stage
 * but the first takes the hidden states the previous one returns, float32 [1, S, hidden] (the residual stream after
 * the previous stage's last layer); every stage but the last returns them instead of logits.
 */
export const HIDDEN_STATES_IN = "hidden_states_in";
export const HIDDEN_STATES_OUT = "hidden_states_out";
/**
 * DeepStack (Qwen3-VL): float32 [levels, M, hidden] — an output of the vision graph (one merged feature set per
 * listed vision layer) and an input of the decoder (added at the visual positions after decoder layers 0..levels−1).
 */
export const DEEPSTACK_EMBEDS = "deepstack_embeds";
export const pastKey = (i: number) => `past_key_values.${i}.key`;
export const pastValue = (i: number) => `past_key_values.${i}.value`;
/**
 * The chunk's own keys (after rotary / norm) and values, float32 [1, S, kv_heads·head_dim]: the engine appends them
 * to its cache buffers (the past inputs). The attention op's full present outputs stay inside the graph, because
 * onnxruntime-node never hands a caller's buffer to onnxruntime as an output: it lets onnxruntime allocate and
 * copies the result back, so capacity-sized present outputs would cost two copies of the whole cache per token.
 */
export const newKey = (i: number) => `new.${i}.key`;
export const newValue = (i: number) => `new.${i}.value`;
/**
 * Recurrent-state layers (linear attention: Gated DeltaNet, Mamba-style; a `{kind: "recurrent"}` entry of the
 * family's decoder state): float32 tensor `name` of layer i, fixed size, fed as `past_state.i.<name>` and returned
 * whole as `present_state.i.<name>`, which replaces it (src/engine/decoder-state.ts).
 */
export const pastState = (i: number, name: string) => `past_state.${i}.${name}`;
export const newState = (i: number, name: string) => `present_state.${i}.${name}`;
