/**
 * The bench's model shapes and its work model: the published Qwen2-VL configs parse, the Qwen tokenizer the
 * random-weight checkpoints ship is found from the installed package, and the FLOP / byte counts match the
 * closed forms worked out by hand for Qwen2-VL-2B.
 */
import * as fs from "node:fs";
import { describe, expect, it } from "vitest";
import { decodeBytesPerToken, prefillFlops, visionFlops } from "../src/bench/cost.js";
import { BENCH_SHAPES, qwenTokenizerJson } from "../src/bench/presets.js";
import { parseQwen2VLConfig } from "../src/families/qwen2-vl/config.js";

describe("bench presets and work model", () => {
  it("finds the Qwen tokenizer in the installed package", () => {
    const file = qwenTokenizerJson();
    expect(fs.existsSync(file)).toBe(true);
    expect(JSON.parse(fs.readFileSync(file, "utf8")).added_tokens.some((t: { content: string }) => t.content === "<|video_pad|>")).toBe(true);
  });

  it("counts Qwen2-VL-2B's work: 5,923 GFLOP of vision for 4×32×32 patches, 2,844 GFLOP of prefill for 1,049 tokens", () => {
    const config = parseQwen2VLConfig(BENCH_SHAPES["qwen2-vl-2b"] as unknown as Record<string, unknown>);
    // 32 blocks × (24·N·E² + 4·N·L·E) + patch embedding 2·N·1176·E + merger 2·(N/4)·(4E)² + 2·(N/4)·4E·1536
    const N = 4096, E = 1280, L = 1024;
    const vision = 32 * (24 * N * E * E + 4 * N * L * E) + 2 * N * 1176 * E + 2 * (N / 4) * (4 * E) ** 2 + 2 * (N / 4) * 4 * E * 1536;
    expect(visionFlops(config, [4, 32, 32])).toBe(vision);
    // per layer: q, o 1536² each; k, v 1536·256 each; gate, up, down 1536·8960 each
    const layer = 2 * 1536 * 1536 + 2 * 1536 * 256 + 3 * 1536 * 8960;
    const S = 1049;
    expect(prefillFlops(config, S)).toBe(28 * (2 * S * layer + 2 * S * S * 1536) + 2 * 151936 * 1536);
    // int4: 0.640625 bytes per weight; int8 head 1.15625 bytes per weight; fp32 KV cache
    expect(decodeBytesPerToken(config, "int4", 1000)).toBeCloseTo(28 * layer * 0.640625 + 151936 * 1536 * 1.15625 + 28 * 2 * 2 * 128 * 1000 * 4, 0);
    expect(decodeBytesPerToken(config, "fp32", 0)).toBe(28 * layer * 4 + 151936 * 1536 * 4);
  });
});
