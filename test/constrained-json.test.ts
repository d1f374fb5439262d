/**
 * The JSON-schema byte automaton (src/generation/constrained/json-matcher.ts, json-schema.ts): hand-written
 * accept/reject tables per schema, the whitespace / nesting / length bounds, and "no dead ends" (from any prefix the
 * automaton accepts, a complete document is reachable).
 */
import { describe, expect, it } from "vitest";
import { MAX_NESTING } from "../src/generation/constrained/json-schema.js";
import { MAX_WHITESPACE } from "../src/generation/constrained/json-matcher.js";
import { compileResponseFormat, type ResponseFormat } from "../src/generation/constrained/response-format.js";
import type { ByteGrammar } from "../src/generation/constrained/token-mask.js";
import { accepts, rng, satisfies, walk } from "./constrained-helpers.js";

const schemaFormat = (schema: object, strict = false): ResponseFormat => ({ type: "json_schema", json_schema: { name: "t", schema, strict } });
const grammarOf = (f: ResponseFormat) => compileResponseFormat(f)!;

const EVENTS = {
  type: "array",
  items: { type: "object", properties: { start: { type: "number" }, end: { type: "number" }, text: { type: "string" } }, required: ["start", "end", "text"] },
};
const TREE = {
  $defs: { node: { type: "object", properties: { name: { type: "string" }, children: { type: "array", items: { $ref: "#/$defs/node" } } }, required: ["name"] } },
  $ref: "#/$defs/node",
};

