/**
 * "Did you mean …?" for the command line: the closest known name to a mistyped flag or command, by edit distance
 * (optimal string alignment: insertions, deletions, substitutions and swaps of adjacent characters, each 1).
 */

/** Optimal-string-alignment distance between `a` and `b`. */
export function editDistance(a: string, b: string): number {
  const m = a.length;
  const n = b.length;
  let prev2: number[] = [];
  let prev = Array.from({ length: n + 1 }, (_, j) => j);
  for (let i = 1; i <= m; i++) {
    const cur = [i];
    for (let j = 1; j <= n; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, prev2[j - 2] + 1);
      cur.push(d);
    }
    prev2 = prev;
    prev = cur;
  }
  return prev[n];
}

/**
 * The known name closest to `input`, or undefined when none is close: within a third of the input's length in edits
 * (at least 1, case ignored), or the only name that `input` starts (`--max-new` → `--max-new-tokens`). Ties go to
 * the name listed first.
 */
export function closest(input: string, known: readonly string[]): string | undefined {
  const x = input.toLowerCase();
  const prefixed = known.filter((k) => k.toLowerCase().startsWith(x) && x.replace(/^-+/, "").length >= 2);
  if (prefixed.length === 1) return prefixed[0];
  const limit = Math.max(1, Math.floor(x.replace(/^-+/, "").length / 3));
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const d = editDistance(x, k.toLowerCase());
    if (d < bestDistance) {
      best = k;
      bestDistance = d;
    }
  }
  return bestDistance <= limit ? best : undefined;
}
