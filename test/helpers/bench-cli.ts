/** Runs `tortie bench ...` from dist (needs `npm run build`) and parses its --json output. */
import { execFile } from 'node:child_process';
import { join } from 'node:path';

const MAIN = join(import.meta.dirname, '..', '..', 'dist', 'src', 'cli', 'main.js');

export function benchJson<T>(args: string[], timeoutMs = 300_000): Promise<T> {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('TORTIE_')) delete env[k];
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [MAIN, 'bench', ...args, '--json'],
      { env, timeout: timeoutMs, maxBuffer: 1 << 26 },
      (err, stdout, stderr) => {
        if (err)
          return reject(new Error(`tortie bench ${args.join(' ')}: ${err.message}\n${stderr}`));
        try {
          resolve(JSON.parse(stdout) as T);
        } catch {
          reject(new Error(`not one JSON document on stdout: ${stdout.slice(0, 400)}`));
        }
      },
    );
  });
}

export const positiveFinite = (x: unknown): boolean =>
  typeof x === 'number' && Number.isFinite(x) && x > 0;
