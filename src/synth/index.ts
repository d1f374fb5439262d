/** The synthetic video + question generator used to train and test the demo model (docs/demo-model.md). */
export * from "./scene.js";
export * from "./events.js";
export { SeededRng } from "./rng.js";
export { encodeScene, frameCount, renderFrame } from "./render.js";
export { DEMO_MEDIA_OPTIONS, demoMessages } from "./demo-request.js";
