/**
 * Conntrack and policy through the real tc programs (BPF_PROG_TEST_RUN, root). The
 * endpoint under test is 10.0.0.1 on ifindex 1 (loopback, what test runs use); its
 * sets are written by hand in the compiler's format:
 *
 *   egress set 10:  10.0.0.2/32 → class 1 (TCP 80, UDP 53, GRE allowed; rest denied by 102)
 *                   0.0.0.0/0   → class 2 (everything denied by 201)
 *   ingress set 20: 10.0.0.2/32 → class 3 (TCP 80 and ICMP echo allowed; rest denied by 399)
 *                   0.0.0.0/0   → class 2
 *
 * Local delivery uses a second endpoint, 10.0.0.2 behind ifindex 1000 (a route, never a
 * device: the redirect is only recorded by a test run), ingress set 30:
 *                   10.0.0.1/32 → class 4 (TCP 80 allowed by 401; rest denied by 402)
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import {
  Action,
  CtFlags,
  CtState,
  Dir,
  EventType,
  icmpPort,
  ipToU32,
  Reason,
  RouteType,
  TcAction,
  type CtKey,
} from '../../src/maps/index.js';
import {
  ethernet,
  fragmentIpv4,
  frame,
  ICMP,
  icmpEcho,
  icmp,
  icmpError,
  ipv4,
  PROTO,
  rawL4,
  readIpv4,
  TCP,
  tcp,
  udp,
  UNREACH,
} from '../../src/util/packets.js';
import { BpfHarness, LOOPBACK } from './bpf-harness.js';

const POD = '10.0.0.1';
const PEER = '10.0.0.2';
const STRANGER = '10.0.0.3';
const EP = 7;
const RECEIVER_IFINDEX = 1000;
const RECEIVER_EP = 8;

function seedPolicy(h: BpfHarness, rev = 1): void {
  h.endpoint(LOOPBACK, { ip: POD, id: EP, egressSet: 10, ingressSet: 20, rev });
  h.policySet(10, [
    { cidr: `${PEER}/32`, classId: 1 },
    { cidr: '0.0.0.0/0', classId: 2 },
  ]);
  h.policySet(20, [
    { cidr: `${PEER}/32`, classId: 3 },
    { cidr: '0.0.0.0/0', classId: 2 },
  ]);
  h.policyClass(1, [
    { proto: PROTO.TCP, port: 80, action: 'allow', ruleId: 101 },
    { proto: PROTO.UDP, port: 53, action: 'allow', ruleId: 103 },
    { proto: PROTO.GRE, port: 0, action: 'allow', ruleId: 104 },
    { action: 'deny', ruleId: 102 },
  ]);
  h.policyClass(2, [{ action: 'deny', ruleId: 201 }]);
  h.policyClass(3, [
    { proto: PROTO.TCP, port: 80, action: 'allow', ruleId: 301 },
    { proto: PROTO.ICMP, port: icmpPort(ICMP.ECHO, 0), action: 'allow', ruleId: 302 },
    { action: 'deny', ruleId: 399 },
  ]);
}

function seedReceiver(h: BpfHarness): void {
  h.endpoint(RECEIVER_IFINDEX, { ip: PEER, id: RECEIVER_EP, ingressSet: 30, egressSet: 10 });
  h.localRoute(PEER, RECEIVER_IFINDEX);
  h.policySet(30, [
    { cidr: `${POD}/32`, classId: 4 },
    { cidr: '0.0.0.0/0', classId: 2 },
  ]);
  h.policyClass(4, [
    { proto: PROTO.TCP, port: 80, action: 'allow', ruleId: 401 },
    { action: 'deny', ruleId: 402 },
  ]);
}

// Packets of the endpoint under test: out = sent by the pod (from_pod), in = to the pod (to_pod).
const tcpOut = (dport: number, flags: number, o: { sport?: number; dst?: string } = {}): Buffer =>
  frame({ src: POD, dst: o.dst ?? PEER }, tcp({ sport: o.sport ?? 40000, dport, flags }));
const tcpIn = (sport: number, dport: number, flags: number, src = PEER): Buffer =>
  frame({ src, dst: POD }, tcp({ sport, dport, flags }));

const flowKey = (
  saddr: string,
  daddr: string,
  sport: number,
  dport: number,
  proto: number,
  icmpQuery = 0,
): CtKey => ({
  saddr: ipToU32(saddr),
  daddr: ipToU32(daddr),
  sport,
  dport,
  proto,
  icmp_query: icmpQuery,
});
const webFlow = flowKey(POD, PEER, 40000, 80, PROTO.TCP);

/** Sender opens TCP to PEER:80 and gets its SYN-ACK: a flow in ESTABLISHED. */
function openWebFlow(h: BpfHarness): void {
  expect(h.run('fromPod', tcpOut(80, TCP.SYN)).retval).toBe(TcAction.OK);
  expect(h.run('toPod', tcpIn(80, 40000, TCP.SYN | TCP.ACK)).retval).toBe(TcAction.OK);
  h.events();
}

