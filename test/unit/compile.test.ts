/**
 * The policy compiler: targeted semantics (each checked through the soft dataplane, the
 * way the BPF maps answer), the prefix decomposition, sharing, ids, deltas, budgets.
 * Random worlds against the evaluator are in compile-differential.test.ts.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  PolicyBudgetError,
  PolicyCompiler,
  PolicyMapFullError,
  type CompiledState,
  type Delta,
  type LocalEndpoint,
} from '../../src/policy/compile/index.js';
import { ADDRESS_MAX, parseAddress } from '../../src/policy/compile/addresses.js';
import {
  contains,
  intersect,
  normalize,
  size,
  subtract,
  union,
  type IntervalSet,
} from '../../src/policy/compile/intervals.js';
import {
  functionToPrefixes,
  prefixRange,
  rangeToPrefixes,
  type Piece,
} from '../../src/policy/compile/prefixes.js';
import type {
  Direction,
  Endpoint,
  NamedPort,
  Packet,
  Policy,
  Rule,
  Verdict,
  World,
} from '../../src/policy/model.js';
import { evaluate } from '../../src/policy/evaluate.js';
import { checkState, judge, SoftMaps } from '../helpers/softdataplane.js';
import { bigPolicy } from '../helpers/worldgen.js';

// --- world building -----------------------------------------------------------------

function endpoint(
  key: string,
  ip: string,
  labels: Record<string, string> = {},
  extra: { profiles?: string[]; ports?: NamedPort[] } = {},
): Endpoint {
  const [namespace = '', name = ''] = key.split('/');
  return {
    key,
    namespace,
    name,
    ip,
    labels,
    profiles: extra.profiles ?? [],
    ports: extra.ports ?? [],
  };
}

function world(parts: Partial<World>): World {
  return {
    endpoints: [],
    namespaces: [],
    networkSets: [],
    tiers: [],
    policies: [],
    profiles: [],
    ...parts,
  };
}

function policy(name: string, p: Partial<Policy> & { ingress?: Rule[]; egress?: Rule[] }): Policy {
  return {
    name,
    tier: 'default',
    selector: 'all()',
    types: p.egress !== undefined && p.egress.length > 0 ? ['Ingress', 'Egress'] : ['Ingress'],
    ingress: [],
    egress: [],
    ...p,
  };
}

function rule(action: Rule['action'], fields: Partial<Omit<Rule, 'action'>> = {}): Rule {
  return { action, source: {}, destination: {}, ...fields };
}

const allowAll = rule('Allow');

function tcp(saddr: string, daddr: string, dport: number): Packet {
  return { saddr, daddr, protocol: 6, dport, sport: 40000 };
}

function proto(saddr: string, daddr: string, protocol: number, dport = 0): Packet {
  return { saddr, daddr, protocol, dport, sport: protocol === 6 || protocol === 17 ? 40000 : 0 };
}

function icmp(saddr: string, daddr: string, icmpType: number, icmpCode: number): Packet {
  return { saddr, daddr, protocol: 1, dport: 0, sport: 0, icmpType, icmpCode };
}

function locals(...endpoints: Endpoint[]): LocalEndpoint[] {
  return endpoints.map((e, i) => ({ endpoint: e, ifindex: 10 + i, id: 1 + i }));
}

/**
 * Compiles `w` for `e` alone and judges `packet` through the soft dataplane. The
 * reference evaluator must agree (the differential test covers random worlds; here it
 * guards the expectations written below as well).
 */
function decide(w: World, e: Endpoint, direction: Direction, packet: Packet): Verdict {
  const { state } = new PolicyCompiler().update(w, locals(e));
  expect(checkState(state)).toEqual([]);
  const j = judge(state, 10, direction, packet);
  if (!j.ok) throw new Error(j.miss);
  expect(j.verdict, 'the reference evaluator disagrees').toEqual(evaluate(w, e, direction, packet));
  return j.verdict;
}

const allow = (ruleRef: string, logged = false): Verdict => ({
  action: 'allow',
  rule: ruleRef,
  logged,
});
const deny = (ruleRef: string, logged = false): Verdict => ({
  action: 'deny',
  rule: ruleRef,
  logged,
});

// Two pods in ns-a and one in ns-b; the local one is `web`.
const web = endpoint(
  'ns-a/web',
  '10.0.0.1',
  { app: 'web' },
  { ports: [{ name: 'http', protocol: 6, port: 8080 }] },
);
const db = endpoint(
  'ns-a/db',
  '10.0.0.2',
  { app: 'db' },
  { ports: [{ name: 'http', protocol: 6, port: 9000 }] },
);
const other = endpoint('ns-b/api', '10.0.1.1', { app: 'api' });
const pods = [web, db, other];

// --- semantics ----------------------------------------------------------------------

