/**
 * The built `tortie` command (`npm run build` first), run as a user runs it: a separate
 * process without the caller's TORTIE_* environment.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';

/** The built entry, as package.json's `bin` names it. */
export const TORTIE_CLI = join(import.meta.dirname, '..', '..', 'dist', 'bin', 'tortie.js');

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** One `tortie ARGS` process to its end; never rejects (the exit code is part of the result). */
export function runTortie(
  args: readonly string[],
  env: Record<string, string> = {},
  timeoutMs = 60_000,
): Promise<CliRun> {
  const base = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('TORTIE_')),
  );
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [TORTIE_CLI, ...args],
      { env: { ...base, ...env }, timeout: timeoutMs, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        const code =
          err === null ? 0 : typeof err.code === 'number' ? err.code : err.killed ? -9 : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}
