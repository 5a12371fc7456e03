/**
 * IPIP through the real programs (BPF_PROG_TEST_RUN, root): encapsulation in
 * tortie_from_pod (the output bytes, field by field) and in tortie_to_uplink (the
 * node's own packets), decapsulation in tortie_from_uplink (then the receiver's
 * ingress policy and the redirect), and every way the uplink refuses a packet, each
 * with its reason counted and reported.
 *
 * This node is 192.0.2.1 on the underlay; the other node, 192.0.2.2, owns the block
 * 10.2.0.0/26. The endpoint under test is the pod 10.1.0.5 on ifindex 1 (loopback, what
 * test runs use), egress set 10 (TCP 80 and UDP allowed, rest denied by 102). For the
 * decapsulation tests the receiving pod is the same address behind ifindex 1000 (a
 * route, never a device: a test run only records the redirect), ingress set 20 (TCP 80
 * from the remote pod allowed by 201; rest denied by 299).
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import {
  Dir,
  EventType,
  ipToU32,
  Reason,
  RouteFlags,
  RouteType,
  TcAction,
} from '../../src/maps/index.js';
import { native } from '../../src/native/index.js';
import {
  ETH_HLEN,
  ETH_P,
  ethernet,
  frame,
  inetChecksum,
  IP_OPTION_ROUTER_ALERT,
  ipv4,
  ipv6,
  arpRequest,
  PROTO,
  rawL4,
  readIpv4,
  TCP,
  tcp,
  truncate,
  udp,
  type Ipv4Options,
  type L4,
} from '../../src/util/packets.js';
import { execInOk, ipJson, TestNetnsSet } from '../helpers/netns.js';
import { BpfHarness, LOOPBACK } from './bpf-harness.js';

const NODE = '192.0.2.1'; // this node
const OTHER = '192.0.2.2'; // the node owning REMOTE_BLOCK
const STRANGER = '198.51.100.7'; // on the underlay, not a node
const POD = '10.1.0.5';
const REMOTE_POD = '10.2.0.9';
const REMOTE_BLOCK = { addr: '10.2.0.0', bits: 26 };
const EP = 7;
const RECEIVER_IFINDEX = 1000;
const RECEIVER_EP = 8;
const IPPROTO_IPIP = 4;
const UPLINK_MAC = '02:00:00:00:0a:01';
const OTHER_MAC = '02:00:00:00:0a:02';

// ---- seeding ---------------------------------------------------------------------------

function seedNode(h: BpfHarness, o: { uplink?: number; underlay?: string } = {}): void {
  h.dp.views.nodeCfg.update(0, {
    underlay_ip: ipToU32(o.underlay ?? NODE),
    uplink_ifindex: o.uplink ?? LOOPBACK,
  });
  h.dp.views.nodes.update(ipToU32(OTHER), { flags: 0 });
}

function remoteRoute(h: BpfHarness, ipip: boolean): void {
  h.dp.views.routes.update(
    { prefixlen: REMOTE_BLOCK.bits, addr: ipToU32(REMOTE_BLOCK.addr) },
    {
      type: RouteType.REMOTE_BLOCK,
      ifindex: 0,
      next_hop: ipToU32(OTHER),
      flags: ipip ? RouteFlags.IPIP : RouteFlags.NONE,
    },
  );
}

function seedSender(h: BpfHarness): void {
  h.endpoint(LOOPBACK, { ip: POD, id: EP, egressSet: 10, ingressSet: 30 });
  h.policySet(10, [{ cidr: '0.0.0.0/0', classId: 1 }]);
  h.policyClass(1, [
    { proto: PROTO.TCP, port: 80, action: 'allow', ruleId: 101 },
    { proto: PROTO.UDP, action: 'allow', ruleId: 103 },
    { action: 'deny', ruleId: 102 },
  ]);
  h.policySet(30, [{ cidr: '0.0.0.0/0', classId: 3 }]);
  h.policyClass(3, [{ action: 'allow', ruleId: 301 }]);
}

function seedReceiver(h: BpfHarness): void {
  h.endpoint(RECEIVER_IFINDEX, { ip: POD, id: RECEIVER_EP, ingressSet: 20, egressSet: 10 });
  h.localRoute(POD, RECEIVER_IFINDEX);
  h.policySet(20, [
    { cidr: `${REMOTE_POD}/32`, classId: 2 },
    { cidr: '0.0.0.0/0', classId: 4 },
  ]);
  h.policyClass(2, [
    { proto: PROTO.TCP, port: 80, action: 'allow', ruleId: 201 },
    { action: 'deny', ruleId: 299 },
  ]);
  h.policyClass(4, [{ action: 'deny', ruleId: 499 }]);
}

// ---- packets -----------------------------------------------------------------------------

const syn = (dport = 80, sport = 40000): L4 => tcp({ sport, dport, flags: TCP.SYN });

/** A pod's datagram (no Ethernet). */
const datagram = (ip: Partial<Ipv4Options>, l4: L4): Buffer =>
  ipv4({ src: POD, dst: REMOTE_POD, ...ip }, l4);

/** IPIP as another node sends it: Ethernet, outer header, the inner datagram as is. */
function ipip(inner: Buffer, outer: Partial<Ipv4Options> = {}): Buffer {
  return ethernet(
    ipv4({ src: OTHER, dst: NODE, ttl: 64, df: true, ...outer }, rawL4(IPPROTO_IPIP, inner)),
    {
      src: OTHER_MAC,
      dst: UPLINK_MAC,
    },
  );
}

/** The remote pod's datagram to the local pod. */
const inbound = (l4: L4, ip: Partial<Ipv4Options> = {}): Buffer =>
  ipv4({ src: REMOTE_POD, dst: POD, ...ip }, l4);

// ---- reading output ----------------------------------------------------------------------

interface Outer {
  version: number;
  ihl: number;
  tos: number;
  totalLength: number;
  id: number;
  df: boolean;
  mf: boolean;
  fragOffset: number;
  ttl: number;
  proto: number;
  src: string;
  dst: string;
  checksumOk: boolean;
}