describe('conntrack and policy', () => {
  let h: BpfHarness;
  beforeAll(() => {
    h = new BpfHarness();
  });
  afterAll(() => {
    h?.close();
  });
  beforeEach(() => {
    h.reset();
    seedPolicy(h);
  });

  it("judges a flow's first packet by the sender's egress policy and tracks the flow", () => {
    expect(h.run('fromPod', tcpOut(80, TCP.SYN)).retval).toBe(TcAction.OK);
    expect(h.metric(EP, Reason.PASS_POLICY, Dir.FROM_POD).packets).toBe(1n);
    expect(h.dp.views.ct.lookup(webFlow)).toMatchObject({
      src_ifindex: LOOPBACK,
      src_rev: 1,
      dst_ifindex: 0,
      rule_id: 101,
      state: CtState.SYN_SENT,
    });
  });

  it('passes the reply as CT_REPLY although ingress policy would deny it', () => {
    h.run('fromPod', tcpOut(80, TCP.SYN));
    // Ingress set 20 allows only TCP 80 *to* the pod; this reply goes to port 40000.
    expect(h.run('toPod', tcpIn(80, 40000, TCP.SYN | TCP.ACK)).retval).toBe(TcAction.OK);
    expect(h.metric(EP, Reason.PASS_CT_REPLY, Dir.TO_POD).packets).toBe(1n);
    const entry = h.dp.views.ct.lookup(webFlow);
    expect(entry?.state).toBe(CtState.ESTABLISHED);
    expect((entry?.flags ?? 0) & CtFlags.SEEN_REPLY).toBe(CtFlags.SEEN_REPLY);
  });

  it('passes later packets of the flow as CT_ESTABLISHED', () => {
    openWebFlow(h);
    expect(h.run('fromPod', tcpOut(80, TCP.ACK)).retval).toBe(TcAction.OK);
    expect(h.run('fromPod', tcpOut(80, TCP.ACK | TCP.PSH)).retval).toBe(TcAction.OK);
    expect(h.metric(EP, Reason.PASS_CT_ESTABLISHED, Dir.FROM_POD).packets).toBe(2n);
    expect(h.metric(EP, Reason.PASS_POLICY, Dir.FROM_POD).packets).toBe(1n);
  });

  it('drops a denied flow as DROP_POLICY with a DROP event naming 5-tuple, endpoint and rule', () => {
    expect(h.run('fromPod', tcpOut(80, TCP.SYN, { sport: 40001, dst: STRANGER })).retval).toBe(
      TcAction.SHOT,
    );
    expect(h.metric(EP, Reason.DROP_POLICY, Dir.FROM_POD).packets).toBe(1n);
    expect(h.events()).toEqual([
      {
        ts_ns: expect.any(BigInt),
        type: EventType.DROP,
        ifindex: LOOPBACK,
        ep_id: EP,
        rule_id: 201,
        saddr: ipToU32(POD),
        daddr: ipToU32(STRANGER),
        sport: 40001,
        dport: 80,
        proto: PROTO.TCP,
        reason: Reason.DROP_POLICY,
        dir: Dir.FROM_POD,
        action: Action.DENY,
      },
    ]);
    expect(h.dp.views.ct.lookup(flowKey(POD, STRANGER, 40001, 80, PROTO.TCP))).toBeNull();
  });

  it('names the port-level deny rule when the peer is allowed but the port is not', () => {
    expect(h.run('fromPod', tcpOut(81, TCP.SYN)).retval).toBe(TcAction.SHOT);
    expect(h.events()).toMatchObject([
      { type: EventType.DROP, reason: Reason.DROP_POLICY, rule_id: 102, dport: 81 },
    ]);
  });

  it('drops a packet whose source is not the pod as DROP_SPOOF, before policy or conntrack', () => {
    const spoofed = frame(
      { src: '10.0.0.66', dst: PEER },
      tcp({ sport: 40000, dport: 80, flags: TCP.SYN }),
    );
    expect(h.run('fromPod', spoofed).retval).toBe(TcAction.SHOT);
    expect(h.metric(EP, Reason.DROP_SPOOF, Dir.FROM_POD).packets).toBe(1n);
    expect(h.events()).toMatchObject([
      { reason: Reason.DROP_SPOOF, saddr: ipToU32('10.0.0.66'), rule_id: 0 },
    ]);
    expect(h.dp.views.ct.entries()).toEqual([]);
  });

  it('drops as DROP_NO_POLICY while the endpoint has no egress set (0)', () => {
    h.endpoint(LOOPBACK, { ip: POD, id: EP, egressSet: 0, ingressSet: 20 });
    expect(h.run('fromPod', tcpOut(80, TCP.SYN)).retval).toBe(TcAction.SHOT);
    expect(h.events()).toMatchObject([
      { reason: Reason.DROP_NO_POLICY, rule_id: 0, action: Action.NONE },
    ]);
  });

  it('drops as DROP_NO_POLICY when the set id has no entries in tortie_pol_addr', () => {
    h.endpoint(LOOPBACK, { ip: POD, id: EP, egressSet: 99, ingressSet: 20 });
    expect(h.run('fromPod', tcpOut(80, TCP.SYN)).retval).toBe(TcAction.SHOT);
    expect(h.metric(EP, Reason.DROP_NO_POLICY, Dir.FROM_POD).packets).toBe(1n);
  });

  it('drops as DROP_NO_POLICY when a class has no entry for the packet (stage 2 miss)', () => {
    h.policySet(10, [{ cidr: `${PEER}/32`, classId: 77 }]);
    expect(h.run('fromPod', tcpOut(80, TCP.SYN)).retval).toBe(TcAction.SHOT);
    expect(h.metric(EP, Reason.DROP_NO_POLICY, Dir.FROM_POD).packets).toBe(1n);
  });

  it('judges to-pod traffic by the ingress policy: allowed port passes, others drop', () => {
    expect(h.run('toPod', tcpIn(50000, 80, TCP.SYN)).retval).toBe(TcAction.OK);
    expect(h.run('toPod', tcpIn(50000, 22, TCP.SYN)).retval).toBe(TcAction.SHOT);
    expect(h.events()).toMatchObject([
      { reason: Reason.DROP_POLICY, rule_id: 399, dir: Dir.TO_POD, ep_id: EP },
    ]);
    expect(h.dp.views.ct.lookup(flowKey(PEER, POD, 50000, 80, PROTO.TCP))).toMatchObject({
      src_ifindex: 0,
      dst_ifindex: LOOPBACK,
      rule_id: 301,
    });
  });

  it('drops a TCP segment of no tracked flow that is not a bare SYN as CT_TCP_NOT_SYN, before policy', () => {
    // Egress allows TCP 80: only the bare SYN opens the flow, and nothing else is judged.
    for (const flags of [
      TCP.ACK,
      TCP.SYN | TCP.ACK,
      TCP.ACK | TCP.PSH,
      TCP.FIN | TCP.ACK,
      TCP.RST,
      TCP.SYN | TCP.FIN,
      TCP.SYN | TCP.RST,
    ])
      expect(h.run('fromPod', tcpOut(80, flags)).retval, `flags ${flags}`).toBe(TcAction.SHOT);
    expect(h.metric(EP, Reason.DROP_CT_TCP_NOT_SYN, Dir.FROM_POD).packets).toBe(7n);
    expect(h.metric(EP, Reason.PASS_POLICY, Dir.FROM_POD).packets).toBe(0n);
    expect(h.events()[0]).toMatchObject({
      reason: Reason.DROP_CT_TCP_NOT_SYN,
      rule_id: 0,
      action: Action.NONE,
    });
    expect(h.dp.views.ct.entries()).toEqual([]);
    // The same towards the pod: ingress allows TCP 80, but an ACK opens nothing.
    expect(h.run('toPod', tcpIn(50000, 80, TCP.ACK)).retval).toBe(TcAction.SHOT);
    expect(h.metric(EP, Reason.DROP_CT_TCP_NOT_SYN, Dir.TO_POD).packets).toBe(1n);
    // The control: the SYN is judged and opens the flow, and then its ACKs pass.
    expect(h.run('fromPod', tcpOut(80, TCP.SYN)).retval).toBe(TcAction.OK);
    expect(h.run('fromPod', tcpOut(80, TCP.ACK)).retval).toBe(TcAction.OK);
    expect(h.dp.views.ct.lookup(webFlow)?.state).toBe(CtState.SYN_SENT);
    expect(h.metric(EP, Reason.PASS_CT_ESTABLISHED, Dir.FROM_POD).packets).toBe(1n);
  });

  it('follows TCP to CLOSED on FINs both ways, and treats a new SYN on a closed flow as a new flow', () => {
    openWebFlow(h);
    h.run('fromPod', tcpOut(80, TCP.FIN | TCP.ACK));
    expect(h.dp.views.ct.lookup(webFlow)?.state).toBe(CtState.CLOSING);
    h.run('toPod', tcpIn(80, 40000, TCP.FIN | TCP.ACK));
    expect(h.dp.views.ct.lookup(webFlow)?.state).toBe(CtState.CLOSED);
    expect(h.run('fromPod', tcpOut(80, TCP.SYN)).retval).toBe(TcAction.OK);
    expect(h.metric(EP, Reason.PASS_POLICY, Dir.FROM_POD).packets).toBe(2n);
    expect(h.dp.views.ct.lookup(webFlow)?.state).toBe(CtState.SYN_SENT);
  });

  it('closes a flow on RST', () => {
    openWebFlow(h);
    h.run('toPod', tcpIn(80, 40000, TCP.RST));
    expect(h.dp.views.ct.lookup(webFlow)?.state).toBe(CtState.CLOSED);
  });

  it('tracks ICMP echo by its identifier: the reply passes, another identifier is a new flow', () => {
    const request = frame({ src: PEER, dst: POD }, icmpEcho({ id: 0x1234 }));
    const reply = frame({ src: POD, dst: PEER }, icmpEcho({ id: 0x1234, reply: true }));
    const otherReply = frame({ src: POD, dst: PEER }, icmpEcho({ id: 0x9999, reply: true }));
    expect(h.run('toPod', request).retval).toBe(TcAction.OK);
    expect(
      h.dp.views.ct.lookup(flowKey(PEER, POD, 0x1234, 0x1234, PROTO.ICMP, ICMP.ECHO)),
    ).not.toBeNull();
    expect(h.run('fromPod', reply).retval).toBe(TcAction.OK);
    expect(h.metric(EP, Reason.PASS_CT_REPLY, Dir.FROM_POD).packets).toBe(1n);
    // Egress class 1 has no ICMP rule: an untracked echo reply is judged and denied.
    expect(h.run('fromPod', otherReply).retval).toBe(TcAction.SHOT);
    expect(h.events()).toMatchObject([
      { reason: Reason.DROP_POLICY, rule_id: 102, sport: 0x9999, dport: 0 },
    ]);
  });

  it('judges protocols without ports with port 0', () => {
    expect(h.run('fromPod', frame({ src: POD, dst: PEER }, rawL4(PROTO.GRE))).retval).toBe(
      TcAction.OK,
    );
    expect(h.run('fromPod', frame({ src: POD, dst: PEER }, rawL4(253))).retval).toBe(TcAction.SHOT);
    expect(h.dp.views.ct.lookup(flowKey(POD, PEER, 0, 0, PROTO.GRE))?.rule_id).toBe(104);
  });

  it('passes an ICMP error about a tracked flow as CT_RELATED, and judges one about an unknown flow', () => {
    const query = ipv4({ src: POD, dst: PEER }, udp({ sport: 5353, dport: 53 }));
    expect(
      h.run('fromPod', frame({ src: POD, dst: PEER }, udp({ sport: 5353, dport: 53 }))).retval,
    ).toBe(TcAction.OK);
    const unreachable = frame(
      { src: PEER, dst: POD },
      icmpError({ type: ICMP.DEST_UNREACH, code: UNREACH.PORT, quoted: query }),
    );
    expect(h.run('toPod', unreachable).retval).toBe(TcAction.OK);
    expect(h.metric(EP, Reason.PASS_CT_RELATED, Dir.TO_POD).packets).toBe(1n);

    const unknown = ipv4({ src: POD, dst: PEER }, udp({ sport: 5354, dport: 53 }));
    const stray = frame(
      { src: PEER, dst: POD },
      icmpError({ type: ICMP.DEST_UNREACH, code: UNREACH.PORT, quoted: unknown }),
    );
    expect(h.run('toPod', stray).retval).toBe(TcAction.SHOT);
    expect(h.events()).toMatchObject([
      {
        reason: Reason.DROP_POLICY,
        rule_id: 399,
        proto: PROTO.ICMP,
        dport: icmpPort(ICMP.DEST_UNREACH, UNREACH.PORT),
      },
    ]);
  });

  it('passes an ICMP error from a router on the path (a known node) about a tracked flow', () => {
    openWebFlow(h);
    h.dp.views.nodes.update(ipToU32('192.0.2.1'), { flags: 0 });
    const sent = ipv4(
      { src: POD, dst: PEER, ttl: 1 },
      tcp({ sport: 40000, dport: 80, flags: TCP.ACK }),
    );
    const exceeded = frame(
      { src: '192.0.2.1', dst: POD },
      icmpError({ type: ICMP.TIME_EXCEEDED, quoted: sent, quoteBytes: 20 }),
    );
    expect(h.run('toPod', exceeded).retval).toBe(TcAction.OK);
    expect(h.metric(EP, Reason.PASS_CT_RELATED, Dir.TO_POD).packets).toBe(1n);
  });

  it('does not take an ICMP error as related when it travels away from the quoted sender', () => {
    openWebFlow(h);
    // Quotes the pod's own packet but is addressed to the pod's peer: not an answer to it.
    const sent = ipv4({ src: POD, dst: PEER }, tcp({ sport: 40000, dport: 80, flags: TCP.ACK }));
    const wrongWay = frame(
      { src: POD, dst: PEER },
      icmpError({ type: ICMP.DEST_UNREACH, quoted: sent }),
    );
    expect(h.run('fromPod', wrongWay).retval).toBe(TcAction.SHOT);
    expect(h.metric(EP, Reason.PASS_CT_RELATED, Dir.FROM_POD).packets).toBe(0n);
  });

  describe('ICMP', () => {
    const idSeq = (id: number): Buffer => {
      const b = Buffer.alloc(4);
      b.writeUInt16BE(id, 0);
      b.writeUInt16BE(1, 2);
      return b;
    };
    const query = (src: string, dst: string, type: number, id: number): Buffer =>
      frame({ src, dst }, icmp({ type, rest: idSeq(id) }));

    it('matches a query reply only to a request of its own type, and never takes a request the other way as a reply', () => {
      // The pod pings its peer; its ingress denies every ICMP from the peer.
      h.policyClass(1, [
        { proto: PROTO.ICMP, port: icmpPort(ICMP.ECHO, 0), action: 'allow', ruleId: 107 },
      ]);
      h.policyClass(3, [
        { proto: PROTO.ICMP, port: icmpPort(ICMP.ECHO, 0), action: 'deny', ruleId: 396 },
      ]);
      expect(h.run('fromPod', query(POD, PEER, ICMP.ECHO, 0x4242)).retval).toBe(TcAction.OK);
      expect(
        h.dp.views.ct.lookup(flowKey(POD, PEER, 0x4242, 0x4242, PROTO.ICMP, ICMP.ECHO)),
      ).not.toBeNull();
      // The control: the echo reply passes as the reply of the ping.
      expect(h.run('toPod', query(PEER, POD, ICMP.ECHO_REPLY, 0x4242)).retval).toBe(TcAction.OK);
      expect(h.metric(EP, Reason.PASS_CT_REPLY, Dir.TO_POD).packets).toBe(1n);
      h.events();
      // The peer's own requests with the same identifier are new flows, judged by ingress.
      expect(h.run('toPod', query(PEER, POD, ICMP.ECHO, 0x4242)).retval).toBe(TcAction.SHOT);
      expect(h.run('toPod', query(PEER, POD, ICMP.TIMESTAMP, 0x4242)).retval).toBe(TcAction.SHOT);
      // A reply of another type answers no request of the pod's.
      expect(h.run('toPod', query(PEER, POD, ICMP.TIMESTAMP_REPLY, 0x4242)).retval).toBe(
        TcAction.SHOT,
      );
      expect(h.events().map((e) => [e.reason, e.rule_id])).toEqual([
        [Reason.DROP_POLICY, 396],
        [Reason.DROP_POLICY, 399],
        [Reason.DROP_POLICY, 399],
      ]);
      expect(h.metric(EP, Reason.PASS_CT_REPLY, Dir.TO_POD).packets).toBe(1n);
    });

    it('lets an untracked query reply that policy allows through without opening a flow', () => {
      h.policyClass(1, [
        { proto: PROTO.ICMP, port: icmpPort(ICMP.ECHO_REPLY, 0), action: 'allow', ruleId: 108 },
      ]);
      expect(h.run('fromPod', query(POD, PEER, ICMP.ECHO_REPLY, 0x77)).retval).toBe(TcAction.OK);
      expect(h.dp.views.ct.entries()).toEqual([]);
      // So the peer's echo request with that identifier is judged (class 3 allows echo).
      expect(h.run('toPod', query(PEER, POD, ICMP.ECHO, 0x77)).retval).toBe(TcAction.OK);
      expect(h.metric(EP, Reason.PASS_POLICY, Dir.TO_POD).packets).toBe(1n);
    });

    describe('errors about a tracked flow', () => {
      const sent = ipv4({ src: POD, dst: PEER }, tcp({ sport: 40000, dport: 80, flags: TCP.ACK }));
      const errorFrom = (src: string, type: number, code: number): Buffer =>
        frame({ src, dst: POD }, icmpError({ type, code, quoted: sent, mtu: 1200 }));
      const ERRORS: [string, number, number][] = [
        ['port unreachable', ICMP.DEST_UNREACH, UNREACH.PORT],
        ['fragmentation needed', ICMP.DEST_UNREACH, 4],
        ['time exceeded', ICMP.TIME_EXCEEDED, 0],
        ['redirect', ICMP.REDIRECT, 1],
      ];

      it.each(ERRORS)('judges %s from a third party by policy, not as related', (_, type, code) => {
        openWebFlow(h);
        expect(h.run('toPod', errorFrom(STRANGER, type, code)).retval).toBe(TcAction.SHOT);
        expect(h.events()).toMatchObject([
          { reason: Reason.DROP_POLICY, rule_id: 201, dport: icmpPort(type, code) },
        ]);
        expect(h.metric(EP, Reason.PASS_CT_RELATED, Dir.TO_POD).packets).toBe(0n);
      });

      it.each(ERRORS)(
        'passes %s as related from the peer, this node or a known node',
        (_, type, code) => {
          openWebFlow(h);
          h.dp.views.routes.update(
            { prefixlen: 32, addr: ipToU32('192.0.2.10') },
            { type: RouteType.HOST, ifindex: 0, next_hop: 0, flags: 0 },
          );
          h.dp.views.nodes.update(ipToU32('192.0.2.20'), { flags: 0 });
          for (const src of [PEER, '192.0.2.10', '169.254.1.1', '192.0.2.20'])
            expect(h.run('toPod', errorFrom(src, type, code)).retval, src).toBe(TcAction.OK);
          expect(h.metric(EP, Reason.PASS_CT_RELATED, Dir.TO_POD).packets).toBe(4n);
        },
      );
    });
  });

  describe('revocation', () => {
    it('drops the next original-direction packet as POLICY_REVOKED once the egress set denies the flow', () => {
      openWebFlow(h);
      h.policySet(10, [{ cidr: `${PEER}/32`, classId: 2 }]);
      seedPolicyRev(h, 2);
      expect(h.run('fromPod', tcpOut(80, TCP.ACK)).retval).toBe(TcAction.SHOT);
      expect(h.metric(EP, Reason.DROP_POLICY_REVOKED, Dir.FROM_POD).packets).toBe(1n);
      expect(h.events()).toMatchObject([
        {
          type: EventType.DROP,
          reason: Reason.DROP_POLICY_REVOKED,
          rule_id: 201,
          ep_id: EP,
          dir: Dir.FROM_POD,
        },
      ]);
      expect(h.dp.views.ct.lookup(webFlow)).toBeNull();
    });

    it('drops the next reply as POLICY_REVOKED too, and forgets the flow', () => {
      openWebFlow(h);
      h.policySet(10, [{ cidr: `${PEER}/32`, classId: 2 }]);
      seedPolicyRev(h, 2);
      expect(h.run('toPod', tcpIn(80, 40000, TCP.ACK)).retval).toBe(TcAction.SHOT);
      expect(h.events()).toMatchObject([
        { reason: Reason.DROP_POLICY_REVOKED, rule_id: 201, ep_id: EP, dir: Dir.FROM_POD },
      ]);
      expect(h.dp.views.ct.lookup(webFlow)).toBeNull();
      // Forgotten, and the peer's next segment cannot open it again the other way:
      // without SYN it opens nothing.
      expect(h.run('toPod', tcpIn(80, 40000, TCP.ACK)).retval).toBe(TcAction.SHOT);
      expect(h.metric(EP, Reason.DROP_CT_TCP_NOT_SYN, Dir.TO_POD).packets).toBe(1n);
      expect(h.dp.views.ct.entries()).toEqual([]);
    });

    it('keeps a flow the changed policy still allows, storing the new revision', () => {
      openWebFlow(h);
      seedPolicyRev(h, 2);
      expect(h.run('toPod', tcpIn(80, 40000, TCP.ACK)).retval).toBe(TcAction.OK);
      expect(h.metric(EP, Reason.PASS_CT_REPLY, Dir.TO_POD).packets).toBe(2n);
      expect(h.dp.views.ct.lookup(webFlow)?.src_rev).toBe(2);
    });

    it('does not re-judge while the revision is unchanged, even if the sets changed', () => {
      openWebFlow(h);
      h.policySet(10, [{ cidr: `${PEER}/32`, classId: 2 }]);
      expect(h.run('fromPod', tcpOut(80, TCP.ACK)).retval).toBe(TcAction.OK);
      expect(h.metric(EP, Reason.PASS_CT_ESTABLISHED, Dir.FROM_POD).packets).toBe(1n);
    });

    it("revokes an inbound flow when the receiver's ingress set stops allowing it", () => {
      const inbound = flowKey(PEER, POD, 50000, 80, PROTO.TCP);
      expect(h.run('toPod', tcpIn(50000, 80, TCP.SYN)).retval).toBe(TcAction.OK);
      expect(h.run('fromPod', tcpOut(50000, TCP.SYN | TCP.ACK, { sport: 80 })).retval).toBe(
        TcAction.OK,
      );
      h.policyClass(3, [{ proto: PROTO.TCP, port: 80, action: 'deny', ruleId: 398 }]);
      seedPolicyRev(h, 2);
      expect(h.run('fromPod', tcpOut(50000, TCP.ACK, { sport: 80 })).retval).toBe(TcAction.SHOT);
      expect(h.events()).toMatchObject([
        { reason: Reason.DROP_POLICY_REVOKED, rule_id: 398, ep_id: EP, dir: Dir.TO_POD },
      ]);
      expect(h.dp.views.ct.lookup(inbound)).toBeNull();
    });

    it('re-judges an ICMP echo flow from its reply as the echo request it answers', () => {
      const request = frame({ src: PEER, dst: POD }, icmpEcho({ id: 7 }));
      const reply = frame({ src: POD, dst: PEER }, icmpEcho({ id: 7, reply: true }));
      h.run('toPod', request);
      seedPolicyRev(h, 2);
      expect(h.run('fromPod', reply).retval).toBe(TcAction.OK); // still allowed by rule 302
      h.policyClass(3, [
        { proto: PROTO.ICMP, port: icmpPort(ICMP.ECHO, 0), action: 'deny', ruleId: 397 },
      ]);
      seedPolicyRev(h, 3);
      expect(h.run('fromPod', reply).retval).toBe(TcAction.SHOT);
      expect(h.events()).toMatchObject([{ reason: Reason.DROP_POLICY_REVOKED, rule_id: 397 }]);
    });

    it('revokes a flow whose judged endpoint is gone from tortie_ifaces', () => {
      openWebFlow(h);
      h.dp.views.ct.update(webFlow, { ...h.dp.views.ct.lookup(webFlow)!, src_ifindex: 4242 });
      expect(h.run('toPod', tcpIn(80, 40000, TCP.ACK)).retval).toBe(TcAction.SHOT);
      expect(h.metric(EP, Reason.DROP_POLICY_REVOKED, Dir.TO_POD).packets).toBe(1n);
      expect(h.dp.views.ct.lookup(webFlow)).toBeNull();
    });
  });

  it("judges this sender's egress when its flow was opened elsewhere (no sender side recorded)", () => {
    const now = process.hrtime.bigint();
    const opened = {
      created_ns: now,
      last_seen_ns: now,
      src_ifindex: 0,
      dst_ifindex: 0,
      src_rev: 0,
      dst_rev: 0,
      rule_id: 0,
      state: CtState.ESTABLISHED,
      flags: 0,
      reserved: 0,
    };
    h.dp.views.ct.update(webFlow, opened);
    expect(h.run('fromPod', tcpOut(80, TCP.ACK)).retval).toBe(TcAction.OK);
    expect(h.metric(EP, Reason.PASS_POLICY, Dir.FROM_POD).packets).toBe(1n);
    expect(h.dp.views.ct.lookup(webFlow)).toMatchObject({
      src_ifindex: LOOPBACK,
      src_rev: 1,
      rule_id: 101,
    });

    const denied = flowKey(POD, STRANGER, 40000, 80, PROTO.TCP);
    h.dp.views.ct.update(denied, opened);
    expect(h.run('fromPod', tcpOut(80, TCP.ACK, { dst: STRANGER })).retval).toBe(TcAction.SHOT);
    expect(h.metric(EP, Reason.DROP_POLICY, Dir.FROM_POD).packets).toBe(1n);
  });

  it('lets the later fragments of an allowed datagram through the same flow', () => {
    const datagram = ipv4(
      { src: POD, dst: PEER, id: 0x5151 },
      udp({ sport: 5353, dport: 53, payload: Buffer.alloc(40) }),
    );
    const pieces = fragmentFrames(datagram, 16);
    expect(pieces.map((p) => h.run('fromPod', p).retval)).toEqual(pieces.map(() => TcAction.OK));
    expect(h.metric(EP, Reason.PASS_POLICY, Dir.FROM_POD).packets).toBe(1n);
    expect(h.metric(EP, Reason.PASS_FRAGMENT, Dir.FROM_POD).packets).toBe(
      BigInt(pieces.length - 1),
    );
    expect(
      h.dp.views.frags.lookup({
        saddr: ipToU32(POD),
        daddr: ipToU32(PEER),
        id: 0x5151,
        proto: PROTO.UDP,
      }),
    ).toEqual({
      sport: 5353,
      dport: 53,
    });
  });

  it('records no ports for a denied first fragment, so its followers drop as FRAG_NO_FIRST', () => {
    const datagram = ipv4(
      { src: POD, dst: PEER, id: 0x5252 },
      udp({ sport: 5353, dport: 54, payload: Buffer.alloc(40) }),
    );
    const [first, second] = fragmentFrames(datagram, 16);
    expect(h.run('fromPod', first!).retval).toBe(TcAction.SHOT);
    expect(h.run('fromPod', second!).retval).toBe(TcAction.SHOT);
    expect(h.metric(EP, Reason.DROP_FRAG_NO_FIRST, Dir.FROM_POD).packets).toBe(1n);
  });

  describe('local delivery', () => {
    beforeEach(() => seedReceiver(h));

    it("redirects into the receiving pod when the receiver's ingress allows, TTL one lower", () => {
      const { retval, data } = h.run('fromPod', tcpOut(80, TCP.SYN));
      expect(retval).toBe(TcAction.REDIRECT);
      const ip = readIpv4(data);
      expect({ ttl: ip.ttl, checksumOk: ip.checksumOk }).toEqual({ ttl: 63, checksumOk: true });
      expect(h.dp.views.ct.lookup(webFlow)).toMatchObject({
        src_ifindex: LOOPBACK,
        dst_ifindex: RECEIVER_IFINDEX,
        rule_id: 401,
      });
      expect(h.metric(EP, Reason.PASS_POLICY, Dir.FROM_POD).packets).toBe(1n);
      expect(h.metric(RECEIVER_EP, Reason.PASS_POLICY, Dir.TO_POD).packets).toBe(1n);
    });

    it("drops what the sender's egress allows but the receiver's ingress denies, blaming the receiver", () => {
      h.policyClass(1, [{ proto: PROTO.TCP, port: 81, action: 'allow', ruleId: 105 }]);
      expect(h.run('fromPod', tcpOut(81, TCP.SYN)).retval).toBe(TcAction.SHOT);
      expect(h.metric(RECEIVER_EP, Reason.DROP_POLICY, Dir.TO_POD).packets).toBe(1n);
      expect(h.events()).toMatchObject([
        {
          type: EventType.DROP,
          reason: Reason.DROP_POLICY,
          ep_id: RECEIVER_EP,
          dir: Dir.TO_POD,
          rule_id: 402,
          ifindex: LOOPBACK,
        },
      ]);
      expect(h.dp.views.ct.lookup(flowKey(POD, PEER, 40000, 81, PROTO.TCP))).toBeNull();
    });

    it('redirects the established flow without judging again', () => {
      h.run('fromPod', tcpOut(80, TCP.SYN));
      expect(h.run('fromPod', tcpOut(80, TCP.ACK)).retval).toBe(TcAction.REDIRECT);
      expect(h.metric(EP, Reason.PASS_CT_ESTABLISHED, Dir.FROM_POD).packets).toBe(1n);
      expect(h.metric(RECEIVER_EP, Reason.PASS_CT_ESTABLISHED, Dir.TO_POD).packets).toBe(1n);
    });

    it("revokes the flow when the receiver's policy changes to deny it", () => {
      h.run('fromPod', tcpOut(80, TCP.SYN));
      h.policyClass(4, [{ proto: PROTO.TCP, port: 80, action: 'deny', ruleId: 403 }]);
      h.endpoint(RECEIVER_IFINDEX, {
        ip: PEER,
        id: RECEIVER_EP,
        ingressSet: 30,
        egressSet: 10,
        rev: 2,
      });
      expect(h.run('fromPod', tcpOut(80, TCP.ACK)).retval).toBe(TcAction.SHOT);
      expect(h.events()).toMatchObject([
        { reason: Reason.DROP_POLICY_REVOKED, ep_id: RECEIVER_EP, rule_id: 403 },
      ]);
    });

    it('judges the receiver when a tracked flow gains a local destination', () => {
      h.dp.views.routes.delete({ prefixlen: 32, addr: ipToU32(PEER) });
      expect(h.run('fromPod', tcpOut(80, TCP.SYN)).retval).toBe(TcAction.OK); // via the host stack
      h.localRoute(PEER, RECEIVER_IFINDEX);
      expect(h.run('fromPod', tcpOut(80, TCP.ACK)).retval).toBe(TcAction.REDIRECT);
      expect(h.dp.views.ct.lookup(webFlow)).toMatchObject({
        dst_ifindex: RECEIVER_IFINDEX,
        rule_id: 401,
      });
    });

    it('leaves the flow untouched when the newly judged receiver denies the packet', () => {
      h.dp.views.routes.delete({ prefixlen: 32, addr: ipToU32(PEER) });
      h.run('fromPod', tcpOut(80, TCP.SYN)); // via the host stack: only the sender's side
      const before = h.dp.views.ct.lookup(webFlow);
      h.localRoute(PEER, RECEIVER_IFINDEX);
      h.policyClass(4, [{ proto: PROTO.TCP, port: 80, action: 'deny', ruleId: 404 }]);
      expect(h.run('fromPod', tcpOut(80, TCP.FIN | TCP.ACK)).retval).toBe(TcAction.SHOT);
      expect(h.dp.views.ct.lookup(webFlow)).toEqual(before);
    });

    it('hands a packet whose TTL would expire to the host stack instead of redirecting', () => {
      const last = frame(
        { src: POD, dst: PEER, ttl: 1 },
        tcp({ sport: 40000, dport: 80, flags: TCP.SYN }),
      );
      const { retval, data } = h.run('fromPod', last);
      expect(retval).toBe(TcAction.OK);
      expect(readIpv4(data).ttl).toBe(1);
    });

    it('drops as NO_POLICY when the route names a local endpoint that tortie_ifaces lacks', () => {
      h.dp.views.ifaces.delete(RECEIVER_IFINDEX);
      expect(h.run('fromPod', tcpOut(80, TCP.SYN)).retval).toBe(TcAction.SHOT);
      expect(h.metric(0, Reason.DROP_NO_POLICY, Dir.TO_POD).packets).toBe(1n);
    });
  });

  it('emits a LOG event for a verdict flagged LOG, with tracing off', () => {
    h.policyClass(1, [{ proto: PROTO.TCP, port: 80, action: 'allow', ruleId: 106, log: true }]);
    expect(h.run('fromPod', tcpOut(80, TCP.SYN)).retval).toBe(TcAction.OK);
    expect(h.events()).toMatchObject([
      {
        type: EventType.LOG,
        ep_id: EP,
        rule_id: 106,
        action: Action.ALLOW,
        reason: Reason.PASS_POLICY,
        dir: Dir.FROM_POD,
      },
    ]);
  });
});

