/**
 * `response_format`: what shape the generated text must have, and its compilation to a byte-level grammar.
 *
 * The first three kinds are OpenAI's (Chat Completions `response_format`); `regex` is videolm's own, for answers a
 * model was trained to give as free text ("from 2.0 to 4.5 seconds"). `validateResponseFormat` is the one check for
 * untrusted input (HTTP, CLI): it bounds sizes and refuses what constrained decoding does not support, naming it.
 */
import { VideolmError } from "../../errors.js";
import { initialJsonState, jsonAccepting, jsonPlainStringRoom, jsonStateKey, stepJson, type JsonState } from "./json-matcher.js";
import { checkShape, compileJsonSchema, jsonObjectNode, type SchemaNode } from "./json-schema.js";
import { compileFullMatch, REGEX_LIMITS, type LazyDfa } from "./regex.js";
import type { ByteGrammar } from "./token-mask.js";

export type ResponseFormat =
  | { type: "text" }
  | { type: "json_object" }
  | { type: "json_schema"; json_schema: { name?: string; schema: object; strict?: boolean } }
  | { type: "regex"; pattern: string };

const WHAT = "response_format";

/**
 * Checks an untrusted value and returns a clean copy (only the known fields). Throws VideolmError with a message
 * that names the problem: unknown type, missing schema, unsupported schema keyword, pattern syntax, size limits.
 */
export function validateResponseFormat(value: unknown): ResponseFormat {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new VideolmError(`${WHAT} must be an object like {"type": "json_object"}`);
  const v = value as Record<string, unknown>;
  const allow = (keys: string[]) => {
    const extra = Object.keys(v).filter((k) => !keys.includes(k));
    if (extra.length > 0) throw new VideolmError(`${WHAT} of type ${JSON.stringify(v.type)}: unknown field${extra.length > 1 ? "s" : ""} ${extra.map((k) => JSON.stringify(k)).join(", ")}`);
  };
  switch (v.type) {
    case "text":
      allow(["type"]);
      return { type: "text" };
    case "json_object":
      allow(["type"]);
      return { type: "json_object" };
    case "json_schema": {
      allow(["type", "json_schema"]);
      const js = v.json_schema;
      if (typeof js !== "object" || js === null || Array.isArray(js)) throw new VideolmError(`${WHAT}.json_schema must be an object {"name": ..., "schema": {...}, "strict": true}`);
      const j = js as Record<string, unknown>;
      const extra = Object.keys(j).filter((k) => !["name", "schema", "strict", "description"].includes(k));
      if (extra.length > 0) throw new VideolmError(`${WHAT}.json_schema: unknown field${extra.length > 1 ? "s" : ""} ${extra.map((k) => JSON.stringify(k)).join(", ")}`);
      if (j.name !== undefined && (typeof j.name !== "string" || j.name.length > 256)) throw new VideolmError(`${WHAT}.json_schema.name must be a string of at most 256 characters`);
      if (j.strict !== undefined && j.strict !== null && typeof j.strict !== "boolean") throw new VideolmError(`${WHAT}.json_schema.strict must be a boolean`);
      if (typeof j.schema !== "object" || j.schema === null || Array.isArray(j.schema)) throw new VideolmError(`${WHAT}.json_schema.schema must be a JSON Schema object`);
      const what = `${WHAT}.json_schema.schema`;
      checkShape(j.schema, what);
      const schema = JSON.parse(JSON.stringify(j.schema)) as object; // a plain copy, detached from the caller
      compileJsonSchema(schema, { strict: j.strict === true, what }); // refuses unsupported keywords now, not mid-request
      return {
        type: "json_schema",
        json_schema: { ...(typeof j.name === "string" ? { name: j.name } : {}), schema, ...(typeof j.strict === "boolean" ? { strict: j.strict } : {}) },
      };
    }
    case "regex": {
      allow(["type", "pattern"]);
      if (typeof v.pattern !== "string" || v.pattern.length === 0) throw new VideolmError(`${WHAT} of type "regex" needs a non-empty "pattern" string`);
      if (v.pattern.length > REGEX_LIMITS.patternChars) throw new VideolmError(`${WHAT}.pattern is longer than ${REGEX_LIMITS.patternChars} characters`);
      compileFullMatch(v.pattern, `${WHAT}.pattern`);
      return { type: "regex", pattern: v.pattern };
    }
    default:
      throw new VideolmError(`${WHAT}.type must be "text", "json_object", "json_schema" or "regex", got ${JSON.stringify(v.type) ?? String(v.type)}`);
  }
}

/** The grammar of a response format; undefined for plain text (no constraint). */
export function compileResponseFormat(format: ResponseFormat): ByteGrammar<unknown> | undefined {
  switch (format.type) {
    case "text":
      return undefined;
    case "json_object":
      return new JsonGrammar(jsonObjectNode()) as ByteGrammar<unknown>;
    case "json_schema":
      return new JsonGrammar(compileJsonSchema(format.json_schema.schema, { strict: format.json_schema.strict === true, what: `${WHAT}.json_schema.schema` })) as ByteGrammar<unknown>;
    case "regex":
      return new RegexGrammar(compileFullMatch(format.pattern, `${WHAT}.pattern`)) as ByteGrammar<unknown>;
  }
}

/** A cache key for a (validated) response format: equal formats compile to the same grammar. */
export function responseFormatKey(format: ResponseFormat): string {
  return JSON.stringify(format);
}

export class JsonGrammar implements ByteGrammar<JsonState> {
  readonly initial: JsonState;
  constructor(readonly root: SchemaNode) {
    this.initial = initialJsonState(root);
  }
  step(state: JsonState, b: number): JsonState | undefined {
    return stepJson(state, b);
  }
  accepting(state: JsonState): boolean {
    return jsonAccepting(state);
  }
  key(state: JsonState): string {
    return jsonStateKey(state);
  }
  plainStringRoom(state: JsonState): number {
    return jsonPlainStringRoom(state);
  }
}

export class RegexGrammar implements ByteGrammar<number> {
  readonly initial: number;
  constructor(readonly dfa: LazyDfa) {
    this.initial = dfa.start;
  }
  step(state: number, b: number): number | undefined {
    const s = this.dfa.step(state, b);
    return s < 0 ? undefined : s;
  }
  accepting(state: number): boolean {
    return this.dfa.isAccepting(state);
  }
  key(state: number): string {
    return String(state);
  }
  plainStringRoom(): number {
    return -1;
  }
}