function readOuter(out: Buffer): Outer {
  const ip = out.subarray(ETH_HLEN);
  const v = readIpv4(out);
  const flags = ip.readUInt16BE(6);
  return {
    version: ip[0]! >> 4,
    ihl: v.ihl,
    tos: ip[1]!,
    totalLength: v.totalLength,
    id: ip.readUInt16BE(4),
    df: (flags & 0x4000) !== 0,
    mf: (flags & 0x2000) !== 0,
    fragOffset: flags & 0x1fff,
    ttl: v.ttl,
    proto: v.proto,
    src: v.src,
    dst: v.dst,
    checksumOk: v.checksumOk,
  };
}

describe('IPIP in BPF', () => {
  let h: BpfHarness;
  beforeAll(() => {
    h = new BpfHarness();
  });
  afterAll(() => {
    h?.close();
  });
  beforeEach(() => {
    h.reset();
    seedSender(h);
    seedNode(h);
    remoteRoute(h, true);
  });

  describe('encapsulation (tortie_from_pod, route REMOTE_BLOCK with IPIP)', () => {
    it('adds an outer header node → owning node (protocol 4, TTL 64, DF copied, checksum right) and redirects', () => {
      const sent = datagram({ ttl: 64, df: true, tos: 0xb9, id: 0x4242 }, syn());
      const input = ethernet(sent);
      const { retval, data } = h.run('fromPod', input);

      expect(retval).toBe(TcAction.REDIRECT);
      expect(data.length).toBe(input.length + 20);
      // The Ethernet header is left for bpf_redirect_neigh to rewrite.
      expect(data.subarray(0, ETH_HLEN)).toEqual(input.subarray(0, ETH_HLEN));
      expect(readOuter(data)).toEqual({
        version: 4,
        ihl: 20,
        tos: 0xb9,
        totalLength: sent.length + 20,
        id: 0,
        df: true,
        mf: false,
        fragOffset: 0,
        ttl: 64,
        proto: IPPROTO_IPIP,
        src: NODE,
        dst: OTHER,
        checksumOk: true,
      });
      // Inside: the pod's datagram, forwarded once (TTL 63, header checksum updated), else intact.
      const expectedInner = datagram({ ttl: 63, df: true, tos: 0xb9, id: 0x4242 }, syn());
      expect(data.subarray(ETH_HLEN + 20)).toEqual(expectedInner);
      expect(inetChecksum(data.subarray(ETH_HLEN + 20, ETH_HLEN + 40))).toBe(0);
    });

    it('leaves DF clear on the outer header when the inner packet may be fragmented', () => {
      const input = ethernet(
        datagram({ df: false }, udp({ sport: 5000, dport: 53, payload: Buffer.alloc(100, 1) })),
      );
      const { retval, data } = h.run('fromPod', input);
      expect(retval).toBe(TcAction.REDIRECT);
      const outer = readOuter(data);
      expect(outer).toMatchObject({ df: false, proto: IPPROTO_IPIP, checksumOk: true });
      expect(outer.totalLength).toBe(input.length - ETH_HLEN + 20);
    });

    it('counts the packet for the sender by its policy reason, and towards the uplink as PASS_ENCAP', () => {
      const input = ethernet(datagram({}, syn()));
      h.run('fromPod', input);
      expect(h.metric(EP, Reason.PASS_POLICY, Dir.FROM_POD).packets).toBe(1n);
      expect(h.metric(EP, Reason.PASS_ENCAP, Dir.TO_UPLINK)).toEqual({
        packets: 1n,
        bytes: BigInt(input.length),
      });
      // The flow is tracked like any other: the next packet is ESTABLISHED.
      h.run('fromPod', ethernet(datagram({}, tcp({ sport: 40000, dport: 80, flags: TCP.ACK }))));
      expect(h.metric(EP, Reason.PASS_CT_ESTABLISHED, Dir.FROM_POD).packets).toBe(1n);
      expect(h.metric(EP, Reason.PASS_ENCAP, Dir.TO_UPLINK).packets).toBe(2n);
    });

    it('judges egress policy first: a denied packet is never encapsulated', () => {
      const input = ethernet(datagram({}, syn(22)));
      const { retval, data } = h.run('fromPod', input);
      expect(retval).toBe(TcAction.SHOT);
      expect(data).toEqual(input);
      expect(h.metric(EP, Reason.DROP_POLICY, Dir.FROM_POD).packets).toBe(1n);
      expect(h.metric(EP, Reason.PASS_ENCAP, Dir.TO_UPLINK).packets).toBe(0n);
    });

    it('a packet whose TTL runs out goes to the host stack (Time Exceeded), not into the tunnel', () => {
      const input = ethernet(datagram({ ttl: 1 }, syn()));
      const { retval, data } = h.run('fromPod', input);
      expect(retval).toBe(TcAction.OK);
      expect(data).toEqual(input);
      expect(h.metric(EP, Reason.PASS_HOST_ROUTE, Dir.TO_UPLINK).packets).toBe(1n);
    });

    it('without an underlay address configured, drops as DROP_NO_UPLINK and says so', () => {
      h.dp.views.nodeCfg.update(0, { underlay_ip: 0, uplink_ifindex: 0 });
      const { retval } = h.run('fromPod', ethernet(datagram({}, syn())));
      expect(retval).toBe(TcAction.SHOT);
      expect(h.metric(EP, Reason.DROP_NO_UPLINK, Dir.TO_UPLINK).packets).toBe(1n);
      expect(h.events()).toMatchObject([
        { type: EventType.DROP, reason: Reason.DROP_NO_UPLINK, ep_id: EP, dir: Dir.TO_UPLINK },
      ]);
      // Nothing was tracked for a packet that never left.
      expect(h.dp.views.ct.entries()).toEqual([]);
    });

    it('an uplink that does not exist (any more) drops as DROP_NO_UPLINK', () => {
      h.dp.views.nodeCfg.update(0, { underlay_ip: ipToU32(NODE), uplink_ifindex: 0x7ffffff0 });
      expect(h.run('fromPod', ethernet(datagram({}, syn()))).retval).toBe(TcAction.SHOT);
      expect(h.metric(EP, Reason.DROP_NO_UPLINK, Dir.TO_UPLINK).packets).toBe(1n);
    });

    describe('the uplink MTU (no fragmentation in BPF)', () => {
      // The MTU check looks the uplink up in the caller's network namespace: run these
      // test runs inside a namespace whose veth has MTU 1400.
      const run = new TestNetnsSet();
      let nsFd: number | undefined;
      let uplink = 0;
      beforeAll(async () => {
        const ns = await run.create('mtu');
        await execInOk(ns.path, 'ip', [
          'link',
          'add',
          'up0',
          'mtu',
          '1400',
          'type',
          'veth',
          'peer',
          'name',
          'up1',
        ]);
        uplink = (await ipJson<{ ifindex: number }[]>(ns.path, ['link', 'show', 'up0']))[0]!
          .ifindex;
        nsFd = native.enterNetns(ns.path);
      });
      afterAll(async () => {
        if (nsFd !== undefined) native.restoreNetns(nsFd);
        await run.removeAll();
      });

      const sized = (total: number, df = true): Buffer =>
        ethernet(
          datagram({ df }, udp({ sport: 5000, dport: 53, payload: Buffer.alloc(total - 28, 7) })),
        );

      it('a packet that fits with the 20 bytes added (1380 → 1400) is encapsulated', () => {
        seedNode(h, { uplink });
        const { retval, data } = h.run('fromPod', sized(1380));
        expect(retval).toBe(TcAction.REDIRECT);
        expect(readOuter(data).totalLength).toBe(1400);
      });

      it('one byte more (1381 → 1401) without DF drops as DROP_ENCAP_MTU, unchanged', () => {
        seedNode(h, { uplink });
        const input = sized(1381, false);
        const { retval, data } = h.run('fromPod', input);
        expect(retval).toBe(TcAction.SHOT);
        expect(data).toEqual(input);
        expect(h.metric(EP, Reason.DROP_ENCAP_MTU, Dir.TO_UPLINK).packets).toBe(1n);
      });

      it('one byte more with DF is answered: ICMP fragmentation needed, MTU 1380, back into the pod', () => {
        seedNode(h, { uplink });
        const input = sized(1381);
        const { retval, data } = h.run('fromPod', input);
        expect(retval).toBe(TcAction.REDIRECT);
        // MACs swapped: from the gateway back to the pod.
        expect(data.subarray(0, 6)).toEqual(input.subarray(6, 12));
        expect(data.subarray(6, 12)).toEqual(input.subarray(0, 6));
        expect(data.length).toBe(ETH_HLEN + 20 + 8 + 28);
        expect(readIpv4(data)).toMatchObject({
          src: NODE,
          dst: POD,
          proto: PROTO.ICMP,
          totalLength: 56,
          checksumOk: true,
        });
        const icmp = data.subarray(ETH_HLEN + 20);
        expect({ type: icmp[0], code: icmp[1], mtu: icmp.readUInt16BE(6) }).toEqual({
          type: 3,
          code: 4,
          mtu: 1380,
        });
        expect(inetChecksum(icmp)).toBe(0);
        // It quotes the pod's header (TTL not lowered: the packet never left) and 8 bytes.
        expect(icmp.subarray(8)).toEqual(input.subarray(ETH_HLEN, ETH_HLEN + 28));
        expect(h.metric(EP, Reason.DROP_FRAG_NEEDED, Dir.TO_UPLINK).packets).toBe(1n);
        expect(h.metric(EP, Reason.DROP_ENCAP_MTU, Dir.TO_UPLINK).packets).toBe(0n);
        expect(h.events()).toMatchObject([
          { type: EventType.DROP, reason: Reason.DROP_FRAG_NEEDED, ep_id: EP, dir: Dir.TO_UPLINK },
        ]);
        // Nothing was tracked for a packet that never left.
        expect(h.dp.views.ct.entries()).toEqual([]);
      });
    });
  });

  describe('without encapsulation (ipipMode Never): routed in BPF by the kernel FIB (tortie_from_pod)', () => {
    // bpf_fib_lookup asks the FIB of the caller's namespace: these test runs go inside
    // one where 10.2.0.0/26 is routed via the other node (192.0.2.2) out of fib0.
    const run = new TestNetnsSet();
    let nsPath = '';
    let nsFd: number | undefined;
    let fibIfindex = 0;
    let fibMac = '';
    const sysctlForwarding = (on: boolean) =>
      execInOk(nsPath, 'sysctl', ['-qw', `net.ipv4.ip_forward=${on ? 1 : 0}`]);
    beforeAll(async () => {
      const ns = await run.create('fib');
      nsPath = ns.path;
      for (const args of [
        ['link', 'set', 'lo', 'up'],
        ['link', 'add', 'fib0', 'type', 'veth', 'peer', 'name', 'fib1'],
        ['link', 'set', 'fib0', 'up'],
        ['link', 'set', 'fib1', 'up'],
        ['addr', 'add', `${NODE}/24`, 'dev', 'fib0'],
        ['route', 'add', `${REMOTE_BLOCK.addr}/${REMOTE_BLOCK.bits}`, 'via', OTHER, 'dev', 'fib0'],
      ])
        await execInOk(ns.path, 'ip', args);
      const [link] = await ipJson<{ ifindex: number; address: string }[]>(ns.path, [
        'link',
        'show',
        'fib0',
      ]);
      fibIfindex = link!.ifindex;
      fibMac = link!.address;
      nsFd = native.enterNetns(ns.path);
    });
    afterAll(async () => {
      if (nsFd !== undefined) native.restoreNetns(nsFd);
      await run.removeAll();
    });
    beforeEach(async () => {
      remoteRoute(h, false);
      await sysctlForwarding(true);
      await execInOk(nsPath, 'ip', [
        'neigh',
        'replace',
        OTHER,
        'lladdr',
        OTHER_MAC,
        'dev',
        'fib0',
        'nud',
        'permanent',
      ]);
    });

    it("writes the next hop's and the egress interface's MACs, lowers the TTL, and redirects", () => {
      const input = ethernet(datagram({ ttl: 64, tos: 0x10 }, syn()));
      const { retval, data } = h.run('fromPod', input);
      expect(retval).toBe(TcAction.REDIRECT);
      expect(data.length).toBe(input.length);
      expect(data.subarray(0, ETH_HLEN)).toEqual(
        ethernet(Buffer.alloc(0), { dst: OTHER_MAC, src: fibMac }),
      );
      expect(data.subarray(ETH_HLEN)).toEqual(datagram({ ttl: 63, tos: 0x10 }, syn()));
      expect(inetChecksum(data.subarray(ETH_HLEN, ETH_HLEN + 20))).toBe(0);
      expect(h.metric(EP, Reason.PASS_POLICY, Dir.FROM_POD).packets).toBe(1n);
      expect(h.metric(EP, Reason.PASS_FIB, Dir.TO_UPLINK).packets).toBe(1n);
      expect(h.dp.views.ct.entries().length).toBe(1);
      expect(fibIfindex).toBeGreaterThan(1);
    });

    it('with the next hop unresolved, leaves the MACs to bpf_redirect_neigh (TTL lowered)', async () => {
      await execInOk(nsPath, 'ip', ['neigh', 'del', OTHER, 'dev', 'fib0']);
      const input = ethernet(datagram({ ttl: 64 }, syn()));
      const { retval, data } = h.run('fromPod', input);
      expect(retval).toBe(TcAction.REDIRECT);
      expect(data.subarray(0, ETH_HLEN)).toEqual(input.subarray(0, ETH_HLEN));
      expect(readIpv4(data)).toMatchObject({ ttl: 63, checksumOk: true });
      expect(h.metric(EP, Reason.PASS_FIB, Dir.TO_UPLINK).packets).toBe(1n);
    });

    it('hands to the host stack untouched what it must answer for: TTL 1, forwarding off, no route', async () => {
      const cases: [string, Buffer, () => Promise<unknown>][] = [
        ['TTL 1 (Time Exceeded)', ethernet(datagram({ ttl: 1 }, syn())), () => Promise.resolve()],
        ['forwarding off', ethernet(datagram({}, syn(80, 40001))), () => sysctlForwarding(false)],
        [
          'no route',
          ethernet(datagram({}, syn(80, 40002))),
          () =>
            execInOk(nsPath, 'ip', ['route', 'del', `${REMOTE_BLOCK.addr}/${REMOTE_BLOCK.bits}`]),
        ],
      ];
      for (const [name, input, before] of cases) {
        await before();
        const { retval, data } = h.run('fromPod', input);
        expect({ name, retval, same: data.equals(input) }).toEqual({
          name,
          retval: TcAction.OK,
          same: true,
        });
      }
      expect(h.metric(EP, Reason.PASS_HOST_ROUTE, Dir.TO_UPLINK).packets).toBe(3n);
      expect(h.metric(EP, Reason.PASS_FIB, Dir.TO_UPLINK).packets).toBe(0n);
      await execInOk(nsPath, 'ip', [
        'route',
        'add',
        `${REMOTE_BLOCK.addr}/${REMOTE_BLOCK.bits}`,
        'via',
        OTHER,
        'dev',
        'fib0',
      ]);
    });
  });

  describe("the node's own packets (tortie_to_uplink)", () => {
    // The kernel routed them out of the uplink towards the owning node: the Ethernet
    // header already names the next hop, so they are encapsulated in place.
    const fromNode = (dst: string, l4: L4 = syn()): Buffer =>
      ethernet(ipv4({ src: NODE, dst, df: true }, l4), { src: UPLINK_MAC, dst: OTHER_MAC });

    it('encapsulates a packet to a remote block routed with IPIP, TTL untouched, and lets it go on', () => {
      const input = fromNode(REMOTE_POD);
      const { retval, data } = h.run('toUplink', input);
      expect(retval).toBe(TcAction.OK);
      expect(data.subarray(0, ETH_HLEN)).toEqual(input.subarray(0, ETH_HLEN));
      expect(readOuter(data)).toMatchObject({
        src: NODE,
        dst: OTHER,
        proto: IPPROTO_IPIP,
        ttl: 64,
        df: true,
        totalLength: input.length - ETH_HLEN + 20,
        checksumOk: true,
      });
      expect(data.subarray(ETH_HLEN + 20)).toEqual(input.subarray(ETH_HLEN));
      expect(h.metric(0, Reason.PASS_ENCAP, Dir.TO_UPLINK).packets).toBe(1n);
    });

    it('passes untouched what is IPIP already, not for an IPIP block, or not IPv4', () => {
      remoteRoute(h, true);
      const pods = h.run('fromPod', ethernet(datagram({}, syn()))).data; // encapsulated by tortie_from_pod
      const cases: [string, Buffer][] = [
        ['a pod packet encapsulated already', pods],
        ['to the other node itself', fromNode(OTHER)],
        ['to an address no route names', fromNode('203.0.113.1')],
        ['ARP', arpRequest({ senderIp: NODE, target: OTHER, senderMac: UPLINK_MAC })],
      ];
      for (const [name, input] of cases) {
        const { retval, data } = h.run('toUplink', input);
        expect({ name, retval, same: data.equals(input) }).toEqual({
          name,
          retval: TcAction.OK,
          same: true,
        });
      }
      remoteRoute(h, false);
      const plain = fromNode(REMOTE_POD);
      expect(h.run('toUplink', plain).data).toEqual(plain);
      expect(h.metric(0, Reason.PASS_NOT_TUNNEL, Dir.TO_UPLINK).packets).toBe(
        BigInt(cases.length + 1),
      );
    });

    it('without an underlay address configured, drops as DROP_NO_UPLINK', () => {
      h.dp.views.nodeCfg.update(0, { underlay_ip: 0, uplink_ifindex: 0 });
      expect(h.run('toUplink', fromNode(REMOTE_POD)).retval).toBe(TcAction.SHOT);
      expect(h.metric(0, Reason.DROP_NO_UPLINK, Dir.TO_UPLINK).packets).toBe(1n);
    });
  });

  describe('decapsulation (tortie_from_uplink)', () => {
    beforeEach(() => {
      seedReceiver(h);
    });

    it('strips the outer header of IPIP from a known node, judges the receiver and redirects into the pod', () => {
      const input = ipip(inbound(syn(), { ttl: 63 }));
      const { retval, data } = h.run('fromUplink', input);

      expect(retval).toBe(TcAction.REDIRECT);
      expect(data.length).toBe(input.length - 20);
      expect(data.subarray(0, ETH_HLEN)).toEqual(input.subarray(0, ETH_HLEN));
      // The inner datagram, forwarded once more on its way into the pod.
      expect(data.subarray(ETH_HLEN)).toEqual(inbound(syn(), { ttl: 62 }));

      expect(h.metric(0, Reason.PASS_DECAP, Dir.FROM_UPLINK).packets).toBe(1n);
      expect(h.metric(RECEIVER_EP, Reason.PASS_POLICY, Dir.TO_POD).packets).toBe(1n);
      const flows = h.dp.views.ct.entries();
      expect(flows.length).toBe(1);
      const [key, entry] = flows[0]!;
      expect(key).toMatchObject({ saddr: ipToU32(REMOTE_POD), daddr: ipToU32(POD), dport: 80 });
      expect(entry).toMatchObject({ dst_ifindex: RECEIVER_IFINDEX, rule_id: 201 });
    });

    it("the receiver's reply finds the flow and goes back through the tunnel", () => {
      // The receiver behind ifindex 1 this time, so that its reply can be test-run from
      // its own veth. Its egress set 99 does not exist: only conntrack can let the reply out.
      h.endpoint(LOOPBACK, { ip: POD, id: RECEIVER_EP, ingressSet: 20, egressSet: 99 });
      h.localRoute(POD, LOOPBACK);
      expect(h.run('fromUplink', ipip(inbound(syn()))).retval).toBe(TcAction.REDIRECT);

      const reply = frame(
        { src: POD, dst: REMOTE_POD },
        tcp({ sport: 80, dport: 40000, flags: TCP.SYN | TCP.ACK }),
      );
      const { retval, data } = h.run('fromPod', reply);
      expect(retval).toBe(TcAction.REDIRECT);
      expect(readOuter(data)).toMatchObject({ src: NODE, dst: OTHER, proto: IPPROTO_IPIP });
      expect(h.metric(RECEIVER_EP, Reason.PASS_CT_REPLY, Dir.FROM_POD).packets).toBe(1n);
      expect(h.metric(RECEIVER_EP, Reason.PASS_ENCAP, Dir.TO_UPLINK).packets).toBe(1n);
    });

    it('accepts an outer header with options', () => {
      const input = ipip(inbound(syn()), { options: IP_OPTION_ROUTER_ALERT });
      const { retval, data } = h.run('fromUplink', input);
      expect(retval).toBe(TcAction.REDIRECT);
      expect(data.length).toBe(input.length - 24);
      expect(readIpv4(data)).toMatchObject({
        src: REMOTE_POD,
        dst: POD,
        proto: PROTO.TCP,
        checksumOk: true,
      });
    });

    it('drops forged IPIP from an address that is not a known node (DROP_IPIP_UNKNOWN_SOURCE), naming the forger', () => {
      const input = ipip(inbound(syn()), { src: STRANGER });
      const { retval } = h.run('fromUplink', input);
      expect(retval).toBe(TcAction.SHOT);
      expect(h.metric(0, Reason.DROP_IPIP_UNKNOWN_SOURCE, Dir.FROM_UPLINK).packets).toBe(1n);
      expect(h.events()).toMatchObject([
        {
          type: EventType.DROP,
          reason: Reason.DROP_IPIP_UNKNOWN_SOURCE,
          dir: Dir.FROM_UPLINK,
          ep_id: 0,
          saddr: ipToU32(STRANGER),
          daddr: ipToU32(NODE),
          proto: IPPROTO_IPIP,
        },
      ]);
      expect(h.dp.views.ct.entries()).toEqual([]);
      // The same packet from a node that has left the cluster is dropped too.
      h.dp.views.nodes.delete(ipToU32(OTHER));
      expect(h.run('fromUplink', ipip(inbound(syn()))).retval).toBe(TcAction.SHOT);
      expect(h.metric(0, Reason.DROP_IPIP_UNKNOWN_SOURCE, Dir.FROM_UPLINK).packets).toBe(2n);
    });

    it("drops IPIP whose inner packet the receiver's policy denies, blamed on the receiver with the rule", () => {
      const { retval } = h.run('fromUplink', ipip(inbound(syn(22))));
      expect(retval).toBe(TcAction.SHOT);
      expect(h.metric(RECEIVER_EP, Reason.DROP_POLICY, Dir.TO_POD).packets).toBe(1n);
      expect(h.metric(0, Reason.PASS_DECAP, Dir.FROM_UPLINK).packets).toBe(0n);
      expect(h.events()).toMatchObject([
        {
          type: EventType.DROP,
          reason: Reason.DROP_POLICY,
          ep_id: RECEIVER_EP,
          dir: Dir.TO_POD,
          rule_id: 299,
          saddr: ipToU32(REMOTE_POD),
          daddr: ipToU32(POD),
          dport: 22,
        },
      ]);
    });

    it('IPIP from a known node to a pod no policy has been written for fails closed (DROP_NO_POLICY)', () => {
      h.endpoint(RECEIVER_IFINDEX, { ip: POD, id: RECEIVER_EP });
      expect(h.run('fromUplink', ipip(inbound(syn()))).retval).toBe(TcAction.SHOT);
      expect(h.metric(RECEIVER_EP, Reason.DROP_NO_POLICY, Dir.TO_POD).packets).toBe(1n);
    });

    it('decapsulated traffic for an address of this node goes to the host stack; for anything else it is dropped', () => {
      h.dp.views.routes.update(
        { prefixlen: 32, addr: ipToU32('10.1.0.1') },
        { type: RouteType.HOST, ifindex: 0, next_hop: 0, flags: 0 },
      );
      const toHost = h.run('fromUplink', ipip(inbound(syn(), { dst: '10.1.0.1' })));
      expect(toHost.retval).toBe(TcAction.OK);
      expect(readIpv4(toHost.data)).toMatchObject({ dst: '10.1.0.1', proto: PROTO.TCP });
      expect(h.metric(0, Reason.PASS_DECAP, Dir.FROM_UPLINK).packets).toBe(1n);

      for (const dst of ['10.9.9.9', REMOTE_POD]) {
        expect(h.run('fromUplink', ipip(inbound(syn(), { dst }))).retval).toBe(TcAction.SHOT);
      }
      expect(h.metric(0, Reason.DROP_IPIP_NOT_LOCAL, Dir.FROM_UPLINK).packets).toBe(2n);
    });

    it("passes everything that is not IPIP for this node untouched (the node's own traffic)", () => {
      const plain = frame(
        { src: OTHER, dst: NODE },
        tcp({ sport: 2379, dport: 50000, flags: TCP.ACK }),
      );
      const cases: [string, Buffer][] = [
        ['TCP between the nodes', plain],
        ['ARP', arpRequest({ senderIp: OTHER, target: NODE })],
        ['IPv6', ethernet(ipv6(), { ethertype: ETH_P.IPV6 })],
        ['IPIP to another address', ipip(inbound(syn()), { dst: '192.0.2.99' })],
      ];
      for (const [name, input] of cases) {
        const { retval, data } = h.run('fromUplink', input);
        expect({ name, retval, same: data.equals(input) }).toEqual({
          name,
          retval: TcAction.OK,
          same: true,
        });
      }
      expect(h.metric(0, Reason.PASS_NOT_TUNNEL, Dir.FROM_UPLINK).packets).toBe(
        BigInt(cases.length),
      );
      expect(h.dp.views.ct.entries()).toEqual([]);
    });

    describe('plain packets for a local pod (ipipMode Never)', () => {
      // Addressed to this host's MAC: a test run's device is loopback, whose MAC is zeros.
      const HOST_MAC = '00:00:00:00:00:00';
      const plain = (l4: L4, ip: Partial<Ipv4Options> = {}, dst = HOST_MAC): Buffer =>
        ethernet(inbound(l4, { ttl: 63, ...ip }), { src: OTHER_MAC, dst });

      it('judges one for its receiver as tortie_to_pod would and redirects it into the pod', () => {
        const { retval, data } = h.run('fromUplink', plain(syn()));
        expect(retval).toBe(TcAction.REDIRECT);
        expect(data).toEqual(plain(syn(), { ttl: 62 }));
        expect(h.metric(RECEIVER_EP, Reason.PASS_POLICY, Dir.TO_POD).packets).toBe(1n);
        expect(h.metric(0, Reason.PASS_UPLINK_TO_POD, Dir.FROM_UPLINK).packets).toBe(1n);
        const flows = h.dp.views.ct.entries();
        expect(flows.length).toBe(1);
        expect(flows[0]![1]).toMatchObject({ dst_ifindex: RECEIVER_IFINDEX, rule_id: 201 });
        // The next packet of the flow is ESTABLISHED for the receiver.
        h.run('fromUplink', plain(tcp({ sport: 40000, dport: 80, flags: TCP.ACK })));
        expect(h.metric(RECEIVER_EP, Reason.PASS_CT_ESTABLISHED, Dir.TO_POD).packets).toBe(1n);
      });

      it("drops one the receiver's policy denies, blamed on the receiver with the rule", () => {
        expect(h.run('fromUplink', plain(syn(22))).retval).toBe(TcAction.SHOT);
        expect(h.metric(RECEIVER_EP, Reason.DROP_POLICY, Dir.TO_POD).packets).toBe(1n);
        expect(h.events()).toMatchObject([
          {
            type: EventType.DROP,
            reason: Reason.DROP_POLICY,
            ep_id: RECEIVER_EP,
            dir: Dir.TO_POD,
            rule_id: 299,
          },
        ]);
        expect(h.dp.views.ct.entries()).toEqual([]);
      });

      it('leaves to the host stack untouched what is not a whole packet for a pod addressed to this host', () => {
        const cases: [string, Buffer][] = [
          ['for another MAC', plain(syn(), {}, UPLINK_MAC)],
          ['TTL 1', plain(syn(), { ttl: 1 })],
          ['a fragment', plain(syn(), { mf: true, df: false })],
          ['for no local pod', plain(syn(), { dst: '10.9.9.9' })],
        ];
        for (const [name, input] of cases) {
          const { retval, data } = h.run('fromUplink', input);
          expect({ name, retval, same: data.equals(input) }).toEqual({
            name,
            retval: TcAction.OK,
            same: true,
          });
        }
        expect(h.metric(0, Reason.PASS_NOT_TUNNEL, Dir.FROM_UPLINK).packets).toBe(
          BigInt(cases.length),
        );
        expect(h.dp.views.ct.entries()).toEqual([]);
      });
    });

    describe('malformed and fragmented IPIP', () => {
      const inner = inbound(syn());
      const withChecksum = (f: Buffer, value: number): Buffer => {
        const out = Buffer.from(f);
        out.writeUInt16BE(value, ETH_HLEN + 10);
        return out;
      };
      const good = ipip(inner);
      const rows: [string, Buffer, keyof typeof Reason][] = [
        [
          'outer cut short (total length claims more than the frame)',
          truncate(good, good.length - 10),
          'DROP_MALFORMED',
        ],
        ['outer total length below its header', ipip(inner, { totalLength: 19 }), 'DROP_MALFORMED'],
        ['outer IHL 4', ipip(inner, { ihl: 4 }), 'DROP_MALFORMED'],
        ['outer version 6', ipip(inner, { version: 6 }), 'DROP_MALFORMED'],
        [
          'outer header checksum wrong',
          withChecksum(good, good.readUInt16BE(ETH_HLEN + 10) ^ 0x0100),
          'DROP_MALFORMED',
        ],
        ['inner header cut (10 of 20 bytes)', ipip(inner.subarray(0, 10)), 'DROP_MALFORMED'],
        [
          'inner total length beyond the outer datagram',
          ipip(inner.subarray(0, inner.length - 8)),
          'DROP_MALFORMED',
        ],
        [
          'inner version 6',
          ipip(Buffer.concat([Buffer.from([0x65]), inner.subarray(1)])),
          'DROP_MALFORMED',
        ],
        [
          'inner IHL 4',
          ipip(Buffer.concat([Buffer.from([0x44]), inner.subarray(1)])),
          'DROP_MALFORMED',
        ],
        [
          'inner TCP header cut (inner datagram consistent)',
          ipip(inbound(rawL4(PROTO.TCP, syn().bytes.subarray(0, 10)))),
          'DROP_MALFORMED',
        ],
        ['outer first fragment (MF)', ipip(inner, { mf: true, df: false }), 'DROP_IPIP_FRAGMENT'],
        [
          'outer later fragment (offset 8)',
          ipip(inner, { fragOffset: 1, df: false }),
          'DROP_IPIP_FRAGMENT',
        ],
      ];

      it.each(rows)('%s → %s', (_name, input, reason) => {
        const { retval } = h.run('fromUplink', input);
        expect(retval).toBe(TcAction.SHOT);
        expect(h.metric(0, Reason[reason], Dir.FROM_UPLINK).packets).toBe(1n);
        expect(h.events()).toMatchObject([{ type: EventType.DROP, reason: Reason[reason] }]);
        expect(h.dp.views.ct.entries()).toEqual([]);
      });

      it('the same rows from an unknown source are dropped as DROP_IPIP_UNKNOWN_SOURCE first', () => {
        h.dp.views.nodes.delete(ipToU32(OTHER));
        for (const [, input] of rows) expect(h.run('fromUplink', input).retval).toBe(TcAction.SHOT);
        // Except the row whose header is too broken to name a source? None is: each
        // keeps 20 readable bytes, so each is judged by its source.
        expect(h.metric(0, Reason.DROP_IPIP_UNKNOWN_SOURCE, Dir.FROM_UPLINK).packets).toBe(
          BigInt(rows.length),
        );
      });
    });
  });
});

