/**
 * Text tokenizer of a Hugging Face checkpoint (`tokenizer.json` + optional `tokenizer_config.json`), backed by
 * `@huggingface/tokenizers`, which reproduces the Rust `tokenizers` ids for the Qwen byte-level BPE.
 *
 * Behaviour follows what the transformers processors do:
 *   - `encode` adds no special tokens (Qwen has no BOS; `tokenizer(text)` and `encode(add_special_tokens=False)`
 *     give the same ids), while special-token strings inside the text (`<|im_start|>`, `<|video_pad|>`) map to
 *     their own ids because added tokens are split out before BPE;
 *   - `decode` drops ids outside the vocabulary like the Rust decoder (a model's embedding table is usually padded
 *     beyond the tokenizer's vocabulary) and does no "clean up tokenization spaces" unless the config asks for it
 *     (transformers' default is False).
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import { VideolmError } from "../errors.js";

export interface DecodeOptions {
  /** Drop tokens marked `special` in tokenizer.json's added_tokens (like `<|im_end|>`). Default false. */
  skipSpecialTokens?: boolean;
}

/** The parts of tokenizer_config.json that the pipeline reads; unknown keys are kept as they are. */
export interface TokenizerConfigJson {
  eos_token?: string | { content: string } | null;
  pad_token?: string | { content: string } | null;
  clean_up_tokenization_spaces?: boolean;
  chat_template?: unknown;
  [key: string]: unknown;
}

async function readJsonFile(path: string, what: string, required: true): Promise<unknown>;
async function readJsonFile(path: string, what: string, required: false): Promise<unknown | undefined>;
async function readJsonFile(path: string, what: string, required: boolean): Promise<unknown | undefined> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if (!required && (err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new VideolmError(`cannot read ${what} ${path}: ${(err as Error).message}; check the checkpoint folder`, {
      cause: err,
    });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new VideolmError(`${what} ${path} is not valid JSON (${(err as Error).message}); re-download it`, {
      cause: err,
    });
  }
}

function tokenContent(value: TokenizerConfigJson["eos_token"]): string | undefined {
  if (typeof value === "string") return value;
  if (value && typeof value === "object" && typeof value.content === "string") return value.content;
  return undefined;
}

export class TextTokenizer {
  /** Number of ids the tokenizer knows (vocabulary + added tokens), like Python `len(tokenizer)`. */
  readonly vocabSize: number;
  /** tokenizer_config.json's `eos_token` (for Qwen2-VL-Instruct `<|im_end|>`), if any. */
  readonly eosToken: string | undefined;
  /** tokenizer_config.json content ({} when the file is absent). */
  readonly config: TokenizerConfigJson;

  private constructor(
    private readonly inner: Tokenizer,
    config: TokenizerConfigJson,
    /** Where the tokenizer came from, for error messages. */
    readonly source: string,
  ) {
    this.config = config;
    this.vocabSize = inner.get_vocab(true).size;
    this.eosToken = tokenContent(config.eos_token);
  }

  /** Reads `<checkpointDir>/tokenizer.json` and, when present, `<checkpointDir>/tokenizer_config.json`. */
  static async load(checkpointDir: string): Promise<TextTokenizer> {
    const tokenizerPath = join(checkpointDir, "tokenizer.json");
    const configPath = join(checkpointDir, "tokenizer_config.json");
    const tokenizerJson = await readJsonFile(tokenizerPath, "tokenizer file", true);
    const config = (await readJsonFile(configPath, "tokenizer config", false)) ?? {};
    return TextTokenizer.fromJson(tokenizerJson, config, tokenizerPath);
  }

  /** Builds a tokenizer from already-parsed tokenizer.json / tokenizer_config.json objects. */
  static fromJson(tokenizerJson: unknown, config: unknown, source = "tokenizer.json"): TextTokenizer {
    if (!tokenizerJson || typeof tokenizerJson !== "object" || !("model" in tokenizerJson)) {
      throw new VideolmError(`${source} has no "model" section; it is not a Hugging Face tokenizer.json`);
    }
    const cfg = (config && typeof config === "object" ? { ...config } : {}) as TokenizerConfigJson;
    // transformers defaults clean_up_tokenization_spaces to False; @huggingface/tokenizers defaults it to true.
    cfg.clean_up_tokenization_spaces = cfg.clean_up_tokenization_spaces ?? false;
    const json = tokenizerJson as { added_tokens?: unknown };
    const normalized = { ...json, added_tokens: json.added_tokens ?? [] };
    let inner: Tokenizer;
    try {
      inner = new Tokenizer(normalized, cfg);
    } catch (err) {
      throw new VideolmError(`${source} could not be loaded (${(err as Error).message}); re-download it`, {
        cause: err,
      });
    }
    return new TextTokenizer(inner, cfg, source);
  }

  /** Token ids of `text` with no special tokens added; special-token strings in the text become their ids. */
  encode(text: string): number[] {
    return this.inner.encode(text, { add_special_tokens: false }).ids;
  }

  /** Text of `ids`; unknown ids are skipped as the Rust decoder does. */
  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    const known: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (this.inner.id_to_token(id) !== undefined) known.push(id);
    }
    if (known.length === 0) return "";
    return this.inner.decode(known, { skip_special_tokens: options.skipSpecialTokens ?? false });
  }

  /** Id of a token string (e.g. `<|video_pad|>`); throws when the vocabulary lacks it. */
  tokenId(token: string): number {
    const id = this.inner.token_to_id(token);
    if (id === undefined) {
      throw new VideolmError(
        `token ${JSON.stringify(token)} is not in the vocabulary of ${this.source}; the checkpoint's tokenizer ` +
          `does not match this model family`,
      );
    }
    return id;
  }

  /** Token string of an id, or undefined outside the vocabulary. */
  idToToken(id: number): string | undefined {
    return this.inner.id_to_token(id);
  }
}
