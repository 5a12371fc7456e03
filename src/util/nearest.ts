/**
 * "Did you mean …?": the known word nearest to a misspelt one, by edit distance
 * (insertions, deletions, substitutions and swaps of neighbours; a change of case alone
 * counts as nearer than any other edit, so `natOutGoing` finds `natOutgoing`).
 */

/** Optimal-string-alignment distance between two words. */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[][] = Array.from({ length: rows }, (_, i) =>
    Array.from({ length: cols }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The candidate nearest to `word`, or undefined when none is near enough to be a likely
 * misspelling (at most a third of the word's letters changed, and at least one letter kept).
 */
export function nearest(word: string, candidates: Iterable<string>): string | undefined {
  const lower = word.toLowerCase();
  let best: { candidate: string; score: number } | undefined;
  for (const candidate of candidates) {
    if (candidate === word) continue;
    const score =
      candidate.toLowerCase() === lower
        ? 0.5
        : editDistance(lower, candidate.toLowerCase()) + (candidate.length === 0 ? 99 : 0);
    if (best === undefined || score < best.score) best = { candidate, score };
  }
  if (best === undefined) return undefined;
  const limit = Math.max(1, Math.floor(word.length / 3));
  return best.score <= limit ? best.candidate : undefined;
}

/** " (did you mean natOutgoing?)", or "" when nothing is near. */
export function didYouMean(word: string, candidates: Iterable<string>): string {
  const found = nearest(word, candidates);
  return found === undefined ? '' : ` (did you mean ${found}?)`;
}
