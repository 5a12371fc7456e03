/**
 * The one printer of reachability matrices (the lab's probe, the demos, conformance
 * failures): a row per client, a column per server, every column as wide as the longest
 * key plus one, cells right-aligned under their column.
 *
 *   `keys` (default): the servers' keys head the columns.
 *   `numbers`: wide keys (ns/pod) would make wide columns, so the columns are numbered
 *   and each row starts with its number and key.
 */
export interface MatrixOptions {
  /** Before every line (default ''). */
  readonly indent?: string;
  /** What heads the columns (default 'keys'). */
  readonly columns?: 'keys' | 'numbers';
}

/** The matrix of `cell(from, to)` over `keys` x `keys`, lines joined by '\n'. */
export function formatMatrix(
  keys: readonly string[],
  cell: (from: string, to: string) => string,
  options: MatrixOptions = {},
): string {
  const indent = options.indent ?? '';
  if (options.columns === 'numbers') {
    const numbers = keys.map((_, i) => String(i));
    const w = Math.max(...numbers.map((n) => n.length), ...keys.map((f) => cell(f, f).length)) + 1;
    const label = Math.max(...keys.map((k) => k.length), 'FROM \\ TO'.length) + 2;
    const n = String(keys.length - 1).length + 2;
    const lines = [
      (
        indent +
        ' '.repeat(n) +
        'FROM \\ TO'.padEnd(label) +
        numbers.map((x) => x.padStart(w)).join('')
      ).trimEnd(),
    ];
    keys.forEach((from, i) =>
      lines.push(
        indent +
          numbers[i]!.padEnd(n) +
          from.padEnd(label) +
          keys.map((to) => cell(from, to).padStart(w)).join(''),
      ),
    );
    return lines.join('\n');
  }
  const w = Math.max(...keys.map((k) => k.length)) + 1;
  const lines = [indent + ' '.repeat(w) + keys.map((k) => k.padStart(w)).join('')];
  for (const from of keys)
    lines.push(indent + from.padEnd(w) + keys.map((to) => cell(from, to).padStart(w)).join(''));
  return lines.join('\n');
}
