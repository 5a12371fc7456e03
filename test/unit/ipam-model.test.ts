import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { unclaimedBlock } from '../../src/ipam/block-choice.js';
import { IpamKeys } from '../../src/ipam/keys.js';
import { Lanes } from '../../src/ipam/lanes.js';
import {
  type Cidr,
  formatCidr,
  formatIp,
  parseCidr,
  parseIp,
  tryParseCidr,
  tryParseIp,
} from '../../src/ipam/ipv4.js';
import { parsePool } from '../../src/ipam/pools.js';
import {
  freeOrdinal,
  newBlock,
  withAllocation,
  withoutAllocations,
} from '../../src/ipam/records.js';

describe('IPv4 and CIDRs', () => {
  it('parses and formats addresses both ways, and refuses what is not a dotted quad', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 32 - 1 }), (n) => parseIp(formatIp(n)) === n),
    );
    for (const bad of [
      '1.2.3',
      '1.2.3.4.5',
      '256.0.0.1',
      '01.2.3.4',
      '1.2.3.-1',
      ' 1.2.3.4',
      '::1',
      '',
    ])
      expect(tryParseIp(bad)).toBeUndefined();
  });

  it('accepts a CIDR only with its host bits zero', () => {
    expect(tryParseCidr('10.0.0.0/8')).toEqual({ base: 10 * 2 ** 24, prefixLength: 8 });
    expect(tryParseCidr('10.0.0.1/8')).toBeUndefined();
    expect(tryParseCidr('10.0.0.0/33')).toBeUndefined();
    expect(tryParseCidr('10.0.0.0')).toBeUndefined();
    expect(formatCidr(parseCidr('0.0.0.0/0'))).toBe('0.0.0.0/0');
  });
});

describe('pools', () => {
  it('refuses a pool whose blockSize is outside 20..32 or wider than the pool, naming the pool', () => {
    expect(() => parsePool({ name: 'p', cidr: '10.0.0.0/16', blockSize: 33 })).toThrow(
      /pool p: blockSize 33/,
    );
    expect(() => parsePool({ name: 'p', cidr: '10.0.0.0/24', blockSize: 20 })).toThrow(
      /pool p: blockSize \/20 is larger/,
    );
    expect(() => parsePool({ name: 'q', cidr: 'nope', blockSize: 26 })).toThrow(
      /pool q: cidr "nope"/,
    );
    expect(parsePool({ name: 'ok', cidr: '10.0.0.0/24', blockSize: 24 }).blockSize).toBe(24);
  });
});

describe('keys', () => {
  it('round-trips block and affinity keys under the prefix', () => {
    // Calico's etcd keys (libcalico-go lib/backend/model: BlockKey, BlockAffinityKey,
    // IPAMHandleKey, IPAMConfigKey), under the caller's prefix.
    const keys = new IpamKeys('/calico/');
    const c = parseCidr('10.1.2.64/26');
    expect(keys.block(c)).toBe('/calico/ipam/v2/assignment/ipv4/block/10.1.2.64-26');
    expect(keys.blockCidr(keys.block(c))).toEqual(c);
    expect(keys.affinity('node-1.example', c)).toBe(
      '/calico/ipam/v2/host/node-1.example/ipv4/block/10.1.2.64-26',
    );
    expect(keys.affinityOf(keys.affinity('node-1.example', c))).toEqual({
      node: 'node-1.example',
      cidr: c,
    });
    expect(keys.handle('k8s-pod-network.abc')).toBe('/calico/ipam/v2/handle/k8s-pod-network.abc');
    expect(keys.handleName(keys.handle('k8s-pod-network.abc'))).toBe('k8s-pod-network.abc');
    expect(keys.config).toBe('/calico/ipam/v2/config');
    // A node's affinities are listed with a trailing "/": node-1's never include node-10's.
    expect(keys.affinity('node-10', c).startsWith(keys.nodeAffinities('node-1'))).toBe(false);
    expect(keys.blockCidr(`${keys.blocks}10.1.2.64-26/x`)).toBeUndefined();
    expect(keys.affinityOf(`${keys.affinities}n/ipv6/block/10.1.2.64-26`)).toBeUndefined();
    expect(new IpamKeys('/tortie').root).toBe('/tortie/ipam/v2/');
  });
});

