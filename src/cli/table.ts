/**
 * The one table printer of the CLI: columns padded to their widest cell (the header
 * included), `gap` spaces apart, the last column never padded, no trailing spaces.
 * `tortie get` spaces its columns 3 apart as kubectl does; the others 2.
 */
export interface TableOptions {
  /** Spaces between columns (default 2). */
  readonly gap?: number;
  /** Per column; numbers read best 'right' (default 'left'). */
  readonly align?: readonly ('left' | 'right')[];
}

/** The header and the rows as lines joined by '\n' (no final newline). */
export function formatTable(
  header: readonly string[],
  rows: readonly (readonly string[])[],
  options: TableOptions = {},
): string {
  const all = [header, ...rows];
  const columns = Math.max(...all.map((r) => r.length));
  const widths = Array.from({ length: columns }, (_, c) =>
    Math.max(...all.map((r) => (r[c] ?? '').length)),
  );
  const gap = ' '.repeat(options.gap ?? 2);
  const line = (r: readonly string[]) =>
    r
      .map((cell, c) =>
        options.align?.[c] === 'right'
          ? cell.padStart(widths[c]!)
          : c === r.length - 1
            ? cell
            : cell.padEnd(widths[c]!),
      )
      .join(gap)
      .trimEnd();
  return all.map(line).join('\n');
}
