/**
 * Issue 11, attack 4, "the node's doors" (root): a pod goes for the services of its own
 * node — the loopback ones (CVE-2020-8558) and those on the node's address.
 *
 * A 1-node ClusterLab. The node runs two TCP servers that record their peers: one on
 * 127.0.0.1 (like the agent's health port), one on 0.0.0.0 (reachable on the node's
 * underlay address). The node is set up as kube-proxy leaves it: route_localnet=1 on
 * `all` and on the pod's host veth, so the kernel alone would deliver a pod's packet to
 * 127.0.0.1 and route the answer back. The pod acts as an attacker that owns its
 * namespace (what a raw socket gives anyone): it routes 127.0.0.1 out of eth0 through
 * its gateway and accepts the answers (route_localnet=1 in the pod too).
 *
 * Under each dataplane and defaultEndpointToHostAction:
 *   - the pod's SYN to 127.0.0.1 gets no answer, whatever the action; BPF counts it as
 *     DROP_TO_LOOPBACK;
 *   - a connection to the node's address: refused under Drop (the default; BPF counts
 *     DROP_ENDPOINT_TO_HOST), made under Accept (the control) — as the reference
 *     evaluator predicts (egress first, then the action);
 *   - the node's own connections to the pod, and their replies, keep working under Drop.
 *
 * Before this change (main at 0140f4d, this file run there without the prediction step)
 * every attempt connected in every variant: 3/3 to 127.0.0.1 and 3/3 to the node's
 * address, BPF and iptables alike. After: 0/3 to 127.0.0.1 everywhere; 0/3 to the node
 * under Drop, 3/3 under Accept.
 */
import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildWorld } from '../../src/agent/model.js';
import {
  ClusterLab,
  destroyClusterLab,
  type ClusterPod,
} from '../../src/lab/cluster/cluster-lab.js';
import { snapshotModel } from '../../src/lab/cluster/predict.js';
import { predictToHost } from '../../src/lab/predict.js';
import { newLabId } from '../helpers/netns.js';
import { recordingTcpServer, type NsScript } from '../helpers/pod-scripts.js';

const exec = promisify(execFile);
const LOOPBACK_PORT = 9099;
const NODE_PORT = 9098;
const ATTEMPTS = 3;

async function nsExec(ns: string, file: string, args: string[]): Promise<string> {
  const { stdout } = await exec('nsenter', [`--net=${ns}`, '--', file, ...args], {
    timeout: 20_000,
  });
  return stdout;
}

async function routeLocalnetOnNode(nodeNs: string): Promise<void> {
  const links = JSON.parse(await nsExec(nodeNs, 'ip', ['-j', 'link', 'show'])) as {
    ifname: string;
  }[];
  const veths = links.map((l) => l.ifname).filter((n) => n.startsWith('tor'));
  expect(veths.length).toBeGreaterThan(0);
  for (const dev of ['all', ...veths]) {
    await nsExec(nodeNs, 'sysctl', ['-qw', `net.ipv4.conf.${dev}.route_localnet=1`]);
  }
}

/**
 * The attacker's own namespace: 127.0.0.1 routed out of eth0 to the node, and the answers
 * accepted — route_localnet for their loopback source, accept_local because 127.0.0.1 is
 * still an address of the pod's lo (else the SYN-ACK is a martian and the attack looks
 * blocked when it is not).
 */
async function loopbackViaGateway(podNs: string): Promise<void> {
  for (const dev of ['all', 'eth0']) {
    await nsExec(podNs, 'sysctl', ['-qw', `net.ipv4.conf.${dev}.route_localnet=1`]);
    await nsExec(podNs, 'sysctl', ['-qw', `net.ipv4.conf.${dev}.accept_local=1`]);
  }
  await nsExec(podNs, 'ip', ['route', 'del', 'local', '127.0.0.1', 'dev', 'lo', 'table', 'local']);
  await nsExec(podNs, 'ip', [
    'route',
    'del',
    'local',
    '127.0.0.0/8',
    'dev',
    'lo',
    'table',
    'local',
  ]);
  await nsExec(podNs, 'ip', [
    'route',
    'add',
    '127.0.0.1/32',
    'via',
    '169.254.1.1',
    'dev',
    'eth0',
    'onlink',
  ]);
}

async function connections(pod: ClusterPod, host: string, port: number): Promise<number> {
  let ok = 0;
  for (let i = 0; i < ATTEMPTS; i++) if (await pod.process.probe('tcp', host, port, 1500)) ok++;
  return ok;
}

const VARIANTS = [
  { name: 'BPF, default action (Drop)', dataplane: 'bpf', encap: 'ipip', action: undefined },
  { name: 'BPF, Accept', dataplane: 'bpf', encap: 'ipip', action: 'Accept' },
  {
    name: 'iptables, default action (Drop)',
    dataplane: 'iptables',
    encap: 'none',
    action: undefined,
  },
] as const;

