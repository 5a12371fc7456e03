/**
 * The compiled dataplane against the reference evaluator, through the real BPF object.
 *
 * Random worlds (endpoints, namespaces, network sets, tiers, policies with every rule
 * feature, profiles; now and then a policy of 10,000 rules) are compiled by the one
 * incremental compiler a node would run, the deltas are written to the real pinned maps,
 * and random packets are run through the real entry programs with BPF_PROG_TEST_RUN:
 * egress packets through tortie_from_pod, ingress packets through tortie_to_pod. The
 * object is loaded with verdict tracing on, so every policy decision it takes comes back
 * as a VERDICT event naming the endpoint, the action and the deciding rule; each must
 * equal what `evaluate` says for that endpoint, direction and packet — action, rule ref
 * and the Log flag — and the packet's tc verdict must follow from them.
 *
 * Seeded and reproducible: the failing seed is in the message. TORTIE_DIFF_CASES sets
 * the number of packets (default 100,000); TORTIE_DIFF_SEED the first seed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NodeDataplane, type DataplaneEvent } from '../../src/dataplane/node-dataplane.js';
import { ipToU32 } from '../../src/maps/addr.js';
import { polAddrSlot, polL4Slot, polSportKey } from '../../src/maps/policy-keys.js';
import { TcAction } from '../../src/maps/enums.js';
import { native } from '../../src/native/index.js';
import type { RingBuffer } from '../../src/native/types.js';
import type { EndpointEntry } from '../../src/policy/compile/index.js';
import { evaluate } from '../../src/policy/evaluate.js';
import { tcpNotSynDrop, workloadEncapDrop } from '../../src/policy/guards.js';
import type { Endpoint, Packet, Verdict } from '../../src/policy/model.js';
import { newRunId } from '../helpers/netns.js';
import { frame, icmp, rawL4, sctp, tcp, TCP, udp, type L4 } from '../../src/util/packets.js';
import { randomCase } from '../helpers/worldgen.js';
import { judge as softJudge } from '../helpers/softdataplane.js';

const CASES = Number(process.env.TORTIE_DIFF_CASES ?? 100_000);
const FIRST_SEED = Number(process.env.TORTIE_DIFF_SEED ?? 20261122);
const TEST_IFINDEX = 1; // test-run's skb->ifindex: tortie_ifaces[1] is the endpoint under test
const pinRoot = `/sys/fs/bpf/tortie-t${newRunId()}`;

/**
 * The TCP flags a generated packet carries: a bare SYN mostly, but one packet in five
 * is a segment of a flow the node does not track (an ACK, SYN-ACK, data, FIN or RST),
 * which the dataplane drops before policy (tcpNotSynDrop). Derived from the ports, so
 * a seed reproduces it.
 */
const STRAY_FLAGS = [TCP.ACK, TCP.SYN | TCP.ACK, TCP.ACK | TCP.PSH, TCP.FIN | TCP.ACK, TCP.RST];
function tcpFlagsOf(p: Packet): number {
  const h = (p.sport * 31 + p.dport * 7) % 25;
  return h < 20 ? TCP.SYN : STRAY_FLAGS[h - 20]!;
}

function l4Of(p: Packet): L4 {
  switch (p.protocol) {
    case 6:
      return tcp({ sport: p.sport, dport: p.dport, flags: tcpFlagsOf(p) });
    case 17:
      return udp({ sport: p.sport, dport: p.dport });
    case 136:
      return udp({ sport: p.sport, dport: p.dport, lite: true });
    case 132:
      return sctp({ sport: p.sport, dport: p.dport });
    case 1:
      return icmp({ type: p.icmpType ?? 8, code: p.icmpCode ?? 0 });
    default:
      return rawL4(p.protocol);
  }
}

/** A policy decision as the object reported it: its VERDICT event, and whether a LOG event followed it. */
interface Decision {
  event: DataplaneEvent;
  logged: boolean;
}

interface Observed {
  retval: number;
  decisions: Decision[];
}

/** One world in BIG_EVERY carries a policy of 10,000 rules. */
const BIG_EVERY = 400;

