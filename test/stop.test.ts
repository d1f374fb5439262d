import { describe, expect, it } from "vitest";
import { VideolmError } from "../src/errors.js";
import { StopStringMatcher, isEos } from "../src/generation/stop.js";

/** Feeds deltas; returns everything emitted (incl. flush when not stopped), whether it stopped, and per-push emits. */
function stream(stops: string[], deltas: string[]): { text: string; stopped: boolean; emits: string[]; stoppedAt: number } {
  const m = new StopStringMatcher(stops);
  const emits: string[] = [];
  let stoppedAt = -1;
  for (const [i, d] of deltas.entries()) {
    const r = m.push(d);
    emits.push(r.emit);
    if (r.stopped && stoppedAt < 0) stoppedAt = i;
  }
  const tail = m.flush();
  if (tail) emits.push(tail);
  return { text: emits.join(""), stopped: m.stopped, emits, stoppedAt };
}

describe("StopStringMatcher", () => {
  it("without stop strings passes text through and holds nothing", () => {
    const r = stream([], ["Hel", "lo", "!"]);
    expect(r.emits).toEqual(["Hel", "lo", "!"]);
    expect(r.stopped).toBe(false);
  });

  it("stop string inside one delta: text before it is emitted, the rest dropped", () => {
    const r = stream(["</s>"], ["abc</s>def", "more"]);
    expect(r.text).toBe("abc");
    expect(r.stopped).toBe(true);
    expect(r.stoppedAt).toBe(0);
  });

  it("stop string split across deltas is never partially emitted", () => {
    const r = stream(["STOP"], ["Hello S", "T", "O", "P and more"]);
    expect(r.emits).toEqual(["Hello ", "", "", ""]);
    expect(r.text).toBe("Hello ");
    expect(r.stoppedAt).toBe(3);
  });

  it("held-back prefix is released once it can no longer start a stop string", () => {
    const r = stream(["STOP"], ["Hello ST", "ART", " now"]);
    expect(r.emits).toEqual(["Hello ", "START", " now"]);
    expect(r.stopped).toBe(false);
  });

  it("overlapping prefixes: 'aab' in 'aaab' arriving one character at a time", () => {
    const r = stream(["aab"], ["a", "a", "a", "b", "c"]);
    // after "aaa": hold "aa" (prefix of "aab") and emit the first "a"
    expect(r.emits).toEqual(["", "", "a", "", ""]);
    expect(r.text).toBe("a");
    expect(r.stopped).toBe(true);
  });

  it("self-overlapping stop string 'abab' in 'abaabab'", () => {
    const r = stream(["abab"], ["ab", "a", "a", "b", "a", "b", "zz"]);
    expect(r.text).toBe("aba");
    expect(r.stopped).toBe(true);
  });

  it("stop string at the very start emits nothing", () => {
    const r = stream(["###"], ["###", "text"]);
    expect(r.emits).toEqual(["", ""]);
    expect(r.stoppedAt).toBe(0);
    expect(r.stopped).toBe(true);
    const split = stream(["###"], ["#", "#", "#x"]);
    expect(split.text).toBe("");
    expect(split.stopped).toBe(true);
  });

  it("multiple stop strings: the earliest occurrence wins, whatever the list order", () => {
    for (const stops of [
      ["World", "lo"],
      ["lo", "World"],
    ]) {
      const r = stream(stops, ["Hello World"]);
      expect(r.text).toBe("Hel");
    }
    const m = new StopStringMatcher(["xyz", "b"]);
    expect(m.push("ab").emit).toBe("a");
    expect(m.matched).toBe("b");
  });

  it("a shorter stop string completing inside a longer one's held prefix stops there", () => {
    // "abcd" is still incomplete when "bc" completes: generation stops at the first complete match
    const r = stream(["abcd", "bc"], ["xa", "b", "c", "d"]);
    expect(r.text).toBe("xa");
    expect(r.stoppedAt).toBe(2);
  });

  it("holds back the longest candidate across several stop strings", () => {
    const m = new StopStringMatcher(["<|im_end|>", "<END>"]);
    expect(m.push("answer <|im").emit).toBe("answer ");
    expect(m.push("_start").emit).toBe("<|im_start");
    expect(m.push(" <E").emit).toBe(" ");
    expect(m.push("ND>").stopped).toBe(true);
  });

  it("flush releases held text when generation ends for another reason; nothing after a stop", () => {
    const m = new StopStringMatcher(["STOP"]);
    expect(m.push("the end ST").emit).toBe("the end ");
    expect(m.flush()).toBe("ST");
    expect(m.flush()).toBe("");
    const s = new StopStringMatcher(["STOP"]);
    s.push("x STOP y");
    expect(s.flush()).toBe("");
    expect(s.push("more")).toEqual({ emit: "", stopped: true });
  });

  it("no false hold-back: text that cannot start a stop string is emitted at once", () => {
    const m = new StopStringMatcher(["\n\nUser:"]);
    expect(m.push("one\ntwo").emit).toBe("one\ntwo");
    expect(m.push(" three\n").emit).toBe(" three");
    expect(m.push("\n").emit).toBe("");
    expect(m.push("Us").emit).toBe("");
    expect(m.push("a").emit).toBe("\n\nUsa");
    expect(m.flush()).toBe("");
  });

  it("handles non-ASCII text and stop strings", () => {
    const r = stream(["。終"], ["これは", "テスト。", "終わり"]);
    expect(r.text).toBe("これはテスト");
    const e = stream(["🛑"], ["go 🚀", " 🛑 x"]);
    expect(e.text).toBe("go 🚀 ");
  });

  it("rejects empty stop strings", () => {
    expect(() => new StopStringMatcher(["ok", ""])).toThrow(VideolmError);
  });
});

describe("isEos", () => {
  it("accepts a single id, a list, or a set", () => {
    expect(isEos(151645, 151645)).toBe(true);
    expect(isEos(151643, [151645, 151643])).toBe(true);
    expect(isEos(42, [151645, 151643])).toBe(false);
    expect(isEos(151645, new Set([151645]))).toBe(true);
    expect(isEos(0, new Set<number>())).toBe(false);
  });
});
