/**
 * The checkpoint's Jinja chat template, rendered with `@huggingface/jinja` the way transformers 4.57.6 does.
 *
 * Where the template comes from (transformers `processing_utils.py: ProcessorMixin.get_processor_dict`, then the
 * tokenizer's own template as the fallback):
 *   1. `chat_template.json` (`{"chat_template": "..."}`, the legacy processor file; 4.57 prefers it when present),
 *   2. `chat_template.jinja` (the raw template),
 *   3. `tokenizer_config.json` → `chat_template`: a string, or a list of `{name, template}` / a name → template
 *      object, of which "default" is taken.
 * Rendering (`utils/chat_template_utils.py: render_jinja_template`): jinja with trim_blocks and lstrip_blocks
 * (which @huggingface/jinja applies too), variables `messages`, `add_generation_prompt`, the tokenizer's special
 * tokens (`bos_token`, `eos_token`, …) and any extra kwargs such as `add_vision_id`.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { Template } from "@huggingface/jinja";
import { VideolmError } from "../errors.js";

/** A content part in Hugging Face message format. */
export type ChatContentPart =
  | { type: "image"; [key: string]: unknown }
  | { type: "video"; [key: string]: unknown }
  | { type: "text"; text: string };

export interface ChatMessage {
  role: string;
  content: string | ChatContentPart[];
}

export interface RenderOptions {
  /** Append the assistant header so the model answers next. Default false, as in transformers. */
  addGenerationPrompt?: boolean;
  /** Special-token variables (`eos_token`, …) exposed to the template; see `specialTokenVariables`. */
  specialTokens?: Record<string, unknown>;
  /** Extra template variables, e.g. `{ add_vision_id: true }`. */
  extra?: Record<string, unknown>;
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new VideolmError(`cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
}

function parseJson(text: string, path: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new VideolmError(`${path} is not valid JSON (${(err as Error).message}); re-download it`, { cause: err });
  }
}

/** Picks the template out of tokenizer_config.json's `chat_template` value (string, list or object). */
function templateFromConfigValue(value: unknown, path: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === "string") return value;
  if (Array.isArray(value)) {
    // transformers saves several templates as [{name, template}, ...]
    const entry = value.find(
      (e): e is { name: string; template: string } =>
        typeof e === "object" && e !== null && (e as { name?: unknown }).name === "default",
    );
    if (entry && typeof entry.template === "string") return entry.template;
  } else if (typeof value === "object") {
    const named = (value as Record<string, unknown>)["default"];
    if (typeof named === "string") return named;
  }
  throw new VideolmError(`${path} has several chat templates but none named "default"; pass a template explicitly`);
}

/** tokenizer_config.json special-token entries as template variables (transformers' `special_tokens_map`). */
export function specialTokenVariables(tokenizerConfig: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"]) {
    const v = tokenizerConfig[key];
    if (typeof v === "string") out[key] = v;
    else if (v && typeof v === "object" && typeof (v as { content?: unknown }).content === "string") {
      out[key] = (v as { content: string }).content;
    }
  }
  const extra = tokenizerConfig["additional_special_tokens"];
  if (Array.isArray(extra)) out["additional_special_tokens"] = extra;
  return out;
}

export class ChatTemplate {
  private readonly template: Template;

  /** `origin` names the file the template came from, for error messages. */
  constructor(
    readonly source: string,
    readonly origin: string,
  ) {
    try {
      this.template = new Template(source);
    } catch (err) {
      throw new VideolmError(`chat template in ${origin} does not parse: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Loads the template of a checkpoint folder (see the file header for the search order). */
  static async load(checkpointDir: string): Promise<ChatTemplate> {
    const jsonPath = join(checkpointDir, "chat_template.json");
    const jsonText = await readOptional(jsonPath);
    if (jsonText !== undefined) {
      const value = (parseJson(jsonText, jsonPath) as { chat_template?: unknown }).chat_template;
      if (typeof value !== "string") {
        throw new VideolmError(`${jsonPath} has no "chat_template" string`);
      }
      return new ChatTemplate(value, jsonPath);
    }
    const jinjaPath = join(checkpointDir, "chat_template.jinja");
    const jinjaText = await readOptional(jinjaPath);
    if (jinjaText !== undefined) return new ChatTemplate(jinjaText, jinjaPath);

    const configPath = join(checkpointDir, "tokenizer_config.json");
    const configText = await readOptional(configPath);
    if (configText !== undefined) {
      const config = parseJson(configText, configPath) as { chat_template?: unknown };
      const template = templateFromConfigValue(config.chat_template, configPath);
      if (template !== undefined) return new ChatTemplate(template, configPath);
    }
    throw new VideolmError(
      `no chat template in ${checkpointDir}: expected chat_template.json, chat_template.jinja or a "chat_template" ` +
        `in tokenizer_config.json; use the checkpoint's -Instruct variant or supply a template`,
    );
  }

  /** Renders the conversation to the prompt text (placeholders like `<|video_pad|>` not yet expanded). */
  render(messages: readonly ChatMessage[], options: RenderOptions = {}): string {
    const context: Record<string, unknown> = {
      ...(options.specialTokens ?? {}),
      ...(options.extra ?? {}),
      messages,
      add_generation_prompt: options.addGenerationPrompt ?? false,
    };
    try {
      return this.template.render(context);
    } catch (err) {
      throw new VideolmError(`chat template from ${this.origin} failed to render: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }
}
