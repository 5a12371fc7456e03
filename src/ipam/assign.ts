/**
 * Handing out addresses. autoAssign looks in the node's own blocks, then claims a new
 * block for the node, then (unless strict affinity) borrows a free address from another
 * node's block; assignIp takes one named address. Each is one compare-and-swap
 * transaction writing the block and the handle together (and, for a new block, its
 * affinity), so an address is never given twice and a handle always matches its blocks.
 *
 * Claiming differs from Calico's on purpose: Calico writes a pending affinity, then the
 * block, then confirms the affinity, because its Kubernetes datastore has no multi-key
 * transaction. etcd has one, so block, affinity, allocation and handle appear together.
 */
import { type Cas, type KeyValue, RetryCas } from './cas.js';
import { type IpamContext, transact } from './context.js';
import { IpamError } from './errors.js';
import {
  type Cidr,
  cidrContains,
  cidrsOverlap,
  cidrWithin,
  compareCidrs,
  enclosingCidr,
  formatCidr,
  parseCidr,
  parseIp,
} from './ipv4.js';
import { checkName } from './keys.js';
import {
  type Pool,
  type PoolSpec,
  describePools,
  enabledPools,
  parsePool,
  poolContaining,
} from './pools.js';
import {
  type BlockRecord,
  type HandleRecord,
  affinityNode,
  allocationAt,
  freeCount,
  freeOrdinal,
  handleWith,
  newBlock,
  ordinalAddress,
  parseBlock,
  parseHandle,
  withAllocation,
} from './records.js';
import { unclaimedBlock } from './block-choice.js';

export interface AutoAssignRequest {
  handle: string;
  node: string;
  pools: PoolSpec[];
  attrs?: Record<string, string>;
}

export interface AssignIpRequest extends AutoAssignRequest {
  ip: string;
}

export interface Assignment {
  ip: string;
  /** The block's CIDR. */
  block: string;
  /** True when the block is affine to another node. */
  borrowed: boolean;
}

interface Who {
  handle: string;
  node: string;
  attrs: Record<string, string>;
}

function checkAttrs(attrs: unknown): Record<string, string> {
  if (attrs === undefined) return {};
  if (typeof attrs !== 'object' || attrs === null || Array.isArray(attrs))
    throw new IpamError('invalid', 'attrs must be an object of strings');
  for (const [k, v] of Object.entries(attrs)) {
    if (typeof v !== 'string')
      throw new IpamError('invalid', `attrs.${k} must be a string, not ${typeof v}`);
  }
  return { ...(attrs as Record<string, string>) };
}

function checkWho(req: AutoAssignRequest): Who {
  return {
    handle: checkName('handle', req.handle),
    node: checkName('node', req.node),
    attrs: checkAttrs(req.attrs),
  };
}

/** Stages the allocation of `ordinal` in `block` for `who`, and the handle's new record. */
function stageAllocation(
  ctx: IpamContext,
  tx: Cas,
  cidr: Cidr,
  block: BlockRecord,
  ordinal: number,
  who: Who,
  handle: HandleRecord | undefined,
): string {
  tx.put(ctx.keys.block(cidr), withAllocation(block, cidr, ordinal, { ...who, at: ctx.now() }));
  tx.put(ctx.keys.handle(who.handle), handleWith(handle, who.handle, formatCidr(cidr), ordinal));
  return ordinalAddress(cidr, ordinal);
}

/** Stages a new block affine to `who.node`, its affinity, and an allocation in it. */
function stageNewBlock(
  ctx: IpamContext,
  tx: Cas,
  cidr: Cidr,
  ordinal: number,
  who: Who,
  handle: HandleRecord | undefined,
): string {
  // Creating the block key is the claim: only one claimant can find it absent. A stale
  // affinity record of this node for the same CIDR is simply overwritten.
  tx.expect(ctx.keys.block(cidr), '0');
  tx.put(ctx.keys.affinity(who.node, cidr), {
    node: who.node,
    cidr: formatCidr(cidr),
    claimedAt: ctx.now().toISOString(),
  });
  return stageAllocation(ctx, tx, cidr, newBlock(cidr, who.node), ordinal, who, handle);
}

async function readHandle(
  ctx: IpamContext,
  tx: Cas,
  handle: string,
): Promise<HandleRecord | undefined> {
  const key = ctx.keys.handle(handle);
  const [kv] = await tx.get([key]);
  return kv ? parseHandle(key, kv.value) : undefined;
}

function blockOf(ctx: IpamContext, kv: KeyValue): { cidr: Cidr; block: BlockRecord } | undefined {
  const cidr = ctx.keys.blockCidr(kv.key);
  return cidr ? { cidr, block: parseBlock(kv.key, kv.value, cidr) } : undefined;
}

