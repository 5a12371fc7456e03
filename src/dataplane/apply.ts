/**
 * Applies a compiler delta to the pinned maps, so that a packet judged at any instant
 * of the update gets the verdict of the old policy or of the new one, never another:
 *
 *   1. new source-port classes, new classes (nothing points at them yet);
 *   2. address entries: new sets complete, and the new or changed entries of sets
 *      changed in place, longest prefix first;
 *   3. the entries sets changed in place no longer have, shortest prefix first;
 *   4. endpoints: switches to new sets and revision bumps (a tracked flow is judged
 *      again on its next packet, now against the complete new set);
 *   5. endpoints gone, then the sets, classes and source-port classes nothing uses,
 *      shortest prefix first.
 *
 * Why 2 and 3 keep every address on its old class or its new one: while longer entries
 * are written, an address whose new entry is in place finds it unless an old entry
 * longer still (one step 3 removes) matches it — then that is its old longest match;
 * an address whose new entry is not yet written finds only old entries. While entries
 * are removed shortest first, an address either still finds its old longest match (it
 * is longer than anything removed so far) or, once that is gone, its new one. Classes
 * never change under their id (new content gets a new id), so a class found is whole.
 * Removing unused sets shortest first also means a packet that read an endpoint's old
 * set id just before the switch finds its old entry or none (DROP_NO_POLICY), never a
 * shorter, wrong one.
 *
 * The compiler speaks of one prefix table per stage; each entry is stored in the map of
 * its stage that holds its prefix length (src/maps/policy-keys.ts: a /32 in the
 * tortie_pol_ip32 hash, an exact port in tortie_pol_port, a class default in
 * tortie_pol_dflt, the rest in the tries; the source-port stage is one trie,
 * tortie_pol_sprt). The programs try a stage's maps longest first, which is one longest
 * prefix match, so "longest first" is: the hash of full-length keys, then the trie by
 * falling prefix length, then the defaults — and deletes the reverse. Each (group, map)
 * pair goes down in one batch call, its keys in that order (a batch is applied key by
 * key, in order).
 */
import type {
  Delta,
  EndpointEntry,
  PolAddrEntry,
  PolL4Entry,
  PolSportEntry,
} from '../policy/compile/index.js';
import { MAPS } from '../maps/catalog.js';
import {
  polAddrSlot,
  polL4Slot,
  polSportKey,
  type PolAddrSlot,
  type PolL4Slot,
} from '../maps/policy-keys.js';
import { endpointCodec, u32Codec, type PolAddrVal, type VerdictValue } from '../maps/structs.js';
import type { BpfMap } from '../native/types.js';
import { ipToU32, u32ToIp } from '../maps/addr.js';
import { EndpointFlags, NodeFlags } from '../maps/enums.js';
import type { TypedMap } from '../maps/typed-map.js';
import type { NodeValue } from '../maps/structs.js';

export interface PolicyMaps {
  readonly ifaces: BpfMap;
  readonly polIp32: BpfMap;
  readonly polAddr: BpfMap;
  readonly polPort: BpfMap;
  readonly polL4: BpfMap;
  readonly polDflt: BpfMap;
  readonly polSport: BpfMap;
}

export interface ApplyStats {
  writes: number;
  deletes: number;
}

type AddrRole = PolAddrSlot['map'];
type L4Role = PolL4Slot['map'];

/** Address stage, longest first: the /32 hash, then the trie. */
const ADDR_LONGEST_FIRST: readonly AddrRole[] = ['polIp32', 'polAddr'];
/** Port stage, longest first: exact ports, the trie, the class defaults. */
const L4_LONGEST_FIRST: readonly L4Role[] = ['polPort', 'polL4', 'polDflt'];

/** Called after each single map change when given (then nothing is batched). */
export type EachChange = (change: { map: string; op: 'update' | 'delete' }) => void;

