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
import { join } from "node:path";
import { Environment, Interpreter, Template } from "@huggingface/jinja";
import { MAX_TEMPLATE_BYTES, parseBoundedJson, readBoundedText } from "../checkpoint/json-file.js";
import { VideolmError } from "../errors.js";

/**
 * Rendering budget. A chat template is code from the checkpoint: `{% for i in range(10**9) %}` or a macro that
 * calls itself must end in an error within a second or two, not hang or fill memory. The real templates render
 * a conversation in a few thousand evaluation steps and a few KiB of text.
 */
export const TEMPLATE_LIMITS = {
  /** Evaluation steps (expressions, statements, loop iterations) per render. */
  maxSteps: 1_000_000,
  /** Characters of any single value and of the rendered prompt (16 Mi chars: millions of tokens, beyond any context). */
  maxChars: 16 * 1024 * 1024,
  /** Items of a range() and of any list built by the template. */
  maxItems: 100_000,
  /** Nesting of evaluation (recursive macros, deeply nested expressions). */
  maxDepth: 500,
  /** Wall-clock limit per render. */
  maxMs: 5_000,
};

class TemplateBudgetError extends Error {}

/** Steps charged per item when a for loop starts (its per-item scope, closure and `loop` object cost ~3 steps). */
const ITEM_SETUP_STEPS = 3;

interface Budget {
  steps: number;
  depth: number;
  deadline: number;
  /** Steps since the clock was last read. */
  sinceClock: number;
  /** The iterable expressions of the for loops met so far: a loop's setup costs one step per item. */
  iterables: WeakSet<object>;
}

/** The render in progress (rendering is synchronous, so one at a time per thread). */
let activeBudget: Budget | undefined;
/** Evaluation steps of the last render (for measurements). */
export let lastRenderSteps = 0;

function tick(b: Budget, cost = 1): void {
  b.steps += cost;
  if (b.steps > TEMPLATE_LIMITS.maxSteps) throw new TemplateBudgetError(`it took more than ${TEMPLATE_LIMITS.maxSteps} evaluation steps (a runaway loop?)`);
  b.sinceClock += cost;
  if (b.sinceClock >= 1024) {
    b.sinceClock = 0;
    if (Date.now() > b.deadline) throw new TemplateBudgetError(`it ran longer than ${TEMPLATE_LIMITS.maxMs} ms`);
  }
}

function checkSize(v: { type: string; value: unknown } | undefined): void {
  if (!v) return;
  if (typeof v.value === "string" && v.value.length > TEMPLATE_LIMITS.maxChars) {
    throw new TemplateBudgetError(`it built a string of ${v.value.length} characters (limit ${TEMPLATE_LIMITS.maxChars})`);
  }
  if (Array.isArray(v.value) && v.value.length > TEMPLATE_LIMITS.maxItems) {
    throw new TemplateBudgetError(`it built a list of ${v.value.length} items (limit ${TEMPLATE_LIMITS.maxItems})`);
  }
}

/**
 * @huggingface/jinja's Interpreter, metered: `evaluate` (every expression and statement) and `evaluateBlock` (every
 * loop iteration, even an empty body) count steps, track depth, and check the size of what they produce, while a
 * render of ours is active. The patch is installed once on the prototype that `Template.render` instantiates; with
 * no active budget it only forwards. (The methods are TypeScript-private, hence the untyped access.)
 */
function installMeter(): void {
  type Proto = Record<string, (...args: unknown[]) => { type: string; value: unknown; toString(): string }> & { __videolmMetered?: boolean };
  const proto = Interpreter.prototype as unknown as Proto;
  if (proto.__videolmMetered) return;
  proto.__videolmMetered = true;
  const evaluate = proto.evaluate;
  const evaluateBlock = proto.evaluateBlock;
  const evaluateFor = proto.evaluateFor;
  proto.evaluateFor = function (this: unknown, ...args: unknown[]) {
    const b = activeBudget;
    if (b) {
      const node = args[0] as { iterable: { type: string; lhs?: object } };
      b.iterables.add(node.iterable.type === "SelectExpression" && node.iterable.lhs ? node.iterable.lhs : node.iterable);
    }
    return evaluateFor.apply(this, args);
  };
  proto.evaluate = function (this: unknown, ...args: unknown[]) {
    const b = activeBudget;
    if (!b) return evaluate.apply(this, args);
    tick(b);
    if (++b.depth > TEMPLATE_LIMITS.maxDepth) throw new TemplateBudgetError(`it nested deeper than ${TEMPLATE_LIMITS.maxDepth} levels (a recursive macro?)`);
    try {
      const v = evaluate.apply(this, args);
      checkSize(v);
      // A for loop prepares a scope per item before its first iteration: charge that work up front.
      if (b.iterables.has(args[0] as object)) tick(b, ITEM_SETUP_STEPS * (Array.isArray(v.value) ? v.value.length : v.value instanceof Map ? v.value.size : 1));
      return v;
    } finally {
      b.depth--;
    }
  };
  proto.evaluateBlock = function (this: unknown, ...args: unknown[]) {
    const b = activeBudget;
    if (!b) return evaluateBlock.apply(this, args);
    tick(b);
    const [statements, environment] = args as [unknown[], unknown];
    // Same as the library's evaluateBlock, with the output checked as it grows.
    let result = "";
    for (const statement of statements) {
      const v = (this as Proto).evaluate(statement, environment);
      if (v.type !== "NullValue" && v.type !== "UndefinedValue") {
        result += v.toString();
        if (result.length > TEMPLATE_LIMITS.maxChars) throw new TemplateBudgetError(`its output passed ${TEMPLATE_LIMITS.maxChars} characters`);
      }
    }
    const out = evaluateBlock.call(this, [], environment); // a StringValue("") of the library's own class
    out.value = result;
    return out;
  };
  // The library's range() builds its whole list before anything can count it: while a budget is active, the
  // `range` global that Template.render installs (setupGlobals → env.set) is swapped for a bounded one.
  const envProto = Environment.prototype as unknown as { set(name: string, value: unknown): unknown };
  const set = envProto.set;
  envProto.set = function (this: unknown, name: string, value: unknown) {
    return set.call(this, name, activeBudget && name === "range" && typeof value === "function" ? boundedRange : value);
  };
}

