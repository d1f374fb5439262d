/** The question from stdin: `echo "what?" | videolm run clip.mp4`, `videolm run clip.mp4 -`. */
import { spawnSync } from "node:child_process";
import * as path from "node:path";
import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { stdinQuestion } from "../src/cli/commands/run.js";
import { MAX_STDIN_QUESTION_BYTES, readQuestion } from "../src/cli/stdin.js";

const input = (text: string, isTTY = false) => Object.assign(Readable.from([Buffer.from(text, "utf8")]), { isTTY });
const never = (isTTY: boolean) => ({
  isTTY,
  [Symbol.asyncIterator]() {
    throw new Error("stdin must not be read");
  },
});

describe("stdinQuestion", () => {
  it("reads the question from a pipe when none is given", async () => {
    expect(await stdinQuestion(["clip.mp4"], { implicit: true, input: input("what color?\n") })).toEqual({ positionals: ["clip.mp4"], question: "what color?" });
    expect(await stdinQuestion([], { implicit: true, input: input("  what color?  \n\n") })).toEqual({ positionals: [], question: "what color?" });
  });
  it("reads it in place of -, even on a terminal", async () => {
    expect(await stdinQuestion(["clip.mp4", "-"], { implicit: true, input: input("what?", true) })).toEqual({ positionals: ["clip.mp4"], question: "what?" });
    expect(await stdinQuestion(["-"], { implicit: false, input: input("what?", true) })).toEqual({ positionals: [], question: "what?" });
    await expect(stdinQuestion(["clip.mp4", "-"], { implicit: true, input: input(" \n") })).rejects.toThrow(/^the question read from stdin \("-"\) is empty$/);
  });
  it("leaves stdin alone on a terminal, with a question given, or when not implicit", async () => {
    expect(await stdinQuestion(["clip.mp4"], { implicit: true, input: never(true) })).toEqual({ positionals: ["clip.mp4"] });
    expect(await stdinQuestion(["clip.mp4", "what?"], { implicit: true, input: never(false) })).toEqual({ positionals: ["clip.mp4", "what?"] });
    expect(await stdinQuestion(["what happens?"], { implicit: true, input: never(false) })).toEqual({ positionals: ["what happens?"] });
    expect(await stdinQuestion(["clip.mp4"], { implicit: false, input: never(false) })).toEqual({ positionals: ["clip.mp4"] });
  });
  it("an empty pipe gives no question (the command then says it needs one)", async () => {
    expect(await stdinQuestion(["clip.mp4"], { implicit: true, input: input("") })).toEqual({ positionals: ["clip.mp4"], question: undefined });
  });
});

describe("readQuestion", () => {
  it("refuses more than the limit", async () => {
    await expect(readQuestion(input("x".repeat(MAX_STDIN_QUESTION_BYTES + 1)))).rejects.toThrow(/longer than 4 MiB/);
  });
  it("says once what it waits for when nothing arrives", async () => {
    let said = 0;
    const slow = Object.assign(
      Readable.from(
        (async function* () {
          await new Promise((r) => setTimeout(r, 60));
          yield Buffer.from("late?");
        })(),
      ),
      { isTTY: false },
    );
    expect(await readQuestion(slow, { onWaiting: () => said++, waitHintMs: 10 })).toBe("late?");
    expect(said).toBe(1);
  });
});

describe("videolm inspect reads the question from stdin in place of -", () => {
  const ROOT = path.resolve(import.meta.dirname, "..");
  const inspect = (args: string[], stdin: string) =>
    spawnSync(process.execPath, [path.join(ROOT, "node_modules/tsx/dist/cli.mjs"), path.join(ROOT, "src/cli/main.ts"), "inspect", "-q", "--json", ...args], { input: stdin, encoding: "utf8", timeout: 120_000 });

  it("`echo q | videolm inspect clip.mp4 -` plans the piped question; without - the pipe is not read", () => {
    const clip = path.join(ROOT, "examples/demo.mp4");
    const piped = inspect([clip, "-"], "what color is the triangle?\n");
    expect(piped.stderr).toBe("");
    expect(piped.status).toBe(0);
    const withQuestion = JSON.parse(piped.stdout) as { promptIds?: number[]; promptTokens: number };
    const without = inspect([clip], "what color is the triangle?\n");
    expect(without.status).toBe(0);
    const noQuestion = JSON.parse(without.stdout) as { promptIds?: number[]; promptTokens: number };
    const asArgument = JSON.parse(inspect([clip, "what color is the triangle?"], "").stdout) as { promptIds?: number[] };
    expect(withQuestion.promptIds).toEqual(asArgument.promptIds); // the piped question, not "-"
    expect(noQuestion.promptIds).toBeUndefined();
    expect(withQuestion.promptTokens).toBeGreaterThan(noQuestion.promptTokens);
  }, 240_000);
});
