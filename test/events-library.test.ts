/**
 * `VideoModel.ground` / `VideoModel.events` (src/events/run.ts) on the tiny Qwen2-VL checkpoint: what reaches the
 * model (the family's prompt with the planned frames' times, the checkpoint's format when constrained), and how the
 * answer becomes events of the clip. The tiny model's random weights never write a span, so the answers are scripted
 * (the generator is replaced; planning and preparation are the real ones); one call runs the real model end to end.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { GenerateRequest, GenerateResponse } from "../src/engine/model.js";
import { RequestPreparer } from "../src/engine/preparer.js";
import type { TextPart, VideoPart } from "../src/engine/request.js";
import { runEvents, type EventsModel } from "../src/events/run.js";
import { materializeTinyCheckpoint } from "../src/testing/tiny-checkpoint.js";
import { FIXTURES, makeTestVideo, ROOT, tempDir, tinyModel } from "./server-helpers.js";

let dir: string;
let video: string;
let preparer: RequestPreparer;
/** The tiny checkpoint with a `videolm_events` block (as the demo model ships). */
let withOverride: RequestPreparer;

beforeAll(async () => {
  dir = tempDir("videolm-events-lib-");
  video = makeTestVideo(dir); // 2 s, 10 fps
  preparer = (await tinyModel()).preparer;
  const ckpt = await materializeTinyCheckpoint(path.join(FIXTURES, "qwen2-vl-tiny"), path.join(dir, "ckpt"));
  const vpc = path.join(ckpt, "video_preprocessor_config.json");
  const base = fs.existsSync(vpc) ? JSON.parse(fs.readFileSync(vpc, "utf8")) : {};
  const pattern = "from \\d+\\.\\d to \\d+\\.\\d seconds";
  fs.writeFileSync(vpc, JSON.stringify({ ...base, videolm_events: { grounding: "when is the {query} visible?", dense: "list the events.", groundingFormat: { type: "regex", pattern } } }));
  withOverride = await RequestPreparer.load(ckpt);
}, 120_000);
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A model whose generator answers `text` and records what it was asked. */
function scripted(p: RequestPreparer, text: string): EventsModel & { requests: GenerateRequest[] } {
  const requests: GenerateRequest[] = [];
  return {
    preparer: p,
    requests,
    async generate(req: GenerateRequest): Promise<GenerateResponse> {
      requests.push(req);
      return { text, tokens: [1, 2, 3], promptTokens: req.prepared?.inputIds.length ?? 0, finishReason: "stop", options: p.resolveOptions({}), timings: { visionMs: 0, prefillMs: 0, ttftMs: 0, decodeMs: 0, decodeTokensPerSecond: 0, preprocessMs: 0 } };
    },
  };
}

const askedText = (req: GenerateRequest) => ((req.messages[0].content as (VideoPart | TextPart)[]).find((p) => p.type === "text") as TextPart).text;

