/**
 * The node's own traffic, in every encapsulation mode (root): a 2-node ClusterLab, a pod
 * on each node, a TCP server in node 1's namespace that records its peers.
 *
 * For ipipMode Always and Never, from node 0's namespace (`nsenter --net=<node netns>`):
 * ping and TCP to the pod on node 1 and to the pod on node 0; from the pod on node 0, TCP
 * to node 1's underlay address. Under Always the node's packets to node 1's pod cross the
 * underlay in IPIP (protocol 4, inner source = node 0's underlay address: the kernel
 * route's `src`); under Never nothing is encapsulated.
 *
 * CrossSubnet on the same lab (nodes in one /24): the agents route plain (no MTU on the
 * kernel routes) and a capture on node 0's port of the underlay bridge sees no protocol-4
 * packet while pods and the node talk to node 1's pod — but does see their plain packets.
 * The cross-subnet half (encapsulate when the peer is in another subnet) is a unit test
 * (test/unit/agent-host-routes.test.ts): the lab has one underlay subnet.
 */
import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ClusterLab,
  clusterNames,
  destroyClusterLab,
  type ClusterPod,
} from '../../src/lab/cluster/cluster-lab.js';
import { capture } from '../helpers/capture.js';
import { newLabId } from '../helpers/netns.js';
import { recordingTcpServer, type NsScript } from '../helpers/pod-scripts.js';
import { eventually } from '../helpers/wait.js';

const exec = promisify(execFile);
const NODE_PORT = 9090;

async function nsExec(ns: string, file: string, args: string[]): Promise<string> {
  const { stdout } = await exec('nsenter', [`--net=${ns}`, '--', file, ...args], {
    timeout: 60_000,
  });
  return stdout;
}

async function nsOk(ns: string, file: string, args: string[]): Promise<boolean> {
  try {
    await nsExec(ns, file, args);
    return true;
  } catch {
    return false;
  }
}

/**
 * ping from a namespace (two tries: ARP on the first), each waiting long enough for a
 * loaded machine (an answer ends it at once).
 */
const ping = async (ns: string, ip: string) =>
  (await nsOk(ns, 'ping', ['-c', '1', '-W', '10', ip])) ||
  nsOk(ns, 'ping', ['-c', '1', '-W', '10', ip]);

/** A TCP connection from a namespace that gets its bytes echoed (the pods' servers echo). */
async function tcp(ns: string, ip: string, port: number): Promise<boolean> {
  const script = [
    "const s = require('node:net').connect(Number(process.argv[2]), process.argv[1]);",
    "s.on('connect', () => s.write('hello'));",
    "s.on('data', (d) => process.exit(String(d).includes('hello') ? 0 : 3));",
    "s.on('error', () => process.exit(1));",
    'setTimeout(() => process.exit(2), 10000);',
  ].join('\n');
  for (let i = 0; i < 2; i++) {
    if (await nsOk(ns, process.execPath, ['-e', script, ip, String(port)])) return true;
  }
  return false;
}

interface KernelRouteJson {
  dst: string;
  gateway?: string;
  prefsrc?: string;
  metrics?: { mtu?: number }[];
}

