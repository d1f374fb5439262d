/**
 * Times and time spans written in free text, the way video models write them: `64.0 - 72.0 seconds`, `0:00-0:05`,
 * `01:32.40 - 01:35.60`, `from 2.0 to 4.5 seconds`, `between 3 and 5 s`, `3 - 10秒`, `37.1秒到52.6秒`, `28.2s to 35.5s`,
 * `00:00:00 - 00:00:01`, `[00:15, 00:32]`.
 *
 * A time is either a number of seconds (`12`, `12.5`, zero-padded `0029.0`, with an optional unit `s`, `sec`, `seconds`,
 * `秒`) or a clock: `m:ss`, `mm:ss.ff`, `h:mm:ss`, `h:mm:ss.fff` (also `h:mm:ss,fff` as in SRT). A clock's fraction is a
 * decimal fraction of a second: Qwen's "hmsf" `01:23.45` is 83.45 s (QwenLM/Qwen3-VL#752, #950), which lmms-eval's
 * charades_sta `extract_time` misreads as the span 1 – 32.4 (its number-range pattern matches `32.40 - 01`); here a
 * clock is always read whole before any range is looked for.
 *
 * `hh:mm:ss:ff` (SMPTE timecode, the last field a frame number) is refused: it needs the source's frame rate, which the
 * text does not carry, and no model we know writes it. Spans using one are skipped and counted (`timecodes`).
 *
 * Scanning is a single left-to-right pass with bounded look-ahead (no regular expression runs over the whole text), so
 * the cost is linear in the text's length whatever the text holds.
 */

export interface TimeToken {
  seconds: number;
  /** Offsets of the token in the text (`to` is past any unit written right after it). */
  from: number;
  to: number;
  /** A clock (`mm:ss`…), as opposed to a bare number. */
  clock: boolean;
  /** Written with a unit (`s`, `seconds`, `秒`…) or as a clock: surely a time, not some other number. */
  explicit: boolean;
  /** An `hh:mm:ss:ff` timecode: recognised so it is not misread, but it has no value in seconds. */
  timecode: boolean;
}

export interface TextSpan {
  start: number;
  end: number;
  /** Offsets of the whole span in the text, units and brackets included. */
  from: number;
  to: number;
}

export interface SpanScan {
  spans: TextSpan[];
  /** Tokens that no span used, in order (for the single-time and `start: … end: …` fallbacks). */
  loose: TimeToken[];
  /** Spans skipped because a side was an `hh:mm:ss:ff` timecode. */
  timecodes: number;
}

/** Blank characters skipped between a time, its unit and a separator: enough for "0080.0 -  0121.0  seconds". */
const MAX_GAP = 8;
const MAX_INT_DIGITS = 12;
const MAX_FRACTION_DIGITS = 9;

/** Finds every span in `text`, in order. */
export function scanSpans(text: string): SpanScan {
  const spans: TextSpan[] = [];
  const loose: TimeToken[] = [];
  let timecodes = 0;
  let i = 0;
  while (i < text.length) {
    if (!isDigit(text[i]) || blocksToken(text[i - 1])) {
      i++;
      continue;
    }
    const first = readTime(text, i);
    if (!first) {
      i = skipNumberRun(text, i);
      continue;
    }
    const span = readSpanAfter(text, first);
    if (span && "skipTo" in span) {
      if (span.timecode) timecodes++;
      i = span.skipTo;
      continue;
    }
    if (span) {
      spans.push(span);
      i = span.to;
      continue;
    }
    if (!first.timecode) {
      // "at 3.5 seconds": a unit after a blank also makes a bare number a time.
      const unitEnd = first.explicit ? undefined : readUnit(text, skipBlanks(text, first.to, MAX_GAP));
      loose.push(unitEnd === undefined ? first : { ...first, to: unitEnd, explicit: true });
    }
    i = first.to;
  }
  return { spans, loose, timecodes };
}

/** A whole string that is one time ("00:21.80", "12.5", "12.5s", "00.00" = 0 s), else undefined. */
export function parseTimeString(value: string): number | undefined {
  const text = value.trim();
  if (!isDigit(text[0])) return undefined;
  const token = readTime(text, 0);
  if (!token || token.timecode) return undefined;
  let end = skipBlanks(text, token.to);
  if (end < text.length) end = readUnit(text, end) ?? end;
  return end === text.length ? token.seconds : undefined;
}

/** The first span written in a string ("00:23.00 - 00:48.00", "37.1秒到52.6秒"), else undefined. */
export function parseSpanString(value: string): [number, number] | undefined {
  const span = scanSpans(value).spans[0];
  return span ? [span.start, span.end] : undefined;
}

/**
 * Reads the time starting at `at` (a digit). Undefined when the characters there are a number that is not a time
 * ("7B", "1:2", a 40-digit run).
 */
