/**
 * The compiler against the reference evaluator: for random worlds and packets, the verdict
 * the compiled maps give (through the soft dataplane: two longest-prefix lookups, a third
 * where the source port decides, the rule
 * id resolved through the rules table) must equal `evaluate(...)` — action, deciding rule
 * and logged flag.
 *
 * Three series, all seeded and reproducible (the seed is in every failure message;
 * TORTIE_COMPILE_SEED moves the first seed, TORTIE_COMPILE_WORLDS the number of fresh
 * worlds):
 *   - fresh: one new compiler per world;
 *   - incremental: one compiler through chains of small edits, the deltas applied to soft
 *     maps that must end up equal to the compiled state;
 *   - big: worlds with a policy of 10,000 rules, then an edit of another policy.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  PolicyCompiler,
  type CompiledState,
  type LocalEndpoint,
} from '../../src/policy/compile/index.js';
import { evaluate } from '../../src/policy/evaluate.js';
import type { World } from '../../src/policy/model.js';
import { checkState, judge, SoftMaps } from '../helpers/softdataplane.js';
import { editArb, packetArb, randomCase, type PacketCase } from '../helpers/worldgen.js';

const FIRST_SEED = Number(process.env.TORTIE_COMPILE_SEED ?? 7_000_000);
const FRESH_WORLDS = Number(process.env.TORTIE_COMPILE_WORLDS ?? 2_500);
const CHAINS = 250;
const EDITS_PER_CHAIN = 8;

/** Every disagreement between the compiled state and the evaluator, as readable lines. */
function disagreements(
  where: string,
  world: World,
  locals: readonly LocalEndpoint[],
  state: CompiledState,
  packets: readonly PacketCase[],
): string[] {
  const problems = checkState(state).map((p) => `${where}: ${p}`);
  for (const pc of packets) {
    const local = locals.find((l) => l.ifindex === pc.ifindex);
    if (local === undefined) continue;
    const want = evaluate(world, local.endpoint, pc.direction, pc.packet);
    const got = judge(state, pc.ifindex, pc.direction, pc.packet);
    const what = `${where}: ${pc.direction} of ${local.endpoint.key} ${JSON.stringify(pc.packet)}`;
    if (!got.ok)
      problems.push(`${what}: no verdict (${got.miss}); evaluator ${JSON.stringify(want)}`);
    else if (JSON.stringify(got.verdict) !== JSON.stringify(want)) {
      problems.push(
        `${what}: compiled ${JSON.stringify(got.verdict)}, evaluator ${JSON.stringify(want)}`,
      );
    }
  }
  return problems;
}

/** The locals of an edited world: the same interfaces, holding the edited endpoint objects. */
function relink(world: World, locals: readonly LocalEndpoint[]): LocalEndpoint[] {
  return locals.flatMap((l) => {
    const endpoint = world.endpoints.find((e) => e.key === l.endpoint.key);
    return endpoint === undefined ? [] : [{ ...l, endpoint }];
  });
}

function sample<T>(arb: fc.Arbitrary<T>, seed: number): T {
  return fc.sample(arb, { seed, numRuns: 1 })[0]!;
}

