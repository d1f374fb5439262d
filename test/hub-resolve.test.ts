/**
 * --model as a Hugging Face repo id: downloaded from a (local, fake) hub into the standard cache layout with
 * progress, reused from the cache without the network, and clear one-line errors when offline or not found.
 */
import * as fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resolveModel } from "../src/hub/resolve-model.js";
import { VideolmError } from "../src/errors.js";

const FILES: Record<string, string> = {
  "config.json": JSON.stringify({ model_type: "qwen2_vl" }),
  "model.safetensors": "x".repeat(5000),
  "tokenizer.json": "{}",
  "README.md": "not downloaded",
};
const COMMIT = "0123456789abcdef0123456789abcdef01234567";
let server: http.Server;
let endpoint: string;
const requests: string[] = [];
const work = fs.mkdtempSync(path.join(os.tmpdir(), "videolm-hub-"));

beforeAll(async () => {
  server = http.createServer((req, res) => {
    requests.push(req.url ?? "");
    if (req.url === "/api/models/acme/tiny-vl/revision/main") {
      res.writeHead(200, { "Content-Type": "application/json" });
      return res.end(JSON.stringify({ sha: COMMIT, siblings: Object.keys(FILES).map((f) => ({ rfilename: f, size: FILES[f].length })) }));
    }
    const m = req.url?.match(/^\/acme\/tiny-vl\/resolve\/([0-9a-f]+)\/(.+)$/);
    if (m && m[1] === COMMIT && FILES[m[2]] !== undefined) {
      res.writeHead(200);
      return res.end(FILES[m[2]]);
    }
    res.writeHead(404);
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => {
  server.close();
  fs.rmSync(work, { recursive: true, force: true });
});

describe("resolveModel", () => {
  it("passes a local folder through", async () => {
    expect(await resolveModel(work)).toBe(work);
  });

  it("downloads a repo id into the Hugging Face cache layout, then reuses it offline", async () => {
    const env = { HF_ENDPOINT: endpoint, HF_HUB_CACHE: path.join(work, "hub") };
    const progress: number[] = [];
    const dir = await resolveModel("acme/tiny-vl", { env, onProgress: (e) => progress.push(e.done) });
    expect(dir).toBe(path.join(work, "hub", "models--acme--tiny-vl", "snapshots", COMMIT));
    expect(fs.readFileSync(path.join(dir, "model.safetensors"), "utf8")).toBe(FILES["model.safetensors"]);
    expect(fs.existsSync(path.join(dir, "README.md"))).toBe(false); // only what videolm reads
    expect(fs.readFileSync(path.join(work, "hub", "models--acme--tiny-vl", "refs", "main"), "utf8")).toBe(COMMIT);
    expect(progress.at(-1)).toBe(FILES["config.json"].length + FILES["model.safetensors"].length + FILES["tokenizer.json"].length);
    const before = requests.length;
    expect(await resolveModel("acme/tiny-vl", { env: { ...env, HF_HUB_OFFLINE: "1" } })).toBe(dir);
    expect(requests.length).toBe(before);
  });

  const failures: [string, NodeJS.ProcessEnv, string, RegExp][] = [
    ["offline and not cached", { HF_HUB_OFFLINE: "1" }, "acme/other", /acme\/other is not in the Hugging Face cache .* HF_HUB_OFFLINE=1/],
    ["the hub unreachable", { HF_ENDPOINT: "http://127.0.0.1:1" }, "acme/other", /cannot reach 127\.0\.0\.1:1 to download acme\/other .* pass a local checkpoint folder/],
    ["an unknown repo", {}, "acme/missing", /acme\/missing was not found on .* \(HTTP 404\)/],
  ];
  for (const [what, extra, repo, message] of failures) {
    it(`fails clearly when ${what}`, async () => {
      const env = { HF_ENDPOINT: endpoint, HF_HUB_CACHE: path.join(work, "hub2"), ...extra };
      const error = await resolveModel(repo, { env }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(VideolmError);
      expect((error as Error).message).toMatch(message);
    });
  }
});
