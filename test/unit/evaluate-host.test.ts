/**
 * Host endpoints in the reference evaluator. Each case names the Calico behaviour it
 * checks (docs.tigera.io, reference/host-endpoints/*, reference/resources/hostendpoint,
 * reference/felix/configuration), paraphrased in docs/host-endpoints.md.
 */
import { describe, expect, it } from 'vitest';
import {
  hostEndpointFor,
  judgeHostPacket,
  type HostContext,
  type HostInterface,
} from '../../src/policy/evaluate-host.js';
import {
  DEFAULT_FAILSAFE,
  FailsafeError,
  NO_FAILSAFE,
  parseFailsafePorts,
} from '../../src/policy/failsafe.js';
import { parseResource, worldFrom, type Resource } from '../../src/policy/resources.js';
import type { Failsafe, HostEndpoint, Packet } from '../../src/policy/model.js';

const NODE = 'node-a';
const eth0: HostInterface = { name: 'eth0', addresses: ['10.0.0.1'] };
const eth1: HostInterface = { name: 'eth1', addresses: ['192.168.9.1'] };

function hep(name: string, fields: Partial<HostEndpoint> = {}): HostEndpoint {
  return {
    name,
    node: NODE,
    expectedIPs: [],
    labels: { role: 'node' },
    profiles: [],
    ports: [],
    ...fields,
  };
}

function gnp(name: string, spec: Record<string, unknown>): Resource {
  return parseResource({
    apiVersion: 'projectcalico.org/v3',
    kind: 'GlobalNetworkPolicy',
    metadata: { name },
    spec,
  });
}

const allowAllProfile = parseResource({
  apiVersion: 'projectcalico.org/v3',
  kind: 'Profile',
  metadata: { name: 'projectcalico-default-allow' },
  spec: { ingress: [{ action: 'Allow' }], egress: [{ action: 'Allow' }] },
});

function tcp(saddr: string, daddr: string, dport: number, sport = 40000): Packet {
  return { saddr, daddr, protocol: 6, dport, sport };
}
function udp(saddr: string, daddr: string, dport: number, sport = 40000): Packet {
  return { saddr, daddr, protocol: 17, dport, sport };
}

const REMOTE = '10.0.0.9';
const HOST = '10.0.0.1';
const POD = '10.65.0.5';

function ctx(heps: HostEndpoint[], failsafe: Failsafe = DEFAULT_FAILSAFE): HostContext {
  return { node: NODE, hostEndpoints: heps, failsafe };
}

describe('which host endpoint judges an interface', () => {
  it('"a host endpoint with interfaceName: * represents all of a host\'s interfaces"; a named one only its own', () => {
    const star = hep('all', { interfaceName: '*' });
    const named = hep('eth0', { interfaceName: 'eth0' });
    expect(hostEndpointFor([star, named], NODE, eth0)?.name).toBe('eth0');
    expect(hostEndpointFor([star, named], NODE, eth1)?.name).toBe('all');
    expect(hostEndpointFor([named], NODE, eth1)).toBeUndefined();
  });

  it('"or by leaving interfaceName empty and including one of the interface\'s IPs in expectedIPs"', () => {
    const byIp = hep('by-ip', { expectedIPs: ['192.168.9.1'] });
    expect(hostEndpointFor([byIp], NODE, eth1)?.name).toBe('by-ip');
    expect(hostEndpointFor([byIp], NODE, eth0)).toBeUndefined();
  });

  it('a host endpoint of another node (spec.node) judges nothing here', () => {
    const other = hep('other', { interfaceName: '*', node: 'node-b' });
    expect(hostEndpointFor([other], NODE, eth0)).toBeUndefined();
    const j = judgeHostPacket(
      worldFrom([], []),
      ctx([other]),
      eth0,
      'to-host',
      tcp(REMOTE, HOST, 8080),
    );
    expect(j).toMatchObject({ allowed: true, stage: 'none' });
  });
});

