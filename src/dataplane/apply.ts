/**
 * Applies a compiler delta to the pinned maps, in the delta's order (new classes, new
 * sets, endpoints switching to them, then removals), so a packet never meets a
 * half-built set.
 *
 * The compiler speaks of one prefix table per stage; each entry is stored in the map of
 * its stage that holds its prefix length (src/maps/policy-keys.ts: a /32 in the
 * tortie_pol_ip32 hash, an exact port in tortie_pol_port, a class default in
 * tortie_pol_dflt, the rest in the tries; the source-port stage is one trie,
 * tortie_pol_sprt, written before the classes that point at it and deleted after them). Each (group, map) pair goes down in one
 * batch call. The compiler never changes a live set or class in place (new content gets
 * new ids), so the order of the maps within a group does not matter for its deltas;
 * still, writes go coarse to fine (the tries, which hold every set's /0, and the class
 * defaults first) and deletes fine to coarse, so no set or class is ever found without
 * its /0 while other entries of it are present.
 */
import type {
  Delta,
  EndpointEntry,
  PolAddrEntry,
  PolL4Entry,
  PolSportEntry,
} from '../policy/compile/index.js';
import { MAPS } from '../maps/catalog.js';
import type { Codec } from '../maps/codec.js';
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
import { NodeFlags } from '../maps/enums.js';
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

/** Address stage: the trie (with every set's /0) before the /32 hash. */
const ADDR_WRITE_ORDER: readonly AddrRole[] = ['polAddr', 'polIp32'];
/** Port stage: class defaults, then the trie, then the exact-port hash. */
const L4_WRITE_ORDER: readonly L4Role[] = ['polDflt', 'polL4', 'polPort'];

function concat<T>(items: readonly T[], codec: Codec<T>): Buffer {
  return Buffer.concat(items.map((i) => codec.encode(i)));
}

/** Keys (and values) of one stage's entries, grouped by the map they belong in. */
class Batches<Role extends string> {
  private readonly keys = new Map<Role, Buffer[]>();
  private readonly values = new Map<Role, Buffer[]>();

  add(role: Role, key: Buffer, value?: Buffer): void {
    let ks = this.keys.get(role);
    if (!ks) this.keys.set(role, (ks = []));
    ks.push(key);
    if (value) {
      let vs = this.values.get(role);
      if (!vs) this.values.set(role, (vs = []));
      vs.push(value);
    }
  }

  update(maps: Readonly<Record<Role, BpfMap>>, order: readonly Role[]): void {
    for (const role of order) {
      const ks = this.keys.get(role);
      if (ks) maps[role].updateBatch(Buffer.concat(ks), Buffer.concat(this.values.get(role)!));
    }
  }

  delete(maps: Readonly<Record<Role, BpfMap>>, order: readonly Role[]): void {
    for (const role of order) {
      const ks = this.keys.get(role);
      if (ks) maps[role].deleteBatch(Buffer.concat(ks));
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
    b.add(slot.map, encodeAddrKey(slot), withValues ? MAPS.polAddr.value.encode(value) : undefined);
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
    b.add(slot.map, encodeL4Key(slot), withValues ? MAPS.polL4.value.encode(value) : undefined);
  }
  return b;
}

function sportKeys(entries: readonly PolSportEntry[]): Buffer {
  return concat(
    entries.map((e) => polSportKey(e.classId, e.sport, e.bits)),
    MAPS.polSport.key,
  );
}

function writeSports(map: BpfMap, entries: readonly PolSportEntry[]): void {
  if (entries.length === 0) return;
  map.updateBatch(
    sportKeys(entries),
    concat(
      entries.map((e) => ({ action: e.action, flags: e.flags, reserved: 0, rule_id: e.ruleId })),
      MAPS.polSport.value,
    ),
  );
}

function ifindexKeys(entries: readonly EndpointEntry[]): Buffer {
  return Buffer.concat(entries.map((e) => u32Codec.encode(e.ifindex)));
}

function writeEndpoints(map: BpfMap, entries: readonly EndpointEntry[]): void {
  if (entries.length === 0) return;
  map.updateBatch(
    ifindexKeys(entries),
    concat(
      entries.map((e) => ({
        ip: e.ip,
        id: e.id,
        ingress_set: e.ingressSet,
        egress_set: e.egressSet,
        policy_rev: e.policyRev,
        flags: 0,
      })),
      endpointCodec,
    ),
  );
}

export function applyDelta(maps: PolicyMaps, delta: Delta): ApplyStats {
  writeSports(maps.polSport, delta.sportWrites);
  l4Batches(delta.l4Writes, true).update(maps, L4_WRITE_ORDER);
  addrBatches(delta.addrWrites, true).update(maps, ADDR_WRITE_ORDER);
  writeEndpoints(maps.ifaces, delta.endpointWrites);
  if (delta.endpointDeletes.length > 0) {
    maps.ifaces.deleteBatch(ifindexKeys(delta.endpointDeletes));
  }
  addrBatches(delta.addrDeletes, false).delete(maps, [...ADDR_WRITE_ORDER].reverse());
  l4Batches(delta.l4Deletes, false).delete(maps, [...L4_WRITE_ORDER].reverse());
  if (delta.sportDeletes.length > 0) maps.polSport.deleteBatch(sportKeys(delta.sportDeletes));
  return {
    writes:
      delta.sportWrites.length +
      delta.l4Writes.length +
      delta.addrWrites.length +
      delta.endpointWrites.length,
    deletes:
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
