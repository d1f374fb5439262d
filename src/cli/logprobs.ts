/**
 * `videolm run --logprobs N`: each generated token with its text, logprob and the N most likely alternatives —
 * as JSON entries (`--json`) or as a table printed after the answer.
 */
import type { GenerationResult } from "../engine/generate.js";
import type { TokenInfo } from "../text/token-info.js";

export interface LogprobEntry {
  token: number;
  text: string;
  logprob: number;
  top?: { token: number; text: string; logprob: number }[];
}

/** The generation's logprobs with each token's text (its exact bytes as UTF-8, as the server's `token`). */
export function logprobEntries(logprobs: GenerationResult["logprobs"], info: TokenInfo): LogprobEntry[] {
  const text = (id: number) => info.describe(id).token;
  return logprobs.map((e) => ({
    token: e.token,
    text: text(e.token),
    logprob: e.logprob,
    ...(e.top ? { top: e.top.map((t) => ({ token: t.token, text: text(t.token), logprob: t.logprob })) } : {}),
  }));
}

/** Token text made visible: JSON-quoted, so spaces, newlines and control characters show (`" the"`, `"\n"`). */
const quote = (s: string) => JSON.stringify(s);
const lp = (x: number) => (Number.isFinite(x) ? x.toFixed(4) : String(x));

/**
 * A table for the terminal, one generated token a line:
 *
 *   #  token     logprob  top 2
 *   0  "The"     -0.0123  "The" -0.0123, "A" -4.5600
 */
export function formatLogprobTable(entries: LogprobEntry[]): string {
  const topN = Math.max(0, ...entries.map((e) => e.top?.length ?? 0));
  const rows = entries.map((e, i) => [String(i), quote(e.text), lp(e.logprob), (e.top ?? []).map((t) => `${quote(t.text)} ${lp(t.logprob)}`).join(", ")]);
  const header = ["#", "token", "logprob", topN > 0 ? `top ${topN}` : ""];
  const width = [0, 1, 2].map((c) => Math.max(header[c].length, ...rows.map((r) => r[c].length)));
  const line = (r: string[]) => [r[0].padStart(width[0]), r[1].padEnd(width[1]), r[2].padStart(width[2]), r[3]].join("  ").trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}
