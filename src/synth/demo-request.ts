/**
 * How the demo model is asked: one user message with the video then the question, and the video sampling the
 * model was trained with (4 fps; frames resized to at most 112×112 = 12 544 pixels → 112×84 for 4:3 sources).
 * These equal the defaults shipped in models/videolm-demo/video_preprocessor_config.json; passing them
 * explicitly keeps training and evaluation independent of how the processor reads that file.
 */
import type { ChatRequestMessage, MediaOptions } from "../engine/request.js";

export const DEMO_MEDIA_OPTIONS: MediaOptions = { fps: 4, minPixels: 56 * 56, maxPixels: 112 * 112 };

export function demoMessages(video: string, question: string): ChatRequestMessage[] {
  return [{ role: "user", content: [{ type: "video", video }, { type: "text", text: question }] }];
}
