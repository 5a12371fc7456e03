/** Case files from disk: a file, or every `*.json` of a directory (sorted by name). */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseCaseFileText, type CaseFile } from './schema.js';

export function caseFilePaths(paths: readonly string[]): string[] {
  return paths.flatMap((p) => {
    let isDir: boolean;
    try {
      isDir = statSync(p).isDirectory();
    } catch (e) {
      throw new Error(
        `${p}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (e as Error).message}`,
      );
    }
    if (!isDir) return [p];
    const found = readdirSync(p)
      .filter((n) => n.endsWith('.json'))
      .sort()
      .map((n) => join(p, n));
    if (found.length === 0) throw new Error(`${p}: no *.json case files in this directory`);
    return found;
  });
}

/** Reads and validates every case file; errors name the file and the JSON path. */
export function loadCaseFiles(paths: readonly string[]): CaseFile[] {
  return caseFilePaths(paths).map((p) => parseCaseFileText(readFileSync(p, 'utf8'), p));
}
