/**
 * `tortie bench update` at tiny sizes: one JSON document, a row per mode and rule count,
 * positive finite times for every change (each observed by the probe in the client pod:
 * the bench itself checks the client is blocked before every change and after its undo).
 *
 * Needs root and `npm run build`. Lab ids start with "bn".
 */
import { describe, expect, it } from 'vitest';
import type { UpdateResult } from '../../bench/update.js';
import { benchJson, positiveFinite } from '../helpers/bench-cli.js';

describe('bench update', () => {
  it('times each change to enforcement, bpf and iptables', async () => {
    const r = await benchJson<UpdateResult>(['update', '--rules', '0,100', '--changes', '2']);
    expect(r.benchmark).toBe('update');
    expect(r.rows.map((x) => `${x.mode}/${x.rules}`)).toEqual([
      'bpf/0',
      'bpf/100',
      'iptables/0',
      'iptables/100',
    ]);
    for (const x of r.rows) {
      expect(x.samplesMs).toHaveLength(2);
      for (const v of [...x.samplesMs, x.p50Ms, x.p99Ms, x.programMs])
        expect(positiveFinite(v), `${x.mode} ${x.rules}: ${v}`).toBe(true);
    }
    expect(r.goal.text).toMatch(/10 ms/);
  });
});
