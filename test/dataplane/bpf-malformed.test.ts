/**
 * Malformed and unusual input through the real tc programs (BPF_PROG_TEST_RUN, root):
 * every row is one packet with its documented verdict and reason. The reason must be
 * counted in tortie_metrics, and a drop must emit exactly one DROP event carrying it.
 * docs/dataplane.md ("Malformed and unusual input") shows the same table; the last
 * test fails when the two disagree.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { Dir, EventType, Reason, TcAction, type ReasonName } from '../../src/maps/index.js';
import { packageRoot } from '../../src/native/index.js';
import {
  arpRequest,
  ETH_P,
  ethernet,
  fragmentIpv4,
  frame,
  ICMP,
  icmp,
  icmpEcho,
  IP_OPTION_ROUTER_ALERT,
  ipv4,
  ipv6,
  PROTO,
  rawL4,
  sctp,
  TCP,
  tcp,
  truncate,
  udp,
  UNREACH,
  type L4,
} from '../../src/util/packets.js';
import { BpfHarness, LOOPBACK, type ProgramRole } from './bpf-harness.js';

const POD = '10.0.0.1';
const PEER = '10.0.0.2';
const EP_ID = 7;

type Verdict = keyof typeof TcAction;
interface Row {
  readonly name: string;
  readonly prog: ProgramRole;
  readonly frame: Buffer;
  readonly verdict: Verdict;
  readonly reason: ReasonName;
  /** Packets sent first (e.g. a first fragment). */
  readonly before?: readonly Buffer[];
  /** false: tortie_ifaces has no entry for the interface. */
  readonly endpoint?: boolean;
}

const out = (l4: L4, ip: Partial<Parameters<typeof ipv4>[0]> = {}): Buffer =>
  frame({ src: POD, dst: PEER, ...ip }, l4);
const inbound = (l4: L4, ip: Partial<Parameters<typeof ipv4>[0]> = {}): Buffer =>
  frame({ src: PEER, dst: POD, ...ip }, l4);
/** An IPv4 datagram whose payload is the first n bytes of l4 (total length consistent). */
const cutL4 = (l4: L4, n: number): Buffer => out(rawL4(l4.proto, l4.bytes.subarray(0, n)));

const syn = tcp({ sport: 40000, dport: 80, flags: TCP.SYN });
const synFrame = out(syn); // 14 + 20 + 20 = 54 bytes
const udpSeg = udp({ sport: 5353, dport: 53, payload: Buffer.from('query') });
const echo = icmpEcho({ id: 77 });
const withOptions = (options: Buffer): Buffer => out(syn, { options });
const nops = (n: number): Buffer => Buffer.alloc(n, 1);
// Port unreachable quoting only the first 4 bytes of the packet it is about.
const cutQuote = icmp({
  type: ICMP.DEST_UNREACH,
  code: UNREACH.PORT,
  payload: ipv4({ src: PEER, dst: POD }, udpSeg).subarray(0, 4),
});

// A 64-byte UDP datagram cut into fragments of 24 payload bytes: [0..24) [24..48) [48..72).
const bigUdp = ipv4(
  { src: POD, dst: PEER, id: 0x4242 },
  udp({ sport: 5000, dport: 53, payload: Buffer.alloc(56, 7) }),
);
const [frag0, frag1, frag2] = fragmentIpv4(bigUdp, 24).map((d) => ethernet(d));
// A first fragment holding only 8 bytes of a TCP header.
const tinyTcpFirst = ethernet(fragmentIpv4(ipv4({ src: POD, dst: PEER, id: 0x77 }, syn), 8)[0]!);

