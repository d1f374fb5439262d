#!/usr/bin/env node
/**
 * videolm command line. Errors a user can act on print as one line (`videolm: …`) with exit code 1; anything
 * else is an internal error, also one line unless --debug is given.
 */
import { VideolmError } from "../errors.js";
import { runCommand } from "./commands/run.js";
import { inspectCommand } from "./commands/inspect.js";
import { modelsCommand } from "./commands/models.js";
import { closest } from "./suggest.js";
import { CLI_SPELLING, messageFor } from "../option-error.js";

const COMMANDS = ["run", "events", "ground", "inspect", "serve", "batch", "bench", "models", "help"];

const USAGE = `videolm — video understanding with vision-language models, on Node.js

Usage:
  videolm run --model DIR [--video FILE] [--image FILE]... [options] "question"
  videolm events VIDEO [--format table|json|srt|vtt|csv] [-o FILE]
                                 what happens in the video and when (dense captions as timed events)
  videolm ground VIDEO "QUERY"   when QUERY happens in the video: its span(s) in seconds
  videolm inspect --model DIR [--video FILE] [--image FILE]... [options] ["question"]
                                 the sampling plan and prompt, without running the model
  videolm serve --model DIR [--host 127.0.0.1] [--port 8080]
                                 OpenAI-compatible API (/v1/chat/completions) and the web app at /
  videolm batch (FOLDER | "GLOB" | MANIFEST.csv|.jsonl)... -o results.jsonl [--question Q] [--backend URL]...
                                 many videos, one JSON line per item; run again to resume
  videolm bench [--shape qwen2-vl-2b] [--dtype int4]
                                 measure this machine: load, vision, prefill, first token, decode, memory
  videolm models                 list the supported model families

Run "videolm run --help" for every option.`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "run":
      return runCommand(rest);
    case "inspect":
      return inspectCommand(rest);
    case "events":
      return (await import("./commands/events.js")).eventsCommand(rest);
    case "ground":
      return (await import("./commands/events.js")).groundCommand(rest);
    case "serve": return (await import("./commands/serve.js")).serveCommand(rest);
    case "batch":
      return (await import("./commands/batch.js")).batchCommand(rest);
    case "models":
      return modelsCommand(rest);
    case "bench":
      return (await import("./commands/bench.js")).benchCommand(rest);
    case undefined:
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(USAGE + "\n");
      return command === undefined ? 1 : 0;
    case "--version":
      process.stdout.write("videolm 0.1.0\n");
      return 0;
    default: {
      const suggestion = closest(command, COMMANDS) ?? (/\.[a-z0-9]{2,4}$|^(https?|file|data):/i.test(command) ? `videolm run ${command} …` : undefined);
      throw new VideolmError(
        `unknown command ${JSON.stringify(command)}; ${suggestion ? `did you mean ${suggestion}?` : `the commands are ${COMMANDS.join(", ")}`} (see videolm --help)`,
      );
    }
  }
}

const debug = process.argv.includes("--debug");
main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof VideolmError) {
      // One line, always: options named as flags (OptionError); a message that quotes input may hold line breaks.
      process.stderr.write(`videolm: ${messageFor(error, CLI_SPELLING).replace(/\s*[\r\n]+\s*/g, " ")}\n`);
    } else {
      process.stderr.write(`videolm: internal error: ${(error as Error)?.message ?? String(error)} (run with --debug for details, and please report it)\n`);
    }
    if (debug) process.stderr.write(`${(error as Error)?.stack ?? ""}\n`);
    process.exitCode = 1;
  },
);
