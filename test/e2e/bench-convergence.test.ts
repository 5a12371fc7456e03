/**
 * `tortie bench convergence` at its smallest size: one run of one cell — a 2-node BGP mesh
 * lab (real BIRD, etcd, agent processes), a third node joins with a pod. `--json` reports
 * that run with positive, finite figures and the sessions of a mesh of three; nothing of
 * the lab is left. A bad size is refused with exit 2 before anything is built. How fast a
 * cluster converges stays with `npm run bench`.
 *
 * Needs root, /usr/sbin/bird, and `npm run build` first. The bench's lab ids start with "cv".
 */
import { describe, expect, it } from 'vitest';
import type { ConvergenceBenchResult } from '../../bench/convergence.js';
import {
  bench,
  benchJson,
  benchTraces,
  exclusiveBenchRuns,
  leftSince,
  nonNegativeFinite,
  positiveFinite,
} from '../helpers/bench-cli.js';

describe('tortie bench convergence', () => {
  exclusiveBenchRuns();

  it('3 nodes, mesh, 1 run: one JSON document with positive, finite figures', async () => {
    const before = benchTraces();
    const doc = await benchJson<ConvergenceBenchResult>([
      'convergence',
      ...['--nodes', '3', '--topologies', 'mesh', '--runs', '1'],
    ]);
    expect(leftSince(before)).toEqual([]);
    expect(doc.runs).toBe(1);
    expect(doc.cores).toBeGreaterThan(0);
    expect(doc.cells).toHaveLength(1);
    const [cell] = doc.cells;
    expect(cell).toMatchObject({ nodes: 3, topology: 'mesh' });
    expect(cell!.error).toBeUndefined();
    expect(cell!.runs).toHaveLength(1);
    const [run] = cell!.runs;
    // From ADD can legitimately be 0: BIRD may have the block in every kernel, and the
    // agents in their maps, before ADD returns.
    expect(nonNegativeFinite(run!.fromAddMs), JSON.stringify(run)).toBe(true);
    for (const v of [run!.fromAgentMs, run!.buildMs, run!.agentReadyMs, run!.addMs])
      expect(positiveFinite(v), JSON.stringify(run)).toBe(true);
    expect(cell!.fromAgentP50Ms).toBe(run!.fromAgentMs);
    // From agent start covers the agent's start and the ADD, so it is the longer one.
    expect(run!.fromAgentMs).toBeGreaterThan(run!.fromAddMs);
    // A full mesh of three: every node has two sessions, all of them mesh sessions.
    expect(run!.sessionsNew).toBe(2);
    expect(run!.sessionsMax).toBe(2);
    expect(run!.meshSessions).toBe(6);
  });

  it('refuses a lab size below 3 (exit 2), building nothing', async () => {
    const r = await bench(['convergence', '--nodes', '2', '--json']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--nodes: "2" is not a lab size');
    expect(r.stdout).toBe('');
  });
});