describe('compiled verdicts follow docs/policy-semantics.md', () => {
  it('an endpoint with no profile and no policy is denied by the profiles default', () => {
    expect(
      decide(world({ endpoints: pods }), web, 'ingress', tcp('10.0.0.2', '10.0.0.1', 80)),
    ).toEqual(deny('profiles/default/ingress'));
  });

  it('the namespace profile allows an endpoint no policy selects', () => {
    const w = world({
      endpoints: [{ ...web, profiles: ['kns.ns-a'] }, db],
      profiles: [{ name: 'kns.ns-a', ingress: [allowAll], egress: [allowAll] }],
    });
    expect(decide(w, w.endpoints[0]!, 'egress', tcp('10.0.0.1', '8.8.8.8', 53))).toEqual(
      allow('profile/kns.ns-a/egress/0'),
    );
  });

  it('a selected endpoint drops traffic no rule allows, by its tier default', () => {
    const w = world({
      endpoints: pods,
      policies: [
        policy('web-in', {
          namespace: 'ns-a',
          selector: "app == 'web'",
          ingress: [
            rule('Allow', {
              protocol: 6,
              source: { selector: "app == 'db'" },
              destination: { ports: [{ kind: 'range', from: 80, to: 80 }] },
            }),
          ],
        }),
      ],
    });
    expect(decide(w, web, 'ingress', tcp('10.0.0.2', '10.0.0.1', 80))).toEqual(
      allow('policy/default/ns-a/web-in/ingress/0'),
    );
    expect(decide(w, web, 'ingress', tcp('10.0.0.2', '10.0.0.1', 81))).toEqual(
      deny('tier/default/default/ingress'),
    );
    expect(decide(w, web, 'ingress', proto('10.0.0.2', '10.0.0.1', 17, 80))).toEqual(
      deny('tier/default/default/ingress'),
    );
    // The same labels in another namespace are out of a namespaced policy's scope.
    const w2 = { ...w, endpoints: [...pods, endpoint('ns-b/db', '10.0.1.2', { app: 'db' })] };
    expect(decide(w2, web, 'ingress', tcp('10.0.1.2', '10.0.0.1', 80))).toEqual(
      deny('tier/default/default/ingress'),
    );
  });

  it('policies run by order, an absent order last, ties by name; the first match decides', () => {
    const w = world({
      endpoints: pods,
      policies: [
        policy('b-deny', { order: 10, ingress: [rule('Deny')] }),
        policy('a-allow', { order: 10, ingress: [allowAll] }),
        policy('first', { order: 5, ingress: [rule('Deny', { protocol: 17 })] }),
        policy('unordered', { ingress: [allowAll] }),
      ],
    });
    expect(decide(w, web, 'ingress', tcp('10.0.0.2', '10.0.0.1', 80))).toEqual(
      allow('policy/default/a-allow/ingress/0'),
    );
    expect(decide(w, web, 'ingress', proto('10.0.0.2', '10.0.0.1', 17, 80))).toEqual(
      deny('policy/default/first/ingress/0'),
    );
  });

  it('policies of equal order and name run by key: "ns-a/same" before "same"', () => {
    const w = world({
      endpoints: pods,
      policies: [
        policy('same', { order: 3, ingress: [allowAll] }),
        policy('same', { namespace: 'ns-a', order: 3, ingress: [rule('Deny')] }),
      ],
    });
    expect(decide(w, web, 'ingress', tcp('10.0.0.2', '10.0.0.1', 80))).toEqual(
      deny('policy/default/ns-a/same/ingress/0'),
    );
  });

  it('tiers run by order; Pass skips the rest of its tier; a tier defaultAction Pass falls through', () => {
    const w = world({
      endpoints: pods,
      tiers: [
        { name: 'security', order: 10, defaultAction: 'Deny' },
        { name: 'platform', order: 20, defaultAction: 'Pass' },
      ],
      policies: [
        policy('sec', {
          tier: 'security',
          order: 1,
          ingress: [
            rule('Pass', { source: { nets: ['10.0.0.0/24'] } }),
            rule('Allow', { protocol: 17 }),
          ],
        }),
        policy('sec-later', {
          tier: 'security',
          order: 99,
          ingress: [rule('Allow', { protocol: 6 })],
        }),
        policy('plat', {
          tier: 'platform',
          ingress: [
            rule('Deny', {
              protocol: 6,
              destination: { ports: [{ kind: 'range', from: 22, to: 22 }] },
            }),
          ],
        }),
        policy('app', { ingress: [rule('Allow', { protocol: 6 })] }),
      ],
    });
    // Passed by security, not matched in platform (which passes), allowed in default.
    expect(decide(w, web, 'ingress', tcp('10.0.0.2', '10.0.0.1', 80))).toEqual(
      allow('policy/default/app/ingress/0'),
    );
    expect(decide(w, web, 'ingress', tcp('10.0.0.2', '10.0.0.1', 22))).toEqual(
      deny('policy/platform/plat/ingress/0'),
    );
    // Not passed: the later policy of the same tier decides.
    expect(decide(w, web, 'ingress', tcp('10.0.1.1', '10.0.0.1', 80))).toEqual(
      allow('policy/security/sec-later/ingress/0'),
    );
    // Passed, then nothing matches in default: its Deny default.
    expect(decide(w, web, 'ingress', proto('10.0.0.2', '10.0.0.1', 47))).toEqual(
      deny('tier/default/default/ingress'),
    );
    // Not passed, nothing matches in security: denied there.
    expect(decide(w, web, 'ingress', proto('10.0.1.1', '10.0.0.1', 47))).toEqual(
      deny('tier/security/default/ingress'),
    );
  });

  it('a tier that no policy of it applies to is skipped; an unknown tier denies by default', () => {
    const w = world({
      endpoints: pods,
      profiles: [{ name: 'p', ingress: [allowAll], egress: [] }],
      tiers: [{ name: 'security', order: 1, defaultAction: 'Deny' }],
      policies: [
        policy('elsewhere', { tier: 'security', selector: "app == 'nobody'", ingress: [] }),
        policy('ghostly', { tier: 'ghost', selector: "app == 'db'", ingress: [rule('Log')] }),
      ],
    });
    const e = { ...web, profiles: ['p'] };
    expect(
      decide({ ...w, endpoints: [e, db, other] }, e, 'ingress', tcp('10.0.0.2', '10.0.0.1', 80)),
    ).toEqual(allow('profile/p/ingress/0'));
    const d = { ...db, profiles: ['p'] };
    expect(
      decide({ ...w, endpoints: [web, d, other] }, d, 'ingress', tcp('10.0.0.1', '10.0.0.2', 80)),
    ).toEqual(deny('tier/ghost/default/ingress', true));
  });

  it('Log marks the verdict logged and keeps walking, across a Pass into later tiers and profiles', () => {
    const w = world({
      endpoints: [{ ...web, profiles: ['p'] }, db],
      tiers: [{ name: 'security', order: 1, defaultAction: 'Pass' }],
      profiles: [
        {
          name: 'p',
          ingress: [rule('Log', { protocol: 17 }), rule('Pass', { protocol: 17 }), allowAll],
          egress: [],
        },
      ],
      policies: [policy('log', { tier: 'security', ingress: [rule('Log', { protocol: 6 })] })],
    });
    const e = w.endpoints[0]!;
    expect(decide(w, e, 'ingress', tcp('10.0.0.2', '10.0.0.1', 80))).toEqual(
      allow('profile/p/ingress/2', true),
    );
    // A Pass among profile rules ends profile evaluation as a deny by default.
    expect(decide(w, e, 'ingress', proto('10.0.0.2', '10.0.0.1', 17, 53))).toEqual(
      deny('profiles/default/ingress', true),
    );
    expect(decide(w, e, 'ingress', proto('10.0.0.2', '10.0.0.1', 47))).toEqual(
      allow('profile/p/ingress/2'),
    );
  });

  it('profiles run in the endpoint order; an unknown profile has no rules', () => {
    const w = world({
      endpoints: [{ ...web, profiles: ['missing', 'deny-udp', 'allow'] }],
      profiles: [
        { name: 'allow', ingress: [allowAll], egress: [] },
        { name: 'deny-udp', ingress: [rule('Deny', { protocol: 17 })], egress: [] },
      ],
    });
    const e = w.endpoints[0]!;
    expect(decide(w, e, 'ingress', proto('1.2.3.4', '10.0.0.1', 17, 53))).toEqual(
      deny('profile/deny-udp/ingress/0'),
    );
    expect(decide(w, e, 'ingress', tcp('1.2.3.4', '10.0.0.1', 53))).toEqual(
      allow('profile/allow/ingress/0'),
    );
    expect(decide(w, e, 'egress', tcp('10.0.0.1', '1.2.3.4', 53))).toEqual(
      deny('profiles/default/egress'),
    );
  });

  it('types decide the directions a policy isolates; rules of other directions are ignored', () => {
    const w = world({
      endpoints: [{ ...web, profiles: ['p'] }],
      profiles: [{ name: 'p', ingress: [allowAll], egress: [allowAll] }],
      policies: [
        policy('egress-only', {
          types: ['Egress'],
          ingress: [rule('Deny')],
          egress: [rule('Allow', { protocol: 17 })],
        }),
      ],
    });
    const e = w.endpoints[0]!;
    expect(decide(w, e, 'ingress', tcp('1.2.3.4', '10.0.0.1', 80))).toEqual(
      allow('profile/p/ingress/0'),
    );
    expect(decide(w, e, 'egress', tcp('10.0.0.1', '1.2.3.4', 80))).toEqual(
      deny('tier/default/default/egress'),
    );
    expect(decide(w, e, 'egress', proto('10.0.0.1', '1.2.3.4', 17, 80))).toEqual(
      allow('policy/default/egress-only/egress/0'),
    );
  });

  it('nets and notNets bound the peer address (ipBlock with except), edges included', () => {
    const w = world({
      endpoints: pods,
      policies: [
        policy('block', {
          ingress: [
            rule('Allow', {
              source: { nets: ['192.168.0.0/16', '10.9.9.9'], notNets: ['192.168.1.0/24'] },
            }),
          ],
        }),
      ],
    });
    const at = (src: string): Verdict => decide(w, web, 'ingress', tcp(src, '10.0.0.1', 80));
    expect(at('192.168.0.0')).toEqual(allow('policy/default/block/ingress/0'));
    expect(at('192.168.0.255')).toEqual(allow('policy/default/block/ingress/0'));
    expect(at('192.168.1.0')).toEqual(deny('tier/default/default/ingress'));
    expect(at('192.168.1.255')).toEqual(deny('tier/default/default/ingress'));
    expect(at('192.168.2.0')).toEqual(allow('policy/default/block/ingress/0'));
    expect(at('192.168.255.255')).toEqual(allow('policy/default/block/ingress/0'));
    expect(at('192.169.0.0')).toEqual(deny('tier/default/default/ingress'));
    expect(at('10.9.9.9')).toEqual(allow('policy/default/block/ingress/0'));
    expect(at('10.9.9.10')).toEqual(deny('tier/default/default/ingress'));
  });

  it('selectors resolve to endpoints and network sets in scope; notSelector subtracts', () => {
    const w = world({
      endpoints: pods,
      networkSets: [
        { name: 'corp', labels: { app: 'db' }, nets: ['172.16.0.0/12'] }, // global
        { name: 'ns-db', namespace: 'ns-a', labels: { app: 'db' }, nets: ['192.0.2.0/24'] },
        { name: 'ns-db-b', namespace: 'ns-b', labels: { app: 'db' }, nets: ['198.51.100.0/24'] },
      ],
      policies: [
        policy('ns-pol', {
          namespace: 'ns-a',
          ingress: [rule('Allow', { protocol: 6, source: { selector: "app == 'db'" } })],
        }),
        policy('global-pol', {
          ingress: [
            rule('Allow', {
              protocol: 17,
              source: { selector: "app == 'db'", notSelector: 'has(projectcalico.org/namespace)' },
            }),
          ],
        }),
      ],
    });
    const tcpFrom = (src: string): Verdict => decide(w, web, 'ingress', tcp(src, '10.0.0.1', 80));
    const udpFrom = (src: string): Verdict =>
      decide(w, web, 'ingress', proto(src, '10.0.0.1', 17, 80));
    expect(tcpFrom('10.0.0.2')).toEqual(allow('policy/default/ns-a/ns-pol/ingress/0'));
    expect(tcpFrom('192.0.2.7')).toEqual(allow('policy/default/ns-a/ns-pol/ingress/0'));
    expect(tcpFrom('198.51.100.7')).toEqual(deny('tier/default/default/ingress')); // other namespace's set
    expect(tcpFrom('172.16.0.1')).toEqual(deny('tier/default/default/ingress')); // global set: not for a namespaced policy
    // A global policy sees global sets and every endpoint; namespaced sets carry the namespace label.
    expect(udpFrom('172.31.255.255')).toEqual(allow('policy/default/global-pol/ingress/0'));
    expect(udpFrom('10.0.0.2')).toEqual(deny('tier/default/default/ingress'));
    expect(udpFrom('192.0.2.7')).toEqual(deny('tier/default/default/ingress'));
  });

  it('namespaceSelector widens a rule to the matching namespaces (alone it means all())', () => {
    const w = world({
      endpoints: [...pods, endpoint('ns-c/x', '10.0.2.1', { app: 'db' })],
      namespaces: [
        { name: 'ns-a', labels: { env: 'dev' } },
        { name: 'ns-b', labels: { env: 'prod' } },
      ],
      policies: [
        policy('ns', {
          namespace: 'ns-a',
          ingress: [
            rule('Allow', { protocol: 6, source: { namespaceSelector: "env == 'prod'" } }),
            rule('Allow', {
              protocol: 17,
              source: { namespaceSelector: '!has(env)', selector: "app == 'db'" },
            }),
          ],
        }),
      ],
    });
    expect(decide(w, web, 'ingress', tcp('10.0.1.1', '10.0.0.1', 80))).toEqual(
      allow('policy/default/ns-a/ns/ingress/0'),
    );
    expect(decide(w, web, 'ingress', tcp('10.0.0.2', '10.0.0.1', 80))).toEqual(
      deny('tier/default/default/ingress'),
    );
    // ns-c is not in the world: no labels, so !has(env) matches it.
    expect(decide(w, web, 'ingress', proto('10.0.2.1', '10.0.0.1', 17, 5))).toEqual(
      allow('policy/default/ns-a/ns/ingress/1'),
    );
    expect(decide(w, web, 'ingress', proto('10.0.1.1', '10.0.0.1', 17, 5))).toEqual(
      deny('tier/default/default/ingress'),
    );
  });

  it('a global policy with a namespaceSelector applies only to endpoints of matching namespaces', () => {
    const w = world({
      endpoints: pods,
      namespaces: [{ name: 'ns-b', labels: { env: 'prod' } }],
      profiles: [{ name: 'p', ingress: [allowAll], egress: [] }],
      policies: [
        policy('prod-only', { namespaceSelector: "env == 'prod'", ingress: [rule('Deny')] }),
      ],
    });
    const o = { ...other, profiles: ['p'] };
    const wb = { ...w, endpoints: [web, db, o] };
    expect(decide(wb, o, 'ingress', tcp('10.0.0.1', '10.0.1.1', 80))).toEqual(
      deny('policy/default/prod-only/ingress/0'),
    );
    const wa = { ...w, endpoints: [{ ...web, profiles: ['p'] }, db, other] };
    expect(decide(wa, wa.endpoints[0]!, 'ingress', tcp('10.0.0.2', '10.0.0.1', 80))).toEqual(
      allow('profile/p/ingress/0'),
    );
  });

  it('ports take numbers and inclusive ranges; notPorts excludes', () => {
    const w = world({
      endpoints: pods,
      policies: [
        policy('ports', {
          ingress: [
            rule('Allow', {
              protocol: 6,
              destination: {
                ports: [
                  { kind: 'range', from: 1000, to: 2000 },
                  { kind: 'range', from: 443, to: 443 },
                ],
                notPorts: [{ kind: 'range', from: 1500, to: 1500 }],
              },
            }),
          ],
        }),
      ],
    });
    const at = (port: number): string =>
      decide(w, web, 'ingress', tcp('1.1.1.1', '10.0.0.1', port)).action;
    expect([999, 1000, 1499, 1500, 1501, 2000, 2001, 443, 444].map(at)).toEqual([
      'deny',
      'allow',
      'allow',
      'deny',
      'allow',
      'allow',
      'deny',
      'allow',
      'deny',
    ]);
  });

  it('an ingress named port resolves on the endpoint itself; a name it lacks matches nothing', () => {
    const w = world({
      endpoints: pods,
      policies: [
        policy('named', {
          ingress: [
            rule('Allow', {
              protocol: 6,
              destination: {
                ports: [
                  { kind: 'named', name: 'http' },
                  { kind: 'named', name: 'nope' },
                ],
              },
            }),
          ],
        }),
      ],
    });
    expect(decide(w, web, 'ingress', tcp('1.1.1.1', '10.0.0.1', 8080)).action).toBe('allow');
    expect(decide(w, web, 'ingress', tcp('1.1.1.1', '10.0.0.1', 9000)).action).toBe('deny'); // db's number
    expect(decide(w, db, 'ingress', tcp('1.1.1.1', '10.0.0.2', 9000)).action).toBe('allow');
    expect(decide(w, other, 'ingress', tcp('1.1.1.1', '10.0.1.1', 8080)).action).toBe('deny');
  });

  it('an egress named port resolves on the peer: each peer its own number, unknown peers none', () => {
    const w = world({
      endpoints: pods,
      policies: [
        policy('named-out', {
          types: ['Egress'],
          egress: [
            rule('Allow', {
              protocol: 6,
              destination: { ports: [{ kind: 'named', name: 'http' }] },
            }),
            rule('Deny', {
              protocol: 17,
              destination: {
                notPorts: [
                  { kind: 'named', name: 'http' },
                  { kind: 'range', from: 53, to: 53 },
                ],
              },
            }),
            rule('Allow', { protocol: 17 }),
          ],
        }),
      ],
    });
    const out = (dst: string, p: number, port: number): Verdict =>
      decide(w, web, 'egress', proto('10.0.0.1', dst, p, port));
    expect(out('10.0.0.2', 6, 9000)).toEqual(allow('policy/default/named-out/egress/0'));
    expect(out('10.0.0.2', 6, 8080)).toEqual(deny('tier/default/default/egress'));
    expect(out('10.0.0.1', 6, 8080)).toEqual(allow('policy/default/named-out/egress/0')); // itself
    expect(out('10.0.1.1', 6, 8080)).toEqual(deny('tier/default/default/egress')); // no named ports
    expect(out('8.8.8.8', 6, 8080)).toEqual(deny('tier/default/default/egress'));
    // notPorts with a name: db's http is TCP, so UDP 9000 to db is not excluded by it.
    expect(out('10.0.0.2', 17, 9000)).toEqual(deny('policy/default/named-out/egress/1'));
    expect(out('10.0.0.2', 17, 53)).toEqual(allow('policy/default/named-out/egress/2'));
  });

  it('protocol, notProtocol and ICMP type/code restrict the (protocol, port) space', () => {
    const w = world({
      endpoints: pods,
      policies: [
        policy('l4', {
          ingress: [
            rule('Allow', { protocol: 1, icmp: { type: 8, code: 0 } }),
            rule('Deny', { protocol: 1, icmp: { type: 3 } }),
            rule('Allow', { protocol: 1, notICMP: { type: 11 } }),
            rule('Allow', { notProtocol: 6, protocol: 47 }),
            rule('Allow', { notProtocol: 1 }),
          ],
        }),
      ],
    });
    const v = (p: Packet): string => decide(w, web, 'ingress', p).rule.split('/').pop()!;
    expect(v(icmp('1.1.1.1', '10.0.0.1', 8, 0))).toBe('0');
    expect(v(icmp('1.1.1.1', '10.0.0.1', 8, 1))).toBe('2');
    expect(v(icmp('1.1.1.1', '10.0.0.1', 3, 13))).toBe('1');
    expect(v(icmp('1.1.1.1', '10.0.0.1', 11, 0))).toBe('ingress'); // tier default
    expect(v(proto('1.1.1.1', '10.0.0.1', 47))).toBe('3');
    expect(v(tcp('1.1.1.1', '10.0.0.1', 1))).toBe('4');
    expect(v(proto('1.1.1.1', '10.0.0.1', 255))).toBe('4');
  });

  it('local-side fields are constants of the endpoint: a false one drops the rule', () => {
    const w = world({
      endpoints: pods,
      namespaces: [{ name: 'ns-a', labels: { env: 'dev' } }],
      policies: [
        policy('local', {
          ingress: [
            rule('Deny', { destination: { selector: "app == 'db'" } }),
            rule('Deny', { destination: { nets: ['10.0.0.2/32'] } }),
            rule('Deny', { destination: { notSelector: "app == 'web'" } }),
            rule('Deny', { destination: { namespaceSelector: "env == 'prod'" } }),
            rule('Allow', {
              destination: {
                nets: ['10.0.0.0/31'],
                namespaceSelector: "env == 'dev'",
                selector: "app == 'web'",
              },
            }),
          ],
          egress: [
            rule('Allow', { source: { notNets: ['10.0.0.1'] } }),
            rule('Allow', { protocol: 6, source: { selector: 'has(app)' } }),
          ],
        }),
      ],
    });
    expect(decide(w, web, 'ingress', tcp('10.0.0.2', '10.0.0.1', 80))).toEqual(
      allow('policy/default/local/ingress/4'),
    );
    expect(decide(w, db, 'ingress', tcp('10.0.0.1', '10.0.0.2', 80))).toEqual(
      deny('policy/default/local/ingress/0'),
    );
    expect(decide(w, web, 'egress', proto('10.0.0.1', '10.0.0.2', 17, 80))).toEqual(
      deny('tier/default/default/egress'),
    );
    expect(decide(w, web, 'egress', tcp('10.0.0.1', '10.0.0.2', 80))).toEqual(
      allow('policy/default/local/egress/1'),
    );
    expect(decide(w, db, 'egress', proto('10.0.0.2', '10.0.0.1', 17, 80))).toEqual(
      allow('policy/default/local/egress/0'),
    );
  });

  it('for egress the peer is the destination address', () => {
    const w = world({
      endpoints: pods,
      policies: [
        policy('out', {
          types: ['Egress'],
          egress: [rule('Allow', { destination: { selector: "app == 'db'" } })],
        }),
      ],
    });
    expect(decide(w, web, 'egress', tcp('10.0.0.1', '10.0.0.2', 5432))).toEqual(
      allow('policy/default/out/egress/0'),
    );
    expect(decide(w, web, 'egress', tcp('10.0.0.1', '10.0.1.1', 5432))).toEqual(
      deny('tier/default/default/egress'),
    );
  });
});