export function readTime(text: string, at: number): TimeToken | undefined {
  let pos = at;
  const fields: number[] = [];
  const intEnd = scanDigits(text, pos);
  if (intEnd - pos > MAX_INT_DIGITS) return undefined;
  fields.push(Number(text.slice(pos, intEnd)));
  pos = intEnd;
  // Clock fields: exactly two digits after each colon.
  while (fields.length < 4 && text[pos] === ":" && isDigit(text[pos + 1]) && isDigit(text[pos + 2]) && !isDigit(text[pos + 3])) {
    fields.push(Number(text.slice(pos + 1, pos + 3)));
    pos += 3;
  }
  if (text[pos] === ":" && isDigit(text[pos + 1])) return undefined; // "1:2", "1:234", a fifth field
  let fraction = 0;
  let fractionDigits = "";
  if (text[pos] === "." && isDigit(text[pos + 1])) {
    const end = scanDigits(text, pos + 1);
    fractionDigits = text.slice(pos + 1, end);
    pos = end;
  } else if (text[pos] === "," && fields.length === 3 && isDigit(text[pos + 1]) && isDigit(text[pos + 2]) && isDigit(text[pos + 3]) && !isDigit(text[pos + 4])) {
    fractionDigits = text.slice(pos + 1, pos + 4); // SRT's 00:00:01,500
    pos += 4;
  }
  if (fractionDigits.length > MAX_FRACTION_DIGITS) return undefined;
  if (fractionDigits) fraction = Number(`0.${fractionDigits}`);
  if (text[pos] === "." && isDigit(text[pos + 1])) return undefined; // "1.2.3": a version, not a time
  const clock = fields.length > 1;
  const timecode = fields.length === 4;
  if (timecode && fractionDigits) return undefined;
  if (!clockFieldsValid(fields)) return undefined;
  let to = pos;
  let explicit = clock;
  if (isLetter(text[pos]) || text[pos] === "秒") {
    const unitEnd = readUnit(text, pos);
    if (unitEnd === undefined) return undefined; // "7B", "3D", "2x"
    to = unitEnd;
    explicit = true;
  }
  const seconds = timecode ? Number.NaN : roundMicro(clockSeconds(fields.slice(0, 3)) + fraction);
  return { seconds, from: at, to, clock, explicit, timecode };
}

/** `start: 12.5 … end: 20.0` written as labelled times rather than a range: pairs each start with the next end. */
export function labelledPairs(text: string, tokens: TimeToken[]): [number, number][] {
  const pairs: [number, number][] = [];
  let pendingStart: number | undefined;
  for (const token of tokens) {
    const label = text.slice(Math.max(0, token.from - 24), token.from).toLowerCase();
    if (START_LABEL.test(label)) pendingStart = token.seconds;
    else if (END_LABEL.test(label) && pendingStart !== undefined) {
      pairs.push([pendingStart, token.seconds]);
      pendingStart = undefined;
    }
  }
  return pairs;
}

/** Times introduced by "at" ("at 3.5 seconds", "at 0:42"), written with a unit or as a clock. */
export function pointTimes(text: string, tokens: TimeToken[]): number[] {
  return tokens.filter((t) => t.explicit && AT_PREFIX.test(text.slice(Math.max(0, t.from - 12), t.from).toLowerCase())).map((t) => t.seconds);
}

// Applied to at most 24 characters before a time, so their cost is bounded.
const START_LABEL = /(?:start|begin|开始|起始)[^0-9]{0,16}$/;
const END_LABEL = /(?:end|finish|stop|结束|终止)[^0-9]{0,16}$/;
const AT_PREFIX = /(?:^|[^a-z])(?:at|around|about)\s{1,3}(?:approximately\s{1,3}|about\s{1,3})?$/;

/** A span, or where to resume scanning after something that looked like one but is not (`skipTo`), or undefined. */
function readSpanAfter(text: string, first: TimeToken): TextSpan | { skipTo: number; timecode: boolean } | undefined {
  let pos = skipBlanks(text, first.to, MAX_GAP);
  pos = readUnit(text, pos) ?? pos;
  pos = skipBlanks(text, pos, MAX_GAP);
  const bracketed = OPEN_BRACKETS.has(text[skipBlanksBack(text, first.from - 1)] ?? "");
  const separator = readSeparator(text, pos, first, bracketed);
  if (separator === undefined) return undefined;
  pos = skipBlanks(text, separator.end, MAX_GAP);
  if (text[pos] === "第" && isDigit(text[pos + 1])) pos++; // "第3秒到第5秒"
  if (!isDigit(text[pos])) return undefined;
  const second = readTime(text, pos);
  if (!second) return undefined;
  // "2024-05-17", "1-2-3": a chain of dashes is a date or an identifier, not a span.
  if ((text[second.to] === "-" || text[second.to] === "/") && isDigit(text[second.to + 1])) return { skipTo: skipChain(text, second.to), timecode: false };
  let to = second.to;
  const unitEnd = readUnit(text, skipBlanks(text, to, MAX_GAP));
  if (unitEnd !== undefined) to = unitEnd;
  if (separator.comma) {
    const close = skipBlanks(text, to, MAX_GAP);
    if (!CLOSE_BRACKETS.has(text[close] ?? "")) return undefined;
    to = close + 1;
  }
  if (first.timecode || second.timecode) return { skipTo: to, timecode: true };
  return { start: first.seconds, end: second.seconds, from: first.from, to };
}

