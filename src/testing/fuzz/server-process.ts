/**
 * `videolm serve` as a child process for the fuzz harness, on loopback only, with its own TMPDIR, plus the probes
 * the harness checks after each campaign: is it alive, its child processes (ffmpeg), its open descriptors, what it
 * left in its TMPDIR.
 */
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { repoRoot } from "../tiny-checkpoint.js";

/** How to start the CLI: the built one (dist/, fast to start) or the sources through tsx (always current). */
export type CliEntry = "dist" | "src";

export function cliCommand(entry: CliEntry): string[] {
  const root = repoRoot();
  if (entry === "dist") {
    const main = path.join(root, "dist/cli/main.js");
    if (!fs.existsSync(main)) throw new Error(`${main} is missing: run npm run build first`);
    return [main];
  }
  // tsx as a loader in this very process (its CLI would run the program in a child, hiding the server's own pid).
  return ["--import", pathToFileURL(path.join(root, "node_modules/tsx/dist/loader.mjs")).href, path.join(root, "src/cli/main.ts")];
}

export interface ServerProcess {
  url: string;
  pid: number;
  tmpDir: string;
  alive(): boolean;
  exitInfo(): string | undefined;
  stderrTail(): string;
  /** Process ids whose parent is the server (ffmpeg/ffprobe children; tsx's esbuild service is not counted). */
  children(): number[];
  openDescriptors(): number;
  /** Entries of the server's TMPDIR (its uploads folder and anything else). */
  tmpEntries(): string[];
  stop(): Promise<void>;
}

export async function startServerProcess(opts: { model: string; args?: string[]; entry: CliEntry; tmpDir: string; cacheDir: string; startTimeoutMs?: number }): Promise<ServerProcess> {
  const argv = [...cliCommand(opts.entry), "serve", "--model", opts.model, "--host", "127.0.0.1", "--port", "0", "-q", ...(opts.args ?? [])];
  const child: ChildProcess = spawn(process.execPath, argv, {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, TMPDIR: opts.tmpDir, TMP: opts.tmpDir, TEMP: opts.tmpDir, VIDEOLM_CACHE: opts.cacheDir },
  });
  let stderr = "";
  let exit: string | undefined;
  child.stderr!.setEncoding("utf8");
  child.stderr!.on("data", (s: string) => {
    stderr = (stderr + s).slice(-20_000);
  });
  child.once("exit", (code, signal) => {
    exit = `exit ${code ?? signal}`;
  });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the server did not start within ${opts.startTimeoutMs ?? 120_000} ms: ${stderr}`)), opts.startTimeoutMs ?? 120_000);
    const onData = () => {
      const m = /serving .* at (http:\/\/127\.0\.0\.1:\d+)\//.exec(stderr);
      if (m) {
        clearTimeout(timer);
        child.stderr!.off("data", onData);
        resolve(m[1]);
      }
    };
    child.stderr!.on("data", onData);
    child.once("exit", () => {
      clearTimeout(timer);
      reject(new Error(`the server exited while starting: ${stderr}`));
    });
  });
  const pid = child.pid!;
  return {
    url,
    pid,
    tmpDir: opts.tmpDir,
    alive: () => exit === undefined,
    exitInfo: () => exit,
    stderrTail: () => stderr,
    children: () => childPids(pid).filter((c) => commandName(c) !== "esbuild"),
    openDescriptors: () => {
      try {
        return fs.readdirSync(`/proc/${pid}/fd`).length;
      } catch {
        return -1;
      }
    },
    tmpEntries: () => listTree(opts.tmpDir).filter((p) => !p.startsWith("tsx-")),
    stop: () =>
      new Promise<void>((resolve) => {
        if (exit !== undefined) return resolve();
        const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
        child.once("exit", () => {
          clearTimeout(timer);
          resolve();
        });
        child.kill("SIGTERM");
      }),
  };
}

/** Children of `pid`, from /proc (Linux); [] elsewhere. */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  let entries: string[] = [];
  try {
    entries = fs.readdirSync("/proc");
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, "utf8");
      // pid (comm) state ppid ...; comm may hold spaces and parentheses: read after the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) out.push(Number(e));
    } catch {
      // the process ended meanwhile
    }
  }
  return out;
}

function commandName(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "";
  }
}

/** Relative paths of every file and folder under `dir`. */
export function listTree(dir: string): string[] {
  const out: string[] = [];
  const stack = [""];
  while (stack.length) {
    const rel = stack.pop()!;
    let names: string[] = [];
    try {
      names = fs.readdirSync(path.join(dir, rel));
    } catch {
      continue;
    }
    for (const n of names) {
      const r = rel ? path.join(rel, n) : n;
      out.push(r);
      try {
        if (fs.statSync(path.join(dir, r)).isDirectory() && !n.startsWith("tsx-")) stack.push(r);
      } catch {
        // removed meanwhile
      }
    }
  }
  return out.sort();
}
