/**
 * What the model kept of each sampled frame, from the server's `usage.videolm_visual_tokens` (families whose visual
 * tokens are decided in the vision pass: EVS pruning, InternVL-Flash's router, VideoLLaMA3's DiffFP). Pure functions,
 * shared by the page (app.js) and the unit tests.
 */

/**
 * Per sampled frame of the request's `videoIndex`-th visual (request order), the fraction of its planned tokens the
 * model kept, or undefined when the usage has no per-frame units for it. `units` are per frame, or per temporal patch
 * (a frame pair, Qwen) — then each unit covers `frameCount / units` consecutive frames.
 */
export function keptPerFrame(visualTokens, videoIndex, frameCount) {
  if (!visualTokens || !Array.isArray(visualTokens.units)) return undefined;
  const units = visualTokens.units.filter((u) => u.visual === videoIndex).sort((a, b) => a.index - b.index);
  if (units.length === 0 || frameCount % units.length !== 0) return undefined;
  const full = Math.max(...units.map((u) => u.planned ?? u.tokens));
  if (!(full > 0)) return undefined;
  const per = frameCount / units.length;
  return units.flatMap((u) => Array(per).fill(Math.min(1, (u.kept ?? u.tokens) / (u.planned ?? full))));
}

/** "1,536 → 960 visual tokens (−37%, InternVL-Flash resolution router)" or "" when nothing was decided. */
export function savingText(visualTokens) {
  if (!visualTokens || !(visualTokens.planned > 0)) return "";
  const saved = visualTokens.planned - visualTokens.kept;
  const pct = Math.round((100 * saved) / visualTokens.planned);
  return `${visualTokens.planned.toLocaleString("en-US")} → ${visualTokens.kept.toLocaleString("en-US")} visual tokens (−${pct}%, ${visualTokens.method})`;
}
