/**
 * Issue 11: sequences of packets across a policy change, through the real BPF object.
 *
 * The property: a flow a new policy denies stays denied whatever the peers send next.
 *
 * Per case (seeded, reproducible): a random world (worldgen), a flow — TCP opened by a
 * bare SYN, UDP, or ICMP echo — from a client to a server, taken only when the
 * evaluator allows it under that world. Three shapes:
 *
 *   local          client and server both pods of this node: every packet goes through
 *                  tortie_from_pod of its sender (client on ifindex 1, the server on an
 *                  existing device's ifindex: a test run needs one, and only records the
 *                  redirect), which judges both ends;
 *   remote-server  the client a local pod, the server a remote peer: the client's
 *                  packets leave by tortie_from_pod (IPIP to the peer's node), the
 *                  server's arrive on the uplink as IPIP from that known node
 *                  (tortie_from_uplink, decapsulated, judged for the pod);
 *   remote-client  the other way round: the client's packets arrive on the uplink.
 *
 * A few packets both ways must all pass. Then one to three random edits (worldgen's
 * editArb: policies added, removed or rewritten, labels, network sets) go through the
 * same incremental compiler, and a random sequence of further packets of that flow in
 * random directions (TCP: ACK, data, FIN, RST, a retransmitted SYN or SYN-ACK, a SYN
 * from the server) is predicted and checked packet by packet:
 *
 *   kept     the evaluator under the new world still allows the flow in its original
 *            direction (the client's egress if it is local, the server's ingress if it is
 *            local): every packet passes;
 *   revoked  otherwise: the first packet after the change, whichever way it travels,
 *            drops as DROP_POLICY_REVOKED; every later one is predicted as a node without
 *            that flow would treat it — a TCP segment that is not a bare SYN drops as
 *            DROP_CT_TCP_NOT_SYN, anything else is a new flow judged by the new policy
 *            (its sender's egress if local, its receiver's ingress if local) and drops as
 *            DROP_POLICY or DROP_NO_POLICY when denied. The only packets that may pass are
 *            new flows the new policy itself allows — which can only be opened by the
 *            server (the client's own tuple is the revoked flow) — and the packets of such
 *            a flow; they are counted as "reopened by the server".
 *
 * TORTIE_DIFF_SEQ_CASES sets the number of cases (default 2,000); TORTIE_DIFF_SEQ_SEED the
 * first seed. A failure names the seed and the whole sequence.
 */
import { readdirSync, readFileSync } from 'node:fs';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { NodeDataplane, type DataplaneEvent } from '../../src/dataplane/node-dataplane.js';
import { TcAction } from '../../src/maps/enums.js';
import { native } from '../../src/native/index.js';
import type { RingBuffer } from '../../src/native/types.js';
import type { LocalEndpoint } from '../../src/policy/compile/index.js';
import { evaluate } from '../../src/policy/evaluate.js';
import { tcpNotSynDrop } from '../../src/policy/guards.js';
import type { Endpoint, Packet, World } from '../../src/policy/model.js';
import {
  ethernet,
  frame,
  icmpEcho,
  ipv4,
  rawL4,
  TCP,
  tcp,
  udp,
  type L4,
} from '../../src/util/packets.js';
import { newRunId } from '../helpers/netns.js';
import { editArb, prng, worldArb } from '../helpers/worldgen.js';

const CASES = Number(process.env.TORTIE_DIFF_SEQ_CASES ?? 2_000);
const FIRST_SEED = Number(process.env.TORTIE_DIFF_SEQ_SEED ?? 20261211);
const pinRoot = `/sys/fs/bpf/tortie-t${newRunId()}`;

const LOOPBACK = 1;
const NODE = '192.0.2.1'; // this node on the underlay
const OTHER = '192.0.2.2'; // the remote peer's node
const IPPROTO_IPIP = 4;
/** Remote peers that are no endpoint of the world: inside and outside the pooled CIDRs. */
const STRAY_PEERS = ['10.0.1.3', '10.0.0.7', '172.16.0.9', '192.168.7.7', '8.8.8.8', '10.1.0.9'];
const DPORTS = [80, 53, 443, 8080, 9090, 9091, 22, 1000, 2000];

/**
 * A second existing device (test runs need a real ifindex; nothing is sent on it). A
 * machine with none could not run the local shape: that is a failure, not a skip.
 */
