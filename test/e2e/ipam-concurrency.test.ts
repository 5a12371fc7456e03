/**
 * IPAM under concurrency against a real etcd: three nodes, each with its own etcd client
 * (as three CNI processes would have), allocating at once.
 */
import { describe, expect, it } from 'vitest';
import { Ipam, IpamError, type PoolSpec } from '../../src/ipam/index.js';
import { useEtcd } from '../unit/ipam-etcd.js';

const etcd = useEtcd('ipamconc');

describe('IPAM concurrency', () => {
  // localQueue: true is how one process runs its calls (one change per node at a time,
  // racing the other processes in etcd). false lets every call race every other in etcd,
  // as if each were its own process: costlier (most attempts lose), so fewer calls, and
  // smaller blocks so that each node still needs two.
  it.each([
    { localQueue: true, perNode: 100, blockSize: 26 },
    { localQueue: false, perNode: 50, blockSize: 27 },
  ])(
    '3 nodes × $perNode concurrent autoAssigns on 3 clients (localQueue $localQueue): no duplicates, blocks affine to the right nodes, then release of all leaves check clean',
    async ({ localQueue, perNode, blockSize }) => {
      const prefix = etcd.prefix();
      const pools: PoolSpec[] = [{ name: 'default', cidr: '10.64.0.0/16', blockSize }];
      const nodes = ['node-a', 'node-b', 'node-c'];
      const ipams = nodes.map(() => new Ipam(etcd.client(), prefix, { localQueue }));
      const handles = nodes.flatMap((node) =>
        Array.from({ length: perNode }, (_, k) => ({ node, handle: `net.${node}-${k}` })),
      );
      const results = await Promise.all(
        handles.map(({ node, handle }) =>
          ipams[nodes.indexOf(node)]!.autoAssign({ handle, node, pools }).then((r) => ({
            node,
            handle,
            ...r,
          })),
        ),
      );

      expect(new Set(results.map((r) => r.ip)).size).toBe(3 * perNode);
      const blocks = await ipams[0]!.blocks();
      const affinityOf = new Map(blocks.map((b) => [b.cidr, b.affinity]));
      for (const r of results) {
        expect(r.borrowed).toBe(false);
        expect(affinityOf.get(r.block)).toBe(r.node);
      }
      // Each node needs exactly two blocks for its addresses: no block is claimed in vain.
      for (const node of nodes) expect(blocks.filter((b) => b.affinity === node)).toHaveLength(2);
      expect(blocks.reduce((n, b) => n + b.allocated, 0)).toBe(3 * perNode);
      for (const r of results.slice(0, 20))
        expect(await ipams[0]!.addressesOf(r.handle)).toEqual([r.ip]);

      const live = {
        handles: new Set(handles.map((h) => h.handle)),
        nodes: new Set(nodes),
        graceMs: 0,
      };
      const report = await ipams[1]!.check(live);
      expect(report).toMatchObject({
        ok: true,
        leaks: [],
        duplicates: [],
        inconsistencies: [],
        orphanBlocks: [],
      });
      expect(report.counts).toMatchObject({
        allocations: 3 * perNode,
        handles: 3 * perNode,
        blocks: 6,
        affinities: 6,
      });

      const released = await Promise.all(
        handles.map(({ node, handle }) => ipams[nodes.indexOf(node)]!.releaseByHandle(handle)),
      );
      expect(released.flat().sort()).toEqual(results.map((r) => r.ip).sort());
      const after = await ipams[2]!.check({
        handles: new Set(),
        nodes: new Set(nodes),
        graceMs: 0,
      });
      expect(after).toMatchObject({ ok: true, leaks: [], inGrace: [] });
      expect(after.counts).toMatchObject({ allocations: 0, handles: 0 });
      expect(
        (await ipams[2]!.blocks()).every((b) => b.allocated === 0 && nodes.includes(b.affinity!)),
      ).toBe(true);
    },
  );

  it('a conflict storm (two clients hitting the same block) is resolved by retries, and without retries is refused, never doubled', async () => {
    const pools: PoolSpec[] = [{ name: 'tiny', cidr: '10.65.0.0/24', blockSize: 24 }];
    const storm = async (maxRetries: number) => {
      const prefix = etcd.prefix();
      // No local queue: all 120 calls race for the one block in etcd.
      const clients = [0, 1].map(
        () => new Ipam(etcd.client(), prefix, { maxRetries, localQueue: false }),
      );
      await clients[0]!.autoAssign({ handle: 'seed', node: 'n1', pools }); // the one block exists
      const outcomes = await Promise.allSettled(
        Array.from({ length: 120 }, (_, k) =>
          clients[k % 2]!.autoAssign({ handle: `h${k}`, node: 'n1', pools }),
        ),
      );
      const ips = outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value.ip] : []));
      const errors = outcomes.flatMap((o) =>
        o.status === 'rejected' ? [o.reason as unknown] : [],
      );
      const report = await clients[1]!.check({
        handles: new Set(['seed', ...Array.from({ length: 120 }, (_, k) => `h${k}`)]),
        graceMs: 0,
      });
      return { ips, errors, report, blocks: await clients[0]!.blocks() };
    };

    const patient = await storm(100);
    expect(patient.errors).toEqual([]);
    expect(new Set(patient.ips).size).toBe(120);
    expect(patient.blocks).toEqual([
      { cidr: '10.65.0.0/24', affinity: 'n1', size: 256, allocated: 121, free: 135 },
    ]);
    expect(patient.report.ok).toBe(true);

    const impatient = await storm(0);
    expect(impatient.errors.length).toBeGreaterThan(0); // the storm is real: races were lost
    for (const e of impatient.errors)
      expect(e).toMatchObject({ kind: 'conflict' } satisfies Partial<IpamError>);
    expect(new Set(impatient.ips).size).toBe(impatient.ips.length);
    expect(impatient.blocks[0]!.allocated).toBe(impatient.ips.length + 1);
    expect(impatient.report.ok).toBe(true);
  });
});
