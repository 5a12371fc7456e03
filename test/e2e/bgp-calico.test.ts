/**
 * Calico's BGP resources with real BIRD 2 (issue 13), 2 lab nodes, ipipMode Never, a pod
 * (so a block) on each:
 *
 * - IPPool `disableBGPExport: true`: each node's block leaves the other's kernel table;
 *   back when it is false again.
 * - BGPFilter: with the mesh off and a BGPPeer between the nodes, a filter rejecting the
 *   pool on import keeps the peer's block out of the kernel table while the session stays
 *   Established; taking the filter off the BGPPeer brings it back (BIRD reconfigured live).
 * - password.secretKeyRef: per-node BGPPeers whose secrets (files under the lab's
 *   secrets dir) differ keep the session down — the kernel counts the TCP MD5 failures —
 *   and a missing secret keeps the session out with the reason in the agent's status;
 *   writing the matching password brings the session up.
 *
 * Needs root and /usr/sbin/bird.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterLab, destroyClusterLab } from '../../src/lab/cluster/cluster-lab.js';
import { labBgpSecretsDir } from '../../src/lab/cluster/agent-settings.js';
import { clusterNames } from '../../src/lab/cluster/names.js';
import { birdc, blockOf, kernelRoutes, until } from '../helpers/bgp.js';
import { newLabId } from '../helpers/netns.js';

const exec = promisify(execFile);
const API = 'projectcalico.org/v3';
const MAIN = join(process.cwd(), 'dist', 'bin', 'tortie.js');

/** `tortie node status --node <name>` as a user runs it (needs `npm run build`). */
async function nodeStatus(lab: ClusterLab, node: string): Promise<string> {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('TORTIE_')),
  );
  const args = [MAIN, '--etcd-endpoints', lab.etcd!.endpoints.join(',')];
  args.push('--etcd-prefix', clusterNames(lab.id).etcdPrefix, 'node', 'status', '--node', node);
  const r = await exec(process.execPath, args, { env }).catch((e: { stdout?: string }) => ({
    stdout: e.stdout ?? '',
  }));
  return r.stdout;
}

/** BIRD's `show protocols` line of `name` on node `i` (state and info columns). */
async function protocol(lab: ClusterLab, i: number, name: string): Promise<string> {
  const out = await birdc(lab, lab.nodes[i]!, 'show', 'protocols');
  return out.split('\n').find((l) => l.startsWith(`${name} `)) ?? '';
}

/** The kernel's count of TCP segments refused for a wrong or missing MD5 signature. */
async function md5Failures(netns: string): Promise<number> {
  const { stdout } = await exec('nsenter', [`--net=${netns}`, '--', 'cat', '/proc/net/netstat']);
  const lines = stdout.split('\n').filter((l) => l.startsWith('TcpExt:'));
  const names = lines[0]!.split(/\s+/);
  const values = lines[1]!.split(/\s+/);
  let n = 0;
  for (const field of ['TCPMD5Failure', 'TCPMD5Unexpected', 'TCPMD5NotFound']) {
    const i = names.indexOf(field);
    if (i > 0) n += Number(values[i]);
  }
  return n;
}

function birdProcesses(id: string): string[] {
  const out: string[] = [];
  for (const d of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      if (readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(`/bird-${id}-n`))
        out.push(`bird pid ${d}`);
    } catch {
      // gone
    }
  }
  return out;
}