describe.each(VARIANTS)("a pod at its node's doors: $name", (v) => {
  const id = newLabId('nd');
  let lab: ClusterLab | undefined;
  let pod: ClusterPod;
  let loopServer: { peers: string[]; server: NsScript } | undefined;
  let nodeServer: { peers: string[]; server: NsScript } | undefined;
  const node = () => lab!.nodes[0]!;
  const drops = (reason: string): number =>
    v.dataplane === 'bpf' ? (node().agent!.status().drops[reason] ?? 0) : 0;

  beforeAll(async () => {
    lab = await ClusterLab.up({
      id,
      nodes: 1,
      encap: v.encap,
      ...(v.dataplane === 'iptables' ? { dataplane: 'iptables' as const } : {}),
      ...(v.action === undefined ? {} : { endpointToHostAction: v.action }),
    });
    await lab.createNamespace('x');
    pod = await lab.addPod({ namespace: 'x', name: 'attacker', labels: { app: 'a' }, node: 0 });
    loopServer = await recordingTcpServer(node().netns, LOOPBACK_PORT, '127.0.0.1');
    nodeServer = await recordingTcpServer(node().netns, NODE_PORT);
    await routeLocalnetOnNode(node().netns);
    await loopbackViaGateway(pod.netns);
  }, 120_000);

  afterAll(async () => {
    loopServer?.server.stop();
    nodeServer?.server.stop();
    await lab?.down().catch(() => undefined);
    await destroyClusterLab(id);
    const left = readdirSync('/run/netns').filter((n) => n.startsWith(`tortie-${id}-`));
    if (left.length > 0) throw new Error(`left behind: ${left.join(', ')}`);
  });

  it("gets no answer from the node's 127.0.0.1, route_localnet=1 or not", async () => {
    const before = drops('DROP_TO_LOOPBACK');
    const made = await connections(pod, '127.0.0.1', LOOPBACK_PORT);
    console.log(`[${v.name}] pod -> 127.0.0.1:${LOOPBACK_PORT}: ${made}/${ATTEMPTS} connections`);
    expect(made).toBe(0);
    expect(loopServer!.peers).toEqual([]);
    if (v.dataplane === 'bpf')
      expect(drops('DROP_TO_LOOPBACK') - before).toBeGreaterThanOrEqual(ATTEMPTS);
  }, 60_000);

  it("reaches a server on the node's address only as defaultEndpointToHostAction says", async () => {
    const model = await snapshotModel(lab!.store!);
    const { world, endpoints } = buildWorld(model);
    const endpoint = [...endpoints.values()].find((e) => e.endpoint.ip === pod.ip)?.endpoint;
    expect(endpoint).toBeDefined();
    const action = v.action ?? 'Drop';
    const predicted = predictToHost(
      world,
      [{ key: pod.key, ip: pod.ip, endpoint }],
      node().underlayIp,
      'tcp',
      NODE_PORT,
      action,
    );
    expect([...predicted.values()]).toEqual([action !== 'Drop']);

    const before = drops('DROP_ENDPOINT_TO_HOST');
    const made = await connections(pod, node().underlayIp, NODE_PORT);
    console.log(
      `[${v.name}] pod -> node ${node().underlayIp}:${NODE_PORT}: ${made}/${ATTEMPTS} connections`,
    );
    if (action === 'Drop') {
      expect(made).toBe(0);
      expect(nodeServer!.peers).toEqual([]);
      if (v.dataplane === 'bpf')
        expect(drops('DROP_ENDPOINT_TO_HOST') - before).toBeGreaterThanOrEqual(ATTEMPTS);
    } else {
      expect(made).toBe(ATTEMPTS);
      expect(nodeServer!.peers).toContain(pod.ip);
      expect(drops('DROP_ENDPOINT_TO_HOST')).toBe(before);
    }
  }, 60_000);

  it('lets the node reach the pod, and the answers back, whatever the action', async () => {
    const ns = node().netns;
    const script = [
      "const s = require('node:net').connect(80, process.argv[1]);",
      "s.on('connect', () => s.write('hello'));",
      "s.on('data', (d) => process.exit(String(d).includes('hello') ? 0 : 3));",
      "s.on('error', () => process.exit(1));",
      'setTimeout(() => process.exit(2), 3000);',
    ].join('\n');
    await expect(nsExec(ns, process.execPath, ['-e', script, pod.ip])).resolves.toBeDefined();
    await expect(nsExec(ns, 'ping', ['-c', '2', '-W', '2', pod.ip])).resolves.toContain(
      '2 received',
    );
  }, 60_000);
});
