/**
 * Rules that span objects or versions of an object, checked against what the store
 * holds: IPPool CIDRs never overlap (an address would belong to two pools), and a
 * pool's CIDR and block size never change under allocated blocks.
 */
import { cidrWithin, parseCidr, type Cidr } from '../policy/cidr.js';
import type { IPPoolSpec } from './schema/ippool.js';

export interface PoolRef {
  readonly name: string;
  readonly cidr: string;
}

export interface Overlap {
  /** The pool of the call that is refused, and its place in the call. */
  readonly name: string;
  readonly index: number;
  readonly reason: string;
}

function cidrOf(text: string): Cidr {
  const parsed = parseCidr(text);
  if (!parsed.ok)
    throw new Error(`invariants: stored pool CIDR ${text} does not parse: ${parsed.reason}`);
  return parsed.cidr;
}

export function cidrsOverlap(a: string, b: string): boolean {
  const x = cidrOf(a);
  const y = cidrOf(b);
  return cidrWithin(x, y) || cidrWithin(y, x);
}

/**
 * Pools of a call against the stored ones (a stored pool of the same name is the
 * one being replaced) and against each other (the later one is refused).
 */
export function checkPoolOverlaps(
  incoming: readonly (PoolRef & { index: number })[],
  stored: readonly PoolRef[],
): Overlap[] {
  const names = new Set(incoming.map((p) => p.name));
  const others = stored.filter((p) => !names.has(p.name));
  const out: Overlap[] = [];
  incoming.forEach((pool, i) => {
    const clash =
      others.find((o) => cidrsOverlap(o.cidr, pool.cidr)) ??
      incoming.slice(0, i).find((o) => cidrsOverlap(o.cidr, pool.cidr));
    if (clash !== undefined) {
      out.push({
        name: pool.name,
        index: pool.index,
        reason: `${pool.cidr} overlaps IPPool ${clash.name} (${clash.cidr}); pools must not share addresses`,
      });
    }
  });
  return out;
}

/** Why an update of a stored pool is refused, or undefined. */
export function checkPoolUpdate(
  stored: IPPoolSpec,
  next: IPPoolSpec,
): { path: string; reason: string } | undefined {
  if (stored.cidr !== next.cidr) {
    return {
      path: 'spec.cidr',
      reason: `cannot change from ${stored.cidr} to ${next.cidr}: blocks may be allocated from it; create a new pool, disable this one and delete it once empty`,
    };
  }
  if (stored.blockSize !== next.blockSize) {
    return {
      path: 'spec.blockSize',
      reason: `cannot change from ${stored.blockSize} to ${next.blockSize}: blocks may be allocated from the pool; create a new pool instead`,
    };
  }
  return undefined;
}
