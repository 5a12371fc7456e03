/**
 * `tortie bench verdict` at a tiny size (rule counts 0 and 10, a few hundred test runs):
 * the table and the JSON have a row per rule count with positive, finite costs, and the
 * bpffs root it made is gone. How fast a verdict is stays with `npm run bench`.
 *
 * Needs root and `npm run build`. The bench's pin root is /sys/fs/bpf/tortie-bench-<hex>.
 */
import { describe, expect, it } from 'vitest';
import type { VerdictRow } from '../../bench/verdict.js';
import {
  bench,
  benchJson,
  benchTraces,
  exclusiveBenchRuns,
  header,
  leftSince,
  nonNegativeFinite,
  positiveFinite,
} from '../helpers/bench-cli.js';

const TINY = ['verdict', '--rules', '0,10', '--repeat', '100', '--runs', '2'];

describe('tortie bench verdict', () => {
  exclusiveBenchRuns();

  it('prints one JSON document: a row per rule count, positive costs', async () => {
    const before = benchTraces();
    const r = await benchJson<{ repeat: number; runs: number; kernel: string; rows: VerdictRow[] }>(
      TINY,
    );
    expect(r).toMatchObject({ repeat: 100, runs: 2 });
    expect(r.kernel).not.toBe('');
    expect(r.rows.map((x) => x.rules)).toEqual([0, 10]);
    for (const x of r.rows) {
      for (const v of [x.newFlowNs, x.establishedNs, x.mapEntries])
        expect(positiveFinite(v), `${x.rules} rules: ${JSON.stringify(x)}`).toBe(true);
      for (const v of [x.newFlowSpreadNs, x.establishedSpreadNs, x.compileMs])
        expect(nonNegativeFinite(v), `${x.rules} rules: ${JSON.stringify(x)}`).toBe(true);
    }
    // Ten rules of distinct peers and ports hold more policy entries than none.
    expect(r.rows[1]!.mapEntries).toBeGreaterThan(r.rows[0]!.mapEntries);
    expect(leftSince(before)).toEqual([]);
  });

  it('prints its table: the columns, then a row per rule count', async () => {
    const r = await bench(TINY);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^ns per packet, BPF_PROG_TEST_RUN repeat 100, median of 2 runs/);
    expect(lines[1]).toMatch(
      header('rules', 'new flow', 'vs first', 'established', 'vs first', 'entries', 'compile ms'),
    );
    const row =
      /^\s+(\d+)\s+([1-9]\d*)\s+(-?\d+\.\d%)\s+([1-9]\d*)\s+(-?\d+\.\d%)\s+([1-9]\d*)\s+(\d+)$/;
    expect(lines.slice(2).map((l) => row.exec(l)?.[1])).toEqual(['0', '10']);
  });
});
