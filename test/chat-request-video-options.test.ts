/** Video options of the HTTP API that are not plain numbers, and limit messages in the API's own names. */
import { describe, expect, it } from "vitest";
import { parseChatRequest } from "../src/server/chat-request.js";
import { HttpError } from "../src/server/errors.js";

const LIMITS = { maxTokens: 4096, maxFrames: 256, maxFramePixels: 1_000_000, maxMediaParts: 8 };
const body = (video: Record<string, unknown>) => ({ messages: [{ role: "user", content: [{ type: "video_url", video_url: { url: "upload://x", ...video } }, { type: "text", text: "?" }] }] });
const mediaOf = (r: ReturnType<typeof parseChatRequest>) => (r.messages[0].content as unknown as { kind: string; options: Record<string, unknown> }[])[0].options;

function errorOf(fn: () => unknown): HttpError {
  try {
    fn();
  } catch (e) {
    return e as HttpError;
  }
  throw new Error("no error");
}

describe("video_url options", () => {
  it("frame_times: presentation | reference, as --frame-times", () => {
    expect(mediaOf(parseChatRequest(body({ frame_times: "reference" }), LIMITS)).frameTimes).toBe("reference");
    expect(mediaOf(parseChatRequest(body({ frame_times: "presentation", fps: 1 }), LIMITS))).toEqual({ frameTimes: "presentation", fps: 1 });
    const e = errorOf(() => parseChatRequest(body({ frame_times: "pts" }), LIMITS));
    expect(e.status).toBe(400);
    expect(e.message).toMatch(/frame_times must be "presentation" or "reference"/);
    expect(e.param).toBe("messages[0].content[0].video_url.frame_times");
  });

  it("limit messages name the options as the API spells them", () => {
    expect(errorOf(() => parseChatRequest(body({ min_frames: 300 }), LIMITS)).message).toMatch(/min_frames = 300 is more than the server's limit/);
    expect(errorOf(() => parseChatRequest(body({ max_pixels: 2_000_000 }), LIMITS)).message).toMatch(/max_pixels = 2000000 is more than/);
    expect(errorOf(() => parseChatRequest(body({ total_pixels: 1e12 }), LIMITS)).message).toMatch(/total_pixels = 1000000000000 is more than/);
  });
});
