/**
 * JSON Schema subset → a tree of `SchemaNode`s that the JSON matcher (json-matcher.ts) follows byte by byte.
 *
 * Supported (everything else that constrains values is refused with a message naming the keyword and where it is):
 *   type (a name or a list of names), enum, const, anyOf, allOf with one element, $ref to a local JSON pointer
 *   (`#/$defs/Name`, `#/definitions/Name`, any `#/...`; recursion allowed), and per type
 *     object:  properties, required, additionalProperties
 *     array:   items, minItems, maxItems
 *     string:  minLength, maxLength, pattern (regex.ts; JSON Schema's unanchored search semantics), format (date,
 *              time, date-time, uuid, email: written as patterns)
 *     number / integer: minimum, maximum, exclusiveMinimum, exclusiveMaximum (numbers), boolean, null
 *   Annotations (title, description, default, examples, $schema, $id, $comment, deprecated, readOnly, writeOnly)
 *   are ignored.
 *
 * Where the generated language is narrower than the schema (every output still validates):
 *   - an object with `properties` only ever gets those keys (additional properties are never generated, whatever
 *     `additionalProperties` says); keys may come in any order, each at most once; `required` ones must appear.
 *     An object schema without `properties` takes keys per `additionalProperties` (absent or true: any key, unless
 *     `strict`, where absent means none, as in OpenAI's strict mode);
 *   - strings are at most `maxLength` characters, and at most DEFAULT_MAX_STRING when the schema sets no maxLength;
 *   - numbers have at most 16 integer digits, 16 fraction digits and a 2-digit exponent (none when the schema
 *     bounds them); integers are written without fraction or exponent;
 *   - enum / const values are written as `JSON.stringify` writes them;
 *   - containers nest at most MAX_NESTING deep (recursive `$ref`s stop there: only a finite tail remains possible).
 */
import { VideolmError } from "../../errors.js";
import { compileSearch, type LazyDfa } from "./regex.js";

export type SchemaNode = AnyNode | ObjectNode | ArrayNode | StringNode | NumberNode | LiteralNode | AnyOfNode;

interface Base {
  /** Unique per compiled schema: part of matcher state keys. */
  id: number;
}
/** Any JSON value (json_object's members, `{}`, `true`). */
export interface AnyNode extends Base {
  kind: "any";
}
export interface ObjectProperty {
  name: string;
  /** The key as written: JSON.stringify(name) in UTF-8, quotes included. */
  key: Uint8Array;
  node: SchemaNode;
  required: boolean;
}
export interface ObjectNode extends Base {
  kind: "object";
  properties: ObjectProperty[];
  /** Free keys (only when `properties` is empty): the value schema, or null for none. */
  additional: SchemaNode | null;
}
export interface ArrayNode extends Base {
  kind: "array";
  items: SchemaNode;
  min: number;
  max: number;
}
export interface StringNode extends Base {
  kind: "string";
  minLength: number;
  maxLength: number;
  pattern?: LazyDfa;
}
export interface NumberNode extends Base {
  kind: "number";
  integer: boolean;
  /** minimum / exclusiveMinimum and maximum / exclusiveMaximum (numbers with bounds are written without exponent). */
  lower?: Bound;
  upper?: Bound;
}
export interface Bound {
  value: number;
  exclusive: boolean;
}
/** One of a fixed set of JSON texts (enum, const, true/false, null). */
export interface LiteralNode extends Base {
  kind: "literal";
  texts: Uint8Array[];
}
export interface AnyOfNode extends Base {
  kind: "anyOf";
  options: SchemaNode[];
}

/** Strings are at most this many characters when the schema sets no maxLength (and always for object keys of free objects). */
export const DEFAULT_MAX_STRING = 2048;
/** Containers nest at most this deep in constrained output. */
export const MAX_NESTING = 20;

export const SCHEMA_LIMITS = {
  /** JSON.stringify(schema).length */
  chars: 100_000,
  /** Nesting of the schema document itself. */
  depth: 32,
  /** Compiled nodes (each $ref target counts once). */
  nodes: 10_000,
  propertiesPerObject: 256,
  /** Alternatives of one anyOf (or type list); each ambiguous one is followed in parallel (json-matcher.ts). */
  anyOfOptions: 64,
  enumValues: 1024,
  /** Bytes of one enum/const value as JSON. */
  literalBytes: 4096,
  maxLength: 100_000,
  maxItems: 100_000,
};

