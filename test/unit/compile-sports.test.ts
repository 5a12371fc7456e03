/**
 * The compiler over source ports (source.ports / source.notPorts): numbers, ranges,
 * named ports (a port of the source endpoint), mixed with destination ports, through
 * the soft dataplane (stage 3 where stage 2 says the source port decides), each verdict
 * checked against the reference evaluator too; and what the third stage costs in
 * entries, ids and deltas.
 */
import { describe, expect, it } from 'vitest';
import {
  ACTION_BY_SPORT,
  PolicyBudgetError,
  PolicyCompiler,
  PolicyMapFullError,
  type LocalEndpoint,
} from '../../src/policy/compile/index.js';
import type {
  Direction,
  Endpoint,
  NamedPort,
  Packet,
  Policy,
  PortMatch,
  Rule,
  Verdict,
  World,
} from '../../src/policy/model.js';
import { evaluate } from '../../src/policy/evaluate.js';
import { checkState, judge, SoftMaps } from '../helpers/softdataplane.js';

function endpoint(key: string, ip: string, ports: NamedPort[] = []): Endpoint {
  const [namespace = '', name = ''] = key.split('/');
  return { key, namespace, name, ip, labels: { app: name }, profiles: [], ports };
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

function policy(p: Partial<Policy>): Policy {
  return {
    name: 'p',
    tier: 'default',
    selector: 'app == "srv"',
    types: p.egress !== undefined ? ['Egress'] : ['Ingress'],
    ingress: [],
    egress: [],
    ...p,
  };
}

const range = (from: number, to = from): PortMatch => ({ kind: 'range', from, to });
const named = (name: string): PortMatch => ({ kind: 'named', name });

function rule(action: Rule['action'], fields: Partial<Omit<Rule, 'action'>> = {}): Rule {
  return { action, protocol: 6, source: {}, destination: {}, ...fields };
}

function packet(saddr: string, daddr: string, sport: number, dport: number, protocol = 6): Packet {
  return { saddr, daddr, protocol, sport, dport };
}

const SRV = endpoint('ns/srv', '10.0.0.1');
const CLIENT = endpoint('ns/client', '10.0.0.2', [
  { name: 'dns', protocol: 17, port: 5353 },
  { name: 'dns', protocol: 6, port: 5354 },
]);
const OTHER = endpoint('ns/other', '10.0.0.3', [{ name: 'dns', protocol: 17, port: 6000 }]);

function locals(...endpoints: Endpoint[]): LocalEndpoint[] {
  return endpoints.map((e, i) => ({ endpoint: e, ifindex: 10 + i, id: 1 + i }));
}

/** The verdict through the soft dataplane, which the evaluator must share. */
function decide(
  w: World,
  e: Endpoint,
  direction: Direction,
  p: Packet,
): Verdict & { stage3: boolean } {
  const { state } = new PolicyCompiler().update(w, locals(e));
  expect(checkState(state)).toEqual([]);
  const j = judge(state, 10, direction, p);
  if (!j.ok) throw new Error(j.miss);
  expect(j.verdict, 'the reference evaluator disagrees').toEqual(evaluate(w, e, direction, p));
  return { ...j.verdict, stage3: j.raw.sportClass !== undefined };
}

const RULE0 = 'policy/default/ns/p/ingress/0';
const DEFAULT_DENY = 'tier/default/default/ingress';

describe('source ports in the compiler', () => {
  it('a numeric source port allows only packets from that port, decided in stage 3', () => {
    const w = world({
      endpoints: [SRV, CLIENT],
      policies: [
        policy({ namespace: 'ns', ingress: [rule('Allow', { source: { ports: [range(53)] } })] }),
      ],
    });
    const hit = decide(w, SRV, 'ingress', packet(CLIENT.ip, SRV.ip, 53, 80));
    expect(hit).toMatchObject({ action: 'allow', rule: RULE0, stage3: true });
    const miss = decide(w, SRV, 'ingress', packet(CLIENT.ip, SRV.ip, 54, 80));
    expect(miss).toMatchObject({ action: 'deny', rule: DEFAULT_DENY, stage3: true });
    // UDP is not the rule's protocol: stage 2 decides alone.
    const udp = decide(w, SRV, 'ingress', packet(CLIENT.ip, SRV.ip, 53, 80, 17));
    expect(udp).toMatchObject({ action: 'deny', stage3: false });
  });

  it('ranges, notPorts and destination ports combine as intersections', () => {
    const w = world({
      endpoints: [SRV, CLIENT],
      policies: [
        policy({
          namespace: 'ns',
          ingress: [
            rule('Allow', {
              source: { ports: [range(1000, 2000)], notPorts: [range(1500)] },
              destination: { ports: [range(80), range(443)] },
            }),
          ],
        }),
      ],
    });
    const at = (sport: number, dport: number) =>
      decide(w, SRV, 'ingress', packet(CLIENT.ip, SRV.ip, sport, dport)).action;
    expect(at(1000, 80)).toBe('allow');
    expect(at(2000, 443)).toBe('allow');
    expect(at(1500, 80)).toBe('deny');
    expect(at(999, 80)).toBe('deny');
    expect(at(2001, 443)).toBe('deny');
    expect(at(1200, 81)).toBe('deny');
  });

  it('first match wins across a source-port rule and a later rule without one', () => {
    const w = world({
      endpoints: [SRV, CLIENT],
      policies: [
        policy({
          namespace: 'ns',
          ingress: [
            rule('Deny', { source: { ports: [range(0, 1023)] } }),
            rule('Log', { source: { notPorts: [range(5000)] } }),
            rule('Allow', { destination: { ports: [range(80)] } }),
          ],
        }),
      ],
    });
    expect(decide(w, SRV, 'ingress', packet(CLIENT.ip, SRV.ip, 22, 80))).toMatchObject({
      action: 'deny',
      rule: RULE0,
      logged: false,
    });
    expect(decide(w, SRV, 'ingress', packet(CLIENT.ip, SRV.ip, 4000, 80))).toMatchObject({
      action: 'allow',
      logged: true,
    });
    expect(decide(w, SRV, 'ingress', packet(CLIENT.ip, SRV.ip, 5000, 80))).toMatchObject({
      action: 'allow',
      logged: false,
    });
  });

  it('a named source port on ingress names a port of the sending endpoint, per protocol', () => {
    const w = world({
      endpoints: [SRV, CLIENT, OTHER],
      policies: [
        policy({
          namespace: 'ns',
          ingress: [rule('Allow', { protocol: 17, source: { ports: [named('dns')] } })],
        }),
      ],
    });
    const from = (e: Endpoint, sport: number, protocol = 17) =>
      decide(w, SRV, 'ingress', packet(e.ip, SRV.ip, sport, 53, protocol)).action;
    expect(from(CLIENT, 5353)).toBe('allow');
    expect(from(CLIENT, 6000)).toBe('deny'); // OTHER's dns port, not CLIENT's
    expect(from(OTHER, 6000)).toBe('allow');
    expect(from(OTHER, 5353)).toBe('deny');
    expect(from(CLIENT, 5354)).toBe('deny'); // CLIENT's TCP dns port: the rule is UDP
    // An address no endpoint holds has no named ports.
    expect(decide(w, SRV, 'ingress', packet('10.9.9.9', SRV.ip, 5353, 53, 17)).action).toBe('deny');
  });

  it('a named source notPort on egress names a port of E itself', () => {
    const w = world({
      endpoints: [SRV, CLIENT],
      policies: [
        policy({
          namespace: 'ns',
          selector: 'app == "client"',
          egress: [rule('Allow', { protocol: 17, source: { notPorts: [named('dns')] } })],
        }),
      ],
    });
    const to = (sport: number) =>
      decide(w, CLIENT, 'egress', packet(CLIENT.ip, SRV.ip, sport, 53, 17)).action;
    expect(to(5353)).toBe('deny');
    expect(to(5354)).toBe('allow');
    expect(to(40000)).toBe('allow');
  });

  it('named ports on both sides resolve on their own endpoints', () => {
    const srv = endpoint('ns/srv', '10.0.0.1', [{ name: 'dns', protocol: 17, port: 53 }]);
    const w = world({
      endpoints: [srv, CLIENT, OTHER],
      policies: [
        policy({
          namespace: 'ns',
          ingress: [
            rule('Allow', {
              protocol: 17,
              source: { ports: [named('dns')] },
              destination: { ports: [named('dns')] },
            }),
          ],
        }),
      ],
    });
    const at = (e: Endpoint, sport: number, dport: number) =>
      decide(w, srv, 'ingress', packet(e.ip, srv.ip, sport, dport, 17)).action;
    expect(at(CLIENT, 5353, 53)).toBe('allow');
    expect(at(CLIENT, 5353, 5353)).toBe('deny');
    expect(at(OTHER, 6000, 53)).toBe('allow');
    expect(at(OTHER, 5353, 53)).toBe('deny');
  });

  it('a policy without source ports compiles as before: no stage-3 entries', () => {
    const w = world({
      endpoints: [SRV, CLIENT],
      policies: [
        policy({
          namespace: 'ns',
          ingress: [rule('Allow', { destination: { ports: [range(80)] } })],
        }),
      ],
    });
    const { state, delta } = new PolicyCompiler().update(w, locals(SRV));
    expect(state.sport.size).toBe(0);
    expect(delta.sportWrites).toEqual([]);
    expect([...state.l4.values()].some((e) => e.action === ACTION_BY_SPORT)).toBe(false);
  });

  it('stage-3 entries are written before the classes naming them and deleted after', () => {
    const base = world({ endpoints: [SRV, CLIENT] });
    const withSports = world({
      endpoints: [SRV, CLIENT],
      policies: [
        policy({ namespace: 'ns', ingress: [rule('Allow', { source: { ports: [range(53)] } })] }),
      ],
    });
    const compiler = new PolicyCompiler();
    const maps = new SoftMaps();
    maps.apply(compiler.update(base, locals(SRV)).delta);
    const check = (): void => {
      const present = new Set([...maps.sportMap.values()].map((e) => e.classId));
      for (const e of maps.l4Map.values())
        if (e.action === ACTION_BY_SPORT) expect(present.has(e.ruleId)).toBe(true);
    };
    const up = compiler.update(withSports, locals(SRV)).delta;
    expect(up.sportWrites.length).toBeGreaterThan(0);
    maps.apply(up, check);
    // The source-port class shares the class id space: no id is both.
    const classIds = new Set([...maps.l4Map.values()].map((e) => e.classId));
    for (const e of maps.sportMap.values()) expect(classIds.has(e.classId)).toBe(false);
    const down = compiler.update(base, locals(SRV)).delta;
    expect(down.sportDeletes.length).toBe(up.sportWrites.length);
    maps.apply(down, check);
    expect(maps.sportMap.size).toBe(0);
  });

  it('source-port classes count against the class budget and the stage-3 map size', () => {
    const ports = Array.from({ length: 40 }, (_, i) => range(1000 + 2 * i));
    const w = world({
      endpoints: [SRV, CLIENT],
      policies: [policy({ namespace: 'ns', ingress: [rule('Allow', { source: { ports } })] })],
    });
    expect(() => new PolicyCompiler({ maxEntriesPerClass: 30 }).update(w, locals(SRV))).toThrow(
      PolicyBudgetError,
    );
    expect(() => new PolicyCompiler({ maxSportEntries: 30 }).update(w, locals(SRV))).toThrow(
      PolicyMapFullError,
    );
    const { state } = new PolicyCompiler().update(w, locals(SRV));
    expect(state.sport.size).toBe(41); // 40 exact ports + the default
  });
});