describe('host traffic (to and from host processes)', () => {
  const world = worldFrom([], []);

  it('"if a host endpoint is created and network policy is not in place, the default is to deny traffic to/from that endpoint (except for traffic allowed by failsafe rules)"', () => {
    const c = ctx([hep('all', { interfaceName: '*' })]);
    expect(judgeHostPacket(world, c, eth0, 'to-host', tcp(REMOTE, HOST, 8080))).toMatchObject({
      allowed: false,
      endpoint: 'all',
      stage: 'policy',
      verdict: { rule: 'profiles/default/ingress' },
    });
    expect(judgeHostPacket(world, c, eth0, 'from-host', tcp(HOST, REMOTE, 8080))).toMatchObject({
      allowed: false,
      verdict: { rule: 'profiles/default/egress' },
    });
  });

  it('"for named host endpoints, traffic to/from other interfaces is ignored"', () => {
    const c = ctx([hep('eth0', { interfaceName: 'eth0' })]);
    expect(
      judgeHostPacket(world, c, eth1, 'to-host', tcp('192.168.9.7', '192.168.9.1', 8080)),
    ).toMatchObject({ allowed: true, stage: 'none' });
  });

  it('failsafe (Calico defaults): inbound tcp 22, udp 68, tcp 179, 2379, 2380, 5473, 6443, 6666, 6667', () => {
    const c = ctx([hep('all', { interfaceName: '*' })]);
    for (const port of [22, 179, 2379, 2380, 5473, 6443, 6666, 6667])
      expect(judgeHostPacket(world, c, eth0, 'to-host', tcp(REMOTE, HOST, port))).toMatchObject({
        allowed: true,
        stage: 'failsafe',
      });
    expect(judgeHostPacket(world, c, eth0, 'to-host', udp(REMOTE, HOST, 68)).allowed).toBe(true);
    // Not inbound: udp 53 is an outbound failsafe only; udp 22 is not tcp 22.
    expect(judgeHostPacket(world, c, eth0, 'to-host', udp(REMOTE, HOST, 53)).allowed).toBe(false);
    expect(judgeHostPacket(world, c, eth0, 'to-host', udp(REMOTE, HOST, 22)).allowed).toBe(false);
  });

  it('failsafe (Calico defaults): outbound udp 53, udp 67, tcp 179, 2379, 2380, 5473, 6443, 6666, 6667', () => {
    const c = ctx([hep('all', { interfaceName: '*' })]);
    for (const p of [udp(HOST, REMOTE, 53), udp(HOST, REMOTE, 67), tcp(HOST, REMOTE, 2379)])
      expect(judgeHostPacket(world, c, eth0, 'from-host', p)).toMatchObject({
        allowed: true,
        stage: 'failsafe',
        verdict: { rule: expect.stringMatching(/^failsafe\/out\/\d+$/) },
      });
    expect(judgeHostPacket(world, c, eth0, 'from-host', tcp(HOST, REMOTE, 22)).allowed).toBe(false);
  });

  it('"a host endpoint can never cut a node off": a deny-all policy does not override failsafe', () => {
    const w = worldFrom(
      [
        gnp('deny-all', {
          selector: 'all()',
          types: ['Ingress', 'Egress'],
          ingress: [{ action: 'Deny' }],
          egress: [{ action: 'Deny' }],
        }),
      ],
      [],
    );
    const c = ctx([hep('all', { interfaceName: '*' })]);
    expect(judgeHostPacket(w, c, eth0, 'to-host', tcp(REMOTE, HOST, 179)).allowed).toBe(true);
    expect(judgeHostPacket(w, c, eth0, 'from-host', tcp(HOST, REMOTE, 2379)).allowed).toBe(true);
    expect(judgeHostPacket(w, c, eth0, 'to-host', tcp(REMOTE, HOST, 8080)).verdict?.rule).toBe(
      'policy/default/deny-all/ingress/0',
    );
  });

  it('FelixConfiguration failsafe lists replace the defaults; none (or []) disables them; net limits the peer', () => {
    const inbound = parseFailsafePorts(
      [{ protocol: 'TCP', port: 22, net: '10.0.0.0/29' }],
      'inbound',
    );
    const c = ctx([hep('all', { interfaceName: '*' })], { inbound, outbound: [] });
    expect(judgeHostPacket(world, c, eth0, 'to-host', tcp('10.0.0.5', HOST, 22)).allowed).toBe(
      true,
    );
    expect(judgeHostPacket(world, c, eth0, 'to-host', tcp('10.0.0.9', HOST, 22)).allowed).toBe(
      false,
    );
    expect(judgeHostPacket(world, c, eth0, 'to-host', tcp('10.0.0.5', HOST, 179)).allowed).toBe(
      false,
    );
    const none = ctx([hep('all', { interfaceName: '*' })], NO_FAILSAFE);
    expect(judgeHostPacket(world, none, eth0, 'to-host', tcp(REMOTE, HOST, 22)).allowed).toBe(
      false,
    );
  });

  it("policy selecting the host endpoint's labels allows (tcp/22 from one CIDR only, as the issue's acceptance)", () => {
    const w = worldFrom(
      [
        gnp('ssh', {
          selector: "role == 'node'",
          ingress: [
            {
              action: 'Allow',
              protocol: 'TCP',
              source: { nets: ['10.0.0.8/29'] },
              destination: { ports: [8022] },
            },
          ],
        }),
      ],
      [],
    );
    const c = ctx([hep('all', { interfaceName: '*' })]);
    expect(judgeHostPacket(w, c, eth0, 'to-host', tcp('10.0.0.9', HOST, 8022))).toMatchObject({
      allowed: true,
      stage: 'policy',
      verdict: { rule: 'policy/default/ssh/ingress/0' },
    });
    expect(judgeHostPacket(w, c, eth0, 'to-host', tcp('10.0.0.2', HOST, 8022))).toMatchObject({
      allowed: false,
      verdict: { rule: 'tier/default/default/ingress' },
    });
    // A policy whose selector misses the host endpoint leaves it default-deny.
    const other = ctx([hep('all', { interfaceName: '*', labels: { role: 'db' } })]);
    expect(judgeHostPacket(w, other, eth0, 'to-host', tcp('10.0.0.9', HOST, 8022)).allowed).toBe(
      false,
    );
  });

  it('"host endpoints with the projectcalico-default-allow profile have allow-all semantics in the absence of policy"', () => {
    const w = worldFrom([allowAllProfile], []);
    const c = ctx([hep('all', { interfaceName: '*', profiles: ['projectcalico-default-allow'] })]);
    expect(judgeHostPacket(w, c, eth0, 'to-host', tcp(REMOTE, HOST, 8080))).toMatchObject({
      allowed: true,
      verdict: { rule: 'profile/projectcalico-default-allow/ingress/0' },
    });
  });

  it('namespaced policies and namespace selectors never select a host endpoint (it has no namespace)', () => {
    const w = worldFrom(
      [
        parseResource({
          apiVersion: 'projectcalico.org/v3',
          kind: 'NetworkPolicy',
          metadata: { name: 'np', namespace: 'default' },
          spec: { selector: 'all()', ingress: [{ action: 'Allow' }] },
        }),
        gnp('by-ns', {
          selector: 'all()',
          namespaceSelector: 'all()',
          ingress: [{ action: 'Allow' }],
        }),
      ],
      [],
    );
    const c = ctx([hep('all', { interfaceName: '*' })]);
    expect(judgeHostPacket(w, c, eth0, 'to-host', tcp(REMOTE, HOST, 8080)).verdict?.rule).toBe(
      'profiles/default/ingress',
    );
  });

  it('the local side of a rule tests the host address the packet uses (destination nets)', () => {
    const w = worldFrom(
      [
        gnp('to-eth0', {
          selector: 'all()',
          ingress: [{ action: 'Allow', destination: { nets: ['10.0.0.1/32'] } }],
        }),
      ],
      [],
    );
    const c = ctx([hep('all', { interfaceName: '*' })]);
    expect(judgeHostPacket(w, c, eth0, 'to-host', tcp(REMOTE, HOST, 8080)).allowed).toBe(true);
    expect(judgeHostPacket(w, c, eth0, 'to-host', tcp(REMOTE, '10.0.0.2', 8080)).allowed).toBe(
      false,
    );
  });
});