// --- interval sets ------------------------------------------------------------------

describe('interval sets', () => {
  const universe = 48;
  const setArb = fc
    .array(fc.tuple(fc.nat({ max: universe - 1 }), fc.nat({ max: 6 })), { maxLength: 6 })
    .map((pairs) =>
      normalize(pairs.map(([lo, len]) => [lo, Math.min(universe - 1, lo + len)] as const)),
    );
  const members = (set: IntervalSet): boolean[] =>
    Array.from({ length: universe }, (_, x) => contains(set, x));
  const wellFormed = (set: IntervalSet): void => {
    for (let i = 0; i < set.length; i++) {
      expect(set[i]![0]).toBeLessThanOrEqual(set[i]![1]);
      if (i > 0) expect(set[i]![0]).toBeGreaterThan(set[i - 1]![1] + 1);
    }
  };

  it('union, intersection and difference hold exactly the expected members, normalised', () => {
    fc.assert(
      fc.property(setArb, setArb, (a, b) => {
        const [ma, mb] = [members(a), members(b)];
        for (const [result, expected] of [
          [union(a, b), ma.map((x, i) => x || mb[i]!)],
          [intersect(a, b), ma.map((x, i) => x && mb[i]!)],
          [subtract(a, b), ma.map((x, i) => x && !mb[i]!)],
        ] as const) {
          wellFormed(result);
          expect(members(result)).toEqual(expected);
        }
        expect(size(a)).toBe(ma.filter(Boolean).length);
      }),
      { seed: 1312, numRuns: 1000 },
    );
  });
});