interface Item {
  readonly bits: number;
  readonly key: Buffer;
  readonly value: Buffer | undefined;
}

/** Keys (and values) of one stage's entries, grouped by the map they belong in. */
class Batches<Role extends string> {
  private readonly items = new Map<Role, Item[]>();

  add(role: Role, bits: number, key: Buffer, value?: Buffer): void {
    let list = this.items.get(role);
    if (!list) this.items.set(role, (list = []));
    list.push({ bits, key, value });
  }

  /** Writes, longest prefix first (`order`: the roles longest first). */
  update(maps: Readonly<Record<Role, BpfMap>>, order: readonly Role[], each?: EachChange): void {
    for (const role of order) {
      const list = this.items.get(role);
      if (!list) continue;
      list.sort((a, b) => b.bits - a.bits);
      if (each) {
        for (const i of list) {
          maps[role].updateBatch(i.key, i.value!);
          each({ map: role, op: 'update' });
        }
      } else {
        maps[role].updateBatch(
          Buffer.concat(list.map((i) => i.key)),
          Buffer.concat(list.map((i) => i.value!)),
        );
      }
    }
  }

  /** Deletes, shortest prefix first (`order`: the roles longest first, walked backwards). */
  delete(maps: Readonly<Record<Role, BpfMap>>, order: readonly Role[], each?: EachChange): void {
    for (const role of [...order].reverse()) {
      const list = this.items.get(role);
      if (!list) continue;
      list.sort((a, b) => a.bits - b.bits);
      if (each) {
        for (const i of list) {
          maps[role].deleteBatch(i.key);
          each({ map: role, op: 'delete' });
        }
      } else maps[role].deleteBatch(Buffer.concat(list.map((i) => i.key)));
    }
  }
}

function encodeAddrKey(slot: PolAddrSlot): Buffer {
  return slot.map === 'polIp32'
    ? MAPS.polIp32.key.encode(slot.key)
    : MAPS.polAddr.key.encode(slot.key);
}

function encodeL4Key(slot: PolL4Slot): Buffer {
  switch (slot.map) {
    case 'polPort':
      return MAPS.polPort.key.encode(slot.key);
    case 'polL4':
      return MAPS.polL4.key.encode(slot.key);
    case 'polDflt':
      return MAPS.polDflt.key.encode(slot.key);
  }
}

function addrBatches(entries: readonly PolAddrEntry[], withValues: boolean): Batches<AddrRole> {
  const b = new Batches<AddrRole>();
  for (const e of entries) {
    const slot = polAddrSlot(e.setId, e.addr, e.bits);
    const value: PolAddrVal = { class_id: e.classId };
    b.add(
      slot.map,
      e.bits,
      encodeAddrKey(slot),
      withValues ? MAPS.polAddr.value.encode(value) : undefined,
    );
  }
  return b;
}

function l4Batches(entries: readonly PolL4Entry[], withValues: boolean): Batches<L4Role> {
  const b = new Batches<L4Role>();
  for (const e of entries) {
    const slot = polL4Slot(e.classId, e.l4, e.bits);
    const value: VerdictValue = {
      action: e.action,
      flags: e.flags,
      reserved: 0,
      rule_id: e.ruleId,
    };
    b.add(
      slot.map,
      e.bits,
      encodeL4Key(slot),
      withValues ? MAPS.polL4.value.encode(value) : undefined,
    );
  }
  return b;
}

function sportBatches(entries: readonly PolSportEntry[], withValues: boolean): Batches<'polSport'> {
  const b = new Batches<'polSport'>();
  for (const e of entries) {
    const value = { action: e.action, flags: e.flags, reserved: 0, rule_id: e.ruleId };
    b.add(
      'polSport',
      e.bits,
      MAPS.polSport.key.encode(polSportKey(e.classId, e.sport, e.bits)),
      withValues ? MAPS.polSport.value.encode(value) : undefined,
    );
  }
  return b;
}

