/**
 * Import this module before `onnxruntime-node` (as the first import of any module that imports it).
 *
 * onnxruntime's Linux build carries Microsoft's 1DS telemetry client ("MATSDK"): creating a session starts it, and
 * it writes an empty `mat-debug-<pid>.log` and a `.ses` session file into TMPDIR from every process, never removed.
 * `ORT_DISABLE_TELEMETRY` (read by onnxruntime when its environment is created) turns the client off. ES modules
 * evaluate their imports in order, so setting the variable here, in a module imported ahead of onnxruntime-node,
 * takes effect before the library initialises. A user's explicit setting is kept.
 */
process.env.ORT_DISABLE_TELEMETRY ??= "1";

export {};
