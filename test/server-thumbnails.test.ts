/**
 * Plan thumbnails recover the frames the vision encoder gets: un-patchifying a prepared visual's pixel_values gives
 * back the resized frames that loadVideo decodes (within ±1 from the float32 normalise round trip).
 */
import * as fs from "node:fs";
import { afterAll, beforeAll, expect, it } from "vitest";
import { loadVideo } from "../src/media/video.js";
import { qwenVlUtilsDefaults } from "../src/sampling/qwen-vl-utils.js";
import { framesOfVisual, readNormalisation } from "../src/server/thumbnails.js";
import { makeTestVideo, tempDir, tinyModel } from "./server-helpers.js";

let dir: string;
beforeAll(() => {
  dir = tempDir("videolm-thumbs-");
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

for (const [name, options] of [["default size (336×336)", {}], ["odd frame count, 56×84 budget", { nframes: 3, maxPixels: 56 * 84, minPixels: 56 * 56 }]] as const) {
  it(`un-patchified frames equal the decoded frames: ${name}`, async () => {
    const video = makeTestVideo(dir, "clip.mp4");
    const model = await tinyModel();
    const prepared = await model.preparer.prepare([{ role: "user", content: [{ type: "video", video, ...options }, { type: "text", text: "?" }] }]);
    const visual = prepared.visuals[0];
    const frames = framesOfVisual(visual, readNormalisation(model.preparer.dir));
    const loaded = await loadVideo(video, { ...options, defaults: qwenVlUtilsDefaults(14) });
    expect(frames).not.toBeNull();
    expect(frames!.length).toBe(loaded.frames.length);
    for (const [i, f] of frames!.entries()) {
      const ref = loaded.frames[i];
      expect([f.width, f.height]).toEqual([ref.width, ref.height]);
      let maxDiff = 0;
      for (let k = 0; k < f.data.length; k++) maxDiff = Math.max(maxDiff, Math.abs(f.data[k] - ref.data[k]));
      expect(maxDiff).toBeLessThanOrEqual(1);
    }
  });
}