function ifindexKeys(entries: readonly EndpointEntry[]): Buffer {
  return Buffer.concat(entries.map((e) => u32Codec.encode(e.ifindex)));
}

function endpointValue(e: EndpointEntry): Buffer {
  return endpointCodec.encode({
    ip: e.ip,
    id: e.id,
    ingress_set: e.ingressSet,
    egress_set: e.egressSet,
    policy_rev: e.policyRev,
    flags: e.host === true ? EndpointFlags.HOST : EndpointFlags.NONE,
  });
}

function writeEndpoints(map: BpfMap, entries: readonly EndpointEntry[], each?: EachChange): void {
  if (entries.length === 0) return;
  if (each) {
    for (const e of entries) {
      map.updateBatch(u32Codec.encode(e.ifindex), endpointValue(e));
      each({ map: 'ifaces', op: 'update' });
    }
  } else map.updateBatch(ifindexKeys(entries), Buffer.concat(entries.map(endpointValue)));
}

function deleteEndpoints(map: BpfMap, entries: readonly EndpointEntry[], each?: EachChange): void {
  if (entries.length === 0) return;
  if (each) {
    for (const e of entries) {
      map.deleteBatch(u32Codec.encode(e.ifindex));
      each({ map: 'ifaces', op: 'delete' });
    }
  } else map.deleteBatch(ifindexKeys(entries));
}

/**
 * Applies `delta` in the order above. `each`: one map change at a time, called after
 * each (a test judges packets between them); without it every group is batched.
 */
export function applyDelta(maps: PolicyMaps, delta: Delta, each?: EachChange): ApplyStats {
  const sport = { polSport: maps.polSport };
  sportBatches(delta.sportWrites, true).update(sport, ['polSport'], each);
  l4Batches(delta.l4Writes, true).update(maps, L4_LONGEST_FIRST, each);
  addrBatches(delta.addrWrites, true).update(maps, ADDR_LONGEST_FIRST, each);
  addrBatches(delta.addrTrims, false).delete(maps, ADDR_LONGEST_FIRST, each);
  writeEndpoints(maps.ifaces, delta.endpointWrites, each);
  deleteEndpoints(maps.ifaces, delta.endpointDeletes, each);
  addrBatches(delta.addrDeletes, false).delete(maps, ADDR_LONGEST_FIRST, each);
  l4Batches(delta.l4Deletes, false).delete(maps, L4_LONGEST_FIRST, each);
  sportBatches(delta.sportDeletes, false).delete(sport, ['polSport'], each);
  return {
    writes:
      delta.sportWrites.length +
      delta.l4Writes.length +
      delta.addrWrites.length +
      delta.endpointWrites.length,
    deletes:
      delta.addrTrims.length +
      delta.endpointDeletes.length +
      delta.addrDeletes.length +
      delta.l4Deletes.length +
      delta.sportDeletes.length,
  };
}

export interface NodeSetStats {
  added: string[];
  removed: string[];
}

/**
 * Makes tortie_nodes hold exactly `ips` (the underlay addresses IPIP is accepted from),
 * by difference: the new ones are written first and the departed removed last, so a
 * node present before and after is never missing in between. Every address is
 * validated before anything is written.
 */
export function syncKnownNodes(
  nodes: TypedMap<number, NodeValue>,
  ips: readonly string[],
): NodeSetStats {
  const wanted = new Map<number, string>();
  for (const ip of ips) wanted.set(ipToU32(ip), ip);
  const present = new Set(nodes.entries().map(([addr]) => addr));
  const added: string[] = [];
  const removed: string[] = [];
  for (const [addr, ip] of wanted) {
    if (present.has(addr)) continue;
    nodes.update(addr, { flags: NodeFlags.NONE });
    added.push(ip);
  }
  for (const addr of present) {
    if (wanted.has(addr)) continue;
    nodes.delete(addr);
    removed.push(u32ToIp(addr));
  }
  return { added, removed };
}
