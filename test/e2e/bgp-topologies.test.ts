/**
 * BGP topologies beyond the node mesh, end to end (issue 5), with real BIRD 2 per node and
 * a real FRR as the external router; everything inside the lab's namespaces.
 *
 * Route reflectors: 6 nodes, configured through the store as a Calico user would — the
 * default BGPConfiguration with `nodeToNodeMeshEnabled: false`, a BGPPeer
 * `{ nodeSelector: all(), peerSelector: route-reflector == 'true' }`, nodes 0 and 1
 * labelled `route-reflector=true` with `routeReflectorClusterID`. Every node learns every
 * other block with the owning node as next hop (kernel and route map), the clients have
 * exactly two sessions (to the reflectors), pods reach each other, `tortie node status`
 * shows the reflector role. Convergence time printed.
 *
 * ToR: 3 nodes with `tor: true` (FRR zebra + bgpd in `tortie-<id>-tor`, AS 64999, a
 * global BGPPeer to it), ipipMode Never: the ToR learns every pod block with the owning
 * node as next hop and reaches a pod on each node (ping and TCP) from its namespace.
 *
 * Needs root, /usr/sbin/bird, FRR (/usr/lib/frr/{zebra,bgpd}, vtysh) and `npm run build`
 * (node status runs the CLI).
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { birdPaths } from '../../src/bgp/bird.js';
import { birdc, blockOf, kernelRoutes, until } from '../helpers/bgp.js';
import { newLabId } from '../helpers/netns.js';
import {
  ClusterLab,
  destroyClusterLab,
  type ClusterNode,
  type ClusterPod,
} from '../../src/lab/cluster/cluster-lab.js';
import { clusterNames } from '../../src/lab/cluster/names.js';

const exec = promisify(execFile);
const MAIN = join(process.cwd(), 'dist', 'bin', 'tortie.js');
const CLUSTER_ID = '224.0.0.1';

function esc(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/** The BGP protocols of `birdc show protocols`: name → info column. */
async function bgpProtocols(lab: ClusterLab, node: ClusterNode): Promise<Map<string, string>> {
  const out = await birdc(lab, node, 'show', 'protocols');
  const m = new Map<string, string>();
  for (const line of out.split('\n')) {
    const x = /^(\S+)\s+BGP\s+\S+\s+(\S+)\s+\S+\s+\S+\s*(.*)$/.exec(line);
    if (x !== null) m.set(x[1]!, `${x[2]} ${x[3]!.trim()}`);
  }
  return m;
}

function processesOf(id: string): string[] {
  const out: string[] = [];
  for (const d of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8');
      if (cmd.includes(`/bird-${id}-n`) || cmd.includes(`/tortie-${id}-tor-`))
        out.push(`pid ${d} ${cmd.split('\0')[0]}`);
    } catch {
      // gone
    }
  }
  return out;
}

async function cleanUp(lab: ClusterLab | undefined, id: string): Promise<void> {
  await lab?.down().catch(() => undefined);
  await destroyClusterLab(id);
  const left = [
    ...readdirSync('/run/netns').filter((n) => n.startsWith(`tortie-${id}-`)),
    ...readdirSync('/sys/fs/bpf').filter((n) => n.startsWith(`tortie-${id}-`)),
    ...readdirSync(tmpdir()).filter((n) => n.includes(`-${id}-`)),
    ...processesOf(id),
  ];
  if (left.length > 0) throw new Error(`left behind: ${left.join(', ')}`);
}

async function nodeStatus(lab: ClusterLab, id: string, node: ClusterNode): Promise<string> {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('TORTIE_')),
  );
  const r = await exec(
    process.execPath,
    [
      MAIN,
      '--etcd-endpoints',
      lab.etcd!.endpoints.join(','),
      '--etcd-prefix',
      clusterNames(id).etcdPrefix,
      'node',
      'status',
      '--node',
      node.name,
    ],
    { env },
  ).catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? '' }));
  return r.stdout;
}

