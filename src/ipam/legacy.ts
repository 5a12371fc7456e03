/**
 * tortie's IPAM records before they took Calico's format (`<prefix>/ipam/v1/…`), and
 * their conversion to today's (`<prefix>/ipam/v2/…`, keys.ts and records.ts). Pure: the
 * caller reads the old keys, writes what this returns and deletes the old keys
 * (`tortie datastore migrate` does).
 *
 *   v1 <prefix>/ipam/v1/blocks/<a.b.c.d-n>            { cidr, affinity, allocations: [{ ordinal,
 *                                                      handle, node, allocatedAt, seq, attrs }],
 *                                                      nextOrdinal, seq }
 *   v1 <prefix>/ipam/v1/handles/<handle>              { handle, blocks: { cidr: [ordinal…] } }
 *   v1 <prefix>/ipam/v1/affinity/<node>/<a.b.c.d-n>   { node, cidr, claimedAt }
 *
 * An allocation keeps its handle, ordinal and attributes; its node and time become the
 * "node" and "timestamp" attributes Calico's CNI plugin writes (and "pod" is the tortie
 * "workload" attribute, when there is no "pod"). Free ordinals are handed out from the old
 * cursor on, as before. A handle's ordinals become counts, an affinity a confirmed one.
 */
import { z } from 'zod';
import { cidrSize, type Cidr, formatCidr } from './ipv4.js';
import { IpamKeys, normalisePrefix, segmentCidr } from './keys.js';
import {
  type Allocation,
  type BlockRecord,
  calicoTimestamp,
  encodeAffinity,
  encodeBlock,
  encodeHandle,
} from './records.js';

const v1Allocation = z.object({
  ordinal: z.number().int().nonnegative(),
  handle: z.string().min(1),
  node: z.string(),
  allocatedAt: z.string(),
  seq: z.number().int().nonnegative(),
  attrs: z.record(z.string()),
});

const v1Block = z.object({
  cidr: z.string(),
  affinity: z.string().nullable(),
  allocations: z.array(v1Allocation),
  nextOrdinal: z.number().int().nonnegative(),
  seq: z.number().int().nonnegative(),
});

const v1Handle = z.object({
  handle: z.string().min(1),
  blocks: z.record(z.array(z.number().int().nonnegative())),
});

const v1Affinity = z.object({ node: z.string(), cidr: z.string() }).passthrough();

export interface LegacyConversion {
  /** The v2 records to write: full keys, values as stored. */
  readonly records: { key: string; value: string }[];
  /** Old keys converted (to delete once the new records are written). */
  readonly converted: string[];
  /** Old keys not converted, with the reason (nothing is guessed). */
  readonly skipped: { key: string; reason: string }[];
}

function parsed<T>(schema: z.ZodType<T, z.ZodTypeDef, unknown>, text: string): T {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error('is not JSON');
  }
  const r = schema.safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new Error(
      `is malformed: ${issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : ''}`,
    );
  }
  return r.data;
}

function convertBlock(cidr: Cidr, text: string): string {
  const b = parsed(v1Block, text);
  if (b.cidr !== formatCidr(cidr)) throw new Error(`says its cidr is ${b.cidr}`);
  const size = cidrSize(cidr);
  const used = new Set<number>();
  const allocations: Allocation[] = b.allocations.map((a) => {
    if (a.ordinal >= size || used.has(a.ordinal))
      throw new Error(`has ordinal ${a.ordinal} twice or outside 0..${size - 1}`);
    used.add(a.ordinal);
    const at = new Date(a.allocatedAt);
    const attrs: Record<string, string> = { ...a.attrs, node: a.node };
    if (!Number.isNaN(at.getTime())) attrs.timestamp = calicoTimestamp(at);
    if (attrs.pod === undefined && attrs.workload !== undefined) attrs.pod = attrs.workload;
    return { ordinal: a.ordinal, handle: a.handle, attrs, seq: BigInt(a.seq) };
  });
  const unallocated: number[] = [];
  for (let i = 0; i < size; i++) {
    const o = (b.nextOrdinal + i) % size;
    if (!used.has(o)) unallocated.push(o);
  }
  const block: BlockRecord = {
    cidr: b.cidr,
    affinity: b.affinity,
    allocations: allocations.sort((x, y) => x.ordinal - y.ordinal),
    unallocated,
    seq: BigInt(b.seq),
    deleted: false,
  };
  return encodeBlock(block, cidr);
}

function convertHandle(name: string, text: string): string {
  const h = parsed(v1Handle, text);
  if (h.handle !== name) throw new Error(`names handle ${h.handle}`);
  const blocks: Record<string, number> = {};
  for (const [cidr, ordinals] of Object.entries(h.blocks))
    if (ordinals.length > 0) blocks[cidr] = new Set(ordinals).size;
  return encodeHandle({ handle: name, blocks });
}

/**
 * Converts the v1 records under `from` (keys as read, `<from>/ipam/v1/…`; other keys are
 * skipped) into v2 records under `to` (default: the same prefix).
 */
export function convertLegacyIpam(
  kvs: readonly { key: string; value: string }[],
  opts: { from: string; to?: string },
): LegacyConversion {
  const root = `${normalisePrefix(opts.from)}/ipam/v1/`;
  const keys = new IpamKeys(opts.to ?? opts.from);
  const out: LegacyConversion = { records: [], converted: [], skipped: [] };
  for (const { key, value } of kvs) {
    try {
      if (!key.startsWith(root)) throw new Error(`is not under ${root}`);
      const [kind, ...rest] = key.slice(root.length).split('/');
      let record: { key: string; value: string };
      if (kind === 'blocks' && rest.length === 1) {
        const cidr = segmentCidr(rest[0]!);
        if (!cidr) throw new Error('names no CIDR');
        record = { key: keys.block(cidr), value: convertBlock(cidr, value) };
      } else if (kind === 'handles' && rest.length === 1 && rest[0] !== '') {
        record = { key: keys.handle(rest[0]!), value: convertHandle(rest[0]!, value) };
      } else if (kind === 'affinity' && rest.length === 2 && rest[0] !== '') {
        const cidr = segmentCidr(rest[1]!);
        if (!cidr) throw new Error('names no CIDR');
        const a = parsed(v1Affinity, value);
        if (a.node !== rest[0] || a.cidr !== formatCidr(cidr))
          throw new Error(`says node ${a.node}, block ${a.cidr}`);
        record = { key: keys.affinity(rest[0]!, cidr), value: encodeAffinity('confirmed') };
      } else throw new Error('is not a v1 block, handle or affinity key');
      out.records.push(record);
      out.converted.push(key);
    } catch (e) {
      out.skipped.push({ key, reason: `${key} ${(e as Error).message}` });
    }
  }
  return out;
}
