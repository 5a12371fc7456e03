/**
 * `tortie node checksystem` through the built CLI, against the real kernel (nothing is
 * mocked: the kernel features are checked by doing them in a throwaway namespace):
 * on this machine (scripts/install.sh run) every program and every feature is there;
 * a program taken off PATH is reported with its Debian package — a warning when only
 * the tests need it, an error (exit 1) when a node does or `--for` asks for its part —
 * and the kernel features that need it to be checked say so; the throwaway namespace
 * is gone afterwards, and one a killed check left behind is removed by the next; the
 * lab's preflight checks only the kernel features a lab needs, once per process.
 *
 * Needs root and `npx tsc -p tsconfig.build.json` first.
 */
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  COMMANDS,
  KERNEL_FEATURES,
  preflightLab,
  whichCommand,
  type SystemReport,
} from '../../src/preflight/index.js';
import { packageRoot } from '../../src/util/package-root.js';
import { newRunId } from '../helpers/netns.js';

const MAIN = join(packageRoot(), 'dist', 'bin', 'tortie.js');
const isRoot = process.getuid?.() === 0;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  pid: number;
}

function tortie(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [MAIN, ...args],
      { env, timeout: 60_000, maxBuffer: 1 << 24 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
        resolve({ code, stdout, stderr, pid: child.pid! });
      },
    );
  });
}

function report(r: Run): SystemReport {
  try {
    return JSON.parse(r.stdout) as SystemReport;
  } catch {
    throw new Error(`not JSON (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  }
}

function checkNamespaces(): string[] {
  try {
    return readdirSync('/run/netns').filter((n) => n.startsWith('tortie-chk-'));
  } catch {
    return [];
  }
}

/**
 * A PATH of one directory holding a link to every program of the table found on this
 * machine's PATH, except `without`.
 */
const runId = newRunId();
const pathDirs: string[] = [];
function pathWithout(...without: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), `tortie-checksystem-${runId}-path-`));
  pathDirs.push(dir);
  for (const { command } of COMMANDS) {
    if (command.startsWith('/') || without.includes(command)) continue;
    const found = whichCommand(command, process.env.PATH ?? '');
    if (found !== undefined) symlinkSync(found, join(dir, command));
  }
  return dir;
}
afterAll(() => {
  for (const d of pathDirs) rmSync(d, { recursive: true, force: true });
});

describe.skipIf(!isRoot)('tortie node checksystem', () => {
  it('finds every program and kernel feature on this machine', async () => {
    const r = await tortie(['node', 'checksystem', '--json', '--for', 'all']);
    const rep = report(r);
    const notOk = rep.items.filter((i) => i.status !== 'ok');
    expect(notOk, JSON.stringify(notOk, null, 2)).toEqual([]);
    expect(r.code).toBe(0);
    expect(rep.ok).toBe(true);
    expect(rep.required).toEqual(['core', 'lab', 'tests', 'bench', 'build']);
    // Every row of the table was looked at, every kernel feature was checked.
    expect(rep.items.filter((i) => i.kind === 'command').map((i) => i.name)).toEqual(
      COMMANDS.map((c) => c.command),
    );
    expect(rep.items.filter((i) => i.kind === 'kernel').map((i) => i.name)).toEqual(
      KERNEL_FEATURES.map((f) => f.id),
    );
    // The throwaway namespace is gone.
    expect(checkNamespaces().filter((n) => n.startsWith(`tortie-chk-${r.pid}-`))).toEqual([]);
  });

  it('prints one line per item and a verdict', async () => {
    const r = await tortie(['node', 'checksystem']);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toMatch(/^ITEM\s+NEEDED BY\s+STATUS\s+WHAT TO DO$/);
    expect(lines.find((l) => l.startsWith('veth links'))).toMatch(/\bok$/);
    expect(lines.find((l) => l.startsWith('ipset (command)'))).toMatch(/\bok$/);
    expect(r.stdout).toMatch(/^everything core, lab needs is here$/m);
  });

  it('reports a program only the tests need as a warning naming its package, an error with --for tests', async () => {
    const env = { ...process.env, PATH: pathWithout('tcpdump') };
    const r = await tortie(['node', 'checksystem', '--json'], env);
    const rep = report(r);
    expect(rep.items.find((i) => i.name === 'tcpdump')).toMatchObject({
      status: 'warn',
      package: 'tcpdump',
      problem: 'not on PATH',
      fix: 'apt-get install -y tcpdump',
    });
    expect(rep.missingPackages).toEqual(['tcpdump']);
    expect(rep.ok).toBe(true);
    expect(r.code).toBe(0);
    // The kernel checks ran with the programs they need from this PATH.
    expect(rep.items.filter((i) => i.kind === 'kernel' && i.status !== 'ok')).toEqual([]);

    const strict = await tortie(['node', 'checksystem', '--for', 'tests'], env);
    expect(strict.code).toBe(1);
    expect(strict.stdout).toMatch(
      /^tcpdump \(command\)\s+tests\s+MISSING\s+not on PATH: apt-get install -y tcpdump$/m,
    );
    expect(strict.stdout).toMatch(/^install: apt-get install -y tcpdump$/m);
  });

  it('fails on a program a node needs and says which kernel checks it kept from running', async () => {
    const r = await tortie(['node', 'checksystem', '--json'], {
      ...process.env,
      PATH: pathWithout('ipset'),
    });
    const rep = report(r);
    expect(r.code).toBe(1);
    expect(rep.ok).toBe(false);
    expect(rep.items.find((i) => i.name === 'ipset')).toMatchObject({
      kind: 'command',
      status: 'missing',
      fix: 'apt-get install -y ipset',
    });
    for (const id of ['ipset-hash-net', 'ipset-hash-ip-port'])
      expect(rep.items.find((i) => i.name === id)).toMatchObject({
        status: 'skipped',
        detail: 'not checked: needs ipset (apt-get install ipset)',
      });
    expect(rep.items.find((i) => i.name === 'xt-set')?.status).toBe('skipped');
    // What does not need ipset was still checked.
    expect(rep.items.find((i) => i.name === 'xt-conntrack')?.status).toBe('ok');
    expect(rep.items.find((i) => i.name === 'cls-bpf')?.status).toBe('ok');
  });

  it('removes a throwaway namespace a killed check left behind', async () => {
    const gone = spawnSync(process.execPath, ['-e', '0']).pid; // exited: its pid is free
    const stale = `tortie-chk-${gone}-0d0d0d`;
    expect(spawnSync('ip', ['netns', 'add', stale]).status).toBe(0);
    try {
      const r = await tortie(['node', 'checksystem', '--json']);
      expect(r.code, r.stderr).toBe(0);
      expect(checkNamespaces()).not.toContain(stale);
    } finally {
      spawnSync('ip', ['netns', 'delete', stale]);
    }
  });

  it("the lab's preflight checks only what a lab needs, once per process", async () => {
    const rep = await preflightLab('lab test');
    expect(rep?.ok).toBe(true);
    expect(rep!.items.map((i) => i.name)).toContain('cls-bpf');
    expect(rep!.items.map((i) => i.name)).not.toContain('xdp-drv'); // only the tests use XDP
    // No program look-ups: a lab refuses only over the kernel (how long it takes is a
    // figure for the benchmarks' notes, not an assertion).
    expect(rep!.items.every((i) => i.kind !== 'command')).toBe(true);
    // Once passed, later labs of the process do not check again.
    expect(await preflightLab('lab test')).toBeUndefined();
  });
});
