/**
 * When a kernel helper fails. A real kernel refuses to reshape or rewrite a packet only
 * under memory pressure or for a packet it cannot change, so these paths are driven
 * through test/fixtures/bpf/tc_policy_helper_fails.c: the programs of bpf/tc_policy.c,
 * built with the Makefile's flags, with bpf_skb_adjust_room (adding or removing the
 * outer header) or bpf_skb_store_bytes (writing a header field) made to fail. Each
 * failure drops under its own reason, counted and reported, opens no flow, and a packet
 * that goes on anyway goes on as it came — never half rewritten.
 *
 * The node is 192.0.2.1 on the underlay, the other node 192.0.2.2 owns 10.2.0.0/26. The
 * sender is the pod 10.1.0.5 on ifindex 1 (loopback, what test runs use); the local
 * receiver 10.1.0.6 sits behind ifindex 1000 (a route, never a device: a test run only
 * records the redirect). Both allow everything: only the helper can fail here.
 *
 * Root only (BPF_PROG_TEST_RUN).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

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
import { ETH_HLEN, ethernet, ipv4, rawL4, readIpv4, TCP, tcp } from '../../src/util/packets.js';
import { compileBpf } from '../helpers/bpf-build.js';
import { newRunId } from '../helpers/netns.js';
import { BpfHarness, LOOPBACK } from './bpf-harness.js';

const FIXTURE = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  'fixtures',
  'bpf',
  'tc_policy_helper_fails.c',
);

const NODE = '192.0.2.1';
const OTHER = '192.0.2.2';
const POD = '10.1.0.5';
const LOCAL_POD = '10.1.0.6';
const REMOTE_POD = '10.2.0.9';
const EP = 7;
const RECEIVER_IFINDEX = 1000;
const RECEIVER_EP = 8;
const IPPROTO_IPIP = 4;

const syn = tcp({ sport: 40000, dport: 80, flags: TCP.SYN });
const fromPod = (dst: string): Buffer => ethernet(ipv4({ src: POD, dst, ttl: 64 }, syn));
/** IPIP from the other node carrying the remote pod's SYN to the local receiver. */
const tunnelled = (): Buffer =>
  ethernet(
    ipv4(
      { src: OTHER, dst: NODE, ttl: 64, df: true },
      rawL4(IPPROTO_IPIP, ipv4({ src: REMOTE_POD, dst: LOCAL_POD, ttl: 63 }, syn)),
    ),
  );
/** What the node itself sends to the remote pod, met leaving by the uplink. */
const fromNode = (): Buffer => ethernet(ipv4({ src: NODE, dst: REMOTE_POD, ttl: 64 }, syn));

const key = (ep: number, reason: number, dir: number): string => `${ep}:${reason}:${dir}`;

function seed(h: BpfHarness): void {
  h.reset();
  h.dp.views.nodeCfg.update(0, { underlay_ip: ipToU32(NODE), uplink_ifindex: LOOPBACK });
  h.dp.views.nodes.update(ipToU32(OTHER), { flags: 0 });
  h.dp.views.routes.update(
    { prefixlen: 26, addr: ipToU32('10.2.0.0') },
    { type: RouteType.REMOTE_BLOCK, ifindex: 0, next_hop: ipToU32(OTHER), flags: RouteFlags.IPIP },
  );
  h.endpoint(LOOPBACK, { ip: POD, id: EP, egressSet: 10, ingressSet: 10 });
  h.endpoint(RECEIVER_IFINDEX, { ip: LOCAL_POD, id: RECEIVER_EP, egressSet: 10, ingressSet: 10 });
  h.localRoute(LOCAL_POD, RECEIVER_IFINDEX);
  h.policySet(10, [{ cidr: '0.0.0.0/0', classId: 1 }]);
  h.policyClass(1, [{ action: 'allow', ruleId: 101 }]);
}

const buildDir = mkdtempSync(join(tmpdir(), `tortie-helper-fails-${newRunId()}-`));
const harnesses: BpfHarness[] = [];