const ANNOTATIONS = new Set(["title", "description", "default", "examples", "$schema", "$id", "$comment", "deprecated", "readOnly", "writeOnly"]);
const TYPE_KEYWORDS: Record<string, string[]> = {
  object: ["properties", "required", "additionalProperties"],
  array: ["items", "minItems", "maxItems"],
  string: ["minLength", "maxLength", "pattern", "format"],
  number: ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"],
  integer: ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"],
  boolean: [],
  null: [],
};
const GENERIC = new Set(["type", "enum", "const", "anyOf", "allOf", "$ref", "$defs", "definitions"]);
const TYPE_NAMES = Object.keys(TYPE_KEYWORDS);

const encoder = new TextEncoder();

/**
 * String formats written as patterns (RFC 3339 `full-date`, `full-time`, `date-time` (upper-case T and Z), RFC 4122
 * UUIDs, and a plain `local@domain.tld` e-mail address — narrower than RFC 5321, so outputs still validate).
 */
const DATE = "\\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\\d|3[01])";
const TIME = "(?:[01]\\d|2[0-3]):[0-5]\\d:[0-5]\\d(?:\\.\\d{1,9})?(?:Z|[+-](?:[01]\\d|2[0-3]):[0-5]\\d)";
const FORMATS: Record<string, string> = {
  date: DATE,
  time: TIME,
  "date-time": `${DATE}T${TIME}`,
  uuid: "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
  email: "[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\\.[A-Za-z0-9-]{1,63}){0,8}\\.[A-Za-z]{2,24}",
};

/** Compiles a JSON Schema (see the file comment for the subset). `strict`: OpenAI's strict mode (see above). */
export function compileJsonSchema(schema: unknown, options: { strict?: boolean; what?: string } = {}): SchemaNode {
  return new SchemaCompiler(schema, options.strict ?? false, options.what ?? "json_schema").compileRoot();
}

/** The node for json_object: any object at the top level, any values inside. */
export function jsonObjectNode(): SchemaNode {
  return { id: 0, kind: "object", properties: [], additional: { id: 1, kind: "any" } };
}

class SchemaCompiler {
  private nextId = 0;
  private readonly refs = new Map<string, SchemaNode>();

  constructor(
    private readonly root: unknown,
    private readonly strict: boolean,
    private readonly what: string,
  ) {}

  compileRoot(): SchemaNode {
    checkShape(this.root, this.what);
    return this.compile(this.root, "#", 0);
  }

  private fail(path: string, message: string): never {
    throw new VideolmError(`${this.what}: ${message} (at ${path})`);
  }

  private node<T extends SchemaNode>(n: Omit<T, "id">): T {
    if (this.nextId >= SCHEMA_LIMITS.nodes) throw new VideolmError(`${this.what}: the schema is too large (more than ${SCHEMA_LIMITS.nodes} subschemas)`);
    return { ...n, id: this.nextId++ } as T;
  }

