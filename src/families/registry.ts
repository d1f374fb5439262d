/** Model families by config.json `model_type`. Adding a family = its folder + one entry here. */
import { VideolmError } from "../errors.js";
import type { FamilyConfig, ModelFamily } from "./family.js";
import { qwen2VL } from "./qwen2-vl/family.js";
import { qwen3VL } from "./qwen3-vl/family.js";
import { qwen2_5VL } from "./qwen2-5-vl/family.js";
import { qwen3_5 } from "./qwen3-5/family.js";
import { qwen3_5Moe } from "./qwen3-5/moe-family.js";
import { qwen3VLMoe } from "./qwen3-vl-moe/family.js";
import { internVL } from "./internvl/family.js";
import { videoLlama3 } from "./video-llama-3/family.js";

const FAMILIES: ModelFamily<FamilyConfig>[] = [
  qwen2VL as unknown as ModelFamily<FamilyConfig>,
  qwen2_5VL as unknown as ModelFamily<FamilyConfig>,
  qwen3VL as unknown as ModelFamily<FamilyConfig>,
  qwen3VLMoe as unknown as ModelFamily<FamilyConfig>,
  qwen3_5 as unknown as ModelFamily<FamilyConfig>,
  qwen3_5Moe as unknown as ModelFamily<FamilyConfig>,
  internVL as unknown as ModelFamily<FamilyConfig>,
  videoLlama3 as unknown as ModelFamily<FamilyConfig>,
];

export function supportedModelTypes(): string[] {
  return FAMILIES.flatMap((f) => f.modelTypes);
}

export function familyForModelType(modelType: unknown, configFile: string): ModelFamily<FamilyConfig> {
  const family = FAMILIES.find((f) => f.modelTypes.includes(String(modelType)));
  if (!family) {
    throw new VideolmError(
      `${configFile}: model_type ${JSON.stringify(modelType)} is not supported; videolm runs ${supportedModelTypes().join(", ")} checkpoints`,
    );
  }
  return family;
}
