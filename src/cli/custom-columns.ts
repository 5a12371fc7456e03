/**
 * `-o custom-columns=HEADER:PATH,...` as kubectl prints it: one row per object, each
 * cell the path's values comma-separated, `<none>` when the path reaches nothing. A
 * path is a JSONPath of jsonpath.ts, with or without its braces (`.spec.cidr`,
 * `{.spec.cidr}`).
 */
import { InvalidArgumentError } from 'commander';
import { evaluatePath, parsePath, printValue, type Path } from './jsonpath.js';
import { formatTable } from './table.js';

export interface CustomColumn {
  readonly header: string;
  readonly path: Path;
}

/** `NAME:.metadata.name,CIDR:.spec.cidr` → the columns; a bad spec says which column. */
export function parseCustomColumns(spec: string): CustomColumn[] {
  if (spec.trim() === '')
    throw new InvalidArgumentError(
      'custom-columns: give HEADER:PATH,... (e.g. NAME:.metadata.name,CIDR:.spec.cidr)',
    );
  return spec.split(',').map((item, n) => {
    const colon = item.indexOf(':');
    const header = colon < 0 ? '' : item.slice(0, colon).trim();
    let pathText = colon < 0 ? '' : item.slice(colon + 1).trim();
    if (header === '' || pathText === '')
      throw new InvalidArgumentError(
        `custom-columns: column ${n + 1} ${JSON.stringify(item)} is not HEADER:PATH (e.g. NAME:.metadata.name)`,
      );
    if (pathText.startsWith('{') && pathText.endsWith('}')) pathText = pathText.slice(1, -1);
    if (!pathText.startsWith('.') && !pathText.startsWith('$') && !pathText.startsWith('@'))
      pathText = `.${pathText}`;
    return { header, path: parsePath(pathText) };
  });
}

/** The table (three spaces between columns, as `get`'s tables) with a final newline. */
export function formatCustomColumns(
  columns: readonly CustomColumn[],
  objects: readonly unknown[],
): string {
  const rows = objects.map((o) =>
    columns.map((c) => {
      const values = evaluatePath(c.path, o, o);
      return values.length === 0 ? '<none>' : values.map(printValue).join(',');
    }),
  );
  return (
    formatTable(
      columns.map((c) => c.header),
      rows,
      { gap: 3 },
    ) + '\n'
  );
}