/*
 * Issue 11, attack 1: a pod sends IPIP at another node's underlay address; its node's
 * natOutgoing masquerade makes the outer source a known node, and the receiver would
 * judge the inner packet by the source it claims. Two guards: the sender's node drops a
 * pod's tunnel traffic (DROP_WORKLOAD_ENCAP, unless allowIPIPPacketsFromWorkloads /
 * allowVXLANPacketsFromWorkloads), and the receiver accepts an inner source only from
 * the node it belongs to (DROP_IPIP_INNER_SPOOF).
 */
const THIRD = '192.0.2.3'; // a third node, owning THIRD_BLOCK
const THIRD_BLOCK = { addr: '10.3.0.0', bits: 26 };
const THIRD_POD = '10.3.0.7';
const BORROWED = '10.2.0.20'; // inside REMOTE_BLOCK, borrowed by THIRD

function seedThirdNode(h: BpfHarness): void {
  h.dp.views.nodes.update(ipToU32(THIRD), { flags: 0 });
  for (const [addr, bits] of [
    [THIRD_BLOCK.addr, THIRD_BLOCK.bits],
    [BORROWED, 32],
  ] as const) {
    h.dp.views.routes.update(
      { prefixlen: bits, addr: ipToU32(addr) },
      {
        type: RouteType.REMOTE_BLOCK,
        ifindex: 0,
        next_hop: ipToU32(THIRD),
        flags: RouteFlags.IPIP,
      },
    );
  }
}

