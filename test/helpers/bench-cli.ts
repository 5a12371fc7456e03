/**
 * Runs `tortie bench ...` as a user does — the built CLI (`npm run build` first), without
 * the caller's TORTIE_* environment — for the benchmarks' smoke tests (test/e2e/bench-*).
 * Only TORTIE_BENCH_RUN is set: a run id registered as this test run's (./netns.ts), which
 * every lab id, pin root and temp dir of the bench then carries, so that a killed run's
 * are removed by the next (./leftovers.ts).
 * Also: what a benchmark run left behind on the machine, and the lock that keeps two
 * test runs' benchmarks from running at the same time.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, onTestFinished } from 'vitest';
import { BENCH_RUN_ENV } from '../../bench/common.js';
import { newRunId } from './netns.js';

const MAIN = join(import.meta.dirname, '..', '..', 'dist', 'bin', 'tortie.js');

export interface BenchRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * `tortie bench <args>` to its end. At `timeoutMs` (keep it below the test's timeout) the
 * command gets SIGTERM, on which the benchmarks remove their labs, and the run reports
 * that exit.
 */
export function bench(args: readonly string[], timeoutMs = 90_000): Promise<BenchRun> {
  const env = {
    ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TORTIE_'))),
    [BENCH_RUN_ENV]: newRunId(),
  };
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [MAIN, 'bench', ...args],
      { env, timeout: timeoutMs, maxBuffer: 1 << 26 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** `tortie bench <args> --json`: exit 0 and stdout one JSON document, else throws. */
export async function benchJson<T>(args: readonly string[], timeoutMs?: number): Promise<T> {
  const r = await bench([...args, '--json'], timeoutMs);
  if (r.code !== 0)
    throw new Error(`tortie bench ${args.join(' ')} --json: exit ${r.code}\n${r.stderr}`);
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`not one JSON document on stdout: ${r.stdout.slice(0, 400)}`);
  }
}

/** A fresh directory for a bench's --out (`$TMP/tortie-bench-<name>-<run id>-…`), removed when the test ends. */
export function outDir(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `tortie-bench-${name}-${newRunId()}-`));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export const positiveFinite = (x: unknown): boolean =>
  typeof x === 'number' && Number.isFinite(x) && x > 0;

export const nonNegativeFinite = (x: unknown): boolean =>
  typeof x === 'number' && Number.isFinite(x) && x >= 0;

/** A table's header line: these column names in this order, whatever the padding. */
export function header(...names: string[]): RegExp {
  const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  return new RegExp(`^\\s*${names.map(esc).join('\\s+')}\\s*$`);
}

/**
 * Names the benchmarks' labs leave on the machine while they run, as `dir/name`: network
 * namespaces and bpffs pins (`tortie-bn…` same node, `tortie-bx…` across nodes,
 * `tortie-cv…` convergence, `tortie-b<hex>…` cni, `tortie-bench-<hex>` verdict) and the
 * temporary directories of their etcds, clusters and CNI runs. The compiled conn-server
 * (`tortie-bench-conn-server-…`) is a cache, not a trace.
 */
export function benchTraces(): string[] {
  const lab = /^tortie-(bn|bx|cv|b[0-9a-f]{6}-|bench-[0-9a-f]{6}$)/;
  const temp = /^tortie-((etcd|cluster)-(bn|bx|cv|b[0-9a-f]{6}-)|cni-bench-)/;
  const under = (dir: string, re: RegExp) =>
    existsSync(dir)
      ? readdirSync(dir)
          .filter((n) => re.test(n))
          .map((n) => join(dir, n))
      : [];
  return [
    ...under('/run/netns', lab),
    ...under('/sys/fs/bpf', lab),
    ...under('/run/tortie', lab),
    ...under(tmpdir(), temp),
  ];
}

/**
 * Traces that appeared since `before` (a `benchTraces()` taken before the run) and are
 * still there: what this run left behind. Labs of another test run's benchmarks would
 * show too: a file that uses this holds `exclusiveBenchRuns()`.
 */
export function leftSince(before: readonly string[]): string[] {
  const had = new Set(before);
  return benchTraces().filter((t) => !had.has(t));
}

const LOCK = '/run/lock/tortie-bench-tests.lock';

/**
 * For the calling test file: holds a machine-wide lock (flock(1) on LOCK) from before
 * its first test to after its last, so that the benchmarks of two test runs (two people's
 * `npm test` on one machine) take turns instead of mixing their labs — `leftSince` then
 * sees this run's only. The kernel releases the lock when its holder's process ends, so a
 * crashed run does not keep it.
 */
export function exclusiveBenchRuns(): void {
  let release: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    const holder = spawn('flock', ['--exclusive', LOCK, 'sh', '-c', 'echo held; exec cat'], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    await new Promise<void>((resolve, reject) => {
      holder.stdout.once('data', () => resolve());
      holder.once('error', reject);
      holder.once('exit', (code) => reject(new Error(`flock ${LOCK} exited ${code}`)));
    });
    release = () =>
      new Promise<void>((resolve) => {
        holder.once('exit', () => resolve());
        holder.stdin.end(); // cat ends, and with it the lock
      });
  }, 600_000);
  afterAll(() => release?.());
}
