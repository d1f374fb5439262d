/**
 * A forgiving JSON reader for model output: reads one JSON value from a position in a longer text and, when the text
 * ends before the value does (the model hit its token limit), returns what was complete. Also accepts what models
 * write that strict JSON does not: trailing commas, single-quoted strings, raw newlines inside strings, bare
 * identifier keys, Python's True/False/None, zero-padded numbers ("00.00").
 *
 * Linear in the input: one pass, no backtracking; nesting deeper than MAX_DEPTH is treated as not-JSON.
 */

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export interface JsonPrefix {
  value: JsonValue;
  /** False when the text ended inside the value: containers then hold only their complete members. */
  complete: boolean;
  /** Offset just past the value (the text's length when incomplete). */
  end: number;
}

const MAX_DEPTH = 64;

type Step = { ok: true; value: JsonValue } | { ok: false; eof: boolean; partial?: JsonValue };

const ERROR: Step = { ok: false, eof: false };

/** Reads the JSON value starting at `start` (after blanks). Undefined when the text there is not JSON. */
export function readJsonPrefix(text: string, start: number): JsonPrefix | undefined {
  const reader = new Reader(text, start);
  const step = reader.value(0);
  if (step.ok) return { value: step.value, complete: true, end: reader.pos };
  if (step.eof && step.partial !== undefined) return { value: step.partial, complete: false, end: text.length };
  return undefined;
}

class Reader {
  constructor(
    private readonly text: string,
    public pos: number,
  ) {}

  value(depth: number): Step {
    if (depth > MAX_DEPTH) return ERROR;
    this.skipBlanks();
    if (this.pos >= this.text.length) return { ok: false, eof: true };
    const c = this.text[this.pos];
    if (c === "{") return this.object(depth);
    if (c === "[") return this.array(depth);
    if (c === '"' || c === "'") return this.string();
    if (c === "-" || isDigit(c)) return this.number();
    return this.literal();
  }

  private array(depth: number): Step {
    this.pos++;
    const items: JsonValue[] = [];
    while (true) {
      this.skipBlanks();
      if (this.pos >= this.text.length) return { ok: false, eof: true, partial: items };
      if (this.text[this.pos] === "]") {
        this.pos++;
        return { ok: true, value: items };
      }
      const item = this.value(depth + 1);
      // An element the text cut off is dropped: only complete elements are kept.
      if (!item.ok) return item.eof ? { ok: false, eof: true, partial: items } : ERROR;
      items.push(item.value);
      this.skipBlanks();
      if (this.pos >= this.text.length) return { ok: false, eof: true, partial: items };
      const c = this.text[this.pos];
      if (c === ",") this.pos++;
      else if (c !== "]") return ERROR;
    }
  }

  private object(depth: number): Step {
    this.pos++;
    const members: { [key: string]: JsonValue } = {};
    while (true) {
      this.skipBlanks();
      if (this.pos >= this.text.length) return { ok: false, eof: true, partial: members };
      if (this.text[this.pos] === "}") {
        this.pos++;
        return { ok: true, value: members };
      }
      const key = this.key();
      if (!key.ok) return key.eof ? { ok: false, eof: true, partial: members } : ERROR;
      this.skipBlanks();
      if (this.pos >= this.text.length) return { ok: false, eof: true, partial: members };
      if (this.text[this.pos] !== ":") return ERROR;
      this.pos++;
      const member = this.value(depth + 1);
      if (!member.ok) return member.eof ? { ok: false, eof: true, partial: members } : ERROR;
      // defineProperty: a key named "__proto__" stays an ordinary member instead of replacing the prototype.
      Object.defineProperty(members, key.value as string, { value: member.value, enumerable: true, writable: true, configurable: true });
      this.skipBlanks();
      if (this.pos >= this.text.length) return { ok: false, eof: true, partial: members };
      const c = this.text[this.pos];
      if (c === ",") this.pos++;
      else if (c !== "}") return ERROR;
    }
  }

  private key(): Step {
    const c = this.text[this.pos];
    if (c === '"' || c === "'") return this.string();
    const start = this.pos;
    while (this.pos < this.text.length && /[A-Za-z0-9_$]/.test(this.text[this.pos])) this.pos++;
    if (this.pos === start || isDigit(c)) return ERROR;
    return { ok: true, value: this.text.slice(start, this.pos) };
  }

  private string(): Step {
    const quote = this.text[this.pos++];
    const parts: string[] = [];
    let runStart = this.pos;
    while (this.pos < this.text.length) {
      const c = this.text[this.pos];
      if (c === quote) {
        parts.push(this.text.slice(runStart, this.pos));
        this.pos++;
        return { ok: true, value: parts.join("") };
      }
      if (c !== "\\") {
        this.pos++;
        continue;
      }
      parts.push(this.text.slice(runStart, this.pos));
      if (this.pos + 1 >= this.text.length) return { ok: false, eof: true };
      const escaped = this.text[this.pos + 1];
      this.pos += 2;
      if (escaped === "u") {
        const hex = this.text.slice(this.pos, this.pos + 4);
        if (hex.length < 4) return { ok: false, eof: true };
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) return ERROR;
        parts.push(String.fromCharCode(parseInt(hex, 16)));
        this.pos += 4;
      } else {
        parts.push(ESCAPES[escaped] ?? escaped);
      }
      runStart = this.pos;
    }
    return { ok: false, eof: true };
  }

  private number(): Step {
    const start = this.pos;
    if (this.text[this.pos] === "-") this.pos++;
    const digitsStart = this.pos;
    this.skipDigits();
    if (this.pos === digitsStart) return this.pos >= this.text.length ? { ok: false, eof: true } : ERROR;
    if (this.text[this.pos] === "." && isDigit(this.text[this.pos + 1])) {
      this.pos++;
      this.skipDigits();
    }
    if ((this.text[this.pos] === "e" || this.text[this.pos] === "E") && /[-+0-9]/.test(this.text[this.pos + 1] ?? "")) {
      this.pos += 2;
      this.skipDigits();
    }
    // A number that reaches the end of the text may have been cut off ("12" of "12.5").
    if (this.pos >= this.text.length) return { ok: false, eof: true };
    const value = Number(this.text.slice(start, this.pos));
    return Number.isFinite(value) ? { ok: true, value } : ERROR;
  }

  private literal(): Step {
    for (const [word, value] of LITERALS) {
      const available = this.text.slice(this.pos, this.pos + word.length);
      if (available === word) {
        this.pos += word.length;
        return { ok: true, value };
      }
      if (this.pos + available.length >= this.text.length && word.startsWith(available)) return { ok: false, eof: true };
    }
    return ERROR;
  }

  private skipDigits(): void {
    while (this.pos < this.text.length && isDigit(this.text[this.pos])) this.pos++;
  }

  private skipBlanks(): void {
    while (this.pos < this.text.length && /\s/.test(this.text[this.pos])) this.pos++;
  }
}

const ESCAPES: Record<string, string> = { n: "\n", t: "\t", r: "\r", b: "\b", f: "\f" };
const LITERALS: [string, JsonValue][] = [
  ["true", true],
  ["false", false],
  ["null", null],
  ["True", true],
  ["False", false],
  ["None", null],
];

function isDigit(c: string | undefined): boolean {
  return c !== undefined && c >= "0" && c <= "9";
}
