/**
 * GraphBuilder.ifElse: the branch the condition picks runs, branches read values of the enclosing graph (inputs,
 * constants, earlier nodes), and a branch may return an outer value unchanged.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import "../src/onnx/no-telemetry.js";
import * as ort from "onnxruntime-node";
import { afterAll, describe, expect, it } from "vitest";
import { GraphBuilder } from "../src/onnx/graph.js";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "videolm-if-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

async function session(): Promise<ort.InferenceSession> {
  const g = new GraphBuilder("if-test");
  const x = g.input("x", "float32", [3]);
  const pick = g.input("pick", "bool", []);
  const doubled = g.op("Mul", [x, g.scalar(2)]); // computed outside, read inside a branch
  const [y, z] = g.ifElse(
    pick,
    () => [g.op("Add", [doubled, g.scalar(1)]), x],
    () => [g.op("Neg", [x]), g.op("Sub", [doubled, x])],
    [
      { dtype: "float32", shape: [3] },
      { dtype: "float32", shape: [3] },
    ],
  );
  g.output(y, "y", "float32", [3]);
  g.output(z, "z", "float32", [3]);
  const file = path.join(dir, "if.onnx");
  fs.writeFileSync(file, g.toBytes());
  return ort.InferenceSession.create(file);
}

describe("GraphBuilder.ifElse", () => {
  it("runs the branch the condition picks, with outer values visible inside both", async () => {
    const s = await session();
    const x = new ort.Tensor("float32", Float32Array.from([1, -2, 3.5]), [3]);
    const run = async (pick: boolean) => {
      const out = await s.run({ x, pick: new ort.Tensor("bool", [pick], []) });
      return { y: Array.from(out.y.data as Float32Array), z: Array.from(out.z.data as Float32Array) };
    };
    expect(await run(true)).toEqual({ y: [3, -3, 8], z: [1, -2, 3.5] });
    expect(await run(false)).toEqual({ y: [-1, 2, -3.5], z: [1, -2, 3.5] });
  });
});