function seedPolicyRev(h: BpfHarness, rev: number): void {
  h.endpoint(LOOPBACK, { ip: POD, id: EP, egressSet: 10, ingressSet: 20, rev });
}

function fragmentFrames(datagram: Buffer, chunk: number): Buffer[] {
  return fragmentIpv4(datagram, chunk).map((d) => ethernet(d));
}

describe('conntrack expiry', () => {
  // The timeout is set by the test and long: no pause of a slow machine between two
  // packets comes near it. Idle time is made by moving the entry's timestamps into the
  // past through the map, so whether a flow has expired is decided by the test, not by
  // how long the test took.
  const TIMEOUT_MS = 600_000;
  const TIMEOUT_NS = BigInt(TIMEOUT_MS) * 1_000_000n;
  const dnsFlow = flowKey(POD, PEER, 5353, 53, PROTO.UDP);
  const query = frame({ src: POD, dst: PEER }, udp({ sport: 5353, dport: 53 }));
  const answer = frame({ src: PEER, dst: POD }, udp({ sport: 53, dport: 5353 }));

  let h: BpfHarness;
  beforeAll(() => {
    h = new BpfHarness({ ctTimeoutsMs: { other: TIMEOUT_MS } });
  });
  afterAll(() => {
    h?.close();
  });
  beforeEach(() => {
    h.reset();
    seedPolicy(h);
  });

  /**
   * Makes the flow `ns` more idle (and older) than it is. The kernel's clock counts from
   * boot, so on a young machine the result can be "before boot": written modulo 2^64, the
   * program's unsigned `now - last_seen` still comes out as the real idle time plus `ns`.
   */
  function age(ns: bigint): void {
    const e = h.dp.views.ct.lookup(dnsFlow);
    expect(e, 'the flow is tracked').not.toBeNull();
    h.dp.views.ct.update(dnsFlow, {
      ...e!,
      created_ns: BigInt.asUintN(64, e!.created_ns - ns),
      last_seen_ns: BigInt.asUintN(64, e!.last_seen_ns - ns),
    });
  }

  it('judges a flow again as new once its entry has been idle past the timeout', () => {
    expect(h.run('fromPod', query).retval).toBe(TcAction.OK);
    expect(h.run('toPod', answer).retval).toBe(TcAction.OK);
    expect(h.metric(EP, Reason.PASS_CT_REPLY, Dir.TO_POD).packets).toBe(1n);
    age(TIMEOUT_NS + 1n);
    // Expired: the answer is a new flow for the ingress set, which denies UDP.
    expect(h.run('toPod', answer).retval).toBe(TcAction.SHOT);
    expect(h.metric(EP, Reason.DROP_POLICY, Dir.TO_POD).packets).toBe(1n);
    expect(h.metric(EP, Reason.PASS_CT_REPLY, Dir.TO_POD).packets).toBe(1n);
    // And the query opens it again.
    expect(h.run('fromPod', query).retval).toBe(TcAction.OK);
    expect(h.metric(EP, Reason.PASS_POLICY, Dir.FROM_POD).packets).toBe(2n);
  });

  it('keeps a flow whose entry another CPU refreshed after this packet read its clock', () => {
    // Two CPUs meet the same entry (a packet each way): one takes `now`, the other
    // refreshes last_seen_ns past it before the first compares. Made here by moving the
    // entry's last packet a second into the future.
    expect(h.run('fromPod', query).retval).toBe(TcAction.OK);
    const e = h.dp.views.ct.lookup(dnsFlow)!;
    h.dp.views.ct.update(dnsFlow, { ...e, last_seen_ns: e.last_seen_ns + 1_000_000_000n });
    // Live: the answer is the flow's reply, not a new flow the ingress set denies.
    expect(h.run('toPod', answer).retval).toBe(TcAction.OK);
    expect(h.metric(EP, Reason.PASS_CT_REPLY, Dir.TO_POD).packets).toBe(1n);
    expect(h.metric(EP, Reason.DROP_POLICY, Dir.TO_POD).packets).toBe(0n);
  });

  it('keeps a flow alive while packets keep coming within the timeout', () => {
    h.run('fromPod', query);
    // Four gaps of three quarters of the timeout each: three timeouts since the flow
    // opened, never a whole one since its last packet.
    for (let i = 0; i < 4; i++) {
      const before = h.dp.views.ct.lookup(dnsFlow)!.last_seen_ns;
      age((TIMEOUT_NS * 3n) / 4n);
      expect(h.run('fromPod', query).retval).toBe(TcAction.OK);
      // The packet refreshed the entry: its last-seen time is now, not before where it
      // was (compared modulo 2^64, as the program does).
      const after = h.dp.views.ct.lookup(dnsFlow)!.last_seen_ns;
      expect(BigInt.asIntN(64, after - before)).toBeGreaterThanOrEqual(0n);
    }
    expect(h.metric(EP, Reason.PASS_CT_ESTABLISHED, Dir.FROM_POD).packets).toBe(4n);
    expect(h.metric(EP, Reason.PASS_POLICY, Dir.FROM_POD).packets).toBe(1n);
  });
});

