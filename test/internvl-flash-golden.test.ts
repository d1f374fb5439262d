/**
 * InternVL3.5-Flash (the released generate_flash, docs/internvl-flash-reference.md) against its reference
 * (tools/oracle/internvl_flash_reference.py → test/fixtures/internvl_flash/): a tiny original-format Flash checkpoint
 * whose video mixes static and busy frames. Per case: the planned prompt (256 placeholders per tile), the tower's
 * 256- and 64-token rows and the gate's p0 per tile, the compress/keep decisions at the case's thresholds (the
 * checkpoint's, or the request's `media.flash`), the compacted prompt ids and positions, logits at the recorded
 * positions, 12 greedy tokens; and the whole request through VideoModel.generate.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { VideoModel } from "../src/engine/model.js";
import { RequestPreparer } from "../src/engine/preparer.js";
import type { ChatRequestMessage, ContentPart, MediaOptions } from "../src/engine/request.js";
import { FLASH_OUTPUTS } from "../src/families/internvl/flash.js";
import { locateFfmpeg } from "../src/media/ffmpeg.js";
import { VideolmServer } from "../src/server/server.js";
import { materializeTinyCheckpoint, repoRoot, testCacheDir } from "../src/testing/tiny-checkpoint.js";
import { checkGreedyDecoding, checkLogitRecords, checkSummary, concatFloat32, type GreedyGolden, type LogitRecord, type Summary } from "./golden-helpers.js";

const FIXTURES = path.join(repoRoot(), "test/fixtures/internvl_flash");

interface FlashCase {
  media: { type: "image" | "video"; image?: string; frames?: string[] }[];
  question: string;
  input_ids: number[];
  flash: {
    relative_threshold: number;
    absolute_threshold: number;
    threshold_source: { relative: "config" | "request"; absolute: "config" | "request" };
    p0: number[];
    compress: boolean[];
    tokens_saved: number;
  };
  vision: { embeds_256: Summary; embeds_64: Summary };
  compact: { input_ids: number[]; num_tokens: number; position_ids: number[] };
  logit_ids: number[];
  logits: LogitRecord[];
  greedy: GreedyGolden;
}
const golden = JSON.parse(fs.readFileSync(path.join(FIXTURES, "internvl_flash-tiny/golden.json"), "utf8")) as { cases: Record<string, FlashCase> };

/** The case as a request: media parts in order, then the question without the `<image>` / `FrameN: <image>` lines chat() prepends. */
function request(c: FlashCase): { messages: ChatRequestMessage[]; media: MediaOptions } {
  const text = c.question.replace(/^(?:(?:Frame\d+: )?<image>\n)+/, "");
  const content: ContentPart[] = [
    ...c.media.map((m): ContentPart => (m.type === "image" ? { type: "image", image: path.join(FIXTURES, "media", m.image!) } : { type: "video", video: m.frames!.map((f) => path.join(FIXTURES, "media", f)) })),
    { type: "text", text },
  ];
  const f = c.flash;
  const asked = {
    ...(f.threshold_source.relative === "request" ? { relative: f.relative_threshold } : {}),
    ...(f.threshold_source.absolute === "request" ? { absolute: f.absolute_threshold } : {}),
  };
  return { messages: [{ role: "user", content }], media: Object.keys(asked).length > 0 ? { flash: asked } : {} };
}