describe('Calico BGP resources with BIRD: 2 nodes', () => {
  const id = newLabId('bc');
  let lab: ClusterLab | undefined;
  const blocks: string[] = [];
  let pool = '';

  /** Node i's kernel has the other node's block (learned over BGP) or not. */
  const hasPeerBlock = async (i: number): Promise<boolean> => {
    const l = lab!;
    const j = 1 - i;
    return (await kernelRoutes(l.nodes[i]!.netns, 'bird')).includes(
      `${blocks[j]} via ${l.nodes[j]!.underlayIp}`,
    );
  };

  beforeAll(async () => {
    lab = await ClusterLab.up({
      id,
      nodes: 2,
      encap: 'none',
      routing: 'bgp',
      bgpHoldTimeSeconds: 6,
    });
    await lab.createNamespace('x');
    for (const i of [0, 1]) {
      const pod = await lab.addPod({
        namespace: 'x',
        name: `p${i}`,
        labels: { app: 'p' },
        node: i,
      });
      blocks.push(blockOf(pod.ip));
    }
    const pools = await lab.store!.list('IPPool');
    pool = pools[0]!.spec.cidr;
    await until('both blocks learned over the mesh', async () =>
      (await Promise.all([hasPeerBlock(0), hasPeerBlock(1)])).every(Boolean),
    );
  }, 300_000);

  afterAll(async () => {
    await lab?.down().catch(() => undefined);
    await destroyClusterLab(id);
    const left = [
      ...readdirSync('/run/netns').filter((n) => n.startsWith(`tortie-${id}-`)),
      ...readdirSync(tmpdir()).filter((n) => n.includes(`-${id}-`)),
      ...birdProcesses(id),
    ];
    if (left.length > 0) throw new Error(`left behind: ${left.join(', ')}`);
  }, 60_000);

  it('disableBGPExport keeps a pool’s blocks from the peers', async () => {
    const store = lab!.store!;
    const [p] = await store.list('IPPool');
    const setExport = (disable: boolean) =>
      store.apply({
        apiVersion: API,
        kind: 'IPPool',
        metadata: { name: p!.metadata.name },
        spec: { ...p!.spec, disableBGPExport: disable },
      });
    await setExport(true);
    await until('no block learned on either node', async () =>
      (await Promise.all([hasPeerBlock(0), hasPeerBlock(1)])).every((x) => !x),
    );
    // Still originated locally: BIRD holds the own block, it is just not sent.
    expect(
      await birdc(lab!, lab!.nodes[0]!, 'show', 'route', 'protocol', 'tortie_blocks'),
    ).toContain(blocks[0]);
    await setExport(false);
    await until('both blocks learned again', async () =>
      (await Promise.all([hasPeerBlock(0), hasPeerBlock(1)])).every(Boolean),
    );
  }, 120_000);

  it('a BGPFilter rejecting the peer’s prefixes keeps them out of the kernel', async () => {
    const l = lab!;
    const store = l.store!;
    const peer = (filters: string[]) => ({
      apiVersion: API,
      kind: 'BGPPeer',
      metadata: { name: 'each-other' },
      spec: { nodeSelector: 'all()', peerSelector: 'all()', filters },
    });
    await store.apply([
      {
        apiVersion: API,
        kind: 'BGPConfiguration',
        metadata: { name: 'default' },
        spec: { nodeToNodeMeshEnabled: false },
      },
      {
        apiVersion: API,
        kind: 'BGPFilter',
        metadata: { name: 'no-pod-blocks' },
        spec: { importV4: [{ action: 'Reject', matchOperator: 'In', cidr: pool }] },
      },
      peer([]),
    ]);
    const session = `Node_${l.nodes[1]!.underlayIp.replace(/\./g, '_')}`;
    await until(
      'the BGPPeer session Established and the block learned over it',
      async () => /Established/.test(await protocol(l, 0, session)) && (await hasPeerBlock(0)),
    );
    const before = await protocol(l, 0, session);
    await store.apply(peer(['no-pod-blocks']));
    await until('the peer block gone from both kernels', async () =>
      (await Promise.all([hasPeerBlock(0), hasPeerBlock(1)])).every((x) => !x),
    );
    // Filtered, not disconnected: the session stayed up (BIRD refreshed the routes; the
    // protocol's "since" did not move).
    expect(await protocol(l, 0, session)).toBe(before);
    await store.apply(peer([]));
    await until('the peer block back', async () =>
      (await Promise.all([hasPeerBlock(0), hasPeerBlock(1)])).every(Boolean),
    );
    await store.delete({ kind: 'BGPPeer', name: 'each-other' });
  }, 120_000);

  it('passwords from secretKeyRef: a mismatch keeps the session down, the match brings it up', async () => {
    const l = lab!;
    const store = l.store!;
    const dir = labBgpSecretsDir(l.bgpRunDir);
    const writeSecret = (name: string, text: string) => {
      mkdirSync(join(dir, name), { recursive: true, mode: 0o700 });
      writeFileSync(join(dir, name, 'password'), text, { mode: 0o600 });
    };
    // One BGPPeer per node, each with its own secret.
    const peerOf = (i: number) => ({
      apiVersion: API,
      kind: 'BGPPeer',
      metadata: { name: `to-n${1 - i}` },
      spec: {
        node: l.nodes[i]!.name,
        peerIP: l.nodes[1 - i]!.underlayIp,
        asNumber: 64512,
        password: { secretKeyRef: { name: `bgp-n${i}`, key: 'password' } },
      },
    });
    writeSecret('bgp-n0', 'one-password\n');
    await store.apply([
      {
        apiVersion: API,
        kind: 'BGPConfiguration',
        metadata: { name: 'default' },
        spec: { nodeToNodeMeshEnabled: false },
      },
      peerOf(0),
      peerOf(1),
    ]);
    const session = (i: number) => `Node_${l.nodes[1 - i]!.underlayIp.replace(/\./g, '_')}`;
    // n1's secret does not exist: its session is left out, the reason in its status.
    await until('n1 reports the missing secret', async () =>
      (l.nodes[1]!.agent!.status().bgp?.problems ?? []).some((p) =>
        p.includes(
          `password secret bgp-n1 key password: ${join(dir, 'bgp-n1', 'password')} does not exist`,
        ),
      ),
    ).catch((e: Error) => {
      throw new Error(`${e.message}: ${JSON.stringify(l.nodes[1]!.agent!.status().bgp)}`);
    });
    expect(await protocol(l, 1, session(1))).toBe('');
    expect(await nodeStatus(l, l.nodes[1]!.name)).toContain(
      `  not applied: BGPPeer to-n0: password secret bgp-n1 key password: ${join(dir, 'bgp-n1', 'password')} does not exist: session ${session(1)} not started`,
    );
    // A different password on n1: both sessions configured, the kernel refuses the segments.
    const before = await md5Failures(l.nodes[0]!.netns);
    writeSecret('bgp-n1', 'another-password\n');
    await until(
      'n1 configured its session with its password',
      async () => (await protocol(l, 1, session(1))) !== '',
    );
    await until(
      'TCP MD5 failures counted on n0',
      async () => (await md5Failures(l.nodes[0]!.netns)) > before,
    );
    expect(await protocol(l, 0, session(0))).not.toMatch(/Established/);
    expect(await protocol(l, 1, session(1))).not.toMatch(/Established/);
    // The matching password: the session comes up, the blocks are learned over it.
    writeSecret('bgp-n1', 'one-password\n');
    await until('the password session Established on both nodes', async () =>
      (await Promise.all([0, 1].map((i) => protocol(l, i, session(i))))).every((s) =>
        /Established/.test(s),
      ),
    );
    await until('both blocks learned over it', async () =>
      (await Promise.all([hasPeerBlock(0), hasPeerBlock(1)])).every(Boolean),
    );
    expect(l.nodes[1]!.agent!.status().bgp?.problems).toEqual([]);
  }, 120_000);
});
