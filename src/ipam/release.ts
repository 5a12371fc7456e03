/**
 * Giving addresses back: by handle (what a CNI DEL does), by address (an operator's
 * `ipam release`), and a leaving node's empty blocks. Each change of a block and of the
 * handles whose addresses it held is one compare-and-swap transaction. A block left with
 * no allocation and no affinity is deleted; an empty block affine to a node stays its
 * node's until releaseBlockAffinity (the node will reuse it).
 */
import { type Cas, RetryCas } from './cas.js';
import { type IpamContext, transact } from './context.js';
import {
  type Cidr,
  cidrContains,
  formatCidr,
  formatIp,
  parseCidr,
  parseIp,
  tryParseIp,
} from './ipv4.js';
import { IpamError } from './errors.js';
import { checkName } from './keys.js';
import {
  type Allocation,
  type BlockRecord,
  type HandleRecord,
  affinityNode,
  encodeBlock,
  encodeHandle,
  handleWithout,
  heldIn,
  isDisposable,
  ordinalAddress,
  parseBlock,
  parseHandle,
  withoutAllocations,
} from './records.js';

const byAddress = (a: string, b: string) => tryParseIp(a)! - tryParseIp(b)!;

/** Stages the block after a release: deleted when disposable, else rewritten. */
export function stageBlock(ctx: IpamContext, tx: Cas, cidr: Cidr, block: BlockRecord): void {
  const key = ctx.keys.block(cidr);
  if (isDisposable(block)) tx.delete(key);
  else tx.put(key, encodeBlock(block, cidr));
}

export async function releaseByHandle(ctx: IpamContext, handle: string): Promise<string[]> {
  return (await releaseByHandles(ctx, [handle]))[0]!;
}

/** Handles released in one transaction at most (each adds a handle and maybe a block). */
export const HANDLE_BATCH = 32;

/**
 * Releases every address of each handle, all in one transaction: a node's agent gathers
 * the releases of DELs that arrive together (src/cni/server.ts), which would otherwise
 * each wait for the one before to commit. The addresses released, per handle in order
 * ([] for a handle without a record). As for one handle: only the blocks a handle's
 * record names are looked at, and every record and block read is compared at commit.
 */
export async function releaseByHandles(
  ctx: IpamContext,
  handles: readonly string[],
): Promise<string[][]> {
  for (const h of handles) checkName('handle', h);
  const unique = [...new Set(handles)];
  if (unique.length > HANDLE_BATCH)
    throw new IpamError('invalid', `releaseByHandles takes at most ${HANDLE_BATCH} handles`);
  const what =
    unique.length === 1
      ? `releasing handle ${unique[0]}`
      : `releasing handles ${unique.join(', ')}`;
  const byHandle = await transact(ctx, what, async (tx) => {
    const hkeys = unique.map((h) => ctx.keys.handle(h));
    // The blocks this process last assigned from (assign.ts) are read with the handles: a
    // handle's block is usually one of them, and then needs no second read. Each block a
    // handle names is compared at commit, whichever read brought it.
    const hinted = [
      ...new Set([...(ctx.affineHint?.values() ?? [])].flat().map((c) => ctx.keys.block(c))),
    ];
    const got = await tx.get([...hkeys, ...hinted], { compare: false });
    const records = unique.map((h, i) => {
      const kv = got[i];
      tx.expect(hkeys[i]!, kv?.mod ?? '0');
      return kv ? parseHandle(hkeys[i]!, kv.value, h) : undefined;
    });
    // Each block any handle names, with the handles naming it.
    const blocks = new Map<string, { cidr: Cidr; handles: Set<string> }>();
    unique.forEach((h, i) => {
      for (const c of Object.keys(records[i]?.blocks ?? {})) {
        const cidr = parseCidr(c, `handle ${h}: block`);
        const key = ctx.keys.block(cidr);
        const entry = blocks.get(key) ?? { cidr, handles: new Set<string>() };
        entry.handles.add(h);
        blocks.set(key, entry);
      }
    });
    const known = new Map(hinted.map((k, i) => [k, got[unique.length + i]]));
    const missing = [...blocks.keys()].filter((k) => !known.has(k));
    const fresh = missing.length === 0 ? [] : await tx.get(missing);
    missing.forEach((k, i) => known.set(k, fresh[i]));
    for (const k of blocks.keys()) {
      if (!missing.includes(k)) tx.expect(k, known.get(k)?.mod ?? '0');
    }
    const released = new Map<string, string[]>(unique.map((h) => [h, []]));
    for (const [key, { cidr, handles: naming }] of blocks) {
      const kv = known.get(key);
      if (!kv) continue; // a dangling reference: nothing to free there (ipam check reports it)
      // The block says which of its addresses are a handle's (the handle only counts them).
      const r = withoutAllocations(
        parseBlock(kv.key, kv.value, cidr),
        (a) => a.handle !== null && naming.has(a.handle),
      );
      if (r.released.length === 0) continue;
      stageBlock(ctx, tx, cidr, r.block);
      for (const a of r.released) released.get(a.handle!)!.push(ordinalAddress(cidr, a.ordinal));
    }
    unique.forEach((_, i) => {
      if (records[i] !== undefined) tx.delete(hkeys[i]!);
    });
    return released;
  });
  return handles.map((h) => [...byHandle.get(h)!].sort(byAddress));
}

/**
 * Takes `released` allocations of `cidr` out of their handles' records (stages the
 * changes; a record left empty is deleted). `handles` holds records already read or changed
 * in this transaction and is updated.
 */