/** range() with the size checked before the list is built (the library's builds it first). */
function boundedRange(start: number, stop?: number, step = 1): number[] {
  if (stop === undefined) {
    stop = start;
    start = 0;
  }
  if ([start, stop, step].some((x) => typeof x !== "number" || !Number.isFinite(x))) throw new Error("range() arguments must be finite numbers");
  if (step === 0) throw new Error("range() step must not be zero");
  const count = Math.max(0, Math.ceil((stop - start) / step));
  if (count > TEMPLATE_LIMITS.maxItems) throw new TemplateBudgetError(`range() of ${count} items exceeds the limit of ${TEMPLATE_LIMITS.maxItems}`);
  return Array.from({ length: count }, (_, i) => start + i * step);
}
installMeter();

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

async function readOptional(path: string, maxBytes?: number): Promise<string | undefined> {
  return readBoundedText(path, { optional: true, maxBytes });
}

function parseJson(text: string, path: string): unknown {
  return parseBoundedJson(text, path);
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
    if (typeof source !== "string" || source.length > MAX_TEMPLATE_BYTES) {
      throw new VideolmError(`chat template in ${origin} has ${typeof source === "string" ? `${source.length} characters, more than the ${MAX_TEMPLATE_BYTES} videolm accepts` : "no text"}`);
    }
    try {
      this.template = new Template(source);
    } catch (err) {
      throw new VideolmError(`chat template in ${origin} does not parse: ${String((err as Error)?.message ?? err).split("\n")[0].slice(0, 300)}`, { cause: err });
    }
  }

  /** Loads the template of a checkpoint folder (see the file header for the search order). */
  /**
   * The checkpoint's template; else `fallback` (the template the family's own code builds prompts with, e.g. original
   * InternVL's conversation.py, for checkpoints that ship none); else an error.
   */
  static async load(checkpointDir: string, fallback?: { template: string; source: string }): Promise<ChatTemplate> {
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
    const jinjaText = await readOptional(jinjaPath, MAX_TEMPLATE_BYTES);
    if (jinjaText !== undefined) return new ChatTemplate(jinjaText, jinjaPath);

    const configPath = join(checkpointDir, "tokenizer_config.json");
    const configText = await readOptional(configPath);
    if (configText !== undefined) {
      const config = parseJson(configText, configPath) as { chat_template?: unknown };
      const template = templateFromConfigValue(config.chat_template, configPath);
      if (template !== undefined) return new ChatTemplate(template, configPath);
    }
    if (fallback) return new ChatTemplate(fallback.template, fallback.source);
    throw new VideolmError(
      `no chat template in ${checkpointDir}: expected chat_template.json, chat_template.jinja or a "chat_template" ` +
        `in tokenizer_config.json; use the checkpoint's -Instruct variant or supply a template`,
    );
  }

  /**
   * Renders a small probe conversation (an image, a video, text, a reply) under the budget, so that a template that
   * runs away fails when the checkpoint loads, naming its file. Only a budget stop fails: a template may
   * legitimately reject a conversation shape with raise_exception.
   */
  probe(specialTokens: Record<string, unknown> = {}): void {
    const messages: ChatMessage[] = [
      { role: "user", content: [{ type: "image" }, { type: "video" }, { type: "text", text: "What happens?" }] },
      { role: "assistant", content: "Something." },
      { role: "user", content: "And then?" },
    ];
    try {
      this.render(messages, { addGenerationPrompt: true, specialTokens });
    } catch (err) {
      if (err instanceof VideolmError && err.cause instanceof TemplateBudgetError) throw err;
    }
  }

  /** Renders the conversation to the prompt text (placeholders like `<|video_pad|>` not yet expanded). */
  render(messages: readonly ChatMessage[], options: RenderOptions = {}): string {
    const context: Record<string, unknown> = {
      ...(options.specialTokens ?? {}),
      ...(options.extra ?? {}),
      messages,
      add_generation_prompt: options.addGenerationPrompt ?? false,
    };
    const outer = activeBudget;
    activeBudget = { steps: 0, depth: 0, deadline: Date.now() + TEMPLATE_LIMITS.maxMs, sinceClock: 0, iterables: new WeakSet() };
    try {
      const text = this.template.render(context);
      if (text.length > TEMPLATE_LIMITS.maxChars) throw new TemplateBudgetError(`its output passed ${TEMPLATE_LIMITS.maxChars} characters`);
      return text;
    } catch (err) {
      if (err instanceof TemplateBudgetError) {
        throw new VideolmError(`chat template from ${this.origin} was stopped: ${err.message}; fix or replace the checkpoint's chat template`, { cause: err });
      }
      const message = err instanceof RangeError && /call stack/i.test(err.message) ? "it nests too deeply (stack overflow)" : String((err as Error)?.message ?? err).split("\n")[0].slice(0, 300);
      throw new VideolmError(`chat template from ${this.origin} failed to render: ${message}`, {
        cause: err,
      });
    } finally {
      lastRenderSteps = activeBudget.steps;
      activeBudget = outer;
    }
  }
}
