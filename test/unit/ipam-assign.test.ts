import { describe, expect, it } from 'vitest';
import { Ipam, IpamError, type PoolSpec } from '../../src/ipam/index.js';
import { useEtcd } from './ipam-etcd.js';

const etcd = useEtcd('ipamassign');

function ipam(opts?: ConstructorParameters<typeof Ipam>[2]): { ipam: Ipam; prefix: string } {
  const prefix = etcd.prefix();
  return { ipam: new Ipam(etcd.client(), prefix, opts), prefix };
}

const pool = (name: string, cidr: string, blockSize: number, disabled = false): PoolSpec => ({
  name,
  cidr,
  blockSize,
  disabled,
});

async function rejection(p: Promise<unknown>): Promise<IpamError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  if (!(e instanceof IpamError)) throw new Error(`expected an IpamError, got ${String(e)}`);
  return e;
}

describe('autoAssign', () => {
  it("a node's first address claims a block affine to it, and its next addresses come from that block", async () => {
    const { ipam: i } = ipam();
    const pools = [pool('p', '10.1.0.0/24', 28)];
    const a = await i.autoAssign({ handle: 'net.a', node: 'n1', pools });
    const b = await i.autoAssign({ handle: 'net.b', node: 'n1', pools });
    expect(a.borrowed).toBe(false);
    expect(b.block).toBe(a.block);
    expect(b.ip).not.toBe(a.ip);
    expect(await i.blocks()).toEqual([
      { cidr: a.block, affinity: 'n1', size: 16, allocated: 2, free: 14 },
    ]);
  });

  it('a node whose blocks are full claims a new block, affine to it', async () => {
    const { ipam: i } = ipam();
    const pools = [pool('p', '10.2.0.0/29', 30)];
    const got = [];
    for (let k = 0; k < 5; k++)
      got.push(await i.autoAssign({ handle: `net.${k}`, node: 'n1', pools }));
    expect(new Set(got.map((g) => g.ip)).size).toBe(5);
    expect(got.every((g) => !g.borrowed)).toBe(true);
    const blocks = await i.blocks();
    expect(blocks.map((b) => [b.affinity, b.allocated])).toEqual(
      expect.arrayContaining([
        ['n1', 4],
        ['n1', 1],
      ]),
    );
    expect(blocks).toHaveLength(2);
  });

  it('uses every address of a block, the first and the last included (pods get /32s)', async () => {
    const { ipam: i } = ipam();
    const pools = [pool('p', '10.3.0.0/30', 30)];
    const ips = [];
    for (let k = 0; k < 4; k++)
      ips.push((await i.autoAssign({ handle: `h${k}`, node: 'n1', pools })).ip);
    expect(ips.sort()).toEqual(['10.3.0.0', '10.3.0.1', '10.3.0.2', '10.3.0.3']);
  });

  it("borrows a free address from another node's block when no block is left to claim", async () => {
    const { ipam: i } = ipam();
    const pools = [pool('p', '10.4.0.0/30', 30)];
    const mine = await i.autoAssign({ handle: 'h1', node: 'n1', pools });
    const borrowed = await i.autoAssign({ handle: 'h2', node: 'n2', pools });
    expect(borrowed).toMatchObject({ block: mine.block, borrowed: true });
    expect(borrowed.ip).not.toBe(mine.ip);
    expect((await i.blocks())[0]).toMatchObject({ affinity: 'n1', allocated: 2 });
  });

  it('does not borrow while the node can still claim a block of its own', async () => {
    const { ipam: i } = ipam();
    const pools = [pool('p', '10.5.0.0/29', 30)];
    await i.autoAssign({ handle: 'h1', node: 'n1', pools });
    const second = await i.autoAssign({ handle: 'h2', node: 'n2', pools });
    expect(second.borrowed).toBe(false);
    expect((await i.blocks()).map((b) => b.affinity).sort()).toEqual(['n1', 'n2']);
  });

  it('with strict affinity, exhausts instead of borrowing and says so', async () => {
    const { ipam: i } = ipam({ strictAffinity: true });
    const pools = [pool('only', '10.6.0.0/30', 30)];
    await i.autoAssign({ handle: 'h1', node: 'n1', pools });
    const e = await rejection(i.autoAssign({ handle: 'h2', node: 'n2', pools }));
    expect(e.kind).toBe('exhausted');
    expect(e.message).toMatch(/strict affinity/);
    expect(e.message).toMatch(/3 addresses free in other nodes' blocks/);
    expect(await i.addressesOf('h2')).toEqual([]);
  });

  it('exhaustion names every pool tried', async () => {
    const { ipam: i } = ipam();
    const pools = [pool('first', '10.7.0.0/31', 31), pool('second', '10.7.1.0/32', 32)];
    for (let k = 0; k < 3; k++) await i.autoAssign({ handle: `h${k}`, node: 'n1', pools });
    const e = await rejection(i.autoAssign({ handle: 'h-last', node: 'n2', pools }));
    expect(e.kind).toBe('exhausted');
    expect(e.message).toContain('first (10.7.0.0/31)');
    expect(e.message).toContain('second (10.7.1.0/32)');
  });

  it('tries pools in the order given', async () => {
    const { ipam: i } = ipam();
    const a = await i.autoAssign({
      handle: 'h1',
      node: 'n1',
      pools: [pool('b', '10.8.1.0/24', 26), pool('a', '10.8.0.0/24', 26)],
    });
    expect(a.ip.startsWith('10.8.1.')).toBe(true);
  });

  it('a second call with the same handle returns the address it already holds', async () => {
    const { ipam: i } = ipam();
    const pools = [pool('p', '10.9.0.0/24', 26)];
    const first = await i.autoAssign({ handle: 'net.same', node: 'n1', pools });
    const again = await i.autoAssign({ handle: 'net.same', node: 'n1', pools });
    expect(again).toEqual(first);
    expect(await i.addressesOf('net.same')).toEqual([first.ip]);
    expect((await i.blocks())[0]!.allocated).toBe(1);
  });

  it('concurrent calls with the same handle allocate once, among others racing for the same block', async () => {
    const { ipam: i } = ipam({ localQueue: false }); // let them race in etcd
    const pools = [pool('p', '10.10.0.0/24', 26)];
    await i.autoAssign({ handle: 'seed', node: 'n1', pools });
    const calls = Array.from({ length: 16 }, (_, k) =>
      k % 2 === 0 ? 'net.race' : `net.other${k}`,
    );
    const results = await Promise.all(
      calls.map((handle) => i.autoAssign({ handle, node: 'n1', pools })),
    );
    const raced = results.filter((_, k) => calls[k] === 'net.race');
    expect(new Set(raced.map((r) => r.ip)).size).toBe(1);
    expect(new Set(results.map((r) => r.ip)).size).toBe(9);
    expect(await i.addressesOf('net.race')).toEqual([raced[0]!.ip]);
    expect((await i.blocks())[0]!.allocated).toBe(10);
  });

  it('skips disabled pools, and with only disabled pools fails with no-pool', async () => {
    const { ipam: i } = ipam();
    const got = await i.autoAssign({
      handle: 'h1',
      node: 'n1',
      pools: [pool('off', '10.11.0.0/24', 26, true), pool('on', '10.11.1.0/24', 26)],
    });
    expect(got.ip.startsWith('10.11.1.')).toBe(true);
    const e = await rejection(
      i.autoAssign({ handle: 'h2', node: 'n1', pools: [pool('off', '10.11.0.0/24', 26, true)] }),
    );
    expect(e.kind).toBe('no-pool');
    expect(e.message).toContain('off (10.11.0.0/24)');
  });

  it('refuses bad input with the field at fault', async () => {
    const { ipam: i } = ipam();
    const ok = [pool('p', '10.12.0.0/24', 26)];
    expect(
      (await rejection(i.autoAssign({ handle: 'a/b', node: 'n1', pools: ok }))).message,
    ).toMatch(/handle "a\/b"/);
    expect((await rejection(i.autoAssign({ handle: 'h', node: '', pools: ok }))).message).toMatch(
      /node ""/,
    );
    expect(
      (
        await rejection(
          i.autoAssign({ handle: 'h', node: 'n', pools: [pool('p', '10.12.0.0/24', 19)] }),
        )
      ).message,
    ).toMatch(/blockSize 19/);
    expect(
      (
        await rejection(
          i.autoAssign({ handle: 'h', node: 'n', pools: [pool('p', '10.12.0.1/24', 26)] }),
        )
      ).message,
    ).toMatch(/pool p: cidr/);
    expect(
      (
        await rejection(
          i.autoAssign({ handle: 'h', node: 'n', pools: [pool('p', '10.12.0.0/28', 26)] }),
        )
      ).message,
    ).toMatch(/larger than the pool/);
    expect((await rejection(i.autoAssign({ handle: 'h', node: 'n', pools: [] }))).kind).toBe(
      'no-pool',
    );
  });

  it('a node whose block went since its last assignment claims a new one, not the one it remembers', async () => {
    const { ipam: i } = ipam();
    const pools = [pool('p', '10.1.0.0/24', 30)];
    const a = await i.autoAssign({ handle: 'net.a', node: 'n1', pools });
    await i.releaseByHandle('net.a');
    expect(await i.releaseBlockAffinity('n1')).toEqual([a.block]);
    const c = await i.autoAssign({ handle: 'net.c', node: 'n1', pools });
    expect(c.borrowed).toBe(false);
    expect(await i.blocks()).toEqual([
      { cidr: c.block, affinity: 'n1', size: 4, allocated: 1, free: 3 },
    ]);
  });

  it('autoAssignWhenReady writes nothing when its request is refused or withdrawn', async () => {
    const { ipam: i } = ipam();
    const pools = [pool('p', '10.1.0.0/24', 28)];
    const first = { handle: 'net.w', node: 'n1' };
    const refused = new Error('the caller refused the ADD');
    await expect(i.autoAssignWhenReady(first, Promise.reject(refused))).rejects.toBe(refused);
    expect(await i.autoAssignWhenReady(first, Promise.resolve(undefined))).toBeUndefined();
    expect(await i.addressesOf('net.w')).toEqual([]);
    expect(await i.blocks()).toEqual([]);
    const got = await i.autoAssignWhenReady(first, Promise.resolve({ ...first, pools }));
    expect(await i.addressesOf('net.w')).toEqual([got?.ip]);
  });
});

describe('assignIp', () => {
  it('takes the named address; another handle asking for it gets a conflict naming the holder', async () => {
    const { ipam: i } = ipam();
    const pools = [pool('p', '10.20.0.0/24', 26)];
    await i.assignIp({ ip: '10.20.0.70', handle: 'net.x', node: 'n1', pools });
    expect(await i.addressesOf('net.x')).toEqual(['10.20.0.70']);
    expect(await i.blocks()).toEqual([
      { cidr: '10.20.0.64/26', affinity: 'n1', size: 64, allocated: 1, free: 63 },
    ]);
    const e = await rejection(i.assignIp({ ip: '10.20.0.70', handle: 'net.y', node: 'n1', pools }));
    expect(e.kind).toBe('conflict');
    expect(e.message).toContain('net.x');
    await i.assignIp({ ip: '10.20.0.70', handle: 'net.x', node: 'n1', pools }); // its own: fine
    expect(await i.addressesOf('net.x')).toEqual(['10.20.0.70']);
  });

  it('is never handed out again by autoAssign', async () => {
    const { ipam: i } = ipam();
    const pools = [pool('p', '10.21.0.0/30', 30)];
    await i.assignIp({ ip: '10.21.0.1', handle: 'static', node: 'n1', pools });
    const others = [];
    for (let k = 0; k < 3; k++)
      others.push((await i.autoAssign({ handle: `h${k}`, node: 'n1', pools })).ip);
    expect(others.sort()).toEqual(['10.21.0.0', '10.21.0.2', '10.21.0.3']);
  });

  it('adds to what a handle holds, and refuses addresses outside the enabled pools', async () => {
    const { ipam: i } = ipam();
    const pools = [pool('p', '10.22.0.0/24', 26), pool('off', '10.23.0.0/24', 26, true)];
    const auto = await i.autoAssign({ handle: 'multi', node: 'n1', pools });
    await i.assignIp({ ip: '10.22.0.200', handle: 'multi', node: 'n1', pools });
    expect(await i.addressesOf('multi')).toEqual([auto.ip, '10.22.0.200'].sort());
    expect(
      (await rejection(i.assignIp({ ip: '10.23.0.1', handle: 'h', node: 'n1', pools }))).message,
    ).toMatch(/pool off .* disabled/);
    expect(
      (await rejection(i.assignIp({ ip: '192.168.0.1', handle: 'h', node: 'n1', pools }))).kind,
    ).toBe('no-pool');
    expect(
      (await rejection(i.assignIp({ ip: '10.22.0.300', handle: 'h', node: 'n1', pools }))).kind,
    ).toBe('invalid');
  });

  it("with strict affinity refuses an address in another node's block", async () => {
    const { ipam: i } = ipam({ strictAffinity: true });
    const pools = [pool('p', '10.24.0.0/24', 26)];
    await i.assignIp({ ip: '10.24.0.1', handle: 'a', node: 'n1', pools });
    const e = await rejection(i.assignIp({ ip: '10.24.0.2', handle: 'b', node: 'n2', pools }));
    expect(e.kind).toBe('conflict');
    expect(e.message).toMatch(/strict affinity/);
  });
});

describe('autoAssignMany', () => {
  it('gives each handle its own address from the node’s blocks in one go; what it cannot serve is left to autoAssign', async () => {
    const { ipam: i } = ipam();
    const pools = [pool('p', '10.40.0.0/24', 29)];
    // One block of eight, one address taken: seven free.
    const seed = await i.autoAssign({ handle: 'a0', node: 'n1', pools });
    const handles = ['x0', 'x1', 'x2', 'a0', 'x3', 'x4', 'x5', 'x6', 'x7'];
    const reqs = handles.map((handle) => ({ handle, node: 'n1', pools }));
    const got = await i.autoAssignMany(reqs);
    // a0 holds an address already, and x7 finds the block full: both left to autoAssign.
    expect(got.map((g) => g === undefined)).toEqual(handles.map((h) => h === 'a0' || h === 'x7'));
    const served = got.flatMap((g) => (g === undefined ? [] : [g.ip]));
    expect(new Set([...served, seed.ip]).size).toBe(8);
    for (const [k, g] of got.entries()) {
      if (g !== undefined) expect(await i.addressesOf(handles[k]!)).toEqual([g.ip]);
    }
    expect((await i.autoAssign(reqs[3]!)).ip).toBe(seed.ip);
    const x7 = await i.autoAssign(reqs[8]!);
    expect([...served, seed.ip]).not.toContain(x7.ip);
  });

  it('two batches racing from two processes never give an address twice', async () => {
    const prefix = etcd.prefix();
    const [p1, p2] = [new Ipam(etcd.client(), prefix), new Ipam(etcd.client(), prefix)];
    const pools = [pool('p', '10.41.0.0/24', 26)];
    await p1.autoAssign({ handle: 'seed', node: 'n1', pools });
    const batch = (who: string) =>
      Array.from({ length: 10 }, (_, k) => ({ handle: `${who}${k}`, node: 'n1', pools }));
    const [g1, g2] = await Promise.all([
      p1.autoAssignMany(batch('p')),
      p2.autoAssignMany(batch('q')),
    ]);
    const ips = [...g1, ...g2].map((g) => g!.ip);
    expect(new Set(ips).size).toBe(20);
  });
});

describe('release', () => {
  it('releaseByHandle frees exactly the handle’s addresses and is a no-op the second time', async () => {
    const { ipam: i } = ipam();
    const pools = [pool('p', '10.30.0.0/24', 26)];
    const a = await i.autoAssign({ handle: 'a', node: 'n1', pools });
    await i.assignIp({ ip: '10.30.0.100', handle: 'a', node: 'n1', pools });
    const b = await i.autoAssign({ handle: 'b', node: 'n1', pools });
    expect(await i.releaseByHandle('a')).toEqual([a.ip, '10.30.0.100'].sort());
    expect(await i.releaseByHandle('a')).toEqual([]);
    expect(await i.addressesOf('a')).toEqual([]);
    expect(await i.addressesOf('b')).toEqual([b.ip]);
    expect((await i.blocks()).reduce((n, x) => n + x.allocated, 0)).toBe(1);
  });

  it('releaseByHandles frees several handles’ addresses across blocks in one go, each handle’s own', async () => {
    const { ipam: i } = ipam();
    const pools = [pool('p', '10.32.0.0/24', 30)];
    const got = [];
    // Four addresses per /30 block: handles 0-5 span two blocks.
    for (let k = 0; k < 6; k++)
      got.push(await i.autoAssign({ handle: `h${k}`, node: 'n1', pools }));
    await i.assignIp({ ip: '10.32.0.200', handle: 'h1', node: 'n1', pools });
    const released = await i.releaseByHandles(['h1', 'h4', 'none', 'h5']);
    expect(released).toEqual([[got[1]!.ip, '10.32.0.200'].sort(), [got[4]!.ip], [], [got[5]!.ip]]);
    for (const k of [1, 4, 5]) expect(await i.addressesOf(`h${k}`)).toEqual([]);
    for (const k of [0, 2, 3]) expect(await i.addressesOf(`h${k}`)).toEqual([got[k]!.ip]);
    expect((await i.blocks()).reduce((n, x) => n + x.allocated, 0)).toBe(3);
    expect(await i.releaseByHandles(['h1', 'h4'])).toEqual([[], []]);
  });

  it('keeps an emptied block affine to its node, so the node reuses it', async () => {
    const { ipam: i } = ipam();
    const pools = [pool('p', '10.31.0.0/24', 26)];
    const a = await i.autoAssign({ handle: 'a', node: 'n1', pools });
    await i.releaseByHandle('a');
    expect(await i.blocks()).toEqual([
      { cidr: a.block, affinity: 'n1', size: 64, allocated: 0, free: 64 },
    ]);
    expect((await i.autoAssign({ handle: 'b', node: 'n1', pools })).block).toBe(a.block);
  });

  it('reuses a released address only after the rest of the block', async () => {
    const { ipam: i } = ipam();
    const pools = [pool('p', '10.32.0.0/30', 30)];
    const first = await i.autoAssign({ handle: 'a', node: 'n1', pools });
    await i.releaseByHandle('a');
    const next = await i.autoAssign({ handle: 'b', node: 'n1', pools });
    expect(next.ip).not.toBe(first.ip);
  });

  it('releaseIps frees the addresses, updates their handles and reports only what was allocated', async () => {
    const { ipam: i } = ipam();
    const pools = [pool('p', '10.33.0.0/24', 26)];
    await i.assignIp({ ip: '10.33.0.1', handle: 'h', node: 'n1', pools });
    await i.assignIp({ ip: '10.33.0.2', handle: 'h', node: 'n1', pools });
    await i.assignIp({ ip: '10.33.0.3', handle: 'g', node: 'n1', pools });
    expect(await i.releaseIps(['10.33.0.1', '10.33.0.3', '10.33.0.9', '10.99.0.1'])).toEqual([
      '10.33.0.1',
      '10.33.0.3',
    ]);
    expect(await i.addressesOf('h')).toEqual(['10.33.0.2']);
    expect(await i.addressesOf('g')).toEqual([]);
    expect((await i.check({ handles: new Set(['h']), graceMs: 0 })).ok).toBe(true);
  });

  it('releaseIps of more addresses than one transaction holds releases them all, in batches', async () => {
    const { ipam: i } = ipam();
    const pools = [pool('p', '10.36.0.0/24', 25)];
    const ips = [];
    for (let k = 0; k < 90; k++)
      ips.push((await i.autoAssign({ handle: `h${k}`, node: 'n1', pools })).ip);
    expect(await i.releaseIps(ips)).toHaveLength(90);
    expect((await i.check({ handles: new Set(), graceMs: 0 })).counts).toMatchObject({
      allocations: 0,
      handles: 0,
    });
  });

  it("a borrowed address is released from the lender's block, which stays its node's", async () => {
    const { ipam: i } = ipam();
    const pools = [pool('p', '10.34.0.0/30', 30)];
    await i.autoAssign({ handle: 'own', node: 'n1', pools });
    const b = await i.autoAssign({ handle: 'borrower', node: 'n2', pools });
    expect(b.borrowed).toBe(true);
    expect(await i.releaseByHandle('borrower')).toEqual([b.ip]);
    expect(await i.blocks()).toEqual([expect.objectContaining({ affinity: 'n1', allocated: 1 })]);
  });

  it("releaseBlockAffinity frees a leaving node's empty blocks and keeps the ones in use", async () => {
    const { ipam: i } = ipam();
    const pools = [pool('p', '10.35.0.0/29', 30)];
    const held = [];
    for (let k = 0; k < 5; k++)
      held.push(await i.autoAssign({ handle: `h${k}`, node: 'gone', pools }));
    const lone = held[4]!;
    await i.releaseByHandle('h4');
    expect(await i.releaseBlockAffinity('gone')).toEqual([lone.block]);
    expect((await i.blocks()).map((b) => [b.cidr, b.affinity, b.allocated])).toEqual([
      [held[0]!.block, 'gone', 4],
    ]);
    // The freed block is claimable again by another node.
    expect((await i.autoAssign({ handle: 'new', node: 'n2', pools })).block).toBe(lone.block);
  });
});
