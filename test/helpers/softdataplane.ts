/**
 * An in-memory stand-in for the BPF policy maps: answers (set, peer, proto, port) →
 * verdict with the same two longest-prefix lookups tc_policy does, over a CompiledState
 * or over maps built by applying deltas one entry at a time.
 *
 * It reads the entries' fields, not the compiler's key strings, so a key that disagrees
 * with its entry cannot hide here (`checkKeys` finds it).
 */
import type { Direction, Packet, Verdict } from '../../src/policy/model.js';
import {
  addrKey,
  l4Key,
  type CompiledState,
  type Delta,
  type EndpointEntry,
  type PolAddrEntry,
  type PolL4Entry,
} from '../../src/policy/compile/index.js';

export interface MapVerdict {
  readonly action: 1 | 2;
  readonly flags: number;
  readonly ruleId: number;
  readonly classId: number;
}

export type Lookup =
  | { readonly ok: true; readonly verdict: MapVerdict }
  | { readonly ok: false; readonly miss: string };

/** The policy maps as tc_policy sees them. */
export interface PolicyMaps {
  readonly addr: Iterable<PolAddrEntry>;
  readonly l4: Iterable<PolL4Entry>;
  readonly endpoints: ReadonlyMap<number, EndpointEntry>;
}

interface Index {
  /** `${setId}/${bits}/${addr}` → class id */
  readonly addr: Map<string, number>;
  readonly l4: Map<string, PolL4Entry>;
}

function buildIndex(maps: PolicyMaps): Index {
  const addr = new Map<string, number>();
  for (const e of maps.addr) addr.set(`${e.setId}/${e.bits}/${e.addr}`, e.classId);
  const l4 = new Map<string, PolL4Entry>();
  for (const e of maps.l4) l4.set(`${e.classId}/${e.bits}/${e.l4}`, e);
  return { addr, l4 };
}

function masked(value: number, width: number, bits: number): number {
  const size = 2 ** (width - bits);
  return Math.floor(value / size) * size;
}

const indexes = new WeakMap<object, Index>();

function indexOf(maps: PolicyMaps): Index {
  let index = indexes.get(maps);
  if (index === undefined) {
    index = buildIndex(maps);
    indexes.set(maps, index);
  }
  return index;
}

/** Stage 1 then stage 2, longest prefix first, as the kernel's LPM tries do. */
export function lookup(maps: PolicyMaps, setId: number, peer: number, l4: number): Lookup {
  const index = indexOf(maps);
  let classId: number | undefined;
  for (let bits = 32; bits >= 0 && classId === undefined; bits--) {
    classId = index.addr.get(`${setId}/${bits}/${masked(peer, 32, bits)}`);
  }
  if (classId === undefined)
    return { ok: false, miss: `set ${setId} has no entry for peer ${peer}` };
  for (let bits = 24; bits >= 0; bits--) {
    const e = index.l4.get(`${classId}/${bits}/${masked(l4, 24, bits)}`);
    if (e !== undefined)
      return { ok: true, verdict: { action: e.action, flags: e.flags, ruleId: e.ruleId, classId } };
  }
  return { ok: false, miss: `class ${classId} (set ${setId}) has no entry for l4 ${l4}` };
}

/** The peer address as the BPF program reads it: the dotted quad as a u32. */
function u32(address: string): number {
  return address.split('.').reduce((acc, octet) => acc * 256 + Number(octet), 0);
}

/**
 * The stage-2 key tail as tc_policy builds it (bpf/tortie_maps.h): protocol << 16 | port,
 * port being dport for TCP, UDP, UDPLite and SCTP, (type << 8) | code for ICMP, else 0.
 */
export function l4OfPacket(packet: Packet): number {
  const port = [6, 17, 132, 136].includes(packet.protocol)
    ? packet.dport
    : packet.protocol === 1
      ? (packet.icmpType ?? 0) * 256 + (packet.icmpCode ?? 0)
      : 0;
  return packet.protocol * 65536 + port;
}

export type Judgement =
  | { readonly ok: true; readonly verdict: Verdict; readonly raw: MapVerdict }
  | { readonly ok: false; readonly miss: string };

/** The verdict for a packet at the local endpoint on `ifindex`, as a model Verdict. */
export function judge(
  state: CompiledState,
  ifindex: number,
  direction: Direction,
  packet: Packet,
): Judgement {
  const ep = state.endpoints.get(ifindex);
  if (ep === undefined) return { ok: false, miss: `no endpoint on ifindex ${ifindex}` };
  const setId = direction === 'ingress' ? ep.ingressSet : ep.egressSet;
  if (setId === 0) return { ok: false, miss: `endpoint ${ifindex} has no ${direction} set` };
  const peer = u32(direction === 'ingress' ? packet.saddr : packet.daddr);
  const found = lookup(mapsOf(state), setId, peer, l4OfPacket(packet));
  if (!found.ok) return found;
  const rule = state.rules.get(found.verdict.ruleId);
  if (rule === undefined)
    return { ok: false, miss: `rule id ${found.verdict.ruleId} is not in the rules table` };
  return {
    ok: true,
    raw: found.verdict,
    verdict: {
      action: found.verdict.action === 1 ? 'allow' : 'deny',
      rule,
      logged: (found.verdict.flags & 1) === 1,
    },
  };
}

