/**
 * BGP routing end to end with real BIRD 2 (issue 5): every lab node runs BIRD in its node
 * namespace, configured by its agent from the store (`routing: 'bgp'`), a full node mesh
 * over the lab's underlay (192.168.231.x on `ul`, never off the machine).
 *
 * 3 nodes, ipipMode Never: each node learns the others' blocks (`ip route … proto bird`
 * and BIRD's `show route`), pods on all nodes reach each other, `tortie node status` shows
 * two mesh sessions Established; a restarted agent adopts its BIRD; BIRD killed (SIGKILL)
 * or frozen (SIGSTOP: only the hold timer notices) has its block withdrawn by the others,
 * and back when it runs again; a deleted Node's routes are withdrawn everywhere.
 * 2 nodes, ipipMode Always: pod traffic crosses the underlay as IPIP, i.e. the route map
 * was filled from the learned routes. Figures are printed.
 *
 * Needs root, /usr/sbin/bird, and `npm run build` first (the agents are `tortie node run`).
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ClusterLab,
  destroyClusterLab,
  type ClusterNode,
} from '../../src/lab/cluster/cluster-lab.js';
import { clusterNames } from '../../src/lab/cluster/names.js';
import { birdPaths } from '../../src/bgp/bird.js';
import { birdc, blockOf, kernelRoutes, until } from '../helpers/bgp.js';
import { capture } from '../helpers/capture.js';
import { newLabId } from '../helpers/netns.js';

const exec = promisify(execFile);
const HOLD = 6;
const MAIN = join(process.cwd(), 'dist', 'bin', 'tortie.js');

function paths(lab: ClusterLab, node: ClusterNode) {
  return birdPaths(lab.bgpRunDir, node.name);
}

function birdPid(lab: ClusterLab, node: ClusterNode): number | undefined {
  try {
    const pid = Number(readFileSync(paths(lab, node).pid, 'utf8').trim());
    return existsSync(`/proc/${pid}`) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * BIRD's line for `node`'s mesh session to `peer` (`show protocols`): its state and, after
 * a failure, why it went down ("Socket: …" when the TCP session closed, "Error: Hold
 * timer expired" when the peer fell silent).
 */
async function meshSession(lab: ClusterLab, node: ClusterNode, peer: ClusterNode): Promise<string> {
  const name = `Mesh_${peer.underlayIp.replace(/\./g, '_')}`;
  const line = (await birdc(lab, node, 'show', 'protocols', name))
    .split('\n')
    .find((l) => l.startsWith(name));
  if (line === undefined) throw new Error(`${node.name}: BIRD shows no protocol ${name}`);
  return line;
}

function birdProcesses(id: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8');
      if (cmd.includes(`/bird-${id}-n`)) out.push(Number(d));
    } catch {
      // gone
    }
  }
  return out;
}

async function cleanUp(lab: ClusterLab | undefined, id: string): Promise<void> {
  // A frozen BIRD must not outlive the test (SIGKILL works on stopped processes too).
  await lab?.down().catch(() => undefined);
  await destroyClusterLab(id);
  const left = [
    ...readdirSync('/run/netns').filter((n) => n.startsWith(`tortie-${id}-`)),
    ...readdirSync('/sys/fs/bpf').filter((n) => n.startsWith(`tortie-${id}-`)),
    ...readdirSync(tmpdir()).filter((n) => n.includes(`-${id}-`)),
    ...birdProcesses(id).map((p) => `bird pid ${p}`),
  ];
  if (left.length > 0) throw new Error(`left behind: ${left.join(', ')}`);
}

