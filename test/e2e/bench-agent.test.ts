/**
 * `tortie bench agent` at a tiny size (4 endpoints, 4 rules, a burst of 2, half a second
 * idle): its table has a row per dataplane with every column filled, its JSON (--out) the
 * same rows with positive, finite memory and time figures, the iptables row really
 * programmed iptables, and its labs are gone. Memory and CPU targets stay with
 * `npm run bench`.
 *
 * Needs root and `npm run build`. Lab ids start with "bn".
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { AgentResult } from '../../bench/agent.js';
import {
  bench,
  benchTraces,
  exclusiveBenchRuns,
  header,
  leftSince,
  outDir,
  nonNegativeFinite,
  positiveFinite,
} from '../helpers/bench-cli.js';

describe('tortie bench agent', () => {
  exclusiveBenchRuns();

  it('prints a row per dataplane and writes its JSON and chart', async () => {
    const out = outDir('agent');
    const before = benchTraces();
    const r = await bench([
      'agent',
      ...['--endpoints', '4', '--veths', '2', '--rules', '4', '--policies', '2', '--burst', '2'],
      ...['--settle', '0', '--idle', '0.5', '--out', out],
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(leftSince(before)).toEqual([]);

    const lines = r.stdout.split('\n');
    const top = lines.indexOf(
      'agent process, 4 endpoints (2 local veths), 4 rules in 2 policies, burst of 2 changes',
    );
    expect(top, r.stdout).toBeGreaterThanOrEqual(0);
    expect(lines[top + 1]).toMatch(
      header(
        'dataplane',
        'RSS start',
        'RSS idle',
        'peak',
        'sync s',
        'sync cpu',
        'idle cpu%',
        'burst s',
        'burst cpu s',
        'cpu%',
      ),
    );
    const rows = lines.slice(top + 2, top + 4).map((l) => l.trim().split(/\s+/));
    expect(rows.map((x) => x[0])).toEqual(['bpf', 'iptables']);
    for (const row of rows) {
      expect(row).toHaveLength(10);
      for (const v of row.slice(1)) expect(v).toMatch(/^[\d,]+(\.\d)?$/);
    }
    expect(lines[top + 4]).toBe('(RSS in MiB)');

    const doc = JSON.parse(readFileSync(join(out, 'agent.json'), 'utf8')) as AgentResult;
    expect(doc.benchmark).toBe('agent');
    expect(doc.options).toMatchObject({ endpoints: 4, rules: 4, burst: 2, idleSeconds: 0.5 });
    expect(doc.rows.map((x) => x.dataplane)).toEqual(['bpf', 'iptables']);
    for (const x of doc.rows) {
      expect(x.unavailable).toBeUndefined();
      for (const v of [
        x.rssStartKb,
        x.rssIdleKb,
        x.rssBurstPeakKb,
        x.rssAfterBurstKb,
        x.syncSeconds,
        x.burstSeconds,
      ])
        expect(positiveFinite(v), `${x.dataplane}: ${JSON.stringify(x)}`).toBe(true);
      for (const v of [x.syncCpuSeconds, x.idleCpuPercent, x.burstCpuSeconds, x.burstCpuPercent])
        expect(nonNegativeFinite(v), `${x.dataplane}: ${JSON.stringify(x)}`).toBe(true);
    }
    expect(doc.rows[1]!.dataplaneCheck).toMatch(/^[1-9]\d* rules in the node's filter table$/);
    expect(readFileSync(join(out, 'agent.svg'), 'utf8')).toMatch(/^<svg [^]*<\/svg>\n?$/);
  });
});
