/** The HTTP API's `video_url.policy` / `policy_task` (the seed1.5 sampling policy), refused combinations in API names. */
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

describe("video_url.policy", () => {
  it("takes policy seed1.5 with a task or an fps", () => {
    expect(mediaOf(parseChatRequest(body({ policy: "seed1.5", policy_task: "counting" }), LIMITS))).toEqual({ policy: "seed1.5", policyTask: "counting" });
    expect(mediaOf(parseChatRequest(body({ policy: "seed1.5", fps: 2 }), LIMITS))).toEqual({ policy: "seed1.5", fps: 2 });
  });

  it("refuses unknown policies and tasks, and the options the policy decides, in the API's names", () => {
    const unknown = errorOf(() => parseChatRequest(body({ policy: "seed2" }), LIMITS));
    expect(unknown.status).toBe(400);
    expect(unknown.message).toMatch(/policy must be one of seed1\.5, got "seed2"/);
    expect(unknown.param).toBe("messages[0].content[0].video_url.policy");
    expect(errorOf(() => parseChatRequest(body({ policy: "seed1.5", policy_task: "fast" }), LIMITS)).message).toMatch(/policy_task must be one of general, detail, motion, counting/);
    const decided = errorOf(() => parseChatRequest(body({ policy: "seed1.5", max_pixels: 1000 }), LIMITS));
    expect(decided.message).toMatch(/max_pixels cannot be combined with policy seed1\.5/);
    expect(decided.param).toBe("messages[0].content[0].video_url.max_pixels");
    expect(errorOf(() => parseChatRequest(body({ policy_task: "detail" }), LIMITS)).message).toMatch(/policy_task applies to a sampling policy: give policy seed1\.5 too/);
    expect(errorOf(() => parseChatRequest(body({ policy: 15 }), LIMITS)).message).toMatch(/policy must be a string/);
  });
});
