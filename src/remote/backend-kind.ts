/**
 * Which kind of server a backend is, which decides what a request carries (docs/remote-backends.md):
 *
 *   videolm  another `videolm serve`: the media itself (uploaded) + videolm's per-part sampling options
 *   vllm     vLLM: the planned frames as one `video/jpeg` video (Qwen2/2.5-VL) or the video with
 *            `mm_processor_kwargs` fps (Qwen3-VL family), as the Qwen READMEs document
 *   sglang   SGLang: the planned frames as images, each after its time as text
 *   openai   any other OpenAI-compatible API: the planned frames as images, each after its time as text
 *   seed     Seed1.5-VL (Volcano Engine Ark): frames chosen by Seed1.5-VL's own sampling (the seed1.5 policy), sent
 *            as its cookbook sends them: `[t second]` + image (detail "high")
 *
 * `auto` asks GET /v1/models once: `owned_by` is "videolm" (src/server/server.ts modelObject), "vllm" (vLLM's
 * `ModelCard.owned_by` default, vllm/entrypoints/openai/protocol.py) or "sglang" (SGLang's, sglang/srt/entrypoints/
 * openai/protocol.py `ModelCard`) on those servers; anything else, or no model list, is treated as `openai`.
 */
import { VideolmError } from "../errors.js";
import type { BackendClient } from "./backend-client.js";

export const BACKEND_KINDS = ["videolm", "vllm", "sglang", "openai", "seed"] as const;
export type BackendKind = (typeof BACKEND_KINDS)[number];

export function parseBackendKind(value: string): BackendKind | "auto" {
  if (value === "auto" || (BACKEND_KINDS as readonly string[]).includes(value)) return value as BackendKind | "auto";
  throw new VideolmError(`--backend-kind must be auto or one of ${BACKEND_KINDS.join(", ")}, got ${JSON.stringify(value)}`);
}

export interface RemoteModelInfo {
  id: string;
  ownedBy?: string;
}

/** GET /v1/models: the served model ids and who serves them. */
export async function listRemoteModels(client: BackendClient, signal?: AbortSignal): Promise<RemoteModelInfo[]> {
  const body = (await client.getJson("/models", signal)) as { data?: unknown };
  if (!body || !Array.isArray(body.data)) throw new VideolmError(`backend ${client.label}: GET /models did not answer an OpenAI model list`);
  return body.data.flatMap((m) => (m && typeof m === "object" && typeof (m as { id?: unknown }).id === "string" ? [{ id: (m as { id: string }).id, ownedBy: (m as { owned_by?: string }).owned_by }] : []));
}

/** The kind a model list reveals (see the module comment). */
export function kindFromModels(models: readonly RemoteModelInfo[]): BackendKind {
  const owner = models[0]?.ownedBy?.toLowerCase();
  return owner === "videolm" || owner === "vllm" || owner === "sglang" ? owner : "openai";
}
