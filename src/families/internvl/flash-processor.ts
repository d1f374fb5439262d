/**
 * The request processor of InternVL3.5-Flash checkpoints: InternVL's (processor.ts: the prompt is planned with 256
 * placeholders per tile) plus the resolution router's selection once the vision encoder ran (flash-router.ts):
 * per tile 64 or 256 rows, the dropped placeholders removed and positions renumbered (docs/internvl-flash-reference.md
 * §4–5). Thresholds: the request's `media.flash`, else config.json's `flash_relative_threshold` /
 * `flash_absolute_threshold`; `media.flash === false` keeps every tile at 256 (the released `generate_normal`).
 */
import { VideolmError } from "../../errors.js";
import type { MediaOptions, VisualPlan } from "../../engine/request.js";
import type { VisionOutput } from "../../engine/sessions.js";
import type { VisualSelection } from "../family.js";
import { FLASH_OUTPUTS, type FlashConfig } from "./flash.js";
import { FLASH_TILE_TOKENS, selectFlashRows, type FlashThresholds } from "./flash-router.js";
import { InternVLProcessor, type InternVLProcessorConfig } from "./processor.js";

/** The request's thresholds over the checkpoint's, checked; undefined when the request turns the router off. */
export function flashThresholds(flash: FlashConfig, media: MediaOptions): FlashThresholds | undefined {
  const asked = media.flash;
  if (asked === false) return undefined;
  const relative = asked?.relative ?? flash.relativeThreshold;
  const absolute = asked?.absolute ?? flash.absoluteThreshold;
  for (const [name, v] of [
    ["relative", relative],
    ["absolute", absolute],
  ] as const) {
    if (!(typeof v === "number" && v >= 0 && v <= 1)) throw new VideolmError(`flash ${name} threshold must be a number in [0, 1], got ${JSON.stringify(v)}`);
  }
  return { relative, absolute };
}

export class InternVLFlashProcessor extends InternVLProcessor {
  constructor(
    checkpointDir: string,
    cfg: InternVLProcessorConfig,
    readonly flash: FlashConfig,
    /** The LLM width: rows of the vision outputs. */
    private readonly hiddenSize: number,
  ) {
    super(checkpointDir, cfg);
    if (this.tokensPerTile !== FLASH_TILE_TOKENS) {
      // The released code cuts the prompt in blocks of exactly 256 placeholders (R generate_flash: l % 256 != 0 raises).
      throw new VideolmError(`InternVL-Flash needs 256 tokens per tile (a 32×32-patch tile), this checkpoint gives ${this.tokensPerTile}`);
    }
  }

  /**
   * The router decides every request's tokens, so EVS is refused here: both would pick the same frames' tokens after
   * the vision pass by different rules (64-token compressed tiles vs dropped merged tokens), and no reference combines them.
   */
  override readonly evsPruning: boolean = false;

  /** The router runs for every request with visuals (it may keep every tile at 256). */
  override selectsVisualRows(): boolean {
    return true;
  }

  override selectVisualRows(outputs: readonly VisionOutput[], visuals: readonly VisualPlan[], media: MediaOptions): VisualSelection {
    const D = this.hiddenSize;
    const thresholds = flashThresholds(this.flash, media);
    const planned = visuals.reduce((n, v) => n + v.tokens, 0);
    if (!thresholds) {
      return {
        rows: outputs.map((o) => o.embeds),
        keep: visuals.map((v) => new Uint8Array(v.tokens).fill(1)),
        rule: "renumber",
        report: { method: "InternVL-Flash resolution router (off)", plannedTokens: planned, keptTokens: planned, units: [], parameters: {} },
      };
    }
    const flashOutputs = outputs.map((o, i) => {
      const compressed = o.extra?.[FLASH_OUTPUTS.compressedEmbeds]?.data;
      const p0 = o.extra?.[FLASH_OUTPUTS.gateP0]?.data;
      if (!compressed || !p0) throw new VideolmError("the vision graph has no Flash outputs (gate_p0, visual_embeds_compressed); delete the cache folder to rebuild it");
      if (p0.length !== visuals[i].grid[0]) throw new VideolmError(`the Flash gate scored ${p0.length} tiles, visual ${i} has ${visuals[i].grid[0]}`);
      return { embeds: o.embeds, compressed, p0 };
    });
    const sel = selectFlashRows(flashOutputs, thresholds, D);
    const kept = sel.rows.reduce((n, r) => n + r.length / D, 0);
    return {
      rows: sel.rows,
      keep: sel.keep,
      rule: "renumber",
      report: {
        method: "InternVL-Flash resolution router",
        plannedTokens: planned,
        keptTokens: kept,
        units: sel.tiles.map((t) => ({ visual: t.visual, index: t.index, score: t.p0, reduced: t.compressed, tokens: t.compressed ? 64 : 256 })),
        parameters: { relative: thresholds.relative, absolute: thresholds.absolute, quantile: sel.decision.quantile },
      },
    };
  }
}
