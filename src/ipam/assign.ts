/**
 * Handing out addresses. autoAssign looks in the node's own blocks, then claims a new
 * block for the node, then (unless strict affinity) borrows a free address from another
 * node's block; assignIp takes one named address. Each is one compare-and-swap
 * transaction writing the block and the handle together (and, for a new block, its
 * affinity), so an address is never given twice and a handle always matches its blocks.
 *
 * What Calico's IPAM honours is honoured here: IPReservations (a reserved address is never
 * handed out, a wholly reserved block never claimed), the pools' allowedUses, and the
 * IPAM configuration (config.ts): strictAffinity, autoAllocateBlocks (false: no new
 * blocks) and maxBlocksPerHost (a node owning that many blocks claims no more; as in
 * Calico, it then fails rather than borrow).
 *
 * Claiming differs from Calico's on purpose: Calico writes a pending affinity, then the
 * block, then confirms the affinity, because its Kubernetes datastore has no multi-key
 * transaction. etcd has one, so block, affinity, allocation and handle appear together.
 */
import { type Cas, type KeyValue, RetryCas } from './cas.js';
import { type IpamConfig, blockLimit, checkConfig, effectiveConfig } from './config.js';
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
  type PoolUse,
  allowsUse,
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
  encodeAffinity,
  encodeBlock,
  encodeHandle,
  freeCount,
  freeOrdinal,
  handleWith,
  heldIn,
  newBlock,
  ordinalAddress,
  parseBlock,
  parseHandle,
  parseStoredConfig,
  withAllocation,
} from './records.js';
import { type Reservations, parseReservations } from './reservations.js';
import { unclaimedBlock } from './block-choice.js';

