/**
 * A host endpoint on the uplink through the real tc programs (BPF_PROG_TEST_RUN, root):
 * the node's own traffic judged by the host endpoint's sets, compiled by the policy
 * compiler from a world (failsafe ports first, then policy, default deny), conntrack
 * shared with the pod path. docs/host-endpoints.md states the semantics;
 * test/unit/compile-host.test.ts holds the compiled sets to the reference evaluator.
 *
 * The test run's device is loopback (ifindex 1): it plays the uplink, and its host
 * endpoint sits in tortie_ifaces under ifindex 1. Frames to the host are addressed to
 * loopback's MAC (zeros) so the kernel marks them PACKET_HOST, as the uplink would.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { applyDelta } from '../../src/dataplane/apply.js';
import { Dir, EventType, ipToU32, Reason, RouteType, TcAction } from '../../src/maps/index.js';
import { PolicyCompiler, type LocalEndpoint } from '../../src/policy/compile/index.js';
import { DEFAULT_FAILSAFE } from '../../src/policy/failsafe.js';
import type { Endpoint, World } from '../../src/policy/model.js';
import { parseResource, worldFrom } from '../../src/policy/resources.js';
import { ethernet, ipv4, TCP, tcp, type L4 } from '../../src/util/packets.js';
import { BpfHarness, LOOPBACK } from './bpf-harness.js';

const NODE = '192.168.50.1';
const PEER = '192.168.50.2';
const HEP_ID = 900;
const HOST_MAC = '00:00:00:00:00:00';
const PEER_MAC = '02:00:00:00:00:02';

const hepEndpoint: Endpoint = {
  key: 'hostendpoint:uplink',
  namespace: '',
  name: 'uplink',
  ip: NODE,
  labels: { role: 'node' },
  profiles: [],
  ports: [],
  kind: 'host',
};
const locals: LocalEndpoint[] = [
  { endpoint: hepEndpoint, ifindex: LOOPBACK, id: HEP_ID, host: { failsafe: DEFAULT_FAILSAFE } },
];

const toHost = (l4: L4, src = PEER): Buffer =>
  ethernet(ipv4({ src, dst: NODE }, l4), { src: PEER_MAC, dst: HOST_MAC });
const fromHost = (l4: L4, dst = PEER): Buffer =>
  ethernet(ipv4({ src: NODE, dst }, l4), { src: HOST_MAC, dst: PEER_MAC });
const syn = (dport: number, sport = 40000): L4 => tcp({ sport, dport, flags: TCP.SYN });
const ack = (sport: number, dport: number): L4 => tcp({ sport, dport, flags: TCP.ACK });

const allowSshFrom = (net: string) =>
  parseResource({
    apiVersion: 'projectcalico.org/v3',
    kind: 'GlobalNetworkPolicy',
    metadata: { name: 'ssh' },
    spec: {
      selector: "role == 'node'",
      ingress: [
        {
          action: 'Allow',
          protocol: 'TCP',
          source: { nets: [net] },
          destination: { ports: [8022] },
        },
      ],
    },
  });

describe('the uplink host endpoint', () => {
  let h: BpfHarness;
  let compiler: PolicyCompiler;
  const program = (world: World): void => {
    const { delta } = compiler.update(world, locals);
    applyDelta(h.dp.maps, delta);
  };
  const ruleOf = (id: number): string | undefined => compiler.current().rules.get(id);

  beforeAll(() => {
    h = new BpfHarness();
  });
  afterAll(() => h?.close());
  beforeEach(() => {
    h.reset();
    h.dp.views.routes.update(
      { prefixlen: 32, addr: ipToU32(NODE) },
      { type: RouteType.HOST, ifindex: 0, next_hop: 0, flags: 0 },
    );
    compiler = new PolicyCompiler();
    program(worldFrom([], []));
  });

  it("with no policy denies the host's traffic both ways, blamed on the host endpoint with the default rule", () => {
    expect(h.run('fromUplink', toHost(syn(8080))).retval).toBe(TcAction.SHOT);
    expect(h.run('toUplink', fromHost(syn(8080))).retval).toBe(TcAction.SHOT);
    expect(h.metric(HEP_ID, Reason.DROP_POLICY, Dir.FROM_UPLINK).packets).toBe(1n);
    expect(h.metric(HEP_ID, Reason.DROP_POLICY, Dir.TO_UPLINK).packets).toBe(1n);
    const events = h.events().filter((e) => e.type === EventType.DROP);
    expect(events.map((e) => ruleOf(e.rule_id))).toEqual([
      'profiles/default/ingress',
      'profiles/default/egress',
    ]);
    expect(events.map((e) => [e.saddr, e.daddr, e.dport])).toEqual([
      [ipToU32(PEER), ipToU32(NODE), 8080],
      [ipToU32(NODE), ipToU32(PEER), 8080],
    ]);
    expect(h.dp.views.ct.entries()).toEqual([]);
  });

  it('lets failsafe ports through (in: tcp 22, 179, 2379; out: tcp 179, 2379, udp 53) and their replies on conntrack', () => {
    for (const port of [22, 179, 2379]) {
      expect(h.run('fromUplink', toHost(syn(port))).retval).toBe(TcAction.OK);
      // The host's answer is a reply of the tracked flow.
      expect(
        h.run('toUplink', fromHost(tcp({ sport: port, dport: 40000, flags: TCP.SYN | TCP.ACK })))
          .retval,
      ).toBe(TcAction.OK);
    }
    expect(h.metric(HEP_ID, Reason.PASS_POLICY, Dir.FROM_UPLINK).packets).toBe(3n);
    expect(h.metric(HEP_ID, Reason.PASS_CT_REPLY, Dir.TO_UPLINK).packets).toBe(3n);
    for (const port of [179, 2379]) {
      expect(h.run('toUplink', fromHost(syn(port, 41000))).retval).toBe(TcAction.OK);
      expect(
        h.run('fromUplink', toHost(tcp({ sport: port, dport: 41000, flags: TCP.SYN | TCP.ACK })))
          .retval,
      ).toBe(TcAction.OK);
    }
    const flows = h.dp.views.ct.entries();
    expect(flows.length).toBe(5);
    expect(flows.map(([, e]) => ruleOf(e.rule_id)).sort()).toEqual([
      'failsafe/in/0',
      'failsafe/in/2',
      'failsafe/in/3',
      'failsafe/out/2',
      'failsafe/out/3',
    ]);
    // Not failsafe the other way: the host sending to port 22 is denied.
    expect(h.run('toUplink', fromHost(syn(22, 42000))).retval).toBe(TcAction.SHOT);
  });

  it("picks up a connection that existed before the host endpoint, from either end's segment", () => {
    // The node's own BGP session to the peer's 179: the peer's segment comes first.
    expect(h.run('fromUplink', toHost(ack(179, 45000))).retval).toBe(TcAction.OK);
    const flows = h.dp.views.ct.entries();
    expect(flows.length).toBe(1);
    const [key, entry] = flows[0]!;
    expect(key).toMatchObject({ saddr: ipToU32(NODE), dport: 179 }); // tracked as the node's flow
    expect(entry.src_ifindex).toBe(LOOPBACK);
    expect(ruleOf(entry.rule_id)).toBe('failsafe/out/2');
    expect(h.run('toUplink', fromHost(ack(45000, 179))).retval).toBe(TcAction.OK);
    expect(h.metric(HEP_ID, Reason.PASS_CT_ESTABLISHED, Dir.TO_UPLINK).packets).toBe(1n);
    // A segment of a connection neither way allows is dropped.
    expect(h.run('fromUplink', toHost(ack(5555, 45001))).retval).toBe(TcAction.SHOT);
    expect(h.run('toUplink', fromHost(ack(45002, 5555))).retval).toBe(TcAction.SHOT);
  });

  it('applies policy that selects the host endpoint: tcp/8022 from one CIDR only', () => {
    program(worldFrom([allowSshFrom('192.168.50.0/30')], []));
    expect(h.run('fromUplink', toHost(syn(8022))).retval).toBe(TcAction.OK);
    expect(h.run('fromUplink', toHost(syn(8022), '192.168.50.9')).retval).toBe(TcAction.SHOT);
    const drop = h.events().find((e) => e.type === EventType.DROP);
    expect(ruleOf(drop!.rule_id)).toBe('tier/default/default/ingress');
  });

  it('revokes a tracked host flow when the policy that allowed it goes', () => {
    program(worldFrom([allowSshFrom('192.168.50.0/30')], []));
    expect(h.run('fromUplink', toHost(syn(8022))).retval).toBe(TcAction.OK);
    expect(h.run('fromUplink', toHost(ack(40000, 8022))).retval).toBe(TcAction.OK);
    program(worldFrom([], []));
    expect(h.run('fromUplink', toHost(ack(40000, 8022))).retval).toBe(TcAction.SHOT);
    expect(h.metric(HEP_ID, Reason.DROP_POLICY_REVOKED, Dir.FROM_UPLINK).packets).toBe(1n);
  });

  it('leaves forwarded packets alone (no applyOnForward in BPF yet) but tracks masqueraded ones for their replies', () => {
    const forwarded = ethernet(ipv4({ src: '10.65.0.5', dst: PEER }, syn(8080)), { dst: PEER_MAC });
    expect(runForwarded(h, forwarded, 7)).toBe(TcAction.OK);
    expect(h.dp.views.ct.entries()).toEqual([]);
    // A pod's flow masqueraded to the node's address: tracked with no side...
    expect(runForwarded(h, fromHost(syn(8080, 47000)), 7)).toBe(TcAction.OK);
    const flows = h.dp.views.ct.entries();
    expect(flows.map(([, e]) => [e.src_ifindex, e.dst_ifindex])).toEqual([[0, 0]]);
    // ... so its reply, addressed to the node, passes as a reply.
    expect(
      h.run('fromUplink', toHost(tcp({ sport: 8080, dport: 47000, flags: TCP.SYN | TCP.ACK })))
        .retval,
    ).toBe(TcAction.OK);
    expect(h.metric(HEP_ID, Reason.PASS_CT_REPLY, Dir.FROM_UPLINK).packets).toBe(1n);
  });

  it("without a host endpoint the node's traffic passes untouched, as before", () => {
    h.dp.maps.ifaces.delete(Buffer.from(Uint32Array.of(LOOPBACK).buffer));
    expect(h.run('fromUplink', toHost(syn(8080))).retval).toBe(TcAction.OK);
    expect(h.run('toUplink', fromHost(syn(8080))).retval).toBe(TcAction.OK);
    expect(h.dp.views.ct.entries()).toEqual([]);
  });
});

/** toUplink with skb->ingress_ifindex set: a packet the node forwards rather than sends. */
function runForwarded(h: BpfHarness, data: Buffer, ingressIfindex: number): number {
  return h.runWith('toUplink', data, { ingressIfindex });
}
