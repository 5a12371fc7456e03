/**
 * calicoctl reads tortie's IPAM: a real etcd of this test's own, tortie's IPAM writing
 * under "/calico" (where calicoctl's etcd datastore looks), and the real calicoctl of the
 * pinned Calico release (scripts/build-peers.sh; docs/peers.md):
 *
 *   - calicoctl writes the pool, the nodes and one WorkloadEndpoint per allocation;
 *   - tortie's IPAM assigns addresses for handles on three nodes (one borrowed);
 *   - `calicoctl ipam show` (and --show-blocks, --show-borrowed) counts what tortie counts,
 *     `ipam show --ip` finds each address with its attributes, `ipam check` names every
 *     handle and finds no problem;
 *   - `calicoctl ipam release --ip` frees an address: tortie sees it free (Calico's write
 *     of tortie's records reads back), its handle's count down, its own check clean.
 *
 * Needs etcd (etcd-server) and, for a cold cache, Go: a missing one fails the test, never
 * skips it.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { endpointName } from '../../src/cni/identity.js';
import { Ipam, type PoolSpec } from '../../src/ipam/index.js';
import { startEtcd, type EtcdCluster } from '../../src/lab/etcd.js';
import { newRunId } from '../helpers/netns.js';
import {
  calicoctlBinary,
  PEER_BUILD_TIMEOUT_MS,
  runCalicoctl,
  type CalicoctlRun,
} from '../helpers/peers.js';
import { requireCommand } from '../helpers/tools.js';

const run = newRunId();
const PREFIX = '/calico';
const POOL: PoolSpec = { name: 'pool-a', cidr: '10.244.0.0/24', blockSize: 29 };
/** Pods per node: alpha needs two blocks of 8. */
const PODS: Record<string, number> = { alpha: 10, bravo: 3, charlie: 2 };

let calicoctl = '';
let cluster: EtcdCluster | undefined;
let etcd: Etcd3 | undefined;
let ipam: Ipam | undefined;
let dir = '';

interface Pod {
  node: string;
  pod: string;
  handle: string;
  ip: string;
  block: string;
  borrowed: boolean;
}
const pods: Pod[] = [];

function calico(args: string[]): Promise<CalicoctlRun> {
  return runCalicoctl(calicoctl, cluster!, args);
}

async function calicoOk(args: string[]): Promise<string> {
  const r = await calico(args);
  expect(r.code, `calicoctl ${args.join(' ')}: ${r.stderr}${r.stdout}`).toBe(0);
  return r.stdout;
}

/** The rows of a tablewriter table (calicoctl's), cells trimmed, header row dropped. */
function tableRows(out: string): string[][] {
  return out
    .split('\n')
    .filter((l) => l.startsWith('|'))
    .map((l) =>
      l
        .split('|')
        .slice(1, -1)
        .map((c) => c.trim()),
    )
    .slice(1);
}

const inUse = (cell: string) => Number(cell.split(' ')[0]);

