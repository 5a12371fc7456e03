/**
 * `ipam check`: what is wrong in the IPAM records, judged against what is alive.
 * `analyse` is a pure function of one snapshot, the live set and the time.
 *
 * - leaks: allocations whose handle is not live and that are older than the grace period
 *   (younger ones are listed apart: an ADD may be between allocating and writing its
 *   endpoint);
 * - duplicates: an address allocated in two blocks (only possible if blocks overlap);
 * - orphan blocks: affine to a node that is gone, or empty and affine to nobody;
 * - inconsistencies: records that disagree with each other or do not parse.
 */
import { type IpamContext, transact } from './context.js';
import { type Cidr, cidrSize, compareCidrs, formatCidr, formatIp } from './ipv4.js';
import { affinityNode, allocationNode, allocationTime, heldIn } from './records.js';
import { type Snapshot, readSnapshot } from './snapshot.js';

export interface LiveSet {
  /** Handles of every address in use (for pods: `<network>.<containerID>`). */
  handles: Set<string>;
  /** Nodes that exist; when absent, no block is judged by its node. */
  nodes?: Set<string>;
  /** Allocations younger than this are never leaks. Default 5 minutes. */
  graceMs?: number;
}

export const DEFAULT_GRACE_MS = 5 * 60_000;

export interface LeakedAddress {
  ip: string;
  handle: string;
  block: string;
  /** The node that asked for the address ("" when neither it nor the block says). */
  node: string;
  /** The node the block is affine to, or null. */
  affinity: string | null;
  /** ISO time of the allocation; null when it has no readable "timestamp" attribute. */
  allocatedAt: string | null;
  /** null with allocatedAt: such an allocation is never old enough to be a leak. */
  ageMs: number | null;
  /** The block's sequence number at allocation (decimal): gc frees only this very allocation. */
  seq: string;
  attrs: Record<string, string>;
}

export interface DuplicateAddress {
  ip: string;
  holders: { block: string; handle: string }[];
}

export interface OrphanBlock {
  block: string;
  affinity: string | null;
  allocated: number;
  reason: 'node-gone' | 'empty-unaffine';
}

export type InconsistencyKind =
  | 'corrupt-record'
  | 'overlapping-blocks'
  | 'allocation-without-handle'
  | 'handle-without-allocation'
  | 'affinity-without-block'
  | 'block-without-affinity';

export interface Inconsistency {
  kind: InconsistencyKind;
  key: string;
  detail: string;
  handle?: string;
}

export interface IpamReport {
  /** etcd revision of the snapshot judged. */
  revision: string;
  checkedAt: string;
  graceMs: number;
  counts: { blocks: number; allocations: number; handles: number; affinities: number };
  leaks: LeakedAddress[];
  /** Not live, but younger than the grace period: not problems (yet). */
  inGrace: LeakedAddress[];
  duplicates: DuplicateAddress[];
  orphanBlocks: OrphanBlock[];
  inconsistencies: Inconsistency[];
  /** True when there is nothing in leaks, duplicates, orphanBlocks and inconsistencies. */
  ok: boolean;
  /** gc only: the addresses it released. */
  released?: string[];
  /** gc only: the blocks it deleted. */
  releasedBlocks?: string[];
}

function overlaps(snap: Snapshot): Inconsistency[] {
  const sorted = [...snap.blocks].sort((a, b) => compareCidrs(a.cidr, b.cidr));
  const out: Inconsistency[] = [];
  let widest: { cidr: Cidr; key: string } | undefined;
  for (const b of sorted) {
    if (widest && b.cidr.base < widest.cidr.base + cidrSize(widest.cidr)) {
      out.push({
        kind: 'overlapping-blocks',
        key: b.key,
        detail: `block ${formatCidr(b.cidr)} overlaps block ${formatCidr(widest.cidr)}`,
      });
    }
    if (!widest || b.cidr.base + cidrSize(b.cidr) > widest.cidr.base + cidrSize(widest.cidr))
      widest = b;
  }
  return out;
}