const stateMaps = new WeakMap<CompiledState, PolicyMaps>();

function mapsOf(state: CompiledState): PolicyMaps {
  let maps = stateMaps.get(state);
  if (maps === undefined) {
    maps = {
      addr: [...state.addr.values()],
      l4: [...state.l4.values()],
      endpoints: state.endpoints,
    };
    stateMaps.set(state, maps);
  }
  return maps;
}

/** Problems with a state's own consistency: keys that do not match entries, dangling ids, missing defaults. */
export function checkState(state: CompiledState): string[] {
  const problems: string[] = [];
  const setIds = new Set<number>();
  const classIds = new Set<number>();
  const setsWithDefault = new Set<number>();
  const classesWithDefault = new Set<number>();
  const referencedClasses = new Set<number>();
  for (const [key, e] of state.addr) {
    if (key !== addrKey(e)) problems.push(`addr key ${key} holds ${JSON.stringify(e)}`);
    if (e.setId === 0 || e.classId === 0) problems.push(`addr entry with id 0: ${key}`);
    if (masked(e.addr, 32, e.bits) !== e.addr) problems.push(`addr entry ${key} has host bits set`);
    setIds.add(e.setId);
    referencedClasses.add(e.classId);
    if (e.bits === 0) setsWithDefault.add(e.setId);
  }
  for (const [key, e] of state.l4) {
    if (key !== l4Key(e)) problems.push(`l4 key ${key} holds ${JSON.stringify(e)}`);
    if (e.classId === 0 || e.ruleId === 0) problems.push(`l4 entry with id 0: ${key}`);
    if (masked(e.l4, 24, e.bits) !== e.l4) problems.push(`l4 entry ${key} has host bits set`);
    if (!state.rules.has(e.ruleId)) problems.push(`l4 entry ${key} names unknown rule ${e.ruleId}`);
    classIds.add(e.classId);
    if (e.bits === 0) classesWithDefault.add(e.classId);
  }
  for (const id of setIds)
    if (!setsWithDefault.has(id)) problems.push(`set ${id} has no bits-0 entry`);
  for (const id of classIds)
    if (!classesWithDefault.has(id)) problems.push(`class ${id} has no bits-0 entry`);
  for (const id of referencedClasses)
    if (!classIds.has(id)) problems.push(`class ${id} is referenced but absent`);
  for (const id of classIds)
    if (!referencedClasses.has(id)) problems.push(`class ${id} is not referenced by any set`);
  const usedSets = new Set<number>();
  for (const ep of state.endpoints.values()) {
    for (const id of [ep.ingressSet, ep.egressSet]) {
      usedSets.add(id);
      if (!setIds.has(id)) problems.push(`endpoint ${ep.ifindex} points at absent set ${id}`);
    }
  }
  for (const id of setIds)
    if (!usedSets.has(id)) problems.push(`set ${id} is not used by any endpoint`);
  return problems;
}

/**
 * Maps that take a delta one entry at a time, in the delta's order, calling `onStep`
 * after each write or delete — to check that no intermediate state can misjudge a packet.
 */
export class SoftMaps implements PolicyMaps {
  readonly addrMap = new Map<string, PolAddrEntry>();
  readonly l4Map = new Map<string, PolL4Entry>();
  readonly endpoints = new Map<number, EndpointEntry>();
  private version = 0;
  private cached: { version: number; maps: PolicyMaps } | undefined;

  get addr(): Iterable<PolAddrEntry> {
    return this.addrMap.values();
  }

  get l4(): Iterable<PolL4Entry> {
    return this.l4Map.values();
  }

  apply(delta: Delta, onStep?: (stage: keyof Delta) => void): void {
    const step = (stage: keyof Delta, change: () => void): void => {
      change();
      this.version++;
      onStep?.(stage);
    };
    for (const e of delta.l4Writes) step('l4Writes', () => this.l4Map.set(l4Key(e), e));
    for (const e of delta.addrWrites) step('addrWrites', () => this.addrMap.set(addrKey(e), e));
    for (const e of delta.endpointWrites)
      step('endpointWrites', () => this.endpoints.set(e.ifindex, e));
    for (const e of delta.endpointDeletes)
      step('endpointDeletes', () => this.endpoints.delete(e.ifindex));
    for (const e of delta.addrDeletes) step('addrDeletes', () => this.addrMap.delete(addrKey(e)));
    for (const e of delta.l4Deletes) step('l4Deletes', () => this.l4Map.delete(l4Key(e)));
  }

  /** A frozen view for `lookup` (re-indexed after every change). */
  snapshot(): PolicyMaps {
    if (this.cached === undefined || this.cached.version !== this.version) {
      this.cached = {
        version: this.version,
        maps: {
          addr: [...this.addrMap.values()],
          l4: [...this.l4Map.values()],
          endpoints: new Map(this.endpoints),
        },
      };
    }
    return this.cached.maps;
  }
}