describe('applyOnForward', () => {
  const allowWeb = (aof: boolean) =>
    gnp('web', {
      selector: "role == 'node'",
      applyOnForward: aof,
      ingress: [{ action: 'Allow', protocol: 'TCP', destination: { ports: [80] } }],
    });

  it('"forwarded traffic is allowed by default if no policies apply to the endpoint and direction" (a host endpoint alone does not judge it)', () => {
    const c = ctx([hep('all', { interfaceName: '*' })]);
    expect(
      judgeHostPacket(worldFrom([], []), c, eth0, 'forward-in', tcp(REMOTE, POD, 8080)),
    ).toMatchObject({
      allowed: true,
      stage: 'forward',
      verdict: { rule: 'forward/default/ingress' },
    });
    expect(
      judgeHostPacket(worldFrom([], []), c, eth0, 'forward-out', tcp(POD, REMOTE, 8080)).allowed,
    ).toBe(true);
  });

  it('"if applyOnForward is false, the host endpoint policy applies to traffic to/from local processes only"', () => {
    const c = ctx([hep('all', { interfaceName: '*' })]);
    const w = worldFrom([allowWeb(false)], []);
    expect(judgeHostPacket(w, c, eth0, 'forward-in', tcp(REMOTE, POD, 8080)).allowed).toBe(true);
    expect(judgeHostPacket(w, c, eth0, 'to-host', tcp(REMOTE, HOST, 8080)).allowed).toBe(false);
  });

  it('"if there are applyOnForward: true policies that select the host endpoint and direction, but no rules allow the traffic, the traffic is denied"', () => {
    const c = ctx([hep('all', { interfaceName: '*' })]);
    const w = worldFrom([allowWeb(true)], []);
    expect(judgeHostPacket(w, c, eth0, 'forward-in', tcp(REMOTE, POD, 80)).allowed).toBe(true);
    expect(judgeHostPacket(w, c, eth0, 'forward-in', tcp(REMOTE, POD, 8080))).toMatchObject({
      allowed: false,
      stage: 'forward',
      verdict: { rule: 'tier/default/default/ingress' },
    });
    // The other direction has no applyOnForward policy: allowed.
    expect(judgeHostPacket(w, c, eth0, 'forward-out', tcp(POD, REMOTE, 8080)).allowed).toBe(true);
    // applyOnForward policies judge host-process traffic too.
    expect(judgeHostPacket(w, c, eth0, 'to-host', tcp(REMOTE, HOST, 80)).allowed).toBe(true);
  });

  it("failsafe ports are for the host's own traffic: forwarded traffic to port 22 is judged by applyOnForward policy", () => {
    const c = ctx([hep('all', { interfaceName: '*' })]);
    const w = worldFrom([allowWeb(true)], []);
    expect(judgeHostPacket(w, c, eth0, 'forward-in', tcp(REMOTE, POD, 22)).allowed).toBe(false);
  });
});

