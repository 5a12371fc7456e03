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
  /** What the pool's addresses may be used for (Calico's default: Workload and Tunnel). */
  allowedUses?: readonly string[];
  /**
   * Informational: "Manual" pools are used only when asked for by name; the caller has
   * already decided (src/cni/pools.ts).
   */
  assignmentMode?: string;
}

/** What an address is for, as Calico's IPPool allowedUses names it. */
export type PoolUse = 'Workload' | 'Tunnel';

export const DEFAULT_ALLOWED_USES: readonly string[] = ['Workload', 'Tunnel'];

/** True when the pool's allowedUses (Calico's default when absent) include `use`. */
export function allowsUse(spec: PoolSpec, use: PoolUse): boolean {
  return (spec.allowedUses ?? DEFAULT_ALLOWED_USES).includes(use);
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
export function enabledPools(specs: readonly PoolSpec[], use: PoolUse = 'Workload'): Pool[] {
  if (!Array.isArray(specs)) throw new IpamError('invalid', 'pools must be an array of pool specs');
  const parsed = specs.map(parsePool);
  const enabled = parsed.filter((p) => !p.spec.disabled);
  const usable = enabled.filter((p) => allowsUse(p.spec, use));
  if (usable.length === 0) {
    const why =
      parsed.length === 0
        ? 'no pools were given'
        : enabled.length === 0
          ? `every pool is disabled (${describePools(parsed)})`
          : `no enabled pool allows use ${use} (allowedUses of ${enabled.map((p) => `${p.spec.name}: ${(p.spec.allowedUses ?? DEFAULT_ALLOWED_USES).join(', ') || 'none'}`).join('; ')})`;
    throw new IpamError('no-pool', `no enabled IP pool to allocate from: ${why}`);
  }
  return usable;
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
