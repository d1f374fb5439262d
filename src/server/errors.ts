/**
 * HTTP errors in OpenAI's format: `{"error": {"message", "type", "param", "code"}}` with the matching status.
 *
 *   400 invalid_request_error  malformed JSON, wrong types, unsupported parts, bad media, limits of the request
 *   404 invalid_request_error  unknown model / route / upload (code model_not_found / not_found)
 *   413 invalid_request_error  body or upload larger than the server's limit
 *   429 rate_limit_error       the queue is full (try again later)
 *   500 server_error           a fault of the server itself (logged; the message does not leak internals)
 */
import { VideolmError } from "../errors.js";

export type OpenAIErrorType = "invalid_request_error" | "rate_limit_error" | "server_error" | "not_found_error";

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: OpenAIErrorType = status === 429 ? "rate_limit_error" : status >= 500 ? "server_error" : "invalid_request_error",
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
    this.name = "HttpError";
  }
}

export const badRequest = (message: string, param: string | null = null, code: string | null = null) => new HttpError(400, message, "invalid_request_error", param, code);

export interface OpenAIErrorBody {
  error: { message: string; type: OpenAIErrorType; param: string | null; code: string | null };
}

/**
 * Maps anything thrown while serving a request to a status and body. VideolmError is a user-facing problem with the
 * request (bad media, too many tokens, invalid options) → 400; other errors are faults of the server → 500 with a
 * generic message (the caller logs the real one).
 */
export function toHttpError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  if (err instanceof VideolmError) return new HttpError(400, err.message, "invalid_request_error", null, "invalid_request");
  return new HttpError(500, "internal server error (see the server log)", "server_error", null, "internal_error");
}

export function errorBody(e: HttpError): OpenAIErrorBody {
  return { error: { message: e.message, type: e.type, param: e.param, code: e.code } };
}