/** The fixture built with `define` and loaded (with its own pin root). */
function failing(define: string): BpfHarness {
  const objectPath = compileBpf(FIXTURE, join(buildDir, `${define}.o`), [define]);
  const h = new BpfHarness({}, { objectPath });
  harnesses.push(h);
  return h;
}

afterAll(() => {
  try {
    for (const h of harnesses) h.close();
  } finally {
    rmSync(buildDir, { recursive: true, force: true });
  }
});

describe('bpf_skb_adjust_room fails (no outer header can be added or removed)', () => {
  let h: BpfHarness;
  beforeAll(() => {
    h = failing('FAIL_ADJUST_ROOM');
  });
  beforeEach(() => seed(h));

  it("drops a pod's packet to a remote block as DROP_ENCAP_FAILED, towards the uplink, and opens no flow", () => {
    const { retval } = h.run('fromPod', fromPod(REMOTE_POD));

    expect(retval).toBe(TcAction.SHOT);
    // Only the drop is counted: the sender's policy pass is counted when the packet leaves.
    expect(h.metricKeys()).toEqual([key(EP, Reason.DROP_ENCAP_FAILED, Dir.TO_UPLINK)]);
    expect(h.events()).toMatchObject([
      {
        type: EventType.DROP,
        reason: Reason.DROP_ENCAP_FAILED,
        ep_id: EP,
        dir: Dir.TO_UPLINK,
        saddr: ipToU32(POD),
        daddr: ipToU32(REMOTE_POD),
      },
    ]);
    expect(h.dp.views.ct.entries()).toEqual([]);
  });

  it("drops the node's own packet to a remote block (tortie_to_uplink) as DROP_ENCAP_FAILED", () => {
    const { retval } = h.run('toUplink', fromNode());

    expect(retval).toBe(TcAction.SHOT);
    expect(h.metricKeys()).toEqual([key(0, Reason.DROP_ENCAP_FAILED, Dir.TO_UPLINK)]);
    expect(h.events()).toMatchObject([
      { type: EventType.DROP, reason: Reason.DROP_ENCAP_FAILED, ep_id: 0, dir: Dir.TO_UPLINK },
    ]);
  });

  it('drops IPIP whose outer header cannot be stripped as DROP_DECAP_FAILED, named by the outer addresses, as it came', () => {
    const input = tunnelled();
    const { retval, data } = h.run('fromUplink', input);

    expect(retval).toBe(TcAction.SHOT);
    expect(data).toEqual(input);
    expect(h.metricKeys()).toEqual([key(0, Reason.DROP_DECAP_FAILED, Dir.FROM_UPLINK)]);
    expect(h.events()).toMatchObject([
      {
        type: EventType.DROP,
        reason: Reason.DROP_DECAP_FAILED,
        ep_id: 0,
        dir: Dir.FROM_UPLINK,
        saddr: ipToU32(OTHER),
        daddr: ipToU32(NODE),
        proto: IPPROTO_IPIP,
      },
    ]);
    // Never judged: the receiver's policy saw no inner packet, no flow was opened.
    expect(h.dp.views.ct.entries()).toEqual([]);
  });

  it('leaves a local delivery alone (the fixture is the real program otherwise)', () => {
    const { retval } = h.run('fromPod', fromPod(LOCAL_POD));

    expect(retval).toBe(TcAction.REDIRECT);
    expect(h.metric(RECEIVER_EP, Reason.PASS_POLICY, Dir.TO_POD).packets).toBe(1n);
    expect(h.dp.views.ct.entries().length).toBe(1);
  });
});

