/**
 * `tortie bench agent` at tiny sizes: one JSON document, a row per dataplane, positive
 * finite memory and CPU figures, and the iptables row really programmed iptables.
 *
 * Needs root and `npm run build`. Lab ids start with "bn".
 */
import { describe, expect, it } from 'vitest';
import type { AgentResult } from '../../bench/agent.js';
import { benchJson, positiveFinite } from '../helpers/bench-cli.js';

describe('bench agent', () => {
  it('measures the agent process in both dataplanes', async () => {
    const r = await benchJson<AgentResult>([
      'agent',
      '--endpoints',
      '40',
      '--veths',
      '3',
      '--rules',
      '100',
      '--policies',
      '5',
      '--burst',
      '5',
    ]);
    expect(r.benchmark).toBe('agent');
    expect(r.rows.map((x) => x.dataplane)).toEqual(['bpf', 'iptables']);
    for (const x of r.rows) {
      expect(x.unavailable).toBeUndefined();
      for (const v of [x.rssStartKb, x.rssIdleKb, x.rssBurstPeakKb, x.syncSeconds, x.burstSeconds])
        expect(positiveFinite(v), `${x.dataplane}: ${v}`).toBe(true);
      expect(x.burstCpuSeconds).toBeGreaterThanOrEqual(0);
    }
    expect(r.rows[1]!.dataplaneCheck).toMatch(/^[1-9]\d* rules/);
  });
});
