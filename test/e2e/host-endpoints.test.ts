/**
 * Host endpoints on the lab (issue 16, root): a 2-node lab, BGP mesh with BIRD over the
 * underlay, agents as `tortie node run` processes (BPF dataplane). Node n0 gets a
 * wildcard HostEndpoint and no policy: the node's own services are cut off except the
 * failsafe ports — its BGP session (tcp 179, established before the host endpoint, so
 * picked up mid-flow) stays up through the host endpoint's judgement — and a
 * GlobalNetworkPolicy allowing tcp/8022 from n1's address only lets exactly that source
 * in. Pods on both nodes keep reaching each other through it (forwarded traffic, which
 * only applyOnForward policy judges). The agents reach etcd on the machine's loopback, not through a node's uplink: that
 * they keep programming (every waitForRevision below) shows the store path is intact,
 * not that failsafe 2379 carried it.
 *
 * Needs root, /usr/sbin/bird, and `npm run build` first (the agents are `tortie node run`).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HOST_ENDPOINT_ID_BASE } from '../../src/agent/managers/host-endpoints.js';
import { readCounters } from '../../src/cli/inspect.js';
import {
  ClusterLab,
  destroyClusterLab,
  type ClusterNode,
} from '../../src/lab/cluster/cluster-lab.js';
import { birdc, until } from '../helpers/bgp.js';
import { newLabId } from '../helpers/netns.js';
import { recordingTcpServer, type NsScript } from '../helpers/pod-scripts.js';

const exec = promisify(execFile);
const HOLD = 6;
const PORT = 8022;

/** One TCP connection attempt from namespace `ns` (optionally from `localAddress`). */
async function connects(ns: string, host: string, port: number, localAddress?: string) {
  const script = [
    "const s = require('node:net').connect({",
    `  host: '${host}', port: ${port}, timeout: 1500,`,
    localAddress === undefined ? '' : `  localAddress: '${localAddress}',`,
    '});',
    "s.on('connect', () => { console.log('ok'); process.exit(0); });",
    "s.on('timeout', () => { console.log('no'); process.exit(0); });",
    "s.on('error', () => { console.log('no'); process.exit(0); });",
  ].join('\n');
  const { stdout } = await exec('nsenter', [`--net=${ns}`, '--', process.execPath, '-e', script], {
    timeout: 20_000,
  });
  return stdout.trim() === 'ok';
}

/** BIRD's `show protocols` line of node's mesh session to peer: state and since. */
async function session(lab: ClusterLab, node: ClusterNode, peer: ClusterNode): Promise<string> {
  const name = `Mesh_${peer.underlayIp.replace(/\./g, '_')}`;
  const line = (await birdc(lab, node, 'show', 'protocols', name))
    .split('\n')
    .find((l) => l.startsWith(name));
  if (line === undefined) throw new Error(`${node.name}: no protocol ${name}`);
  return line.replace(/\s+/g, ' ');
}

/** The host endpoint's counters on a node: packets by "reason dir". */
function hepCounters(node: ClusterNode): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const r of readCounters(node.pinRoot)) {
    if (r.epId < HOST_ENDPOINT_ID_BASE) continue;
    const k = `${r.reason} ${r.dir}`;
    out.set(k, (out.get(k) ?? 0n) + r.packets);
  }
  return out;
}