  private compile(schema: unknown, path: string, depth: number): SchemaNode {
    if (depth > SCHEMA_LIMITS.depth) this.fail(path, `the schema nests deeper than ${SCHEMA_LIMITS.depth} levels`);
    if (schema === true) return this.node<AnyNode>({ kind: "any" });
    if (schema === false) this.fail(path, "the schema `false` admits no value");
    if (!isObject(schema)) this.fail(path, `a schema must be an object or a boolean, got ${describe(schema)}`);
    const s = schema as Record<string, unknown>;
    for (const k of Object.keys(s)) {
      if (!ANNOTATIONS.has(k) && !GENERIC.has(k) && !TYPE_NAMES.some((t) => TYPE_KEYWORDS[t].includes(k))) {
        this.fail(path, `the keyword ${JSON.stringify(k)} is not supported by constrained decoding (supported: type, properties, required, additionalProperties, items, minItems, maxItems, minLength, maxLength, pattern, format, minimum, maximum, exclusiveMinimum, exclusiveMaximum, enum, const, anyOf, $ref, $defs)`);
      }
    }
    const constraints = Object.keys(s).filter((k) => !ANNOTATIONS.has(k) && k !== "$defs" && k !== "definitions");

    if (s.$ref !== undefined) {
      if (constraints.length > 1) this.fail(path, `$ref next to other constraints (${constraints.filter((k) => k !== "$ref").join(", ")}) is not supported`);
      return this.ref(s.$ref, path, depth);
    }
    if (s.allOf !== undefined) {
      if (!Array.isArray(s.allOf) || s.allOf.length !== 1) this.fail(path, "allOf is supported only with exactly one subschema");
      if (constraints.length > 1) this.fail(path, "allOf next to other constraints is not supported");
      return this.compile(s.allOf[0], `${path}/allOf/0`, depth + 1);
    }
    if (s.anyOf !== undefined) {
      if (!Array.isArray(s.anyOf) || s.anyOf.length === 0) this.fail(path, "anyOf must be a non-empty list of schemas");
      if (s.anyOf.length > SCHEMA_LIMITS.anyOfOptions) this.fail(path, `anyOf with more than ${SCHEMA_LIMITS.anyOfOptions} alternatives is not supported`);
      if (constraints.length > 1) this.fail(path, `anyOf next to other constraints (${constraints.filter((k) => k !== "anyOf").join(", ")}) is not supported; move them into each alternative`);
      const options = s.anyOf.map((o, i) => this.compile(o, `${path}/anyOf/${i}`, depth + 1));
      return options.length === 1 ? options[0] : this.node<AnyOfNode>({ kind: "anyOf", options });
    }

    const types = this.types(s, path);
    if (s.const !== undefined || s.enum !== undefined) return this.literal(s, types, path);

    for (const k of constraints) {
      if (k === "type") continue;
      const owner = TYPE_NAMES.filter((t) => TYPE_KEYWORDS[t].includes(k));
      if (types && !owner.some((t) => types.includes(t))) this.fail(path, `${JSON.stringify(k)} does not apply to type ${types.join("/")}`);
    }
    if (!types) return this.node<AnyNode>({ kind: "any" });
    const options = types.map((t) => this.typed(t, s, path, depth));
    return options.length === 1 ? options[0] : this.node<AnyOfNode>({ kind: "anyOf", options });
  }

  /** The declared type(s), or inferred from the keywords present; undefined = any value. */
  private types(s: Record<string, unknown>, path: string): string[] | undefined {
    if (s.type !== undefined) {
      const list = Array.isArray(s.type) ? s.type : [s.type];
      if (list.length === 0) this.fail(path, "type must not be an empty list");
      for (const t of list) if (typeof t !== "string" || !TYPE_NAMES.includes(t)) this.fail(path, `unknown type ${describe(t)} (expected one of ${TYPE_NAMES.join(", ")})`);
      return [...new Set(list as string[])];
    }
    const inferred = TYPE_NAMES.filter((t) => TYPE_KEYWORDS[t].some((k) => s[k] !== undefined));
    return inferred.length > 0 ? inferred : undefined;
  }

