/**
 * A step's expectation as a table: row = client (`from`), column = server (`to`), both in
 * podOrder. `default` with its exceptions (`deny` when the default is true, `allow` when
 * it is false) and `matrix` are two spellings of the same table; when a step gives both
 * they must agree on every judged cell.
 */
import { CaseFileError, formatJsonPath, type JsonPath } from './errors.js';

export interface RawExpectation {
  readonly default?: boolean;
  readonly deny?: readonly (readonly [string, string])[];
  readonly allow?: readonly (readonly [string, string])[];
  readonly matrix?: readonly string[];
}

/** expected[from][to] for `keys` (podOrder); throws CaseFileError naming the path under `at`. */
export function expandExpectation(
  raw: RawExpectation,
  keys: readonly string[],
  selfIgnored: boolean,
  at: JsonPath = ['expect'],
): boolean[][] {
  const refuse = (path: JsonPath, reason: string): never => {
    throw new CaseFileError(formatJsonPath([...at, ...path]), reason);
  };
  const index = new Map(keys.map((k, i) => [k, i]));
  const judged = (from: number, to: number) => !(selfIgnored && from === to);

  if (raw.deny !== undefined && raw.default !== true) {
    refuse(
      ['deny'],
      'deny lists the exceptions to "default": true (with a false default, list allow)',
    );
  }
  if (raw.allow !== undefined && raw.default !== false) {
    refuse(
      ['allow'],
      'allow lists the exceptions to "default": false (with a true default, list deny)',
    );
  }
  if (raw.default === undefined && raw.matrix === undefined) {
    refuse([], 'give "default" (with "deny" or "allow") or "matrix"');
  }

  let fromDefault: boolean[][] | undefined;
  if (raw.default !== undefined) {
    const base = raw.default;
    fromDefault = keys.map(() => keys.map(() => base));
    const exceptions = base ? raw.deny : raw.allow;
    const field = base ? 'deny' : 'allow';
    (exceptions ?? []).forEach(([from, to], i) => {
      const f = index.get(from);
      const t = index.get(to);
      if (f === undefined) return refuse([field, i, 0], `no pod ${from} in the model`);
      if (t === undefined) return refuse([field, i, 1], `no pod ${to} in the model`);
      fromDefault![f]![t] = !base;
    });
  }

  let fromMatrix: boolean[][] | undefined;
  if (raw.matrix !== undefined) {
    if (raw.matrix.length !== keys.length) {
      refuse(['matrix'], `has ${raw.matrix.length} rows; the model has ${keys.length} pods`);
    }
    fromMatrix = raw.matrix.map((row, i) => {
      const cells = row.replace(/\s+/g, '');
      if (!/^[01]*$/.test(cells)) refuse(['matrix', i], `${JSON.stringify(row)}: use only 0 and 1`);
      if (cells.length !== keys.length) {
        refuse(
          ['matrix', i],
          `${JSON.stringify(row)} has ${cells.length} cells; the model has ${keys.length} pods`,
        );
      }
      return [...cells].map((c) => c === '1');
    });
  }

  if (fromDefault !== undefined && fromMatrix !== undefined) {
    for (let f = 0; f < keys.length; f++) {
      for (let t = 0; t < keys.length; t++) {
        if (judged(f, t) && fromDefault[f]![t] !== fromMatrix[f]![t]) {
          refuse(
            ['matrix', f],
            `${keys[f]} -> ${keys[t]} (column ${t + 1}) is ${fromMatrix[f]![t] ? 1 : 0} in the matrix but ${fromDefault[f]![t] ? 1 : 0} by default/${raw.default ? 'deny' : 'allow'}`,
          );
        }
      }
    }
  }
  return (fromMatrix ?? fromDefault)!;
}

/** The table as matrix strings (`1` = the connection succeeds). */
export function matrixStrings(expected: readonly (readonly boolean[])[]): string[] {
  return expected.map((row) => row.map((v) => (v ? '1' : '0')).join(''));
}
