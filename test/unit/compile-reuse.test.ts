/**
 * Work reused across updates (the sweep's ClassTable, emitted classes, rule keys) must
 * not change any output: a compiler that has seen earlier worlds produces, for a world,
 * exactly the state a fresh compiler produces (same entries up to ids).
 */
import { describe, expect, it } from 'vitest';
import { PolicyCompiler } from '../../src/policy/compile/index.js';
import type { CompiledState, LocalEndpoint } from '../../src/policy/compile/index.js';
import type { Endpoint, Rule, World } from '../../src/policy/model.js';

function endpoint(name: string, ip: string, labels: Record<string, string>): Endpoint {
  return { key: `ns/${name}`, namespace: 'ns', name, ip, labels, profiles: ['p'], ports: [] };
}

const endpoints = [
  endpoint('server', '10.0.0.10', { app: 'server' }),
  endpoint('client', '10.0.0.11', { app: 'client' }),
];
const locals: LocalEndpoint[] = endpoints.map((e, i) => ({
  endpoint: e,
  ifindex: i + 1,
  id: i + 1,
}));

function worldOf(n: number, extra: Rule[]): World {
  const rules: Rule[] = [];
  for (let i = 0; i < n; i++) {
    rules.push({
      action: i % 7 === 0 ? 'Deny' : 'Allow',
      protocol: 6,
      source: { nets: [`10.1.${i >> 8}.${i & 255}/${i % 5 === 0 ? 30 : 32}`] },
      destination: { ports: [{ kind: 'range', from: 1000 + (i % 50), to: 1000 + (i % 50) }] },
    });
  }
  return {
    endpoints,
    namespaces: [{ name: 'ns', labels: {} }],
    networkSets: [],
    tiers: [],
    policies: [
      {
        name: 'pol',
        namespace: 'ns',
        tier: 'default',
        order: 1,
        selector: 'app == "server"',
        types: ['Ingress'],
        ingress: [...rules, ...extra],
        egress: [],
      },
    ],
    profiles: [
      { name: 'p', ingress: [{ action: 'Allow', source: {}, destination: {} }], egress: [] },
    ],
  };
}

/** The state's decisions without ids (rules by ref): per endpoint and direction, addr prefix → class entries. */
function canonical(state: CompiledState): unknown {
  const classes = new Map<number, string[]>();
  for (const e of state.l4.values())
    (classes.get(e.classId) ?? classes.set(e.classId, []).get(e.classId)!).push(
      `${e.l4}/${e.bits}:${e.action}:${e.flags}:${e.ruleId === 0 ? '-' : state.rules.get(e.ruleId)}`,
    );
  const sets = new Map<number, string[]>();
  for (const e of state.addr.values())
    (sets.get(e.setId) ?? sets.set(e.setId, []).get(e.setId)!).push(
      `${e.addr}/${e.bits}=>${[...classes.get(e.classId)!].sort().join(',')}`,
    );
  return [...state.endpoints.values()].map((ep) => ({
    ifindex: ep.ifindex,
    ingress: [...sets.get(ep.ingressSet)!].sort(),
    egress: [...sets.get(ep.egressSet)!].sort(),
  }));
}

describe('reuse across updates', () => {
  it('gives the same state as a fresh compile, through appends, removals and re-appends', () => {
    const allow: Rule = {
      action: 'Allow',
      protocol: 6,
      source: { nets: ['10.0.0.11/32'] },
      destination: { ports: [{ kind: 'range', from: 7000, to: 7000 }] },
    };
    const worlds = [
      worldOf(300, []),
      worldOf(300, [allow]),
      worldOf(300, []),
      worldOf(301, [allow]),
      worldOf(299, [allow, allow]),
    ];
    const reused = new PolicyCompiler();
    for (const w of [...worlds, ...worlds]) {
      const { state } = reused.update(w, locals);
      const fresh = new PolicyCompiler().update(w, locals).state;
      expect(canonical(state)).toEqual(canonical(fresh));
    }
  });

  it('still enforces the class budget on a class reused from an earlier update', () => {
    const w = worldOf(50, []);
    const c = new PolicyCompiler();
    c.update(w, locals);
    const tight = new PolicyCompiler({ maxEntriesPerClass: 1 });
    expect(() => tight.update(w, locals)).toThrow(/budget/);
  });
});