/** The address a handle already holds (its lowest), as an Assignment. */
async function heldAssignment(
  ctx: IpamContext,
  tx: Cas,
  h: HandleRecord,
  node: string,
): Promise<Assignment | undefined> {
  const first = Object.entries(h.blocks)
    .filter(([, ords]) => ords.length > 0)
    .map(([c, ords]) => ({
      cidr: parseCidr(c, `handle ${h.handle}: block`),
      ordinal: Math.min(...ords),
    }))
    .sort((a, b) => compareCidrs(a.cidr, b.cidr))[0];
  if (!first) return undefined;
  const [kv] = await tx.get([ctx.keys.block(first.cidr)]);
  const block = kv ? blockOf(ctx, kv)?.block : undefined;
  return {
    ip: ordinalAddress(first.cidr, first.ordinal),
    block: formatCidr(first.cidr),
    borrowed: block ? affinityNode(block) !== node : false,
  };
}

/** Step 1: a free address in one of the node's own blocks, pools in the caller's order. */
async function fromAffineBlocks(
  ctx: IpamContext,
  tx: Cas,
  pools: Pool[],
  who: Who,
  h: HandleRecord | undefined,
  affinities: KeyValue[],
): Promise<Assignment | undefined> {
  const rank = (c: Cidr) => pools.findIndex((p) => cidrWithin(c, p.cidr));
  const cidrs = affinities
    .map((kv) => ctx.keys.affinityOf(kv.key))
    .filter((a) => a !== undefined && a.node === who.node && rank(a.cidr) >= 0)
    .map((a) => a!.cidr)
    .sort((a, b) => rank(a) - rank(b) || compareCidrs(a, b));
  // Only the block used is compared: a full block that frees an address meanwhile
  // changes nothing here.
  const kvs = await tx.get(
    cidrs.map((c) => ctx.keys.block(c)),
    { compare: false },
  );
  for (const kv of kvs) {
    const found = kv && blockOf(ctx, kv);
    if (!found || affinityNode(found.block) !== who.node) continue;
    const ordinal = freeOrdinal(found.block, found.cidr);
    if (ordinal === undefined) continue;
    tx.expect(kv.key, kv.mod);
    return {
      ip: stageAllocation(ctx, tx, found.cidr, found.block, ordinal, who, h),
      block: formatCidr(found.cidr),
      borrowed: false,
    };
  }
  return undefined;
}

async function existingBlockCidrs(ctx: IpamContext, tx: Cas): Promise<Cidr[]> {
  return (await tx.list(ctx.keys.blocks, { keysOnly: true }))
    .map((kv) => ctx.keys.blockCidr(kv.key))
    .filter((c) => c !== undefined);
}

/** Step 2: claim a block no one has, affine to the node, and take its first address. */
async function fromNewBlock(
  ctx: IpamContext,
  tx: Cas,
  pools: Pool[],
  who: Who,
  h: HandleRecord | undefined,
): Promise<Assignment | undefined> {
  const existing = await existingBlockCidrs(ctx, tx);
  for (const pool of pools) {
    const cidr = unclaimedBlock(pool, existing, who.node);
    if (cidr)
      return {
        ip: stageNewBlock(ctx, tx, cidr, 0, who, h),
        block: formatCidr(cidr),
        borrowed: false,
      };
  }
  return undefined;
}

/** Step 3: a free address in any other block of the pools. Also counts what it saw. */
async function fromOtherBlocks(
  ctx: IpamContext,
  tx: Cas,
  pools: Pool[],
  who: Who,
  h: HandleRecord | undefined,
  borrow: boolean,
): Promise<Assignment | { freeElsewhere: number }> {
  const blocks = (await tx.list(ctx.keys.blocks))
    .flatMap((kv) => {
      const found = blockOf(ctx, kv);
      return found ? [{ kv, ...found }] : [];
    })
    .sort((a, b) => compareCidrs(a.cidr, b.cidr));
  let freeElsewhere = 0;
  for (const pool of pools) {
    for (const { kv, cidr, block } of blocks) {
      if (!cidrWithin(cidr, pool.cidr) || affinityNode(block) === who.node) continue;
      const ordinal = freeOrdinal(block, cidr);
      if (ordinal === undefined) continue;
      if (!borrow) {
        freeElsewhere += freeCount(block, cidr);
        continue;
      }
      tx.expect(kv.key, kv.mod);
      return {
        ip: stageAllocation(ctx, tx, cidr, block, ordinal, who, h),
        block: formatCidr(cidr),
        borrowed: true,
      };
    }
  }
  return { freeElsewhere };
}

