/**
 * `--response-format` (videolm run): constrained decoding from the command line.
 *   json                 any JSON value's object ({"type": "json_object"})
 *   json_schema:FILE     JSON matching the JSON Schema in FILE (or FILE holds a whole OpenAI response_format object)
 *   regex:PATTERN        the whole answer matches PATTERN
 * Checked by validateResponseFormat, as the API's response_format is; errors name the flag.
 */
import { readFileSync } from "node:fs";
import { VideolmError } from "../errors.js";
import { validateResponseFormat, type ResponseFormat } from "../generation/constrained/response-format.js";

export function responseFormatFlag(value: string | undefined): ResponseFormat | undefined {
  if (value === undefined) return undefined;
  const flag = "--response-format";
  let format: unknown;
  if (value === "json") format = { type: "json_object" };
  else if (value === "text") return undefined;
  else if (value.startsWith("regex:")) format = { type: "regex", pattern: value.slice("regex:".length) };
  else if (value.startsWith("json_schema:")) {
    const file = value.slice("json_schema:".length);
    let schema: unknown;
    try {
      schema = JSON.parse(readFileSync(file, "utf8"));
    } catch (e) {
      throw new VideolmError(`${flag} json_schema:${file}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : `not JSON (${(e as Error).message})`}`);
    }
    const wrapped = typeof schema === "object" && schema !== null && (schema as Record<string, unknown>).type === "json_schema" && "json_schema" in schema;
    format = wrapped ? schema : { type: "json_schema", json_schema: { name: "schema", schema, strict: true } };
  } else {
    throw new VideolmError(`${flag} must be json, json_schema:FILE or regex:PATTERN (got ${JSON.stringify(value)})`);
  }
  try {
    return validateResponseFormat(format);
  } catch (e) {
    if (e instanceof VideolmError) throw new VideolmError(`${flag} ${value.split(":")[0]}: ${e.message.replace(/^response_format[\w.]*:?\s*/, "")}`);
    throw e;
  }
}