describe('BGP node mesh with BIRD: 3 nodes, ipipMode Never', () => {
  const id = newLabId('bg');
  let lab: ClusterLab | undefined;
  const blocks: string[] = [];
  let upMs = 0;

  beforeAll(async () => {
    const t0 = Date.now();
    lab = await ClusterLab.up({
      id,
      nodes: 3,
      encap: 'none',
      routing: 'bgp',
      agents: 'process',
      bgpHoldTimeSeconds: HOLD,
    });
    upMs = Date.now() - t0;
    await lab.createNamespace('x');
  }, 300_000);

  afterAll(() => cleanUp(lab, id), 60_000);

  it('every node peers with every other and learns every other block', async () => {
    const l = lab!;
    const t0 = Date.now();
    await until('6 mesh sessions Established', async () => {
      const outs = await Promise.all(l.nodes.map((n) => birdc(l, n, 'show', 'protocols')));
      return outs.every((o) => (o.match(/^Mesh_\S+\s+BGP\s+.*Established/gm) ?? []).length === 2);
    });
    const established = Date.now() - t0 + upMs;
    // A pod per node: its node claims a block, advertises it; the others install it.
    const perBlock: string[] = [];
    for (let i = 0; i < 3; i++) {
      const t1 = Date.now();
      const pod = await l.addPod({ namespace: 'x', name: `p${i}`, labels: { app: 'p' }, node: i });
      const added = Date.now() - t1;
      const block = blockOf(pod.ip);
      blocks.push(block);
      const more = await until(`block ${block} of node ${i} in the other kernels`, async () => {
        const routes = await Promise.all(
          l.nodes.filter((_, j) => j !== i).map((n) => kernelRoutes(n.netns, 'bird')),
        );
        return routes.every((r) => r.includes(`${block} via ${l.nodes[i]!.underlayIp}`));
      });
      perBlock.push(`${added + more} ms (ADD took ${added} ms)`);
    }
    console.log(
      `[bgp] 3-node mesh: lab up ${upMs} ms, 6 sessions Established ${established} ms after the ` +
        `start; a new block, from CNI ADD called to in both other kernels: ${perBlock.join('; ')}`,
    );
    for (const [i, n] of l.nodes.entries()) {
      const routes = await kernelRoutes(n.netns, 'bird');
      // Only the other nodes' blocks (its own is a local blackhole in BIRD, not in the kernel).
      expect(routes.sort()).toEqual(
        blocks
          .map((b, j) => (j === i ? undefined : `${b} via ${l.nodes[j]!.underlayIp}`))
          .filter((x): x is string => x !== undefined)
          .sort(),
      );
      const shown = await birdc(l, n, 'show', 'route');
      for (const [j, b] of blocks.entries()) {
        const re = b.replace(/\./g, '\\.');
        if (j === i) expect(shown).toMatch(new RegExp(`${re}\\s+blackhole`));
        else
          expect(shown).toMatch(
            new RegExp(
              `${re}\\s+unicast \\[Mesh_[0-9_]+ [^\\n]*\\n\\s+via ${l.nodes[j]!.underlayIp.replace(/\./g, '\\.')} on ul`,
            ),
          );
      }
      // No tortie (proto 177) kernel routes under BGP routing.
      const { stdout } = await exec('nsenter', [
        `--net=${n.netns}`,
        '--',
        'ip',
        'route',
        'show',
        'proto',
        '177',
      ]);
      expect(stdout.trim()).toBe('');
    }
  }, 300_000);

  it('pods on all three nodes reach each other', async () => {
    const l = lab!;
    let m: Record<string, boolean> = {};
    await until(
      'full reachability',
      async () => {
        m = await l.matrix();
        return Object.values(m).every(Boolean);
      },
      60_000,
    ).catch(() => undefined);
    expect(Object.keys(m)).toHaveLength(6);
    expect(Object.entries(m).filter(([, v]) => !v)).toEqual([]);
  }, 300_000);

  it('tortie node status shows two mesh sessions Established', async () => {
    const l = lab!;
    const env = Object.fromEntries(
      Object.entries(process.env).filter(([k]) => !k.startsWith('TORTIE_')),
    );
    let out = '';
    await until(
      'node status with 2 Established sessions',
      async () => {
        const r = await exec(
          process.execPath,
          [
            MAIN,
            '--etcd-endpoints',
            l.etcd!.endpoints.join(','),
            '--etcd-prefix',
            clusterNames(id).etcdPrefix,
            'node',
            'status',
            '--node',
            l.nodes[0]!.name,
          ],
          { env },
        );
        out = r.stdout;
        return (
          (out.match(/\| node-to-node mesh \| up\s+\|.*\| Established\s+\|/g) ?? []).length === 2
        );
      },
      60_000,
    );
    console.log(`[bgp] tortie node status --node ${l.nodes[0]!.name}:\n${out}`);
    expect(out).toContain('| PEER ADDRESS  | PEER TYPE         | STATE |');
    expect(out).toContain(`| ${l.nodes[1]!.underlayIp} | node-to-node mesh | up`);
    expect(out).toContain(`| ${l.nodes[2]!.underlayIp} | node-to-node mesh | up`);
  }, 300_000);

  it('a restarted agent adopts its running BIRD (no second one, no session reset)', async () => {
    const l = lab!;
    const n0 = l.nodes[0]!;
    const pid = birdPid(l, n0);
    expect(pid).toBeDefined();
    const since = (await birdc(l, n0, 'show', 'protocols')).match(/^Mesh_.*$/gm);
    const from = n0.process!.logOffset();
    await n0.process!.restart('SIGTERM');
    expect(n0.process!.logSince(from)).toContain('a running BIRD is adopted');
    expect(birdPid(l, n0)).toBe(pid);
    expect(birdProcesses(id).length).toBe(3);
    // The reload after adoption (same text) is done, and touched no session.
    await until('the new agent reloaded the adopted BIRD', async () =>
      n0.process!.logSince(from).includes('"msg":"BIRD reconfigured'),
    );
    expect((await birdc(l, n0, 'show', 'protocols')).match(/^Mesh_.*$/gm)).toEqual(since);
  }, 300_000);

  it('a BGPPeer added and removed reloads BIRD with that session only: the mesh sessions do not flap', async () => {
    const l = lab!;
    const n0 = l.nodes[0]!;
    const mesh = async () => (await birdc(l, n0, 'show', 'protocols')).match(/^Mesh_.*$/gm);
    const before = await mesh();
    expect(before).toHaveLength(2);
    // A peer nobody answers at: its session stays down, what matters is the reload.
    const peerIP = `${n0.underlayIp.split('.').slice(0, 3).join('.')}.240`;
    const protocols = () => birdc(l, n0, 'show', 'protocols');
    await l.store!.apply([
      {
        apiVersion: 'tortie.io/v1',
        kind: 'BGPPeer',
        metadata: { name: 'rack-peer' },
        spec: { peerIP, asNumber: 65001 },
      },
    ]);
    const deadline = Date.now() + 60_000;
    while (!(await protocols()).includes(peerIP.replaceAll('.', '_')) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 100));
    expect(await protocols()).toContain(peerIP.replaceAll('.', '_'));
    expect(await mesh()).toEqual(before);
    await l.store!.delete({ kind: 'BGPPeer', name: 'rack-peer' });
    const gone = Date.now() + 60_000;
    while ((await protocols()).includes(peerIP.replaceAll('.', '_')) && Date.now() < gone)
      await new Promise((r) => setTimeout(r, 100));
    expect(await protocols()).not.toContain(peerIP.replaceAll('.', '_'));
    // Same sessions, same "since": a reload, not a restart.
    expect(await mesh()).toEqual(before);
  }, 300_000);

  it('BIRD killed (SIGKILL): the others withdraw its block; restarted: it returns', async () => {
    const l = lab!;
    const [n0, n1, n2] = l.nodes as [ClusterNode, ClusterNode, ClusterNode];
    const gone = async () =>
      (await Promise.all([n0, n1].map((n) => kernelRoutes(n.netns, 'bird')))).every(
        (r) => !r.some((x) => x.startsWith(blocks[2]!)),
      );
    const back = async () =>
      (await Promise.all([n0, n1].map((n) => kernelRoutes(n.netns, 'bird')))).every((r) =>
        r.includes(`${blocks[2]} via ${n2.underlayIp}`),
      );
    // Its agent would start it again at once: stop the agent first (BIRD runs on).
    await n2.process!.stop('SIGTERM');
    const pid = birdPid(l, n2)!;
    process.kill(pid, 'SIGKILL');
    const withdrawn = await until('block of n2 withdrawn', gone, (HOLD + 60) * 1000);
    // Withdrawn because the TCP sessions closed with BIRD, not because the hold timer ran
    // out: each peer's BIRD says why its session went down.
    for (const n of [n0, n1]) {
      const session = await meshSession(l, n, n2);
      expect(session, `${n.name}: ${session}`).toMatch(/Socket: /);
      expect(session, `${n.name}: ${session}`).not.toMatch(/Hold timer expired/);
    }
    const t0 = Date.now();
    await n2.process!.start('ready');
    await until('block of n2 back', back, 30_000);
    const returned = Date.now() - t0;
    expect(birdPid(l, n2)).not.toBe(pid);
    console.log(
      `[bgp] BIRD of ${n2.name} SIGKILLed: block withdrawn by the others after ${withdrawn} ms ` +
        `(its TCP sessions closed; hold time ${HOLD} s); agent restarted it, block back after ${returned} ms`,
    );
  }, 300_000);

  it('BIRD frozen (SIGSTOP): withdrawn when the hold timer expires; resumed: back', async () => {
    const l = lab!;
    const [n0, n1, n2] = l.nodes as [ClusterNode, ClusterNode, ClusterNode];
    const gone = async () =>
      (await Promise.all([n0, n1].map((n) => kernelRoutes(n.netns, 'bird')))).every(
        (r) => !r.some((x) => x.startsWith(blocks[2]!)),
      );
    const back = async () =>
      (await Promise.all([n0, n1].map((n) => kernelRoutes(n.netns, 'bird')))).every((r) =>
        r.includes(`${blocks[2]} via ${n2.underlayIp}`),
      );
    await until('block of n2 present', back, 30_000);
    const pid = birdPid(l, n2)!;
    process.kill(pid, 'SIGSTOP');
    let withdrawn = 0;
    try {
      withdrawn = await until('block of n2 withdrawn (hold timer)', gone, (HOLD + 60) * 1000);
      // Withdrawn because the hold timer ran out (the frozen BIRD's TCP sessions stay up):
      // each peer's BIRD says so.
      for (const n of [n0, n1]) {
        const session = await meshSession(l, n, n2);
        expect(session, `${n.name}: ${session}`).toMatch(/Hold timer expired/);
      }
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    const returned = await until('block of n2 back', back, 30_000);
    console.log(
      `[bgp] BIRD of ${n2.name} frozen: block withdrawn after ${withdrawn} ms (hold time ${HOLD} s, ` +
        `keepalive ${HOLD / 3} s); resumed: back after ${returned} ms`,
    );
  }, 300_000);

  it('a Node deleted from the store has its routes withdrawn everywhere', async () => {
    const l = lab!;
    const [n0, n1, n2] = l.nodes as [ClusterNode, ClusterNode, ClusterNode];
    await l.store!.delete({
      apiVersion: 'tortie.io/v1',
      kind: 'Node',
      metadata: { name: n2.name },
    });
    const ms = await until(
      'routes of the deleted node withdrawn',
      async () =>
        (await Promise.all([n0, n1].map((n) => kernelRoutes(n.netns, 'bird')))).every(
          (r) => !r.some((x) => x.endsWith(`via ${n2.underlayIp}`)),
        ),
      20_000,
    );
    console.log(`[bgp] Node ${n2.name} deleted: its routes withdrawn on the others after ${ms} ms`);
    expect(await birdc(l, n0, 'show', 'protocols')).not.toContain(
      `Mesh_${n2.underlayIp.replace(/\./g, '_')}`,
    );
  }, 300_000);
});