/** The sender's policy allows everything: whatever drops a packet, it is not policy. */
function allowAllEgress(h: BpfHarness): void {
  h.policyClass(1, [{ action: 'allow', ruleId: 105 }]);
}

/** What a pod crafts: IPIP to another node's underlay address, any inner packet. */
const podIpip = (innerSrc: string, innerDst = POD): Buffer =>
  ethernet(
    ipv4(
      { src: POD, dst: OTHER },
      rawL4(IPPROTO_IPIP, ipv4({ src: innerSrc, dst: innerDst }, udp({ sport: 5, dport: 7 }))),
    ),
  );

/** What a pod crafts for VXLAN: UDP to the VXLAN port at another node. */
const podUdp = (dport: number): Buffer =>
  ethernet(ipv4({ src: POD, dst: OTHER }, udp({ sport: 40000, dport })));

describe('forged tunnels (issue 11)', () => {
  let h: BpfHarness;
  beforeAll(() => {
    h = new BpfHarness();
  });
  afterAll(() => {
    h?.close();
  });
  beforeEach(() => {
    h.reset();
    seedSender(h);
    allowAllEgress(h);
    seedNode(h);
    remoteRoute(h, true);
    seedReceiver(h);
    seedThirdNode(h);
  });

  describe('a pod sending tunnel traffic itself (tortie_from_pod)', () => {
    it('drops IPIP from a pod as DROP_WORKLOAD_ENCAP, before policy and conntrack, naming the pod', () => {
      for (const innerSrc of [REMOTE_POD, OTHER, THIRD_POD]) {
        expect(h.run('fromPod', podIpip(innerSrc)).retval).toBe(TcAction.SHOT);
      }
      expect(h.metric(EP, Reason.DROP_WORKLOAD_ENCAP, Dir.FROM_POD).packets).toBe(3n);
      expect(h.metricKeys()).toEqual([`${EP}:${Reason.DROP_WORKLOAD_ENCAP}:${Dir.FROM_POD}`]);
      expect(h.events()[0]).toMatchObject({
        type: EventType.DROP,
        reason: Reason.DROP_WORKLOAD_ENCAP,
        ep_id: EP,
        dir: Dir.FROM_POD,
        saddr: ipToU32(POD),
        daddr: ipToU32(OTHER),
        proto: IPPROTO_IPIP,
      });
      expect(h.dp.views.ct.entries()).toEqual([]);
    });

    it('drops UDP to the VXLAN port (4789) from a pod; other UDP ports pass', () => {
      expect(h.run('fromPod', podUdp(4789)).retval).toBe(TcAction.SHOT);
      expect(h.metric(EP, Reason.DROP_WORKLOAD_ENCAP, Dir.FROM_POD).packets).toBe(1n);
      expect(h.run('fromPod', podUdp(4790)).retval).toBe(TcAction.OK);
      expect(h.metric(EP, Reason.PASS_POLICY, Dir.FROM_POD).packets).toBe(1n);
    });

    it('a tracked flow does not carry it either', () => {
      // A flow opened while tunnel traffic was allowed (another object) is still cut.
      h.dp.views.ct.update(
        {
          saddr: ipToU32(POD),
          daddr: ipToU32(OTHER),
          sport: 0,
          dport: 0,
          proto: IPPROTO_IPIP,
          icmp_query: 0,
        },
        {
          created_ns: 0n,
          last_seen_ns: 0n,
          src_ifindex: LOOPBACK,
          dst_ifindex: 0,
          src_rev: 1,
          dst_rev: 0,
          rule_id: 105,
          state: 2,
          flags: 0,
          reserved: 0,
        },
      );
      expect(h.run('fromPod', podIpip(REMOTE_POD)).retval).toBe(TcAction.SHOT);
      expect(h.metric(EP, Reason.DROP_WORKLOAD_ENCAP, Dir.FROM_POD).packets).toBe(1n);
    });
  });

  describe('decapsulation: the inner source must belong to the sending node (tortie_from_uplink)', () => {
    const expectSpoof = (outerSrc: string, innerSrc: string, innerDst = POD): void => {
      const input = ipip(ipv4({ src: innerSrc, dst: innerDst }, syn()), { src: outerSrc });
      const { retval } = h.run('fromUplink', input);
      expect({ outerSrc, innerSrc, retval }).toEqual({ outerSrc, innerSrc, retval: TcAction.SHOT });
    };

    it("drops an inner source of another node's block, of this node, of a local pod or of the outside world (DROP_IPIP_INNER_SPOOF)", () => {
      const forged = [THIRD_POD, THIRD, NODE, POD, '203.0.113.9'];
      for (const innerSrc of forged) expectSpoof(OTHER, innerSrc);
      // ...also when the inner packet is for the node itself.
      h.dp.views.routes.update(
        { prefixlen: 32, addr: ipToU32(NODE) },
        { type: RouteType.HOST, ifindex: 0, next_hop: 0, flags: 0 },
      );
      expectSpoof(OTHER, THIRD_POD, NODE);
      expect(h.metric(0, Reason.DROP_IPIP_INNER_SPOOF, Dir.FROM_UPLINK).packets).toBe(
        BigInt(forged.length + 1),
      );
      const events = h.events();
      expect(events[0]).toMatchObject({
        type: EventType.DROP,
        reason: Reason.DROP_IPIP_INNER_SPOOF,
        ep_id: 0,
        dir: Dir.FROM_UPLINK,
        // After the strip, events name the inner packet: the claimed source.
        saddr: ipToU32(THIRD_POD),
        daddr: ipToU32(POD),
        proto: PROTO.TCP,
      });
      expect(h.dp.views.ct.entries()).toEqual([]);
      expect(h.metric(RECEIVER_EP, Reason.PASS_POLICY, Dir.TO_POD).packets).toBe(0n);
    });

    it("delivers the owning node's packet (control): the same receiver, the same policy", () => {
      const { retval } = h.run('fromUplink', ipip(inbound(syn())));
      expect(retval).toBe(TcAction.REDIRECT);
      expect(h.metric(RECEIVER_EP, Reason.PASS_POLICY, Dir.TO_POD).packets).toBe(1n);
      expect(h.metric(0, Reason.DROP_IPIP_INNER_SPOOF, Dir.FROM_UPLINK).packets).toBe(0n);
    });

    it("delivers the sending node's own traffic (inner source = its underlay address, what tortie_to_uplink sends)", () => {
      // The receiver lets the other node in on TCP 80.
      h.policySet(20, [
        { cidr: `${OTHER}/32`, classId: 2 },
        { cidr: '0.0.0.0/0', classId: 4 },
      ]);
      // Made as the other node makes it: its own packet, encapsulated on its uplink.
      const other = new BpfHarness();
      try {
        other.dp.views.nodeCfg.update(0, { underlay_ip: ipToU32(OTHER), uplink_ifindex: LOOPBACK });
        other.dp.views.routes.update(
          { prefixlen: 24, addr: ipToU32('10.1.0.0') },
          {
            type: RouteType.REMOTE_BLOCK,
            ifindex: 0,
            next_hop: ipToU32(NODE),
            flags: RouteFlags.IPIP,
          },
        );
        const sent = ethernet(ipv4({ src: OTHER, dst: POD, df: true }, syn()), {
          src: OTHER_MAC,
          dst: UPLINK_MAC,
        });
        const out = other.run('toUplink', sent);
        expect(out.retval).toBe(TcAction.OK);
        expect(readOuter(out.data)).toMatchObject({ src: OTHER, dst: NODE, proto: IPPROTO_IPIP });

        expect(h.run('fromUplink', out.data).retval).toBe(TcAction.REDIRECT);
        expect(h.metric(RECEIVER_EP, Reason.PASS_POLICY, Dir.TO_POD).packets).toBe(1n);
      } finally {
        other.close();
      }
    });

    it('a /32 borrowed out of a block belongs to the borrower, not to the block owner', () => {
      expectSpoof(OTHER, BORROWED);
      expect(h.metric(0, Reason.DROP_IPIP_INNER_SPOOF, Dir.FROM_UPLINK).packets).toBe(1n);
      // From the borrower it is that node's pod: judged by the receiver's policy (which
      // denies it: only REMOTE_POD is let in), not dropped as a spoof.
      h.run('fromUplink', ipip(ipv4({ src: BORROWED, dst: POD }, syn()), { src: THIRD }));
      expect(h.metric(0, Reason.DROP_IPIP_INNER_SPOOF, Dir.FROM_UPLINK).packets).toBe(1n);
      expect(h.metric(RECEIVER_EP, Reason.DROP_POLICY, Dir.TO_POD).packets).toBe(1n);
      // And THIRD's block from THIRD: the same.
      h.run('fromUplink', ipip(ipv4({ src: THIRD_POD, dst: POD }, syn()), { src: THIRD }));
      expect(h.metric(0, Reason.DROP_IPIP_INNER_SPOOF, Dir.FROM_UPLINK).packets).toBe(1n);
      expect(h.metric(RECEIVER_EP, Reason.DROP_POLICY, Dir.TO_POD).packets).toBe(2n);
    });
  });
});

