/**
 * Test helpers for anything that needs real network namespaces (root only):
 *
 *   const run = new TestNetnsSet();            // names carry tortie-t<6 hex>
 *   const node = await run.create('node');     // { name: 'tortie-t1a2b3c-node', path: '/run/netns/…' }
 *   await execInOk(node.path, 'ping', ['-c', '1', '10.0.0.1']);
 *   afterAll(() => run.removeAll());           // removes every namespace it created
 *
 * Commands run through `nsenter --net=PATH`, which (unlike `ip netns exec`) keeps the
 * host's mounts, /sys/fs/bpf included.
 *
 * Every run id is registered with its owner (./run-registry.ts) before it names anything,
 * so that a later run removes what this one leaves behind if it is killed
 * (./leftovers.ts), and never touches it while it runs. Whatever a test names — lab ids,
 * etcd members, temp dirs — takes an id from here (`newRunId`, `newLabId`) to be covered.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createNetns, deleteNetns, netnsPath } from '../../src/plumbing/index.js';
import { registerRun } from './run-registry.js';

/**
 * A fresh id for one test run: 6 random hex digits, registered as owned by this test
 * run. Names must keep at least its first five digits (`runMark`).
 */
export function newRunId(): string {
  const runId = randomBytes(3).toString('hex');
  registerRun(runId);
  return runId;
}

/**
 * A registered lab id (1-8 lower-case letters or digits, what ClusterLab and the
 * conformance labs take): `<tag><run id>`, cut to 8 characters. The tag (at most 3
 * letters) tells the test file; the run id's digits tie the lab to this run.
 */
export function newLabId(tag: string): string {
  if (!/^[a-z]{1,3}$/.test(tag)) throw new Error(`lab id tag "${tag}": use 1-3 lower-case letters`);
  return `${tag}${newRunId()}`.slice(0, 8);
}

/** `tortie-t<runId>`: the prefix of every namespace a run creates. */
export function runPrefix(runId: string): string {
  return `tortie-t${runId}`;
}

/**
 * A link name for this run, within the kernel's 15 characters: `t<runId><role>`
 * (e.g. "t1a2b3cup"). Throws when the role is too long to fit.
 */
export function runLinkName(runId: string, role: string): string {
  const name = `t${runId}${role}`;
  if (name.length > 15)
    throw new Error(`link name ${name} is longer than 15 characters: shorten role "${role}"`);
  return name;
}

export interface TestNetns {
  name: string;
  /** /run/netns/NAME */
  path: string;
}

/** The namespaces of one test run: created with unique names, removed all together. */
export class TestNetnsSet {
  readonly runId: string;
  readonly prefix: string;
  private readonly created = new Set<string>();

  constructor(runId: string = newRunId()) {
    this.runId = runId;
    this.prefix = runPrefix(runId);
  }

  /** The name a namespace with this role gets: `tortie-t<runId>-<role>`. */
  name(role: string): string {
    return `${this.prefix}-${role}`;
  }

  async create(role: string): Promise<TestNetns> {
    const name = this.name(role);
    this.created.add(name);
    const path = await createNetns(name);
    return { name, path };
  }

  /** A namespace this run may create later (the path does not exist yet). */
  planned(role: string): TestNetns {
    const name = this.name(role);
    return { name, path: netnsPath(name) };
  }

  /** Deletes a namespace this set created; absent is fine. */
  async remove(ns: TestNetns | string): Promise<void> {
    const name = typeof ns === 'string' ? ns : ns.name;
    await deleteNetns(name);
    this.created.delete(name);
  }

  /**
   * Deletes every namespace created (links inside go with them), trying all of them
   * even when some fail; then throws one error that lists the failures.
   */
  async removeAll(): Promise<void> {
    const names = [...this.created];
    const results = await Promise.allSettled(names.map((name) => this.remove(name)));
    const failures = results.flatMap((result, i) =>
      result.status === 'rejected' ? [`${names[i]}: ${(result.reason as Error).message}`] : [],
    );
    if (failures.length > 0)
      throw new Error(`could not remove test namespaces:\n${failures.join('\n')}`);
  }
}

export interface ExecResult {
  /** The exit code; null when killed (e.g. on timeout). */
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  stdin?: string;
  /** Killed after this long; default 20 s. */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/**
 * Runs `file args` inside the namespace at `nsPath` (undefined: the test's own) and
 * reports how it ended; never throws for a non-zero exit.
 */
export function execIn(
  nsPath: string | undefined,
  file: string,
  args: readonly string[],
  options: ExecOptions = {},
): Promise<ExecResult> {
  const [cmd, argv] =
    nsPath === undefined
      ? [file, [...args]]
      : ['nsenter', [`--net=${nsPath}`, '--', file, ...args]];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, {
      stdio: ['pipe', 'pipe', 'pipe'],
      ...(options.env ? { env: options.env } : {}),
      ...(options.cwd ? { cwd: options.cwd } : {}),
    });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 20_000);
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.stdin.on('error', () => undefined);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${[cmd, ...argv].join(' ')}: ${err.message}`));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(options.stdin ?? '');
  });
}

/** As execIn, but throws (with the command and its stderr) unless it exits 0. */
export async function execInOk(
  nsPath: string | undefined,
  file: string,
  args: readonly string[],
  options: ExecOptions = {},
): Promise<ExecResult> {
  const result = await execIn(nsPath, file, args, options);
  if (result.code !== 0) {
    const where = nsPath ?? 'the test namespace';
    throw new Error(
      `${[file, ...args].join(' ')} in ${where} exited ${String(result.code)}: ${result.stderr.trim() || result.stdout.trim()}`,
    );
  }
  return result;
}

/** `ip -json ARGS` in the namespace, parsed (the caller states the shape it expects). */
export async function ipJson<T = unknown>(
  nsPath: string | undefined,
  args: readonly string[],
): Promise<T> {
  const { stdout } = await execInOk(nsPath, 'ip', ['-json', ...args]);
  return JSON.parse(stdout) as T;
}

/** A sysctl's value in the namespace ("net.ipv4.ip_forward" → "1"). */
export async function sysctlIn(nsPath: string | undefined, key: string): Promise<string> {
  const { stdout } = await execInOk(nsPath, 'sysctl', ['-n', key]);
  return stdout.trim();
}
