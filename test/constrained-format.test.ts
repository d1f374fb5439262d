/**
 * validateResponseFormat (src/generation/constrained/response-format.ts), the check the server and CLI run on
 * untrusted `response_format` values: accepted shapes come back as clean copies; everything else fails with a
 * VideolmError whose message names the problem (unsupported keywords by name, limits by number).
 */
import { describe, expect, it } from "vitest";
import { VideolmError } from "../src/errors.js";
import { validateResponseFormat } from "../src/index.js";

function refusal(value: unknown): string {
  try {
    validateResponseFormat(value);
  } catch (e) {
    expect(e).toBeInstanceOf(VideolmError);
    return (e as Error).message;
  }
  throw new Error(`accepted ${JSON.stringify(value)?.slice(0, 200)}`);
}

const schema = (s: unknown, extra: object = {}) => ({ type: "json_schema", json_schema: { name: "x", schema: s, ...extra } });

describe("validateResponseFormat", () => {
  it("accepts the four kinds and returns clean copies", () => {
    expect(validateResponseFormat({ type: "text" })).toEqual({ type: "text" });
    expect(validateResponseFormat({ type: "json_object" })).toEqual({ type: "json_object" });
    expect(validateResponseFormat({ type: "regex", pattern: "from \\d+\\.\\d to \\d+\\.\\d seconds" })).toEqual({ type: "regex", pattern: "from \\d+\\.\\d to \\d+\\.\\d seconds" });
    const input = schema({ type: "object", properties: { a: { type: "string", description: "ignored annotation" } }, required: ["a"], title: "T" }, { strict: true });
    const out = validateResponseFormat(input);
    expect(out).toEqual(input);
    expect((out as { json_schema: { schema: object } }).json_schema.schema).not.toBe(input.json_schema.schema); // a copy
    // OpenAI's optional description field is accepted (and dropped).
    expect(validateResponseFormat({ type: "json_schema", json_schema: { name: "x", description: "d", schema: { type: "null" } } })).toEqual({ type: "json_schema", json_schema: { name: "x", schema: { type: "null" } } });
  });

  const cases: [string, unknown, RegExp][] = [
    ["not an object", "json", /must be an object/],
    ["null", null, /must be an object/],
    ["unknown type", { type: "yaml" }, /"text", "json_object", "json_schema" or "regex", got "yaml"/],
    ["missing type", {}, /got undefined/],
    ["unknown field", { type: "json_object", schema: {} }, /unknown field "schema"/],
    ["json_schema without schema", { type: "json_schema", json_schema: { name: "x" } }, /schema must be a JSON Schema object/],
    ["json_schema not an object", { type: "json_schema", json_schema: "x" }, /json_schema must be an object/],
    ["strict not boolean", schema({}, { strict: "yes" }), /strict must be a boolean/],
    ["long name", schema({}, { name: "n".repeat(300) }), /name must be a string of at most 256/],
    ["unknown format", schema({ type: "string", format: "hostname" }), /format "hostname" is not supported \(supported: date, time, date-time, uuid, email\)/],
    ["multipleOf keyword", schema({ type: "object", properties: { t: { type: "number", multipleOf: 2 } } }), /"multipleOf" is not supported.*#\/properties\/t/],
    ["minimum not a number", schema({ type: "number", minimum: "0" }), /must be a number.*#\/minimum/],
    ["minimum above maximum", schema({ type: "number", minimum: 2, maximum: 1 }), /no number lies between/],
    ["no integer in range", schema({ type: "integer", minimum: 1.2, maximum: 1.8 }), /no integer lies between/],
    ["oneOf", schema({ oneOf: [{ type: "string" }] }), /"oneOf" is not supported/],
    ["patternProperties", schema({ type: "object", patternProperties: {} }), /"patternProperties" is not supported/],
    ["prefixItems", schema({ type: "array", prefixItems: [] }), /"prefixItems" is not supported/],
    ["if/then", schema({ if: {}, then: {} }), /"if" is not supported/],
    ["remote $ref", schema({ $ref: "https://example.com/s.json" }), /only local \$ref/],
    ["dangling $ref", schema({ $ref: "#/$defs/missing" }), /does not resolve/],
    ["self $ref", schema({ $defs: { a: { $ref: "#/$defs/a" } }, $ref: "#/$defs/a" }), /only refers to itself/],
    ["unknown type name", schema({ type: "date" }), /unknown type "date"/],
    ["keyword of another type", schema({ type: "string", minItems: 1 }), /"minItems" does not apply to type string/],
    ["required not declared", schema({ type: "object", properties: {}, required: ["a"] }), /"a" is required but not declared/],
    ["negative maxLength", schema({ type: "string", maxLength: -1 }), /non-negative integer/],
    ["maxLength < minLength", schema({ type: "string", minLength: 3, maxLength: 2 }), /below minLength/],
    ["false schema", schema({ type: "object", properties: { a: false } }), /admits no value/],
    ["enum of wrong type", schema({ type: "string", enum: [1, 2] }), /no enum\/const value has the declared type string/],
    ["empty anyOf", schema({ anyOf: [] }), /non-empty list/],
    ["too many anyOf alternatives", schema({ anyOf: Array.from({ length: 65 }, () => ({ type: "string" })) }), /more than 64 alternatives/],
    ["allOf of two", schema({ allOf: [{}, {}] }), /allOf is supported only with exactly one/],
    ["bad pattern", schema({ type: "string", pattern: "(?=x)" }), /lookahead/],
    ["regex lookbehind", { type: "regex", pattern: "(?<=a)b" }, /lookahead, lookbehind/],
    ["empty regex", { type: "regex", pattern: "" }, /non-empty "pattern"/],
    ["huge regex", { type: "regex", pattern: "a".repeat(5000) }, /longer than 4096/],
    ["regex repetition bomb", { type: "regex", pattern: "(a{1000}){1000}" }, /too large/],
    ["deep schema", schema(JSON.parse(`${'{"type":"array","items":'.repeat(40)}{}${"}".repeat(40)}`)), /nests deeper than 32/],
    ["huge schema", schema({ enum: Array.from({ length: 20_000 }, (_, i) => `value-${i}`) }), /larger than 100000 characters/],
    ["too many enum values", schema({ enum: Array.from({ length: 2000 }, (_, i) => i) }), /more than 1024 values/],
    ["too many properties", schema({ type: "object", properties: Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`p${i}`, {}])) }), /more than 256 properties/],
  ];
  for (const [name, value, message] of cases) {
    it(`refuses: ${name}`, () => {
      expect(refusal(value)).toMatch(message);
    });
  }

  it("a schema that is not JSON (cycles) is refused, not crashed on", () => {
    const cyclic: Record<string, unknown> = { type: "object" };
    cyclic.properties = { self: cyclic };
    expect(refusal(schema(cyclic))).toMatch(/not JSON-serializable/);
  });
});