export function analyse(snap: Snapshot, live: LiveSet, now: Date): IpamReport {
  const graceMs = live.graceMs ?? DEFAULT_GRACE_MS;
  const handles = new Map(snap.handles.map((h) => [h.name, h]));
  const affinityKeys = new Set(snap.affinities.map((a) => `${a.node}\n${formatCidr(a.cidr)}`));
  const holders = new Map<string, { block: string; handle: string }[]>();
  const report: IpamReport = {
    revision: snap.revision,
    checkedAt: now.toISOString(),
    graceMs,
    counts: {
      blocks: snap.blocks.length,
      allocations: 0,
      handles: snap.handles.length,
      affinities: snap.affinities.length,
    },
    leaks: [],
    inGrace: [],
    duplicates: [],
    orphanBlocks: [],
    inconsistencies: snap.corrupt.map((c) => ({
      kind: 'corrupt-record' as const,
      key: c.key,
      detail: c.reason,
    })),
    ok: false,
  };
  report.inconsistencies.push(...overlaps(snap));

  for (const { key, cidr, block } of [...snap.blocks].sort((a, b) =>
    compareCidrs(a.cidr, b.cidr),
  )) {
    const name = formatCidr(cidr);
    const owner = affinityNode(block);
    report.counts.allocations += block.allocations.length;
    if (owner !== null && !affinityKeys.has(`${owner}\n${name}`)) {
      report.inconsistencies.push({
        kind: 'block-without-affinity',
        key,
        detail: `block ${name} is affine to ${owner} but ${owner} has no affinity record for it`,
      });
    }
    if (owner !== null && live.nodes && !live.nodes.has(owner)) {
      report.orphanBlocks.push({
        block: name,
        affinity: owner,
        allocated: block.allocations.length,
        reason: 'node-gone',
      });
    } else if (owner === null && block.allocations.length === 0) {
      report.orphanBlocks.push({
        block: name,
        affinity: null,
        allocated: 0,
        reason: 'empty-unaffine',
      });
    }
    const counted = new Map<string, number>();
    for (const a of block.allocations) {
      const ip = formatIp(cidr.base + a.ordinal);
      holders.set(ip, [...(holders.get(ip) ?? []), { block: name, handle: a.handle ?? '' }]);
      // An allocation without a handle (Calico allows one) belongs to nobody tortie knows:
      // never a leak, and no handle record to agree with.
      if (a.handle === null) continue;
      counted.set(a.handle, (counted.get(a.handle) ?? 0) + 1);
      if (live.handles.has(a.handle)) continue;
      const at = allocationTime(a);
      const ageMs = at === undefined ? null : now.getTime() - at.getTime();
      const leak: LeakedAddress = {
        ip,
        handle: a.handle,
        block: name,
        node: allocationNode(block, a) ?? '',
        affinity: owner,
        allocatedAt: at === undefined ? null : at.toISOString(),
        ageMs,
        seq: a.seq.toString(),
        attrs: { ...a.attrs },
      };
      (ageMs !== null && ageMs >= graceMs ? report.leaks : report.inGrace).push(leak);
    }
    for (const [handle, n] of counted) {
      const listed = handles.get(handle)?.record.blocks[name] ?? 0;
      if (listed >= n) continue;
      const record = handles.get(handle);
      report.inconsistencies.push({
        kind: 'allocation-without-handle',
        key,
        handle,
        detail: `${n} address${n === 1 ? '' : 'es'} of block ${name} ${n === 1 ? 'is' : 'are'} allocated to handle ${handle}, ${record ? `whose record counts ${listed}` : 'which has no record'}`,
      });
    }
  }

  const blocks = new Map(snap.blocks.map((b) => [formatCidr(b.cidr), b.block]));
  for (const { key, name, record } of snap.handles) {
    for (const [cidr, n] of Object.entries(record.blocks)) {
      const block = blocks.get(cidr);
      const held = block ? heldIn(block, name).length : 0;
      if (held >= n) continue;
      report.inconsistencies.push({
        kind: 'handle-without-allocation',
        key,
        handle: name,
        detail: `handle ${name} counts ${n} address${n === 1 ? '' : 'es'} in block ${cidr}, ${!block ? 'which does not exist' : `which holds ${held} for it`}`,
      });
    }
  }

  for (const { key, node, cidr } of snap.affinities) {
    const block = blocks.get(formatCidr(cidr));
    if (block && affinityNode(block) === node) continue;
    report.inconsistencies.push({
      kind: 'affinity-without-block',
      key,
      detail: `node ${node} claims block ${formatCidr(cidr)}, which ${block ? `is affine to ${affinityNode(block) ?? 'nobody'}` : 'does not exist'}`,
    });
  }

  for (const [ip, hs] of holders) if (hs.length > 1) report.duplicates.push({ ip, holders: hs });
  report.ok =
    report.leaks.length +
      report.duplicates.length +
      report.orphanBlocks.length +
      report.inconsistencies.length ===
    0;
  return report;
}

export async function check(ctx: IpamContext, live: LiveSet): Promise<IpamReport> {
  const snap = await transact(ctx, 'reading IPAM records', (tx) => readSnapshot(tx, ctx.keys));
  return analyse(snap, live, ctx.now());
}
