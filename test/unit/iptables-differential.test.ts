/**
 * The iptables renderer against the reference evaluator: for random worlds and packets
 * (the compiler's generator, test/helpers/worldgen.ts), a small interpreter of the
 * rendered chains and sets — iptables' traversal (jump, goto, RETURN, marks) over a new
 * connection — must reach the evaluator's verdict and logged flag. Seeded and
 * reproducible: TORTIE_IPT_SEED moves the first seed, TORTIE_IPT_WORLDS the count.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { evaluate } from '../../src/policy/evaluate.js';
import { workloadEncapDrop, type WorkloadEncapSettings } from '../../src/policy/guards.js';
import type { Direction, Packet, World } from '../../src/policy/model.js';
import { parseAddress, parseCidr } from '../../src/policy/compile/addresses.js';
import {
  endpointChainName,
  MARK_ACCEPT,
  plan,
  EMPTY_STATE,
  render,
  type IptablesEndpoint,
  type Match,
  type Ruleset,
} from '../../src/iptables/index.js';
import { protoName } from '../../src/iptables/rules.js';
import { editArb, packetArb, randomCase } from '../helpers/worldgen.js';

const FIRST_SEED = Number(process.env.TORTIE_IPT_SEED ?? 9_000_000);
const WORLDS = Number(process.env.TORTIE_IPT_WORLDS ?? 1_500);

const PORT_PROTOCOLS = new Set([6, 17, 132, 136]);

/** iptables' verdict for a new connection at an endpoint chain, and whether a LOG fired. */
function judge(
  rs: Ruleset,
  iface: string,
  direction: Direction,
  p: Packet,
): { action: 'allow' | 'deny'; logged: boolean } {
  let mark = 0;
  let logged = false;
  const inCidr = (addr: string, cidr: string): boolean => {
    const [lo, hi] = parseCidr(cidr);
    const a = parseAddress(addr);
    return lo <= a && a <= hi;
  };
  const matches = (m: Match): boolean => {
    switch (m.k) {
      case 'iface':
        throw new Error('no interface matches inside endpoint chains');
      case 'ctstate':
        return false; // a new connection
      case 'proto':
        return (p.protocol === m.proto) !== m.not;
      case 'icmp': {
        if (p.protocol !== 1) throw new Error('icmp match without -p icmp');
        const hit = p.icmpType === m.type && (m.code === undefined || p.icmpCode === m.code);
        return hit !== m.not;
      }
      case 'addr':
        return inCidr(m.dir === 'src' ? p.saddr : p.daddr, m.cidr) !== m.not;
      case 'set': {
        const set = rs.sets.get(m.name);
        if (set === undefined) throw new Error(`no set ${m.name}`);
        let hit: boolean;
        if (m.flags === 'dst,dst' || m.flags === 'src,src') {
          if (set.type !== 'hash:ip,port') throw new Error(`${m.name} is ${set.type}`);
          const [addr, port] = m.flags === 'dst,dst' ? [p.daddr, p.dport] : [p.saddr, p.sport];
          hit =
            PORT_PROTOCOLS.has(p.protocol) &&
            set.members.includes(`${addr},${protoName(p.protocol)}:${port}`);
        } else {
          if (set.type !== 'hash:net') throw new Error(`${m.name} is ${set.type}`);
          const addr = m.flags === 'src' ? p.saddr : p.daddr;
          hit = set.members.some((c) => inCidr(addr, c));
        }
        return hit !== m.not;
      }
      case 'multiport': {
        if (!PORT_PROTOCOLS.has(p.protocol)) throw new Error('multiport without a port protocol');
        const n = m.ranges.reduce((k, [lo, hi]) => k + (lo === hi ? 1 : 2), 0);
        if (n > 15) throw new Error(`multiport with ${n} ports`);
        const port = m.side === 'src' ? p.sport : p.dport;
        return m.ranges.some(([lo, hi]) => lo <= port && port <= hi) !== m.not;
      }
      case 'mark':
        return (mark & m.mask) === m.value;
      case 'vxlan-inner-src':
        throw new Error('no VXLAN matches inside endpoint chains');
    }
  };
  const run = (name: string, depth: number): 'ACCEPT' | 'DROP' | 'RETURN' => {
    if (depth > 10) throw new Error('chains nest too deep');
    const rules = rs.chains.get(name);
    if (rules === undefined) throw new Error(`no chain ${name}`);
    for (const rule of rules) {
      if (!rule.matches.every(matches)) continue;
      const t = rule.target;
      switch (t.k) {
        case 'ACCEPT':
        case 'DROP':
        case 'RETURN':
          return t.k;
        case 'set-mark':
          mark = (mark & ~t.mask) | t.value;
          break;
        case 'log':
          logged = true;
          break;
        case 'jump': {
          const r = run(t.chain, depth + 1);
          if (r !== 'RETURN') return r;
          break;
        }
        case 'goto':
          return run(t.chain, depth + 1);
      }
    }
    return 'RETURN';
  };
  const r = run(endpointChainName(iface, direction), 0);
  const allowed = r === 'ACCEPT' || (r === 'RETURN' && (mark & MARK_ACCEPT) !== 0);
  return { action: allowed ? 'allow' : 'deny', logged };
}

