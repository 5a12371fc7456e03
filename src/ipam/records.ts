/**
 * What IPAM stores in etcd, in Calico's formats (libcalico-go's AllocationBlock,
 * IPAMHandle, BlockAffinity and IPAMConfig as its etcd backend writes them), each with a
 * schema (a record that does not parse is refused with the key's name, never half-used),
 * and the pure changes made to them. No I/O here.
 *
 * A block as stored:
 *
 *   { "cidr": "10.65.0.0/26", "affinity": "host:node-1",
 *     "allocations": [0, null, …],          one entry per ordinal: null (free) or an index
 *                                           into "attributes"
 *     "unallocated": [1, 2, …],             the free ordinals, in the order they are handed
 *                                           out (a released one goes to the end)
 *     "attributes": [{ "handle_id": "net.c1", "secondary": { "node": "node-1", … } }],
 *     "sequenceNumber": 1733…,              bumped on every write
 *     "sequenceNumberForAllocation": { "0": 1733… },   the block's number when each
 *                                           allocation was made
 *     "deleted": false }
 *
 * In memory a block is a list of allocations (ordinal, handle, attributes, sequence
 * number); the attribute table is rebuilt on every write. The secondary attributes carry
 * what Calico's CNI plugin writes: "node" (who asked for the address: differs from the
 * block's affinity when borrowed), "timestamp" (when), "namespace" and "pod".
 */
import { z } from 'zod';
import { IpamError } from './errors.js';
import { type Cidr, cidrSize, formatCidr, formatIp } from './ipv4.js';
import { JsonSyntaxError, parseJson } from './json.js';

/** A uint64 as stored: a number, or a bigint when past 2^53. */
const seqSchema = z.union([
  z
    .number()
    .int()
    .nonnegative()
    .transform((n) => BigInt(n)),
  z.bigint().nonnegative(),
]);

const attributeSchema = z.object({
  handle_id: z.string().nullable().optional(),
  secondary: z.record(z.string()).nullable().optional(),
});

const blockSchema = z.object({
  cidr: z.string(),
  /** "host:<node>", or null: no node claims the block. */
  affinity: z.string().nullable().optional(),
  allocations: z.array(z.number().int().nonnegative().nullable()),
  unallocated: z.array(z.number().int().nonnegative()).nullable(),
  attributes: z.array(attributeSchema).nullable(),
  sequenceNumber: seqSchema.optional(),
  sequenceNumberForAllocation: z.record(seqSchema).nullable().optional(),
  deleted: z.boolean().optional(),
  /** Calico's deprecated spelling of the affinity: "<node>". */
  hostAffinity: z.string().nullable().optional(),
});

const handleSchema = z.object({
  /** block CIDR -> how many of its addresses the handle holds. */
  block: z.record(z.number().int().nonnegative()).nullable(),
  deleted: z.boolean().optional(),
});

export const AFFINITY_STATES = ['confirmed', 'pending', 'pendingDeletion'] as const;

const affinitySchema = z.object({
  state: z.enum(AFFINITY_STATES),
  deleted: z.boolean().optional(),
});

const configSchema = z.object({
  strict_affinity: z.boolean().optional(),
  auto_allocate_blocks: z.boolean().optional(),
  maxBlocksPerHost: z.number().int().nonnegative().optional(),
});

export interface Allocation {
  readonly ordinal: number;
  /** Calico's handle_id; null for an allocation made without one. */
  readonly handle: string | null;
  /** Calico's secondary attributes, as stored. */
  readonly attrs: Readonly<Record<string, string>>;
  /** The block's sequence number when this allocation was made. */
  readonly seq: bigint;
}

export interface BlockRecord {
  readonly cidr: string;
  /** "host:<node>" or null (no node claims the block). */
  readonly affinity: string | null;
  /** One entry per allocated ordinal, sorted by ordinal. */
  readonly allocations: readonly Allocation[];
  /** Free ordinals in the order they are handed out. */
  readonly unallocated: readonly number[];
  /** Bumped on every change of the block. */
  readonly seq: bigint;
  readonly deleted: boolean;
}

export interface HandleRecord {
  readonly handle: string;
  /** block CIDR -> how many addresses of it the handle holds. */
  readonly blocks: Readonly<Record<string, number>>;
}

export type AffinityState = (typeof AFFINITY_STATES)[number];

export interface AffinityRecord {
  readonly state: AffinityState;
  readonly deleted: boolean;
}

/** Calico's IPAM configuration record (`ipam/v2/config`); absent fields are false / 0. */
export interface StoredIpamConfig {
  readonly strictAffinity: boolean;
  readonly autoAllocateBlocks: boolean;
  readonly maxBlocksPerHost: number;
}

