/** Errors of the conformance runner: a refused case file names the JSON path of the value. */

export type JsonPath = readonly (string | number)[];

/** `cases[3].steps[1].expect.deny[0][1]`; keys that are not identifiers are quoted. */
export function formatJsonPath(path: JsonPath): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else if (/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(part)) out += out === '' ? part : `.${part}`;
    else out += `[${JSON.stringify(part)}]`;
  }
  return out === '' ? '(top level)' : out;
}

/** A refused case file: `path` names the value, `reason` says what is wrong with it. */
export class CaseFileError extends Error {
  override readonly name = 'CaseFileError';
  constructor(
    readonly path: string,
    readonly reason: string,
    readonly source?: string,
  ) {
    super(`${source === undefined ? '' : `${source}: `}${path}: ${reason}`);
  }
}
