/**
 * `tortie lab up` interrupted half way leaves nothing behind: the built CLI runs in its
 * own process, and once the build has reached a given point (node namespaces appearing,
 * the detached etcd running, an agent process running — each seen on the machine, not
 * guessed from time) it gets a real SIGINT or SIGTERM. The command then exits with the
 * signal's code, and no namespace, link, bpffs directory, process, temp dir or state
 * directory carrying the lab id is left — also what the build made after the teardown
 * began.
 *
 * Needs root and `npm run build` first. Lab ids start with "li".
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { destroyClusterLab } from '../../src/lab/cluster/cluster-lab.js';
import { execInOk, newLabId } from '../helpers/netns.js';

const ROOT = join(import.meta.dirname, '..', '..');
const MAIN = join(ROOT, 'dist', 'bin', 'tortie.js');

const ids: string[] = [];

afterAll(async () => {
  // Whatever a failed case left: remove it, so the next run starts clean.
  for (const id of ids) await destroyClusterLab(id).catch(() => undefined);
}, 60_000);

/** Command lines of live processes (not zombies) that contain `needle`. */
function processesWith(needle: string): string[] {
  const out: string[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').join(' ');
      if (cmd.includes(needle) && !cmd.includes('vitest')) out.push(`pid ${d}: ${cmd}`);
    } catch {
      // gone
    }
  }
  return out;
}

/** What of lab `id` is on the machine: namespaces, links, pins, dirs, processes. */
async function leftovers(id: string): Promise<string[]> {
  const prefix = `tortie-${id}-`;
  const { stdout: links } = await execInOk(undefined, 'ip', ['-o', 'link', 'show']);
  return [
    ...readdirSync('/run/netns')
      .filter((n) => n.startsWith(prefix))
      .map((n) => `netns ${n}`),
    ...links
      .split('\n')
      .filter((l) => l.includes(`t${id}`))
      .map((l) => `link ${l}`),
    ...readdirSync('/sys/fs/bpf')
      .filter((n) => n.startsWith(prefix))
      .map((n) => `bpffs /sys/fs/bpf/${n}`),
    ...(existsSync(`/run/tortie/labs/${id}`) ? [`state dir /run/tortie/labs/${id}`] : []),
    ...readdirSync(tmpdir())
      .filter((n) => n.includes(`-${id}-`))
      .map((n) => `temp dir ${n}`),
    ...processesWith(prefix),
    ...processesWith(`/bird-${id}-n`),
  ];
}

/** Resolves with the child's exit code (128 + signal number when a signal ended it). */
function exitOf(child: ChildProcess): Promise<number> {
  const code = () => child.exitCode ?? 128 + (child.signalCode === 'SIGKILL' ? 9 : 0);
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(code());
  return new Promise((resolve) => child.once('exit', () => resolve(code())));
}

/**
 * Until `reached()` holds (polled), or `lab up` exits first — then it ran to its end or
 * failed before the point, and the case cannot say anything: that is an error.
 */
async function until(
  what: string,
  child: ChildProcess,
  output: () => string,
  reached: () => boolean,
): Promise<void> {
  const deadline = Date.now() + 90_000; // a bound for giving up only
  for (;;) {
    if (reached()) return;
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`lab up ended before ${what}:\n${output()}`);
    if (Date.now() > deadline) throw new Error(`lab up: no ${what} within 90 s:\n${output()}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const cases: {
  name: string;
  signal: 'SIGINT' | 'SIGTERM';
  nodes: number;
  args?: string[];
  reached: (id: string) => boolean;
}[] = [
  {
    name: 'while the node namespaces are being made',
    signal: 'SIGINT',
    nodes: 8,
    reached: (id) => existsSync(`/run/netns/tortie-${id}-n1`),
  },
  {
    name: 'once the detached etcd runs',
    signal: 'SIGTERM',
    nodes: 2,
    reached: (id) => processesWith(`--name=tortie-${id}-etcd0`).length > 0,
  },
  {
    name: 'once an agent process runs',
    signal: 'SIGINT',
    nodes: 2,
    reached: (id) => processesWith(`--pin-root /sys/fs/bpf/tortie-${id}-n`).length > 0,
  },
];

describe('tortie lab up interrupted half way', () => {
  for (const c of cases) {
    it(`${c.signal} ${c.name}: nothing with the lab id is left`, async () => {
      const id = newLabId('li');
      ids.push(id);
      const env = { ...process.env };
      for (const k of Object.keys(env)) if (k.startsWith('TORTIE_')) delete env[k];
      const child = spawn(
        process.execPath,
        [MAIN, 'lab', 'up', '--id', id, '--nodes', String(c.nodes), ...(c.args ?? [])],
        { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let output = '';
      child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
      const exited = exitOf(child);
      await until(
        c.name,
        child,
        () => output,
        () => c.reached(id),
      );
      child.kill(c.signal);
      const code = await exited;
      expect(await leftovers(id)).toEqual([]);
      expect({ code, output }).toEqual({
        code: c.signal === 'SIGINT' ? 130 : 143,
        output: expect.stringContaining(`${c.signal}: removing the half-built lab ${id}`),
      });
    }, 180_000);
  }
});
