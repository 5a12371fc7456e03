/**
 * IP pools as IPAM sees them: plain objects handed in by the caller (which decides
 * nodeSelector and reads them from wherever it keeps them), checked here before use.
 */
import { IpamError } from './errors.js';
import { type Cidr, cidrContains, cidrSize, parseCidr } from './ipv4.js';

export interface PoolSpec {
  name: string;
  cidr: string;
  /** Prefix length of the pool's blocks, 20..32 (Calico's default is 26). */
  blockSize: number;
  disabled?: boolean;
  /** Informational: the caller has already decided whether the pool applies to the node. */
  nodeSelector?: string;
}

export const MIN_BLOCK_SIZE = 20;
export const MAX_BLOCK_SIZE = 32;

export interface Pool {
  readonly spec: PoolSpec;
  readonly cidr: Cidr;
  readonly blockSize: number;
}

export function parsePool(spec: PoolSpec): Pool {
  const name = typeof spec?.name === 'string' && spec.name ? spec.name : undefined;
  if (!name) throw new IpamError('invalid', 'pool without a name');
  const cidr = parseCidr(String(spec.cidr), `pool ${name}: cidr`);
  const bs = spec.blockSize;
  if (!Number.isInteger(bs) || bs < MIN_BLOCK_SIZE || bs > MAX_BLOCK_SIZE) {
    throw new IpamError(
      'invalid',
      `pool ${name}: blockSize ${String(bs)} is not an integer in ${MIN_BLOCK_SIZE}..${MAX_BLOCK_SIZE}`,
    );
  }
  if (bs < cidr.prefixLength) {
    throw new IpamError(
      'invalid',
      `pool ${name}: blockSize /${bs} is larger than the pool ${spec.cidr}`,
    );
  }
  return { spec, cidr, blockSize: bs };
}

/**
 * The enabled pools, parsed, in the caller's order. Every pool is checked (a bad
 * disabled pool is still a caller bug); `no-pool` when none is enabled.
 */
export function enabledPools(specs: readonly PoolSpec[]): Pool[] {
  if (!Array.isArray(specs)) throw new IpamError('invalid', 'pools must be an array of pool specs');
  const parsed = specs.map(parsePool);
  const enabled = parsed.filter((p) => !p.spec.disabled);
  if (enabled.length === 0) {
    const why =
      parsed.length === 0
        ? 'no pools were given'
        : `every pool is disabled (${describePools(parsed)})`;
    throw new IpamError('no-pool', `no enabled IP pool to allocate from: ${why}`);
  }
  return enabled;
}

/** "a (10.0.0.0/24), b (10.1.0.0/24)" for error messages. */
export function describePools(pools: readonly Pool[]): string {
  return pools.map((p) => `${p.spec.name} (${p.spec.cidr})`).join(', ');
}

export function blocksInPool(pool: Pool): number {
  return cidrSize(pool.cidr) / 2 ** (32 - pool.blockSize);
}

/** The i-th block of the pool. */
export function poolBlock(pool: Pool, i: number): Cidr {
  return { base: pool.cidr.base + i * 2 ** (32 - pool.blockSize), prefixLength: pool.blockSize };
}

export function poolContaining(pools: readonly Pool[], ip: number): Pool | undefined {
  return pools.find((p) => cidrContains(p.cidr, ip));
}
