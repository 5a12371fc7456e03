/**
 * `tortie bench cni` at its smallest size (one pod one at a time, two at once): a one-node
 * lab whose agent runs as a process and programs each endpoint before the compiled
 * plugin's ADD returns, beside bridge + host-local. It prints one JSON document with a row
 * per plugin and round, and removes everything it made.
 *
 * Needs root, /usr/lib/cni/{bridge,host-local}, etcd and `npm run build`. Its lab is
 * "bn<hex>".
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { CniBenchResult } from '../../bench/cni.js';
import {
  bench,
  benchTraces,
  exclusiveBenchRuns,
  leftSince,
  positiveFinite,
  type BenchRun,
} from '../helpers/bench-cli.js';

describe('tortie bench cni', () => {
  exclusiveBenchRuns();

  it('refuses a pod count of 0 (exit 2)', async () => {
    const r = await bench(['cni', '--pods', '0']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`argument '0' is invalid. "0" is not a positive integer`);
    expect(r.stdout).toBe('');
  });

  describe('one pod, --json', () => {
    let run: BenchRun;
    let left: string[];
    beforeAll(async () => {
      const before = benchTraces();
      run = await bench(['cni', '--pods', '1', '--concurrent', '2', '--json']);
      left = leftSince(before);
    });

    it('prints one JSON document: a row per plugin and round, positive latencies; nothing left', () => {
      expect(run.code, run.stderr).toBe(0);
      const doc = JSON.parse(run.stdout) as CniBenchResult;
      expect(doc.pods).toBe(1);
      expect(doc.concurrent).toBe(2);
      expect(doc.rows.map((r) => [r.plugin, r.concurrency])).toEqual([
        ['tortie', 1],
        ['bridge + host-local', 1],
        ['tortie', 2],
        ['bridge + host-local', 2],
      ]);
      for (const r of doc.rows)
        for (const v of [r.addP50Ms, r.addP99Ms, r.delP50Ms, r.delP99Ms, r.addMeanMs, r.delMeanMs])
          expect(positiveFinite(v), `${r.plugin}: ${JSON.stringify(r)}`).toBe(true);
      for (const v of [doc.tortieVersionP50Ms, doc.nsenterP50Ms])
        expect(positiveFinite(v)).toBe(true);
      expect(left).toEqual([]);
    });
  });
});