// --- prefixes -----------------------------------------------------------------------

describe('prefix decomposition', () => {
  function covered(lo: number, hi: number, width: number): [number, number][] {
    return rangeToPrefixes(lo, hi, width).map((p) => prefixRange(p, width));
  }

  it('covers a range exactly with aligned, disjoint prefixes in order', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(16, 24, 32),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (width, x, y) => {
          const top = 2 ** width - 1;
          const [lo, hi] = [Math.floor(Math.min(x, y) * top), Math.floor(Math.max(x, y) * top)];
          const prefixes = rangeToPrefixes(lo, hi, width);
          let next = lo;
          for (const p of prefixes) {
            const [a, b] = prefixRange(p, width);
            expect(a).toBe(next);
            expect(a % 2 ** (width - p.bits)).toBe(0);
            next = b + 1;
          }
          expect(next).toBe(hi + 1);
          // The greedy decomposition is minimal: at most 2 per bit, and no two siblings
          // (which would merge into their parent) ever both appear.
          expect(prefixes.length).toBeLessThanOrEqual(2 * width);
          const keys = new Set(prefixes.map((p) => `${p.value}/${p.bits}`));
          for (const p of prefixes) {
            if (p.bits === 0) continue;
            const size = 2 ** (width - p.bits);
            const sibling = p.value % (2 * size) === 0 ? p.value + size : p.value - size;
            expect(keys.has(`${sibling}/${p.bits}`)).toBe(false);
          }
        },
      ),
      { seed: 4242, numRuns: 2000 },
    );
  });

  it('uses the fewest prefixes for simple ranges', () => {
    expect(covered(0, ADDRESS_MAX, 32)).toEqual([[0, ADDRESS_MAX]]);
    expect(rangeToPrefixes(0, 2 ** 24 - 1, 24)).toEqual([{ value: 0, bits: 0 }]);
    expect(rangeToPrefixes(parseAddress('10.0.0.0'), parseAddress('10.255.255.255'), 32)).toEqual([
      { value: parseAddress('10.0.0.0'), bits: 8 },
    ]);
    expect(rangeToPrefixes(80, 80, 16)).toEqual([{ value: 80, bits: 16 }]);
    expect(rangeToPrefixes(1024, 65535, 16)).toHaveLength(6);
    expect(rangeToPrefixes(1, 14, 4)).toHaveLength(6);
    expect(rangeToPrefixes(0, 1023, 16)).toEqual([{ value: 0, bits: 6 }]);
    expect(covered(2 ** 31, 2 ** 32 - 2, 32)).toHaveLength(31);
  });

  it('refuses a range outside its space', () => {
    expect(() => rangeToPrefixes(5, 4, 16)).toThrow(/not inside the 16-bit space/);
    expect(() => rangeToPrefixes(0, 65536, 16)).toThrow(/not inside the 16-bit space/);
  });

  it('a piecewise function under longest-prefix match answers like the function, default = most common', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 1, max: 2 ** 16 - 1 }), { maxLength: 12 }),
        fc.array(fc.constantFrom('a', 'b', 'c'), { minLength: 13, maxLength: 13 }),
        (cuts, values) => {
          const bounds = [0, ...cuts.sort((a, b) => a - b), 2 ** 16];
          const pieces: Piece<string>[] = [];
          for (let i = 0; i + 1 < bounds.length; i++)
            pieces.push({ lo: bounds[i]!, hi: bounds[i + 1]! - 1, value: values[i]! });
          const entries = functionToPrefixes(pieces, 16, (v) => v);
          const lpm = (x: number): string => {
            let best = { bits: -1, result: '' };
            for (const e of entries) {
              const [a, b] = prefixRange(e, 16);
              if (a <= x && x <= b && e.bits > best.bits) best = e;
            }
            return best.result;
          };
          for (const piece of pieces) {
            for (const x of [piece.lo, piece.hi, (piece.lo + piece.hi) >>> 1])
              expect(lpm(x)).toBe(piece.value);
          }
          const totals = new Map<string, number>();
          for (const p of pieces) totals.set(p.value, (totals.get(p.value) ?? 0) + p.hi - p.lo + 1);
          expect(entries.filter((e) => e.bits === 0)).toHaveLength(1);
          expect(totals.get(entries[0]!.result)).toBe(Math.max(...totals.values()));
          expect(new Set(entries.map((e) => `${e.value}/${e.bits}`)).size).toBe(entries.length);
        },
      ),
      { seed: 77, numRuns: 300 },
    );
  });
});