describe("InternVL-Flash golden: internvl_flash-tiny", () => {
  let model: VideoModel;
  beforeAll(async () => {
    model = await VideoModel.load(await materializeTinyCheckpoint(path.join(FIXTURES, "internvl_flash-tiny")), { cacheDir: testCacheDir(), threads: 1 });
  }, 120_000);

  for (const [name, c] of Object.entries(golden.cases)) {
    it(`${name}: gate p0, decisions, both projectors, compacted ids and positions, logits, greedy tokens`, async () => {
      const { messages, media } = request(c);
      const prepared = await model.prepare(messages, media);
      expect(prepared.inputIds).toEqual(c.input_ids); // planned: 256 placeholders per tile
      // The tower: 256-token rows, 64-token rows and p0 per tile (request order = prompt order).
      const outs = await Promise.all(prepared.visuals.map((v) => model.vision.encode(v.batch)));
      checkSummary(concatFloat32(outs.map((o) => o.embeds)), c.vision.embeds_256, 1e-5);
      checkSummary(concatFloat32(outs.map((o) => o.extra![FLASH_OUTPUTS.compressedEmbeds].data)), c.vision.embeds_64, 1e-5);
      const p0 = outs.flatMap((o) => Array.from(o.extra![FLASH_OUTPUTS.gateP0].data));
      p0.forEach((p, i) => expect(Math.abs(p - c.flash.p0[i])).toBeLessThan(1e-5));

      const prompt = await model.encodeVisuals(prepared);
      expect(prompt.selection?.units.map((u) => u.reduced)).toEqual(c.flash.compress);
      expect(prompt.selection!.plannedTokens - prompt.selection!.keptTokens).toBe(c.flash.tokens_saved);
      expect(prompt.inputIds).toEqual(c.compact.input_ids);
      expect(Array.from(prompt.positionIds)).toEqual(c.compact.position_ids);
      const d = Math.max(await checkLogitRecords(model, prompt, c.logit_ids, c.logits), await checkGreedyDecoding(model, prompt, c.greedy, c.logit_ids));
      const saved = prompt.selection!.plannedTokens - prompt.selection!.keptTokens;
      console.log(`internvl_flash ${name}: max |Δlogit| ${d.toExponential(2)} at max |logit| ${Math.max(...c.logits.map((l) => l.max_abs)).toFixed(2)}; tokens ${c.input_ids.length} → ${prompt.inputIds.length} (${saved} saved)`);
    }, 120_000);
  }

  it("generate(): the compacted request end to end gives the greedy tokens; --no-flash keeps every tile at 256", async () => {
    const c = golden.cases["video-config"];
    const { messages, media } = request(c);
    const r = await model.generate({ messages, media, temperature: 0, maxNewTokens: c.greedy.new_tokens.length });
    expect(r.tokens).toEqual(c.greedy.new_tokens);
    expect(r.promptTokens).toBe(c.compact.num_tokens);
    expect(r.visualTokens?.keptTokens).toBe(r.visualTokens!.plannedTokens - c.flash.tokens_saved);
    const off = await model.generate({ messages, media: { flash: false }, temperature: 0, maxNewTokens: 2 });
    expect(off.promptTokens).toBe(c.input_ids.length);
  }, 120_000);

  it("a request's thresholds are checked", async () => {
    const { messages } = request(golden.cases["video-config"]);
    await expect(model.generate({ messages, media: { flash: { relative: 1.5 } }, maxNewTokens: 1 })).rejects.toThrow(/relative threshold must be a number in \[0, 1\]/);
  });

  it("the server: `flash` in the request body reaches the router, usage reports planned and kept tokens; a bad value is a 400", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "videolm-flash-"));
    const clip = path.join(dir, "clip.mkv");
    execFileSync(locateFfmpeg().ffmpeg, ["-nostdin", "-loglevel", "error", "-y", "-framerate", "2", "-i", path.join(FIXTURES, "media", "video-a-%02d.png"), "-c:v", "ffv1", clip]);
    const server = await VideolmServer.start(model, { port: 0, log: () => {}, allowedMediaDir: dir, modelName: "flash" });
    try {
      const ask = async (extra: Record<string, unknown>) => {
        const r = await fetch(`${server.url}/v1/chat/completions`, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ messages: [{ role: "user", content: [{ type: "video_url", video_url: { url: pathToFileURL(clip).href } }, { type: "text", text: "What changes?" }] }], max_tokens: 3, temperature: 0, ...extra }),
        });
        return { status: r.status, body: (await r.json()) as { usage: { prompt_tokens: number; videolm_visual_tokens?: { planned: number; kept: number; units: { reduced: boolean }[] } }; error?: { param: string } } };
      };
      const local = await model.generate({ messages: [{ role: "user", content: [{ type: "video", video: clip }, { type: "text", text: "What changes?" }] }], media: { flash: { relative: 0.3, absolute: 0.02 } }, temperature: 0, maxNewTokens: 3 });
      const routed = await ask({ flash: { relative: 0.3, absolute: 0.02 } });
      expect(routed.status).toBe(200);
      expect(routed.body.usage.prompt_tokens).toBe(local.promptTokens);
      expect(routed.body.usage.videolm_visual_tokens?.units.map((u) => u.reduced)).toEqual(local.visualTokens!.units.map((u) => u.reduced));
      expect(local.visualTokens!.keptTokens).toBeLessThan(local.visualTokens!.plannedTokens);
      const off = await ask({ flash: false });
      expect(off.body.usage.prompt_tokens).toBe(routed.body.usage.videolm_visual_tokens!.planned + (routed.body.usage.prompt_tokens - routed.body.usage.videolm_visual_tokens!.kept));
      const bad = await ask({ flash: { relative: 2 } });
      expect(bad.status).toBe(400);
      expect(bad.body.error?.param).toBe("flash.relative");
    } finally {
      await server.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it("an original-format checkpoint that ships no chat template gets conversation.py's internvl2_5 (the same prompt ids)", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "videolm-flash-notemplate-"));
    try {
      const src = model.preparer.dir;
      for (const f of fs.readdirSync(src)) if (f !== "chat_template.json") fs.symlinkSync(path.join(src, f), path.join(dir, f));
      const tc = JSON.parse(fs.readFileSync(path.join(src, "tokenizer_config.json"), "utf8")) as Record<string, unknown>;
      delete tc.chat_template;
      fs.rmSync(path.join(dir, "tokenizer_config.json"));
      fs.writeFileSync(path.join(dir, "tokenizer_config.json"), JSON.stringify(tc));
      const preparer = await RequestPreparer.load(dir);
      expect(preparer.template.origin).toMatch(/conversation\.py template "internvl2_5"/);
      const c = golden.cases["video-config"];
      const { messages, media } = request(c);
      expect((await preparer.prepare(messages, media)).inputIds).toEqual(c.input_ids);
      // Another template name is not carried: the checkpoint is refused as before, naming what is missing.
      const cfg = JSON.parse(fs.readFileSync(path.join(src, "config.json"), "utf8")) as Record<string, unknown>;
      fs.rmSync(path.join(dir, "config.json"));
      fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify({ ...cfg, template: "internlm2-chat" }));
      await expect(RequestPreparer.load(dir)).rejects.toThrow(/no chat template/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