describe('route reflectors: 6 nodes, 2 reflectors, no mesh', () => {
  const id = newLabId('rr');
  let lab: ClusterLab | undefined;
  const pods: ClusterPod[] = [];
  let t0 = 0;
  let upMs = 0;
  let appliedAt = 0;
  let podsAt = 0;

  beforeAll(async () => {
    t0 = Date.now();
    lab = await ClusterLab.up({ id, nodes: 6, encap: 'none', routing: 'bgp' });
    upMs = Date.now() - t0;
    const store = lab.store!;
    // The topology, as a Calico user writes it.
    const rrNodes = await Promise.all(
      [0, 1].map(async (i) => {
        // The agents register their Nodes in the background: wait for that write first
        // (it merges into what is stored; ours would be overwritten if it came later).
        let n = await store.get('Node', lab!.nodes[i]!.name);
        await until(`Node ${lab!.nodes[i]!.name} registered`, async () => {
          n = await store.get('Node', lab!.nodes[i]!.name);
          return n?.spec.bgp?.ipv4Address !== undefined;
        });
        n = n!;
        return {
          apiVersion: 'tortie.io/v1',
          kind: 'Node',
          metadata: {
            name: n.metadata.name,
            labels: { ...(n.metadata.labels ?? {}), 'route-reflector': 'true' },
          },
          spec: { ...n.spec, bgp: { ...n.spec.bgp!, routeReflectorClusterID: CLUSTER_ID } },
        };
      }),
    );
    await store.apply([
      {
        apiVersion: 'tortie.io/v1',
        kind: 'BGPConfiguration',
        metadata: { name: 'default' },
        spec: { nodeToNodeMeshEnabled: false },
      },
      {
        apiVersion: 'tortie.io/v1',
        kind: 'BGPPeer',
        metadata: { name: 'peer-with-route-reflectors' },
        spec: { nodeSelector: 'all()', peerSelector: "route-reflector == 'true'" },
      },
      ...rrNodes,
    ]);
    appliedAt = Date.now();
    await lab.createNamespace('x');
    for (let i = 0; i < 6; i++)
      pods.push(await lab.addPod({ namespace: 'x', name: `p${i}`, labels: { app: 'p' }, node: i }));
    podsAt = Date.now();
  }, 300_000);

  afterAll(() => cleanUp(lab, id), 60_000);

  it('every node learns every other block, next hop the owning node', async () => {
    const l = lab!;
    const blocks = pods.map((p) => blockOf(p.ip));
    const want = (i: number) =>
      blocks
        .map((b, j) => (j === i ? undefined : `${b} via ${l.nodes[j]!.underlayIp}`))
        .filter((x): x is string => x !== undefined)
        .sort();
    let last: string[][] = [];
    await until(
      'every node has every other block via its owner',
      async () => {
        last = await Promise.all(l.nodes.map((n) => kernelRoutes(n.netns, 'bird')));
        return last.every((r, i) => JSON.stringify([...r].sort()) === JSON.stringify(want(i)));
      },
      120_000,
    ).catch((e: Error) => {
      throw new Error(`${e.message}\n${JSON.stringify(last, null, 1)}`);
    });
    const done = Date.now();
    console.log(
      `[bgp-rr] 6 nodes, 2 reflectors: lab up ${upMs} ms; every node has every block ` +
        `${done - t0} ms after the start of up, ${done - appliedAt} ms after the reflector ` +
        `topology was stored (6 pods added meanwhile, one per node), ${done - podsAt} ms after ` +
        `the last pod's CNI ADD returned`,
    );
    // The route map: the owning node as next hop, plain (ipipMode Never).
    for (const [i, n] of l.nodes.entries()) {
      await until(`route map of ${n.name}`, async () => {
        const routes = n.agent!.status().routes;
        return blocks.every(
          (b, j) =>
            j === i ||
            routes.some(
              (r) => r.cidr === b && r.nextHop === l.nodes[j]!.underlayIp && r.ipip === false,
            ),
        );
      });
    }
    // A client learned a client's block from the reflectors (reflected: cluster list,
    // originator id), next hop unchanged.
    const n2 = l.nodes[2]!;
    const n3 = l.nodes[3]!;
    const shown = await birdc(l, n2, 'show', 'route', blocks[3]!, 'all');
    expect(shown).toMatch(
      new RegExp(`unicast \\[Node_192_168_231_[12] [^\\n]*\\n\\s+via ${esc(n3.underlayIp)} on ul`),
    );
    expect(shown).toContain(`BGP.cluster_list: ${CLUSTER_ID}`);
    expect(shown).toContain(`BGP.originator_id: ${n3.underlayIp}`);
    console.log(`[bgp-rr] ${n2.name}: birdc show route ${blocks[3]} all\n${shown.trim()}`);
    // A reflector prefers the client's own route; the copy the other reflector of the
    // same cluster reflects (BIRD drops cluster-list loops only on `rr client` sessions)
    // carries the cluster id, so it is never reflected again.
    const atRr = await birdc(l, l.nodes[0]!, 'show', 'route', blocks[3]!, 'all');
    console.log(`[bgp-rr] ${l.nodes[0]!.name}: birdc show route ${blocks[3]} all\n${atRr.trim()}`);
    expect(atRr).toMatch(
      new RegExp(`unicast \\[Node_${n3.underlayIp.replace(/\./g, '_')} [^\\]]*\\] \\*`),
    );
    for (const path of atRr.split(/(?=unicast \[)/).slice(1)) {
      expect(path).toContain(`via ${n3.underlayIp} on ul`);
      if (!path.startsWith(`unicast [Node_${n3.underlayIp.replace(/\./g, '_')} `))
        expect(path).toContain(`BGP.cluster_list: ${CLUSTER_ID}`);
    }
  }, 300_000);

  it('clients have exactly two sessions, to the reflectors; reflectors one to every node', async () => {
    const l = lab!;
    const rr = [l.nodes[0]!.underlayIp, l.nodes[1]!.underlayIp];
    const name = (ip: string) => `Node_${ip.replace(/\./g, '_')}`;
    let seen: Map<string, string>[] = [];
    await until('sessions Established', async () => {
      seen = await Promise.all(l.nodes.map((n) => bgpProtocols(l, n)));
      return seen.every((m) => [...m.values()].every((v) => v.startsWith('up Established')));
    }).catch(() => undefined);
    const counts: string[] = [];
    for (const [i, n] of l.nodes.entries()) {
      const m = seen[i]!;
      counts.push(`${n.name}: ${m.size}`);
      const want =
        i < 2
          ? l.nodes.filter((_, j) => j !== i).map((x) => name(x.underlayIp))
          : rr.map((ip) => name(ip));
      expect([...m.keys()].sort()).toEqual(want.sort());
      for (const v of m.values()) expect(v).toMatch(/^up Established/);
    }
    console.log(`[bgp-rr] BGP sessions per node (all Established): ${counts.join(', ')}`);
  }, 300_000);

  it('one reflector frozen: its sessions expire, the clients keep every route via the other', async () => {
    const l = lab!;
    const [n0] = l.nodes as [ClusterNode];
    const blocks = pods.map((p) => blockOf(p.ip));
    const pid = Number(readFileSync(birdPaths(l.bgpRunDir, n0.name).pid, 'utf8').trim());
    const rr0 = `Node_${n0.underlayIp.replace(/\./g, '_')}`;
    process.kill(pid, 'SIGSTOP');
    try {
      // The hold timer (6 s) ends the clients' sessions to it.
      const ms = await until(
        'clients lose their session to the frozen reflector',
        async () =>
          (await Promise.all(l.nodes.slice(1).map((n) => bgpProtocols(l, n)))).every(
            (m) => !(m.get(rr0) ?? '').startsWith('up'),
          ),
        60_000,
      );
      // n0's own block leaves with its last session (n1's may expire a little later).
      await until(`${n0.name}'s block withdrawn`, async () =>
        (await Promise.all(l.nodes.slice(1).map((n) => kernelRoutes(n.netns, 'bird')))).every(
          (r) => !r.some((x) => x.startsWith(`${blocks[0]} `)),
        ),
      );
      // Every client still routes every other client's block (and n1's) via its owner;
      // n0's own block is gone with its BIRD, as it should.
      for (const [i, n] of l.nodes.entries()) {
        if (i < 2) continue;
        const routes = await kernelRoutes(n.netns, 'bird');
        for (const [j, b] of blocks.entries()) {
          if (j === 0) expect(routes.filter((r) => r.startsWith(`${b} `))).toEqual([]);
          else if (j !== i) expect(routes).toContain(`${b} via ${l.nodes[j]!.underlayIp}`);
        }
      }
      console.log(
        `[bgp-rr] reflector ${n0.name} frozen: all sessions to it down after ${ms} ms; ` +
          `every client kept the other 4 blocks via ${l.nodes[1]!.name}, ${n0.name}'s own withdrawn`,
      );
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    await until('sessions back', async () =>
      (await Promise.all(l.nodes.map((n) => bgpProtocols(l, n)))).every((m) =>
        [...m.values()].every((v) => v.startsWith('up Established')),
      ),
    );
  }, 300_000);

  it('pods on client nodes reach each other (and every other pod)', async () => {
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
    expect(Object.keys(m)).toHaveLength(30);
    expect(Object.entries(m).filter(([, v]) => !v)).toEqual([]);
    expect(m['x/p2 -> x/p5']).toBe(true);
    expect(m['x/p4 -> x/p3']).toBe(true);
  }, 300_000);

  it('tortie node status shows the sessions with their reflector role', async () => {
    const l = lab!;
    let client = '';
    await until(
      'node status of a client: 2 sessions to reflectors',
      async () => {
        client = await nodeStatus(l, id, l.nodes[4]!);
        return (
          (
            client.match(/\| node specific \| up\s+\|.*\| Established \(route reflector\)\s+\|/g) ??
            []
          ).length === 2
        );
      },
      60_000,
    );
    const reflector = await nodeStatus(l, id, l.nodes[0]!);
    console.log(
      `[bgp-rr] tortie node status --node ${l.nodes[4]!.name} (client):\n${client}\n` +
        `[bgp-rr] tortie node status --node ${l.nodes[0]!.name} (reflector):\n${reflector}`,
    );
    expect(client).toContain(`| ${l.nodes[0]!.underlayIp} | node specific | up`);
    expect(client).not.toContain('node-to-node mesh');
    expect(
      (reflector.match(/\| node specific \| up\s+\|.*\(route reflector client\)/g) ?? []).length,
    ).toBe(4);
    expect(reflector).toMatch(/\| node specific \| up\s+\|.*\(route reflector, same cluster\)/);
  }, 300_000);
});

describe('an external router (FRR ToR): 3 nodes, ipipMode Never', () => {
  const id = newLabId('rr');
  let lab: ClusterLab | undefined;
  const pods: ClusterPod[] = [];

  beforeAll(async () => {
    lab = await ClusterLab.up({ id, nodes: 3, encap: 'none', routing: 'bgp', tor: true });
    await lab.createNamespace('x');
    for (let i = 0; i < 3; i++)
      pods.push(await lab.addPod({ namespace: 'x', name: `p${i}`, labels: { app: 'p' }, node: i }));
  }, 300_000);

  afterAll(() => cleanUp(lab, id), 60_000);

  it('the ToR learns every pod block with the owning node as next hop', async () => {
    const l = lab!;
    const tor = l.tor!;
    expect(tor.ip).toBe('192.168.231.250');
    expect(existsSync(tor.netns)).toBe(true);
    const want = pods.map((p, i) => `${blockOf(p.ip)} via ${l.nodes[i]!.underlayIp}`).sort();
    let got: string[] = [];
    const ms = await until(
      'ToR kernel has every block',
      async () => {
        got = (await kernelRoutes(tor.netns, 'bgp')).sort();
        return want.every((w) => got.includes(w));
      },
      90_000,
    ).catch((e: Error) => {
      throw new Error(`${e.message}: ToR kernel has ${JSON.stringify(got)}`);
    });
    // Nothing else (only pool prefixes are exported).
    expect(got).toEqual(want);
    // Every node has its session to the ToR.
    for (const n of l.nodes)
      expect((await bgpProtocols(l, n)).get('Global_192_168_231_250')).toMatch(/^up Established/);
    const { stdout: rib } = await exec('vtysh', [
      '--vty_socket',
      tor.dir,
      '-c',
      'show bgp ipv4 unicast',
      '-c',
      'show bgp summary',
    ]);
    const { stdout: kernel } = await exec('ip', ['-n', tor.netnsName, 'route']);
    console.log(
      `[bgp-tor] the ToR had every block ${ms} ms after the pods were up; FRR:\n${rib}\n` +
        `[bgp-tor] ip -n ${tor.netnsName} route:\n${kernel}`,
    );
    for (const w of want) expect(rib).toContain(w.split(' ')[0]!);
  }, 300_000);

  it('from the ToR namespace, a pod on each node answers ping and TCP', async () => {
    const l = lab!;
    const tor = l.tor!;
    const lines: string[] = [];
    // Each check waits long enough for a loaded machine (an answer ends it at once).
    for (const p of pods) {
      const t = Date.now();
      const ping = await exec('ip', [
        'netns',
        'exec',
        tor.netnsName,
        'ping',
        '-c',
        '1',
        '-W',
        '10',
        p.ip,
      ]).then(
        (r) => /1 received/.test(r.stdout),
        () => false,
      );
      const tcp = await exec('nsenter', [
        `--net=${tor.netns}`,
        '--',
        process.execPath,
        '-e',
        `const s=require('net').connect({host:${JSON.stringify(p.ip)},port:80,timeout:10000});` +
          `s.on('connect',()=>{s.destroy();process.exit(0)});` +
          `s.on('timeout',()=>process.exit(2));s.on('error',()=>process.exit(1));`,
      ]).then(
        () => true,
        () => false,
      );
      lines.push(
        `${p.key} ${p.ip} on ${p.node}: ping ${ping}, tcp:80 ${tcp} (${Date.now() - t} ms)`,
      );
      expect([p.key, ping, tcp]).toEqual([p.key, true, true]);
    }
    console.log(`[bgp-tor] from ${tor.netnsName} (${tor.ip}):\n  ${lines.join('\n  ')}`);
  }, 300_000);
});
