/**
 * `ipam gc`: releases what `check` calls leaked, then tidies what that leaves behind.
 * Every release re-reads the block in its own compare-and-swap transaction and frees an
 * allocation only if it is still the very one reported (same handle, same sequence
 * number), its handle is not live and it is older than the grace period — so gc never
 * frees a live address, nor one an ADD in flight has just taken.
 *
 * Then: empty orphan blocks are deleted (with their affinity), affinity records whose
 * block is gone are deleted, and handle records of dead handles lose references to
 * allocations they do not hold. None of those frees an address.
 */
import { type IpamContext, transact } from './context.js';
import {
  type IpamReport,
  type LeakedAddress,
  type LiveSet,
  DEFAULT_GRACE_MS,
  check,
} from './check.js';
import { formatCidr, parseCidr, parseIp } from './ipv4.js';
import {
  affinityNode,
  allocationTime,
  encodeHandle,
  heldIn,
  ordinalAddress,
  parseBlock,
  parseHandle,
  withoutAllocations,
} from './records.js';
import { RELEASE_BATCH, stageBlock, stageHandleUpdates } from './release.js';

async function releaseLeaksOfBlock(
  ctx: IpamContext,
  block: string,
  leaks: LeakedAddress[],
  live: LiveSet,
): Promise<string[]> {
  const cidr = parseCidr(block, 'leaked block');
  const graceMs = live.graceMs ?? DEFAULT_GRACE_MS;
  const wanted = new Map(leaks.map((l) => [parseIp(l.ip) - cidr.base, l]));
  return transact(ctx, `releasing leaks in block ${block}`, async (tx) => {
    const [kv] = await tx.get([ctx.keys.block(cidr)]);
    if (!kv) return [];
    const now = ctx.now().getTime();
    const r = withoutAllocations(parseBlock(kv.key, kv.value, cidr), (a) => {
      const leak = wanted.get(a.ordinal);
      const at = allocationTime(a);
      return (
        leak !== undefined &&
        a.handle === leak.handle &&
        a.seq.toString() === leak.seq &&
        !live.handles.has(a.handle) &&
        at !== undefined &&
        now - at.getTime() >= graceMs
      );
    });
    if (r.released.length === 0) return [];
    stageBlock(ctx, tx, cidr, r.block);
    await stageHandleUpdates(ctx, tx, new Map(), cidr, r.released);
    return r.released.map((a) => ordinalAddress(cidr, a.ordinal));
  });
}

/** Deletes an orphan block (and its affinity) if it is empty now and still the same orphan. */
async function deleteOrphanBlock(
  ctx: IpamContext,
  block: string,
  owner: string | null,
): Promise<boolean> {
  const cidr = parseCidr(block, 'orphan block');
  return transact(ctx, `deleting orphan block ${block}`, async (tx) => {
    const [kv] = await tx.get([ctx.keys.block(cidr)]);
    if (!kv) return false;
    const b = parseBlock(kv.key, kv.value, cidr);
    if (b.allocations.length > 0 || affinityNode(b) !== owner) return false;
    tx.delete(kv.key);
    if (owner !== null) tx.delete(ctx.keys.affinity(owner, cidr));
    return true;
  });
}

/** Deletes an affinity record whose block is gone or belongs to another node. */
async function deleteStaleAffinity(ctx: IpamContext, key: string): Promise<void> {
  const aff = ctx.keys.affinityOf(key);
  if (!aff) return;
  await transact(ctx, `deleting stale affinity ${key}`, async (tx) => {
    const [akv, bkv] = await tx.get([key, ctx.keys.block(aff.cidr)]);
    if (!akv) return;
    if (bkv && affinityNode(parseBlock(bkv.key, bkv.value, aff.cidr)) === aff.node) return;
    tx.delete(key);
  });
}

/** Drops a dead handle's references to allocations it does not hold. */
async function repairHandle(ctx: IpamContext, handle: string): Promise<void> {
  await transact(ctx, `repairing handle ${handle}`, async (tx) => {
    const hkey = ctx.keys.handle(handle);
    const [hkv] = await tx.get([hkey]);
    if (!hkv) return;
    const h = parseHandle(hkey, hkv.value, handle);
    const cidrs = Object.keys(h.blocks).map((c) => parseCidr(c, `handle ${handle}: block`));
    const kvs = await tx.get(cidrs.map((c) => ctx.keys.block(c)));
    const blocks: Record<string, number> = {};
    cidrs.forEach((cidr, i) => {
      const kv = kvs[i];
      const held = kv ? heldIn(parseBlock(kv.key, kv.value, cidr), handle).length : 0;
      const n = Math.min(held, h.blocks[formatCidr(cidr)] ?? 0);
      if (n > 0) blocks[formatCidr(cidr)] = n;
    });
    if (Object.keys(blocks).length === 0) tx.delete(hkey);
    else tx.put(hkey, encodeHandle({ handle, blocks }));
  });
}

export async function gc(ctx: IpamContext, live: LiveSet): Promise<IpamReport> {
  const report = await check(ctx, live);
  const byBlock = new Map<string, LeakedAddress[]>();
  for (const l of report.leaks) byBlock.set(l.block, [...(byBlock.get(l.block) ?? []), l]);
  const released: string[] = [];
  for (const [block, leaks] of byBlock) {
    for (let at = 0; at < leaks.length; at += RELEASE_BATCH) {
      released.push(
        ...(await releaseLeaksOfBlock(ctx, block, leaks.slice(at, at + RELEASE_BATCH), live)),
      );
    }
  }

  const dangling = new Set<string>();
  for (const i of report.inconsistencies) {
    if (i.kind === 'handle-without-allocation' && i.handle && !live.handles.has(i.handle))
      dangling.add(i.handle);
    if (i.kind === 'affinity-without-block') await deleteStaleAffinity(ctx, i.key);
  }
  for (const handle of dangling) await repairHandle(ctx, handle);

  const releasedBlocks: string[] = [];
  for (const o of report.orphanBlocks) {
    if (await deleteOrphanBlock(ctx, o.block, o.affinity)) releasedBlocks.push(o.block);
  }
  return { ...report, released, releasedBlocks };
}
