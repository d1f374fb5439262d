/**
 * The web app's events in headless Chromium (test/web-harness.ts): "List events" and "Find moments" draw the spans
 * on a timeline under the video (one bar per event, placed by its start and end over the video's length), hovering or
 * focusing a bar shows its times and text, selecting a bar or a list entry seeks the video to the event's start, the
 * SRT / WebVTT downloads hold what the library's formatEvents writes, and a chat answer carrying events draws them.
 *
 * The server shares the tiny checkpoint's preparer (real uploads, plans and prompts) but scripts the generation: the
 * tiny model's random weights never say "0.5 - 1.0 seconds". Expected spans are the script's numbers, by hand.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { GenerateRequest, GenerateResponse } from "../src/engine/model.js";
import { formatEvents } from "../src/events/format.js";
import { locateFfmpeg } from "../src/media/ffmpeg.js";
import { VideolmServer } from "../src/server/server.js";
import { postJson, tempDir, tinyModel } from "./server-helpers.js";
import { launchChromium, missing, type Context, type Page } from "./web-harness.js";

if (missing) console.warn(`web-app-events.test.ts skipped: ${missing}`);

const DENSE = "0.5 - 1.0 seconds, the square appears.\n1.2 - 1.8 seconds, the square turns red.";
const DENSE_SPANS = [[0.5, 1], [1.2, 1.8]];
const GROUNDING = "The given query happens in 0.4 - 1.2 seconds.";

describe.skipIf(missing !== undefined)("web app events in Chromium", () => {
  let server: VideolmServer;
  let context: Context;
  let dir: string;
  let video: string;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    dir = tempDir("videolm-web-events-");
    video = path.join(dir, "clip.webm"); // VP9 in WebM: every Chromium build plays it
    execFileSync(locateFfmpeg().ffmpeg, ["-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=56x56:rate=10", "-t", "2", "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-pix_fmt", "yuv420p", video]);
    const model = await tinyModel();
    server = await VideolmServer.start(
      {
        preparer: model.preparer,
        async generate(req: GenerateRequest): Promise<GenerateResponse> {
          // The family's grounding prompt (TimeChat's "Localize the visual content …") gets the span; anything else the list.
          const prompt = req.prepared?.promptText ?? "";
          const text = prompt.includes("Localize the visual content") ? GROUNDING : DENSE;
          req.onToken?.({ token: 100, text, logprob: -0.1 });
          return { text, tokens: [100], promptTokens: req.prepared?.inputIds.length ?? 0, finishReason: "stop", options: model.preparer.resolveOptions({}), timings: { visionMs: 0, prefillMs: 0, ttftMs: 0, decodeMs: 0, decodeTokensPerSecond: 0, preprocessMs: 0 } };
        },
      },
      { port: 0, log: () => {}, modelName: "tiny" },
    );
    context = await launchChromium();
  });
  afterAll(async () => {
    await context?.close();
    await server?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function openWithVideo(): Promise<Page> {
    const page = await context.newPage();
    page.on("pageerror", (e) => pageErrors.push(e.message ?? String(e)));
    await page.goto(server.url + "/");
    await page.waitForFunction(() => document.getElementById("model")!.textContent!.includes("tiny"));
    await page.locator("#file").setInputFiles(video);
    await page.waitForFunction(() => document.querySelectorAll("#frames img").length === 4 && (document.getElementById("video") as HTMLVideoElement).duration > 0, undefined, { timeout: 60_000 });
    return page;
  }

  /** Each bar's [left, right] edge as a fraction of the track's width, measured from the drawn boxes. */
  const barEdges = (page: Page) =>
    page.evaluate<number[][]>(() => {
      const track = document.getElementById("timeline-track")!.getBoundingClientRect();
      return [...document.querySelectorAll("#timeline-track .event-bar")].map((b) => {
        const r = b.getBoundingClientRect();
        return [(r.left - track.left - 1) / (track.width - 2), (r.right - track.left - 1) / (track.width - 2)]; // inside its 1 px border
      });
    });
  const currentTime = (page: Page) => page.evaluate<number>(() => (document.getElementById("video") as HTMLVideoElement).currentTime);
  const waitForTime = (page: Page, t: number) =>
    page.waitForFunction((want: number) => {
      const v = document.getElementById("video") as HTMLVideoElement;
      return Math.abs(v.currentTime - want) < 0.02 && !v.seeking;
    }, t, { timeout: 10_000 });

  it("List events: bars over the video's length, hover/focus text, click and keyboard seek, list entries, SRT/VTT downloads", async () => {
    const page = await openWithVideo();
    expect(await page.locator("#timeline").isVisible()).toBe(false);
    await page.locator("#list-events").click();
    await page.waitForFunction(() => document.querySelectorAll("#timeline-track .event-bar").length === 2, undefined, { timeout: 60_000 });
    expect(await page.locator("#events-status").textContent()).toBe("2 events.");

    // Drawn where the spans are: start / duration and end / duration of the video the page plays.
    const duration = await page.evaluate<number>(() => (document.getElementById("video") as HTMLVideoElement).duration);
    const edges = await barEdges(page);
    expect(edges.length).toBe(2);
    edges.forEach(([left, right], i) => {
      expect(left).toBeCloseTo(DENSE_SPANS[i][0] / duration, 2);
      expect(right).toBeCloseTo(DENSE_SPANS[i][1] / duration, 2);
    });

    // The API's answer for the same request: its events are what the list, the tooltips and the downloads hold.
    const upload = await page.evaluate<string>(() => document.getElementById("app")!.dataset.upload!);
    const api = await (await postJson(server.url, "/v1/events", { video: { url: upload }, task: "dense" })).json();
    expect(api.events.map((e: { start: number; end: number }) => [e.start, e.end])).toEqual(DENSE_SPANS);
    const texts = await page.evaluate<string[]>(() => [...document.querySelectorAll("#events-list .event-text")].map((s) => s.textContent ?? ""));
    expect(texts).toEqual(api.events.map((e: { text: string }) => e.text));
    expect(await page.evaluate<string[]>(() => [...document.querySelectorAll("#events-list .event-time")].map((s) => s.textContent ?? ""))).toEqual(["0:00.5–0:01", "0:01.2–0:01.8"]);

    // Hover shows the times and text; the bars are labelled buttons.
    const bars = page.locator("#timeline-track .event-bar");
    expect(await page.locator("#event-tip").isVisible()).toBe(false);
    await bars.nth(1).hover();
    expect(await page.locator("#event-tip").isVisible()).toBe(true);
    expect(await page.locator("#event-tip").textContent()).toBe(`0:01.2–0:01.8 · ${api.events[1].text}`);
    // Near the end of the timeline the text stays within its width.
    expect(
      await page.evaluate<boolean>(() => {
        const track = document.getElementById("timeline-track")!.getBoundingClientRect();
        const tip = document.getElementById("event-tip")!.getBoundingClientRect();
        return tip.left >= track.left - 0.5 && tip.right <= track.right + 0.5;
      }),
    ).toBe(true);
    expect(await bars.nth(0).getAttribute("aria-label")).toBe(`Event 1 of 2: 0:00.5–0:01 · ${api.events[0].text}. Jump to 0:00.5`);
    expect(await page.evaluate<string[]>(() => [...document.querySelectorAll("#timeline-track .event-bar")].map((b) => b.tagName))).toEqual(["BUTTON", "BUTTON"]);

    // Click seeks to the event's start (the video stays paused, showing that frame); the bar is then current.
    await bars.nth(1).click();
    await waitForTime(page, 1.2);
    expect(await page.evaluate<boolean>(() => (document.getElementById("video") as HTMLVideoElement).paused)).toBe(true);
    await page.waitForFunction(() => document.querySelectorAll("#timeline-track .event-bar")[1].getAttribute("aria-current") === "true");
    // A list entry seeks too.
    await page.locator("#events-list .event-item").first().click();
    await waitForTime(page, 0.5);
    // Keyboard: focus a bar (its text shows), Enter seeks, → moves to the next bar.
    await page.locator("#video").focus();
    await page.evaluate(() => {
      (document.getElementById("video") as HTMLVideoElement).currentTime = 0;
    });
    await waitForTime(page, 0);
    await bars.nth(0).focus();
    expect(await page.locator("#event-tip").textContent()).toBe(`0:00.5–0:01 · ${api.events[0].text}`);
    await page.keyboard.press("Enter");
    await waitForTime(page, 0.5);
    await page.keyboard.press("ArrowRight");
    expect(await page.evaluate<string | undefined>(() => (document.activeElement as HTMLElement).dataset.index)).toBe("1");
    expect(await page.locator("#event-tip").textContent()).toBe(`0:01.2–0:01.8 · ${api.events[1].text}`);
    await page.keyboard.press(" ");
    await waitForTime(page, 1.2);
    expect(await currentTime(page)).toBeCloseTo(1.2, 1);

    // Downloads: the files formatEvents writes for these events, named after the video.
    for (const [id, format, name] of [["#export-srt", "srt", "clip.srt"], ["#export-vtt", "vtt", "clip.vtt"]] as const) {
      const [download] = await Promise.all([page.waitForEvent("download", { timeout: 10_000 }), page.locator(id).click()]);
      expect(download.suggestedFilename()).toBe(name);
      const file = await download.path();
      expect(fs.readFileSync(file!, "utf8")).toBe(formatEvents(api.events, format));
    }
    expect(pageErrors).toEqual([]);
  });

  it("Find moments: the query's span on the timeline; a chat answer that carries events draws them", async () => {
    const page = await openWithVideo();
    await page.locator("#events-query").fill("the square turns red");
    await page.locator("#events-query").press("Enter");
    await page.waitForFunction(() => document.getElementById("events-status")!.textContent!.startsWith("1 moment"), undefined, { timeout: 60_000 });
    expect(await page.locator("#events-status").textContent()).toBe("1 moment for “the square turns red”.");
    const duration = await page.evaluate<number>(() => (document.getElementById("video") as HTMLVideoElement).duration);
    const [[left, right]] = await barEdges(page);
    expect(left).toBeCloseTo(0.4 / duration, 2);
    expect(right).toBeCloseTo(1.2 / duration, 2);
    await page.locator("#timeline-track .event-bar").first().click();
    await waitForTime(page, 0.4);

    // The page's chat request, sent with response_format videolm_events: the streamed answer's last chunk carries
    // the events (the server's shape), and the page draws them in place of the moments.
    await page.route("**/v1/chat/completions", (route) => {
      const body = JSON.parse(route.request().postData() ?? "{}");
      return route.continue({ postData: JSON.stringify({ ...body, response_format: { type: "videolm_events", task: "dense" } }) });
    });
    await page.locator("#question").fill("What happens, and when?");
    await page.locator("#ask").click();
    await page.waitForFunction(() => document.getElementById("answer")!.dataset.state === "done", undefined, { timeout: 60_000 });
    expect(await page.locator("#answer-text").textContent()).toBe(DENSE);
    await page.waitForFunction(() => document.querySelectorAll("#timeline-track .event-bar").length === 2);
    expect(await page.locator("#events-status").textContent()).toBe("From the answer: 2 events.");
    const edges = await barEdges(page);
    edges.forEach(([l, r], i) => {
      expect(l).toBeCloseTo(DENSE_SPANS[i][0] / duration, 2);
      expect(r).toBeCloseTo(DENSE_SPANS[i][1] / duration, 2);
    });
    expect(pageErrors).toEqual([]);
  });
});
