/**
 * Which IP pools a pod on this node may take its address from.
 *
 * Without `ipam.pools` in the network config: every enabled IPv4 pool whose nodeSelector
 * matches the node's labels, whose allowedUses include Workload and whose assignmentMode
 * is Automatic, ordered by name. With it: exactly the named pools (by name or CIDR), in
 * the given order, Manual ones included (that is what Manual is for, as in Calico);
 * naming an unknown, disabled, IPv6, non-matching or non-Workload pool is an error that
 * says which and why (code 102), never a silent fallback to another pool.
 */
import { parseSelector } from '../policy/selector.js';
import { CniCode, CniError } from './errors.js';

/** An IPPool as the IPAM needs it. */
export interface PoolSpec {
  name: string;
  cidr: string;
  blockSize: number;
  disabled?: boolean;
  nodeSelector?: string;
  /** Calico's default when absent: Workload and Tunnel. */
  allowedUses?: string[];
  /** "Automatic" (the default) or "Manual": used only when named in ipam.pools. */
  assignmentMode?: string;
}

export function selectPools(
  pools: readonly PoolSpec[],
  node: { name: string; labels: Record<string, string> },
  requested?: readonly string[],
  /** Where `requested` comes from, for messages: the config's ipam.pools, or a pod annotation. */
  requestedFrom = 'ipam.pools',
): PoolSpec[] {
  if (requested !== undefined) return requestedPools(pools, node, requested, requestedFrom);
  if (pools.length === 0) {
    throw new CniError(
      CniCode.NoPool,
      'no IPPool exists in the datastore: create one (e.g. `tortie apply -f pool.yaml`)',
    );
  }
  const usable: PoolSpec[] = [];
  const reasons: string[] = [];
  for (const pool of [...pools].sort((a, b) => a.name.localeCompare(b.name))) {
    const problem =
      pool.assignmentMode === 'Manual'
        ? 'is Manual (assignmentMode): used only when named in ipam.pools'
        : unusableBecause(pool, node);
    if (problem) reasons.push(`${pool.name} (${pool.cidr}) ${problem}`);
    else usable.push(pool);
  }
  if (usable.length === 0) {
    throw new CniError(
      CniCode.NoPool,
      `no IPv4 pool is usable on node ${node.name}: ${reasons.join('; ')}`,
    );
  }
  return usable;
}

function requestedPools(
  pools: readonly PoolSpec[],
  node: { name: string; labels: Record<string, string> },
  requested: readonly string[],
  from: string,
): PoolSpec[] {
  if (requested.length === 0) {
    throw new CniError(
      CniCode.InvalidConfig,
      'network config: ipam.pools is empty: name at least one pool, or leave it out',
    );
  }
  return requested.map((wanted, i) => {
    const pool = pools.find((p) => p.name === wanted || p.cidr === wanted);
    if (!pool) {
      const known = pools.map((p) => `${p.name} (${p.cidr})`).join(', ') || 'none';
      throw new CniError(
        CniCode.NoPool,
        `${from}[${i}] ${JSON.stringify(wanted)} names no IPPool (by name or CIDR); known pools: ${known}`,
      );
    }
    const problem = unusableBecause(pool, node);
    if (problem) {
      throw new CniError(
        CniCode.NoPool,
        `${from}[${i}]: pool ${pool.name} (${pool.cidr}) ${problem}`,
      );
    }
    return pool;
  });
}

function unusableBecause(
  pool: PoolSpec,
  node: { name: string; labels: Record<string, string> },
): string | undefined {
  if (pool.cidr.includes(':')) return 'is IPv6 (tortie pods are IPv4 only)';
  if (pool.disabled) return 'is disabled';
  const uses = pool.allowedUses ?? ['Workload', 'Tunnel'];
  if (!uses.includes('Workload'))
    return `is not for pods (allowedUses: ${uses.join(', ') || 'none'}; pods need Workload)`;
  const selector = pool.nodeSelector?.trim() ?? '';
  if (selector === '') return undefined;
  try {
    if (!parseSelector(selector).matches(node.labels)) {
      return `does not select node ${node.name} (nodeSelector ${JSON.stringify(selector)})`;
    }
  } catch (err) {
    return `has an invalid nodeSelector: ${(err as Error).message}`;
  }
  return undefined;
}