function disagreements(
  where: string,
  world: World,
  locals: readonly IptablesEndpoint[],
  rs: Ruleset,
  packets: readonly { ifindex: number; direction: Direction; packet: Packet }[],
  settings: WorkloadEncapSettings = {},
): string[] {
  const problems: string[] = [];
  for (const pc of packets) {
    const local = locals.find((l) => l.iface === `tor${pc.ifindex}`);
    if (local === undefined) continue;
    // A pod's own tunnel traffic is dropped before policy (a guard, not a rule): no
    // policy chain runs, so nothing is logged.
    const want =
      pc.direction === 'egress' && workloadEncapDrop(pc.packet, settings) !== undefined
        ? { action: 'deny' as const, logged: false }
        : evaluate(world, local.endpoint, pc.direction, pc.packet);
    const got = judge(rs, local.iface, pc.direction, pc.packet);
    if (got.action !== want.action || got.logged !== want.logged) {
      problems.push(
        `${where}: ${pc.direction} of ${local.endpoint.key} ${JSON.stringify(pc.packet)}: ` +
          `iptables ${JSON.stringify(got)}, evaluator ${JSON.stringify(want)}`,
      );
    }
  }
  return problems;
}

function asLocals(locals: readonly { endpoint: World['endpoints'][number]; ifindex: number }[]) {
  return locals.map((l) => ({ iface: `tor${l.ifindex}`, endpoint: l.endpoint }));
}

describe('rendered iptables chains decide exactly as the reference evaluator', () => {
  it(`agrees on every packet of ${WORLDS} random worlds (first seed ${FIRST_SEED})`, () => {
    let judged = 0;
    let allowed = 0;
    let logged = 0;
    for (let seed = FIRST_SEED; seed < FIRST_SEED + WORLDS; seed++) {
      const c = randomCase(seed);
      const locals = asLocals(c.locals);
      const rs = render(c.world, locals);
      const problems = disagreements(`seed ${seed}`, c.world, locals, rs, c.packets);
      expect(problems.slice(0, 5), `randomCase(${seed}) disagrees`).toEqual([]);
      for (const pc of c.packets) {
        const local = c.locals.find((l) => l.ifindex === pc.ifindex)!;
        const v = evaluate(c.world, local.endpoint, pc.direction, pc.packet);
        judged++;
        if (v.action === 'allow') allowed++;
        if (v.logged) logged++;
      }
    }
    console.log(`iptables differential: ${judged} verdicts, ${allowed} allowed, ${logged} logged`);
    expect(judged).toBeGreaterThanOrEqual(10_000);
    expect(allowed).toBeGreaterThan(judged / 10);
    expect(judged - allowed).toBeGreaterThan(judged / 10);
    expect(logged).toBeGreaterThan(judged / 100);
  });

  it("drops a pod's IPIP and VXLAN before policy unless the node allows them, and agrees either way", () => {
    const encap = (p: Packet): Packet[] => [
      { ...p, protocol: 4, sport: 0, dport: 0 },
      { ...p, protocol: 17, dport: 4789 },
    ];
    let dropped = 0;
    let allowedWhenOn = 0;
    for (let seed = FIRST_SEED; seed < FIRST_SEED + 200; seed++) {
      const c = randomCase(seed);
      const locals = asLocals(c.locals);
      const packets = c.packets.flatMap((pc) =>
        encap(pc.packet).map((packet) => ({ ...pc, packet })),
      );
      for (const settings of [
        {},
        { allowIPIPPacketsFromWorkloads: true, allowVXLANPacketsFromWorkloads: true },
      ]) {
        const rs = render(c.world, locals, settings);
        const problems = disagreements(`seed ${seed}`, c.world, locals, rs, packets, settings);
        expect(problems.slice(0, 5), `randomCase(${seed}) ${JSON.stringify(settings)}`).toEqual([]);
        for (const pc of packets) {
          if (pc.direction !== 'egress') continue;
          const local = locals.find((l) => l.iface === `tor${pc.ifindex}`)!;
          const got = judge(rs, local.iface, 'egress', pc.packet);
          if (Object.keys(settings).length === 0) {
            expect(got.action).toBe('deny');
            dropped++;
          } else if (got.action === 'allow') allowedWhenOn++;
        }
      }
    }
    // Allowed, the same packets reach policy, which lets some of them through.
    expect(dropped).toBeGreaterThan(100);
    expect(allowedWhenOn).toBeGreaterThan(0);
  });

  it('agrees through chains of edits, and each plan rewrites exactly the chains whose rules changed', () => {
    for (let chain = 0; chain < 60; chain++) {
      const seed = FIRST_SEED + 1_000_000 + chain;
      const start = randomCase(seed);
      let world = start.world;
      let state = EMPTY_STATE;
      let previous: Ruleset | undefined;
      for (let step = 0; step <= 6; step++) {
        if (step > 0) world = fc.sample(editArb(world), { seed: seed * 31 + step, numRuns: 1 })[0]!;
        const locals = start.locals.flatMap((l) => {
          const endpoint = world.endpoints.find((e) => e.key === l.endpoint.key);
          return endpoint === undefined ? [] : [{ iface: `tor${l.ifindex}`, endpoint }];
        });
        if (locals.length === 0) continue;
        const rs = render(world, locals);
        const p = plan(rs, state);
        for (const name of rs.chains.keys()) {
          const before = previous?.chains.get(name);
          const same = JSON.stringify(before) === JSON.stringify(rs.chains.get(name));
          expect(p.writtenChains.includes(name), `seed ${seed} step ${step}: ${name}`).toBe(!same);
        }
        state = p.next;
        previous = rs;
        const packets = fc.sample(
          fc.array(
            packetArb({
              world,
              locals: locals.map((l) => ({
                endpoint: l.endpoint,
                ifindex: Number(l.iface.slice(3)),
                id: 1,
              })),
            }),
            { minLength: 24, maxLength: 24 },
          ),
          { seed: seed * 17 + step, numRuns: 1 },
        )[0]!;
        const problems = disagreements(`chain ${seed} step ${step}`, world, locals, rs, packets);
        expect(problems.slice(0, 5)).toEqual([]);
      }
    }
  });
});