export async function autoAssign(ctx: IpamContext, req: AutoAssignRequest): Promise<Assignment> {
  const who = checkWho(req);
  const pools = enabledPools(req.pools);
  return transact(ctx, `assigning an address to ${who.handle} on ${who.node}`, async (tx) => {
    // The handle and the node's affinities in one read. The affinities are guarded: if the
    // node claims another block meanwhile, this attempt starts again and uses it rather
    // than claiming one more.
    const hkey = ctx.keys.handle(who.handle);
    const read = await tx.read(
      [hkey],
      [{ prefix: ctx.keys.nodeAffinities(who.node), keysOnly: true, guard: true }],
    );
    const hkv = read.values[0];
    const h = hkv ? parseHandle(hkey, hkv.value) : undefined;
    const held = h && (await heldAssignment(ctx, tx, h, who.node));
    if (held) return held;
    const got =
      (await fromAffineBlocks(ctx, tx, pools, who, h, read.lists[0]!)) ??
      (await fromNewBlock(ctx, tx, pools, who, h));
    if (got) return got;
    const other = await fromOtherBlocks(ctx, tx, pools, who, h, !ctx.strictAffinity);
    if ('ip' in other) return other;
    const why = ctx.strictAffinity
      ? `node ${who.node}'s blocks are full, no block is left to claim, and strict affinity forbids borrowing (${other.freeElsewhere} addresses free in other nodes' blocks)`
      : 'every block is claimed and full';
    throw new IpamError(
      'exhausted',
      `no free address for ${who.handle} on node ${who.node} in pools ${describePools(pools)}: ${why}`,
    );
  });
}

/** The pool for a requested address: an enabled one that holds it, or a `no-pool` error saying why not. */
function poolFor(ip: string, specs: PoolSpec[]): Pool {
  const n = parseIp(ip);
  if (!Array.isArray(specs)) throw new IpamError('invalid', 'pools must be an array of pool specs');
  const all = specs.map(parsePool);
  const pool = poolContaining(
    all.filter((p) => !p.spec.disabled),
    n,
  );
  if (pool) return pool;
  const disabled = poolContaining(all, n);
  if (disabled)
    throw new IpamError(
      'no-pool',
      `${ip} is in pool ${disabled.spec.name} (${disabled.spec.cidr}), which is disabled`,
    );
  throw new IpamError(
    'no-pool',
    `${ip} is in none of the pools given${all.length ? `: ${describePools(all)}` : ' (none)'}`,
  );
}

export async function assignIp(ctx: IpamContext, req: AssignIpRequest): Promise<void> {
  const who = checkWho(req);
  const pool = poolFor(req.ip, req.pools);
  const ip = parseIp(req.ip);
  return transact(ctx, `assigning ${req.ip} to ${who.handle}`, async (tx) => {
    const h = await readHandle(ctx, tx, who.handle);
    // The block holding the address may predate a change of the pool's blockSize: look
    // for any existing block that holds it before working out a new one.
    const existing = await existingBlockCidrs(ctx, tx);
    const holding = existing.filter((c) => cidrContains(c, ip));
    if (holding.length > 1) {
      throw new IpamError(
        'conflict',
        `${req.ip} lies in overlapping blocks ${holding.map(formatCidr).join(', ')}; run ipam check`,
      );
    }
    const cidr = holding[0];
    if (!cidr) {
      const fresh = enclosingCidr(ip, pool.blockSize);
      const clash = existing.find((c) => cidrsOverlap(c, fresh));
      if (clash)
        throw new IpamError(
          'conflict',
          `block ${formatCidr(fresh)} for ${req.ip} would overlap block ${formatCidr(clash)}`,
        );
      stageNewBlock(ctx, tx, fresh, ip - fresh.base, who, h);
      return;
    }
    const [kv] = await tx.get([ctx.keys.block(cidr)]);
    const found = kv && blockOf(ctx, kv);
    if (!found) throw new RetryCas(); // released between the listing and the read
    const ordinal = ip - cidr.base;
    const taken = allocationAt(found.block, ordinal);
    if (taken?.handle === who.handle) return; // already ours: nothing to do
    if (taken)
      throw new IpamError('conflict', `${req.ip} is already assigned to handle ${taken.handle}`);
    const owner = affinityNode(found.block);
    if (ctx.strictAffinity && owner !== who.node) {
      throw new IpamError(
        'conflict',
        `${req.ip} is in block ${formatCidr(cidr)} of node ${owner ?? '(none)'}, and strict affinity forbids borrowing it for ${who.node}`,
      );
    }
    stageAllocation(ctx, tx, cidr, found.block, ordinal, who, h);
  });
}
