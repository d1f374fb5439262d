/**
 * The web app driven as a person would, in headless Chromium (Debian `chromium` + `playwright-core`): choose a video,
 * see the plan (thumbnails, times, tokens), ask, watch the streamed answer, follow a timestamp link to seek the
 * video, open the collapsed thinking. Skipped with a message when Chromium or playwright-core is missing.
 *
 * Server A runs the tiny checkpoint end to end. Server B shares its preparer but scripts the generation (the tiny
 * model's random weights never say "1.5 s"), to check how the page renders times and a <think> block.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { GenerateRequest, GenerateResponse } from "../src/engine/model.js";
import { VideolmServer } from "../src/server/server.js";
import { postJson, startServer, tempDir, tinyModel } from "./server-helpers.js";
import { launchChromium, missing, type Context, type Page } from "./web-harness.js";
import { execFileSync } from "node:child_process";
import { locateFfmpeg } from "../src/media/ffmpeg.js";

if (missing) console.warn(`web-app.test.ts skipped: ${missing}`);

describe.skipIf(missing !== undefined)("web app in Chromium", () => {
  let real: VideolmServer;
  let scripted: VideolmServer;
  let context: Context;
  let dir: string;
  let video: string;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    dir = tempDir("videolm-web-");
    // VP9 in WebM: every Chromium build plays it (H.264 needs proprietary codecs).
    video = path.join(dir, "clip.webm");
    execFileSync(locateFfmpeg().ffmpeg, ["-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=56x56:rate=10", "-t", "2", "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-pix_fmt", "yuv420p", video]);
    real = await startServer({ modelName: "tiny" });
    const model = await tinyModel();
    const script = ["<think>", "The ball is", " left first.", "</think>", "\n\nAt 0:01 the", " ball moves; by 1.5 s", " it stops. (Not at 9:59.)"];
    scripted = await VideolmServer.start(
      {
        preparer: model.preparer,
        async generate(req: GenerateRequest): Promise<GenerateResponse> {
          for (const [i, text] of script.entries()) {
            await new Promise((r) => setTimeout(r, 30));
            req.onToken?.({ token: 100 + i, text, logprob: -0.1 });
          }
          return { text: script.join(""), tokens: script.map((_, i) => 100 + i), promptTokens: req.prepared?.inputIds.length ?? 0, finishReason: "stop", options: model.preparer.resolveOptions({}), timings: { visionMs: 0, prefillMs: 0, ttftMs: 0, decodeMs: 0, decodeTokensPerSecond: 0, preprocessMs: 0 } };
        },
      },
      { port: 0, log: () => {}, modelName: "tiny" },
    );
    context = await launchChromium();
  });
  afterAll(async () => {
    await context?.close();
    await real?.close();
    await scripted?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function openWithVideo(base: string): Promise<Page> {
    const page = await context.newPage();
    page.on("pageerror", (e) => pageErrors.push(e.message ?? String(e)));
    await page.goto(base + "/");
    await page.waitForFunction(() => document.getElementById('model')!.textContent!.includes('tiny'));
    await page.locator("#file").setInputFiles(video);
    // The plan: 4 thumbnails (2 s × 2 fps) with their times, and the token count (grid 2×24×24 / 4 = 288).
    await page.waitForFunction(() => document.querySelectorAll('#frames img').length === 4, undefined, { timeout: 60_000 });
    return page;
  }

  it("upload → plan → ask → streamed answer, as the API answers it", async () => {
    const page = await openWithVideo(real.url);
    expect(await page.locator("#plan-summary").textContent()).toMatch(/4 frames at 2 fps · 336×336 px · 288 visual tokens/);
    const captions = await page.evaluate<string[]>(() => [...document.querySelectorAll('#frames span')].map((s) => s.textContent ?? ''));
    expect(captions).toEqual(["0:00 · #0", "0:00.6 · #6", "0:01.3 · #13", "0:01.9 · #19"]);
    // Every thumbnail loads (a JPEG from /v1/plans/…).
    await page.waitForFunction(() => [...document.querySelectorAll<HTMLImageElement>('#frames img')].every((i) => i.complete && i.naturalWidth === 240), undefined, { timeout: 10_000 });

    // Changing fps re-plans: 4 fps → 8 frames.
    await page.locator("#fps").fill("4");
    await page.waitForFunction(() => document.querySelectorAll('#frames img').length === 8, undefined, { timeout: 30_000 });
    await page.locator("#fps").fill("2");
    await page.waitForFunction(() => document.querySelectorAll('#frames img').length === 4, undefined, { timeout: 30_000 });

    await page.locator("#max-tokens").fill("8");
    await page.locator("#question").fill("What happens?");
    await page.locator("#question").press("Control+Enter"); // keyboard: Ctrl+Enter asks
    await page.waitForFunction(() => document.getElementById('answer')!.dataset.state === 'done', undefined, { timeout: 60_000 });
    const shown = await page.locator("#answer-text").textContent();
    const upload = await page.evaluate<string>(() => document.getElementById('app')!.dataset.upload!);
    const api = await (await postJson(real.url, "/v1/chat/completions", { messages: [{ role: "user", content: [{ type: "video_url", video_url: { url: upload, fps: 2 } }, { type: "text", text: "What happens?" }] }], max_tokens: 8 })).json();
    expect(shown).toBe(api.choices[0].message.content);
    expect(await page.locator("#answer-stats").textContent()).toMatch(/^8 tokens · \d+ prompt tokens/);
    expect(await page.locator("#error").isVisible()).toBe(false);
    // Token pruning 75%: 4 frames = 2 frame pairs, EVS keeps at least the first pair whole (here exactly it), so after
    // the answer the second pair's thumbnails are shaded and the stats say what was saved.
    expect(await page.evaluate<number>(() => document.querySelectorAll("#frames li.reduced").length)).toBe(0);
    await page.evaluate(() => {
      const select = document.getElementById("prune") as HTMLSelectElement;
      select.value = "0.75";
      select.dispatchEvent(new Event("input", { bubbles: true }));
    });
    await page.waitForFunction(() => document.getElementById("plan-summary")!.textContent!.includes("pruning 75%: 144 kept"), undefined, { timeout: 30_000 });
    await page.locator("#question").press("Control+Enter");
    await page.waitForFunction(() => document.getElementById('answer')!.dataset.state === 'done' && document.getElementById('answer-stats')!.textContent!.includes('visual tokens'), undefined, { timeout: 60_000 });
    expect(await page.locator("#answer-stats").textContent()).toMatch(/288 → 144 visual tokens \(−50%, EVS/);
    expect(await page.evaluate<string[]>(() => [...document.querySelectorAll("#frames li")].map((li) => (li.classList.contains("reduced") ? (li.querySelector("button") as HTMLElement).dataset.kept! : "whole")))).toEqual(["whole", "whole", "0% kept", "0% kept"]);
    expect(pageErrors).toEqual([]);
  });

  it("times in the answer seek the video; thinking is collapsed; errors are shown plainly", async () => {
    const page = await openWithVideo(scripted.url);
    await page.locator("#question").fill("Where does the ball go?");
    await page.locator("#ask").click();
    await page.waitForFunction(() => document.getElementById('answer')!.dataset.state === 'done', undefined, { timeout: 30_000 });
    expect(await page.locator("#answer-text").textContent()).toBe("At 0:01 the ball moves; by 1.5 s it stops. (Not at 9:59.)");
    // Times within the 2 s video become links; 9:59 is past its end and stays text.
    const links = page.locator("#answer-text a.timestamp");
    expect(await links.count()).toBe(2);
    expect(await links.nth(0).textContent()).toBe("0:01");
    expect(await links.nth(1).textContent()).toBe("1.5 s");
    // Keyboard: focus the link and press Enter.
    await links.nth(1).focus();
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => Math.abs(document.querySelector<HTMLVideoElement>('#video')!.currentTime - 1.5) < 0.05 && !document.querySelector<HTMLVideoElement>('#video')!.seeking, undefined, { timeout: 10_000 });
    await links.nth(0).click();
    await page.waitForFunction(() => Math.abs(document.querySelector<HTMLVideoElement>('#video')!.currentTime - 1) < 0.05, undefined, { timeout: 10_000 });
    // The <think> block is a collapsed <details>.
    expect(await page.locator("#thinking").isVisible()).toBe(true);
    expect(await page.evaluate<boolean>(() => document.querySelector<HTMLDetailsElement>('#thinking')!.open)).toBe(false);
    await page.locator("#thinking summary").click();
    expect(await page.locator("#reasoning").textContent()).toBe("The ball is left first.");
    expect(await page.locator("#reasoning").isVisible()).toBe(true);

    // An error from the server is shown as its message.
    await page.locator("#max-frames").fill("1000");
    await page.waitForFunction(() => !document.getElementById('error')!.hidden, undefined, { timeout: 10_000 });
    expect(await page.locator("#error").textContent()).toMatch(/max_frames = 1000 is more than the server's limit of 256 frames per request/);
    expect(await page.locator("#plan-summary").textContent()).toBe("No plan for these settings.");
    expect(pageErrors).toEqual([]);
  });
});
