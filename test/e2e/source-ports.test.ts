/**
 * Source ports with real packets: three pods behind veths on one node, Calico policies
 * with source.ports / source.notPorts (numbers, a range, a named port of the sending
 * pod), enforced by either dataplane: the real BPF object on every host veth (the
 * policy compiled into its maps), or the iptables chains and ipsets in the node
 * namespace (multiport --sports, the named-port set matched src,src). A client binds a
 * chosen source port and talks to a pod's echo server: the exchange must succeed
 * exactly when the reference evaluator allows the packet at both ends.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NodeDataplane } from '../../src/dataplane/node-dataplane.js';
import { IptablesDataplane } from '../../src/iptables/dataplane.js';
import { NodeLab, type LabPod, type LabPodSpec } from '../../src/lab/node-lab.js';
import type { LocalEndpoint } from '../../src/policy/compile/index.js';
import { evaluate } from '../../src/policy/evaluate.js';
import type { Namespace, Packet, World } from '../../src/policy/model.js';
import { parseResource, worldFrom, type Resource } from '../../src/policy/resources.js';
import { execIn, newRunId } from '../helpers/netns.js';

const runId = newRunId()
  .replace(/[^a-z0-9]/g, '')
  .slice(-6);
const pinRoot = `/sys/fs/bpf/tortie-t${runId}`;
const NAMESPACES: Namespace[] = [{ name: 'sp', labels: { 'kubernetes.io/metadata.name': 'sp' } }];
const ipOf = (i: number) => `10.78.${Number.parseInt(runId.slice(0, 2), 16)}.${10 + i}`;

const PODS: LabPodSpec[] = [
  {
    namespace: 'sp',
    name: 'client',
    labels: { app: 'client' },
    ports: [],
  },
  {
    namespace: 'sp',
    name: 'server',
    labels: { app: 'server' },
    ports: [
      { name: 'echo-tcp', protocol: 'TCP', port: 80 },
      { name: 'echo-udp', protocol: 'UDP', port: 80 },
    ],
  },
  {
    namespace: 'sp',
    name: 'open',
    labels: { app: 'open' },
    ports: [{ name: 'echo-tcp', protocol: 'TCP', port: 80 }],
  },
];

function calico(name: string, spec: object): Resource {
  return parseResource({
    apiVersion: 'projectcalico.org/v3',
    kind: 'NetworkPolicy',
    metadata: { name, namespace: 'sp' },
    spec,
  });
}

/**
 * The client's declared container port: a named port the policy resolves, which nothing
 * listens on (the lab serves every port of a pod spec, and the probe must bind it).
 */
const CLIENT_PORT = { name: 'client-dns', protocol: 17, port: 41000 };

const POLICIES: Resource[] = [
  // The server admits TCP from source ports 40000-40009 and UDP from the client's named port.
  calico('server-by-source-port', {
    selector: 'app == "server"',
    types: ['Ingress'],
    ingress: [
      { action: 'Allow', protocol: 'TCP', source: { ports: ['40000:40009'] } },
      { action: 'Allow', protocol: 'UDP', source: { ports: ['client-dns'] } },
    ],
  }),
  // The client may send TCP from any source port but 42000, and UDP freely.
  calico('client-not-from-42000', {
    selector: 'app == "client"',
    types: ['Egress'],
    egress: [
      { action: 'Allow', protocol: 'TCP', source: { notPorts: [42000] } },
      { action: 'Allow', protocol: 'UDP' },
    ],
  }),
];

/**
 * One exchange from `from` bound to `sport` to `to`:80: "ok" when the echo came back,
 * "blocked" when it did not within the probe's wait (a dropped SYN or datagram).
 */
async function exchange(
  from: LabPod,
  protocol: 'tcp' | 'udp',
  sport: number,
  to: LabPod,
): Promise<boolean> {
  const script = `
import socket, sys
proto, src, sport, dst = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto == 'tcp' else socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((src, sport))
s.settimeout(1.5)
try:
    if proto == 'tcp':
        s.connect((dst, 80)); s.sendall(b'sport'); data = s.recv(16)
    else:
        s.sendto(b'sport', (dst, 80)); data, _ = s.recvfrom(16)
    print('ok' if data == b'sport' else 'wrong')
except (socket.timeout, ConnectionRefusedError, OSError):
    print('blocked')
`;
  const r = await execIn(from.netns, 'python3', [
    '-c',
    script,
    protocol,
    from.ip,
    String(sport),
    to.ip,
  ]);
  const out = r.stdout.trim();
  if (out !== 'ok' && out !== 'blocked') throw new Error(`probe: ${out} ${r.stderr}`);
  return out === 'ok';
}

