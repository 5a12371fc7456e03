/**
 * Shared pieces of the benchmarks: statistics, the machine description, running a tool
 * inside a lab namespace (pinned to a CPU), result files.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Nearest-rank percentile (p in 0..100). */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * s.length));
  return s[Math.min(rank, s.length) - 1]!;
}

/** A figure over several runs: the median and the spread (max − min). */
export interface Stat {
  median: number;
  spread: number;
  runs: number[];
}

export function stat(runs: readonly number[]): Stat {
  return {
    median: median(runs),
    spread: runs.length ? Math.max(...runs) - Math.min(...runs) : 0,
    runs: [...runs],
  };
}

export interface Machine {
  kernel: string;
  cores: number;
  cpuModel: string;
  loadAverage: [number, number, number];
  date: string;
}

export function machine(): Machine {
  const c = cpus();
  const la = loadavg();
  return {
    kernel: release(),
    cores: c.length,
    cpuModel: c[0]?.model.trim() ?? 'unknown',
    loadAverage: [la[0]!, la[1]!, la[2]!],
    date: new Date().toISOString(),
  };
}

/**
 * An environment variable: a run id (5 or more hex digits) that every id this process
 * makes starts with. The tests set it to a run id registered as theirs
 * (test/helpers/bench-cli.ts), so that what a killed test run's benchmark left behind is
 * found by its name and removed by the next run.
 */
export const BENCH_RUN_ENV = 'TORTIE_BENCH_RUN';

let idsMade = 0;

/**
 * Six hex digits for a fresh per-run id: random, or with TORTIE_BENCH_RUN set its first
 * five digits and a sixth counting the ids of this process (it wraps after 16: a bench
 * removes a lab before it builds the next).
 */
export function benchHex(): string {
  const run = process.env[BENCH_RUN_ENV];
  if (run === undefined || run === '') return randomBytes(3).toString('hex');
  if (!/^[0-9a-f]{5,}$/.test(run))
    throw new Error(`${BENCH_RUN_ENV}=${run}: not a run id (5 or more lower-case hex digits)`);
  return `${run.slice(0, 5)}${(idsMade++ % 16).toString(16)}`;
}

/** A fresh per-run lab id: "bn" + 6 hex digits, short enough for every lab's naming rules. */
export function benchId(): string {
  return `bn${benchHex()}`;
}

/** CPU to pin a role to: client and server on different cores where there are two. */
export function cpuFor(role: 'client' | 'server'): number {
  const n = cpus().length;
  return role === 'client' ? 0 : Math.min(1, n - 1);
}

function nsArgv(netnsPath: string, cpu: number | undefined, argv: readonly string[]): string[] {
  const pin = cpu === undefined ? [] : ['taskset', '-c', String(cpu)];
  return [`--net=${netnsPath}`, '--', ...pin, ...argv];
}

/** Runs `argv` in the namespace (optionally pinned) to its end; rejects on a non-zero exit. */
export function runInNs(
  netnsPath: string,
  argv: readonly string[],
  opts: { cpu?: number; timeoutMs?: number } = {},
): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('nsenter', nsArgv(netnsPath, opts.cpu, argv), {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve({ stdout, stderr });
      else
        reject(
          new Error(
            `${argv.join(' ')} (in ${netnsPath}) exited ${code ?? signal}: ${(stderr || stdout).trim().slice(-600)}`,
          ),
        );
    });
  });
}

/** A long-running process in a namespace (a server); stop() kills it. */
export class NsDaemon {
  private constructor(
    private readonly child: ChildProcess,
    readonly name: string,
    private output: { text: string },
  ) {}

  static start(
    netnsPath: string,
    argv: readonly string[],
    opts: { cpu?: number; name?: string } = {},
  ): NsDaemon {
    const child = spawn('nsenter', nsArgv(netnsPath, opts.cpu, argv), {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const output = { text: '' };
    const keep = (d: Buffer) => (output.text = (output.text + d.toString()).slice(-4000));
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    child.on('error', () => undefined);
    return new NsDaemon(child, opts.name ?? argv[0]!, output);
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  get log(): string {
    return this.output.text;
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    const done = new Promise<void>((r) => this.child.once('close', () => r()));
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), 2000);
    await done;
    clearTimeout(t);
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Writes `name`.json (and returns its path) under `dir`. */
export function writeJson(dir: string, name: string, doc: unknown): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${name}.json`);
  writeFileSync(path, JSON.stringify(doc, null, 2) + '\n');
  return path;
}

export function writeText(dir: string, name: string, text: string): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

/** A progress line on stderr (nothing with --json, so stdout stays one document). */
export function progressFor(json: boolean, quiet = false): (s: string) => void {
  return json || quiet ? () => undefined : (s: string) => process.stderr.write(`  ${s}\n`);
}

/** Resident set size (kB) and CPU time (user+system, seconds) of a process from /proc. */
export function procUsage(pid: number): { rssKb: number; cpuSeconds: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rss = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces): ") state ppid ...".
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  const hz = 100; // USER_HZ on Linux
  return { rssKb: rss ? Number(rss[1]) : NaN, cpuSeconds: (utime + stime) / hz };
}

export function fmt(x: number, digits = 0): string {
  if (!Number.isFinite(x)) return '-';
  return x.toLocaleString('en-US', {
    maximumFractionDigits: digits,
    minimumFractionDigits: digits,
  });
}

const cleanups = new Set<() => Promise<void>>();
let handlersInstalled = false;

/**
 * Runs `cleanup` if the process is interrupted (SIGINT/SIGTERM) before the returned
 * function is called — finally blocks do not run on a signal. Exits 130 afterwards.
 */
export function onInterrupt(cleanup: () => Promise<void>): () => void {
  if (!handlersInstalled) {
    handlersInstalled = true;
    const handler = (): void => {
      process.stderr.write('\ninterrupted: removing the benchmark labs\n');
      void Promise.allSettled([...cleanups].map((f) => f())).then(() => process.exit(130));
    };
    process.once('SIGINT', handler);
    process.once('SIGTERM', handler);
  }
  cleanups.add(cleanup);
  return () => void cleanups.delete(cleanup);
}