describe('BGP with ipipMode Always: 2 nodes', () => {
  const id = newLabId('bg');
  let lab: ClusterLab | undefined;
  const blocks: string[] = [];

  beforeAll(async () => {
    lab = await ClusterLab.up({
      id,
      nodes: 2,
      encap: 'ipip',
      routing: 'bgp',
      bgpHoldTimeSeconds: HOLD,
    });
    await lab.createNamespace('x');
    for (let i = 0; i < 2; i++) {
      const pod = await lab.addPod({
        namespace: 'x',
        name: `q${i}`,
        labels: { app: 'q' },
        node: i,
      });
      blocks.push(blockOf(pod.ip));
    }
  }, 300_000);

  afterAll(() => cleanUp(lab, id), 60_000);

  it('fills the route map from the learned routes: pod traffic crosses as IPIP', async () => {
    const l = lab!;
    const [n0, n1] = l.nodes as [ClusterNode, ClusterNode];
    await until('blocks learned', async () => {
      const [r0, r1] = await Promise.all([
        kernelRoutes(n0.netns, 'bird'),
        kernelRoutes(n1.netns, 'bird'),
      ]);
      return (
        r0.includes(`${blocks[1]} via ${n1.underlayIp}`) &&
        r1.includes(`${blocks[0]} via ${n0.underlayIp}`)
      );
    });
    // The agent turned the learned route into an encapsulating route-map entry.
    await until('route map entry', async () =>
      n0
        .agent!.status()
        .routes.some((r) => r.cidr === blocks[1] && r.ipip && r.nextHop === n1.underlayIp),
    );
    // The kernel route BIRD installed carries the IPIP MTU and the node's source address.
    const { stdout } = await exec('nsenter', [
      `--net=${n0.netns}`,
      '--',
      'ip',
      'route',
      'show',
      'proto',
      'bird',
    ]);
    expect(stdout).toContain(
      `${blocks[1]} via ${n1.underlayIp} dev ul src ${n0.underlayIp} metric 32 mtu 1480`,
    );
    const port = `t${id}p0`.slice(0, 15);
    const cap = await capture(`/run/netns/tortie-${id}-ul`, port, 'ip proto 4');
    const encapsulated = (x: string) =>
      x.startsWith(`IP ${n0.underlayIp} > ${n1.underlayIp}: IP ${l.pod('x/q0').ip}`);
    let ok = false;
    try {
      // Probes that wait long enough for a loaded machine: an answer ends each at once.
      ok = await l.probe('x/q0', 'x/q1', 80, 'tcp', 10_000);
      ok = (await l.probe('x/q1', 'x/q0', 80, 'tcp', 10_000)) && ok;
      if (ok) await cap.until('the IPIP packets', (lines) => lines.some(encapsulated));
    } finally {
      const lines = await cap.stop();
      console.log(
        `[bgp] ipip: ${lines.length} protocol-4 packets on ${port}, e.g. ${lines[0] ?? '(none)'}`,
      );
      expect(lines.length).toBeGreaterThan(0);
      expect(lines.some(encapsulated)).toBe(true);
    }
    expect(ok).toBe(true);
  }, 300_000);
});