const OPEN_BRACKETS = new Set(["[", "(", "（", "【"]);
const CLOSE_BRACKETS = new Set(["]", ")", "）", "】"]);
const DASHES = new Set(["-", "–", "—", "−", "~", "～", "到", "至"]);
const WORD_SEPARATORS = ["to", "until", "till", "through"];

/**
 * The span separator at `pos`: its end, and whether it is a comma (allowed only inside brackets, "[00:15, 00:32]",
 * and then the closing bracket is required).
 */
function readSeparator(text: string, pos: number, first: TimeToken, bracketed: boolean): { end: number; comma: boolean } | undefined {
  const c = text[pos];
  if (c === undefined) return undefined;
  if (DASHES.has(c)) {
    // "3 - -5" or "--": not a span.
    return text[pos + 1] === c ? undefined : { end: pos + 1, comma: false };
  }
  if ((c === "," || c === "，") && bracketed) return { end: pos + 1, comma: true };
  const word = readWord(text, pos);
  if (!word) return undefined;
  if (WORD_SEPARATORS.includes(word)) return { end: pos + word.length, comma: false };
  if (word === "and") {
    // "between 3 and 5 seconds"; a bare "3 and 5" is two numbers, not a span.
    const before = text.slice(Math.max(0, first.from - 16), first.from).toLowerCase();
    if (/between\s{1,3}$/.test(before)) return { end: pos + word.length, comma: false };
  }
  return undefined;
}

/** A whole ASCII word at `pos`, lowercased (at most 8 letters), else undefined. */
function readWord(text: string, pos: number): string | undefined {
  let end = pos;
  while (end < text.length && end - pos <= 8 && isLetter(text[end])) end++;
  if (end === pos || isLetter(text[end])) return undefined;
  return text.slice(pos, end).toLowerCase();
}

const UNITS = ["seconds", "second", "secs", "sec", "s"];

/** Offset past a unit of seconds at `pos` ("s", "sec", "seconds", "秒", "秒钟"), else undefined. */
function readUnit(text: string, pos: number): number | undefined {
  if (text[pos] === "秒") return text[pos + 1] === "钟" ? pos + 2 : pos + 1;
  const word = readWord(text, pos);
  return word !== undefined && UNITS.includes(word) ? pos + word.length : undefined;
}

function clockFieldsValid(fields: number[]): boolean {
  if (fields.length === 2) return fields[1] < 60;
  if (fields.length >= 3) return fields[1] < 60 && fields[2] < 60;
  return true;
}

function clockSeconds(fields: number[]): number {
  return fields.reduce((total, field) => total * 60 + field, 0);
}

/** Sums like 60 + 32.4 carry float noise; times are kept to the microsecond. */
function roundMicro(seconds: number): number {
  return Math.round(seconds * 1e6) / 1e6;
}

/** A digit right after a letter, digit, underscore or dot continues a word or number ("Qwen2.5", "v1", ".5"). */
function blocksToken(previous: string | undefined): boolean {
  return previous !== undefined && (isLetter(previous) || isDigit(previous) || previous === "_" || previous === ".");
}

function skipNumberRun(text: string, at: number): number {
  let pos = at;
  while (pos < text.length && (isDigit(text[pos]) || text[pos] === "." || text[pos] === ":" || text[pos] === ",")) pos++;
  return pos;
}

/** Past a run of numbers joined by "-" or "/" ("2024-05-17"). */
function skipChain(text: string, at: number): number {
  let pos = at;
  while (pos < text.length && (isDigit(text[pos]) || ((text[pos] === "-" || text[pos] === "/") && isDigit(text[pos + 1])))) pos++;
  return pos;
}

function scanDigits(text: string, at: number): number {
  let pos = at;
  while (pos < text.length && isDigit(text[pos])) pos++;
  return pos;
}

function skipBlanks(text: string, at: number, max = Number.POSITIVE_INFINITY): number {
  let pos = at;
  while (pos < text.length && pos - at < max && (text[pos] === " " || text[pos] === "\t" || text[pos] === "\u00a0" || text[pos] === "\u3000")) pos++;
  return pos;
}

function skipBlanksBack(text: string, at: number): number {
  let pos = at;
  while (pos >= 0 && at - pos < MAX_GAP && (text[pos] === " " || text[pos] === "\t")) pos--;
  return pos;
}

function isDigit(c: string | undefined): boolean {
  return c !== undefined && c >= "0" && c <= "9";
}

function isLetter(c: string | undefined): boolean {
  return c !== undefined && ((c >= "a" && c <= "z") || (c >= "A" && c <= "Z"));
}