beforeAll(async () => {
  requireCommand('etcd');
  calicoctl = await calicoctlBinary();
  dir = await mkdtemp(join(tmpdir(), `tortie-calicoctl-ipam-${run}-`));
  cluster = await startEtcd(`ci${run}`, 1);
  etcd = new Etcd3({ hosts: cluster.endpoints });
  ipam = new Ipam(etcd, PREFIX);

  // Calico's side of the cluster, written by calicoctl: the pool and the nodes.
  const nodes = Object.keys(PODS).map(
    (name, i) => `apiVersion: projectcalico.org/v3
kind: Node
metadata:
  name: ${name}
spec:
  bgp:
    ipv4Address: 192.0.2.${i + 1}/24
`,
  );
  const pool = `apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: ${POOL.name}
spec:
  cidr: ${POOL.cidr}
  blockSize: ${POOL.blockSize}
`;
  await writeFile(join(dir, 'cluster.yaml'), [pool, ...nodes].join('---\n'));
  await calicoOk(['apply', '-f', join(dir, 'cluster.yaml')]);

  // tortie's IPAM assigns, with the attributes tortie's CNI plugin records.
  for (const [node, n] of Object.entries(PODS)) {
    for (let k = 0; k < n; k++) {
      const pod = `${node}-web-${k}`;
      const handle = `k8s-pod-network.${run}${node}${k}`;
      const a = await ipam.autoAssign({
        handle,
        node,
        pools: [POOL],
        attrs: { namespace: 'prod', pod, workload: pod },
      });
      pods.push({ node, pod, handle, ...a });
    }
  }
  // One borrowed address: charlie takes a free one of alpha's half-full block.
  const blocks = await ipam.blocks();
  const half = blocks.find((b) => b.affinity === 'alpha' && b.allocated < b.size)!;
  const base = half.cidr.split('/')[0]!.split('.').map(Number);
  const ip = `${base.slice(0, 3).join('.')}.${base[3]! + 7}`;
  const handle = `k8s-pod-network.${run}charlie-borrow`;
  await ipam.assignIp({
    handle,
    node: 'charlie',
    pools: [POOL],
    ip,
    attrs: { namespace: 'prod', pod: 'charlie-borrow' },
  });
  pods.push({
    node: 'charlie',
    pod: 'charlie-borrow',
    handle,
    ip,
    block: half.cidr,
    borrowed: true,
  });

  // One WorkloadEndpoint per pod, as Calico's CNI plugin names them: what ipam check
  // matches the allocations against.
  const weps = pods.map(
    (p, i) => `apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata:
  name: ${endpointName(p.node, 'k8s', 'prod', p.pod, 'eth0')}
  namespace: prod
spec:
  node: ${p.node}
  orchestrator: k8s
  pod: ${p.pod}
  endpoint: eth0
  interfaceName: cali${String(i).padStart(4, '0')}
  ipNetworks:
  - ${p.ip}/32
`,
  );
  await writeFile(join(dir, 'weps.yaml'), weps.join('---\n'));
  await calicoOk(['apply', '-f', join(dir, 'weps.yaml')]);
}, PEER_BUILD_TIMEOUT_MS);