function parseWith<T>(schema: z.ZodType<T, z.ZodTypeDef, unknown>, key: string, text: string): T {
  let json: unknown;
  try {
    json = parseJson(text);
  } catch (e) {
    throw new IpamError(
      'invalid',
      `stored record ${key} is not JSON${e instanceof JsonSyntaxError ? ` (${e.message})` : ''}`,
    );
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
  const bad = (why: string) => new IpamError('invalid', `stored block ${key} ${why}`);
  if (b.allocations.length !== size)
    throw bad(`has ${b.allocations.length} allocation slots, not ${size}`);
  const attributes = b.attributes ?? [];
  const seqs = b.sequenceNumberForAllocation ?? {};
  const allocations: Allocation[] = [];
  b.allocations.forEach((index, ordinal) => {
    if (index === null) return;
    const attr = attributes[index];
    if (!attr) throw bad(`allocates ordinal ${ordinal} to attributes[${index}], which is absent`);
    allocations.push({
      ordinal,
      handle: attr.handle_id ?? null,
      attrs: { ...(attr.secondary ?? {}) },
      seq: seqs[String(ordinal)] ?? 0n,
    });
  });
  const seen = new Set<number>();
  for (const o of b.unallocated ?? []) {
    if (o >= size) throw bad(`lists ordinal ${o} as free, outside 0..${size - 1}`);
    if (seen.has(o)) throw bad(`lists ordinal ${o} as free twice`);
    if (b.allocations[o] !== null) throw bad(`lists ordinal ${o} as both free and allocated`);
    seen.add(o);
  }
  const affinity = b.affinity ?? (b.hostAffinity ? hostAffinity(b.hostAffinity) : null) ?? null;
  return {
    cidr: b.cidr,
    affinity,
    allocations,
    unallocated: [...(b.unallocated ?? [])],
    seq: b.sequenceNumber ?? 0n,
    deleted: b.deleted ?? false,
  };
}

/** The block as Calico stores it (the field order of its Go struct). */
export function encodeBlock(b: BlockRecord, cidr: Cidr): string {
  const slots: (number | null)[] = new Array<number | null>(cidrSize(cidr)).fill(null);
  const attributes: { handle_id: string | null; secondary: Record<string, string> }[] = [];
  const index = new Map<string, number>();
  const seqs: Record<string, bigint> = {};
  for (const a of b.allocations) {
    const secondary = Object.fromEntries(
      Object.entries(a.attrs).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)),
    );
    const id = JSON.stringify([a.handle, secondary]);
    let i = index.get(id);
    if (i === undefined) {
      i = attributes.length;
      index.set(id, i);
      attributes.push({ handle_id: a.handle, secondary });
    }
    slots[a.ordinal] = i;
    seqs[String(a.ordinal)] = a.seq;
  }
  // JSON.stringify for all but the 64-bit numbers, which are spliced in as digits.
  const head = JSON.stringify({
    cidr: b.cidr,
    affinity: b.affinity,
    allocations: slots,
    unallocated: b.unallocated,
    attributes,
  });
  const perAllocation = Object.entries(seqs)
    .map(([o, n]) => `"${o}":${n.toString()}`)
    .join(',');
  return `${head.slice(0, -1)},"sequenceNumber":${b.seq.toString()},"sequenceNumberForAllocation":{${perAllocation}},"deleted":${String(b.deleted)}}`;
}

export function parseHandle(key: string, text: string, handle: string): HandleRecord {
  const h = parseWith(handleSchema, key, text);
  return { handle, blocks: { ...(h.block ?? {}) } };
}

export function encodeHandle(h: HandleRecord): string {
  return JSON.stringify({ block: h.blocks, deleted: false });
}

export function parseAffinity(key: string, text: string): AffinityRecord {
  const a = parseWith(affinitySchema, key, text);
  return { state: a.state, deleted: a.deleted ?? false };
}

export function encodeAffinity(state: AffinityState = 'confirmed'): string {
  return JSON.stringify({ state, deleted: false });
}

export function parseStoredConfig(key: string, text: string): StoredIpamConfig {
  const c = parseWith(configSchema, key, text);
  return {
    strictAffinity: c.strict_affinity ?? false,
    autoAllocateBlocks: c.auto_allocate_blocks ?? false,
    maxBlocksPerHost: c.maxBlocksPerHost ?? 0,
  };
}

export function encodeStoredConfig(c: StoredIpamConfig): string {
  return JSON.stringify({
    ...(c.strictAffinity ? { strict_affinity: true } : {}),
    ...(c.autoAllocateBlocks ? { auto_allocate_blocks: true } : {}),
    ...(c.maxBlocksPerHost > 0 ? { maxBlocksPerHost: c.maxBlocksPerHost } : {}),
  });
}

export function hostAffinity(node: string): string {
  return `host:${node}`;
}

/** The node a block is affine to, or null. */
export function affinityNode(b: { readonly affinity: string | null }): string | null {
  return b.affinity !== null && b.affinity.startsWith('host:')
    ? b.affinity.slice('host:'.length)
    : null;
}

/** The node an address was allocated for: its "node" attribute, else the block's node. */
export function allocationNode(b: BlockRecord, a: Allocation): string | null {
  return a.attrs.node || affinityNode(b);
}

/**
 * Go's time.Time.String() of a UTC time, as Calico's CNI plugin writes the "timestamp"
 * attribute: "2026-12-07 03:37:38.123 +0000 UTC" (fraction without trailing zeros).
 */