const tables: { name: string; format: ResponseFormat; schema?: object; accept: string[]; reject: string[] }[] = [
  {
    name: "events list",
    format: schemaFormat(EVENTS, true),
    schema: EVENTS,
    accept: [
      "[]",
      '[{"start":1,"end":2.5,"text":"a"}]',
      '[ {"text":"x","start":0,"end":-1.5e-5} ]',
      '[\n  {"start": 1, "end": 2, "text": "é\\n\\u00e9\\"\\\\\\/"},\n  {"end":3,"text":"","start":2}\n]',
      ' \n[{"start":0.25,"end":1E+2,"text":"😀 ok"}]',
    ],
    reject: [
      '[{"start":1,"end":2}]', // missing required
      '[{"start":"1","end":2,"text":"a"}]', // wrong type
      '[{"start":1,"end":2,"text":"a","extra":1}]', // undeclared key
      '[{"start":01,"end":2,"text":"a"}]', // leading zero
      '[{"start":1,"start":1,"end":2,"text":"a"}]', // duplicate key
      '[{"start":1,"end":2,"text":"a"},]', // trailing comma
      '[{"start":1,"end":2,"text":"a\nb"}]', // raw control character
      '[{"start":1,"end":2,"text":"a\\x41"}]', // invalid escape
      '[{"start":1,"end":2,"text":"\\ud83d\\ude00"}]', // surrogate escapes
      '[{"start":1,"end":2,"text":"\\u00G0"}]', // bad hex
      "[] ", // nothing after the value
      "[]]",
      '{"start":1,"end":2,"text":"a"}', // object instead of array
      '[{"start":1.,"end":2,"text":"a"}]',
      '[{"start":.5,"end":2,"text":"a"}]',
      '[{"start":1e,"end":2,"text":"a"}]',
      '[{"start":1e100,"end":2,"text":"a"}]', // exponent: at most 2 digits
      '[{"start":NaN,"end":2,"text":"a"}]',
      '[{"start":+1,"end":2,"text":"a"}]',
      "['a']",
    ],
  },
  {
    name: "json_object",
    format: { type: "json_object" },
    accept: ["{}", '{"a":[1,{"b":null}],"c":true,"d":"x","e":-0.5,"f":false}', '{"":""}', '{ "a" : [ ] , "a" : { } }', '{"k":[[[]]]}'],
    reject: ["[]", '"x"', "1", "null", '{"a":tru}', "{a:1}", '{"a":1,}', '{"a" 1}', '{"a":NaN}', "{'a':1}", '{"a":1}}', "{,}"],
  },
  {
    name: "enum",
    format: schemaFormat({ enum: ["red", "green", 1, 12, null, { a: [1] }] }),
    schema: { enum: ["red", "green", 1, 12, null, { a: [1] }] },
    accept: ['"red"', '"green"', "1", "12", "null", '{"a":[1]}'],
    reject: ['"blue"', "2", '"Red"', "123", '"red "', "nul", '{"a": [1]}', "true"],
  },
  {
    name: "string lengths (code points; an escape is one)",
    format: schemaFormat({ type: "string", minLength: 2, maxLength: 3 }),
    schema: { type: "string", minLength: 2, maxLength: 3 },
    accept: ['"ab"', '"abc"', '"éé"', '"😀😀😀"', '"\\n\\t"', '"\\u00e9x"'],
    reject: ['"a"', '"abcd"', '"😀"', '"é😀ab"', '""'],
  },
  {
    name: "string pattern (search semantics, decoded text)",
    format: schemaFormat({ type: "object", properties: { t: { type: "string", pattern: "^\\d{2}:\\d{2}$" }, n: { type: "string", pattern: "^a\\nb$" }, q: { type: "string", pattern: 'x"' } } }),
    schema: { type: "object", properties: { t: { type: "string", pattern: "^\\d{2}:\\d{2}$" }, n: { type: "string", pattern: "^a\\nb$" }, q: { type: "string", pattern: 'x"' } } },
    accept: ['{"t":"12:30"}', '{"n":"a\\nb"}', '{"q":"x\\""}', '{"q":"zzx\\"zz"}', "{}"],
    reject: ['{"t":"1:30"}', '{"t":"12:30 "}', '{"n":"a\\u000ab"}', '{"q":"x"}'],
  },
  {
    name: "string formats (as patterns)",
    format: schemaFormat({ type: "object", properties: { d: { type: "string", format: "date" }, t: { type: "string", format: "date-time" }, u: { type: "string", format: "uuid" }, e: { type: "string", format: "email" } } }),
    accept: ['{"d":"2024-02-29"}', '{"t":"2024-02-29T23:59:60Z"}'.replace(":60", ":59"), '{"t":"2024-01-01T00:00:00.123+05:30"}', '{"u":"123e4567-e89b-12d3-a456-426614174000"}', '{"e":"a.b@example.org"}'],
    reject: ['{"d":"2024-13-01"}', '{"d":"24-01-01"}', '{"t":"2024-01-01 00:00:00Z"}', '{"t":"2024-01-01T00:00:00"}', '{"u":"123e4567e89b12d3a456426614174000"}', '{"e":"a@b"}', '{"e":"a b@example.org"}'],
  },
  {
    name: "integer",
    format: schemaFormat({ type: "integer" }),
    schema: { type: "integer" },
    accept: ["0", "-12", "1234567890123456"],
    reject: ["1.0", "1e2", "01", "-", "-0.5", "12345678901234567", ""],
  },
  {
    name: "numbers",
    format: schemaFormat({ type: "number" }),
    schema: { type: "number" },
    accept: ["1.5e-3", "-0", "0.0", "10E2", "3"],
    reject: ["1.", "1e", "00", "-01", "0x1", "Infinity"],
  },
  {
    name: "number bounds (inclusive)",
    format: schemaFormat({ type: "number", minimum: 0, maximum: 10 }),
    schema: { type: "number", minimum: 0, maximum: 10 },
    accept: ["0", "10", "9.99", "0.5", "10.0", "-0"],
    reject: ["-1", "10.5", "11", "1e1", "-0.1", "100", "10.01"],
  },
  {
    name: "integer bounds (exclusive minimum)",
    format: schemaFormat({ type: "integer", exclusiveMinimum: 0, maximum: 100 }),
    schema: { type: "integer", exclusiveMinimum: 0, maximum: 100 },
    accept: ["1", "100", "42"],
    reject: ["0", "101", "-5", "1000"],
  },
  {
    name: "number bounds (exclusive maximum, fractional minimum)",
    format: schemaFormat({ type: "number", minimum: 0.5, exclusiveMaximum: 1 }),
    schema: { type: "number", minimum: 0.5, exclusiveMaximum: 1 },
    accept: ["0.5", "0.75", "0.9999"],
    reject: ["1", "0.4", "1.0", "0.49", "0"],
  },
  {
    name: "anyOf and type lists",
    format: schemaFormat({ anyOf: [{ type: "string", maxLength: 1 }, { type: "null" }, { type: "array", items: { type: "integer" }, maxItems: 2 }, { type: ["boolean", "number"] }] }),
    schema: { anyOf: [{ type: "string", maxLength: 1 }, { type: "null" }, { type: "array", items: { type: "integer" }, maxItems: 2 }, { type: ["boolean", "number"] }] },
    accept: ['"x"', "null", "[1,2]", "[]", "true", "2.5"],
    reject: ["[1,2,3]", '"xy"', "[1.5]", "{}"],
  },
  {
    name: "recursive $ref",
    format: schemaFormat(TREE),
    schema: TREE,
    accept: ['{"name":"a","children":[{"name":"b","children":[]},{"name":"c"}]}', '{"children":[],"name":""}'],
    reject: ['{"children":[]}', '{"name":"a","children":[{}]}'],
  },
  {
    name: "minItems / maxItems with const items",
    format: schemaFormat({ type: "array", items: { const: 1 }, minItems: 1, maxItems: 2 }),
    schema: { type: "array", items: { const: 1 }, minItems: 1, maxItems: 2 },
    accept: ["[1]", "[1,1]", "[ 1 , 1 ]"],
    reject: ["[]", "[1,1,1]", "[2]", "[1,]"],
  },
  {
    name: "strict object without properties: only {}",
    format: schemaFormat({ type: "object" }, true),
    accept: ["{}", "{ }"],
    reject: ['{"a":1}'],
  },
  {
    name: "non-strict object without properties: any members",
    format: schemaFormat({ type: "object" }),
    accept: ["{}", '{"a":1,"b":[{}]}'],
    reject: ["[]"],
  },
  {
    name: "additionalProperties schema",
    format: schemaFormat({ type: "object", additionalProperties: { type: "integer" } }),
    schema: { type: "object", additionalProperties: { type: "integer" } },
    accept: ['{"a":1,"b":2}'],
    reject: ['{"a":"x"}'],
  },
  {
    name: "regex response format",
    format: { type: "regex", pattern: "from \\d+\\.\\d to \\d+\\.\\d seconds" },
    accept: ["from 2.0 to 4.5 seconds"],
    reject: ["from 2.0 to 4.5 seconds.", "From 2.0 to 4.5 seconds"],
  },
];