describe('compiled BPF maps decide exactly as the reference evaluator', () => {
  let dp: NodeDataplane;
  let rb: RingBuffer;
  let events: DataplaneEvent[] = [];

  beforeAll(() => {
    dp = NodeDataplane.open({ pinRoot, config: { traceVerdicts: true, dropEvents: false } });
    rb = dp.events((e) => events.push(e));
  });

  afterAll(() => {
    rb?.close();
    dp?.destroy();
  });

  function run(prog: 'fromPod' | 'toPod', packet: Packet): Observed {
    events = [];
    const res = native.testRun(dp.dp.programs[prog].fd, {
      data: frame({ src: packet.saddr, dst: packet.daddr }, l4Of(packet)),
      ctx: { ifindex: TEST_IFINDEX },
    });
    rb.consume();
    // Each packet must be judged as a new flow: forget what it left in conntrack.
    for (const [k] of dp.dp.views.ct.entries()) dp.dp.views.ct.delete(k);
    // The object reports each decision as VERDICT, then LOG when a Log rule matched first.
    const decisions = events.flatMap((e, i) =>
      e.type === 'verdict'
        ? [{ event: e, logged: events[i + 1]?.type === 'log' && events[i + 1]!.epId === e.epId }]
        : [],
    );
    return { retval: res.retval, decisions };
  }

  function same(where: string, d: Decision | undefined, expected: Verdict): string[] {
    if (!d) return [`${where}: no verdict event (expected ${expected.action} by ${expected.rule})`];
    const { event: ev, logged } = d;
    const problems: string[] = [];
    if (ev.action !== expected.action)
      problems.push(
        `${where}: action ${ev.action}, evaluator ${expected.action} (${expected.rule})`,
      );
    if (ev.rule !== expected.rule)
      problems.push(`${where}: rule ${ev.rule}, evaluator ${expected.rule}`);
    if (logged !== expected.logged)
      problems.push(`${where}: logged ${logged}, evaluator ${expected.logged}`);
    return problems;
  }

  it(`agrees on ${CASES} random packets over random worlds (seed ${FIRST_SEED})`, async () => {
    let packets = 0;
    let worlds = 0;
    let bigWorlds = 0;
    let allowed = 0;
    let redirected = 0;
    let guarded = 0;
    let loopback = 0;
    let bySport = 0;
    const failures: string[] = [];
    for (let seed = FIRST_SEED; packets < CASES && failures.length === 0; seed++) {
      // Let vitest's worker talk to its parent now and then (a long synchronous loop starves it).
      if (worlds % 50 === 0) await new Promise((r) => setImmediate(r));
      const c = randomCase(seed, { bigPolicyChance: worlds % BIG_EVERY === BIG_EVERY - 1 ? 1 : 0 });
      worlds++;
      if (c.world.policies.some((p) => p.ingress.length + p.egress.length >= 10_000)) bigWorlds++;
      dp.program(c.world, [...c.locals]);
      const state = dp.compiled!;
      // Routes: every local endpoint is reachable by local delivery (ingress judged too).
      for (const [k] of dp.dp.views.routes.entries()) dp.dp.views.routes.delete(k);
      for (const l of c.locals) dp.setLocalRoute(l.endpoint.ip, l.ifindex);
      const byIp = new Map<string, { endpoint: Endpoint; entry: EndpointEntry }>(
        c.locals.map((l) => [
          l.endpoint.ip,
          { endpoint: l.endpoint, entry: state.endpoints.get(l.ifindex)! },
        ]),
      );

      for (const pc of c.packets) {
        if (packets >= CASES) break;
        packets++;
        const local = c.locals.find((l) => l.ifindex === pc.ifindex)!;
        const entry = state.endpoints.get(pc.ifindex)!;
        dp.dp.views.ifaces.update(TEST_IFINDEX, {
          ip: ipToU32(local.endpoint.ip),
          id: entry.id,
          ingress_set: entry.ingressSet,
          egress_set: entry.egressSet,
          policy_rev: entry.policyRev,
          flags: 0,
        });
        const where = `seed ${seed} packet ${JSON.stringify(pc.packet)} ${pc.direction} of ${local.endpoint.key}`;
        const first = evaluate(c.world, local.endpoint, pc.direction, pc.packet);
        // Whether the compiled maps decide this packet in the source-port stage.
        const soft = softJudge(state, pc.ifindex, pc.direction, pc.packet);
        if (soft.ok && soft.raw.sportClass !== undefined) bySport++;
        if (tcpNotSynDrop(pc.packet, tcpFlagsOf(pc.packet))) {
          // A segment of no tracked flow without a bare SYN: dropped before any policy.
          const o = run(pc.direction === 'ingress' ? 'toPod' : 'fromPod', pc.packet);
          guarded++;
          if (o.decisions.length > 0)
            failures.push(`${where}: a TCP segment without SYN reached policy`);
          if (o.retval !== TcAction.SHOT)
            failures.push(`${where}: tc verdict ${o.retval}, expected ${TcAction.SHOT}`);
        } else if (pc.direction === 'ingress') {
          const o = run('toPod', pc.packet);
          failures.push(...same(where, o.decisions[0], first));
          const want = first.action === 'allow' ? TcAction.OK : TcAction.SHOT;
          if (o.retval !== want)
            failures.push(`${where}: tc verdict ${o.retval}, expected ${want}`);
          if (first.action === 'allow') allowed++;
        } else if (workloadEncapDrop(pc.packet) !== undefined) {
          // A pod's own IPIP / VXLAN: dropped by the guard before any policy decision.
          const o = run('fromPod', pc.packet);
          guarded++;
          if (o.decisions.length > 0)
            failures.push(`${where}: tunnel traffic from a pod reached policy`);
          if (o.retval !== TcAction.SHOT)
            failures.push(`${where}: tc verdict ${o.retval}, expected ${TcAction.SHOT}`);
        } else if (pc.packet.daddr.startsWith('127.')) {
          // Outside policy (docs/policy-semantics.md): a pod's packet to 127.0.0.0/8 is
          // dropped before any policy decision, whatever the evaluator would say.
          const o = run('fromPod', pc.packet);
          if (o.decisions.length > 0 || o.retval !== TcAction.SHOT)
            failures.push(
              `${where}: to loopback, tc verdict ${o.retval} after ${o.decisions.length} decisions (expected a drop before policy)`,
            );
          loopback++;
        } else {
          const o = run('fromPod', pc.packet);
          failures.push(...same(where, o.decisions[0], first));
          // A local receiver (not the sender itself) is judged next, by its ingress policy.
          const receiver = byIp.get(pc.packet.daddr);
          let want: number = first.action === 'allow' ? TcAction.OK : TcAction.SHOT;
          if (first.action === 'allow' && receiver && receiver.entry) {
            const second = evaluate(c.world, receiver.endpoint, 'ingress', pc.packet);
            failures.push(
              ...same(`${where} -> ingress of ${receiver.endpoint.key}`, o.decisions[1], second),
            );
            want = second.action === 'allow' ? TcAction.REDIRECT : TcAction.SHOT;
            if (second.action === 'allow') redirected++;
          }
          if (o.retval !== want)
            failures.push(`${where}: tc verdict ${o.retval}, expected ${want}`);
          if (want !== TcAction.SHOT) allowed++;
        }
      }
    }
    console.log(
      `differential: ${packets} packets over ${worlds} worlds (${bigWorlds} with a 10,000-rule policy): ` +
        `${allowed} passed, ${packets - allowed} dropped, ${redirected} delivered locally, ` +
        `${guarded} tunnel packets from pods or TCP segments without SYN dropped before policy, ` +
        `${loopback} to 127.0.0.0/8, ${bySport} first decisions through the source-port stage`,
    );
    expect(failures.slice(0, 10)).toEqual([]);
    // The generator must exercise both outcomes, or agreement would prove little.
    expect(allowed).toBeGreaterThan(packets / 10);
    expect(packets - allowed).toBeGreaterThan(packets / 10);
    expect(bySport).toBeGreaterThan(packets / 1000);
  }, 1_800_000);

  it('leaves the pinned maps holding exactly the compiled state after a series of updates', () => {
    for (let seed = FIRST_SEED; seed < FIRST_SEED + 30; seed++) {
      const c = randomCase(seed + 1_000_000);
      dp.program(c.world, [...c.locals]);
    }
    const state = dp.compiled!;
    // Every compiled entry in the map of its stage that holds its prefix length, and
    // nothing else in any of them.
    const v = dp.dp.views;
    const stored = new Map<string, string>();
    const collect = (role: string, entries: [unknown, unknown][]) => {
      for (const [k, val] of entries) {
        stored.set(`${role} ${JSON.stringify(k)}`, JSON.stringify(val));
      }
    };
    collect('polIp32', v.polIp32.entries());
    collect('polAddr', v.polAddr.entries());
    collect('polPort', v.polPort.entries());
    collect('polL4', v.polL4.entries());
    collect('polDflt', v.polDflt.entries());
    collect('polSport', v.polSport.entries());
    const expected = new Map<string, string>();
    for (const e of state.addr.values()) {
      const slot = polAddrSlot(e.setId, e.addr, e.bits);
      const value = { class_id: e.classId };
      expected.set(`${slot.map} ${JSON.stringify(slot.key)}`, JSON.stringify(value));
    }
    for (const e of state.l4.values()) {
      const slot = polL4Slot(e.classId, e.l4, e.bits);
      const verdict = { action: e.action, flags: e.flags, reserved: 0, rule_id: e.ruleId };
      expected.set(`${slot.map} ${JSON.stringify(slot.key)}`, JSON.stringify(verdict));
    }
    for (const e of state.sport.values()) {
      const key = polSportKey(e.classId, e.sport, e.bits);
      const verdict = { action: e.action, flags: e.flags, reserved: 0, rule_id: e.ruleId };
      expected.set(`polSport ${JSON.stringify(key)}`, JSON.stringify(verdict));
    }
    expect(stored.size).toBe(state.addr.size + state.l4.size + state.sport.size);
    expect(stored).toEqual(expected);
    const ifaces = new Map(dp.dp.views.ifaces.entries());
    for (const [ifindex, e] of state.endpoints) {
      expect(ifaces.get(ifindex), `ifindex ${ifindex}`).toMatchObject({
        ingress_set: e.ingressSet,
        egress_set: e.egressSet,
        policy_rev: e.policyRev,
      });
    }
  });
});
