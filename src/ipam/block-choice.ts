/**
 * Which block a node claims next in a pool. Each node starts its search at a place
 * derived from its name, so nodes claiming at the same moment seldom race for the same
 * block key (Calico randomises the start for the same reason); the search then walks the
 * pool in order, skipping blocks that exist, any CIDR overlapping a block of another
 * size (a pool whose blockSize changed) and what the caller says to skip.
 */
import { type Cidr, cidrsOverlap, cidrWithin } from './ipv4.js';
import { type Pool, blocksInPool, poolBlock } from './pools.js';

/** FNV-1a of the node name: stable across processes and versions. */
function nodeHash(node: string): number {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(node)) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

export function unclaimedBlock(
  pool: Pool,
  existing: readonly Cidr[],
  node: string,
  /** A block never to claim (e.g. one an IPReservation covers whole). */
  skip: (c: Cidr) => boolean = () => false,
): Cidr | undefined {
  const n = blocksInPool(pool);
  const sameSize = new Set<number>();
  const otherSize: Cidr[] = [];
  for (const c of existing) {
    if (!cidrsOverlap(c, pool.cidr)) continue;
    if (c.prefixLength === pool.blockSize && cidrWithin(c, pool.cidr)) sameSize.add(c.base);
    else otherSize.push(c);
  }
  if (sameSize.size >= n) return undefined;
  const start = nodeHash(node) % n;
  for (let i = 0; i < n; i++) {
    const c = poolBlock(pool, (start + i) % n);
    if (sameSize.has(c.base) || otherSize.some((o) => cidrsOverlap(o, c)) || skip(c)) continue;
    return c;
  }
  return undefined;
}
