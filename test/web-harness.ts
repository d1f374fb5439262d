/**
 * Headless Chromium for the web-app tests (Debian `chromium` + `playwright-core`; playwright-core never downloads a
 * browser). `missing` says why the tests must be skipped, or is undefined when both are there.
 */
import * as fs from "node:fs";
import { tempDir } from "./server-helpers.js";

const CHROMIUM = "/usr/bin/chromium";
const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

// Minimal typings of the playwright-core API used here (the package is a devDependency that may be absent).
export interface Locator {
  click(): Promise<void>;
  hover(): Promise<void>;
  fill(v: string): Promise<void>;
  press(key: string): Promise<void>;
  textContent(): Promise<string | null>;
  count(): Promise<number>;
  first(): Locator;
  nth(i: number): Locator;
  getAttribute(name: string): Promise<string | null>;
  isVisible(): Promise<boolean>;
  setInputFiles(file: string): Promise<void>;
  focus(): Promise<void>;
}
export interface Download {
  suggestedFilename(): string;
  path(): Promise<string | null>;
}
export interface Route {
  request(): { postData(): string | null };
  continue(o?: { postData?: string }): Promise<void>;
}
export interface Page {
  goto(url: string): Promise<unknown>;
  locator(selector: string): Locator;
  waitForFunction(fn: (arg: never) => unknown, arg?: unknown, options?: { timeout?: number }): Promise<unknown>;
  waitForEvent(event: "download", options?: { timeout?: number }): Promise<Download>;
  evaluate<T>(fn: () => T): Promise<T>;
  evaluate<T, A>(fn: (arg: A) => T, arg: A): Promise<T>;
  keyboard: { press(key: string): Promise<void> };
  route(url: string, handler: (route: Route) => unknown): Promise<void>;
  on(event: "pageerror" | "console", fn: (e: { message?: string; type?: () => string; text?: () => string }) => void): void;
}
export interface Context {
  newPage(): Promise<Page>;
  close(): Promise<void>;
}
interface Playwright {
  chromium: { launchPersistentContext(dir: string, o: { executablePath: string; args: string[]; headless: boolean; acceptDownloads?: boolean }): Promise<Context> };
}

async function loadPlaywright(): Promise<Playwright | undefined> {
  const name = "playwright-core";
  try {
    return (await import(/* @vite-ignore */ name)) as Playwright;
  } catch {
    return undefined;
  }
}
const playwright = await loadPlaywright();

/** Why the browser tests cannot run here, or undefined. */
export const missing = !fs.existsSync(CHROMIUM) ? `${CHROMIUM} is not installed (apt-get install chromium)` : !playwright ? "playwright-core is not installed (npm install)" : undefined;

/** A fresh browser profile (downloads accepted). */
export function launchChromium(): Promise<Context> {
  return playwright!.chromium.launchPersistentContext(tempDir("videolm-chromium-profile-"), { executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true, acceptDownloads: true });
}