const CASES: [
  what: string,
  from: string,
  protocol: 'tcp' | 'udp',
  sport: number,
  to: string,
  allowed: boolean,
][] = [
  ['TCP from a source port in the admitted range', 'sp/client', 'tcp', 40005, 'sp/server', true],
  ['TCP from the range’s last port', 'sp/client', 'tcp', 40009, 'sp/server', true],
  ['TCP from just past the range', 'sp/client', 'tcp', 40010, 'sp/server', false],
  [
    'UDP from the client’s named port client-dns (41000)',
    'sp/client',
    'udp',
    41000,
    'sp/server',
    true,
  ],
  ['UDP from another port', 'sp/client', 'udp', 41001, 'sp/server', false],
  [
    'UDP from 41000 of a pod that has no such named port',
    'sp/open',
    'udp',
    41000,
    'sp/server',
    false,
  ],
  [
    'TCP from the egress notPort 42000, to an unisolated pod',
    'sp/client',
    'tcp',
    42000,
    'sp/open',
    false,
  ],
  ['TCP from 42001, to an unisolated pod', 'sp/client', 'tcp', 42001, 'sp/open', true],
];

for (const dataplane of ['bpf', 'iptables'] as const) {
  describe(`source ports, real packets through the ${dataplane} dataplane`, () => {
    let lab: NodeLab | undefined;
    let dp: NodeDataplane | undefined;
    let world: World | undefined;
    const locals: LocalEndpoint[] = [];

    beforeAll(async () => {
      lab = await NodeLab.create(`${dataplane === 'bpf' ? 's' : 'i'}${runId}`, NAMESPACES);
      if (dataplane === 'bpf') dp = NodeDataplane.open({ pinRoot, nodeNetns: lab.nodeNetns });
      for (const [i, spec] of PODS.entries()) {
        const pod = await lab.addPod(spec, ipOf(i));
        if (pod.key === 'sp/client') pod.endpoint = { ...pod.endpoint, ports: [CLIENT_PORT] };
        if (dp !== undefined) {
          dp.attach(pod.network.hostIfindex);
          dp.setLocalRoute(pod.ip, pod.network.hostIfindex);
        }
        locals.push({ endpoint: pod.endpoint, ifindex: pod.network.hostIfindex, id: i + 1 });
      }
      const nsResources: Resource[] = NAMESPACES.map((n) => ({
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name: n.name, labels: n.labels },
        namespace: n,
      }));
      world = worldFrom(
        [...nsResources, ...POLICIES],
        lab.pods.map((p) => p.endpoint),
      );
      if (dp !== undefined) dp.program(world, locals);
      else {
        const ipt = await IptablesDataplane.open({ netns: lab.nodeNetns });
        await ipt.program(
          world,
          lab.pods.map((p) => ({ endpoint: p.endpoint, iface: p.network.hostIfName })),
        );
      }
    });

    afterAll(async () => {
      dp?.destroy();
      await lab?.destroy();
    });

    /** The evaluator's word: the sender's egress and the receiver's ingress both allow. */
    function predicted(from: LabPod, protocol: 'tcp' | 'udp', sport: number, to: LabPod): boolean {
      const packet: Packet = {
        saddr: from.ip,
        daddr: to.ip,
        protocol: protocol === 'tcp' ? 6 : 17,
        sport,
        dport: 80,
      };
      return (
        evaluate(world!, from.endpoint, 'egress', packet).action === 'allow' &&
        evaluate(world!, to.endpoint, 'ingress', packet).action === 'allow'
      );
    }

    for (const [what, from, protocol, sport, to, allowed] of CASES) {
      it(`${what}: ${allowed ? 'passes' : 'is dropped'}`, async () => {
        const a = lab!.pod(from);
        const b = lab!.pod(to);
        expect(predicted(a, protocol, sport, b)).toBe(allowed);
        expect(await exchange(a, protocol, sport, b)).toBe(allowed);
      });
    }
  });
}