  private typed(type: string, s: Record<string, unknown>, path: string, depth: number): SchemaNode {
    switch (type) {
      case "object":
        return this.object(s, path, depth);
      case "array": {
        const items = s.items === undefined ? this.node<AnyNode>({ kind: "any" }) : this.compile(s.items, `${path}/items`, depth + 1);
        if (Array.isArray(s.items)) this.fail(`${path}/items`, "tuple-form items (a list) is not supported");
        const min = this.count(s.minItems, 0, SCHEMA_LIMITS.maxItems, `${path}/minItems`);
        const max = this.count(s.maxItems, Infinity, SCHEMA_LIMITS.maxItems, `${path}/maxItems`);
        if (max < min) this.fail(path, `maxItems ${max} is below minItems ${min}`);
        return this.node<ArrayNode>({ kind: "array", items, min, max });
      }
      case "string": {
        const minLength = this.count(s.minLength, 0, SCHEMA_LIMITS.maxLength, `${path}/minLength`);
        const maxLength = this.count(s.maxLength, Math.max(DEFAULT_MAX_STRING, minLength), SCHEMA_LIMITS.maxLength, `${path}/maxLength`);
        if (maxLength < minLength) this.fail(path, `maxLength ${maxLength} is below minLength ${minLength}`);
        let pattern: LazyDfa | undefined;
        if (s.pattern !== undefined && s.format !== undefined) this.fail(path, "pattern together with format is not supported");
        if (s.pattern !== undefined) {
          if (typeof s.pattern !== "string") this.fail(`${path}/pattern`, "pattern must be a string");
          pattern = compileSearch(s.pattern, `${this.what}: pattern at ${path}`);
        }
        if (s.format !== undefined) {
          const regex = typeof s.format === "string" ? FORMATS[s.format] : undefined;
          if (!regex) this.fail(`${path}/format`, `format ${describe(s.format)} is not supported (supported: ${Object.keys(FORMATS).join(", ")})`);
          pattern = compileSearch(`^${regex}$`, `${this.what}: format at ${path}`);
        }
        return this.node<StringNode>({ kind: "string", minLength, maxLength, ...(pattern ? { pattern } : {}) });
      }
      case "number":
      case "integer": {
        const bound = (inclusive: string, exclusive: string, stricter: (a: number, b: number) => boolean): Bound | undefined => {
          let out: Bound | undefined;
          for (const [k, excl] of [
            [inclusive, false],
            [exclusive, true],
          ] as const) {
            const v = s[k];
            if (v === undefined) continue;
            if (typeof v !== "number" || !Number.isFinite(v) || Math.abs(v) >= 1e15) this.fail(`${path}/${k}`, `must be a number below 1e15 in magnitude, got ${describe(v)}`);
            if (!out || stricter(v, out.value) || (v === out.value && excl)) out = { value: v, exclusive: excl };
          }
          return out;
        };
        const lower = bound("minimum", "exclusiveMinimum", (a, b) => a > b);
        const upper = bound("maximum", "exclusiveMaximum", (a, b) => a < b);
        if (lower && upper && (lower.value > upper.value || (lower.value === upper.value && (lower.exclusive || upper.exclusive)))) this.fail(path, "no number lies between the minimum and the maximum");
        if (type === "integer" && lower && upper && Math.floor(upper.value) < Math.ceil(lower.value)) this.fail(path, "no integer lies between the minimum and the maximum");
        return this.node<NumberNode>({ kind: "number", integer: type === "integer", ...(lower ? { lower } : {}), ...(upper ? { upper } : {}) });
      }
      case "boolean":
        return this.node<LiteralNode>({ kind: "literal", texts: [encoder.encode("true"), encoder.encode("false")] });
      default:
        return this.node<LiteralNode>({ kind: "literal", texts: [encoder.encode("null")] });
    }
  }

  private object(s: Record<string, unknown>, path: string, depth: number): ObjectNode {
    const props = s.properties ?? {};
    if (!isObject(props)) this.fail(`${path}/properties`, `properties must be an object, got ${describe(props)}`);
    const names = Object.keys(props as object);
    if (names.length > SCHEMA_LIMITS.propertiesPerObject) this.fail(`${path}/properties`, `more than ${SCHEMA_LIMITS.propertiesPerObject} properties`);
    const required = s.required ?? [];
    if (!Array.isArray(required) || required.some((r) => typeof r !== "string")) this.fail(`${path}/required`, "required must be a list of property names");
    for (const r of required as string[]) {
      if (!names.includes(r)) this.fail(`${path}/required`, `${JSON.stringify(r)} is required but not declared in properties (constrained decoding only writes declared properties)`);
    }
    const properties: ObjectProperty[] = names.map((name) => ({
      name,
      key: encoder.encode(JSON.stringify(name)),
      node: this.compile((props as Record<string, unknown>)[name], `${path}/properties/${escapePointer(name)}`, depth + 1),
      required: (required as string[]).includes(name),
    }));
    const ap = s.additionalProperties;
    if (ap !== undefined && typeof ap !== "boolean" && !isObject(ap)) this.fail(`${path}/additionalProperties`, "additionalProperties must be a boolean or a schema");
    let additional: SchemaNode | null = null;
    if (names.length === 0) {
      if (isObject(ap)) additional = this.compile(ap, `${path}/additionalProperties`, depth + 1);
      else if (ap === true || (ap === undefined && !this.strict)) additional = this.node<AnyNode>({ kind: "any" });
    }
    return this.node<ObjectNode>({ kind: "object", properties, additional });
  }

