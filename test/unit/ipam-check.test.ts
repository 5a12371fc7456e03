import { describe, expect, it } from 'vitest';
import { Ipam, type IpamOptions, type PoolSpec } from '../../src/ipam/index.js';
import { useEtcd } from './ipam-etcd.js';

const etcd = useEtcd('ipamcheck');
const pools: PoolSpec[] = [{ name: 'p', cidr: '10.40.0.0/24', blockSize: 28 }];
function fresh(opts: IpamOptions = {}): {
  ipam: Ipam;
  prefix: string;
  etcd: ReturnType<typeof etcd.client>;
} {
  const client = etcd.client();
  const prefix = etcd.prefix();
  return { ipam: new Ipam(client, prefix, opts), prefix, etcd: client };
}

describe('check and gc', () => {
  it('a clean store checks clean', async () => {
    const { ipam } = fresh();
    await ipam.autoAssign({ handle: 'live', node: 'n1', pools });
    const r = await ipam.check({ handles: new Set(['live']), nodes: new Set(['n1']), graceMs: 0 });
    expect(r).toMatchObject({
      ok: true,
      leaks: [],
      duplicates: [],
      orphanBlocks: [],
      inconsistencies: [],
    });
    expect(r.counts).toEqual({ blocks: 1, allocations: 1, handles: 1, affinities: 1 });
  });

  it('reports an allocation whose handle is not live as a leak with its handle, address, block and age; gc releases it and nothing live', async () => {
    const { ipam } = fresh();
    const live = await ipam.autoAssign({ handle: 'net.live', node: 'n1', pools });
    const leaked = await ipam.autoAssign({
      handle: 'net.dead',
      node: 'n1',
      pools,
      attrs: { pod: 'web-1' },
    });
    const liveSet = { handles: new Set(['net.live']), nodes: new Set(['n1']), graceMs: 0 };
    const r = await ipam.check(liveSet);
    expect(r.ok).toBe(false);
    expect(r.leaks).toEqual([
      expect.objectContaining({
        ip: leaked.ip,
        handle: 'net.dead',
        block: leaked.block,
        node: 'n1',
        affinity: 'n1',
        attrs: expect.objectContaining({ pod: 'web-1', node: 'n1' }),
      }),
    ]);
    expect(r.leaks[0]!.ageMs).toBeGreaterThanOrEqual(0);
    const g = await ipam.gc(liveSet);
    expect(g.released).toEqual([leaked.ip]);
    expect(await ipam.addressesOf('net.dead')).toEqual([]);
    expect(await ipam.addressesOf('net.live')).toEqual([live.ip]);
    expect((await ipam.check(liveSet)).ok).toBe(true);
  });

  it('an address younger than the grace period is not a leak, and gc leaves it alone', async () => {
    // Ages on a clock the test moves: how long the etcd calls take does not count.
    let now = Date.parse('2025-01-01T00:00:00Z');
    const { ipam } = fresh({ now: () => new Date(now) });
    const old = await ipam.autoAssign({ handle: 'old-dead', node: 'n1', pools });
    now += 1200;
    const young = await ipam.autoAssign({ handle: 'young-dead', node: 'n1', pools });
    const kept = await ipam.autoAssign({ handle: 'live', node: 'n1', pools });
    const liveSet = { handles: new Set(['live']), graceMs: 1000 };
    const r = await ipam.check(liveSet);
    expect(r.leaks.map((l) => l.ip)).toEqual([old.ip]);
    expect(r.inGrace.map((l) => l.ip)).toEqual([young.ip]);
    const g = await ipam.gc(liveSet);
    expect(g.released).toEqual([old.ip]);
    expect(await ipam.addressesOf('young-dead')).toEqual([young.ip]);
    expect(await ipam.addressesOf('live')).toEqual([kept.ip]);
  });

  it('gc never releases an address whose handle became live after the check', async () => {
    const { ipam } = fresh();
    const a = await ipam.autoAssign({ handle: 'late', node: 'n1', pools });
    // The caller's live set names the handle (its endpoint was written): gc must not free it
    // even though an earlier report, taken before the endpoint existed, listed it.
    const before = await ipam.check({ handles: new Set(), graceMs: 0 });
    expect(before.leaks.map((l) => l.ip)).toEqual([a.ip]);
    const g = await ipam.gc({ handles: new Set(['late']), graceMs: 0 });
    expect(g.released).toEqual([]);
    expect(await ipam.addressesOf('late')).toEqual([a.ip]);
  });

  it('a block affine to a node that is gone is an orphan, deleted by gc once its leaks are released', async () => {
    const { ipam } = fresh();
    const a = await ipam.autoAssign({ handle: 'on-gone-node', node: 'gone', pools });
    const b = await ipam.autoAssign({ handle: 'here', node: 'n1', pools });
    const liveSet = { handles: new Set(['here']), nodes: new Set(['n1']), graceMs: 0 };
    const r = await ipam.check(liveSet);
    expect(r.orphanBlocks).toEqual([
      { block: a.block, affinity: 'gone', allocated: 1, reason: 'node-gone' },
    ]);
    const g = await ipam.gc(liveSet);
    expect(g.released).toEqual([a.ip]);
    expect(g.releasedBlocks).toEqual([a.block]);
    expect((await ipam.blocks()).map((x) => x.cidr)).toEqual([b.block]);
    expect((await ipam.check(liveSet)).ok).toBe(true);
  });

  it('reports records that disagree or do not parse, and gc repairs those it safely can', async () => {
    const { ipam, prefix, etcd: client } = fresh();
    const a = await ipam.autoAssign({ handle: 'a', node: 'n1', pools });
    const root = `${prefix}/ipam/v2`;
    // A handle record counting an address its block does not give it, one allocation with
    // no handle record, a stale affinity and a record that is not JSON.
    await client
      .put(`${root}/handle/ghost`)
      .value(JSON.stringify({ block: { [a.block]: 1 }, deleted: false }));
    await client.delete().key(`${root}/handle/a`);
    await client
      .put(`${root}/host/n9/ipv4/block/10.40.0.240-28`)
      .value(JSON.stringify({ state: 'confirmed', deleted: false }));
    await client.put(`${root}/assignment/ipv4/block/10.40.0.128-28`).value('{not json');
    // A Calico cluster's IPv6 records are not tortie's, and no inconsistency.
    await client.put(`${root}/assignment/ipv6/block/fd00::-122`).value('{}');
    await client.put(`${root}/host/n1/ipv6/block/fd00::-122`).value('{}');
    const r = await ipam.check({ handles: new Set(['a']), graceMs: 0 });
    expect(r.inconsistencies.map((i) => i.kind).sort()).toEqual([
      'affinity-without-block',
      'allocation-without-handle',
      'corrupt-record',
      'handle-without-allocation',
    ]);
    expect(r.inconsistencies.find((i) => i.kind === 'corrupt-record')!.detail).toContain(
      '10.40.0.128-28',
    );
    expect(r.leaks).toEqual([]); // the allocation's handle is live: not a leak
    await ipam.gc({ handles: new Set(['a']), graceMs: 0 });
    const after = await ipam.check({ handles: new Set(['a']), graceMs: 0 });
    expect(after.inconsistencies.map((i) => i.kind).sort()).toEqual([
      'allocation-without-handle',
      'corrupt-record',
    ]);
    expect(await ipam.addressesOf('ghost')).toEqual([]);
  });

  it('reports overlapping blocks and every address allocated in both', async () => {
    const { ipam, prefix, etcd: client } = fresh();
    // Two overlapping blocks, each with ordinal 5 allocated, in Calico's format.
    const block = (cidr: string, size: number, handle: string) =>
      JSON.stringify({
        cidr,
        affinity: null,
        allocations: Array.from({ length: size }, (_, i) => (i === 5 ? 0 : null)),
        unallocated: Array.from({ length: size }, (_, i) => i).filter((i) => i !== 5),
        attributes: [{ handle_id: handle, secondary: { node: 'n1' } }],
        sequenceNumber: 2,
        sequenceNumberForAllocation: { '5': 1 },
        deleted: false,
      });
    const root = `${prefix}/ipam/v2`;
    await client
      .put(`${root}/assignment/ipv4/block/10.40.0.0-28`)
      .value(block('10.40.0.0/28', 16, 'x'));
    await client
      .put(`${root}/assignment/ipv4/block/10.40.0.0-29`)
      .value(block('10.40.0.0/29', 8, 'y'));
    await client.put(`${root}/handle/x`).value(JSON.stringify({ block: { '10.40.0.0/28': 1 } }));
    await client.put(`${root}/handle/y`).value(JSON.stringify({ block: { '10.40.0.0/29': 1 } }));
    const r = await ipam.check({ handles: new Set(['x', 'y']) });
    expect(r.duplicates).toEqual([
      {
        ip: '10.40.0.5',
        holders: [
          { block: '10.40.0.0/28', handle: 'x' },
          { block: '10.40.0.0/29', handle: 'y' },
        ],
      },
    ]);
    expect(r.inconsistencies.map((i) => i.kind)).toEqual(['overlapping-blocks']);
    // And a new block is never claimed over an existing one of another size.
    const got = await ipam.autoAssign({
      handle: 'z',
      node: 'n1',
      pools: [{ name: 'q', cidr: '10.40.0.0/27', blockSize: 30 }],
    });
    expect(Number(got.ip.split('.')[3])).toBeGreaterThanOrEqual(16);
  });

  it('gc releases more leaks than fit in one transaction, in batches', async () => {
    const { ipam } = fresh();
    const many = [{ name: 'big', cidr: '10.41.0.0/24', blockSize: 25 }];
    for (let k = 0; k < 90; k++)
      await ipam.autoAssign({ handle: `dead${k}`, node: 'n1', pools: many });
    const g = await ipam.gc({ handles: new Set(), graceMs: 0 });
    expect(g.leaks).toHaveLength(90);
    expect(g.released).toHaveLength(90);
    expect(await ipam.blocks()).toEqual([
      expect.objectContaining({ allocated: 0, affinity: 'n1' }),
    ]);
    expect((await ipam.check({ handles: new Set(), graceMs: 0 })).ok).toBe(true);
  });
});