describe.each([
  ['ipip', 'Always'],
  ['none', 'Never'],
] as const)('traffic from and to the node itself, encap %s (ipipMode %s)', (encap, mode) => {
  const id = newLabId('mdt');
  let lab: ClusterLab | undefined;
  let p0: ClusterPod;
  let p1: ClusterPod;
  let server: { peers: string[]; server: NsScript } | undefined;
  const bridgePort = () => `t${id}p0`.slice(0, 15);
  const ulNs = () => `/run/netns/${clusterNames(id).underlay}`;

  beforeAll(async () => {
    lab = await ClusterLab.up({ id, nodes: 2, encap });
    await lab.createNamespace('x');
    p0 = await lab.addPod({ namespace: 'x', name: 'p0', labels: { app: 'p' }, node: 0 });
    p1 = await lab.addPod({ namespace: 'x', name: 'p1', labels: { app: 'p' }, node: 1 });
    server = await recordingTcpServer(lab.nodes[1]!.netns, NODE_PORT);
  }, 90_000);

  afterAll(async () => {
    server?.server.stop();
    await lab?.down().catch(() => undefined);
    await destroyClusterLab(id);
    const left = readdirSync('/run/netns').filter((n) => n.startsWith(`tortie-${id}-`));
    if (left.length > 0) throw new Error(`left behind: ${left.join(', ')}`);
  }, 60_000);

  it(`the kernel routes to node 1's block carry node 0's address as source${mode === 'Always' ? ' and mtu 1480' : ', no mtu'}`, async () => {
    const n0 = lab!.nodes[0]!;
    const routes = await eventually(
      async () =>
        JSON.parse(
          await nsExec(n0.netns, 'ip', ['-j', 'route', 'show', 'proto', '177']),
        ) as KernelRouteJson[],
      (r) => r.length > 0 && r.every((x) => x.prefsrc !== undefined),
    );
    expect(routes.length).toBeGreaterThan(0);
    for (const r of routes) {
      expect(r.gateway).toBe(lab!.nodes[1]!.underlayIp);
      expect(r.prefsrc).toBe(n0.underlayIp);
      expect(r.metrics?.find((m) => m.mtu !== undefined)?.mtu).toBe(
        mode === 'Always' ? 1480 : undefined,
      );
    }
  });

  it('node 0 reaches the pod on node 1 and the pod on node 0 (ping and TCP)', async () => {
    const ns = lab!.nodes[0]!.netns;
    const n0 = lab!.nodes[0]!.underlayIp;
    const n1 = lab!.nodes[1]!.underlayIp;
    const encapsulatedIn = (ls: string[]) =>
      ls.filter((l) => l.startsWith(`IP ${n0} > ${n1}: IP ${n0}`));
    // The pod on node 1 answers node 0 plain in both modes: once its answers to the ping
    // and to the TCP connection are printed, so is every packet that went before them.
    const answered = (ls: string[]) =>
      ls.some((l) => l.startsWith(`IP ${p1.ip} > ${n0}: ICMP echo reply`)) &&
      ls.some((l) => l.startsWith(`IP ${p1.ip}.80 > ${n0}.`));
    const cap = await capture(ulNs(), bridgePort(), `ip proto 4 or net ${lab!.podCidr}`);
    let lines: string[] = [];
    try {
      const results = {
        pingRemote: await ping(ns, p1.ip),
        tcpRemote: await tcp(ns, p1.ip, 80),
        pingLocal: await ping(ns, p0.ip),
        tcpLocal: await tcp(ns, p0.ip, 80),
      };
      expect(results).toEqual({
        pingRemote: true,
        tcpRemote: true,
        pingLocal: true,
        tcpLocal: true,
      });
      await cap.until(
        mode === 'Always'
          ? "node 1's pod answering node 0, and 3 packets out in IPIP"
          : "node 1's pod answering node 0",
        (ls) => answered(ls) && (mode === 'Never' || encapsulatedIn(ls).length >= 3),
      );
    } finally {
      lines = await cap.stop();
    }
    const encapsulated = encapsulatedIn(lines);
    const ipipAny = lines.filter((l) => / ipip|: IP \d/.test(l));
    if (mode === 'Always') {
      // Out in IPIP from the node's own address; the replies come back plain.
      expect(encapsulated.length).toBeGreaterThanOrEqual(3);
    } else {
      expect(ipipAny).toEqual([]);
      expect(lines.some((l) => l.startsWith(`IP ${n0}`) && l.includes(` > ${p1.ip}`))).toBe(true);
    }
  }, 120_000);

  it("a pod on node 0 reaches node 1's underlay address", async () => {
    server!.peers.length = 0;
    let ok = false;
    for (let i = 0; i < 2 && !ok; i++)
      ok = await p0.process.probe('tcp', lab!.nodes[1]!.underlayIp, NODE_PORT, 5000);
    expect(ok).toBe(true);
    // The pool has no natOutgoing: node 1 sees the pod's own address and routes the reply
    // back over its route to node 0's block.
    expect(server!.peers).toContain(p0.ip);
  }, 120_000);

  if (mode === 'Always') {
    it('CrossSubnet with both nodes in one subnet: plain routes, no protocol-4 packet on the underlay', async () => {
      await lab!.store!.apply([
        {
          apiVersion: 'tortie.io/v1',
          kind: 'IPPool',
          metadata: { name: 'lab' },
          spec: { cidr: lab!.podCidr, blockSize: 26, ipipMode: 'CrossSubnet' },
        },
      ]);
      for (const n of lab!.nodes) {
        const routes = await eventually(
          () => n.agent!.status().routes,
          (r) => r.length > 0 && r.every((x) => !x.ipip),
        );
        expect(routes.map((r) => r.ipip)).toEqual(routes.map(() => false));
      }
      const n0 = lab!.nodes[0]!;
      const kernel = await eventually(
        async () =>
          JSON.parse(
            await nsExec(n0.netns, 'ip', ['-j', 'route', 'show', 'proto', '177']),
          ) as KernelRouteJson[],
        (r) => r.length > 0 && r.every((x) => !x.metrics?.some((m) => m.mtu !== undefined)),
      );
      expect(kernel.flatMap((r) => r.metrics ?? []).filter((m) => m.mtu !== undefined)).toEqual([]);

      // One capture for both kinds, so that the packet waited for below (the answer to the
      // last probe) proves every packet before it printed, IPIP or plain.
      const cap = await capture(ulNs(), bridgePort(), `ip proto 4 or net ${lab!.podCidr}`);
      let lines: string[] = [];
      try {
        const results = {
          podToPod: await p0.process.probe('tcp', p1.ip, 80, 5000),
          podToPodBack: await p1.process.probe('tcp', p0.ip, 80, 5000),
          nodeToPodTcp: await tcp(n0.netns, p1.ip, 80),
          nodeToPodPing: await ping(n0.netns, p1.ip),
        };
        expect(results).toEqual({
          podToPod: true,
          podToPodBack: true,
          nodeToPodTcp: true,
          nodeToPodPing: true,
        });
        await cap.until("the answer to node 0's ping, the last probe", (ls) =>
          ls.some((l) => l.startsWith(`IP ${p1.ip} > ${n0.underlayIp}: ICMP echo reply`)),
        );
      } finally {
        lines = await cap.stop();
      }
      // Between the two node addresses only IPIP passes the filter: everything else it
      // takes has a pod address in its outer header.
      const n1 = lab!.nodes[1]!.underlayIp;
      const ipip = lines.filter(
        (l) =>
          l.startsWith(`IP ${n0.underlayIp} > ${n1}:`) ||
          l.startsWith(`IP ${n1} > ${n0.underlayIp}:`),
      );
      const plain = lines.filter((l) => !ipip.includes(l));
      expect(ipip).toEqual([]);
      expect(plain.some((l) => l.startsWith(`IP ${p0.ip}`) && l.includes(`> ${p1.ip}`))).toBe(true);
      expect(
        plain.some((l) => l.startsWith(`IP ${n0.underlayIp}`) && l.includes(`> ${p1.ip}`)),
      ).toBe(true);
    }, 120_000);
  }
});
