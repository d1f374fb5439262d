import { supportedModelTypes } from "../../families/registry.js";

/** `videolm models`: the supported families (config.json model_type values). */
export async function modelsCommand(_argv: string[]): Promise<number> {
  process.stdout.write(`Supported checkpoints (config.json model_type):\n${supportedModelTypes().map((t) => `  ${t}`).join("\n")}\n`);
  return 0;
}
