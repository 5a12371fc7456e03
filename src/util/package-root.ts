/**
 * Where the tortie package lives on disk, from either src/ (under vitest) or dist/ (after
 * tsc): the first ancestor of this module holding tortie's package.json.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: string | undefined;

export function packageRoot(): string {
  if (cached) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pj = join(dir, 'package.json');
    if (
      existsSync(pj) &&
      (JSON.parse(readFileSync(pj, 'utf8')) as { name?: string }).name === 'tortie'
    ) {
      cached = dir;
      return dir;
    }
    const up = dirname(dir);
    if (up === dir)
      throw new Error(
        'cannot find the tortie package root above ' + fileURLToPath(import.meta.url),
      );
    dir = up;
  }
}

export function packagePath(...parts: string[]): string {
  return join(packageRoot(), ...parts);
}

let version: string | undefined;

/** tortie's version as `v<package.json version>` (the CLI's and every agent's heartbeat's). */
export function packageVersion(): string {
  if (version === undefined) {
    const pj = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as {
      version?: string;
    };
    version = `v${pj.version ?? 'unknown'}`;
  }
  return version;
}
