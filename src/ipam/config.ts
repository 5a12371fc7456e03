/**
 * The IPAM options Calico has (IPAMConfiguration / `calicoctl ipam configure`), and which
 * one holds. Three places may say something, the first that does wins:
 *
 *   1. the request's `config`: the caller's IPAMConfiguration "default" resource (the
 *      CNI plugin reads it from the datastore on every ADD);
 *   2. the `<prefix>/ipam/v2/config` record: where Calico's etcd datastore keeps it, what
 *      `calicoctl ipam configure --strictaffinity` writes;
 *   3. the Ipam instance's options, then Calico's defaults.
 *
 * Calico's defaults: no strict affinity, blocks claimed automatically, and a node owning
 * at most 20 blocks when maxBlocksPerHost is 0 ("a safeguard against runaway block
 * allocation", libcalico-go lib/ipam autoAssign).
 */
import { IpamError } from './errors.js';
import type { StoredIpamConfig } from './records.js';

export interface IpamConfig {
  /** Never borrow an address from another node's block. */
  readonly strictAffinity: boolean;
  /** Claim new blocks when a node's are full; false: only blocks that exist are used. */
  readonly autoAllocateBlocks: boolean;
  /** Blocks a node may own; 0: Calico's safeguard of DEFAULT_MAX_BLOCKS. */
  readonly maxBlocksPerHost: number;
}

export const DEFAULT_MAX_BLOCKS = 20;

export const DEFAULT_CONFIG: IpamConfig = {
  strictAffinity: false,
  autoAllocateBlocks: true,
  maxBlocksPerHost: 0,
};

/** The block limit a config sets on each node. */
export function blockLimit(c: IpamConfig): number {
  return c.maxBlocksPerHost > 0 ? c.maxBlocksPerHost : DEFAULT_MAX_BLOCKS;
}

/** A caller's config (an IPAMConfiguration spec), checked: missing fields take the defaults. */
export function checkConfig(c: unknown, what = 'config'): IpamConfig {
  if (typeof c !== 'object' || c === null || Array.isArray(c))
    throw new IpamError('invalid', `${what} must be an object`);
  const o = c as Record<string, unknown>;
  const bool = (field: keyof IpamConfig, dflt: boolean): boolean => {
    const v = o[field];
    if (v === undefined) return dflt;
    if (typeof v !== 'boolean')
      throw new IpamError('invalid', `${what}.${field} must be true or false`);
    return v;
  };
  const max = o.maxBlocksPerHost ?? 0;
  if (typeof max !== 'number' || !Number.isInteger(max) || max < 0)
    throw new IpamError('invalid', `${what}.maxBlocksPerHost must be a non-negative integer`);
  return {
    strictAffinity: bool('strictAffinity', DEFAULT_CONFIG.strictAffinity),
    autoAllocateBlocks: bool('autoAllocateBlocks', DEFAULT_CONFIG.autoAllocateBlocks),
    maxBlocksPerHost: max,
  };
}

export function effectiveConfig(
  requested: IpamConfig | undefined,
  stored: StoredIpamConfig | undefined,
  defaults: IpamConfig,
): IpamConfig {
  return requested ?? stored ?? defaults;
}