// --- compiled structure, deltas, ids ------------------------------------------------

const twoPods = [
  endpoint('ns-a/a', '10.0.0.1', { app: 'web' }),
  endpoint('ns-a/b', '10.0.0.2', { app: 'web' }),
  endpoint('ns-a/c', '10.0.0.3', { app: 'db' }),
];

function baseWorld(): World {
  return world({
    endpoints: twoPods,
    policies: [
      policy('web', {
        selector: "app == 'web'",
        ingress: [
          rule('Allow', {
            protocol: 6,
            destination: { ports: [{ kind: 'range', from: 80, to: 80 }] },
          }),
        ],
      }),
      policy('db', {
        selector: "app == 'db'",
        ingress: [rule('Allow', { source: { selector: "app == 'web'" } })],
      }),
    ],
  });
}

function isEmpty(delta: Delta): boolean {
  return Object.values(delta).every((list: unknown[]) => list.length === 0);
}

function setsOf(state: CompiledState, ifindex: number): [number, number] {
  const e = state.endpoints.get(ifindex)!;
  return [e.ingressSet, e.egressSet];
}

describe('compiled state', () => {
  it('endpoints with the same policies share set ids; ids are never 0; every set and class has a bits-0 entry', () => {
    const { state } = new PolicyCompiler().update(baseWorld(), locals(...twoPods));
    expect(checkState(state)).toEqual([]);
    expect(setsOf(state, 10)).toEqual(setsOf(state, 11));
    expect(setsOf(state, 12)[0]).not.toBe(setsOf(state, 10)[0]);
    for (const e of state.endpoints.values()) {
      expect(e.ingressSet).toBeGreaterThan(0);
      expect(e.egressSet).toBeGreaterThan(0);
      expect(e.policyRev).toBeGreaterThan(0);
    }
    // Egress: no policy, no profile for any of them — one shared all-deny set.
    expect(new Set([...state.endpoints.values()].map((e) => e.egressSet)).size).toBe(1);
  });

  it('rule ids are stable across recompiles and the table names every id used', () => {
    const compiler = new PolicyCompiler();
    const first = compiler.update(baseWorld(), locals(...twoPods)).state;
    const ids = new Map([...first.rules].map(([id, ref]) => [ref, id]));
    const w = baseWorld();
    const second = compiler.update(
      { ...w, policies: [...w.policies].reverse() },
      locals(...twoPods),
    ).state;
    for (const [id, ref] of second.rules) if (ids.has(ref)) expect(ids.get(ref)).toBe(id);
    for (const e of second.l4.values()) {
      expect(e.ruleId).toBeGreaterThan(0);
      expect(second.rules.has(e.ruleId)).toBe(true);
    }
  });

  it('an identical update changes nothing: empty delta, same revisions', () => {
    const compiler = new PolicyCompiler();
    const first = compiler.update(baseWorld(), locals(...twoPods));
    // Equal content built anew (not the same objects) must be recognised too.
    const again = compiler.update(
      JSON.parse(JSON.stringify(baseWorld())) as World,
      locals(...twoPods),
    );
    expect(isEmpty(again.delta)).toBe(true);
    expect(again.state.endpoints).toEqual(first.state.endpoints);
    expect(again.state.addr).toEqual(first.state.addr);
  });

  it('an edit of one policy touching one endpoint changes only that endpoint’s set, in place', () => {
    const compiler = new PolicyCompiler();
    const before = compiler.update(baseWorld(), locals(...twoPods)).state;
    const w = baseWorld();
    const edited = {
      ...w,
      policies: [
        w.policies[0]!,
        policy('db', {
          selector: "app == 'db'",
          ingress: [rule('Deny', { source: { selector: "app == 'web'" } })],
        }),
      ],
    };
    const { state, delta } = compiler.update(edited, locals(...twoPods));
    expect(delta.endpointWrites.map((e) => e.ifindex)).toEqual([12]);
    // The set keeps its id: only the entries the edit reaches (web's address) are
    // written, nothing is deleted, and the endpoint's revision moves.
    const oldSet = before.endpoints.get(12)!.ingressSet;
    const newSet = state.endpoints.get(12)!.ingressSet;
    expect(newSet).toBe(oldSet);
    expect(new Set(delta.addrWrites.map((e) => e.setId))).toEqual(new Set([newSet]));
    expect(delta.addrWrites.length).toBeLessThan(before.addr.size);
    expect(delta.addrDeletes).toEqual([]);
    for (const e of delta.addrTrims) expect(e.setId).toBe(oldSet);
    expect(state.endpoints.get(10)).toEqual(before.endpoints.get(10));
    expect(state.endpoints.get(11)).toEqual(before.endpoints.get(11));
    expect(state.endpoints.get(12)!.policyRev).not.toBe(before.endpoints.get(12)!.policyRev);
    // Classes unchanged in content keep their ids: nothing of the web set is rewritten.
    const webSet = state.endpoints.get(10)!.ingressSet;
    expect(delta.addrWrites.some((e) => e.setId === webSet)).toBe(false);
  });

  it('the delta, applied in order to the previous maps, yields the new state', () => {
    const compiler = new PolicyCompiler();
    const maps = new SoftMaps();
    const worlds = [
      baseWorld(),
      { ...baseWorld(), policies: [] },
      baseWorld(),
      { ...baseWorld(), endpoints: twoPods.slice(1) },
    ];
    for (const w of worlds) {
      const present = locals(...twoPods).filter((l) => w.endpoints.includes(l.endpoint));
      const { state, delta } = compiler.update(w, present);
      maps.apply(delta);
      expect(maps.addrMap).toEqual(state.addr);
      expect(maps.l4Map).toEqual(state.l4);
      expect(maps.endpoints).toEqual(state.endpoints);
      expect(checkState(state)).toEqual([]);
    }
  });

  it('while a delta is applied, every packet meets either the old or the new verdict, never a missing entry', () => {
    const compiler = new PolicyCompiler();
    const maps = new SoftMaps();
    const packets = ['10.0.0.2', '10.0.0.3', '10.0.0.1', '8.8.8.8'].flatMap((peer) => [
      tcp(peer, '10.0.0.3', 80),
      proto(peer, '10.0.0.3', 17, 53),
      tcp(peer, '10.0.0.3', 443),
    ]);
    const verdicts = (state: CompiledState): string[] =>
      packets.map((p) => {
        const j = judge(state, 12, 'ingress', p);
        return j.ok ? JSON.stringify(j.verdict) : `miss: ${j.miss}`;
      });
    const prev = compiler.update(baseWorld(), locals(...twoPods));
    maps.apply(prev.delta);
    const w = baseWorld();
    const next = {
      ...w,
      policies: [
        ...w.policies,
        policy('db-2', {
          selector: "app == 'db'",
          order: 1,
          ingress: [rule('Deny', { protocol: 17 }), rule('Log')],
        }),
      ],
    };
    const { state, delta } = compiler.update(next, locals(...twoPods));
    const old = verdicts(prev.state);
    const fresh = verdicts(state);
    let steps = 0;
    maps.apply(delta, () => {
      steps++;
      const mid = {
        addr: maps.addrMap,
        l4: maps.l4Map,
        sport: maps.sportMap,
        endpoints: maps.endpoints,
        rules: state.rules,
      };
      const now = verdicts(mid);
      for (const [i, v] of now.entries()) expect([old[i], fresh[i]]).toContain(v);
    });
    expect(steps).toBeGreaterThan(0);
    expect(fresh).not.toEqual(old);
  });

  it('policyRev moves exactly when an endpoint’s sets change', () => {
    const compiler = new PolicyCompiler();
    const a = compiler.update(baseWorld(), locals(...twoPods)).state;
    // A label no policy looks at: same sets, same revision, no endpoint write.
    const relabelled = {
      ...baseWorld(),
      endpoints: twoPods.map((e, i) => (i === 0 ? { ...e, labels: { ...e.labels, x: 'y' } } : e)),
    };
    const b = compiler.update(relabelled, locals(...relabelled.endpoints));
    expect(isEmpty(b.delta)).toBe(true);
    // A label that moves it to another policy: new sets, new revision.
    const moved = {
      ...baseWorld(),
      endpoints: twoPods.map((e, i) => (i === 0 ? { ...e, labels: { app: 'db' } } : e)),
    };
    const c = compiler.update(moved, locals(...moved.endpoints)).state;
    expect(c.endpoints.get(10)!.policyRev).not.toBe(a.endpoints.get(10)!.policyRev);
    expect(c.endpoints.get(11)!.policyRev).toBe(a.endpoints.get(11)!.policyRev);
    expect(setsOf(c, 10)).toEqual(setsOf(c, 12));
  });

  it('removed endpoints are deleted and their unreferenced sets and classes go last', () => {
    const compiler = new PolicyCompiler();
    const before = compiler.update(baseWorld(), locals(...twoPods)).state;
    const { state, delta } = compiler.update(baseWorld(), locals(...twoPods).slice(0, 2));
    expect(delta.endpointDeletes).toEqual([before.endpoints.get(12)]);
    expect(new Set(delta.addrDeletes.map((e) => e.setId))).toEqual(
      new Set([before.endpoints.get(12)!.ingressSet]),
    );
    expect(delta.l4Writes).toEqual([]);
    expect(delta.addrWrites).toEqual([]);
    expect(checkState(state)).toEqual([]);
  });

  it('a freed set id is recycled by a later update, never by the update that freed it', () => {
    const compiler = new PolicyCompiler();
    const w = baseWorld();
    const first = compiler.update(w, locals(...twoPods)).state;
    const dbSet = first.endpoints.get(12)!.ingressSet;
    // Update 2: c's set is replaced by new content; its id is freed but not reused yet.
    const deny = {
      ...w,
      policies: [
        w.policies[0]!,
        policy('db', { selector: "app == 'db'", ingress: [rule('Deny')] }),
      ],
    };
    const second = compiler.update(deny, locals(...twoPods));
    expect(second.delta.addrDeletes.every((e) => e.setId === dbSet)).toBe(true);
    expect(second.delta.addrWrites.some((e) => e.setId === dbSet)).toBe(false);
    // Update 3: more new content takes the freed id.
    const logged = {
      ...w,
      policies: [
        w.policies[0]!,
        policy('db', { selector: "app == 'db'", ingress: [rule('Log'), rule('Deny')] }),
      ],
    };
    const third = compiler.update(logged, locals(...twoPods)).state;
    expect(third.endpoints.get(12)!.ingressSet).toBe(dbSet);
  });

  it('refuses contradictory local endpoints by name', () => {
    const compiler = new PolicyCompiler();
    const [a, b] = twoPods;
    expect(() =>
      compiler.update(baseWorld(), [
        { endpoint: a!, ifindex: 5, id: 1 },
        { endpoint: b!, ifindex: 5, id: 2 },
      ]),
    ).toThrow(/ns-a\/a and ns-a\/b share ifindex 5/);
    expect(() => compiler.update(baseWorld(), [{ endpoint: a!, ifindex: 5, id: 0 }])).toThrow(
      /id 0/,
    );
  });
});

