/**
 * `tortie bench update` at a tiny size (0 and 10 rules, 2 changes a cell): its table has a
 * row per rule count with every bpf and iptables column filled, its JSON (--out) a row per
 * mode and rule count with a positive, finite time for every change (each seen by the
 * probe in the client pod; the bench itself checks the client is blocked before every
 * change and after its undo), its goal line says "not measured", and its lab is gone. The
 * goal itself (p50 < 10 ms, p99 < 25 ms at 10,000 rules) stays with `npm run bench`.
 *
 * Needs root and `npm run build`. Lab ids start with "bn".
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { UpdateResult } from '../../bench/update.js';
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

describe('tortie bench update', () => {
  exclusiveBenchRuns();

  it('times each change to enforcement, bpf and iptables: table, JSON and chart', async () => {
    const out = outDir('update');
    const before = benchTraces();
    const r = await bench(['update', '--rules', '0,10', '--changes', '2', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(leftSince(before)).toEqual([]);

    const lines = r.stdout.split('\n');
    const top = lines.findIndex((l) => l.startsWith('time from one policy change to enforcement'));
    expect(top, r.stdout).toBeGreaterThanOrEqual(0);
    expect(lines[top]).toContain('2 changes per cell');
    expect(lines[top + 1]).toMatch(
      header(
        'rules',
        'bpf p50',
        'bpf p99',
        'compile',
        'maps',
        'map ops',
        'ipt p50',
        'ipt p99',
        'ipt call',
      ),
    );
    const rows = lines.slice(top + 2, top + 4).map((l) => l.trim().split(/\s+/));
    expect(rows.map((x) => x[0])).toEqual(['0', '10']);
    for (const row of rows) {
      expect(row).toHaveLength(9);
      for (const v of row.slice(1)) expect(v).toMatch(/^[\d,]+(\.\d)?$/);
    }

    const doc = JSON.parse(readFileSync(join(out, 'update.json'), 'utf8')) as UpdateResult;
    expect(doc.benchmark).toBe('update');
    // Each change a new World, as the agent's watch delivers it (--same-objects: not).
    expect(doc.options.sameObjects).toBe(false);
    expect(lines[top]).toContain('a new World per change');
    expect(doc.rows.map((x) => `${x.mode}/${x.rules}`)).toEqual([
      'bpf/0',
      'bpf/10',
      'iptables/0',
      'iptables/10',
    ]);
    for (const x of doc.rows) {
      const what = `${x.mode} ${x.rules}: ${JSON.stringify(x)}`;
      expect(x.samplesMs).toHaveLength(2);
      // 0 ms is a real sample: an attempt stamped just before the change can be the first
      // let through on a loaded machine (bench/update.ts: never negative).
      for (const v of [...x.samplesMs, x.p50Ms, x.p99Ms])
        expect(nonNegativeFinite(v), what).toBe(true);
      expect(positiveFinite(x.programMs), what).toBe(true);
      if (x.mode === 'bpf') {
        for (const v of [x.compileMs, x.applyMs]) expect(nonNegativeFinite(v), what).toBe(true);
        // Appending the allowing rule writes map entries.
        expect(positiveFinite(x.mapChanges), what).toBe(true);
      }
    }
    // No 10,000-rule cell: the goal is stated, not judged.
    const goal =
      'policy change enforced in < 10 ms p50 and < 25 ms p99 at 10,000 rules in bpf mode';
    expect(doc.goal).toEqual({ text: goal });
    expect(lines).toContain(`goal: ${goal}: not measured (no bpf 10,000-rule row)`);
    expect(readFileSync(join(out, 'update.svg'), 'utf8')).toMatch(/^<svg [^]*<\/svg>\n?$/);
  });
});
