/**
 * Calico's pool and IPAM semantics on a real etcd: IPReservations (read on each call),
 * allowedUses, the IPAM configuration (strictAffinity, autoAllocateBlocks,
 * maxBlocksPerHost) from the request or from the stored `ipam/v2/config` record.
 */
import { describe, expect, it } from 'vitest';
import { Ipam, IpamError, IpamKeys, type PoolSpec } from '../../src/ipam/index.js';
import { useEtcd } from './ipam-etcd.js';

const etcd = useEtcd('ipamsem');

function fresh(): { ipam: Ipam; prefix: string; client: ReturnType<typeof etcd.client> } {
  const client = etcd.client();
  const prefix = etcd.prefix();
  return { ipam: new Ipam(client, prefix), prefix, client };
}

async function rejection(p: Promise<unknown>): Promise<IpamError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  if (!(e instanceof IpamError)) throw new Error(`expected an IpamError, got ${String(e)}`);
  return e;
}

const pools: PoolSpec[] = [{ name: 'p', cidr: '10.50.0.0/24', blockSize: 29 }];

describe('IPReservation', () => {
  it('never hands out a reserved address, and skips a block reserved whole', async () => {
    const { ipam } = fresh();
    // The block the node would claim first, reserved whole; and two addresses of the next.
    const first = await ipam.autoAssign({ handle: 'probe', node: 'n1', pools });
    await ipam.releaseByHandle('probe');
    await ipam.releaseBlockAffinity('n1');
    const [a, b, c] = first.ip.split('.').map(Number) as [number, number, number, number];
    const reserved = [first.block];
    const got: string[] = [];
    for (let i = 0; i < 8; i++) {
      const r = await ipam.autoAssign({ handle: `h${i}`, node: 'n1', pools, reserved });
      got.push(r.ip);
      expect(r.block).not.toBe(first.block);
    }
    // Reservations are read on every call: one more, and it is skipped from then on.
    const next = await ipam.autoAssign({ handle: 'h8', node: 'n1', pools, reserved });
    const held = new Set(got);
    const later = [...reserved, next.ip.replace(/\d+$/, (d) => String(Number(d) + 1))];
    const after = await ipam.autoAssign({ handle: 'h9', node: 'n1', pools, reserved: later });
    expect(after.ip).not.toBe(later[1]);
    expect(held.has(after.ip)).toBe(false);
    expect(`${a}.${b}.${c}`).toBe('10.50.0');
    const named = await rejection(
      ipam.assignIp({ handle: 'x', node: 'n1', pools, ip: first.ip, reserved }),
    );
    expect(named.kind).toBe('conflict');
    expect(named.message).toContain('reserved by an IPReservation');
  });

  it('a pool reserved whole is exhausted, and says reserved addresses were left out', async () => {
    const { ipam } = fresh();
    const e = await rejection(
      ipam.autoAssign({ handle: 'h', node: 'n1', pools, reserved: ['10.50.0.0/24'] }),
    );
    expect(e.kind).toBe('exhausted');
    expect(e.message).toContain('reserved addresses excluded');
  });
});

describe('allowedUses', () => {
  it('a Tunnel-only pool gives no pod address; a Workload one does', async () => {
    const { ipam } = fresh();
    const mixed: PoolSpec[] = [
      { name: 'tun', cidr: '10.51.0.0/24', blockSize: 29, allowedUses: ['Tunnel'] },
      { name: 'pods', cidr: '10.52.0.0/24', blockSize: 29, allowedUses: ['Workload'] },
    ];
    expect((await ipam.autoAssign({ handle: 'pod', node: 'n1', pools: mixed })).ip).toMatch(
      /^10\.52\./,
    );
    expect(
      (await ipam.autoAssign({ handle: 'tunnel', node: 'n1', pools: mixed, use: 'Tunnel' })).ip,
    ).toMatch(/^10\.51\./);
    const e = await rejection(
      ipam.assignIp({ handle: 'x', node: 'n1', pools: mixed, ip: '10.51.0.9' }),
    );
    expect(e.message).toContain('allowedUses do not include Workload');
  });
});

describe('IPAM configuration', () => {
  const tiny: PoolSpec[] = [{ name: 't', cidr: '10.53.0.0/28', blockSize: 30 }];

  it('maxBlocksPerHost: a node owning that many full blocks claims no more, and does not borrow', async () => {
    const { ipam } = fresh();
    const config = { strictAffinity: true, maxBlocksPerHost: 1 };
    for (let i = 0; i < 4; i++)
      await ipam.autoAssign({ handle: `a${i}`, node: 'n1', pools: tiny, config });
    const e = await rejection(ipam.autoAssign({ handle: 'a4', node: 'n1', pools: tiny, config }));
    expect(e.kind).toBe('exhausted');
    expect(e.message).toContain('may own no more than 1');
    expect((await ipam.blocks()).length).toBe(1);
  });

  it('autoAllocateBlocks false: no new block; borrowing from existing ones only', async () => {
    const { ipam } = fresh();
    await ipam.autoAssign({ handle: 'b0', node: 'n1', pools: tiny });
    const config = { autoAllocateBlocks: false, strictAffinity: false };
    const borrowed = await ipam.autoAssign({ handle: 'b1', node: 'n2', pools: tiny, config });
    expect(borrowed.borrowed).toBe(true);
    for (let i = 2; i < 4; i++)
      await ipam.autoAssign({ handle: `b${i}`, node: 'n2', pools: tiny, config });
    const e = await rejection(ipam.autoAssign({ handle: 'b4', node: 'n2', pools: tiny, config }));
    expect(e.message).toContain('autoAllocateBlocks is false');
    expect((await ipam.blocks()).length).toBe(1);
  });

  it("the stored ipam/v2/config record (calicoctl ipam configure's) holds when the request gives none", async () => {
    const { ipam, prefix, client } = fresh();
    await ipam.autoAssign({ handle: 'c0', node: 'n1', pools: tiny });
    await client
      .put(new IpamKeys(prefix).config)
      .value(JSON.stringify({ strict_affinity: true, auto_allocate_blocks: false }));
    // n2 may neither claim a block nor borrow one of n1's.
    const e = await rejection(ipam.autoAssign({ handle: 'c1', node: 'n2', pools: tiny }));
    expect(e.message).toContain('strict affinity forbids borrowing (3 addresses free');
    // The request's config (an IPAMConfiguration resource) wins over the record.
    const ok = await ipam.autoAssign({
      handle: 'c1',
      node: 'n2',
      pools: tiny,
      config: { strictAffinity: false, autoAllocateBlocks: true },
    });
    expect(ok.borrowed).toBe(false);
  });
});
