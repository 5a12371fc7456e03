/**
 * `tortie bench pod-to-pod` at tiny sizes: the JSON shape, positive finite figures, the
 * charts — and that the bpf and iptables modes of its lab really enforce the policy it
 * measures (allowing rule first or last: the client passes; without it: blocked), so the
 * benchmark cannot silently measure an unpoliced path.
 *
 * Across nodes (--cross-only, 0 rules): every mode's lab (bench/cross-lab.ts) gives finite
 * positive figures, the policed ones pass the enforcement check, nothing is left behind.
 *
 * Needs root, sockperf, iperf3, wrk, cc and `npm run build`. Lab ids start with "bn"
 * (same node) and "bx" (across nodes).
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { benchId } from '../../bench/common.js';
import { BenchLab } from '../../bench/lab.js';
import type { PodToPodResult } from '../../bench/pod-to-pod.js';
import { benchJson, positiveFinite } from '../helpers/bench-cli.js';

const out = mkdtempSync(join(tmpdir(), 'tortie-bench-p2p-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

describe('bench pod-to-pod', () => {
  it('enforces the measured policy in bpf and iptables mode', async () => {
    const lab = await BenchLab.create(benchId());
    try {
      expect(await lab.probe()).toBe(true); // baseline
      for (const mode of ['bpf', 'iptables'] as const) {
        for (const placement of ['last', 'first'] as const) {
          await lab.set(mode, { rules: 100, placement });
          expect(await lab.probe(1000), `${mode} ${placement}: allowed`).toBe(true);
          await lab.set(mode, { rules: 100, placement, allow: false });
          expect(await lab.probe(300), `${mode} ${placement}: blocked`).toBe(false);
        }
        await lab.leave();
        expect(await lab.probe(), `${mode} removed: baseline again`).toBe(true);
      }
    } finally {
      await lab.destroy();
    }
  });

  it('prints one JSON document with every mode and positive figures', async () => {
    const r = await benchJson<PodToPodResult>([
      'pod-to-pod',
      '--rules',
      '0,100',
      '--cross-rules',
      'none',
      '--runs',
      '1',
      '--duration',
      '1',
      '--out',
      out,
    ]);
    expect(r.benchmark).toBe('pod-to-pod');
    expect(r.machine.cores).toBeGreaterThan(0);
    const keys = r.cells.map((c) => `${c.mode}/${c.rules}/${c.placement}`).sort();
    expect(keys).toEqual(
      [
        'baseline/0/last',
        'baseline/100/last',
        'bpf/0/last',
        'bpf/100/first',
        'bpf/100/last',
        'iptables/0/last',
        'iptables/100/first',
        'iptables/100/last',
      ].sort(),
    );
    for (const c of r.cells) {
      for (const s of [c.rr.rate, c.rr.p50Us, c.rr.p99Us, c.stream.gbps, c.conn.rate]) {
        expect(s.runs).toHaveLength(1);
        expect(positiveFinite(s.median), `${c.mode} ${c.rules}: ${JSON.stringify(s)}`).toBe(true);
      }
      if (c.mode !== 'baseline')
        expect(c.enforcement).toEqual({ allowedWithRule: true, blockedWithoutRule: true });
    }
    for (const f of ['pod-to-pod.json', 'pod-to-pod-rr.svg', 'pod-to-pod-conn.svg']) {
      expect(existsSync(join(out, f))).toBe(true);
    }
    expect(readFileSync(join(out, 'pod-to-pod-rr.svg'), 'utf8')).toMatch(/^<svg [^]*<\/svg>\n$/);
  }, 300_000);

  it('measures across nodes: every mode, positive figures, the policy enforced', async () => {
    const crossOut = join(out, 'cross');
    const r = await benchJson<PodToPodResult>(
      [
        'pod-to-pod',
        '--cross-only',
        '--cross-rules',
        '0',
        '--runs',
        '1',
        '--duration',
        '1',
        '--out',
        crossOut,
      ],
      400_000,
    );
    expect(r.cells).toEqual([]);
    expect(r.crossNodeLabs.map((l) => [l.mode, l.error])).toEqual([
      ['baseline', undefined],
      ['bpf', undefined],
      ['bpf-ipip', undefined],
      ['iptables', undefined],
    ]);
    const keys = r.crossNodeCells.map((c) => `${c.mode}/${c.rules}/${c.placement}`).sort();
    expect(keys).toEqual(
      ['baseline/0/last', 'bpf/0/last', 'bpf-ipip/0/last', 'iptables/0/last'].sort(),
    );
    for (const c of r.crossNodeCells) {
      for (const s of [c.rr.rate, c.rr.p50Us, c.rr.p99Us, c.stream.gbps, c.conn.rate]) {
        expect(s.runs).toHaveLength(1);
        expect(positiveFinite(s.median), `${c.mode} ${c.rules}: ${JSON.stringify(s)}`).toBe(true);
      }
      // At 0 rules the check is: a policy selecting the server with no ingress rule blocks
      // the client; without it, the client passes.
      if (c.mode !== 'baseline')
        expect(c.enforcement, c.mode).toEqual({ allowedWithRule: true, blockedWithoutRule: true });
    }
    expect(existsSync(join(crossOut, 'pod-to-pod-cross-rr.svg'))).toBe(true);
    // Nothing of the cross-node labs is left (their namespaces are "tortie-bx…").
    const left = existsSync('/run/netns')
      ? readdirSync('/run/netns').filter((n) => n.startsWith('tortie-bx'))
      : [];
    expect(left).toEqual([]);
  }, 450_000);
});
