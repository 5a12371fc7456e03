/**
 * What IPAM stores in etcd, as JSON: blocks, handles and affinities, with a schema each
 * (a record that does not parse is refused with the key's name, never half-used), and
 * the pure changes made to them. No I/O here.
 */
import { z } from 'zod';
import { IpamError } from './errors.js';
import { type Cidr, cidrSize, formatCidr, formatIp } from './ipv4.js';

const attrs = z.record(z.string());

const allocationSchema = z.object({
  ordinal: z.number().int().nonnegative(),
  handle: z.string().min(1),
  /** The node that asked for the address (differs from the block's affinity when borrowed). */
  node: z.string(),
  /** ISO time of the allocation; check/gc measure an allocation's age from it. */
  allocatedAt: z.string().datetime(),
  /** The block's sequence number when this allocation was made. */
  seq: z.number().int().nonnegative(),
  attrs,
});

const blockSchema = z.object({
  cidr: z.string(),
  /** "host:<node>" or null (no node claims the block). */
  affinity: z.string().startsWith('host:').nullable(),
  /** One entry per allocated ordinal, sorted by ordinal. */
  allocations: z.array(allocationSchema),
  /** Where the search for a free ordinal starts: released addresses are reused last. */
  nextOrdinal: z.number().int().nonnegative(),
  /** Bumped on every change of the block. */
  seq: z.number().int().nonnegative(),
});

const handleSchema = z.object({
  handle: z.string().min(1),
  /** block CIDR -> ordinals this handle holds in it. */
  blocks: z.record(z.array(z.number().int().nonnegative())),
});

const affinitySchema = z.object({
  node: z.string(),
  cidr: z.string(),
  claimedAt: z.string(),
});

export type Allocation = z.infer<typeof allocationSchema>;
export type BlockRecord = z.infer<typeof blockSchema>;
export type HandleRecord = z.infer<typeof handleSchema>;
export type AffinityRecord = z.infer<typeof affinitySchema>;

function parseWith<T>(schema: z.ZodType<T>, key: string, text: string): T {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new IpamError('invalid', `stored record ${key} is not JSON`);
  }
  const r = schema.safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new IpamError(
      'invalid',
      `stored record ${key} is malformed: ${issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : 'unknown'}`,
    );
  }
  return r.data;
}

/** Parses a block and checks it against the CIDR its key names. */
export function parseBlock(key: string, text: string, cidr: Cidr): BlockRecord {
  const b = parseWith(blockSchema, key, text);
  if (b.cidr !== formatCidr(cidr))
    throw new IpamError('invalid', `stored block ${key} says its cidr is ${b.cidr}`);
  const size = cidrSize(cidr);
  let last = -1;
  for (const a of b.allocations) {
    if (a.ordinal >= size || a.ordinal <= last) {
      throw new IpamError(
        'invalid',
        `stored block ${key} has ordinal ${a.ordinal} out of order or outside 0..${size - 1}`,
      );
    }
    last = a.ordinal;
  }
  return b;
}

export function parseHandle(key: string, text: string): HandleRecord {
  return parseWith(handleSchema, key, text);
}

export function parseAffinity(key: string, text: string): AffinityRecord {
  return parseWith(affinitySchema, key, text);
}

export function hostAffinity(node: string): string {
  return `host:${node}`;
}

/** The node a block is affine to, or null. */
export function affinityNode(b: BlockRecord): string | null {
  return b.affinity === null ? null : b.affinity.slice('host:'.length);
}

export function newBlock(cidr: Cidr, node: string | null): BlockRecord {
  return {
    cidr: formatCidr(cidr),
    affinity: node === null ? null : hostAffinity(node),
    allocations: [],
    nextOrdinal: 0,
    seq: 0,
  };
}

export function ordinalAddress(cidr: Cidr, ordinal: number): string {
  return formatIp(cidr.base + ordinal);
}

export function allocationAt(b: BlockRecord, ordinal: number): Allocation | undefined {
  return b.allocations.find((a) => a.ordinal === ordinal);
}

/**
 * The first free ordinal at or after the block's cursor, wrapping round; undefined when
 * the block is full. Every ordinal is usable, the block's first and last included: like
 * Calico, tortie gives pods /32s routed individually, so a block is not a subnet with a
 * network and a broadcast address, and skipping them would waste two addresses per block.
 */
export function freeOrdinal(b: BlockRecord, cidr: Cidr): number | undefined {
  const size = cidrSize(cidr);
  if (b.allocations.length >= size) return undefined;
  const used = new Set(b.allocations.map((a) => a.ordinal));
  for (let i = 0; i < size; i++) {
    const o = (b.nextOrdinal + i) % size;
    if (!used.has(o)) return o;
  }
  return undefined;
}

export function freeCount(b: BlockRecord, cidr: Cidr): number {
  return cidrSize(cidr) - b.allocations.length;
}

/** The block with `ordinal` allocated (the caller has checked it is free). */
export function withAllocation(
  b: BlockRecord,
  cidr: Cidr,
  ordinal: number,
  who: { handle: string; node: string; attrs: Record<string, string>; at: Date },
): BlockRecord {
  const seq = b.seq + 1;
  const a: Allocation = {
    ordinal,
    handle: who.handle,
    node: who.node,
    allocatedAt: who.at.toISOString(),
    seq,
    attrs: who.attrs,
  };
  const allocations = [...b.allocations, a].sort((x, y) => x.ordinal - y.ordinal);
  return { ...b, allocations, nextOrdinal: (ordinal + 1) % cidrSize(cidr), seq };
}

/** The block without the allocations `release` picks, and those allocations. */
export function withoutAllocations(
  b: BlockRecord,
  release: (a: Allocation) => boolean,
): { block: BlockRecord; released: Allocation[] } {
  const released = b.allocations.filter(release);
  if (released.length === 0) return { block: b, released };
  return {
    block: { ...b, allocations: b.allocations.filter((a) => !release(a)), seq: b.seq + 1 },
    released,
  };
}

/** A block nobody needs: nothing allocated and no node claims it. It is deleted. */
export function isDisposable(b: BlockRecord): boolean {
  return b.allocations.length === 0 && b.affinity === null;
}

export function handleWith(
  h: HandleRecord | undefined,
  handle: string,
  block: string,
  ordinal: number,
): HandleRecord {
  const blocks = { ...(h?.blocks ?? {}) };
  blocks[block] = [...new Set([...(blocks[block] ?? []), ordinal])].sort((x, y) => x - y);
  return { handle, blocks };
}

/** The handle without the given ordinals of `block`; null when it holds nothing any more. */
export function handleWithout(
  h: HandleRecord,
  block: string,
  ordinals: ReadonlySet<number>,
): HandleRecord | null {
  const blocks = { ...h.blocks };
  const left = (blocks[block] ?? []).filter((o) => !ordinals.has(o));
  if (left.length > 0) blocks[block] = left;
  else delete blocks[block];
  return Object.keys(blocks).length === 0 ? null : { handle: h.handle, blocks };
}
