/**
 * The library's model lifecycle: `VideoModel.load()` without a folder opens the built-in demo model, and
 * `dispose()` releases the onnxruntime sessions, empties the vision cache and makes later calls fail clearly.
 */
import * as path from "node:path";
import { describe, expect, it, vi } from "vitest";
import { VideolmError } from "../src/errors.js";
import { VideoModel } from "../src/engine/model.js";
import { DEFAULT_MODEL_DIR } from "../src/hub/default-model.js";
import { repoRoot, testCacheDir } from "../src/testing/tiny-checkpoint.js";

const ROOT = repoRoot();
// An image, not a video: these tests are about the model's lifecycle, not about decoding.
const messages = [
  {
    role: "user" as const,
    content: [
      { type: "image" as const, image: path.join(ROOT, "test/fixtures/qwen2-vl/media/image-a-h56-w84.png") },
      { type: "text" as const, text: "what color is the triangle?" },
    ],
  },
];

/** The onnxruntime sessions a model holds (private fields, looked at by the test only). */
type Releasable = { release(): Promise<void> };
// The vision session and the decoder's sessions (one per decoder stage).
const sessionsOf = (model: VideoModel) => [(model.vision as unknown as { session: Releasable }).session, ...(model.decoder as unknown as { sessions: Releasable[] }).sessions];

describe("VideoModel lifecycle", () => {
  it("load() with no folder (or undefined) opens the built-in demo model", async () => {
    const model = await VideoModel.load({ cacheDir: testCacheDir(), threads: 1 });
    expect(model.preparer.dir).toBe(DEFAULT_MODEL_DIR);
    const first = await model.generate({ messages, maxNewTokens: 8 });
    expect(first.tokens.length).toBeGreaterThan(0);
    await model.dispose();
    const again = await VideoModel.load(undefined, { cacheDir: testCacheDir(), threads: 1 });
    expect(again.preparer.dir).toBe(DEFAULT_MODEL_DIR);
    expect((await again.generate({ messages, maxNewTokens: 8 })).tokens).toEqual(first.tokens);
    await again.dispose();
  }, 120_000);

  it("dispose() releases the sessions once, empties the vision cache, and later calls fail clearly", async () => {
    const model = await VideoModel.load(DEFAULT_MODEL_DIR, { cacheDir: testCacheDir(), threads: 1 });
    await model.generate({ messages, maxNewTokens: 2 });
    expect(model.visionCache.misses).toBe(1);
    const releases = sessionsOf(model).map((s) => vi.spyOn(s, "release"));
    const prepared = await model.prepare(messages);

    await model.dispose();
    for (const r of releases) expect(r).toHaveBeenCalledTimes(1);
    expect(model.isDisposed).toBe(true);
    expect(model.visionCache.maxBytes).toBe(0); // the cached embeddings are dropped

    await model.dispose(); // idempotent
    for (const r of releases) expect(r).toHaveBeenCalledTimes(1);

    for (const call of [() => model.generate({ messages, maxNewTokens: 2 }), () => model.prepare(messages), () => model.encodeVisuals(prepared)]) {
      const p = call();
      await expect(p).rejects.toBeInstanceOf(VideolmError);
      await expect(p).rejects.toThrow(/^this model was disposed \(VideoModel\.dispose\(\)\); load it again with VideoModel\.load\(\)$/);
    }
  }, 120_000);

  it("dispose() during a generation lets it finish before releasing the sessions", async () => {
    const model = await VideoModel.load({ cacheDir: testCacheDir(), threads: 1 });
    const releases = sessionsOf(model).map((s) => vi.spyOn(s, "release"));
    let releasedDuringGeneration = false;
    const running = model.generate({
      messages,
      maxNewTokens: 8,
      onToken: () => {
        if (releases.some((r) => r.mock.calls.length > 0)) releasedDuringGeneration = true;
      },
    });
    const disposed = model.dispose();
    const { tokens } = await running;
    await disposed;
    expect(tokens.length).toBeGreaterThan(0);
    expect(releasedDuringGeneration).toBe(false);
    for (const r of releases) expect(r).toHaveBeenCalledTimes(1);
  }, 120_000);
});
