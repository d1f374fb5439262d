/** The `--logprobs` table: token text made visible (quoted, escaped), aligned columns. */
import { describe, expect, it } from "vitest";
import { formatLogprobTable, logprobEntries } from "../src/cli/logprobs.js";
import type { TokenInfo } from "../src/text/token-info.js";

const VOCAB: Record<number, string> = { 1: " the", 2: "\n", 3: "a\tb", 4: "\u001b[31m" };
const info = { describe: (id: number) => ({ token: VOCAB[id], bytes: [] }) } as unknown as TokenInfo;

describe("--logprobs output", () => {
  it("adds each token's text to the entries", () => {
    expect(logprobEntries([{ token: 1, logprob: -0.5, top: [{ token: 1, logprob: -0.5 }, { token: 2, logprob: -1.25 }] }], info)).toEqual([
      { token: 1, text: " the", logprob: -0.5, top: [{ token: 1, text: " the", logprob: -0.5 }, { token: 2, text: "\n", logprob: -1.25 }] },
    ]);
  });

  it("prints a table with the text quoted so spaces, newlines and escapes show", () => {
    const entries = logprobEntries(
      [
        { token: 1, logprob: -0.5, top: [{ token: 1, logprob: -0.5 }, { token: 2, logprob: -1.25 }] },
        { token: 4, logprob: -12.125, top: [{ token: 3, logprob: -2 }, { token: 4, logprob: -12.125 }] },
      ],
      info,
    );
    expect(formatLogprobTable(entries)).toBe(
      ['#  token          logprob  top 2', '0  " the"         -0.5000  " the" -0.5000, "\\n" -1.2500', '1  "\\u001b[31m"  -12.1250  "a\\tb" -2.0000, "\\u001b[31m" -12.1250'].join("\n"),
    );
  });

  it("without alternatives (--logprobs 0) prints the token's own logprob only", () => {
    expect(formatLogprobTable(logprobEntries([{ token: 2, logprob: -0.25 }], info))).toBe(['#  token  logprob', '0  "\\n"   -0.2500'].join("\n"));
  });
});
