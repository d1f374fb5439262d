/**
 * The events prompts: each family's (src/families/event-prompts.ts, texts checked against the published sources
 * quoted in the research notes), the checkpoint's `videolm_events` override, the clip a model saw, and times counted
 * from the file's start moved to the clip's.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { familyForModelType, supportedModelTypes } from "../src/families/registry.js";
import { MM_SS_FF_PATTERN, QWEN_DENSE_SCHEMA } from "../src/families/event-prompts.js";
import { checkpointEventPrompts, eventPromptFor, normaliseQuery } from "../src/events/prompts.js";
import { clipFrameTimes, clipOf } from "../src/events/clip.js";
import { parseAnswer } from "../src/events/run.js";
import { validateResponseFormat } from "../src/generation/constrained/response-format.js";
import type { VisualPlan } from "../src/engine/request.js";

const noCheckpoint = fs.mkdtempSync(path.join(os.tmpdir(), "videolm-events-none-"));
const prompt = (modelType: string, task: "grounding" | "dense", query?: string, frameTimes?: number[]) =>
  eventPromptFor(familyForModelType(modelType, "config.json"), noCheckpoint, { task, query, frameTimes });

describe("family event prompts", () => {
  it("every declared format is one constrained decoding accepts", () => {
    for (const type of supportedModelTypes()) {
      for (const task of ["grounding", "dense"] as const) {
        const format = prompt(type, task, "x").responseFormat;
        if (format) expect(validateResponseFormat(format), `${type} ${task}`).toEqual(format);
      }
    }
  });

  it("every family has one, for both tasks", () => {
    for (const type of supportedModelTypes()) {
      for (const task of ["grounding", "dense"] as const) {
        const p = prompt(type, task, "the dog jumps");
        expect(p.text.length, type).toBeGreaterThan(20);
        if (task === "grounding") expect(p.text, type).toContain("the dog jumps");
        expect(["clip", "source"]).toContain(p.timeOrigin);
      }
    }
  });

  it("Qwen2.5-VL: the cookbook's sentences verbatim; dense held to the cookbook's JSON list with mm:ss.ff times", () => {
    // QwenLM/Qwen2.5-VL @ f0af299 cookbooks/video_understanding.ipynb cells 12 and 14.
    expect(prompt("qwen2_5_vl", "grounding", "seasoning the steak").text).toBe("Give the query: 'seasoning the steak', when does the described content occur in the video?");
    const dense = prompt("qwen2_5_vl", "dense");
    expect(dense.text).toBe(
      "Localize a series of activity events in the video, output the start and end timestamp for each event, and describe each event with sentences. Provide the result in json format with 'mm:ss.ff' format for time depiction.",
    );
    expect(dense.timeOrigin).toBe("clip");
    expect(dense.responseFormat).toEqual({ type: "json_schema", json_schema: { name: "dense_captions", schema: QWEN_DENSE_SCHEMA, strict: true } });
    // The schema's keys and time pattern are those of the cookbook's answer (block 2 of the notes).
    const answer = [{ start_time: "00:00.00", end_time: "00:21.80", description: "A person is slicing meat on a cutting board." }];
    const item = (QWEN_DENSE_SCHEMA.items as { properties: Record<string, unknown>; required: string[] });
    expect(Object.keys(answer[0]).sort()).toEqual([...item.required].sort());
    expect(Object.keys(item.properties).sort()).toEqual(Object.keys(answer[0]).sort());
    for (const t of ["00:00.00", "00:21.80", "04:19.80"]) expect(t).toMatch(new RegExp(MM_SS_FF_PATTERN));
    for (const t of ["0:21.80", "00:21.8", "21.80", "00:21"]) expect(t).not.toMatch(new RegExp(MM_SS_FF_PATTERN));
    expect(prompt("qwen2_5_vl", "grounding", "x").responseFormat).toBeUndefined(); // free text: "… happens in 64.0 - 72.0 seconds."
  });

  it("Qwen3-VL family (3-VL, 3-VL-MoE, 3.5): times from the file (the <t seconds> text), dense held to JSON only", () => {
    for (const type of ["qwen3_vl", "qwen3_vl_moe", "qwen3_5", "qwen3_5_moe"]) {
      const dense = prompt(type, "dense");
      expect(dense.text).toContain("Provide the result in json format with 'mm:ss.ff' format");
      expect(dense.responseFormat).toEqual({ type: "json_object" });
      expect(dense.timeOrigin).toBe("source");
      const g = prompt(type, "grounding", "a bike passes.");
      expect(g.text).toBe("Give the query: 'a bike passes', when does the described content occur in the video? Answer with the start and end time in seconds.");
      expect(g.timeOrigin).toBe("source");
    }
  });

  it("InternVL and Qwen2-VL: the frames' clip times as text, only when given; VideoLLaMA3 reads them from its frame labels", () => {
    for (const type of ["internvl", "qwen2_vl"]) {
      const withTimes = prompt(type, "grounding", "the door opens", [0, 0.5, 1.04]);
      expect(withTimes.text.split("\n")[0]).toBe("The video contains 3 frames sampled at 0.0, 0.5, 1.0 seconds.");
      expect(withTimes.text).toContain("Localize the visual content described by the given textual query 'the door opens' in the video");
      expect(prompt(type, "dense").text).not.toContain("frames sampled");
      expect(withTimes.timeOrigin).toBe("clip");
    }
    const v = prompt("video_llama_3", "dense", undefined, [0, 1]);
    expect(v.text).not.toContain("frames sampled");
    expect(v.timeOrigin).toBe("source");
  });
});

describe("checkpoint override (videolm_events)", () => {
  function checkpointWith(block: unknown): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "videolm-events-ckpt-"));
    fs.writeFileSync(path.join(dir, "video_preprocessor_config.json"), JSON.stringify({ fps: 4, videolm_events: block }));
    return dir;
  }
  const qwen2vl = familyForModelType("qwen2_vl", "config.json");

  it("replaces the family's phrasing and format, with the query normalised", () => {
    const dir = checkpointWith({
      grounding: "when is the {query} visible?",
      dense: "list the events.",
      groundingFormat: { type: "regex", pattern: "from \\d+\\.\\d to \\d+\\.\\d seconds" },
    });
    const g = eventPromptFor(qwen2vl, dir, { task: "grounding", query: "  The Red  circle? ", frameTimes: [0, 1] });
    expect(g.text).toBe("when is the red circle visible?");
    expect(g.responseFormat).toEqual({ type: "regex", pattern: "from \\d+\\.\\d to \\d+\\.\\d seconds" });
    expect(g.source).toMatch(/videolm_events\.grounding/);
    const d = eventPromptFor(qwen2vl, dir, { task: "dense" });
    expect(d.text).toBe("list the events.");
    expect(d.responseFormat).toBeUndefined();
  });

  it("normalises a query as the template needs", () => {
    expect(normaliseQuery("when is the {query} visible?", "the blue square.")).toBe("blue square");
    expect(normaliseQuery("when is {query} visible?", "The blue square")).toBe("the blue square");
    expect(normaliseQuery("when is a {query}?", "An Owl!")).toBe("owl");
  });

  it("a task the block does not name keeps the family's prompt", () => {
    const dir = checkpointWith({ dense: "list the events." });
    expect(eventPromptFor(qwen2vl, dir, { task: "grounding", query: "x" }).text).toContain("Localize the visual content");
  });

  it("refuses a malformed block, naming the key", () => {
    expect(() => checkpointEventPrompts(checkpointWith({ grounding: "no placeholder" }))).toThrow(/videolm_events\.grounding must contain \{query\}/);
    expect(() => checkpointEventPrompts(checkpointWith({ dense: 3 }))).toThrow(/videolm_events\.dense must be a non-empty string/);
    expect(() => checkpointEventPrompts(checkpointWith({ denseFormat: { type: "regex", pattern: "(" } }))).toThrow(/video_preprocessor_config\.json: videolm_events\.denseFormat\.pattern "\(": missing '\)'/);
    expect(() => checkpointEventPrompts(checkpointWith({ denseFormat: { type: "grammar" } }))).toThrow(/videolm_events\.denseFormat\.type must be/);
    expect(() => checkpointEventPrompts(checkpointWith([]))).toThrow(/videolm_events must be an object/);
  });
});

describe("the clip a model saw", () => {
  const visual = (o: Partial<VisualPlan>): VisualPlan => ({ kind: "video", source: "v", grid: [4, 2, 2], tokens: 4, size: [28, 28], ...o });

  it("is the file's length (frames / fps), cut by start and end", () => {
    const v = visual({ timestamps: [0, 0.5, 1, 1.5], resample: { frameCount: 100, fps: 25, width: 1, height: 1, options: {} } });
    expect(clipOf(v, {})).toEqual({ start: 0, duration: 4 });
    expect(clipOf(v, { start: 1 })).toEqual({ start: 1, duration: 3 });
    expect(clipOf(v, { start: 1, end: 2.5 })).toEqual({ start: 1, duration: 1.5 });
    expect(clipOf(v, { end: 9 })).toEqual({ start: 0, duration: 4 }); // an end past the file is the file's end
  });

  it("a list of frames lasts its frames' span plus one frame", () => {
    expect(clipOf(visual({ timestamps: [0, 0.5, 1, 1.5], sampleFps: 2 }), {})).toEqual({ start: 0, duration: 2 });
  });

  it("frame times count from the clip's start", () => {
    expect(clipFrameTimes(visual({ timestamps: [2, 2.5, 3] }), { start: 2, duration: 1.5 })).toEqual([0, 0.5, 1]);
  });
});

describe("times counted from the file's start", () => {
  it("are moved to the clip's start and clamped to it (timeOrigin source); clip-origin times are not moved", () => {
    const clip = { start: 10, duration: 5 };
    const text = "12.0 - 14.0 seconds, a dog runs.\n8.0 - 11.0 seconds, a cat sits.\n2.0 - 4.0 seconds, nothing.";
    const source = parseAnswer(text, { task: "dense", clip, timeOrigin: "source" });
    expect(source.events.map((e) => [e.start, e.end])).toEqual([
      [0, 1],
      [2, 4],
    ]);
    expect(source.duration).toBe(5);
    expect(source.warnings.join(" ")).toMatch(/before the clip's start at 10 s: start clamped to 0/);
    expect(source.warnings.join(" ")).toMatch(/ends before the clip's start at 10 s: dropped/);
    const fromClip = parseAnswer(text, { task: "dense", clip, timeOrigin: "clip" });
    expect(fromClip.events.map((e) => [e.start, e.end])).toEqual([[2, 4]]); // 8–11 and 12–14 lie outside a 5 s clip
  });
});
