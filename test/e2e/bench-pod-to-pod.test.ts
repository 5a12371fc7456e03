/**
 * `tortie bench pod-to-pod` at a tiny size: 0 rules, one run of 1 s per tool, no warm-up,
 * on one node (baseline, bpf, iptables) and across nodes (baseline, bpf, bpf-ipip,
 * iptables: one 2-node lab each). Its tables have every metric with a filled row, its
 * JSON (--out) every cell with positive, finite figures and a passed enforcement check,
 * its charts are written, and its labs are gone. After the tables, the bpf/baseline ratio
 * of every bpf and bpf-ipip cell and the goals of issue 15 (not measured: no 10,000-rule
 * cells here), in the JSON too. The dataplanes' speed stays with `npm run bench`.
 *
 * Also, without measuring: the bpf and iptables modes of its same-node lab really enforce
 * the policy it measures (allowing rule first or last: the client passes; without it:
 * blocked), so the benchmark cannot silently measure an unpoliced path.
 *
 * Needs root, sockperf, iperf3, wrk, cc and `npm run build`. Lab ids start with "bn"
 * (same node) and "bx" (across nodes).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BenchLab } from '../../bench/lab.js';
import type { PodToPodResult } from '../../bench/pod-to-pod.js';
import {
  bench,
  benchTraces,
  exclusiveBenchRuns,
  header,
  leftSince,
  outDir,
  positiveFinite,
} from '../helpers/bench-cli.js';
import { newLabId } from '../helpers/netns.js';

const METRICS = [
  'TCP request/response rate (per second, higher is better)',
  'request/response round trip p50 (µs, lower is better)',
  'request/response round trip p99 (µs, lower is better)',
  'TCP stream throughput (Gbit/s, higher is better)',
  'new TCP connections per second (higher is better)',
];

/** Every metric's table in `section`: its columns, one row "0 last" with every cell filled. */
function expectTables(section: string, modes: string[], ratios: string[]): void {
  const lines = section.split('\n');
  for (const title of METRICS) {
    const at = lines.indexOf(`${title}; median of 1 runs ± spread (max − min)`);
    expect(at, `${title}:\n${section}`).toBeGreaterThanOrEqual(0);
    expect(lines[at + 1]).toMatch(header('rules', 'allow', ...modes, ...ratios));
    const row = lines[at + 2]!.trim().split(/\s+/);
    expect(row.slice(0, 2), title).toEqual(['0', 'last']);
    const figures = row.slice(2, 2 + 2 * modes.length);
    for (let i = 0; i < modes.length; i++) {
      expect(Number(figures[2 * i]!.replace(/,/g, '')), `${title}: ${modes[i]}`).toBeGreaterThan(0);
      expect(figures[2 * i + 1]).toMatch(/^±0(\.0+)?$/); // one run: no spread
    }
    expect(row.slice(2 + 2 * modes.length), title).toHaveLength(ratios.length);
    for (const r of row.slice(2 + 2 * modes.length)) expect(r).toMatch(/^\d+\.\d\dx$/);
    expect(lines[at + 3], title).toBe('');
  }
}