export interface AutoAssignRequest {
  handle: string;
  node: string;
  pools: PoolSpec[];
  /** Secondary attributes of the allocation; "node" and "timestamp" are set by IPAM. */
  attrs?: Record<string, string>;
  /** The reservedCIDRs of every IPReservation, read by the caller just now. */
  reserved?: string[];
  /** What the address is for: pools whose allowedUses lack it are not used (default Workload). */
  use?: PoolUse;
  /**
   * The IPAMConfiguration "default" spec, when the caller has one; else the stored
   * `ipam/v2/config` record, else the Ipam options (config.ts).
   */
  config?: Partial<IpamConfig>;
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

const USES: readonly PoolUse[] = ['Workload', 'Tunnel'];

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

function checkUse(use: unknown): PoolUse {
  if (use === undefined) return 'Workload';
  if (!USES.includes(use as PoolUse))
    throw new IpamError('invalid', `use ${JSON.stringify(use)} is not one of ${USES.join(', ')}`);
  return use as PoolUse;
}

/** What one assignment works with, checked before any etcd call. */
interface Plan {
  who: Who;
  reservations: Reservations;
  requested: IpamConfig | undefined;
}

function plan(req: AutoAssignRequest): Plan {
  return {
    who: checkWho(req),
    reservations: parseReservations(req.reserved),
    requested: req.config === undefined ? undefined : checkConfig(req.config),
  };
}

/** The config in force: read with the transaction's first read (the record is compared at commit). */
function configOf(ctx: IpamContext, p: Plan, stored: KeyValue | undefined): IpamConfig {
  return effectiveConfig(
    p.requested,
    stored ? parseStoredConfig(stored.key, stored.value) : undefined,
    ctx.defaults,
  );
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
  tx.put(
    ctx.keys.block(cidr),
    encodeBlock(withAllocation(block, ordinal, { ...who, at: ctx.now() }), cidr),
  );
  tx.put(
    ctx.keys.handle(who.handle),
    encodeHandle(handleWith(handle, who.handle, formatCidr(cidr))),
  );
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
  // Creating the block key is the claim: only one claimant can find it absent. It is
  // staged first: on the Kubernetes datastore a transaction is written key by key, so a
  // claimant that loses has written nothing. Were the affinity first, a loser that created
  // it could undo it under the winner: the winner's write of the same record changes
  // nothing, so the API server keeps the loser's resourceVersion and the loser's guarded
  // delete still matches (seen as a block without affinity after 3 × 100 concurrent ADDs).
  // A stale affinity record of this node for the same CIDR is simply overwritten.
  tx.expect(ctx.keys.block(cidr), '0');
  const address = stageAllocation(
    ctx,
    tx,
    cidr,
    newBlock(cidr, who.node, ctx.now()),
    ordinal,
    who,
    handle,
  );
  tx.put(ctx.keys.affinity(who.node, cidr), encodeAffinity('confirmed'));
  return address;
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
  const cidrs = Object.entries(h.blocks)
    .filter(([, n]) => n > 0)
    .map(([c]) => parseCidr(c, `handle ${h.handle}: block`))
    .sort(compareCidrs);
  const kvs = await tx.get(cidrs.map((c) => ctx.keys.block(c)));
  for (const kv of kvs) {
    const found = kv && blockOf(ctx, kv);
    const first = found && heldIn(found.block, h.handle)[0];
    if (!found || !first) continue;
    return {
      ip: ordinalAddress(found.cidr, first.ordinal),
      block: formatCidr(found.cidr),
      borrowed: affinityNode(found.block) !== node,
    };
  }
  return undefined;
}

/** The node's affine blocks in the pools, in the pools' order. */
function affineCidrs(
  ctx: IpamContext,
  pools: Pool[],
  node: string,
  affinities: KeyValue[],
): Cidr[] {
  const rank = (c: Cidr) => pools.findIndex((p) => cidrWithin(c, p.cidr));
  return affinities
    .map((kv) => ctx.keys.affinityOf(kv.key))
    .filter((a) => a !== undefined && a.node === node && rank(a.cidr) >= 0)
    .map((a) => a!.cidr)
    .sort((a, b) => rank(a) - rank(b) || compareCidrs(a, b));
}

/** Step 1: a free address in one of the node's own blocks, pools in the caller's order. */
async function fromAffineBlocks(
  ctx: IpamContext,
  tx: Cas,
  p: Plan,
  cidrs: Cidr[],
  h: HandleRecord | undefined,
  /** Blocks already read in this attempt (with the handle): not read again. */
  read: ReadonlyMap<string, KeyValue | undefined> = new Map(),
): Promise<Assignment | undefined> {
  // Only the block used is compared: a full block that frees an address meanwhile
  // changes nothing here.
  const usable = cidrs.filter((c) => !p.reservations.covers(c)).map((c) => ctx.keys.block(c));
  const missing = usable.filter((k) => !read.has(k));
  const fresh = missing.length === 0 ? [] : await tx.get(missing, { compare: false });
  const byKey = new Map(read);
  missing.forEach((k, i) => byKey.set(k, fresh[i]));
  const kvs = usable.map((k) => byKey.get(k));
  for (const kv of kvs) {
    const found = kv && blockOf(ctx, kv);
    if (!found || affinityNode(found.block) !== p.who.node) continue;
    const ordinal = freeOrdinal(found.block, found.cidr, p.reservations.has);
    if (ordinal === undefined) continue;
    tx.expect(kv.key, kv.mod);
    return {
      ip: stageAllocation(ctx, tx, found.cidr, found.block, ordinal, p.who, h),
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

/** Step 2: claim a block no one has, affine to the node, and take its first free address. */
async function fromNewBlock(
  ctx: IpamContext,
  tx: Cas,
  p: Plan,
  pools: Pool[],
  h: HandleRecord | undefined,
): Promise<Assignment | undefined> {
  const existing = await existingBlockCidrs(ctx, tx);
  for (const pool of pools) {
    const cidr = unclaimedBlock(pool, existing, p.who.node, p.reservations.covers);
    if (!cidr) continue;
    const ordinal = freeOrdinal(newBlock(cidr, null), cidr, p.reservations.has)!;
    return {
      ip: stageNewBlock(ctx, tx, cidr, ordinal, p.who, h),
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
  p: Plan,
  pools: Pool[],
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
      if (!cidrWithin(cidr, pool.cidr) || affinityNode(block) === p.who.node) continue;
      const ordinal = freeOrdinal(block, cidr, p.reservations.has);
      if (ordinal === undefined) continue;
      if (!borrow) {
        freeElsewhere += freeCount(block, cidr, p.reservations.has);
        continue;
      }
      tx.expect(kv.key, kv.mod);
      return {
        ip: stageAllocation(ctx, tx, cidr, block, ordinal, p.who, h),
        block: formatCidr(cidr),
        borrowed: true,
      };
    }
  }
  return { freeElsewhere };
}

export async function autoAssign(ctx: IpamContext, req: AutoAssignRequest): Promise<Assignment> {
  const p = plan(req);
  const pools = enabledPools(req.pools, checkUse(req.use));
  return (await assignWhenPlanned(ctx, p.who, Promise.resolve({ p, pools })))!;
}

/** Assignments made in one transaction at most (each adds a handle and maybe a block). */
export const ASSIGN_BATCH = 32;

/**
 * Several autoAssigns of one node in one transaction, from the node's own blocks only:
 * a node's agent gathers the ADDs that arrive together (src/cni/server.ts), which would
 * otherwise each wait for the one before to commit. The blocks are read once and each
 * address taken from the block as the earlier ones of the batch left it; every block used
 * and every handle is compared at commit, so no address is ever given twice.
 *
 * Per request, in order: its Assignment, or undefined when this path does not serve it
 * (its handle already has a record, or the node's blocks have no free address for it):
 * the caller then runs autoAssign for it (new block, borrowing, idempotency, errors).
 */
export async function autoAssignMany(
  ctx: IpamContext,
  reqs: readonly AutoAssignRequest[],
): Promise<(Assignment | undefined)[]> {
  const planned = reqs.map((r) => ({ p: plan(r), pools: enabledPools(r.pools, checkUse(r.use)) }));
  const node = planned[0]?.p.who.node;
  if (node === undefined) return [];
  const handles = planned.map((x) => x.p.who.handle);
  if (planned.some((x) => x.p.who.node !== node) || new Set(handles).size !== handles.length)
    throw new IpamError('invalid', 'autoAssignMany takes distinct handles of one node');
  if (reqs.length > ASSIGN_BATCH)
    throw new IpamError('invalid', `autoAssignMany takes at most ${ASSIGN_BATCH} requests`);
  return transact(ctx, `assigning addresses to ${handles.join(', ')} on ${node}`, async (tx) => {
    const hkeys = handles.map((h) => ctx.keys.handle(h));
    const hinted = (ctx.affineHint?.get(node) ?? []).map((c) => ctx.keys.block(c));
    // As in assignWhenPlanned: handles, config and hinted blocks in one read, the node's
    // affinities guarded (a block claimed meanwhile restarts the attempt).
    const read = await tx.read(
      [...hkeys, ctx.keys.config, ...hinted],
      [{ prefix: ctx.keys.nodeAffinities(node), keysOnly: true, guard: true }],
      { compare: false },
    );
    hkeys.forEach((k, i) => tx.expect(k, read.values[i]?.mod ?? '0'));
    tx.expect(ctx.keys.config, read.values[hkeys.length]?.mod ?? '0');
    const fetched = new Map(hinted.map((k, i) => [k, read.values[hkeys.length + 1 + i]]));
    // The blocks as this batch leaves them: each allocation builds on the ones before.
    const working = new Map<string, { cidr: Cidr; block: BlockRecord }>();
    const out: (Assignment | undefined)[] = [];
    let hint: Cidr[] | undefined;
    for (const [i, { p, pools }] of planned.entries()) {
      if (read.values[i] !== undefined) {
        out.push(undefined); // a record already: autoAssign's idempotency answers it
        continue;
      }
      const owned = affineCidrs(ctx, pools, node, read.lists[0]!);
      hint ??= owned;
      const usable = owned.filter((c) => !p.reservations.covers(c));
      const unread = usable.map((c) => ctx.keys.block(c)).filter((k) => !fetched.has(k));
      if (unread.length > 0) {
        const more = await tx.get(unread, { compare: false });
        unread.forEach((k, j) => fetched.set(k, more[j]));
      }
      let got: Assignment | undefined;
      for (const cidr of usable) {
        const key = ctx.keys.block(cidr);
        let current = working.get(key);
        if (current === undefined) {
          const kv = fetched.get(key);
          const found = kv && blockOf(ctx, kv);
          if (!found || affinityNode(found.block) !== node) continue;
          current = found;
        }
        const ordinal = freeOrdinal(current.block, current.cidr, p.reservations.has);
        if (ordinal === undefined) continue;
        if (!working.has(key)) tx.expect(key, fetched.get(key)!.mod);
        working.set(key, {
          cidr: current.cidr,
          block: withAllocation(current.block, ordinal, { ...p.who, at: ctx.now() }),
        });
        tx.put(hkeys[i]!, encodeHandle(handleWith(undefined, p.who.handle, formatCidr(cidr))));
        got = { ip: ordinalAddress(cidr, ordinal), block: formatCidr(cidr), borrowed: false };
        break;
      }
      out.push(got);
    }
    for (const [key, { cidr, block }] of working) tx.put(key, encodeBlock(block, cidr));
    if (hint !== undefined) ctx.affineHint?.set(node, hint);
    return out;
  });
}

/**
 * autoAssign whose request is still being worked out (the caller's own reads: pools, node
 * labels, settings) while this starts its first read, which needs only the handle and the
 * node: the two reads overlap instead of following each other. Nothing is written before
 * `later` resolves; its rejection ends the call with that error, and `undefined` (the
 * caller decided on no automatic assignment) ends it with `undefined`, both having written
 * nothing.
 */
export async function autoAssignWhenReady(
  ctx: IpamContext,
  first: { handle: string; node: string },
  later: Promise<AutoAssignRequest | undefined>,
): Promise<Assignment | undefined> {
  const handle = checkName('handle', first.handle);
  const node = checkName('node', first.node);
  const ready = later.then((req) => {
    if (req === undefined) return undefined;
    if (req.handle !== handle || req.node !== node)
      throw new IpamError(
        'invalid',
        `the request for ${req.handle} on ${req.node} is not the one started for ${handle} on ${node}`,
      );
    return { p: plan(req), pools: enabledPools(req.pools, checkUse(req.use)) };
  });
  return assignWhenPlanned(ctx, { handle, node }, ready);
}

async function assignWhenPlanned(
  ctx: IpamContext,
  key: { handle: string; node: string },
  ready: Promise<{ p: Plan; pools: Pool[] } | undefined>,
): Promise<Assignment | undefined> {
  // A rejection is the caller's, read by whoever awaits the result (not unhandled here).
  ready.catch(() => undefined);
  return transact(ctx, `assigning an address to ${key.handle} on ${key.node}`, async (tx) => {
    // The handle, the config and the node's affinities in one read. The affinities are
    // guarded: if the node claims another block meanwhile, this attempt starts again and
    // uses it rather than claiming one more.
    // The node's blocks as the last assignment here found them are read with them, in the
    // same round trip: when the affinities still name those blocks (the usual case), the
    // free address is found without a second read. Read, not compared: only the block
    // used is (as below), so a stale hint costs a read, never correctness.
    const hkey = ctx.keys.handle(key.handle);
    const hinted = (ctx.affineHint?.get(key.node) ?? []).map((c) => ctx.keys.block(c));
    const [read, planned] = await Promise.all([
      tx.read(
        [hkey, ctx.keys.config, ...hinted],
        [{ prefix: ctx.keys.nodeAffinities(key.node), keysOnly: true, guard: true }],
        { compare: false },
      ),
      ready,
    ]);
    if (planned === undefined) return undefined;
    const { p, pools } = planned;
    const { who } = p;
    const [hkv, ckv] = read.values;
    tx.expect(hkey, hkv?.mod ?? '0');
    tx.expect(ctx.keys.config, ckv?.mod ?? '0');
    const config = configOf(ctx, p, ckv);
    const h = hkv ? parseHandle(hkey, hkv.value, who.handle) : undefined;
    const held = h && (await heldAssignment(ctx, tx, h, who.node));
    if (held) return held;
    const owned = affineCidrs(ctx, pools, who.node, read.lists[0]!);
    ctx.affineHint?.set(who.node, owned);
    const blocks = new Map(hinted.map((k, i) => [k, read.values[2 + i]]));
    const affine = await fromAffineBlocks(ctx, tx, p, owned, h, blocks);
    if (affine) return affine;
    const limit = blockLimit(config);
    if (owned.length >= limit) {
      throw new IpamError(
        'exhausted',
        `no free address for ${who.handle} on node ${who.node}: its ${owned.length} blocks in pools ${describePools(pools)} are full and it may own no more than ${limit} (IPAMConfiguration maxBlocksPerHost${config.maxBlocksPerHost > 0 ? '' : " is 0: Calico's limit of 20 holds"})`,
      );
    }
    if (config.autoAllocateBlocks) {
      const fresh = await fromNewBlock(ctx, tx, p, pools, h);
      if (fresh) return fresh;
    }
    const other = await fromOtherBlocks(ctx, tx, p, pools, h, !config.strictAffinity);
    if ('ip' in other) return other;
    const noClaim = config.autoAllocateBlocks
      ? 'no block is left to claim'
      : 'autoAllocateBlocks is false, so no new block is claimed';
    const why = config.strictAffinity
      ? `node ${who.node}'s blocks are full, ${noClaim}, and strict affinity forbids borrowing (${other.freeElsewhere} addresses free in other nodes' blocks)`
      : config.autoAllocateBlocks
        ? 'every block is claimed and full'
        : `${noClaim} and every existing block is full`;
    throw new IpamError(
      'exhausted',
      `no free address for ${who.handle} on node ${who.node} in pools ${describePools(pools)}${p.reservations.cidrs.length > 0 ? ' (reserved addresses excluded)' : ''}: ${why}`,
    );
  });
}

/** The pool for a requested address: an enabled one that holds it, or a `no-pool` error saying why not. */
function poolFor(ip: string, specs: PoolSpec[], use: PoolUse): Pool {
  const n = parseIp(ip);
  if (!Array.isArray(specs)) throw new IpamError('invalid', 'pools must be an array of pool specs');
  const all = specs.map(parsePool);
  const pool = poolContaining(
    all.filter((p) => !p.spec.disabled),
    n,
  );
  if (pool) {
    if (!allowsUse(pool.spec, use))
      throw new IpamError(
        'no-pool',
        `${ip} is in pool ${pool.spec.name} (${pool.spec.cidr}), whose allowedUses do not include ${use}`,
      );
    return pool;
  }
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
  const p = plan(req);
  const { who } = p;
  const pool = poolFor(req.ip, req.pools, checkUse(req.use));
  const ip = parseIp(req.ip);
  if (p.reservations.has(ip))
    throw new IpamError('conflict', `${req.ip} is reserved by an IPReservation`);
  return transact(ctx, `assigning ${req.ip} to ${who.handle}`, async (tx) => {
    const hkey = ctx.keys.handle(who.handle);
    const [hkv, ckv] = await tx.get([hkey, ctx.keys.config]);
    const config = configOf(ctx, p, ckv);
    const h = hkv ? parseHandle(hkey, hkv.value, who.handle) : undefined;
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
    if (taken && taken.handle === who.handle) return; // already ours: nothing to do
    if (taken)
      throw new IpamError(
        'conflict',
        `${req.ip} is already assigned to handle ${taken.handle ?? '(none)'}`,
      );
    if (!found.block.unallocated.includes(ordinal))
      throw new IpamError(
        'conflict',
        `${req.ip} is neither allocated nor free in block ${formatCidr(cidr)}; run ipam check`,
      );
    const owner = affinityNode(found.block);
    if (config.strictAffinity && owner !== who.node) {
      throw new IpamError(
        'conflict',
        `${req.ip} is in block ${formatCidr(cidr)} of node ${owner ?? '(none)'}, and strict affinity forbids borrowing it for ${who.node}`,
      );
    }
    stageAllocation(ctx, tx, cidr, found.block, ordinal, who, h);
  });
}