export async function stageHandleUpdates(
  ctx: IpamContext,
  tx: Cas,
  handles: Map<string, HandleRecord | null>,
  cidr: Cidr,
  released: readonly Allocation[],
): Promise<void> {
  const names = [...new Set(released.flatMap((a) => (a.handle === null ? [] : [a.handle])))];
  const unread = names.filter((n) => !handles.has(n));
  const kvs = await tx.get(unread.map((n) => ctx.keys.handle(n)));
  unread.forEach((n, i) => {
    const kv = kvs[i];
    handles.set(n, kv ? parseHandle(kv.key, kv.value, n) : null);
  });
  const block = formatCidr(cidr);
  for (const n of names) {
    const h = handles.get(n);
    if (!h) continue; // no record: nothing to update
    const next = handleWithout(h, block, released.filter((a) => a.handle === n).length);
    handles.set(n, next);
    if (next) tx.put(ctx.keys.handle(n), encodeHandle(next));
    else tx.delete(ctx.keys.handle(n));
  }
}

/** Addresses released per transaction: each touches at most this many blocks and handles. */
export const RELEASE_BATCH = 40;

/**
 * Releases the addresses, RELEASE_BATCH at a time: each batch is one transaction (its
 * blocks and the handles that held its addresses change together).
 */
export async function releaseIps(ctx: IpamContext, ips: string[]): Promise<string[]> {
  if (!Array.isArray(ips)) throw new IpamError('invalid', 'releaseIps takes an array of addresses');
  const wanted = [...new Set(ips.map(parseIp))];
  const released: string[] = [];
  for (let at = 0; at < wanted.length; at += RELEASE_BATCH) {
    released.push(...(await releaseBatch(ctx, wanted.slice(at, at + RELEASE_BATCH))));
  }
  return released.sort(byAddress);
}

async function releaseBatch(ctx: IpamContext, wanted: number[]): Promise<string[]> {
  const shown = wanted.slice(0, 3).map(formatIp).join(', ');
  return transact(ctx, `releasing ${shown}${wanted.length > 3 ? ', …' : ''}`, async (tx) => {
    const cidrs = (await tx.list(ctx.keys.blocks, { keysOnly: true }))
      .map((kv) => ctx.keys.blockCidr(kv.key))
      .filter((c): c is Cidr => c !== undefined && wanted.some((ip) => cidrContains(c, ip)));
    const kvs = await tx.get(cidrs.map((c) => ctx.keys.block(c)));
    const handles = new Map<string, HandleRecord | null>();
    const released: string[] = [];
    for (const [i, cidr] of cidrs.entries()) {
      const kv = kvs[i];
      if (!kv) throw new RetryCas(); // deleted between the listing and the read
      const ordinals = new Set(
        wanted.filter((ip) => cidrContains(cidr, ip)).map((ip) => ip - cidr.base),
      );
      const r = withoutAllocations(parseBlock(kv.key, kv.value, cidr), (a) =>
        ordinals.has(a.ordinal),
      );
      if (r.released.length === 0) continue;
      stageBlock(ctx, tx, cidr, r.block);
      await stageHandleUpdates(ctx, tx, handles, cidr, r.released);
      released.push(...r.released.map((a) => ordinalAddress(cidr, a.ordinal)));
    }
    return released;
  });
}

export async function addressesOf(ctx: IpamContext, handle: string): Promise<string[]> {
  checkName('handle', handle);
  return transact(ctx, `reading handle ${handle}`, async (tx) => {
    const key = ctx.keys.handle(handle);
    const [kv] = await tx.get([key]);
    if (!kv) return [];
    const h = parseHandle(key, kv.value, handle);
    const cidrs = Object.keys(h.blocks).map((c) => parseCidr(c, `handle ${handle}: block`));
    const kvs = await tx.get(cidrs.map((c) => ctx.keys.block(c)));
    return cidrs
      .flatMap((cidr, i) => {
        const bkv = kvs[i];
        if (!bkv) return [];
        return heldIn(parseBlock(bkv.key, bkv.value, cidr), handle).map((a) =>
          formatIp(cidr.base + a.ordinal),
        );
      })
      .sort(byAddress);
  });
}

/**
 * A node leaves: its empty blocks are deleted with their affinities (and stale affinity
 * keys whose block is gone or no longer the node's). A block that still holds addresses
 * stays the node's; `ipam check` reports it as an orphan once the node is gone, and
 * `ipam gc` deletes it when its addresses have been released.
 */
export async function releaseBlockAffinity(ctx: IpamContext, node: string): Promise<string[]> {
  checkName('node', node);
  const listing = await transact(ctx, `listing the blocks of ${node}`, (tx) =>
    tx.list(ctx.keys.nodeAffinities(node), { keysOnly: true }),
  );
  const freed: string[] = [];
  for (const { key } of listing) {
    const aff = ctx.keys.affinityOf(key);
    if (!aff || aff.node !== node) continue;
    const cidr = aff.cidr;
    const done = await transact(
      ctx,
      `releasing block ${formatCidr(cidr)} of ${node}`,
      async (tx) => {
        const [akv, bkv] = await tx.get([key, ctx.keys.block(cidr)]);
        if (!akv) return false;
        const block = bkv ? parseBlock(bkv.key, bkv.value, cidr) : undefined;
        if (block && affinityNode(block) === node && block.allocations.length > 0) return false;
        tx.delete(key);
        if (block && affinityNode(block) === node) tx.delete(bkv!.key);
        return block !== undefined && affinityNode(block) === node;
      },
    );
    if (done) freed.push(formatCidr(cidr));
  }
  return freed;
}