function secondIfindex(): number {
  const found = readdirSync('/sys/class/net')
    .map((d) => Number(readFileSync(`/sys/class/net/${d}/ifindex`, 'utf8')))
    .filter((i) => i > 1)
    .sort((a, b) => a - b);
  if (found[0] === undefined) {
    throw new Error('no network device besides lo: the local shape needs a second ifindex');
  }
  return found[0];
}

type Shape = 'local' | 'remote-server' | 'remote-client';
type Way = 'c2s' | 's2c';

interface Flow {
  shape: Shape;
  proto: 6 | 17 | 1;
  client: string;
  server: string;
  sport: number;
  dport: number;
  /** The ICMP echo identifier. */
  id: number;
  /** Keys of the local client / server (world endpoint keys), when local. */
  clientKey?: string;
  serverKey?: string;
}

interface Sent {
  way: Way;
  flags: number;
}

/** The evaluator's packet for a packet of the flow travelling `way`. */
function packetOf(f: Flow, way: Way): Packet {
  const [saddr, daddr] = way === 'c2s' ? [f.client, f.server] : [f.server, f.client];
  if (f.proto === 1)
    return {
      saddr,
      daddr,
      sport: 0,
      dport: 0,
      protocol: 1,
      icmpType: way === 'c2s' ? 8 : 0,
      icmpCode: 0,
    };
  const [sport, dport] = way === 'c2s' ? [f.sport, f.dport] : [f.dport, f.sport];
  return { saddr, daddr, sport, dport, protocol: f.proto };
}

function l4Of(f: Flow, s: Sent): L4 {
  const [sport, dport] = s.way === 'c2s' ? [f.sport, f.dport] : [f.dport, f.sport];
  if (f.proto === 6) return tcp({ sport, dport, flags: s.flags });
  if (f.proto === 17) return udp({ sport, dport });
  return icmpEcho({ id: f.id, reply: s.way === 's2c' });
}

function endpointOf(world: World, key: string | undefined): Endpoint | undefined {
  return key === undefined ? undefined : world.endpoints.find((e) => e.key === key);
}

/** Whether the new flow `p` (sent by `sender`, to `receiver`, local ones given) is allowed. */
function allowedNew(world: World, p: Packet, sender?: Endpoint, receiver?: Endpoint): boolean {
  if (sender && evaluate(world, sender, 'egress', p).action !== 'allow') return false;
  if (receiver && evaluate(world, receiver, 'ingress', p).action !== 'allow') return false;
  return true;
}

function sidesOf(world: World, f: Flow, way: Way): [Endpoint | undefined, Endpoint | undefined] {
  const c = endpointOf(world, f.clientKey);
  const s = endpointOf(world, f.serverKey);
  return way === 'c2s' ? [c, s] : [s, c];
}

/** The flow in its original direction under `world`: the local sides' verdicts. */
function flowAllowed(world: World, f: Flow): boolean {
  const [sender, receiver] = sidesOf(world, f, 'c2s');
  return allowedNew(world, packetOf(f, 'c2s'), sender, receiver);
}

const flagName = (flags: number): string =>
  [
    [TCP.SYN, 'S'],
    [TCP.ACK, 'A'],
    [TCP.PSH, 'P'],
    [TCP.FIN, 'F'],
    [TCP.RST, 'R'],
  ]
    .filter(([bit]) => (flags & (bit as number)) !== 0)
    .map(([, n]) => n)
    .join('');

