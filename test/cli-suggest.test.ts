/** "Did you mean …?" for mistyped flags and commands. */
import { describe, expect, it } from "vitest";
import { COMMON_FLAGS, GENERATION_FLAGS, MEDIA_FLAGS, MODEL_FLAGS, parseFlags, suggestFlag } from "../src/cli/args.js";
import { closest, editDistance } from "../src/cli/suggest.js";

const RUN_OPTIONS = { ...MODEL_FLAGS, ...GENERATION_FLAGS, ...MEDIA_FLAGS, ...COMMON_FLAGS };

describe("editDistance", () => {
  it("counts insertions, deletions, substitutions and adjacent swaps", () => {
    expect(editDistance("", "")).toBe(0);
    expect(editDistance("abc", "")).toBe(3);
    expect(editDistance("kitten", "sitting")).toBe(3);
    expect(editDistance("max-frame", "max-frames")).toBe(1);
    expect(editDistance("fsp", "fps")).toBe(1); // a swap is one edit
  });
});

describe("closest", () => {
  const commands = ["run", "inspect", "serve", "bench", "models"];
  it("finds a close command and nothing for a far one", () => {
    expect(closest("rn", commands)).toBe("run");
    expect(closest("inspcet", commands)).toBe("inspect");
    expect(closest("model", commands)).toBe("models");
    expect(closest("foo", commands)).toBeUndefined();
  });
});

describe("suggestFlag", () => {
  const cases: [string, string | undefined][] = [
    ["--max-frame", "--max-frames"],
    ["--max_frames", "--max-frames"],
    ["--Model", "--model"],
    ["--max-new", "--max-new-tokens"], // the only flag it starts
    ["--frames", "--nframes"],
    ["--tempreature", "--temperature"],
    ["--jsn", "--json"],
    ["-M", "-m"],
    ["-z", undefined],
    ["--bogus", undefined],
    ["--port", undefined],
  ];
  for (const [flag, expected] of cases) it(`${flag} → ${expected ?? "no suggestion"}`, () => expect(suggestFlag(flag, RUN_OPTIONS)).toBe(expected));
});

describe("parseFlags", () => {
  it("names an unknown flag and the closest known one, in one line", () => {
    expect(() => parseFlags(["--max-frame", "8", "q"], RUN_OPTIONS, "run")).toThrow(
      /^run: unknown option --max-frame; did you mean --max-frames\? \(see videolm run --help\)$/,
    );
    expect(() => parseFlags(["--max-frame=8"], RUN_OPTIONS, "inspect")).toThrow(/^inspect: unknown option --max-frame; did you mean --max-frames\?/);
  });
  it("leaves out the suggestion when nothing is close", () => {
    expect(() => parseFlags(["--bogus"], RUN_OPTIONS, "run")).toThrow(/^run: unknown option --bogus \(see videolm run --help\)$/);
  });
  it("keeps other parse errors", () => {
    expect(() => parseFlags(["--json=1"], RUN_OPTIONS, "run")).toThrow(/^run: Option '--json' does not take an argument/);
  });
});