  private literal(s: Record<string, unknown>, types: string[] | undefined, path: string): LiteralNode {
    if (s.const !== undefined && s.enum !== undefined) this.fail(path, "both const and enum: use one");
    const values = s.const !== undefined ? [s.const] : s.enum;
    if (!Array.isArray(values) || values.length === 0) this.fail(`${path}/enum`, "enum must be a non-empty list");
    if (values.length > SCHEMA_LIMITS.enumValues) this.fail(`${path}/enum`, `more than ${SCHEMA_LIMITS.enumValues} values`);
    const kept = types ? values.filter((v) => types.includes(jsonType(v)) || (types.includes("number") && jsonType(v) === "integer")) : values;
    if (kept.length === 0) this.fail(path, `no enum/const value has the declared type ${types!.join("/")}`);
    const texts = [...new Set(kept.map((v) => JSON.stringify(v)))].map((t) => {
      const bytes = encoder.encode(t);
      if (bytes.length > SCHEMA_LIMITS.literalBytes) this.fail(path, `an enum/const value is longer than ${SCHEMA_LIMITS.literalBytes} bytes as JSON`);
      return bytes;
    });
    return this.node<LiteralNode>({ kind: "literal", texts });
  }

  private ref(ref: unknown, path: string, depth: number): SchemaNode {
    if (typeof ref !== "string" || !(ref === "#" || ref.startsWith("#/"))) {
      this.fail(path, `only local $ref pointers ("#/$defs/Name") are supported, got ${describe(ref)}`);
    }
    const hit = this.refs.get(ref);
    if (hit) return hit;
    let target: unknown = this.root;
    for (const raw of ref === "#" ? [] : ref.slice(2).split("/")) {
      const seg = decodeURIComponent(raw).replace(/~1/g, "/").replace(/~0/g, "~");
      if (!isObject(target) && !Array.isArray(target)) this.fail(path, `$ref ${JSON.stringify(ref)} does not resolve`);
      target = (target as Record<string, unknown>)[seg];
      if (target === undefined) this.fail(path, `$ref ${JSON.stringify(ref)} does not resolve`);
    }
    // A placeholder first, so a recursive reference finds it; filled in once the target is compiled.
    const placeholder = {} as SchemaNode;
    this.refs.set(ref, placeholder);
    const compiled = this.compile(target, ref, depth + 1);
    if (!("kind" in compiled)) this.fail(path, `$ref ${JSON.stringify(ref)} only refers to itself`);
    return Object.assign(placeholder, compiled);
  }

  private count(value: unknown, fallback: number, limit: number, path: string): number {
    if (value === undefined) return fallback;
    if (typeof value !== "number" || !Number.isInteger(value) || value < 0) this.fail(path, `must be a non-negative integer, got ${describe(value)}`);
    if (value > limit) this.fail(path, `values above ${limit} are not supported`);
    return value;
  }
}

/** Size and nesting of a raw schema document, checked before compiling (hostile input). */
export function checkShape(value: unknown, what: string): void {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch {
    throw new VideolmError(`${what}: the schema is not JSON-serializable`);
  }
  if (text === undefined) throw new VideolmError(`${what}: the schema is not JSON`);
  if (text.length > SCHEMA_LIMITS.chars) throw new VideolmError(`${what}: the schema is larger than ${SCHEMA_LIMITS.chars} characters of JSON`);
  // Depth by scanning the text (no recursion on hostile input); strings are skipped.
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === "{" || c === "[") {
      if (++depth > SCHEMA_LIMITS.depth * 2) throw new VideolmError(`${what}: the schema nests deeper than ${SCHEMA_LIMITS.depth} levels`);
    } else if (c === "}" || c === "]") depth--;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function jsonType(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (typeof v === "number") return Number.isInteger(v) ? "integer" : "number";
  return typeof v;
}

function describe(v: unknown): string {
  const t = JSON.stringify(v);
  return t === undefined ? typeof v : t.length > 60 ? `${t.slice(0, 57)}...` : t;
}

function escapePointer(name: string): string {
  return name.replace(/~/g, "~0").replace(/\//g, "~1");
}