describe('verdict tracing', () => {
  let h: BpfHarness;
  beforeAll(() => {
    h = new BpfHarness({ traceVerdicts: true });
  });
  afterAll(() => {
    h?.close();
  });
  beforeEach(() => {
    h.reset();
    seedPolicy(h);
    seedReceiver(h);
  });

  it('emits two VERDICT events for a local delivery: egress of the sender, then ingress of the receiver', () => {
    expect(h.run('fromPod', tcpOut(80, TCP.SYN)).retval).toBe(TcAction.REDIRECT);
    expect(h.events()).toMatchObject([
      {
        type: EventType.VERDICT,
        ep_id: EP,
        dir: Dir.FROM_POD,
        action: Action.ALLOW,
        rule_id: 101,
        reason: Reason.PASS_POLICY,
      },
      {
        type: EventType.VERDICT,
        ep_id: RECEIVER_EP,
        dir: Dir.TO_POD,
        action: Action.ALLOW,
        rule_id: 401,
        reason: Reason.PASS_POLICY,
      },
    ]);
  });

  it('emits no VERDICT for packets of a tracked flow', () => {
    h.run('fromPod', tcpOut(80, TCP.SYN));
    h.events();
    h.run('fromPod', tcpOut(80, TCP.ACK));
    expect(h.events()).toEqual([]);
  });

  it('emits the denying VERDICT and then the DROP', () => {
    expect(h.run('fromPod', tcpOut(80, TCP.SYN, { dst: STRANGER })).retval).toBe(TcAction.SHOT);
    expect(h.events().map((e) => [e.type, e.rule_id])).toEqual([
      [EventType.VERDICT, 201],
      [EventType.DROP, 201],
    ]);
  });
});

describe('drop events switched off', () => {
  let h: BpfHarness;
  beforeAll(() => {
    h = new BpfHarness({ dropEvents: false });
  });
  afterAll(() => {
    h?.close();
  });

  it('counts the drop but emits no event', () => {
    h.reset();
    seedPolicy(h);
    expect(h.run('fromPod', tcpOut(80, TCP.SYN, { dst: STRANGER })).retval).toBe(TcAction.SHOT);
    expect(h.metric(EP, Reason.DROP_POLICY, Dir.FROM_POD).packets).toBe(1n);
    expect(h.events()).toEqual([]);
  });
});