afterAll(async () => {
  etcd?.close();
  await cluster?.stop();
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

describe("calicoctl ipam on tortie's IPAM records", () => {
  it('ipam show counts what tortie allocated, pool and blocks alike', async () => {
    const tortie = await ipam!.blocks();
    const allocated = tortie.reduce((n, b) => n + b.allocated, 0);
    expect(allocated).toBe(pods.length);

    const pool = tableRows(await calicoOk(['ipam', 'show']));
    expect(pool.map((r) => [r[0], r[1], r[2]])).toEqual([['IP Pool', POOL.cidr, '256']]);
    expect(inUse(pool[0]![3]!)).toBe(allocated);

    const rows = tableRows(await calicoOk(['ipam', 'show', '--show-blocks']));
    const blocks = rows
      .filter((r) => r[0] === 'Block')
      .map((r) => ({ cidr: r[1], size: Number(r[2]), allocated: inUse(r[3]!) }))
      .sort((a, b) => a.cidr!.localeCompare(b.cidr!));
    expect(blocks).toEqual(
      tortie
        .map((b) => ({ cidr: b.cidr, size: b.size, allocated: b.allocated }))
        .sort((a, b) => a.cidr.localeCompare(b.cidr)),
    );
    console.log(
      `calicoctl ipam show: ${inUse(pool[0]![3]!)} in use in ${blocks.length} blocks; tortie: ${allocated} allocations in ${tortie.length} blocks`,
    );
  });

  it('ipam show --ip finds each address with its attributes; --show-borrowed the borrowed one', async () => {
    for (const p of pods) {
      const out = await calicoOk(['ipam', 'show', `--ip=${p.ip}`]);
      expect(out).toContain(`IP ${p.ip} is in use`);
      expect(out).toContain(`  pod: ${p.pod}`);
      expect(out).toContain(`  node: ${p.node}`);
      expect(out).toContain('  namespace: prod');
      expect(out).toMatch(/ {2}timestamp: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? \+0000 UTC/);
    }
    expect(await calicoOk(['ipam', 'show', '--ip=10.244.0.250'])).toContain(
      '10.244.0.250 is not assigned',
    );
    const borrowed = tableRows(await calicoOk(['ipam', 'show', '--show-borrowed']));
    const b = pods.find((p) => p.borrowed)!;
    expect(borrowed).toEqual([[b.ip, 'charlie', b.block, 'alpha', 'pod', `prod/${b.pod}`]]);
  });

  it('ipam check names every handle and finds no problem', async () => {
    const report = join(dir, 'report.json');
    const out = await calicoOk(['ipam', 'check', '--show-all-ips', '-o', report]);
    expect(out).toContain(`IPAM blocks record ${pods.length} allocations.`);
    expect(out).toContain(`Found ${pods.length} workload IPs.`);
    expect(out).toContain('Found 0 IPs that are allocated in IPAM but not actually in use.');
    expect(out).toContain(
      `Found 0 handles with no matching IPs (and ${pods.length} handles with matches).`,
    );
    expect(out).toContain('Found 0 handles mentioned in blocks with no matching handle resource.');
    expect(out).toContain('Check complete; found 0 problems.');
    for (const p of pods) expect(out).toContain(`  ${p.ip} allocated; attrs Main:${p.handle} `);
    const r = JSON.parse(await readFile(report, 'utf8')) as {
      allocations: Record<
        string,
        { handle: string; node: string; inUse: boolean; borrowed?: boolean }[]
      >;
    };
    for (const p of pods)
      expect(r.allocations[p.ip]).toEqual([
        expect.objectContaining({
          handle: p.handle,
          node: p.node,
          inUse: true,
          ...(p.borrowed ? { borrowed: true } : {}),
        }),
      ]);
  });

  it('an address calicoctl releases is free to tortie, its handle counted down, the records consistent', async () => {
    const p = pods.find((x) => x.node === 'bravo')!;
    const out = await calicoOk(['ipam', 'release', `--ip=${p.ip}`]);
    expect(out).toContain('Successfully released IP address');
    expect(await ipam!.addressesOf(p.handle)).toEqual([]);
    const blocks = await ipam!.blocks();
    expect(blocks.reduce((n, b) => n + b.allocated, 0)).toBe(pods.length - 1);
    const live = new Set(pods.filter((x) => x !== p).map((x) => x.handle));
    const report = await ipam!.check({
      handles: live,
      nodes: new Set(Object.keys(PODS)),
      graceMs: 0,
    });
    expect(report.inconsistencies).toEqual([]);
    expect(report.leaks).toEqual([]);
    expect(report.ok).toBe(true);
    // tortie hands the address out again, to the node whose block it is.
    const again = await ipam!.assignIp({
      handle: p.handle,
      node: 'bravo',
      pools: [POOL],
      ip: p.ip,
    });
    expect(again).toBeUndefined();
    expect(await ipam!.addressesOf(p.handle)).toEqual([p.ip]);
    expect(await calicoOk(['ipam', 'show', `--ip=${p.ip}`])).toContain(`IP ${p.ip} is in use`);
  });

  it("calicoctl ipam configure --strictaffinity=true: tortie's IPAM no longer lends alpha's addresses", async () => {
    const alpha = (await ipam!.blocks()).find((b) => b.affinity === 'alpha' && b.free > 0)!;
    const base = alpha.cidr.split('/')[0]!.split('.').map(Number);
    const ip = `${base.slice(0, 3).join('.')}.${base[3]! + 6}`;
    await calicoOk(['ipam', 'configure', '--strictaffinity=true']);
    const shown = tableRows(await calicoOk(['ipam', 'show', '--show-configuration']));
    expect(shown).toContainEqual(['StrictAffinity', 'true']);
    const e = await ipam!
      .assignIp({ handle: `${run}-strict`, node: 'delta', pools: [POOL], ip })
      .then(
        () => undefined,
        (err: unknown) => err as Error,
      );
    expect(e?.message).toContain('strict affinity forbids borrowing it for delta');
  });
});