export function calicoTimestamp(at: Date): string {
  const iso = at.toISOString(); // 2026-12-07T03:37:38.123Z
  const fraction = iso.slice(20, 23).replace(/0+$/, '');
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)}${fraction ? `.${fraction}` : ''} +0000 UTC`;
}

const GO_TIME = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})(\.\d+)? ([+-])(\d{2})(\d{2}) \S+/;

/** When an allocation was made (its "timestamp": Go's or ISO format); undefined if unknown. */
export function allocationTime(a: Allocation): Date | undefined {
  const t = a.attrs.timestamp;
  if (t === undefined) return undefined;
  const m = GO_TIME.exec(t);
  const ms = m
    ? Date.parse(`${m[1]}T${m[2]}${(m[3] ?? '').slice(0, 4)}${m[4]}${m[5]}:${m[6]}`)
    : Date.parse(t);
  return Number.isNaN(ms) ? undefined : new Date(ms);
}

/** A new block's sequence number: the time in nanoseconds, as Calico (a block recreated later never repeats one). */
export function initialSequence(at: Date): bigint {
  return BigInt(at.getTime()) * 1_000_000n;
}

export function newBlock(cidr: Cidr, node: string | null, at: Date = new Date()): BlockRecord {
  return {
    cidr: formatCidr(cidr),
    affinity: node === null ? null : hostAffinity(node),
    allocations: [],
    unallocated: Array.from({ length: cidrSize(cidr) }, (_, i) => i),
    seq: initialSequence(at),
    deleted: false,
  };
}

export function ordinalAddress(cidr: Cidr, ordinal: number): string {
  return formatIp(cidr.base + ordinal);
}

export function allocationAt(b: BlockRecord, ordinal: number): Allocation | undefined {
  return b.allocations.find((a) => a.ordinal === ordinal);
}

/** An address IPAM must not hand out (an IPReservation's); by the address as a number. */
export type Reserved = (ip: number) => boolean;

const nothingReserved: Reserved = () => false;

/**
 * The next free ordinal in the block's order (the first of "unallocated" that is not
 * reserved); undefined when none is left. Every ordinal is usable, the block's first and
 * last included: like Calico, tortie gives pods /32s routed individually, so a block is
 * not a subnet with a network and a broadcast address.
 */
export function freeOrdinal(
  b: BlockRecord,
  cidr: Cidr,
  reserved: Reserved = nothingReserved,
): number | undefined {
  return b.unallocated.find((o) => !reserved(cidr.base + o));
}

/** Free addresses of the block that are not reserved. */
export function freeCount(
  b: BlockRecord,
  cidr: Cidr,
  reserved: Reserved = nothingReserved,
): number {
  return b.unallocated.filter((o) => !reserved(cidr.base + o)).length;
}

/** The block with `ordinal` allocated (the caller has checked it is free). */
export function withAllocation(
  b: BlockRecord,
  ordinal: number,
  who: { handle: string; node: string; attrs: Record<string, string>; at: Date },
): BlockRecord {
  const a: Allocation = {
    ordinal,
    handle: who.handle,
    attrs: { ...who.attrs, node: who.node, timestamp: calicoTimestamp(who.at) },
    seq: b.seq,
  };
  return {
    ...b,
    allocations: [...b.allocations, a].sort((x, y) => x.ordinal - y.ordinal),
    unallocated: b.unallocated.filter((o) => o !== ordinal),
    seq: b.seq + 1n,
  };
}

/** The block without the allocations `release` picks, and those allocations. */
export function withoutAllocations(
  b: BlockRecord,
  release: (a: Allocation) => boolean,
): { block: BlockRecord; released: Allocation[] } {
  const released = b.allocations.filter(release);
  if (released.length === 0) return { block: b, released };
  return {
    block: {
      ...b,
      allocations: b.allocations.filter((a) => !release(a)),
      unallocated: [...b.unallocated, ...released.map((a) => a.ordinal)],
      seq: b.seq + 1n,
    },
    released,
  };
}

/** A block nobody needs: nothing allocated and no node claims it. It is deleted. */
export function isDisposable(b: BlockRecord): boolean {
  return b.allocations.length === 0 && b.affinity === null;
}

/** How many addresses of the block the handle holds, by the block itself. */
export function heldIn(b: BlockRecord, handle: string): Allocation[] {
  return b.allocations.filter((a) => a.handle === handle);
}

export function handleWith(
  h: HandleRecord | undefined,
  handle: string,
  block: string,
): HandleRecord {
  const blocks = { ...(h?.blocks ?? {}) };
  blocks[block] = (blocks[block] ?? 0) + 1;
  return { handle, blocks };
}

/** The handle with `count` fewer addresses in `block`; null when it holds nothing any more. */
export function handleWithout(h: HandleRecord, block: string, count: number): HandleRecord | null {
  const blocks = { ...h.blocks };
  const left = (blocks[block] ?? 0) - count;
  if (left > 0) blocks[block] = left;
  else delete blocks[block];
  return Object.keys(blocks).length === 0 ? null : { handle: h.handle, blocks };
}
