/**
 * The enums of src/maps/enums.ts against bpf/tortie_maps.h: same names (without their
 * C prefix) and numbers, read from the header text so an edit to either side fails.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

import {
  Action,
  CtFlags,
  CtState,
  Dir,
  EndpointFlags,
  EventType,
  isDrop,
  NodeFlags,
  Reason,
  REASON_MAX,
  REASON_TEXT,
  reasonName,
  RouteFlags,
  RouteType,
  VerdictFlags,
} from '../../src/maps/index.js';

const HEADER = readFileSync(
  fileURLToPath(new URL('../../bpf/tortie_maps.h', import.meta.url)),
  'utf8',
);

/** enum name → { ENUMERATOR: value }, evaluating `n` and `a << b`. */
function headerEnums(): Map<string, Record<string, number>> {
  const out = new Map<string, Record<string, number>>();
  for (const m of HEADER.matchAll(/enum\s+(\w+)\s*\{([^}]*)\}/g)) {
    const body = m[2]!.replace(/\/\*[\s\S]*?\*\//g, '');
    const values: Record<string, number> = {};
    for (const e of body.matchAll(/(\w+)\s*=\s*([^,]+),?/g)) {
      const expr = e[2]!.trim();
      const shift = /^(\d+)\s*<<\s*(\d+)$/.exec(expr);
      values[e[1]!] = shift ? Number(shift[1]) << Number(shift[2]) : Number(expr);
    }
    out.set(m[1]!, values);
  }
  return out;
}

function stripped(
  values: Record<string, number>,
  prefix: string,
  except: string[] = [],
): Record<string, number> {
  return Object.fromEntries(
    Object.entries(values)
      .filter(([k]) => !except.includes(k))
      .map(([k, v]) => [k.startsWith(prefix) ? k.slice(prefix.length) : k, v]),
  );
}

const MIRRORS: [cEnum: string, prefix: string, ts: Record<string, number>][] = [
  ['tortie_ep_flags', 'TORTIE_EP_F_', EndpointFlags],
  ['tortie_node_flags', 'TORTIE_NODE_F_', NodeFlags],
  ['tortie_route_type', 'TORTIE_ROUTE_', RouteType],
  ['tortie_route_flags', 'TORTIE_ROUTE_F_', RouteFlags],
  ['tortie_action', 'TORTIE_ACT_', Action],
  ['tortie_verdict_flags', 'TORTIE_VERDICT_F_', VerdictFlags],
  ['tortie_ct_state', 'TORTIE_CT_', CtState],
  ['tortie_ct_flags', 'TORTIE_CT_F_', CtFlags],
  ['tortie_dir', 'TORTIE_DIR_', Dir],
  ['tortie_event_type', 'TORTIE_EVENT_', EventType],
];

describe('enums mirror bpf/tortie_maps.h', () => {
  const enums = headerEnums();

  it('has a TypeScript const for every enum of the header', () => {
    const mirrored = new Set([...MIRRORS.map(([c]) => c), 'tortie_reason']);
    expect([...enums.keys()].filter((name) => !mirrored.has(name))).toEqual([]);
  });

  it.each(MIRRORS)('%s: same names and numbers', (cEnum, prefix, ts) => {
    expect(ts).toEqual(stripped(enums.get(cEnum)!, prefix));
  });

  it('tortie_reason: same names and numbers, and the same REASON_MAX', () => {
    const c = enums.get('tortie_reason')!;
    const expected = stripped(stripped(c, 'TORTIE_REASON_', ['TORTIE_REASON_MAX']), 'TORTIE_');
    expect(Reason).toEqual(expected);
    expect(REASON_MAX).toBe(c.TORTIE_REASON_MAX);
  });

  it('names every reason for humans and keeps drops at 64 and above', () => {
    for (const [name, n] of Object.entries(Reason)) {
      expect(reasonName(n)).toBe(name);
      expect(REASON_TEXT[name as keyof typeof Reason]).toMatch(/\w/);
      expect(isDrop(n)).toBe(name.startsWith('DROP_'));
    }
    expect(reasonName(200)).toBe('REASON_200');
  });
});
