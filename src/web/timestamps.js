/**
 * Finding times in an answer ("3.5 s", "at 3 seconds", "1 min 20 s", "0:07", "01:02:03") and splitting a
 * `<think>…</think>` block from the answer. Pure functions, shared by the page (app.js) and the unit tests.
 */

const UNIT_S = "(?:s|sec|secs|second|seconds)";
const NUM = "(\\d+(?:\\.\\d+)?)";
// Order matters: clock times, then "N min M s", then ranges "2-4 s", then "N s".
const PATTERN = new RegExp(
  [
    "(?<![\\d:.])(\\d{1,2}):([0-5]\\d)(?::([0-5]\\d))?(?:\\.(\\d{1,3}))?(?![\\d:])", // h:mm:ss / mm:ss / m:ss(.f)
    `(?<![\\w.])(\\d+)\\s*(?:min|mins|minute|minutes)(?:\\s*(?:and\\s*)?${NUM}\\s*${UNIT_S})?(?![\\w])`,
    `(?<![\\w.])${NUM}\\s*(?:-|–|to)\\s*${NUM}\\s*${UNIT_S}(?![\\w])`,
    `(?<![\\w.])${NUM}\\s*${UNIT_S}(?![\\w])`,
  ].join("|"),
  "gi",
);

/**
 * Times mentioned in `text`: [{start, end, seconds}] with start/end character offsets, in order. A range "2-4 s"
 * gives two entries (one per number).
 */
export function findTimestamps(text) {
  const out = [];
  PATTERN.lastIndex = 0;
  let m;
  while ((m = PATTERN.exec(text)) !== null) {
    const at = m.index;
    if (m[2] !== undefined) {
      // Clock: with three parts the first is hours, else minutes.
      const a = Number(m[1]);
      const b = Number(m[2]);
      const frac = m[4] !== undefined ? Number(`0.${m[4]}`) : 0;
      const seconds = m[3] !== undefined ? a * 3600 + b * 60 + Number(m[3]) + frac : a * 60 + b + frac;
      out.push({ start: at, end: at + m[0].length, seconds });
    } else if (m[5] !== undefined) {
      out.push({ start: at, end: at + m[0].length, seconds: Number(m[5]) * 60 + (m[6] !== undefined ? Number(m[6]) : 0) });
    } else if (m[7] !== undefined) {
      const first = m[0].indexOf(m[7]);
      const second = m[0].indexOf(m[8], first + m[7].length);
      out.push({ start: at + first, end: at + first + m[7].length, seconds: Number(m[7]) });
      out.push({ start: at + second, end: at + m[0].length, seconds: Number(m[8]) });
    } else {
      out.push({ start: at, end: at + m[0].length, seconds: Number(m[9]) });
    }
  }
  return out;
}

/**
 * Splits streamed text into reasoning and answer: `<think>reasoning</think>answer`. While the block is still open
 * everything after `<think>` is reasoning (`thinking: true`). Text without a block is all answer.
 */
export function splitThink(text) {
  const open = text.indexOf("<think>");
  if (open === -1 || text.slice(0, open).trim() !== "") {
    // A template may open the block in the prompt, so the output starts inside it: a lone </think>.
    const close = text.indexOf("</think>");
    if (close !== -1 && open === -1) return { reasoning: text.slice(0, close).trim(), answer: text.slice(close + 8).replace(/^\s+/, ""), thinking: false };
    return { reasoning: "", answer: text, thinking: false };
  }
  const rest = text.slice(open + 7);
  const close = rest.indexOf("</think>");
  if (close === -1) return { reasoning: rest.replace(/^\s+/, ""), answer: "", thinking: true };
  return { reasoning: rest.slice(0, close).trim(), answer: rest.slice(close + 8).replace(/^\s+/, ""), thinking: false };
}

/** "75.5" → "1:15.5"; "3" → "0:03". */
export function formatTime(seconds) {
  const s = Math.max(0, seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const whole = Math.floor(sec);
  const frac = Math.round((sec - whole) * 10);
  const ss = `${String(whole).padStart(2, "0")}${frac ? `.${frac}` : ""}`;
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}
