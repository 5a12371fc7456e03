/**
 * `tortie bench convergence` through the built CLI: a 2-node BGP mesh lab (real BIRD,
 * etcd, agent processes), a third node joins with a pod, `--json` reports one run whose
 * convergence figures are positive and finite; nothing of the lab is left. A bad size is
 * refused with exit 2 before anything is built.
 *
 * Needs root, /usr/sbin/bird, and `npm run build` first. The bench's lab ids start with "cv".
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ConvergenceBenchResult } from '../../bench/convergence.js';

const MAIN = join(import.meta.dirname, '..', '..', 'dist', 'src', 'cli', 'main.js');

function tortie(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('TORTIE_')),
  );
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [MAIN, ...args],
      { env, timeout: 90_000, maxBuffer: 1 << 20 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

function leftovers(): string[] {
  const under = (dir: string) =>
    existsSync(dir) ? readdirSync(dir).filter((n) => n.startsWith('tortie-cv')) : [];
  return [
    ...under('/run/netns'),
    ...under('/sys/fs/bpf'),
    ...readdirSync(tmpdir()).filter((n) => /^tortie-(cluster|etcd)-cv/.test(n)),
  ];
}

describe('tortie bench convergence', () => {
  it('3 nodes, mesh, 1 run: one JSON document with positive, finite figures', async () => {
    const r = await tortie([
      'bench',
      'convergence',
      '--nodes',
      '3',
      '--topologies',
      'mesh',
      '--runs',
      '1',
      '--json',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as ConvergenceBenchResult;
    console.log(`[bench-convergence] ${r.stdout.trim()}`);
    expect(doc.runs).toBe(1);
    expect(doc.cores).toBeGreaterThan(0);
    expect(doc.cells).toHaveLength(1);
    const [cell] = doc.cells;
    expect(cell!.nodes).toBe(3);
    expect(cell!.topology).toBe('mesh');
    expect(cell!.error).toBeUndefined();
    expect(cell!.runs).toHaveLength(1);
    const [run] = cell!.runs;
    // From ADD can legitimately be ~0: BIRD may have the block in every kernel before ADD
    // returns, and each agent's once-a-second read may have put it in the map already.
    expect(Number.isFinite(run!.fromAddMs)).toBe(true);
    expect(run!.fromAddMs).toBeGreaterThanOrEqual(0);
    for (const v of [
      run!.fromAgentMs,
      run!.buildMs,
      run!.agentReadyMs,
      run!.addMs,
      cell!.fromAgentP50Ms!,
    ]) {
      expect(Number.isFinite(v)).toBe(true);
      expect(v).toBeGreaterThan(0);
    }
    // From agent start covers the agent's start and the ADD, so it is the longer one.
    expect(run!.fromAgentMs).toBeGreaterThan(run!.fromAddMs);
    expect(run!.fromAddMs).toBeLessThan(doc.timeoutMs);
    // A full mesh of three: every node has two sessions, all of them mesh sessions.
    expect(run!.sessionsNew).toBe(2);
    expect(run!.sessionsMax).toBe(2);
    expect(run!.meshSessions).toBe(6);
    expect(leftovers()).toEqual([]);
  }, 60_000);

  it('refuses a lab size below 3 (exit 2), building nothing', async () => {
    const r = await tortie(['bench', 'convergence', '--nodes', '2', '--json']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--nodes: "2" is not a lab size');
    expect(r.stdout).toBe('');
  }, 20_000);
});
