/**
 * The `<think>` splitter (src/text/thinking.ts) against the Qwen3 chat template's own rule, applied to whole strings:
 *   reasoning = text.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n')
 *   answer    = text.split('</think>')[-1].lstrip('\n')
 * Expected values below are that rule evaluated by hand; streaming must give the same result for every way of
 * cutting the text into chunks. Also: Qwen3-VL timestamp formatting (Python f"{x:.1f}") and frame-pair times.
 */
import { describe, expect, it } from "vitest";
import { ThinkingSplitter, splitThinking } from "../src/text/thinking.js";
import { thinkingWriter } from "../src/cli/commands/run.js";
import { formatSeconds1dp, frameGroupTimestamps, timestampText } from "../src/families/qwen3-vl/timestamps.js";

function streamed(text: string, cuts: number[], startsInside: boolean) {
  const s = new ThinkingSplitter({ startsInside });
  let reasoning = "";
  let answer = "";
  let from = 0;
  for (const at of [...cuts, text.length]) {
    const p = s.push(text.slice(from, at));
    reasoning += p.reasoning;
    answer += p.answer;
    from = at;
  }
  const f = s.flush();
  reasoning += f.reasoning;
  answer += f.answer;
  expect(reasoning).toBe(s.reasoning);
  expect(answer).toBe(s.answer);
  return { reasoning, answer, hasReasoning: s.hasReasoning };
}

const CASES: { text: string; startsInside: boolean; reasoning: string; answer: string; hasReasoning: boolean }[] = [
  // Thinking template: the prompt ended with "<think>\n", the output closes the block.
  { text: "The disc moves right.\nSo: right.\n</think>\n\nIt moves to the right.", startsInside: true, reasoning: "The disc moves right.\nSo: right.", answer: "It moves to the right.", hasReasoning: true },
  // The model opens the block itself.
  { text: "<think>\nhmm\n\n</think>\n\nAnswer: 42", startsInside: false, reasoning: "hmm", answer: "Answer: 42", hasReasoning: true },
  // Budget-forced close ("\n</think>\n\n" after the thinking tokens).
  { text: "abc def\n</think>\n\n ::x", startsInside: true, reasoning: "abc def", answer: " ::x", hasReasoning: true },
  // No block at all (Instruct).
  { text: "Plain answer <b>with</b> tags\n", startsInside: false, reasoning: "", answer: "Plain answer <b>with</b> tags\n", hasReasoning: false },
  // Block never closed: everything is reasoning, trailing newlines stripped.
  { text: "still thinking\nabout </thi", startsInside: true, reasoning: "still thinking\nabout </thi", answer: "", hasReasoning: true },
  // Empty reasoning (enable_thinking=false style).
  { text: "<think>\n\n</think>\n\nDone.", startsInside: false, reasoning: "", answer: "Done.", hasReasoning: true },
  // Newlines inside the reasoning are kept; only the edges are stripped.
  { text: "\n\na\n\nb\n\n</think>x\n", startsInside: true, reasoning: "a\n\nb", answer: "x\n", hasReasoning: true },
];

describe("ThinkingSplitter", () => {
  for (const c of CASES) {
    it(`splits ${JSON.stringify(c.text.slice(0, 30))}… at every chunking`, () => {
      expect(splitThinking(c.text, c.startsInside)).toEqual({ reasoning: c.reasoning, answer: c.answer, hasReasoning: c.hasReasoning });
      for (let i = 0; i <= c.text.length; i++) {
        for (const j of [i + 1, i + 3, i + 8]) {
          const cuts = [i, j].filter((x) => x <= c.text.length);
          const r = streamed(c.text, cuts, c.startsInside);
          expect(r).toEqual({ reasoning: c.reasoning, answer: c.answer, hasReasoning: c.hasReasoning });
        }
      }
      // One character at a time.
      expect(streamed(c.text, Array.from({ length: c.text.length }, (_, k) => k), c.startsInside).answer).toBe(c.answer);
    });
  }

  it("holds back a possible closing tag, then releases it as reasoning when it is not one", () => {
    const s = new ThinkingSplitter({ startsInside: true });
    expect(s.push("a </th")).toEqual({ reasoning: "a ", answer: "" });
    expect(s.push("ink about")).toEqual({ reasoning: "</think about", answer: "" });
  });
});

describe("Qwen3-VL timestamps", () => {
  it("formats like Python f'{x:.1f}' (exact binary ties to even)", () => {
    // Python 3.11: [f"{x:.1f}" for x in (0.25, 0.75, 1.25, 2.25, 3.75, 100.25, 0.125, 0.625, 1/6, 5/6, 0.05, 0.35, 0.15, 12.45, 0.0, 1.5)]
    const cases: [number, string][] = [
      [0.25, "0.2"], [0.75, "0.8"], [1.25, "1.2"], [2.25, "2.2"], [3.75, "3.8"], [100.25, "100.2"], [0.125, "0.1"], [0.625, "0.6"],
      [1 / 6, "0.2"], [5 / 6, "0.8"], [0.05, "0.1"], [0.35, "0.3"], [0.15, "0.1"], [12.45, "12.4"], [0, "0.0"], [1.5, "1.5"],
    ];
    for (const [x, s] of cases) expect(formatSeconds1dp(x)).toBe(s);
    expect(timestampText(0.25)).toBe("<0.2 seconds>");
  });

  it("averages the frames of each pair, padding an odd count with the last frame (_calculate_timestamps)", () => {
    // indices [0, 15, 30, 45] at 30 fps → (0 + 0.5)/2, (1 + 1.5)/2
    expect(frameGroupTimestamps([0, 15, 30, 45].map((i) => i / 30))).toEqual([0.25, 1.25]);
    // indices [0, 20, 39] at 30 fps → pads 39: (0 + 20/30)/2, 39/30
    expect(frameGroupTimestamps([0, 20, 39].map((i) => i / 30))).toEqual([(0 + 20 / 30) / 2, 39 / 30]);
  });
});

describe("videolm run: thinking display", () => {
  const sink = (isTTY: boolean) => {
    const chunks: string[] = [];
    return { out: { isTTY, write: (s: string) => chunks.push(s) }, text: () => chunks.join("") };
  };
  const feed = (w: ReturnType<typeof thinkingWriter>) => {
    w.reasoning("think ");
    w.reasoning("more");
    w.answer("");
    w.answer("Answer");
    w.answer(".");
  };
  it("dims the thinking on a terminal, then a blank line and the answer", () => {
    const s = sink(true);
    feed(thinkingWriter(s.out, false));
    expect(s.text()).toBe("\x1b[2mthink \x1b[22m\x1b[2mmore\x1b[22m\n\nAnswer.");
  });
  it("writes plain text on a pipe", () => {
    const s = sink(false);
    feed(thinkingWriter(s.out, false));
    expect(s.text()).toBe("think more\n\nAnswer.");
  });
  it("--hide-thinking shows only the answer", () => {
    const s = sink(true);
    feed(thinkingWriter(s.out, true));
    expect(s.text()).toBe("Answer.");
  });
});
