/**
 * InternVL prompt: the chat template renders one placeholder per visual — `<IMG_CONTEXT>` for an image (`"<IMG_CONTEXT>\n"`
 * in the InternVL3.5-HF template) and `<video>` for a video (`"<video>\n"`) — and the processor replaces them in the
 * text before tokenizing (transformers 4.57.6 `models/internvl/processing_internvl.py:
 * InternVLProcessor._insert_media_placeholders`):
 *   - image i → `<img>` + `<IMG_CONTEXT>` × (tokens per tile · tiles_i) + `</img>` (tiles incl. the thumbnail);
 *   - video j → for each frame k (1-based) `Frame{k}: <img>` + `<IMG_CONTEXT>` × tokens per tile + `</img>`, joined by
 *     "\n" (no trailing newline; the template's own "\n" follows);
 *   - placeholders are taken in order of appearance, the i-th image placeholder getting the i-th image and the j-th
 *     video placeholder the j-th video.
 * This is the model card's text too (`Frame{i}: <image>\n` per frame before the question, each `<image>` →
 * `<img><IMG_CONTEXT>×256·n</img>` in model.chat); tools/oracle/record_internvl.py asserts the ids agree.
 * `<video>` is not a token of the vocabulary, so the expansion is done on the text, then the whole text is tokenized
 * (as the reference): the added tokens `<img>`, `</img>`, `<IMG_CONTEXT>` are split out before BPE.
 * Positions are 1-D (0 … S−1): InternVL's LLM uses ordinary RoPE.
 */
import { VideolmError } from "../../errors.js";

export const IMG_START_TOKEN = "<img>";
export const IMG_END_TOKEN = "</img>";
export const IMG_CONTEXT_TOKEN = "<IMG_CONTEXT>";
export const VIDEO_TOKEN = "<video>";

/**
 * The placeholder and marker strings: transformers' InternVLProcessor takes them from the tokenizer's
 * `extra_special_tokens` (start_image_token, end_image_token, context_image_token, video_token; written by
 * convert_internvl_weights_to_hf.py), the values below when absent.
 */
export interface InternVLPromptTokens {
  start: string;
  end: string;
  context: string;
  video: string;
}
export const DEFAULT_PROMPT_TOKENS: InternVLPromptTokens = { start: IMG_START_TOKEN, end: IMG_END_TOKEN, context: IMG_CONTEXT_TOKEN, video: VIDEO_TOKEN };

/** The strings from a tokenizer_config.json object (its extra_special_tokens), defaults for the missing ones. */
export function promptTokensFromTokenizerConfig(config: Record<string, unknown> | undefined): InternVLPromptTokens {
  const extra = config?.extra_special_tokens;
  const get = (key: string, fallback: string) => {
    const v = extra && typeof extra === "object" && !Array.isArray(extra) ? (extra as Record<string, unknown>)[key] : undefined;
    return typeof v === "string" && v.length > 0 ? v : fallback;
  };
  return { start: get("start_image_token", IMG_START_TOKEN), end: get("end_image_token", IMG_END_TOKEN), context: get("context_image_token", IMG_CONTEXT_TOKEN), video: get("video_token", VIDEO_TOKEN) };
}

export interface PromptVisual {
  kind: "image" | "video";
  /** Images: tiles incl. the thumbnail; videos: frames (one tile each). */
  tiles: number;
}

/** The text an image of `tiles` tiles becomes. */
export function imageText(tiles: number, tokensPerTile: number, t: InternVLPromptTokens = DEFAULT_PROMPT_TOKENS): string {
  return t.start + t.context.repeat(tokensPerTile * tiles) + t.end;
}

/** The text a video of `frames` frames becomes (one tile per frame). */
export function videoText(frames: number, tokensPerTile: number, t: InternVLPromptTokens = DEFAULT_PROMPT_TOKENS): string {
  const tile = imageText(1, tokensPerTile, t);
  return Array.from({ length: frames }, (_, k) => `Frame${k + 1}: ${tile}`).join("\n");
}

/** The rendered template with every image (`<IMG_CONTEXT>`) / video (`<video>`) placeholder expanded (file comment). */
export function expandPromptText(text: string, visuals: readonly PromptVisual[], tokensPerTile: number, t: InternVLPromptTokens = DEFAULT_PROMPT_TOKENS): string {
  const IMG_CONTEXT_TOKEN = t.context;
  const VIDEO_TOKEN = t.video;
  const images = visuals.filter((v) => v.kind === "image");
  const videos = visuals.filter((v) => v.kind === "video");
  let out = "";
  let pos = 0;
  let imageIndex = 0;
  let videoIndex = 0;
  for (;;) {
    const i = text.indexOf(IMG_CONTEXT_TOKEN, pos);
    const v = text.indexOf(VIDEO_TOKEN, pos);
    if (i < 0 && v < 0) break;
    const isImage = i >= 0 && (v < 0 || i < v);
    const at = isImage ? i : v;
    out += text.slice(pos, at);
    if (isImage) {
      const image = images[imageIndex++];
      if (!image) throw new VideolmError(`the prompt has more ${IMG_CONTEXT_TOKEN} placeholders than the ${images.length} image(s) given; each image needs exactly one {"type": "image"} content part`);
      out += imageText(image.tiles, tokensPerTile, t);
      pos = at + IMG_CONTEXT_TOKEN.length;
    } else {
      const video = videos[videoIndex++];
      if (!video) throw new VideolmError(`the prompt has more ${VIDEO_TOKEN} placeholders than the ${videos.length} video(s) given; each video needs exactly one {"type": "video"} content part`);
      out += videoText(video.tiles, tokensPerTile, t);
      pos = at + VIDEO_TOKEN.length;
    }
  }
  if (imageIndex !== images.length || videoIndex !== videos.length) {
    throw new VideolmError(
      `the prompt has ${imageIndex} image and ${videoIndex} video placeholder(s) but ${images.length} image(s) and ${videos.length} video(s) were given ` +
        `(the chat template must render ${IMG_CONTEXT_TOKEN} for an image part and ${VIDEO_TOKEN} for a video part)`,
    );
  }
  return out + text.slice(pos);
}
