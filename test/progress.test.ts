/** Progress rendering helpers: delayedProgress hides quick tasks and shows long ones through to the end. */
import { describe, expect, it } from "vitest";
import { delayedProgress, type ProgressEvent } from "../src/util/progress.js";

describe("delayedProgress", () => {
  it("drops a task's events until it has run for the delay, then passes every event on", () => {
    let clock = 0;
    const seen: ProgressEvent[] = [];
    const cb = delayedProgress((e) => seen.push(e), 1000, () => clock);
    cb({ task: "quick", done: 0, total: 2 });
    clock = 500;
    cb({ task: "quick", done: 2, total: 2 }); // finished within the delay: never shown
    cb({ task: "long", done: 0, total: 10 }); // starts at 500
    clock = 1400;
    cb({ task: "long", done: 3, total: 10 });
    clock = 1600;
    cb({ task: "long", done: 6, total: 10 });
    cb({ task: "long", done: 10, total: 10 });
    expect(seen.map((e) => `${e.task} ${e.done}`)).toEqual(["long 6", "long 10"]);
  });
});