describe("events on the tiny checkpoint (scripted answers)", () => {
  it("dense: the family's prompt with the planned frames' times; the answer's spans clamped to the video", async () => {
    const model = scripted(preparer, "0.0 - 0.8 seconds, a test pattern scrolls.  1.0 - 2.7 seconds, it keeps scrolling.");
    const r = await runEvents(model, video, "dense", undefined, { media: { fps: 2 } });
    const [req] = model.requests;
    // The frames' times as an independent plan of the same video sees them.
    const plan = await preparer.plan([{ role: "user", content: [{ type: "video", video }, { type: "text", text: "x" }] }], { fps: 2 });
    const times = plan.visuals[0].timestamps!.map((t) => t.toFixed(1)).join(", ");
    expect(askedText(req).split("\n")[0]).toBe(`The video contains ${plan.visuals[0].timestamps!.length} frames sampled at ${times} seconds.`);
    expect(askedText(req)).toContain("Localize a series of activity events");
    expect(req.prepared!.visuals[0].timestamps).toEqual(plan.visuals[0].timestamps);
    expect(req.responseFormat).toBeUndefined(); // Qwen2-VL declares no format
    expect(r.constrained).toBe(false);
    expect(r.duration).toBe(2);
    expect(r.events).toEqual([
      { start: 0, end: 0.8, text: "a test pattern scrolls." },
      { start: 1, end: 2, text: "it keeps scrolling." },
    ]);
    expect(r.parsed).toBe(true);
    expect(r.raw).toBe("0.0 - 0.8 seconds, a test pattern scrolls.  1.0 - 2.7 seconds, it keeps scrolling.");
    expect(r.warnings.join(" ")).toMatch(/2\.7/); // the end past the video was clamped, and said
  });

  it("start / end: the clip's length and the frames' times from its start", async () => {
    const model = scripted(preparer, "from 0.5 to 1.0 seconds");
    const r = await runEvents(model, { type: "video", video, start: 0.5, end: 1.75 }, "grounding", "the pattern", { media: { fps: 4 } });
    expect(r.duration).toBeCloseTo(1.25, 9);
    expect(r.clip.start).toBe(0.5);
    const first = askedText(model.requests[0]).split("\n")[0];
    const sampled = model.requests[0].prepared!.visuals[0].timestamps!;
    expect(sampled[0]).toBeGreaterThanOrEqual(0.5);
    expect(first).toBe(`The video contains ${sampled.length} frames sampled at ${sampled.map((t) => (t - 0.5).toFixed(1)).join(", ")} seconds.`);
    expect(r.events).toEqual([{ start: 0.5, end: 1, text: "the pattern" }]); // grounding: the query names a span given no words
  });

  it("a checkpoint's videolm_events: its phrasing, its format held by default, --no-constrained frees it", async () => {
    const model = scripted(withOverride, "from 0.5 to 1.5 seconds");
    const r = await runEvents(model, video, "grounding", "The Test Pattern.", {});
    expect(askedText(model.requests[0])).toBe("when is the test pattern visible?");
    expect(model.requests[0].responseFormat).toEqual({ type: "regex", pattern: "from \\d+\\.\\d to \\d+\\.\\d seconds" });
    expect(r.constrained).toBe(true);
    expect(r.events).toEqual([{ start: 0.5, end: 1.5, text: "The Test Pattern." }]);
    await runEvents(model, video, "grounding", "the test pattern", { constrained: false });
    expect(model.requests[1].responseFormat).toBeUndefined();
    // Dense declares no format there: asking for constraint says so.
    const d = await runEvents(model, video, "dense", undefined, { constrained: true });
    expect(model.requests[2].responseFormat).toBeUndefined();
    expect(d.warnings[0]).toMatch(/declares no output format/);
  });

  it("an answer without a span: no events, the text kept, parsed false", async () => {
    const r = await runEvents(scripted(preparer, "I cannot tell."), video, "grounding", "a cat", {});
    expect(r).toMatchObject({ events: [], parsed: false, raw: "I cannot tell.", task: "grounding", query: "a cat" });
    expect(r.warnings.length).toBeGreaterThan(0);
  });

  it("refuses a grounding call without a query and options it cannot use", async () => {
    await expect(runEvents(scripted(preparer, ""), video, "grounding", "  ", {})).rejects.toThrow(/give a query/);
    await expect(runEvents(scripted(preparer, ""), video, "dense", undefined, { temperature: -1 })).rejects.toThrow(/temperature/);
  });
});

describe("families that read times from the file, and JSON answers", () => {
  it("Qwen3-VL: the frames' <t seconds> are the file's, so an answer about a clip from 0.5 s is moved to the clip's start", async () => {
    const qwen3 = await RequestPreparer.load(await materializeTinyCheckpoint(path.join(ROOT, "test/fixtures/qwen3-vl/qwen3-vl-tiny"), path.join(dir, "qwen3")));
    const model = scripted(qwen3, "The event happens in 0.8 - 1.5 seconds.");
    const r = await runEvents(model, { type: "video", video, start: 0.5, fps: 2 }, "grounding", "the pattern", {});
    // The prompt the model saw carries the file's times (first frame pair after 0.5 s).
    expect(qwen3.tokenizer.decode(model.requests[0].prepared!.inputIds)).toMatch(/<0\.[5-9] seconds>/);
    expect(model.requests[0].prepared!.visuals[0].timestamps![0]).toBeGreaterThanOrEqual(0.5);
    expect(r.clip).toEqual({ start: 0.5, duration: 1.5 });
    expect(r.events).toEqual([{ start: 0.3, end: 1, text: "the pattern" }].map((e) => ({ ...e, start: expect.closeTo(e.start, 9), end: expect.closeTo(e.end, 9) })));
  });

  it("Qwen2.5-VL dense: held to the cookbook's JSON schema; its answer read as mm:ss.ff", async () => {
    const qwen25 = await RequestPreparer.load(await materializeTinyCheckpoint(path.join(ROOT, "test/fixtures/qwen2_5-vl/qwen2_5-vl-tiny"), path.join(dir, "qwen25")));
    const model = scripted(qwen25, '[{"start_time": "00:00.50", "end_time": "00:01.20", "description": "a pattern scrolls."}]');
    const r = await runEvents(model, video, "dense", undefined, { media: { fps: 2 } });
    expect(model.requests[0].responseFormat).toMatchObject({ type: "json_schema", json_schema: { name: "dense_captions" } });
    expect(r.constrained).toBe(true);
    expect(r.events).toEqual([{ start: 0.5, end: 1.2, text: "a pattern scrolls." }]);
  });
});

describe("VideoModel.events / ground on the real tiny model", () => {
  it("runs end to end: raw is the generated text, events only what parses from it", async () => {
    const model = await tinyModel();
    const r = await model.ground(video, "the pattern", { maxNewTokens: 6, media: { fps: 2 } });
    expect(r.raw).toBe(r.response.text);
    expect(r.response.tokens.length).toBeLessThanOrEqual(6);
    expect(r.parsed).toBe(r.events.length > 0);
    expect(r.duration).toBe(2);
    const d = await model.events({ type: "video", video, fps: 2 }, { maxNewTokens: 4 });
    expect(d.task).toBe("dense");
    expect(d.raw).toBe(d.response.text);
  }, 120_000);
});