const ROWS: readonly Row[] = [
  // well-formed baselines
  { name: 'TCP SYN', prog: 'fromPod', frame: synFrame, verdict: 'OK', reason: 'PASS_POLICY' },
  { name: 'UDP', prog: 'fromPod', frame: out(udpSeg), verdict: 'OK', reason: 'PASS_POLICY' },
  {
    name: 'ICMP echo request',
    prog: 'fromPod',
    frame: out(echo),
    verdict: 'OK',
    reason: 'PASS_POLICY',
  },
  // L2
  {
    name: 'ARP request',
    prog: 'fromPod',
    frame: arpRequest({ senderIp: POD, target: '169.254.1.1' }),
    verdict: 'OK',
    reason: 'PASS_ARP',
  },
  {
    name: 'IPv6',
    prog: 'fromPod',
    frame: ethernet(ipv6(), { ethertype: ETH_P.IPV6 }),
    verdict: 'SHOT',
    reason: 'DROP_IPV6',
  },
  {
    name: 'VLAN-tagged IPv4 (802.1Q)',
    prog: 'fromPod',
    frame: ethernet(ipv4({ src: POD, dst: PEER }, syn), { vlans: [100] }),
    verdict: 'SHOT',
    reason: 'DROP_UNSUPPORTED_L3',
  },
  {
    name: 'QinQ ethertype (802.1ad)',
    prog: 'fromPod',
    frame: ethernet(ipv4({ src: POD, dst: PEER }, syn), { ethertype: ETH_P.QINQ }),
    verdict: 'SHOT',
    reason: 'DROP_UNSUPPORTED_L3',
  },
  {
    name: 'MPLS',
    prog: 'fromPod',
    frame: ethernet(Buffer.alloc(40), { ethertype: ETH_P.MPLS }),
    verdict: 'SHOT',
    reason: 'DROP_UNSUPPORTED_L3',
  },
  // truncation of the frame (IPv4 total length still claims the whole packet)
  {
    name: 'frame cut after the IPv4 header (34 bytes)',
    prog: 'fromPod',
    frame: truncate(synFrame, 34),
    verdict: 'SHOT',
    reason: 'DROP_MALFORMED',
  },
  {
    name: 'frame cut 1 byte short of the TCP header (53 bytes)',
    prog: 'fromPod',
    frame: truncate(synFrame, 53),
    verdict: 'SHOT',
    reason: 'DROP_MALFORMED',
  },
  // L4 headers cut short inside a consistent datagram (total length = bytes present)
  {
    name: 'TCP header of 19 bytes',
    prog: 'fromPod',
    frame: cutL4(syn, 19),
    verdict: 'SHOT',
    reason: 'DROP_MALFORMED',
  },
  {
    name: 'TCP header of 20 bytes',
    prog: 'fromPod',
    frame: cutL4(syn, 20),
    verdict: 'OK',
    reason: 'PASS_POLICY',
  },
  {
    name: 'UDP header of 7 bytes',
    prog: 'fromPod',
    frame: cutL4(udpSeg, 7),
    verdict: 'SHOT',
    reason: 'DROP_MALFORMED',
  },
  {
    name: 'UDP header of 8 bytes',
    prog: 'fromPod',
    frame: cutL4(udpSeg, 8),
    verdict: 'OK',
    reason: 'PASS_POLICY',
  },
  {
    name: 'UDPLite header of 7 bytes',
    prog: 'fromPod',
    frame: cutL4(udp({ sport: 1, dport: 2, lite: true }), 7),
    verdict: 'SHOT',
    reason: 'DROP_MALFORMED',
  },
  {
    name: 'UDPLite header of 8 bytes',
    prog: 'fromPod',
    frame: out(udp({ sport: 1, dport: 2, lite: true })),
    verdict: 'OK',
    reason: 'PASS_POLICY',
  },
  {
    name: 'SCTP common header of 11 bytes',
    prog: 'fromPod',
    frame: cutL4(sctp({ sport: 9, dport: 9 }), 11),
    verdict: 'SHOT',
    reason: 'DROP_MALFORMED',
  },
  {
    name: 'SCTP common header of 12 bytes',
    prog: 'fromPod',
    frame: out(sctp({ sport: 9, dport: 9 })),
    verdict: 'OK',
    reason: 'PASS_POLICY',
  },
  {
    name: 'ICMP header of 7 bytes',
    prog: 'fromPod',
    frame: cutL4(icmp({ type: ICMP.ECHO }), 7),
    verdict: 'SHOT',
    reason: 'DROP_MALFORMED',
  },
  {
    name: 'ICMP header of 8 bytes',
    prog: 'fromPod',
    frame: out(icmp({ type: ICMP.ECHO })),
    verdict: 'OK',
    reason: 'PASS_POLICY',
  },
  // TCP data offset
  {
    name: 'TCP data offset 4 (< 5)',
    prog: 'fromPod',
    frame: out(tcp({ sport: 1, dport: 80, doff: 4 })),
    verdict: 'SHOT',
    reason: 'DROP_MALFORMED',
  },
  {
    name: 'TCP data offset 6 beyond the datagram',
    prog: 'fromPod',
    frame: out(tcp({ sport: 1, dport: 80, doff: 6 })),
    verdict: 'SHOT',
    reason: 'DROP_MALFORMED',
  },
  {
    name: 'TCP with 40 bytes of options (data offset 15)',
    prog: 'fromPod',
    frame: out(tcp({ sport: 1, dport: 80, flags: TCP.SYN, options: nops(40) })),
    verdict: 'OK',
    reason: 'PASS_POLICY',
  },
  // IPv4 header fields
  {
    name: 'IPv4 version 6 under the IPv4 ethertype',
    prog: 'fromPod',
    frame: out(syn, { version: 6 }),
    verdict: 'SHOT',
    reason: 'DROP_MALFORMED',
  },
  {
    name: 'IPv4 version 5',
    prog: 'fromPod',
    frame: out(syn, { version: 5 }),
    verdict: 'SHOT',
    reason: 'DROP_MALFORMED',
  },
  {
    name: 'IHL 4 (< 5)',
    prog: 'fromPod',
    frame: out(syn, { ihl: 4 }),
    verdict: 'SHOT',
    reason: 'DROP_MALFORMED',
  },
  {
    name: 'IHL 15 beyond the frame',
    prog: 'fromPod',
    frame: out(rawL4(PROTO.UDP, Buffer.alloc(8)), { ihl: 15 }),
    verdict: 'SHOT',
    reason: 'DROP_MALFORMED',
  },
  {
    name: 'IP options: router alert (IHL 6)',
    prog: 'fromPod',
    frame: withOptions(IP_OPTION_ROUTER_ALERT),
    verdict: 'OK',
    reason: 'PASS_POLICY',
  },
  {
    name: 'IP options: 40 bytes (IHL 15)',
    prog: 'fromPod',
    frame: withOptions(nops(40)),
    verdict: 'OK',
    reason: 'PASS_POLICY',
  },
  {
    name: 'total length 19 (< IHL * 4)',
    prog: 'fromPod',
    frame: out(syn, { totalLength: 19 }),
    verdict: 'SHOT',
    reason: 'DROP_MALFORMED',
  },
  {
    name: 'total length 1 byte beyond the frame',
    prog: 'fromPod',
    frame: out(syn, { totalLength: 41 }),
    verdict: 'SHOT',
    reason: 'DROP_MALFORMED',
  },
  {
    name: 'Ethernet padding after the datagram (60-byte frame)',
    prog: 'fromPod',
    frame: Buffer.concat([out(udp({ sport: 1, dport: 53 })), Buffer.alloc(18)]),
    verdict: 'OK',
    reason: 'PASS_POLICY',
  },
  // fragments
  {
    name: 'first fragment (MF, offset 0)',
    prog: 'fromPod',
    frame: frag0!,
    verdict: 'OK',
    reason: 'PASS_POLICY',
  },
  {
    name: 'non-first fragment without its first',
    prog: 'fromPod',
    frame: frag1!,
    verdict: 'SHOT',
    reason: 'DROP_FRAG_NO_FIRST',
  },
  {
    name: 'last fragment without its first',
    prog: 'fromPod',
    frame: frag2!,
    verdict: 'SHOT',
    reason: 'DROP_FRAG_NO_FIRST',
  },
  {
    name: 'non-first fragment after its first passed',
    prog: 'fromPod',
    before: [frag0!],
    frame: frag1!,
    verdict: 'OK',
    reason: 'PASS_FRAGMENT',
  },
  {
    name: 'last fragment after its first passed',
    prog: 'fromPod',
    before: [frag0!, frag1!],
    frame: frag2!,
    verdict: 'OK',
    reason: 'PASS_FRAGMENT',
  },
  {
    name: 'non-first fragment of another datagram (other IP id)',
    prog: 'fromPod',
    before: [frag0!],
    frame: setIpId(frag1!, 0x4243),
    verdict: 'SHOT',
    reason: 'DROP_FRAG_NO_FIRST',
  },
  {
    name: 'first fragment too short for its TCP header',
    prog: 'fromPod',
    frame: tinyTcpFirst,
    verdict: 'SHOT',
    reason: 'DROP_MALFORMED',
  },
  // protocols without ports
  {
    name: 'GRE (protocol 47)',
    prog: 'fromPod',
    frame: out(rawL4(PROTO.GRE)),
    verdict: 'OK',
    reason: 'PASS_POLICY',
  },
  {
    name: 'IPIP (protocol 4) from a pod',
    prog: 'fromPod',
    frame: out(rawL4(4)),
    verdict: 'SHOT',
    reason: 'DROP_WORKLOAD_ENCAP',
  },
  {
    name: 'UDP to the VXLAN port (4789) from a pod',
    prog: 'fromPod',
    frame: out(udp({ sport: 40000, dport: 4789 })),
    verdict: 'SHOT',
    reason: 'DROP_WORKLOAD_ENCAP',
  },
  {
    name: 'protocol 253 (experimental)',
    prog: 'fromPod',
    frame: out(rawL4(253)),
    verdict: 'OK',
    reason: 'PASS_POLICY',
  },
  {
    name: 'protocol 253 with no payload',
    prog: 'fromPod',
    frame: out(rawL4(253, Buffer.alloc(0))),
    verdict: 'OK',
    reason: 'PASS_POLICY',
  },
  {
    name: 'ICMP error whose quote is cut (judged as a packet)',
    prog: 'fromPod',
    frame: out(cutQuote),
    verdict: 'OK',
    reason: 'PASS_POLICY',
  },
  // the interface and the addresses
  {
    name: 'no endpoint on the interface',
    prog: 'fromPod',
    endpoint: false,
    frame: synFrame,
    verdict: 'SHOT',
    reason: 'DROP_NO_ENDPOINT',
  },
  {
    name: 'ARP, no endpoint on the interface',
    prog: 'fromPod',
    endpoint: false,
    frame: arpRequest({ senderIp: POD, target: '169.254.1.1' }),
    verdict: 'OK',
    reason: 'PASS_ARP',
  },
  {
    name: 'malformed, no endpoint on the interface',
    prog: 'fromPod',
    endpoint: false,
    frame: truncate(synFrame, 53),
    verdict: 'SHOT',
    reason: 'DROP_MALFORMED',
  },
  {
    name: 'source address not the pod',
    prog: 'fromPod',
    frame: out(syn, { src: '10.0.0.99' }),
    verdict: 'SHOT',
    reason: 'DROP_SPOOF',
  },
  // the receiving side parses the same way
  {
    name: 'to pod: TCP SYN',
    prog: 'toPod',
    frame: inbound(syn),
    verdict: 'OK',
    reason: 'PASS_POLICY',
  },
  {
    name: 'to pod: IPv6',
    prog: 'toPod',
    frame: ethernet(ipv6(), { ethertype: ETH_P.IPV6 }),
    verdict: 'SHOT',
    reason: 'DROP_IPV6',
  },
  {
    name: 'to pod: frame cut 1 byte short of the TCP header',
    prog: 'toPod',
    frame: truncate(inbound(syn), 53),
    verdict: 'SHOT',
    reason: 'DROP_MALFORMED',
  },
  {
    name: 'to pod: ARP request',
    prog: 'toPod',
    frame: arpRequest({ senderIp: PEER, target: POD }),
    verdict: 'OK',
    reason: 'PASS_ARP',
  },
  {
    name: 'to pod: destination not the pod',
    prog: 'toPod',
    frame: frame({ src: PEER, dst: '10.0.0.3' }, syn),
    verdict: 'SHOT',
    reason: 'DROP_NOT_FOR_ENDPOINT',
  },
  {
    name: 'to pod: non-first fragment without its first',
    prog: 'toPod',
    frame: ethernet(fragmentIpv4(ipv4({ src: PEER, dst: POD, id: 9 }, udpSeg), 8)[1]!),
    verdict: 'SHOT',
    reason: 'DROP_FRAG_NO_FIRST',
  },
];

