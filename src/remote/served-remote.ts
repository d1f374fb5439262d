/**
 * `videolm serve --backend URL`: the local server (web app, plans, thumbnails, uploads) as a front end whose
 * generation runs on the backend. The server plans and prepares every request with the local checkpoint's preparer
 * as always; only `generate()` goes to the RemoteModel. Backend failures become OpenAI-format errors of the front end:
 * 502 `backend_error` (504 `backend_timeout` when the backend did not answer in time), and the backend's own 4xx
 * refusals as a 400 naming the backend.
 */
import type { GenerateRequest, GenerateResponse } from "../engine/model.js";
import { HttpError } from "../server/errors.js";
import type { ServedModel } from "../server/server.js";
import { BackendError } from "./backend-client.js";
import type { RemoteModel } from "./remote-model.js";

export function servedRemote(remote: RemoteModel): ServedModel {
  const preparer = remote.preparer;
  if (!preparer) throw new Error("servedRemote: the RemoteModel needs a planning checkpoint (connect with `planner`)");
  return {
    preparer,
    async generate(request: GenerateRequest): Promise<GenerateResponse> {
      try {
        return await remote.generate(request);
      } catch (e) {
        if (!(e instanceof BackendError)) throw e;
        if (e.status !== undefined && e.status >= 400 && e.status < 500 && e.status !== 429) throw new HttpError(400, e.message, "invalid_request_error", null, "backend_rejected");
        const timeout = e.status === undefined && /--backend-timeout/.test(e.message);
        throw new HttpError(timeout ? 504 : 502, e.message, "server_error", null, timeout ? "backend_timeout" : "backend_error");
      }
    },
  };
}