describe('preDNAT and doNotTrack', () => {
  const c = ctx([hep('all', { interfaceName: '*', profiles: ['projectcalico-default-allow'] })]);

  it('"pre-DNAT policy ... applies to traffic arriving through the host endpoint, before DNAT": a preDNAT deny drops forwarded and host traffic; unmatched goes on', () => {
    const w = worldFrom(
      [
        allowAllProfile,
        gnp('block', {
          selector: 'all()',
          preDNAT: true,
          applyOnForward: true,
          ingress: [{ action: 'Deny', source: { nets: ['10.0.0.9/32'] } }],
        }),
      ],
      [],
    );
    expect(judgeHostPacket(w, c, eth0, 'forward-in', tcp(REMOTE, POD, 30080))).toMatchObject({
      allowed: false,
      stage: 'preDNAT',
      verdict: { rule: 'policy/default/block/ingress/0' },
    });
    expect(judgeHostPacket(w, c, eth0, 'to-host', tcp(REMOTE, HOST, 8080)).stage).toBe('preDNAT');
    // Another source matches no preDNAT rule: the later stages decide (the profile allows).
    expect(judgeHostPacket(w, c, eth0, 'to-host', tcp('10.0.0.7', HOST, 8080))).toMatchObject({
      allowed: true,
      stage: 'policy',
    });
    // Pre-DNAT policies are ingress only: egress is never judged by them.
    expect(judgeHostPacket(w, c, eth0, 'from-host', tcp(HOST, REMOTE, 8080)).stage).toBe('policy');
  });

  it('"untracked policy ... applies before connection tracking": an allow is untracked (both directions need rules), a deny drops', () => {
    const w = worldFrom(
      [
        allowAllProfile,
        gnp('dnt', {
          selector: 'all()',
          doNotTrack: true,
          applyOnForward: true,
          types: ['Ingress', 'Egress'],
          ingress: [
            { action: 'Allow', protocol: 'UDP', destination: { ports: [5000] } },
            { action: 'Deny', source: { nets: ['10.0.0.9/32'] } },
          ],
          egress: [{ action: 'Allow', protocol: 'UDP', source: { ports: [5000] } }],
        }),
      ],
      [],
    );
    expect(judgeHostPacket(w, c, eth0, 'to-host', udp('10.0.0.7', HOST, 5000))).toMatchObject({
      allowed: true,
      stage: 'doNotTrack',
      tracked: false,
    });
    expect(
      judgeHostPacket(w, c, eth0, 'from-host', udp(HOST, '10.0.0.7', 40000, 5000)),
    ).toMatchObject({
      allowed: true,
      stage: 'doNotTrack',
      tracked: false,
    });
    expect(judgeHostPacket(w, c, eth0, 'forward-in', tcp(REMOTE, POD, 80))).toMatchObject({
      allowed: false,
      stage: 'doNotTrack',
    });
    // Unmatched: tracked as usual.
    expect(judgeHostPacket(w, c, eth0, 'to-host', tcp('10.0.0.7', HOST, 80))).toMatchObject({
      allowed: true,
      stage: 'policy',
      tracked: true,
    });
  });

  it("failsafe comes before untracked and pre-DNAT policy too (Felix's raw and mangle failsafe chains)", () => {
    const w = worldFrom(
      [
        gnp('dnt', {
          selector: 'all()',
          doNotTrack: true,
          applyOnForward: true,
          ingress: [{ action: 'Deny' }],
        }),
      ],
      [],
    );
    expect(judgeHostPacket(w, c, eth0, 'to-host', tcp(REMOTE, HOST, 22))).toMatchObject({
      allowed: true,
      stage: 'failsafe',
    });
  });

  it('doNotTrack and preDNAT policies never judge pods (they stay out of World.policies)', () => {
    const w = worldFrom(
      [
        gnp('dnt', {
          selector: 'all()',
          doNotTrack: true,
          applyOnForward: true,
          ingress: [{ action: 'Deny' }],
        }),
      ],
      [],
    );
    expect(w.policies).toEqual([]);
    expect(w.hostPolicies?.map((p) => [p.name, p.stage])).toEqual([['dnt', 'doNotTrack']]);
  });
});