describe('compiled maps decide exactly as the reference evaluator', () => {
  it(`agrees on every packet of ${FRESH_WORLDS} fresh random worlds (first seed ${FIRST_SEED})`, () => {
    let judged = 0;
    let allowed = 0;
    let byPolicy = 0;
    let logged = 0;
    let bySport = 0;
    for (let seed = FIRST_SEED; seed < FIRST_SEED + FRESH_WORLDS; seed++) {
      const c = randomCase(seed);
      const { state } = new PolicyCompiler().update(c.world, c.locals);
      const problems = disagreements(`seed ${seed}`, c.world, c.locals, state, c.packets);
      expect(problems.slice(0, 5), `randomCase(${seed}) disagrees`).toEqual([]);
      for (const pc of c.packets) {
        const local = c.locals.find((l) => l.ifindex === pc.ifindex)!;
        const v = evaluate(c.world, local.endpoint, pc.direction, pc.packet);
        judged++;
        if (v.action === 'allow') allowed++;
        if (v.rule.startsWith('policy/')) byPolicy++;
        if (v.logged) logged++;
        const got = judge(state, pc.ifindex, pc.direction, pc.packet);
        if (got.ok && got.raw.sportClass !== undefined) bySport++;
      }
    }
    console.log(
      `fresh: ${judged} verdicts, ${allowed} allowed, ${byPolicy} decided by a policy rule, ${logged} logged, ${bySport} through the source-port stage`,
    );
    expect(judged).toBeGreaterThanOrEqual(20_000);
    // Agreement proves little unless the cases reach every kind of outcome.
    expect(allowed).toBeGreaterThan(judged / 10);
    expect(judged - allowed).toBeGreaterThan(judged / 10);
    expect(byPolicy).toBeGreaterThan(judged / 20);
    expect(logged).toBeGreaterThan(judged / 100);
    expect(bySport).toBeGreaterThan(judged / 200);
  });

  it(`agrees through ${CHAINS} chains of ${EDITS_PER_CHAIN} edits on one incremental compiler, deltas included`, () => {
    let judged = 0;
    for (let chain = 0; chain < CHAINS; chain++) {
      const seed = FIRST_SEED + 1_000_000 + chain;
      const start = randomCase(seed);
      const compiler = new PolicyCompiler();
      const maps = new SoftMaps();
      let world = start.world;
      const allLocals = start.locals;
      let locals: LocalEndpoint[] = [...allLocals];
      let packets: readonly PacketCase[] = start.packets;
      for (let step = 0; step <= EDITS_PER_CHAIN; step++) {
        const where = `chain seed ${seed} step ${step}`;
        if (step > 0) {
          world = sample(editArb(world), seed * 31 + step);
          locals = relink(
            world,
            step % 3 === 0
              ? sample(fc.subarray([...allLocals], { minLength: 1 }), seed + step)
              : locals,
          );
          packets = sample(
            fc.array(packetArb({ world, locals }), { minLength: 24, maxLength: 24 }),
            seed * 17 + step,
          );
        }
        const { state, delta } = compiler.update(world, locals);
        maps.apply(delta);
        expect(maps.addrMap, `${where}: maps after the delta`).toEqual(state.addr);
        expect(maps.l4Map, `${where}: maps after the delta`).toEqual(state.l4);
        expect(maps.endpoints, `${where}: endpoints after the delta`).toEqual(state.endpoints);
        const problems = disagreements(where, world, locals, state, packets);
        expect(problems.slice(0, 5), `${where} disagrees`).toEqual([]);
        judged += packets.length;
      }
    }
    expect(judged).toBeGreaterThanOrEqual(20_000);
  });

  it('agrees on worlds with a policy of 10,000 rules, before and after an edit of another policy', () => {
    for (const seed of [FIRST_SEED + 2_000_000, FIRST_SEED + 2_000_001]) {
      const c = randomCase(seed, { bigPolicyChance: 1, packets: 250 });
      expect(
        c.world.policies.some((p) => p.ingress.length === 10_000),
        `seed ${seed} has the big policy`,
      ).toBe(true);
      const compiler = new PolicyCompiler();
      const { state } = compiler.update(c.world, c.locals);
      expect(
        disagreements(`big seed ${seed}`, c.world, c.locals, state, c.packets).slice(0, 5),
      ).toEqual([]);
      const edited: World = {
        ...c.world,
        policies: [
          ...c.world.policies,
          {
            name: 'late-edit',
            tier: 'default',
            order: 1,
            selector: 'all()',
            types: ['Ingress'],
            ingress: [
              { action: 'Deny', protocol: 6, source: { nets: ['10.0.0.0/29'] }, destination: {} },
            ],
            egress: [],
          },
        ],
      };
      const next = compiler.update(edited, c.locals).state;
      expect(
        disagreements(`big seed ${seed} edited`, edited, c.locals, next, c.packets).slice(0, 5),
      ).toEqual([]);
    }
  });
});