describe('choosing a block to claim', () => {
  const pool = parsePool({ name: 'p', cidr: '10.0.0.0/24', blockSize: 26 });
  const c = (t: string): Cidr => parseCidr(t);

  it('starts where the node name points and walks on past existing blocks', () => {
    const first = unclaimedBlock(pool, [], 'node-a')!;
    expect(unclaimedBlock(pool, [], 'node-a')).toEqual(first); // stable
    const second = unclaimedBlock(pool, [first], 'node-a')!;
    expect(second).not.toEqual(first);
    expect(
      unclaimedBlock(
        pool,
        [c('10.0.0.0/26'), c('10.0.0.64/26'), c('10.0.0.128/26'), c('10.0.0.192/26')],
        'node-a',
      ),
    ).toBeUndefined();
  });

  it('never picks a block overlapping an existing block of another size', () => {
    const existing = [c('10.0.0.0/25'), c('10.0.0.192/28')];
    const picks = ['a', 'b', 'c', 'd', 'e'].map((n) =>
      formatCidr(unclaimedBlock(pool, existing, n)!),
    );
    expect(new Set(picks)).toEqual(new Set(['10.0.0.128/26']));
  });
});

describe('block records', () => {
  it('never allocates an ordinal twice, whatever the order of allocations and releases', () => {
    const cidr = parseCidr('10.0.0.0/28');
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.constant('alloc' as const), fc.nat(15)), { maxLength: 80 }),
        (ops) => {
          let b = newBlock(cidr, 'n1');
          const held = new Set<number>();
          for (const op of ops) {
            if (op === 'alloc') {
              const o = freeOrdinal(b, cidr);
              if (held.size === 16) expect(o).toBeUndefined();
              if (o === undefined) continue;
              expect(held.has(o)).toBe(false);
              held.add(o);
              b = withAllocation(b, o, {
                handle: `h${o}`,
                node: 'n1',
                attrs: {},
                at: new Date(),
              });
            } else {
              b = withoutAllocations(b, (a) => a.ordinal === op).block;
              held.delete(op);
            }
            expect(b.allocations.map((a) => a.ordinal)).toEqual([...held].sort((x, y) => x - y));
          }
        },
      ),
    );
  });

  it('hands out a released ordinal only after the rest of the block', () => {
    const cidr = parseCidr('10.0.0.0/30');
    let b = newBlock(cidr, null);
    b = withAllocation(b, freeOrdinal(b, cidr)!, {
      handle: 'a',
      node: 'n',
      attrs: {},
      at: new Date(),
    });
    b = withoutAllocations(b, () => true).block;
    expect(freeOrdinal(b, cidr)).toBe(1);
  });
});

describe('lanes', () => {
  /** An operation that says when the lane starts it, and ends when the test says. */
  function gated(name: string, log: string[]) {
    let markStarted!: () => void;
    const started = new Promise<void>((r) => (markStarted = r));
    let end: ((fail: boolean) => void) | undefined;
    return {
      started,
      run: () =>
        new Promise<string>((resolve, reject) => {
          markStarted();
          end = (fail) => {
            log.push(name);
            if (fail) reject(new Error(name));
            else resolve(name);
          };
        }),
      finish(fail = false) {
        if (end === undefined) throw new Error(`${name} has not started`);
        end(fail);
      },
    };
  }

  it('runs one lane in order and different lanes side by side, and a failure does not stop the lane', async () => {
    const lanes = new Lanes();
    const log: string[] = [];
    const a1 = gated('a1', log);
    const b1 = gated('b1', log);
    const a1Result = lanes.run('a', a1.run);
    const a2Result = lanes.run('a', async () => {
      log.push('a2');
      return 'a2';
    });
    const b1Result = lanes.run('b', b1.run);
    // Side by side: b1 starts and ends while a1 is still running.
    await Promise.all([a1.started, b1.started]);
    b1.finish();
    expect(await b1Result).toBe('b1');
    // In order: a2 has not run, although b1 went all the way meanwhile.
    expect(log).toEqual(['b1']);
    // A failure does not stop the lane: a2 runs after it.
    a1.finish(true);
    await expect(a1Result).rejects.toThrow('a1');
    expect(await a2Result).toBe('a2');
    expect(log).toEqual(['b1', 'a1', 'a2']);
  });
});
