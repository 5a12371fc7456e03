/**
 * The node's doors through the real tc programs (BPF_PROG_TEST_RUN, root): a pod's
 * packets to 127.0.0.0/8 and to the node's own addresses (TORTIE_ROUTE_HOST routes), under
 * each defaultEndpointToHostAction (tortie_cfg_endpoint_to_host_action, set at load).
 *
 * The pod under test is 10.0.0.1 on ifindex 1 (loopback, what test runs use). Its egress
 * set 10 and ingress set 20 send every peer to class 1: TCP 23 denied (rule 102),
 * everything else allowed (rule 101). The node's address is 192.168.50.1.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { NodeDataplane } from '../../src/dataplane/node-dataplane.js';
import type { EndpointToHostAction } from '../../src/loader/index.js';
import {
  CtState,
  Dir,
  EventType,
  ipToU32,
  Reason,
  RouteType,
  TcAction,
} from '../../src/maps/index.js';
import { frame, icmpEcho, PROTO, TCP, tcp, udp } from '../../src/util/packets.js';
import { BpfHarness, LOOPBACK } from './bpf-harness.js';
import { newRunId } from '../helpers/netns.js';

const POD = '10.0.0.1';
const NODE = '192.168.50.1';
const ELSEWHERE = '192.168.60.7';
const EP = 7;

function seed(h: BpfHarness): void {
  h.reset();
  h.endpoint(LOOPBACK, { ip: POD, id: EP, egressSet: 10, ingressSet: 20 });
  h.policySet(10, [{ cidr: '0.0.0.0/0', classId: 1 }]);
  h.policySet(20, [{ cidr: '0.0.0.0/0', classId: 1 }]);
  h.policyClass(1, [
    { proto: PROTO.TCP, port: 23, action: 'deny', ruleId: 102 },
    { action: 'allow', ruleId: 101 },
  ]);
  h.dp.views.routes.update(
    { prefixlen: 32, addr: ipToU32(NODE) },
    { type: RouteType.HOST, ifindex: 0, next_hop: 0, flags: 0 },
  );
}

const fromPod = (dst: string, dport: number, flags: number = TCP.SYN, sport = 40000): Buffer =>
  frame({ src: POD, dst }, tcp({ sport, dport, flags }));
const toPod = (src: string, sport: number, dport: number, flags: number): Buffer =>
  frame({ src, dst: POD }, tcp({ sport, dport, flags }));

function harnessFor(action: EndpointToHostAction | undefined): () => BpfHarness {
  let h: BpfHarness | undefined;
  beforeAll(() => {
    h = new BpfHarness(action === undefined ? {} : { endpointToHostAction: action });
  });
  afterAll(() => h?.close());
  beforeEach(() => seed(h!));
  return () => h!;
}

describe('a pod to 127.0.0.0/8', () => {
  for (const action of [undefined, 'Accept', 'Return'] as const) {
    describe(`endpoint-to-host action ${action ?? 'default (Drop)'}`, () => {
      const h = harnessFor(action);

      it('is dropped as DROP_TO_LOOPBACK, although its egress policy allows everything', () => {
        expect(h().run('fromPod', fromPod('127.0.0.1', 9099)).retval).toBe(TcAction.SHOT);
        expect(
          h().run('fromPod', frame({ src: POD, dst: '127.1.2.3' }, udp({ sport: 5353, dport: 53 })))
            .retval,
        ).toBe(TcAction.SHOT);
        expect(h().metric(EP, Reason.DROP_TO_LOOPBACK, Dir.FROM_POD).packets).toBe(2n);
        expect(h().metricKeys()).toEqual([`${EP}:${Reason.DROP_TO_LOOPBACK}:${Dir.FROM_POD}`]);
        expect(h().dp.views.ct.entries()).toEqual([]);
        const events = h().events();
        expect(events).toHaveLength(2);
        expect(events[0]).toMatchObject({
          type: EventType.DROP,
          reason: Reason.DROP_TO_LOOPBACK,
          ep_id: EP,
          dir: Dir.FROM_POD,
          daddr: ipToU32('127.0.0.1'),
          dport: 9099,
        });
      });

      it('is dropped before the endpoint is even looked at, and a spoofed one too', () => {
        const spoofed = frame(
          { src: '10.9.9.9', dst: '127.0.0.1' },
          tcp({ sport: 1, dport: 9099, flags: TCP.SYN }),
        );
        expect(h().run('fromPod', spoofed).retval).toBe(TcAction.SHOT);
        expect(h().metric(EP, Reason.DROP_TO_LOOPBACK, Dir.FROM_POD).packets).toBe(1n);
        h().dp.views.ifaces.delete(LOOPBACK);
        expect(h().run('fromPod', fromPod('127.0.0.1', 9099)).retval).toBe(TcAction.SHOT);
        expect(h().metric(0, Reason.DROP_TO_LOOPBACK, Dir.FROM_POD).packets).toBe(1n);
      });
    });
  }
});

describe('a pod to an address of its node, defaultEndpointToHostAction Drop (the default)', () => {
  const h = harnessFor(undefined);

  it('drops a new flow as DROP_ENDPOINT_TO_HOST after its egress policy allowed it, and tracks nothing', () => {
    expect(h().run('fromPod', fromPod(NODE, 22)).retval).toBe(TcAction.SHOT);
    expect(h().metric(EP, Reason.DROP_ENDPOINT_TO_HOST, Dir.FROM_POD).packets).toBe(1n);
    expect(h().metric(EP, Reason.PASS_POLICY, Dir.FROM_POD).packets).toBe(0n);
    expect(h().dp.views.ct.entries()).toEqual([]);
    expect(h().events()).toEqual([
      expect.objectContaining({
        type: EventType.DROP,
        reason: Reason.DROP_ENDPOINT_TO_HOST,
        ep_id: EP,
        dir: Dir.FROM_POD,
        saddr: ipToU32(POD),
        daddr: ipToU32(NODE),
        dport: 22,
      }),
    ]);
    // No entry was written: the SYN sent again meets the same door, and a segment without
    // SYN opens nothing either (dropped earlier, before policy: only a SYN opens a flow).
    expect(h().run('fromPod', fromPod(NODE, 22)).retval).toBe(TcAction.SHOT);
    expect(h().metric(EP, Reason.DROP_ENDPOINT_TO_HOST, Dir.FROM_POD).packets).toBe(2n);
    expect(h().run('fromPod', fromPod(NODE, 22, TCP.ACK)).retval).toBe(TcAction.SHOT);
    expect(h().metric(EP, Reason.DROP_CT_TCP_NOT_SYN, Dir.FROM_POD).packets).toBe(1n);
    expect(h().dp.views.ct.entries()).toEqual([]);
  });

  it('lets the egress policy speak first: a denied packet is a policy drop', () => {
    expect(h().run('fromPod', fromPod(NODE, 23)).retval).toBe(TcAction.SHOT);
    expect(h().metric(EP, Reason.DROP_POLICY, Dir.FROM_POD).packets).toBe(1n);
    expect(h().metric(EP, Reason.DROP_ENDPOINT_TO_HOST, Dir.FROM_POD).packets).toBe(0n);
  });

  it('leaves destinations that are not the node alone', () => {
    expect(h().run('fromPod', fromPod(ELSEWHERE, 22)).retval).toBe(TcAction.OK);
    expect(h().metric(EP, Reason.PASS_POLICY, Dir.FROM_POD).packets).toBe(1n);
  });

  it("passes the replies of the node's own connection to the pod (a health check)", () => {
    // node → pod SYN, judged by the pod's ingress on its veth
    expect(h().run('toPod', toPod(NODE, 50000, 8080, TCP.SYN)).retval).toBe(TcAction.OK);
    // the pod's SYN-ACK and later packets go to the node's address: replies of that flow
    expect(h().run('fromPod', fromPod(NODE, 50000, TCP.SYN | TCP.ACK, 8080)).retval).toBe(
      TcAction.OK,
    );
    expect(h().run('toPod', toPod(NODE, 50000, 8080, TCP.ACK)).retval).toBe(TcAction.OK);
    expect(h().run('fromPod', fromPod(NODE, 50000, TCP.ACK | TCP.PSH, 8080)).retval).toBe(
      TcAction.OK,
    );
    expect(h().metric(EP, Reason.PASS_CT_REPLY, Dir.FROM_POD).packets).toBe(2n);
    expect(h().metric(EP, Reason.DROP_ENDPOINT_TO_HOST, Dir.FROM_POD).packets).toBe(0n);
    // ... and the answer to the node's ping
    expect(h().run('toPod', frame({ src: NODE, dst: POD }, icmpEcho({ id: 77 }))).retval).toBe(
      TcAction.OK,
    );
    expect(
      h().run('fromPod', frame({ src: POD, dst: NODE }, icmpEcho({ id: 77, reply: true }))).retval,
    ).toBe(TcAction.OK);
    expect(h().metric(EP, Reason.PASS_CT_REPLY, Dir.FROM_POD).packets).toBe(3n);
  });
});

describe('a pod to an address of its node, Accept and Return', () => {
  for (const action of ['Accept', 'Return'] as const) {
    describe(action, () => {
      const h = harnessFor(action);

      it('hands the new flow to the host stack once its egress policy allowed it', () => {
        expect(h().run('fromPod', fromPod(NODE, 22)).retval).toBe(TcAction.OK);
        expect(h().metric(EP, Reason.PASS_POLICY, Dir.FROM_POD).packets).toBe(1n);
        expect(h().dp.views.ct.entries()).toEqual([
          [
            expect.objectContaining({ saddr: ipToU32(POD), daddr: ipToU32(NODE), dport: 22 }),
            expect.objectContaining({ src_ifindex: LOOPBACK, state: CtState.SYN_SENT }),
          ],
        ]);
        expect(h().run('fromPod', fromPod(NODE, 23)).retval).toBe(TcAction.SHOT);
        expect(h().metric(EP, Reason.DROP_POLICY, Dir.FROM_POD).packets).toBe(1n);
      });
    });
  }
});

describe('host routes from the control plane (NodeDataplane.setHostAddresses)', () => {
  let dp: NodeDataplane | undefined;
  const pinRoot = `/sys/fs/bpf/tortie-t${newRunId()}`;
  beforeAll(() => {
    dp = NodeDataplane.open({ pinRoot });
  });
  afterAll(() => dp?.destroy());

  it('writes a /32 HOST route per node address (loopback left out) and follows the list', () => {
    dp!.setLocalRoute('10.0.0.9', 1000);
    expect(dp!.setHostAddresses(['192.168.50.1', '127.0.0.1', '10.254.0.1'])).toEqual({
      added: 2,
      removed: 0,
    });
    expect(dp!.hostAddresses()).toEqual(['10.254.0.1', '192.168.50.1']);
    expect(dp!.setHostAddresses(['192.168.50.1', '10.254.0.1'])).toEqual({ added: 0, removed: 0 });
    expect(dp!.setHostAddresses(['192.168.50.2'])).toEqual({ added: 1, removed: 2 });
    expect(dp!.hostAddresses()).toEqual(['192.168.50.2']);
    // other routes are not the host's to remove
    expect(dp!.dp.views.routes.lookup({ prefixlen: 32, addr: ipToU32('10.0.0.9') })?.type).toBe(
      RouteType.LOCAL_EP,
    );
  });
});