describe('forged tunnels with allowIPIPPacketsFromWorkloads / allowVXLANPacketsFromWorkloads on', () => {
  let h: BpfHarness;
  beforeAll(() => {
    h = new BpfHarness({
      allowIPIPPacketsFromWorkloads: true,
      allowVXLANPacketsFromWorkloads: true,
    });
  });
  afterAll(() => {
    h?.close();
  });
  beforeEach(() => {
    h.reset();
    seedSender(h);
    allowAllEgress(h);
    seedNode(h);
    remoteRoute(h, true);
  });

  it("a pod's IPIP and VXLAN go to policy and, allowed, to the host stack like any packet to an outside address", () => {
    expect(h.run('fromPod', podIpip(REMOTE_POD)).retval).toBe(TcAction.OK);
    expect(h.run('fromPod', podUdp(4789)).retval).toBe(TcAction.OK);
    expect(h.metric(EP, Reason.PASS_POLICY, Dir.FROM_POD).packets).toBe(2n);
    expect(h.metric(EP, Reason.DROP_WORKLOAD_ENCAP, Dir.FROM_POD).packets).toBe(0n);
  });

  it('policy still decides them', () => {
    h.policyClass(1, [{ action: 'deny', ruleId: 106 }]);
    expect(h.run('fromPod', podIpip(REMOTE_POD)).retval).toBe(TcAction.SHOT);
    expect(h.metric(EP, Reason.DROP_POLICY, Dir.FROM_POD).packets).toBe(1n);
  });
});
