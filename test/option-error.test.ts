/**
 * Errors about options name them as the caller spelled them: the library `minPixels`, the command line
 * `--min-pixels`, the HTTP API `min_pixels` — one OptionError, rendered per caller.
 */
import { describe, expect, it } from "vitest";
import { VideolmError } from "../src/errors.js";
import { API_SPELLING, CLI_SPELLING, LIBRARY_SPELLING, OptionError, messageFor } from "../src/option-error.js";
import { calculateVideoFrameRange, checkFrameOptions, checkPixelBounds, planVideoSampling, qwenVlUtilsDefaults, smartNframes } from "../src/sampling/qwen-vl-utils.js";
import { parseChatRequest } from "../src/server/chat-request.js";
import { HttpError } from "../src/server/errors.js";

const d = qwenVlUtilsDefaults(14);
const LIMITS = { maxTokens: 4096, maxFrames: 256, maxFramePixels: 10_000_000, maxMediaParts: 8 };

/** The error `f` throws. */
function thrown(f: () => unknown): Error {
  try {
    f();
  } catch (e) {
    return e as Error;
  }
  throw new Error("did not throw");
}

describe("spellings", () => {
  it("map library keys to each caller's names", () => {
    for (const [key, cli, api] of [
      ["minPixels", "--min-pixels", "min_pixels"],
      ["maxFrames", "--max-frames", "max_frames"],
      ["nframes", "--nframes", "nframes"],
      ["start", "--start", "start"],
      ["maxInputPixels", "--max-input-pixels", "max_input_pixels"],
    ]) {
      expect([LIBRARY_SPELLING(key), CLI_SPELLING(key), API_SPELLING(key)]).toEqual([key, cli, api]);
    }
  });
  it("an OptionError is a VideolmError whose message uses the library's names", () => {
    const e = new OptionError(["minPixels"], (n) => `${n("minPixels")} is wrong`);
    expect(e).toBeInstanceOf(VideolmError);
    expect(e.message).toBe("minPixels is wrong");
    expect(messageFor(e, CLI_SPELLING)).toBe("--min-pixels is wrong");
    expect(messageFor(new VideolmError("--x stays"), API_SPELLING)).toBe("--x stays");
  });
});

describe("the one-frame messages", () => {
  it("nframes 1 (rounds to 0 frames) names nframes and the frame pairs", () => {
    const e = thrown(() => smartNframes({ nframes: 1 }, 100, 25, d)) as OptionError;
    expect(e).toBeInstanceOf(OptionError);
    expect(e.options).toEqual(["nframes"]);
    expect(e.spelled(CLI_SPELLING)).toBe(
      "video sampling: --nframes 1 is too few: a video needs at least 2 frames (Qwen-VL models see frames in pairs); use --nframes 2 or more, or give a single frame as an image",
    );
    expect(e.message).toMatch(/^video sampling: nframes 1 is too few/);
    expect(() => checkFrameOptions({ nframes: 1 })).toThrow(e.message);
    expect(() => checkFrameOptions({ nframes: 2 })).not.toThrow();
  });
  it("max_frames 1 names max_frames; ignored when nframes is given (as qwen-vl-utils)", () => {
    expect(thrown(() => smartNframes({ maxFrames: 1 }, 100, 25, d)).message).toMatch(/^video sampling: maxFrames 1 is too few: a video needs at least 2 frames/);
    expect(smartNframes({ nframes: 4, maxFrames: 1 }, 100, 25, d)).toBe(4);
    expect(() => checkFrameOptions({ nframes: 4, maxFrames: 1 })).not.toThrow();
  });
  it("a one-frame clip says so", () => {
    expect(thrown(() => smartNframes({}, 1, 25, d)).message).toBe(
      "video sampling: at least 2 frames requested but the clip has 1 (Qwen-VL models see video frames in pairs); give a single frame as an image instead",
    );
  });
  it("more frames than the clip has names nframes", () => {
    expect(messageFor(thrown(() => smartNframes({ nframes: 40 }, 25, 10, d)), CLI_SPELLING)).toBe("video sampling: --nframes 40 is more than the 25 frames the clip has; use --nframes 24 or fewer");
  });
  it("start/end and fps/nframes speak the caller's names", () => {
    expect(messageFor(thrown(() => calculateVideoFrameRange({ videoStart: 2, videoEnd: 1 }, 25, 10)), CLI_SPELLING)).toMatch(/\(--start 2 s\) is not before end frame 10 \(--end 1 s\)/);
    expect(messageFor(thrown(() => smartNframes({ fps: 1, nframes: 4 }, 25, 10, d)), API_SPELLING)).toBe("video sampling: give either fps or nframes, not both");
  });
});