describe('a wildcard host endpoint on a lab node', () => {
  const id = newLabId('he');
  let lab: ClusterLab | undefined;
  let server: NsScript | undefined;

  beforeAll(async () => {
    lab = await ClusterLab.up({
      id,
      nodes: 2,
      encap: 'none',
      routing: 'bgp',
      agents: 'process',
      bgpHoldTimeSeconds: HOLD,
    });
    await lab.createNamespace('x');
    await lab.addPod({ namespace: 'x', name: 'a', labels: {}, node: 0 });
    await lab.addPod({ namespace: 'x', name: 'b', labels: {}, node: 1 });
  }, 300_000);

  afterAll(async () => {
    server?.stop();
    await lab?.down().catch(() => undefined);
    await destroyClusterLab(id);
  }, 60_000);

  it('denies the node’s own services except failsafe: the BGP session stays up; policy opens tcp/8022 to one source only', async () => {
    const l = lab!;
    const [n0, n1] = l.nodes as [ClusterNode, ClusterNode];
    await until('the mesh session Established', async () =>
      (await session(l, n0, n1)).includes('Established'),
    );
    const before = await session(l, n0, n1);
    ({ server } = await recordingTcpServer(n0.netns, PORT));
    // A second source on n1's uplink, in the same /24: the one policy will not allow.
    const other = n1.underlayIp.replace(/\.\d+$/, '.200');
    const { stdout } = await exec('nsenter', [`--net=${n1.netns}`, '--', 'ip', '-j', 'addr']);
    const uplink = (
      JSON.parse(stdout) as { ifname: string; addr_info: { local: string }[] }[]
    ).find((i) => i.addr_info.some((a) => a.local === n1.underlayIp))!.ifname;
    await exec('nsenter', [
      `--net=${n1.netns}`,
      '--',
      'ip',
      'addr',
      'add',
      `${other}/24`,
      'dev',
      uplink,
    ]);

    // Control: without a host endpoint both sources connect; the pods reach each other.
    expect(await l.probe('x/a', 'x/b')).toBe(true);
    expect(await l.probe('x/b', 'x/a')).toBe(true);
    expect(await connects(n1.netns, n0.underlayIp, PORT)).toBe(true);
    expect(await connects(n1.netns, n0.underlayIp, PORT, other)).toBe(true);

    const [hep] = await l.store!.apply([
      {
        apiVersion: 'projectcalico.org/v3',
        kind: 'HostEndpoint',
        metadata: { name: `${id}-n0`, labels: { role: 'edge' } },
        spec: { node: n0.name, interfaceName: '*' },
      },
    ]);
    await l.waitForRevision(BigInt(hep!.resource.metadata.resourceVersion!));

    // No policy: denied, counted as the host endpoint's policy drop.
    expect(await connects(n1.netns, n0.underlayIp, PORT)).toBe(false);
    // Pods' traffic is forwarded, not the host's: no applyOnForward policy, not judged.
    expect(await l.probe('x/a', 'x/b')).toBe(true);
    expect(await l.probe('x/b', 'x/a')).toBe(true);
    expect(hepCounters(n0).get('DROP_POLICY from-uplink') ?? 0n).toBeGreaterThan(0n);
    // A pod added on n0 (CNI ADD: the agent's endpoint-only pass) leaves the host
    // endpoint in force.
    await l.addPod({ namespace: 'x', name: 'c', labels: {}, node: 0 });
    expect(await l.probe('x/b', 'x/c')).toBe(true);
    expect(await connects(n1.netns, n0.underlayIp, PORT)).toBe(false);

    // BGP crosses the host endpoint (judged: counted under it both ways) and stays up:
    // the same session, never reset, after the keepalives of two hold times passed it.
    const passed = (c: Map<string, bigint>, dir: string): bigint =>
      [...c]
        .filter(([k]) => k.startsWith('PASS_') && k.endsWith(dir))
        .reduce((a, [, v]) => a + v, 0n);
    await until(
      'BGP keepalives judged by the host endpoint both ways',
      async () => {
        const c = hepCounters(n0);
        return passed(c, 'from-uplink') >= 8n && passed(c, 'to-uplink') >= 8n;
      },
      4 * HOLD * 1000,
    );
    expect(await session(l, n0, n1)).toBe(before);
    expect(await session(l, n1, n0)).toContain('Established');

    // Policy for the host endpoint's labels: tcp/8022 from n1's address only.
    const [gnp] = await l.store!.apply([
      {
        apiVersion: 'projectcalico.org/v3',
        kind: 'GlobalNetworkPolicy',
        metadata: { name: `${id}-ssh` },
        spec: {
          selector: "role == 'edge'",
          ingress: [
            {
              action: 'Allow',
              protocol: 'TCP',
              source: { nets: [`${n1.underlayIp}/32`] },
              destination: { ports: [PORT] },
            },
          ],
        },
      },
    ]);
    await l.waitForRevision(BigInt(gnp!.resource.metadata.resourceVersion!));
    expect(await connects(n1.netns, n0.underlayIp, PORT)).toBe(true);
    expect(await connects(n1.netns, n0.underlayIp, PORT, other)).toBe(false);
    expect(await session(l, n0, n1)).toBe(before);
  }, 180_000);
});