describe('bpf_skb_store_bytes fails (no header field can be written)', () => {
  let h: BpfHarness;
  beforeAll(() => {
    h = failing('FAIL_STORE_BYTES');
  });
  beforeEach(() => seed(h));

  it("drops a pod's packet to a remote block as DROP_ENCAP_FAILED when its TTL cannot be written, header as it came, no flow", () => {
    const input = fromPod(REMOTE_POD);
    const { retval, data } = h.run('fromPod', input);

    expect(retval).toBe(TcAction.SHOT);
    expect(data).toEqual(input);
    expect(h.metricKeys()).toEqual([key(EP, Reason.DROP_ENCAP_FAILED, Dir.TO_UPLINK)]);
    expect(h.events()).toMatchObject([
      { type: EventType.DROP, reason: Reason.DROP_ENCAP_FAILED, ep_id: EP, dir: Dir.TO_UPLINK },
    ]);
    expect(h.dp.views.ct.entries()).toEqual([]);
  });

  it("drops the node's own packet as DROP_ENCAP_FAILED when its outer header cannot be written", () => {
    const { retval } = h.run('toUplink', fromNode());

    expect(retval).toBe(TcAction.SHOT);
    expect(h.metricKeys()).toEqual([key(0, Reason.DROP_ENCAP_FAILED, Dir.TO_UPLINK)]);
  });

  it('hands a local delivery whose TTL cannot be written to the host stack as it came (checksum right)', () => {
    const input = fromPod(LOCAL_POD);
    const { retval, data } = h.run('fromPod', input);

    // The host stack routes it (and decrements the TTL itself); it must find the
    // header whole, or it drops the packet for a bad checksum without a word.
    expect(retval).toBe(TcAction.OK);
    expect(readIpv4(data)).toMatchObject({ ttl: 64, checksumOk: true });
    expect(data).toEqual(input);
    expect(h.metric(EP, Reason.PASS_POLICY, Dir.FROM_POD).packets).toBe(1n);
    expect(h.metric(RECEIVER_EP, Reason.PASS_POLICY, Dir.TO_POD).packets).toBe(1n);
    expect(h.dp.views.ct.entries().length).toBe(1);
  });

  it('hands a decapsulated packet whose TTL cannot be written to the host stack as it came (checksum right)', () => {
    const input = tunnelled();
    const { retval, data } = h.run('fromUplink', input);

    expect(retval).toBe(TcAction.OK);
    expect(data.subarray(ETH_HLEN)).toEqual(input.subarray(ETH_HLEN + 20));
    expect(readIpv4(data)).toMatchObject({ ttl: 63, checksumOk: true, src: REMOTE_POD });
    expect(h.metric(0, Reason.PASS_DECAP, Dir.FROM_UPLINK).packets).toBe(1n);
    expect(h.metric(RECEIVER_EP, Reason.PASS_POLICY, Dir.TO_POD).packets).toBe(1n);
  });
});

describe('bpf_skb_adjust_room of a kernel before 6.3 (BPF_F_ADJ_ROOM_DECAP_L3_IPV4 unknown, refused)', () => {
  let h: BpfHarness;
  beforeAll(() => {
    h = failing('ADJUST_ROOM_BEFORE_6_3');
  });
  beforeEach(() => seed(h));

  it('still strips the outer header of IPIP and delivers the inner packet', () => {
    const input = tunnelled();
    const { retval, data } = h.run('fromUplink', input);

    expect(retval).toBe(TcAction.REDIRECT);
    expect(data.length).toBe(input.length - 20);
    expect(readIpv4(data)).toMatchObject({
      src: REMOTE_POD,
      dst: LOCAL_POD,
      ttl: 62,
      checksumOk: true,
    });
    expect(h.metricKeys().sort()).toEqual(
      [
        key(0, Reason.PASS_DECAP, Dir.FROM_UPLINK),
        key(RECEIVER_EP, Reason.PASS_POLICY, Dir.TO_POD),
      ].sort(),
    );
  });

  it("still encapsulates a pod's packet (the encapsulation flag is older)", () => {
    const { retval, data } = h.run('fromPod', fromPod(REMOTE_POD));

    expect(retval).toBe(TcAction.REDIRECT);
    expect(readIpv4(data)).toMatchObject({ src: NODE, dst: OTHER, proto: IPPROTO_IPIP });
  });
});
