/**
 * tcpdump in a network namespace (by path) from now on: resolves once it listens; the
 * returned function stops it and gives the lines it printed (`-nn -t -q`).
 */
import { spawn } from 'node:child_process';

export async function capture(
  ns: string,
  dev: string,
  filter: string,
): Promise<() => Promise<string[]>> {
  const child = spawn(
    'nsenter',
    [`--net=${ns}`, '--', 'tcpdump', '-i', dev, '-nn', '-t', '-q', '-l', '-U', filter],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`tcpdump did not start: ${err}`)), 10_000);
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      err += d;
      if (err.includes('listening on')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  return async () => {
    await new Promise((r) => setTimeout(r, 200));
    child.kill('SIGINT');
    const t = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(t);
    return out.split('\n').filter((l) => l.trim() !== '');
  };
}