describe('entry budgets', () => {
  /** A policy admitting `n` scattered /32s: about n address entries in the set. */
  function scattered(n: number): World {
    const nets = Array.from(
      { length: n },
      (_, i) => `10.${i % 200}.${(i * 7) % 256}.${(i * 13) % 255}/32`,
    );
    return world({
      endpoints: twoPods,
      policies: [policy('many', { ingress: [rule('Allow', { source: { nets } })] })],
    });
  }

  it('a set over its budget fails with an error naming the endpoint and direction, and changes nothing', () => {
    const compiler = new PolicyCompiler({ maxEntriesPerSet: 50 });
    const ok = compiler.update(baseWorld(), locals(...twoPods)).state;
    let error: unknown;
    try {
      compiler.update(scattered(100), locals(...twoPods));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(PolicyBudgetError);
    const budget = error as PolicyBudgetError;
    expect(budget).toMatchObject({
      endpoint: 'ns-a/a',
      direction: 'ingress',
      budget: 'set',
      limit: 50,
    });
    expect(budget.entries).toBeGreaterThan(50);
    expect(budget.message).toMatch(/ns-a\/a \(ingress\).*budget is 50/);
    expect(compiler.current()).toBe(ok);
    // Fits again: compiles, and the delta is from the last good state.
    const { delta } = compiler.update(scattered(20), locals(...twoPods));
    expect(delta.addrDeletes.length).toBeGreaterThan(0);
  });

  it('a class over its budget fails the same way', () => {
    const ports = Array.from({ length: 40 }, (_, i) => ({
      kind: 'range' as const,
      from: 1000 + 3 * i,
      to: 1000 + 3 * i,
    }));
    const w = world({
      endpoints: twoPods,
      policies: [
        policy('ports', {
          types: ['Egress'],
          egress: [rule('Allow', { protocol: 6, destination: { ports } })],
        }),
      ],
    });
    expect(() =>
      new PolicyCompiler({ maxEntriesPerClass: 30 }).update(w, locals(...twoPods)),
    ).toThrow(PolicyBudgetError);
    expect(() =>
      new PolicyCompiler({ maxEntriesPerClass: 30 }).update(w, locals(...twoPods)),
    ).toThrow(/ns-a\/a \(egress\).*maxEntriesPerClass/);
    expect(() =>
      new PolicyCompiler({ maxEntriesPerClass: 41 }).update(w, locals(...twoPods)),
    ).not.toThrow();
  });

  it('a compile that does not fit the policy maps fails naming the map', () => {
    expect(() =>
      new PolicyCompiler({ maxAddrEntries: 10 }).update(scattered(30), locals(...twoPods)),
    ).toThrow(PolicyMapFullError);
  });
});

describe('incremental cost', () => {
  /** The classes one set points at (its distinct l4 functions). */
  function classesOfSet(state: CompiledState, setId: number): number {
    return new Set([...state.addr.values()].filter((e) => e.setId === setId).map((e) => e.classId))
      .size;
  }

  // Cost is counted as work (sets swept, rules resolved, classes created), which does not
  // depend on how fast or busy the machine is.
  it('after one edit among 10,000 rules, only the sets of the endpoints it touches are recompiled and no untouched rule is resolved again', () => {
    const pods3 = [
      endpoint('ns-a/web-1', '10.0.0.1', { app: 'web' }),
      endpoint('ns-a/web-2', '10.0.0.2', { app: 'web' }),
      endpoint('ns-b/batch', '10.0.1.1', { app: 'batch' }),
    ];
    const small = (selector: string, protocol: number): Policy =>
      policy('small', {
        order: 1,
        selector,
        ingress: [rule('Deny', { protocol, source: { nets: ['10.0.0.0/29'] } })],
      });
    const w = world({
      endpoints: pods3,
      policies: [bigPolicy(99, 10_000), small("app == 'batch'", 6)],
    });
    const compiler = new PolicyCompiler();
    const first = compiler.update(w, locals(...pods3));
    expect(first.state.addr.size).toBeGreaterThan(1000);
    // The counters see the first compile resolve every rule.
    expect(first.work.rulesPlanned).toBeGreaterThanOrEqual(10_000);
    expect(first.work.setsCompiled).toBeGreaterThan(0);

    // An edit of a policy the big one's endpoints do not see: nothing of theirs is touched.
    // Of the six (endpoint, direction) programs only batch's ingress is swept again, with
    // at most the edited rule resolved and no l4 function beyond that set's own created.
    const elsewhere = { ...w, policies: [w.policies[0]!, small("app == 'batch'", 17)] };
    const quiet = compiler.update(elsewhere, locals(...pods3));
    expect(quiet.delta.endpointWrites.map((e) => e.ifindex)).toEqual([12]);
    expect(quiet.work).toMatchObject({ setsCompiled: 1, setsReused: 5 });
    expect(quiet.work.rulesPlanned).toBeLessThanOrEqual(1);
    expect(quiet.work.classesCreated).toBeLessThanOrEqual(
      classesOfSet(quiet.state, quiet.state.endpoints.get(12)!.ingressSet),
    );

    // An edit in front of the big policy on its endpoints: their sets are rebuilt — one
    // sweep for the program web-1 and web-2 share — from the big policy's rules as already
    // resolved: none of its 10,000 rules is resolved again.
    const inFront = { ...w, policies: [w.policies[0]!, small("app != 'nobody'", 17)] };
    const rebuilt = compiler.update(inFront, locals(...pods3));
    // (batch already had exactly this deny: its set is unchanged.)
    expect(rebuilt.delta.endpointWrites.map((e) => e.ifindex)).toEqual([10, 11]);
    expect(rebuilt.work).toMatchObject({ setsCompiled: 1, setsReused: 5 });
    expect(rebuilt.work.rulesPlanned).toBeLessThanOrEqual(1);
  });
});