function setIpId(f: Buffer, id: number): Buffer {
  const copy = Buffer.from(f);
  copy.writeUInt16BE(id, 14 + 4);
  return copy;
}

const DIR_OF: Record<ProgramRole, number> = { fromPod: Dir.FROM_POD, toPod: Dir.TO_POD };

let h: BpfHarness;

beforeAll(() => {
  h = new BpfHarness();
});
afterAll(() => {
  h?.close();
});
beforeEach(() => {
  h.reset();
});

function seed(withEndpoint: boolean): void {
  // Allow everything both ways: the table is about parsing, not policy.
  if (withEndpoint) h.endpoint(LOOPBACK, { ip: POD, id: EP_ID, ingressSet: 20, egressSet: 10 });
  h.policySet(10, [{ cidr: '0.0.0.0/0', classId: 1 }]);
  h.policySet(20, [{ cidr: '0.0.0.0/0', classId: 1 }]);
  h.policyClass(1, [{ action: 'allow', ruleId: 1 }]);
}

describe('tc programs on malformed and unusual input', () => {
  it.each(ROWS.map((r) => [r.name, r] as const))('%s', (_name, row) => {
    const withEndpoint = row.endpoint !== false;
    seed(withEndpoint);
    for (const f of row.before ?? []) expect(h.run(row.prog, f).retval).not.toBe(TcAction.SHOT);
    h.events();

    const epId = withEndpoint ? EP_ID : 0;
    const reason = Reason[row.reason];
    const dir = DIR_OF[row.prog];
    const counted = h.metric(epId, reason, dir).packets;

    const { retval } = h.run(row.prog, row.frame);

    expect({ verdict: retval, reason: row.reason }).toEqual({
      verdict: TcAction[row.verdict],
      reason: row.reason,
    });
    expect(h.metric(epId, reason, dir)).toEqual({
      packets: counted + 1n,
      bytes: expect.any(BigInt),
    });
    const events = h.events();
    if (row.verdict === 'SHOT') {
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({
        type: EventType.DROP,
        reason,
        ep_id: epId,
        dir,
        ifindex: LOOPBACK,
      });
    } else {
      expect(events).toEqual([]);
    }
  });

  it('counts the bytes of the whole frame', () => {
    seed(true);
    h.run('fromPod', synFrame);
    expect(h.metric(EP_ID, Reason.PASS_POLICY, Dir.FROM_POD)).toEqual({
      packets: 1n,
      bytes: BigInt(synFrame.length),
    });
  });

  // The kernel's BPF_PROG_TEST_RUN refuses these frames before the program runs, so
  // the rows cannot be driven here (docs/dataplane.md lists them apart). When a kernel
  // accepts them, this fails: move them into ROWS.
  it.each([
    ['frame cut inside Ethernet (13 bytes)', truncate(synFrame, 13)],
    ['frame cut after Ethernet (14 bytes)', truncate(synFrame, 14)],
    ['frame cut 1 byte short of the IPv4 header (33 bytes)', truncate(synFrame, 33)],
    [
      'IPv6 frame cut 1 byte short of its header (53 bytes)',
      truncate(ethernet(ipv6(), { ethertype: ETH_P.IPV6 }), 53),
    ],
  ])('cannot be driven with %s: BPF_PROG_TEST_RUN refuses it (EINVAL)', (_name, f) => {
    seed(true);
    expect(() => h.run('fromPod', f)).toThrow(/EINVAL/);
  });

  it('documents every row in docs/dataplane.md with the same verdict and reason', () => {
    const doc = readFileSync(join(packageRoot(), 'docs', 'dataplane.md'), 'utf8');
    const documented = new Map<string, string>();
    for (const line of doc.split('\n')) {
      const cells = line.split('|').map((c) => c.trim());
      if (cells.length >= 5 && cells[1] && /^TC_ACT_/.test(cells[3] ?? ''))
        documented.set(cells[1], `${cells[2]} ${cells[3]} ${cells[4]}`);
    }
    const missing = ROWS.filter(
      (r) => documented.get(r.name) !== `${PROG_LABEL[r.prog]} TC_ACT_${r.verdict} ${r.reason}`,
    ).map(
      (r) =>
        `| ${r.name} | ${PROG_LABEL[r.prog]} | TC_ACT_${r.verdict} | ${r.reason} |  (doc has: ${documented.get(r.name) ?? 'nothing'})`,
    );
    expect(missing).toEqual([]);
  });
});

const PROG_LABEL: Record<ProgramRole, string> = { fromPod: 'from pod', toPod: 'to pod' };