describe('a flow a new policy denies stays denied whatever the peers send next', () => {
  let dp: NodeDataplane;
  let rb: RingBuffer;
  let events: DataplaneEvent[] = [];
  const serverIfindex = secondIfindex();

  beforeAll(() => {
    dp = NodeDataplane.open({ pinRoot, config: { traceVerdicts: false, dropEvents: true } });
    rb = dp.events((e) => events.push(e));
    dp.setNodeConfig({ underlayIp: NODE, uplinkIfindex: LOOPBACK });
    dp.setKnownNodes([OTHER]);
  });

  afterAll(() => {
    rb?.close();
    dp?.destroy();
  });

  /** One packet of the flow through the program its sender's side runs. */
  function send(
    f: Flow,
    s: Sent,
    ifindexOf: Map<string, number>,
  ): { passed: boolean; drops: string[] } {
    const [src, dst] = s.way === 'c2s' ? [f.client, f.server] : [f.server, f.client];
    const senderKey = s.way === 'c2s' ? f.clientKey : f.serverKey;
    const l4 = l4Of(f, s);
    events = [];
    let res: { retval: number };
    if (senderKey !== undefined) {
      res = native.testRun(dp.dp.programs.fromPod.fd, {
        data: frame({ src, dst }, l4),
        ctx: { ifindex: ifindexOf.get(senderKey)! },
      });
    } else {
      const data = ethernet(
        ipv4(
          { src: OTHER, dst: NODE, ttl: 64, df: true },
          rawL4(IPPROTO_IPIP, ipv4({ src, dst }, l4)),
        ),
        { src: '02:00:00:00:0a:02', dst: '02:00:00:00:0a:01' },
      );
      res = native.testRun(dp.dp.programs.fromUplink.fd, { data, ctx: { ifindex: LOOPBACK } });
    }
    rb.consume();
    return {
      passed: res.retval !== TcAction.SHOT,
      drops: events.filter((e) => e.type === 'drop').map((e) => e.reason),
    };
  }

  it(`holds over ${CASES} sequences across a policy change (seed ${FIRST_SEED})`, async () => {
    const started = Date.now();
    const failures: string[] = [];
    const counts = {
      cases: 0,
      worldsSkipped: 0,
      kept: 0,
      revoked: 0,
      packets: 0,
      reopened: 0,
      shapes: { local: 0, 'remote-server': 0, 'remote-client': 0 } as Record<Shape, number>,
      protos: { 6: 0, 17: 0, 1: 0 } as Record<6 | 17 | 1, number>,
      keptByShape: { local: 0, 'remote-server': 0, 'remote-client': 0 } as Record<Shape, number>,
      revokedByShape: { local: 0, 'remote-server': 0, 'remote-client': 0 } as Record<Shape, number>,
    };
    for (let seed = FIRST_SEED; counts.cases < CASES && failures.length === 0; seed++) {
      if (seed % 50 === 0) await new Promise((r) => setImmediate(r));
      const rand = prng(seed);
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
      const { world, locals } = fc.sample(worldArb(), { seed, numRuns: 1 })[0]!;

      // --- the flow ----------------------------------------------------------------
      const shapes: Shape[] = ['remote-server', 'remote-client'];
      if (locals.length >= 2) shapes.push('local', 'local');
      const shape = pick(shapes);
      const localIps = new Set(locals.map((l) => l.endpoint.ip));
      const remotes = [
        ...world.endpoints.filter((e) => !localIps.has(e.ip)).map((e) => e.ip),
        ...world.endpoints.filter((e) => !localIps.has(e.ip)).map((e) => e.ip),
        ...STRAY_PEERS.filter((ip) => !localIps.has(ip)),
      ];
      let flow: Flow | undefined;
      for (let attempt = 0; attempt < 8 && flow === undefined; attempt++) {
        const r = rand();
        const proto = r < 0.45 ? 6 : r < 0.8 ? 17 : 1;
        const a = pick(locals);
        const b = pick(
          locals.filter((l) => l !== a).length ? locals.filter((l) => l !== a) : locals,
        );
        const remote = pick(remotes);
        const candidate: Flow = {
          shape,
          proto,
          client: shape === 'remote-client' ? remote : a.endpoint.ip,
          server:
            shape === 'local' ? b.endpoint.ip : shape === 'remote-server' ? remote : a.endpoint.ip,
          clientKey: shape === 'remote-client' ? undefined : a.endpoint.key,
          serverKey:
            shape === 'local'
              ? b.endpoint.key
              : shape === 'remote-client'
                ? a.endpoint.key
                : undefined,
          sport: 1024 + Math.floor(rand() * 64000),
          dport: rand() < 0.8 ? pick(DPORTS) : Math.floor(rand() * 65536),
          id: Math.floor(rand() * 65536),
        };
        if (candidate.client !== candidate.server && flowAllowed(world, candidate))
          flow = candidate;
      }
      if (flow === undefined) {
        counts.worldsSkipped++;
        continue;
      }
      const f = flow;

      // --- the node: client on ifindex 1, a local server on a second device, the other
      // pods on ifindexes no test run uses; routes to every pod and the remote peer.
      const ifindexOf = new Map<string, number>();
      const localKey = f.shape === 'remote-client' ? f.serverKey! : f.clientKey!;
      ifindexOf.set(localKey, LOOPBACK);
      if (f.shape === 'local') ifindexOf.set(f.serverKey!, serverIfindex);
      const place = (w: World): LocalEndpoint[] =>
        locals.map((l, i) => ({
          endpoint: w.endpoints.find((e) => e.key === l.endpoint.key)!,
          ifindex: ifindexOf.get(l.endpoint.key) ?? 1_000_000 + i,
          id: l.id,
        }));
      dp.program(world, place(world));
      for (const [k] of dp.dp.views.routes.entries()) dp.dp.views.routes.delete(k);
      for (const [k] of dp.dp.views.ct.entries()) dp.dp.views.ct.delete(k);
      for (const l of place(world)) dp.setLocalRoute(l.endpoint.ip, l.ifindex);
      const remote =
        f.shape === 'remote-server' ? f.server : f.shape === 'remote-client' ? f.client : undefined;
      if (remote !== undefined) dp.setRemoteRoute(`${remote}/32`, OTHER, { ipip: true });

      const log: string[] = [];
      const where = (): string =>
        `seed ${seed}: ${f.shape} ${f.proto === 6 ? 'TCP' : f.proto === 17 ? 'UDP' : 'ICMP'} ` +
        `${f.client}${f.proto === 1 ? '' : `:${f.sport}`} -> ${f.server}${f.proto === 1 ? ` id ${f.id}` : `:${f.dport}`}` +
        ` (client ${f.clientKey ?? 'remote'}, server ${f.serverKey ?? 'remote'}); sequence: ${log.join(', ')}`;
      const describeSent = (s: Sent): string =>
        `${s.way}${f.proto === 6 ? ` ${flagName(s.flags)}` : ''}`;

      // --- before the change: everything passes ---------------------------------------
      const opening: Sent[] =
        f.proto === 6
          ? [
              { way: 'c2s', flags: TCP.SYN },
              { way: 's2c', flags: TCP.SYN | TCP.ACK },
              { way: 'c2s', flags: TCP.ACK },
            ]
          : [
              { way: 'c2s', flags: 0 },
              { way: 's2c', flags: 0 },
            ];
      const extra = Math.floor(rand() * 3);
      for (let i = 0; i < extra; i++)
        opening.push({ way: rand() < 0.5 ? 'c2s' : 's2c', flags: TCP.ACK | TCP.PSH });
      let ok = true;
      for (const s of opening) {
        counts.packets++;
        const o = send(f, s, ifindexOf);
        log.push(`${describeSent(s)} ${o.passed ? 'pass' : `DROP ${o.drops.join('/')}`}`);
        if (!o.passed) {
          failures.push(`${where()}: dropped before any policy change`);
          ok = false;
          break;
        }
      }
      if (!ok) break;

      // --- the change, through the same incremental compiler ------------------------------
      // Half the cases look (among a few random edit series) for one that denies the flow,
      // so that both outcomes come often; the others take the first series.
      const wantRevoked = rand() < 0.5;
      const edits = 1 + Math.floor(rand() * 3);
      let next = world;
      for (let tries = 0; tries < (wantRevoked ? 8 : 1); tries++) {
        next = world;
        for (let k = 0; k < edits; k++)
          next = fc.sample(editArb(next), {
            seed: seed * 7 + tries * 1_000_003 + k,
            numRuns: 1,
          })[0]!;
        if (!flowAllowed(next, f)) break;
      }
      dp.program(next, place(next));
      const keep = flowAllowed(next, f);
      log.push(`<policy change: ${edits} edit(s), flow ${keep ? 'still allowed' : 'now denied'}>`);
      counts.cases++;
      counts.shapes[f.shape]++;
      counts.protos[f.proto]++;
      if (keep) {
        counts.kept++;
        counts.keptByShape[f.shape]++;
      } else {
        counts.revoked++;
        counts.revokedByShape[f.shape]++;
      }

      // --- after the change: a random sequence, predicted packet by packet -------------------
      // The flows the node should hold after a revocation, as "saddr:sport>daddr:dport" of
      // their first packet (opened by the server under the new policy).
      const opened = new Set<string>();
      const tupleOf = (s: Sent): string => {
        const p = packetOf(f, s.way);
        return `${p.saddr}:${p.sport}>${p.daddr}:${p.dport}`;
      };
      const reverseOf = (s: Sent): string =>
        tupleOf({ ...s, way: s.way === 'c2s' ? 's2c' : 'c2s' });
      const tcpFlags = [
        TCP.ACK,
        TCP.ACK,
        TCP.ACK | TCP.PSH,
        TCP.ACK | TCP.PSH,
        TCP.FIN | TCP.ACK,
        TCP.RST,
        TCP.RST | TCP.ACK,
        TCP.SYN,
        TCP.SYN | TCP.ACK,
      ];
      const length = 3 + Math.floor(rand() * 6);
      for (let i = 0; i < length; i++) {
        const way: Way = rand() < 0.5 ? 'c2s' : 's2c';
        const s: Sent = { way, flags: f.proto === 6 ? pick(tcpFlags) : 0 };
        counts.packets++;
        const o = send(f, s, ifindexOf);
        log.push(`${describeSent(s)} ${o.passed ? 'pass' : `DROP ${o.drops.join('/')}`}`);
        const problem = (msg: string) =>
          failures.push(
            `${where()}: packet ${i + 1} after the change (${describeSent(s)}): ${msg}`,
          );
        if (keep) {
          if (!o.passed) problem('dropped, but the new policy still allows the flow');
          continue;
        }
        if (i === 0) {
          if (o.passed || o.drops[0] !== 'DROP_POLICY_REVOKED')
            problem(`expected DROP_POLICY_REVOKED, got ${o.passed ? 'pass' : o.drops.join('/')}`);
          continue;
        }
        // A node without the revoked flow: a flow the server opened since, or a new one.
        const p = packetOf(f, s.way);
        if (opened.has(tupleOf(s)) || opened.has(reverseOf(s))) {
          if (!o.passed)
            problem('dropped, but it belongs to a flow the new policy let the server open');
          continue;
        }
        if (tcpNotSynDrop(p, s.flags)) {
          if (o.passed || o.drops[0] !== 'DROP_CT_TCP_NOT_SYN')
            problem(`expected DROP_CT_TCP_NOT_SYN, got ${o.passed ? 'pass' : o.drops.join('/')}`);
          continue;
        }
        const [sender, receiver] = sidesOf(next, f, s.way);
        if (allowedNew(next, p, sender, receiver)) {
          if (s.way === 'c2s')
            problem('the evaluator allows the revoked flow again (test inconsistency)');
          if (!o.passed) problem('a new flow of the server the new policy allows was dropped');
          counts.reopened++;
          // A query reply opens nothing (ct_create4); anything else is tracked from here.
          if (f.proto !== 1) opened.add(tupleOf(s));
        } else if (o.passed || !['DROP_POLICY', 'DROP_NO_POLICY'].includes(o.drops[0] ?? '')) {
          problem(
            `expected DROP_POLICY or DROP_NO_POLICY, got ${o.passed ? 'pass' : o.drops.join('/')}`,
          );
        }
      }
    }
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    console.log(
      `differential-revocation: ${counts.cases} cases (${counts.worldsSkipped} worlds without an allowed flow skipped), ` +
        `${counts.revoked} revoked, ${counts.kept} kept, ${counts.packets} packets, ` +
        `${counts.reopened} packets of new flows the new policy let the server open; ` +
        `shapes ${JSON.stringify(counts.shapes)}, revoked by shape ${JSON.stringify(counts.revokedByShape)}, ` +
        `kept by shape ${JSON.stringify(counts.keptByShape)}, protocols ${JSON.stringify(counts.protos)}; ${seconds}s`,
    );
    expect(failures.slice(0, 5)).toEqual([]);
    // Both outcomes, in every shape, in a fair share.
    expect(counts.revoked).toBeGreaterThan(counts.cases / 10);
    expect(counts.kept).toBeGreaterThan(counts.cases / 10);
    for (const shape of ['local', 'remote-server', 'remote-client'] as const) {
      expect(counts.revokedByShape[shape], `revoked ${shape}`).toBeGreaterThan(counts.cases / 50);
      expect(counts.keptByShape[shape], `kept ${shape}`).toBeGreaterThan(counts.cases / 50);
    }
  }, 1_800_000);
});