describe("accept / reject tables", () => {
  for (const t of tables) {
    it(t.name, () => {
      const g = grammarOf(t.format);
      for (const text of t.accept) {
        expect(accepts(g, text), `should accept ${JSON.stringify(text)}`).toBe(true);
        // Every prefix stays alive, and no proper prefix of a complete container text is complete.
        for (let i = 0; i < text.length; i++) expect(walk(g, text.slice(0, i)), `prefix ${JSON.stringify(text.slice(0, i))}`).toBeDefined();
        if (t.format.type !== "regex") {
          const value = JSON.parse(text);
          if (t.schema) expect(satisfies(value, t.schema), `independent check of ${text}`).toBe(true);
        }
      }
      for (const text of t.reject) expect(accepts(g, text), `should reject ${JSON.stringify(text)}`).toBe(false);
    });
  }
});

describe("bounds", () => {
  it(`whitespace: at most ${MAX_WHITESPACE} bytes per gap`, () => {
    const g = grammarOf({ type: "json_object" });
    expect(accepts(g, `{${" ".repeat(MAX_WHITESPACE)}}`)).toBe(true);
    expect(accepts(g, `{${" ".repeat(MAX_WHITESPACE + 1)}}`)).toBe(false);
    expect(accepts(g, `{"a":${"\n".repeat(MAX_WHITESPACE)}1${"\t".repeat(MAX_WHITESPACE)}}`)).toBe(true);
    expect(accepts(g, `${" ".repeat(MAX_WHITESPACE)}{}`)).toBe(true);
    expect(accepts(g, `${" ".repeat(MAX_WHITESPACE + 1)}{}`)).toBe(false);
  });

  it(`nesting: at most ${MAX_NESTING} containers deep`, () => {
    const g = grammarOf({ type: "json_object" });
    const nested = (depth: number) => `{"a":${"[".repeat(depth - 1)}${"]".repeat(depth - 1)}}`;
    expect(accepts(g, nested(MAX_NESTING))).toBe(true);
    expect(accepts(g, nested(MAX_NESTING + 1))).toBe(false);
  });

  it("strings without maxLength stop at 2048 code points (free keys at 256)", () => {
    const g = grammarOf(schemaFormat({ type: "string" }));
    expect(accepts(g, `"${"é".repeat(2048)}"`)).toBe(true);
    expect(accepts(g, `"${"é".repeat(2049)}"`)).toBe(false);
    const o = grammarOf({ type: "json_object" });
    expect(accepts(o, `{"${"k".repeat(256)}":1}`)).toBe(true);
    expect(accepts(o, `{"${"k".repeat(257)}":1}`)).toBe(false);
  });

  it("strings take valid UTF-8 only (byte level: overlongs, surrogates, stray continuation bytes refused)", () => {
    const g = grammarOf(schemaFormat({ type: "string" }));
    const bytes = (...b: number[]) => Uint8Array.from([0x22, ...b, 0x22]);
    const ok = (b: Uint8Array) => {
      const s = walk(g, b);
      return s !== undefined && g.accepting(s);
    };
    expect(ok(bytes(0xc3, 0xa9))).toBe(true); // é
    expect(ok(bytes(0xe0, 0xa0, 0x80))).toBe(true); // U+0800
    expect(ok(bytes(0xf0, 0x9f, 0x98, 0x80))).toBe(true); // 😀
    expect(ok(bytes(0xe0, 0x80, 0x80))).toBe(false); // overlong
    expect(ok(bytes(0xc0, 0x80))).toBe(false); // overlong NUL
    expect(ok(bytes(0xed, 0xa0, 0x80))).toBe(false); // surrogate D800
    expect(ok(bytes(0xf4, 0x90, 0x80, 0x80))).toBe(false); // above U+10FFFF
    expect(ok(bytes(0x80))).toBe(false); // stray continuation
    expect(ok(bytes(0xc3))).toBe(false); // cut character
  });

  it("too many parallel readings of ambiguous anyOfs fail with a clear error", () => {
    const level = (inner: object) => ({ anyOf: Array.from({ length: 9 }, () => ({ type: "array", items: inner })) });
    const g = grammarOf(schemaFormat(level(level(level({ type: "null" })))));
    expect(walk(g, "[[")).toBeDefined(); // 81 readings
    expect(() => walk(g, "[[[")).toThrow(/too ambiguous/); // 729 readings
  });

  it("the document ends at the end of the value: nothing may follow, so the only continuation is the end", () => {
    const g = grammarOf({ type: "json_object" });
    const s = walk(g, '{"a":1}')!;
    expect(g.accepting(s)).toBe(true);
    for (let b = 0; b < 256; b++) expect(g.step(s, b)).toBeUndefined();
  });

  it("a number at the top level may end or go on", () => {
    const g = grammarOf(schemaFormat({ type: "number" }));
    const s = walk(g, "12")!;
    expect(g.accepting(s)).toBe(true);
    expect(g.step(s, "3".charCodeAt(0))).toBeDefined();
    expect(g.step(s, " ".charCodeAt(0))).toBeUndefined();
  });
});

