/**
 * The incremental compile (src/policy/compile/incremental.ts: a program edited by a few
 * rules is decided again only over the addresses they reach, its set changed in place)
 * must give, after any sequence of edits, exactly the entries a fresh compile of the same
 * world gives (up to ids) — and while its delta is applied one entry at a time, every
 * packet must meet the old state's verdict or the new one's, never another.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ACTION_BY_SPORT,
  PolicyCompiler,
  type CompiledState,
  type LocalEndpoint,
} from '../../src/policy/compile/index.js';
import type { Rule, World } from '../../src/policy/model.js';
import { reuseWorld } from '../../src/policy/reuse.js';
import { judge, SoftMaps } from '../helpers/softdataplane.js';
import { editArb, ruleArb, worldCaseArb, type PacketCase } from '../helpers/worldgen.js';

/** Nested prefixes around the generated endpoints: edits of such rules change a few pieces. */
const NESTED = [
  '10.0.0.0/24',
  '10.0.0.0/28',
  '10.0.0.8/29',
  '10.0.0.4/31',
  '10.0.0.5/32',
  '10.0.0.7/32',
  '10.0.0.16/30',
  '10.0.1.0/24',
  '10.0.1.3/32',
];

/** A rule whose peer side is a few nested prefixes (the incremental path's kind of edit). */
function netRuleArb(direction: 'ingress' | 'egress'): fc.Arbitrary<Rule> {
  return fc
    .record({
      action: fc.constantFrom('Allow' as const, 'Deny' as const, 'Pass' as const, 'Log' as const),
      nets: fc.subarray(NESTED, { minLength: 1, maxLength: 2 }),
      protocol: fc.option(fc.constantFrom(6, 17), { nil: undefined }),
      port: fc.option(fc.constantFrom(80, 443, 53), { nil: undefined }),
      sport: fc.option(fc.constantFrom(40000, 1024), { nil: undefined }),
    })
    .map(({ action, nets, protocol, port, sport }) => {
      const withPorts = protocol !== undefined;
      const peer = {
        nets,
        ...(withPorts && sport !== undefined && direction === 'ingress'
          ? { ports: [{ kind: 'range' as const, from: sport, to: sport + 100 }] }
          : {}),
      };
      const dst =
        withPorts && port !== undefined
          ? { ports: [{ kind: 'range' as const, from: port, to: port }] }
          : {};
      return direction === 'ingress'
        ? { action, ...(withPorts ? { protocol } : {}), source: peer, destination: dst }
        : { action, ...(withPorts ? { protocol } : {}), source: {}, destination: { ...dst, nets } };
    });
}

/** One rule inserted, removed or replaced in one policy's rule list (else any edit). */
function ruleEditArb(world: World): fc.Arbitrary<World> {
  if (world.policies.length === 0) return editArb(world);
  return fc
    .tuple(
      fc.nat({ max: world.policies.length - 1 }),
      fc.constantFrom('ingress' as const, 'egress' as const),
      // Rule ids are positions: an edit renumbers every rule after it, so edits at the end
      // are the ones the incremental path keeps small — make them common.
      fc.oneof(fc.constant(1000), fc.nat({ max: 20 })),
      fc.constantFrom('insert' as const, 'insert' as const, 'remove' as const, 'replace' as const),
    )
    .chain(([i, d, at, op]) =>
      fc.oneof(netRuleArb(d), netRuleArb(d), ruleArb).map((rule) => ({
        ...world,
        policies: world.policies.map((p, j) => {
          if (j !== i) return p;
          const rules: Rule[] = [...p[d]];
          const end = at === 1000;
          if (op === 'insert' || rules.length === 0)
            rules.splice(end ? rules.length : at % (rules.length + 1), 0, rule);
          else if (op === 'remove') rules.splice(end ? rules.length - 1 : at % rules.length, 1);
          else rules[end ? rules.length - 1 : at % rules.length] = rule;
          return { ...p, [d]: rules };
        }),
      })),
    );
}