describe('failsafe lists', () => {
  it('Felix\'s string form: [protocol:][net:]port, default protocol tcp, "none"', () => {
    expect(parseFailsafePorts('tcp:22, udp:68, 179, udp:10.0.0.0/8:53', 'inbound')).toEqual([
      { protocol: 6, port: 22 },
      { protocol: 17, port: 68 },
      { protocol: 6, port: 179 },
      { protocol: 17, port: 53, net: '10.0.0.0/8' },
    ]);
    expect(parseFailsafePorts('none', 'inbound')).toEqual([]);
    expect(parseFailsafePorts([], 'outbound')).toEqual([]);
    expect(parseFailsafePorts(undefined, 'outbound')).toBe(DEFAULT_FAILSAFE.outbound);
  });

  it('bad entries are refused naming the field and the entry', () => {
    expect(() => parseFailsafePorts([{ protocol: 'SCTP', port: 1 }], 'inbound')).toThrow(
      /failsafeInboundHostPorts\[0\]: protocol "SCTP" is not TCP or UDP/,
    );
    expect(() => parseFailsafePorts('tcp:99999', 'outbound')).toThrow(FailsafeError);
    expect(() => parseFailsafePorts([{ port: 22, net: '10.0.0.0/33' }], 'inbound')).toThrow(
      /net "10.0.0.0\/33" is not an IPv4 CIDR/,
    );
  });
});
