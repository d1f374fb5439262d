/**
 * `videolm inspect --route`: for families whose visual token count the vision encoder decides (InternVL-Flash's
 * resolution router; FamilyProcessor.selectVisualRows), runs only the vision encoder on a planned request and reports
 * what was decided per tile/frame and the tokens saved — without loading the language model.
 */
import { selectsVisualRows, type VisualSelectionReport } from "../families/family.js";
import type { WeightPrecision } from "../onnx/layers.js";
import type { ProgressCallback } from "../util/progress.js";
import { ensureConverted } from "./convert.js";
import { encodeInChunks } from "./pipeline.js";
import type { PreparedRequest, RequestPlan, RequestPreparer } from "./preparer.js";
import type { MediaOptions } from "./request.js";
import { createSession, VisionEncoder, type VisionOutput } from "./sessions.js";
import { DEFAULT_VISION_CHUNK_PATCHES } from "./model.js";

export interface RoutePreview {
  report: VisualSelectionReport;
  /** Prompt tokens before and after the selection. */
  plannedPromptTokens: number;
  promptTokens: number;
  visionMs: number;
}

/** Undefined when the family decides nothing after the vision encoder (its plan is final). */
export async function previewVisualSelection(
  preparer: RequestPreparer,
  plan: RequestPlan,
  media: MediaOptions,
  options: { dtype?: WeightPrecision; cacheDir?: string; threads?: number; onProgress?: ProgressCallback; signal?: AbortSignal },
): Promise<RoutePreview | undefined> {
  const select = preparer.processor.selectVisualRows?.bind(preparer.processor);
  if (!select || !selectsVisualRows(preparer.processor, plan.visuals)) return undefined;
  const prepared: PreparedRequest = await preparer.realise(plan, media, options.signal);
  const converted = ensureConverted(preparer.checkpoint, preparer.family, preparer.config, options.dtype ?? "fp32", { cacheRoot: options.cacheDir, onProgress: options.onProgress });
  const encoder = new VisionEncoder(await createSession(converted.visionPath, { threads: options.threads }));
  const t0 = performance.now();
  try {
    const outputs: VisionOutput[] = [];
    for (const v of prepared.visuals) outputs.push(await encodeInChunks(encoder, preparer.processor, v.batch, DEFAULT_VISION_CHUNK_PATCHES, preparer.config.text.hiddenSize, { signal: options.signal }));
    const selection = select(outputs, prepared.visuals, media);
    const dropped = selection.keep.reduce((n, k) => n + k.length - k.reduce((a, b) => a + b, 0), 0);
    return { report: selection.report, plannedPromptTokens: prepared.inputIds.length, promptTokens: prepared.inputIds.length - dropped, visionMs: performance.now() - t0 };
  } finally {
    await encoder.release();
  }
}