describe('tortie bench pod-to-pod', () => {
  exclusiveBenchRuns();

  it('enforces the measured policy in bpf and iptables mode', async () => {
    const lab = await BenchLab.create(newLabId('bn'));
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

  it('same node and across nodes: tables, JSON and charts with every mode', async () => {
    const out = outDir('p2p');
    const before = benchTraces();
    const r = await bench(
      [
        'pod-to-pod',
        ...['--rules', '0', '--cross-rules', '0'],
        ...['--runs', '1', '--duration', '1', '--warmup', '0', '--out', out],
      ],
      180_000,
    );
    expect(r.code, r.stderr).toBe(0);
    expect(leftSince(before)).toEqual([]);

    const [same, cross] = r.stdout.split(
      '\n== across nodes (client on node 0, server on node 1)\n',
    );
    expect(same).toContain('\n== same node\n');
    expectTables(same!, ['baseline', 'bpf', 'iptables'], ['bpf/base', 'bpf/ipt']);
    expect(same).toContain(
      'enforcement check (without the allowing rule the client is blocked, with it it passes): every bpf/iptables cell',
    );
    expect(cross, r.stdout).toBeDefined();
    expectTables(
      cross!,
      ['baseline', 'bpf', 'iptables', 'bpf-ipip'],
      ['bpf/base', 'bpf/ipt', 'ipip/base'],
    );
    expect(cross).toContain('every bpf/iptables/bpf-ipip cell');
    const ratios = cross!.split('\n== bpf / baseline (median over median of 1 runs')[1];
    expect(ratios, cross).toBeDefined();
    const ratioRows = ratios!.split('\n').slice(1, 5);
    expect(ratioRows[0]).toMatch(
      header('where', 'path', 'rules', 'allow', 'req/resp', 'new conn', 'stream'),
    );
    expect(ratioRows.slice(1)).toEqual([
      expect.stringMatching(/^same node\s+bpf\s+0 last(\s+\d+\.\d\dx){3}$/),
      expect.stringMatching(/^across nodes\s+bpf, encap none\s+0 last(\s+\d+\.\d\dx){3}$/),
      expect.stringMatching(/^across nodes\s+bpf, IPIP\s+0 last(\s+\d+\.\d\dx){3}$/),
    ]);
    const goalLines = r.stdout.split('\n== goals of issue 15\n')[1]?.split('\n').slice(0, 6);
    expect(goalLines, r.stdout).toHaveLength(6);
    for (const g of goalLines!) expect(g).toMatch(/^not measured .*10,000 rules: .* not measured/);

    const doc = JSON.parse(readFileSync(join(out, 'pod-to-pod.json'), 'utf8')) as PodToPodResult;
    expect(doc.benchmark).toBe('pod-to-pod');
    expect(doc.topology).toBe('same-node and cross-node');
    expect(doc.machine.cores).toBeGreaterThan(0);
    expect(doc.options).toMatchObject({ rules: [0], crossRules: [0], runs: 1, duration: 1 });
    expect(doc.crossNodeLabs.map((l) => [l.mode, l.error])).toEqual([
      ['baseline', undefined],
      ['bpf', undefined],
      ['bpf-ipip', undefined],
      ['iptables', undefined],
    ]);
    const key = (c: PodToPodResult['cells'][number]) => `${c.mode}/${c.rules}/${c.placement}`;
    expect(doc.cells.map(key)).toEqual(['baseline/0/last', 'bpf/0/last', 'iptables/0/last']);
    expect(doc.crossNodeCells.map(key)).toEqual([
      'baseline/0/last',
      'bpf/0/last',
      'bpf-ipip/0/last',
      'iptables/0/last',
    ]);
    for (const c of [...doc.cells, ...doc.crossNodeCells]) {
      for (const s of [c.rr.rate, c.rr.p50Us, c.rr.p99Us, c.stream.gbps, c.conn.rate]) {
        expect(s.runs).toHaveLength(1);
        expect(positiveFinite(s.median), `${key(c)}: ${JSON.stringify(s)}`).toBe(true);
      }
      // The run started with no TIME_WAIT socket left by the runs before (counted here).
      expect(c.conn.timeWaitCleared, key(c)).toHaveLength(1);
      // At 0 rules the check is: a policy selecting the server with no ingress rule blocks
      // the client; without it, the client passes.
      if (c.mode !== 'baseline')
        expect(c.enforcement, key(c)).toEqual({ allowedWithRule: true, blockedWithoutRule: true });
    }

    expect(doc.ratios.map((q) => `${q.where}/${q.path}/${q.rules}/${q.placement}`)).toEqual([
      'same node/bpf/0/last',
      'across nodes/bpf/0/last',
      'across nodes/bpf-ipip/0/last',
    ]);
    for (const q of doc.ratios)
      for (const v of [q.rr, q.conn, q.stream])
        expect(positiveFinite(v), JSON.stringify(q)).toBe(true);
    expect(doc.goals.map((g) => g.status)).toEqual(Array(6).fill('not measured'));
    for (const set of ['pod-to-pod', 'pod-to-pod-cross'])
      for (const m of ['rr', 'p50', 'p99', 'stream', 'conn'])
        expect(readFileSync(join(out, `${set}-${m}.svg`), 'utf8')).toMatch(/^<svg [^]*<\/svg>\n?$/);
  }, 240_000);
});