/** Bytes tried first when searching for a completion: closers and short values before everything else. */
const PREFERRED = [..."\"}]0123456789a:,[{tfn.e-u"].map((c) => c.charCodeAt(0));
const BYTE_ORDER = [...PREFERRED, ...Array.from({ length: 256 }, (_, b) => b).filter((b) => !PREFERRED.includes(b))];

/** Whether some byte string of at most `budget` bytes leads from `from` to acceptance (depth-first, failed keys memoized). */
function completable<S>(g: ByteGrammar<S>, from: S, budget: number, failed = new Set<string>()): boolean {
  if (g.accepting(from)) return true;
  if (budget === 0) return false;
  const k = `${budget}:${g.key(from)}`;
  if (failed.has(k)) return false;
  for (const b of BYTE_ORDER) {
    const t = g.step(from, b);
    if (t !== undefined && completable(g, t, budget - 1, failed)) return true;
  }
  failed.add(k);
  return false;
}

describe("no dead ends", () => {
  const formats: [string, ResponseFormat][] = [
    ["events", schemaFormat(EVENTS, true)],
    ["json_object", { type: "json_object" }],
    ["enum", schemaFormat({ enum: ["red", "green", 1, 12, null] })],
    ["pattern + lengths", schemaFormat({ type: "object", properties: { t: { type: "string", pattern: "^\\d{2}:\\d{2}$" }, s: { type: "string", minLength: 3, maxLength: 5 } }, required: ["t", "s"] })],
    ["tree", schemaFormat(TREE)],
    ["bounded numbers", schemaFormat({ type: "array", items: { anyOf: [{ type: "number", minimum: 0.5, exclusiveMaximum: 1 }, { type: "integer", minimum: -20, maximum: -3 }, { type: "number", minimum: 250, maximum: 260.5 }] } })],
  ];
  for (const [name, format] of formats) {
    it(`${name}: every prefix reached by random allowed bytes can still be completed`, () => {
      const g = grammarOf(format);
      const random = rng(42);
      for (let run = 0; run < 40; run++) {
        let s = g.initial;
        const steps = Math.floor(random() * 60);
        for (let i = 0; i < steps; i++) {
          const allowed: number[] = [];
          for (let b = 0; b < 256; b++) if (g.step(s, b) !== undefined) allowed.push(b);
          if (allowed.length === 0) break;
          // Prefer structure over whitespace so the walks reach deep states.
          const pick = allowed[Math.floor(random() * allowed.length)];
          s = g.step(s, pick)!;
        }
        expect(completable(g, s, 64), `run ${run}`).toBe(true);
      }
    });
  }
});
