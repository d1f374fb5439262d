/**
 * videolm library API.
 *
 *   import { VideoModel } from "videolm";
 *   const model = await VideoModel.load("path/to/Qwen2-VL-2B-Instruct");
 *   const { text } = await model.generate({
 *     messages: [{ role: "user", content: [{ type: "video", video: "clip.mp4", fps: 2 }, { type: "text", text: "What happens?" }] }],
 *     onToken: (e) => process.stdout.write(e.text),
 *   });
 */
export { VideoModel, type GenerateRequest, type GenerateResponse, type LoadOptions } from "./engine/model.js";
export { RequestPreparer, type PreparedRequest } from "./engine/preparer.js";
export type { ChatRequestMessage, ContentPart, ImagePart, MediaOptions, MediaSource, PreparedVisual, TextPart, VideoPart } from "./engine/request.js";
export type { TokenEvent } from "./engine/generate.js";
export type { GenerationOptions } from "./generation/options.js";
export type { RgbImage } from "./processing/rgb-image.js";
export type { WeightPrecision } from "./onnx/layers.js";
export { VideolmError } from "./errors.js";
export { RemoteModel, type ConnectOptions, type RemoteGenerateResponse, type RemoteLogprob } from "./remote/remote-model.js";
export { BackendError } from "./remote/backend-client.js";
export { BACKEND_KINDS, type BackendKind } from "./remote/backend-kind.js";
export type { Event, EventsResult, EventsTask } from "./events/types.js";
export { parseEvents, eventsResult, formatEvents, parseSrt, parseVtt, eventsTable, type EventsFormat } from "./events/index.js";
export type { EventsOptions, EventsResponse, EventsVideo } from "./events/run.js";
export type { EventPrompt, EventResponseFormat } from "./families/event-prompts.js";
export { eventPromptFor } from "./events/prompts.js";
export { supportedModelTypes } from "./families/registry.js";
export { planSeedSampling, seedContentParts, SEED_TASK_FPS, type SeedSamplingPlan, type SeedSamplingOptions, type SeedTask, type SeedFrame, type SeedContentPart } from "./sampling/seed-1-5.js";
export { validateResponseFormat, type ResponseFormat } from "./generation/constrained/response-format.js";