describe("min_pixels > max_pixels", () => {
  const video = { frameCount: 50, fps: 25, width: 320, height: 240 };
  it("both given: names both", () => {
    const e = thrown(() => planVideoSampling({ minPixels: 100_000, maxPixels: 1000 }, video, d)) as OptionError;
    expect(e.options).toEqual(["minPixels", "maxPixels"]);
    expect(e.spelled(CLI_SPELLING)).toBe("--min-pixels 100000 is larger than --max-pixels 1000; lower --min-pixels or raise --max-pixels");
    expect(e.spelled(API_SPELLING)).toBe("min_pixels 100000 is larger than max_pixels 1000; lower min_pixels or raise max_pixels");
  });
  it("only max_pixels given, below the model's minimum: names it and the default", () => {
    expect(messageFor(thrown(() => planVideoSampling({ maxPixels: 1000 }, video, d)), CLI_SPELLING)).toBe(
      "--max-pixels 1000 is below the smallest frame size this model uses (--min-pixels defaults to 100352); raise --max-pixels, or lower --min-pixels too",
    );
  });
  it("a consistent range passes", () => {
    expect(() => checkPixelBounds({ minPixels: 1000, maxPixels: 1000 })).not.toThrow();
    expect(planVideoSampling({ minPixels: 28 * 28, maxPixels: 200 * 28 * 28 }, video, d).resizedHeight).toBe(252);
  });
});

describe("the HTTP API names them as it spells them", () => {
  const request = (part: Record<string, unknown>) => ({ messages: [{ role: "user", content: [part, { type: "text", text: "what?" }] }] });
  const apiError = (part: Record<string, unknown>) => thrown(() => parseChatRequest(request(part), LIMITS)) as HttpError;
  it("min_pixels > max_pixels, for images and videos", () => {
    const img = apiError({ type: "image_url", image_url: { url: "file:///x.png", min_pixels: 5000, max_pixels: 1000 } });
    expect(img).toBeInstanceOf(HttpError);
    expect(img.status).toBe(400);
    expect(img.message).toBe("messages[0].content[0].image_url: min_pixels 5000 is larger than max_pixels 1000; lower min_pixels or raise max_pixels");
    expect(img.param).toBe("messages[0].content[0].image_url.min_pixels");
    const vid = apiError({ type: "video_url", video_url: { url: "file:///x.mp4", max_pixels: 1000 }, min_pixels: 5000 });
    expect(vid.message).toMatch(/^messages\[0\]\.content\[0\]\.video_url: min_pixels 5000 is larger than max_pixels 1000/);
  });
  it("nframes 1 and max_frames 1", () => {
    const e = apiError({ type: "video_url", video_url: { url: "file:///x.mp4", nframes: 1 } });
    expect(e.message).toBe(
      "messages[0].content[0].video_url: video sampling: nframes 1 is too few: a video needs at least 2 frames (Qwen-VL models see frames in pairs); use nframes 2 or more, or give a single frame as an image",
    );
    expect(e.param).toBe("messages[0].content[0].video_url.nframes");
    expect(apiError({ type: "video_url", video_url: { url: "file:///x.mp4", max_frames: 1 } }).message).toMatch(/max_frames 1 is too few/);
  });
  it("accepts consistent options", () => {
    expect(() => parseChatRequest(request({ type: "video_url", video_url: { url: "file:///x.mp4", nframes: 2, min_pixels: 1000, max_pixels: 1000 } }), LIMITS)).not.toThrow();
  });
});

describe("the HTTP API's start / end", () => {
  const video = (fields: Record<string, unknown>) => ({ messages: [{ role: "user", content: [{ type: "video_url", video_url: { url: "file:///x.mp4", ...fields } }] }] });
  const options = (fields: Record<string, unknown>) => (parseChatRequest(video(fields), LIMITS).messages[0].content as { options: object }[])[0].options;
  it("take seconds as numbers or as strings in seconds, mm:ss or hh:mm:ss", () => {
    expect(options({ start: 62.5, end: 3723.5 })).toEqual({ start: 62.5, end: 3723.5 });
    expect(options({ start: "1:02.5", end: "1:02:03.5" })).toEqual({ start: 62.5, end: 3723.5 });
    expect(options({ video_start: "10", video_end: "00:00:20" })).toEqual({ start: 10, end: 20 });
  });
  it("refuse a malformed time string naming the field", () => {
    const e = thrown(() => parseChatRequest(video({ end: "1:75" }), LIMITS)) as HttpError;
    expect(e.status).toBe(400);
    expect(e.message).toBe('messages[0].content[0].video_url.end must be a number of seconds or a time string ("75.5", "1:15.5", "0:01:15.5"), got "1:75"');
    expect(e.param).toBe("messages[0].content[0].video_url.end");
    expect(thrown(() => parseChatRequest(video({ start: "2:00", end: "1:00" }), LIMITS)).message).toMatch(/end \(60\) must be after start \(120\)/);
  });
});
