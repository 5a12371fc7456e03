/**
 * tcpdump on an interface of a network namespace (by path), from the moment `capture`
 * resolves (tcpdump said it listens): one line per packet (`-nn -t -q`), written as each
 * packet is taken (`-l -U`).
 *
 * tcpdump prints a packet a while after it passed — long after on a loaded machine — so
 * stopping a capture right after the traffic may lose its last packets, and no sleep is
 * long enough for sure. Wait for evidence instead: `until` the lines show what the test
 * expects, then `stop`. For "no packet of kind X", wait for a packet that passed after
 * the X would have (the reply to the last probe): one tcpdump prints in the order it
 * captured, so every earlier packet is printed by then — capture X and the later packet
 * with one filter.
 */
import { spawn } from 'node:child_process';
import { requireCommand } from './tools.js';

export interface Capture {
  /** The packets printed so far, one line each. */
  lines(): string[];
  /**
   * Resolves with the lines once they satisfy `ok`; rejects, showing what was captured,
   * when tcpdump ends first or after `timeoutMs` (a bound only for giving up).
   */
  until(what: string, ok: (lines: string[]) => boolean, timeoutMs?: number): Promise<string[]>;
  /** Stops tcpdump and returns every line it printed. */
  stop(): Promise<string[]>;
}

export async function capture(nsPath: string, dev: string, filter: string): Promise<Capture> {
  requireCommand('tcpdump');
  const child = spawn(
    'nsenter',
    [`--net=${nsPath}`, '--', 'tcpdump', '-i', dev, '-nn', '-t', '-q', '-l', '-U', filter],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  let err = '';
  let ended = false;
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  // 'close', not 'exit': by then everything tcpdump wrote has been read.
  const closed = new Promise<void>((resolve) =>
    child.once('close', () => {
      ended = true;
      resolve();
    }),
  );
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`tcpdump did not start: ${err}`));
    }, 60_000);
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      err += d;
      if (err.includes('listening on')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run tcpdump: ${e.message}`));
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`tcpdump exited ${String(code)}: ${err.trim()}`));
    });
  });
  /** Whole lines only: a packet's line may still be on its way. */
  const lines = () =>
    out
      .slice(0, ended ? undefined : out.lastIndexOf('\n') + 1)
      .split('\n')
      .filter((l) => l.trim() !== '');
  const shown = () => `; the capture on ${dev} (${filter}) shows:\n${lines().join('\n')}`;

  return {
    lines,
    until(what, ok, timeoutMs = 60_000) {
      return new Promise<string[]>((resolve, reject) => {
        const done = () => {
          clearTimeout(timer);
          child.stdout.off('data', check);
          child.off('close', gone);
        };
        const check = () => {
          const now = lines();
          if (!ok(now)) return false;
          done();
          resolve(now);
          return true;
        };
        const gone = () => {
          if (check()) return;
          done();
          reject(
            new Error(`tcpdump ended before the capture showed ${what}: ${err.trim()}${shown()}`),
          );
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`not within ${timeoutMs} ms: ${what}${shown()}`));
        }, timeoutMs);
        child.stdout.on('data', check);
        child.once('close', gone);
        if (!check() && ended) gone();
      });
    },
    async stop() {
      if (!ended) child.kill('SIGINT');
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      await closed;
      clearTimeout(timer);
      return lines();
    },
  };
}
