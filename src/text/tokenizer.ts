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
import { basename, join } from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import { describeJson, parseBoundedJson, readBoundedText } from "../checkpoint/json-file.js";
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
  // Size-checked before reading and depth-checked after parsing (src/checkpoint/json-file.ts).
  const text = readBoundedText(path, { optional: !required, what });
  if (text === undefined) return undefined;
  return parseBoundedJson(text, path);
}

/**
 * tokenizer.json's `added_tokens`: a list of {id, content} with non-negative integer ids and string contents, no id
 * or content twice. Returns the list (empty when absent); throws naming the entry otherwise.
 */
function checkAddedTokens(value: unknown, source: string): unknown[] {
  if (value === undefined || value === null) return [];
  const name = basename(source);
  if (!Array.isArray(value)) throw new VideolmError(`${name}: added_tokens must be a list (got ${describeJson(value)})`);
  const ids = new Map<number, string>();
  const contents = new Set<string>();
  value.forEach((t, i) => {
    const entry = t as { id?: unknown; content?: unknown } | null;
    if (!entry || typeof entry !== "object" || Array.isArray(entry)) throw new VideolmError(`${name}: added_tokens[${i}] must be an object (got ${describeJson(t)})`);
    if (typeof entry.id !== "number" || !Number.isInteger(entry.id) || entry.id < 0 || entry.id >= MAX_TOKEN_ID) {
      throw new VideolmError(`${name}: added_tokens[${i}].id must be an integer in [0, ${MAX_TOKEN_ID}) (got ${describeJson(entry.id)})`);
    }
    if (typeof entry.content !== "string" || entry.content.length === 0) throw new VideolmError(`${name}: added_tokens[${i}].content must be a non-empty string (got ${describeJson(entry.content)})`);
    const other = ids.get(entry.id);
    if (other !== undefined) throw new VideolmError(`${name}: added_tokens[${i}] gives id ${entry.id} to ${describeJson(entry.content)}, already used by ${describeJson(other)}`);
    if (contents.has(entry.content)) throw new VideolmError(`${name}: added_tokens[${i}] adds ${describeJson(entry.content)} twice`);
    ids.set(entry.id, entry.content);
    contents.add(entry.content);
  });
  return value;
}

/** Largest token id accepted anywhere (2^24: 64× the largest published vocabulary). */
const MAX_TOKEN_ID = 1 << 24;

function tokenContent(value: TokenizerConfigJson["eos_token"]): string | undefined {
  if (typeof value === "string") return value;
  if (value && typeof value === "object" && typeof value.content === "string") return value.content;
  return undefined;
}

export class TextTokenizer {
  /** Number of ids the tokenizer knows (vocabulary + added tokens), like Python `len(tokenizer)`. */
  readonly vocabSize: number;
  /** Largest id the tokenizer can produce (vocabulary and added tokens); must index the embedding table. */
  readonly maxTokenId: number;
  /** tokenizer_config.json's `eos_token` (for Qwen2-VL-Instruct `<|im_end|>`), if any. */
  readonly eosToken: string | undefined;
  /** tokenizer_config.json content ({} when the file is absent). */
  readonly config: TokenizerConfigJson;

  private constructor(
    private readonly inner: Tokenizer,
    config: TokenizerConfigJson,
    /** Where the tokenizer came from, for error messages. */
    readonly source: string,
    /** Ids of tokenizer.json's added_tokens (special or not): never part of constrained text (src/generation/constrained). */
    readonly addedTokenIds: ReadonlySet<number> = new Set(),
    /** Whether the vocabulary spells bytes through GPT-2's byte-level alphabet (decoder ByteLevel, as in Qwen). */
    readonly byteLevel = false,
  ) {
    this.config = config;
    const vocab = inner.get_vocab(true);
    this.vocabSize = vocab.size;
    let maxId = -1;
    for (const id of vocab.values()) if (id > maxId) maxId = id;
    this.maxTokenId = maxId;
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
    const json = tokenizerJson as { added_tokens?: unknown; model?: unknown };
    if (!json.model || typeof json.model !== "object" || Array.isArray(json.model)) {
      throw new VideolmError(`${basename(source)}: model must be an object (got ${describeJson(json.model)}); it is not a Hugging Face tokenizer.json`);
    }
    const normalized = { ...json, added_tokens: checkAddedTokens(json.added_tokens, source) };
    let inner: Tokenizer;
    try {
      inner = new Tokenizer(normalized, cfg);
    } catch (err) {
      throw new VideolmError(`${source} could not be loaded (${String((err as Error)?.message ?? err).split("\n")[0].slice(0, 300)}); re-download it`, {
        cause: err,
      });
    }
    const added = new Set(normalized.added_tokens.map((t) => (t as { id: number }).id));
    const decoder = (json as { decoder?: { type?: unknown; decoders?: { type?: unknown }[] } }).decoder;
    const byteLevel = decoder?.type === "ByteLevel" || (decoder?.type === "Sequence" && Array.isArray(decoder.decoders) && decoder.decoders.some((d) => d?.type === "ByteLevel"));
    return new TextTokenizer(inner, cfg, source, added, byteLevel);
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