/** Per endpoint and direction, the set's entries with their classes spelled out (no ids). */
function canonical(state: CompiledState): unknown {
  const sports = new Map<number, string[]>();
  for (const e of state.sport.values())
    (sports.get(e.classId) ?? sports.set(e.classId, []).get(e.classId)!).push(
      `${e.sport}/${e.bits}:${e.action}:${e.flags}:${state.rules.get(e.ruleId) ?? '-'}`,
    );
  const classes = new Map<number, string[]>();
  for (const e of state.l4.values()) {
    const decided =
      e.action === ACTION_BY_SPORT
        ? `sport[${[...sports.get(e.ruleId)!].sort().join(',')}]`
        : `${e.action}:${e.flags}:${state.rules.get(e.ruleId) ?? '-'}`;
    (classes.get(e.classId) ?? classes.set(e.classId, []).get(e.classId)!).push(
      `${e.l4}/${e.bits}:${decided}`,
    );
  }
  const sets = new Map<number, string[]>();
  for (const e of state.addr.values())
    (sets.get(e.setId) ?? sets.set(e.setId, []).get(e.setId)!).push(
      `${e.addr}/${e.bits}=>${[...classes.get(e.classId)!].sort().join(',')}`,
    );
  return [...state.endpoints.values()]
    .sort((a, b) => a.ifindex - b.ifindex)
    .map((ep) => ({
      ifindex: ep.ifindex,
      ingress: [...sets.get(ep.ingressSet)!].sort(),
      egress: [...sets.get(ep.egressSet)!].sort(),
    }));
}

function verdicts(state: CompiledState, packets: readonly PacketCase[]): string[] {
  return packets.map((pc) => {
    const j = judge(state, pc.ifindex, pc.direction, pc.packet);
    return j.ok ? JSON.stringify(j.verdict) : 'miss';
  });
}

function relink(world: World, locals: readonly LocalEndpoint[]): LocalEndpoint[] {
  return locals.flatMap((l) => {
    const endpoint = world.endpoints.find((e) => e.key === l.endpoint.key);
    return endpoint === undefined ? [] : [{ ...l, endpoint }];
  });
}

describe('incremental compile', () => {
  it('equals a fresh compile after every edit of random sequences, and its delta never shows a third verdict', () => {
    let inPlace = 0;
    let steps = 0;
    fc.assert(
      fc.property(
        worldCaseArb({ packets: 12 }),
        fc.boolean(),
        fc.array(fc.tuple(fc.integer(), fc.nat({ max: 4 })), { minLength: 1, maxLength: 8 }),
        (start, bare, edits) => {
          const compiler = new PolicyCompiler();
          const maps = new SoftMaps();
          // Bare: the policies start without rules, so the edits build nested prefixes.
          let world = bare
            ? {
                ...start.world,
                policies: start.world.policies.map((p) => ({ ...p, ingress: [], egress: [] })),
              }
            : start.world;
          const locals = [...start.locals];
          let prev = compiler.update(world, locals);
          let last = world;
          maps.apply(prev.delta);
          for (const [seed, anyEdit] of edits) {
            world = fc.sample(anyEdit === 0 ? editArb(world) : ruleEditArb(world), {
              seed,
              numRuns: 1,
            })[0]!;
            // As given (unchanged rules the same objects), as new objects (a watch's
            // decode: rules equal by value only), or new with the rules reused.
            const copy = (): World => JSON.parse(JSON.stringify(world)) as World;
            const how = Math.abs(seed) % 3;
            const given = how === 0 ? world : how === 1 ? copy() : reuseWorld(last, copy());
            last = given;
            const here = relink(given, locals);
            const next = compiler.update(given, here);
            const fresh = new PolicyCompiler().update(given, here).state;
            expect(canonical(next.state)).toEqual(canonical(fresh));

            const old = verdicts(prev.state, start.packets);
            const now = verdicts(next.state, start.packets);
            maps.apply(next.delta, () => {
              steps++;
              const mid = verdicts(
                {
                  addr: maps.addrMap,
                  l4: maps.l4Map,
                  sport: maps.sportMap,
                  endpoints: maps.endpoints,
                  rules: next.state.rules,
                },
                start.packets,
              );
              for (const [i, v] of mid.entries()) expect([old[i], now[i]]).toContain(v);
            });
            expect(maps.addrMap).toEqual(next.state.addr);
            expect(maps.l4Map).toEqual(next.state.l4);
            expect(maps.sportMap).toEqual(next.state.sport);
            if (next.delta.addrTrims.length > 0 || sameIdNewRev(prev.state, next.state)) inPlace++;
            prev = next;
          }
        },
      ),
      { numRuns: 60, seed: 15_000 },
    );
    // The property proves little unless edits took the in-place path often.
    expect(inPlace).toBeGreaterThan(10);
    expect(steps).toBeGreaterThan(100);
  });
});

/** Some endpoint kept its set ids but its revision moved: a set changed in place. */
function sameIdNewRev(a: CompiledState, b: CompiledState): boolean {
  for (const [ifindex, e] of b.endpoints) {
    const was = a.endpoints.get(ifindex);
    if (
      was !== undefined &&
      was.ingressSet === e.ingressSet &&
      was.egressSet === e.egressSet &&
      was.policyRev !== e.policyRev
    )
      return true;
  }
  return false;
}
