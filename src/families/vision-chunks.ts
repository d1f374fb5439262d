/**
 * Splitting one visual's vision batch into exact sub-batches of whole temporal steps (Qwen frame pairs, InternVL
 * tiles, VideoLLaMA3 frames): every family's vision tower attends only within a step, so encoding the chunks one after
 * another gives the rows of the whole batch, in bounded memory and with progress (FamilyProcessor.visionChunks).
 */
import type { VisionBatch } from "../engine/sessions.js";

/** Temporal steps per chunk of at most `maxPatches` patches: at least one. */
export function visionChunkSteps(grid: readonly [number, number, number], maxPatches: number): number {
  return Math.max(1, Math.floor(maxPatches / (grid[1] * grid[2])));
}

/**
 * `batch` as chunks of whole steps with at most `maxPatches` patches each (itself when it fits one). `extraInputs`
 * gives a chunk's family inputs from its grid (default: the batch's own, shared by every chunk).
 */
export function splitVisionBatch(batch: VisionBatch, maxPatches: number, extraInputs?: (grid: [number, number, number]) => VisionBatch["extraInputs"]): VisionBatch[] {
  const [t, h, w] = batch.grid;
  const perStep = h * w;
  const stepsPerChunk = visionChunkSteps(batch.grid, maxPatches);
  if (t <= stepsPerChunk) return [batch];
  const rowLength = batch.pixelValues.length / (t * perStep);
  const chunks: VisionBatch[] = [];
  for (let start = 0; start < t; start += stepsPerChunk) {
    const steps = Math.min(stepsPerChunk, t - start);
    const grid: [number, number, number] = [steps, h, w];
    const rows = [start * perStep, (start + steps) * perStep];
    const extra = extraInputs ? extraInputs(grid) : batch.extraInputs;
    chunks.push({
      pixelValues: batch.pixelValues.subarray(rows[0] * rowLength, rows[1] * rowLength),
      positionIds: batch.positionIds.subarray(rows[0] * 2, rows[1] * 2),
      grid,
      ...(extra ? { extraInputs: extra } : {}),
    });
  }
  return chunks;
}
