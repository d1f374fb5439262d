/**
 * Conversion cache housekeeping: a new conversion removes conversions of the same checkpoint folder and precision
 * made by older converters, and leaves everything else alone.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CONVERTER_VERSION, pruneOlderConversions } from "../src/engine/convert.js";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "videolm-prune-"));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

function conversion(name: string, manifest: object | null): void {
  fs.mkdirSync(path.join(root, name));
  fs.writeFileSync(path.join(root, name, "decoder.onnx"), "x");
  if (manifest) fs.writeFileSync(path.join(root, name, "manifest.json"), JSON.stringify(manifest));
}

describe("pruneOlderConversions", () => {
  it("removes only older conversions of the same checkpoint and precision", () => {
    const v = CONVERTER_VERSION;
    conversion("m-int4-new", { converterVersion: v, checkpoint: "/ckpt/m", precision: "int4" });
    conversion("m-int4-old", { converterVersion: v - 1, checkpoint: "/ckpt/m", precision: "int4" });
    conversion("m-fp32-old", { converterVersion: v - 1, checkpoint: "/ckpt/m", precision: "fp32" });
    conversion("other-int4-old", { converterVersion: v - 1, checkpoint: "/ckpt/other", precision: "int4" });
    conversion("m-int4-newer", { converterVersion: v + 1, checkpoint: "/ckpt/m", precision: "int4" });
    conversion("no-manifest", null);
    pruneOlderConversions(root, "m-int4-new", "/ckpt/m", "int4");
    expect(fs.readdirSync(root).sort()).toEqual(["m-fp32-old", "m-int4-new", "m-int4-newer", "no-manifest", "other-int4-old"]);
  });
});
