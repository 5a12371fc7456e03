import { describe, expect, it } from 'vitest';
import { barChart, lineChart, niceScale } from '../../bench/chart.js';
import { cniGoals, cniTable, type CniBenchResult } from '../../bench/cni.js';
import { percentile, stat } from '../../bench/common.js';
import type { Placement } from '../../bench/lab.js';
import { podToPodGoals, podToPodRatios, podToPodSummary } from '../../bench/pod-to-pod-summary.js';
import { parseSockperf, parseWrk, type Cell, type PodToPodResult } from '../../bench/pod-to-pod.js';

describe('bench helpers', () => {
  it('draws bar and line charts as standalone SVG', () => {
    const spec = {
      title: 'a <b>',
      yLabel: '/s',
      categories: ['0', '100'],
      series: [
        { name: 'bpf', values: [10, 20] },
        { name: 'iptables', values: [5, NaN] },
      ],
    };
    for (const svg of [barChart(spec), lineChart(spec)]) {
      expect(svg).toMatch(/^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
      expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
      expect(svg).toContain('a &lt;b&gt;');
      expect(svg).not.toContain('NaN');
    }
    expect(barChart(spec).match(/<rect x=/g)).toHaveLength(3 + 2); // 3 bars + 2 legend keys
    expect(niceScale(73)).toEqual({ max: 80, step: 20 });
  });

  it('parses sockperf and wrk output; percentiles and spreads', () => {
    const sp = parseSockperf(
      'sockperf: [Valid Duration] RunTime=1.550 sec; SentMessages=16149; ReceivedMessages=15500\n' +
        'sockperf: ---> percentile 99.000 = 2059.677\nsockperf: ---> percentile 50.000 =   30.146\n',
    );
    expect(sp).toEqual({ rate: 10000, p50Us: 30.146, p99Us: 2059.677 });
    expect(
      parseWrk('Requests/sec:   4019.50\n  Socket errors: connect 1, read 9, write 0, timeout 2\n'),
    ).toEqual({
      rate: 4019.5,
      errors: 3,
    });
    expect(percentile([5, 1, 4, 2, 3], 50)).toBe(3);
    expect(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 99)).toBe(10);
    expect(stat([3, 1, 2])).toMatchObject({ median: 2, spread: 2 });
  });
});

describe('bench chart log scale', () => {
  it('labels decades and keeps every point inside the plot', () => {
    const svg = lineChart({
      title: 't',
      yLabel: 'ms',
      log: true,
      categories: ['0', '10000'],
      series: [{ name: 'bpf', values: [0.9, 330] }],
    });
    expect(svg).toContain('(log scale)');
    for (const t of ['>0.1<', '>1<', '>10<', '>100<', '>1k<']) expect(svg).toContain(t);
    const ys = [...svg.matchAll(/<circle cx="[\d.]+" cy="([\d.]+)"/g)].map((m) => Number(m[1]));
    expect(ys).toHaveLength(2);
    for (const v of ys) expect(v).toBeGreaterThanOrEqual(36);
  });
});

describe('pod-to-pod goals', () => {
  const cell = (mode: Cell['mode'], rules: number, placement: Placement, conn: number): Cell => ({
    mode,
    rules,
    placement,
    rr: { rate: stat([100]), p50Us: stat([10]), p99Us: stat([20]) },
    stream: { gbps: stat([10]) },
    conn: { rate: stat([conn]), errors: 0 },
  });
  const result = (cells: Cell[], crossNodeCells: Cell[]) =>
    ({ options: { runs: 1 }, cells, crossNodeCells }) as unknown as PodToPodResult;

  it('judges each goal on the worst placement at 10,000 rules: met at the ratio, missed below', () => {
    const r = result(
      [
        cell('baseline', 10_000, 'last', 1000),
        cell('bpf', 10_000, 'last', 1000),
        cell('bpf', 10_000, 'first', 1200),
      ],
      [
        cell('baseline', 10_000, 'last', 1000),
        cell('bpf', 10_000, 'last', 990),
        cell('bpf-ipip', 10_000, 'last', 950),
      ],
    );
    const status = Object.fromEntries(
      podToPodGoals(r).map((g) => [`${g.where}/${g.path}/${g.metric}`, [g.status, g.ratio]]),
    );
    expect(status).toEqual({
      'across nodes/bpf/rr': ['met', 1],
      'across nodes/bpf/conn': ['missed', 0.99],
      'across nodes/bpf-ipip/rr': ['met', 1],
      'across nodes/bpf-ipip/conn': ['met', 0.95],
      'same node/bpf/rr': ['met', 1],
      'same node/bpf/conn': ['met', 1], // rule first (1.2×) does not hide rule last (1.0×)
    });
    expect(podToPodRatios(r).map((q) => [q.where, q.path, q.placement, q.conn])).toEqual([
      ['same node', 'bpf', 'last', 1],
      ['same node', 'bpf', 'first', 1.2],
      ['across nodes', 'bpf', 'last', 0.99],
      ['across nodes', 'bpf-ipip', 'last', 0.95],
    ]);
    const text = podToPodSummary(r);
    expect(text).toContain(
      'missed       across nodes, bpf, encap none, 10,000 rules: bpf ≥ 1.00× baseline on new connections: 0.99× — missed by 1%',
    );
  });

  it('says "not measured" without 10,000-rule cells', () => {
    const r = result([cell('baseline', 0, 'last', 1000), cell('bpf', 0, 'last', 900)], []);
    expect(podToPodGoals(r).map((g) => g.status)).toEqual(Array(6).fill('not measured'));
    expect(podToPodRatios(r)).toEqual([
      { where: 'same node', path: 'bpf', rules: 0, placement: 'last', rr: 1, conn: 0.9, stream: 1 },
    ]);
  });

  it('judges the CNI goal per call kind and round, against the reference of the same round', () => {
    const row = (plugin: string, concurrency: number, add: number, del: number) => ({
      plugin,
      concurrency,
      addP50Ms: add,
      addP99Ms: add * 2,
      delP50Ms: del,
      delP99Ms: del * 2,
      addMeanMs: add,
      delMeanMs: del,
    });
    const r: CniBenchResult = {
      pods: 100,
      concurrent: 20,
      rows: [
        row('tortie', 1, 18, 31),
        row('bridge + host-local', 1, 19.9, 30.4),
        row('tortie', 20, 100, 90),
        row('bridge + host-local', 20, 121.9, 98.1),
      ],
      tortieVersionP50Ms: 2.6,
      nsenterP50Ms: 3,
    };
    expect(cniGoals(r)).toEqual([
      'CNI ADD p50 ≤ bridge + host-local, one at a time: 18.0 ms against 19.9 ms (0.90×) — met',
      'CNI DEL p50 ≤ bridge + host-local, one at a time: 31.0 ms against 30.4 ms (1.02×) — missed',
      'CNI ADD p50 ≤ bridge + host-local, 20 at once: 100.0 ms against 121.9 ms (0.82×) — met',
      'CNI DEL p50 ≤ bridge + host-local, 20 at once: 90.0 ms against 98.1 ms (0.92×) — met',
    ]);
    expect(cniTable(r).split('\n')[4]).toMatch(/^tortie\s+20 at once\s+100\.0\s+200\.0\s+90\.0/);
  });
});
