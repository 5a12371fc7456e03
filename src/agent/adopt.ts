/**
 * Restart without an unprotected window: adopting what a previous agent left pinned.
 *
 * The policy compiler starts empty in a new process, and hands out set and class ids
 * (source-port classes are numbered among the class ids)
 * from 1. The pinned maps, though, are full of a previous agent's sets and classes under
 * those very ids, and live endpoints point at them. Writing the new compilation under
 * the same ids would mix new entries into sets that live endpoints are using, and leave
 * old entries behind (a set then answers with a union of two policies): a half-built map.
 *
 * So the agent builds aside and swaps, as the compiler does within one process:
 *
 *  1. Before anything is written, read the pinned policy state: the highest set id,
 *     class id and policy revision in use, every pinned policy key, the endpoints.
 *  2. Every id the compiler emits is shifted above those (`IdSpace`): the first
 *     compilation lands in fresh sets and classes, written complete before any endpoint
 *     points at them (the delta's own order), then each endpoint switches in one map
 *     update. Revisions are shifted too, so every tracked flow is judged again, once,
 *     against the new sets (same policy: same verdict).
 *  3. Then the old entries go: first the pinned endpoints that are no longer local
 *     (fail closed: their veth drops everything), then — a moment later, so no packet
 *     that read an old set id is still on its way through the lookups — the old sets
 *     and classes.
 *
 * The shift lasts for the agent's life: ids grow by the number in use at each restart,
 * far from 2^32. Nothing is written before the first full sync from etcd.
 */
import type { DataplaneMaps } from '../loader/index.js';
import { MAPS } from '../maps/catalog.js';
import {
  ACTION_BY_SPORT,
  type Delta,
  type EndpointEntry,
  type PolAddrEntry,
  type PolL4Entry,
  type PolSportEntry,
} from '../policy/compile/index.js';
import type { EndpointValue } from '../maps/structs.js';
import { u32Codec } from '../maps/structs.js';
import { u32ToIp } from '../maps/addr.js';
import { RouteFlags, RouteType } from '../maps/enums.js';
import type { DesiredRoute } from './routes.js';

const U32_MAX = 0xffffffff;

type PolicyRole = 'polIp32' | 'polAddr' | 'polPort' | 'polL4' | 'polDflt' | 'polSport';

/** Policy maps in the order their old (pinned) entries are deleted: finest first. */
export const POLICY_DELETE_ORDER: readonly PolicyRole[] = [
  'polIp32',
  'polAddr',
  'polPort',
  'polL4',
  'polDflt',
  'polSport',
];

export interface PinnedPolicy {
  /** tortie_ifaces as pinned: ifindex → entry. */
  readonly endpoints: ReadonlyMap<number, EndpointValue>;
  readonly maxSetId: number;
  readonly maxClassId: number;
  readonly maxPolicyRev: number;
  /** Raw keys of every pinned policy entry, per map. */
  readonly keys: Readonly<Record<PolicyRole, readonly Buffer[]>>;
}

export function emptyPinnedPolicy(): PinnedPolicy {
  return {
    endpoints: new Map(),
    maxSetId: 0,
    maxClassId: 0,
    maxPolicyRev: 0,
    keys: { polIp32: [], polAddr: [], polPort: [], polL4: [], polDflt: [], polSport: [] },
  };
}

export function pinnedEntryCount(p: PinnedPolicy): number {
  return Object.values(p.keys).reduce((n, k) => n + k.length, 0);
}

/** Reads the pinned policy state (nothing is written). */
export function readPinnedPolicy(maps: Pick<DataplaneMaps, 'ifaces' | PolicyRole>): PinnedPolicy {
  let maxSetId = 0;
  let maxClassId = 0;
  let maxPolicyRev = 0;
  const endpoints = new Map<number, EndpointValue>();
  const ifaces = maps.ifaces.entries();
  ifaces.keys.forEach((k, i) => {
    const v = MAPS.ifaces.value.decode(ifaces.values[i]!);
    endpoints.set(u32Codec.decode(k), v);
    maxSetId = Math.max(maxSetId, v.ingress_set, v.egress_set);
    maxPolicyRev = Math.max(maxPolicyRev, v.policy_rev);
  });

  const keys = {} as Record<PolicyRole, Buffer[]>;
  const ip32 = maps.polIp32.entries();
  keys.polIp32 = ip32.keys;
  ip32.keys.forEach((k, i) => {
    maxSetId = Math.max(maxSetId, MAPS.polIp32.key.decode(k).set_id);
    maxClassId = Math.max(maxClassId, MAPS.polIp32.value.decode(ip32.values[i]!).class_id);
  });
  const addr = maps.polAddr.entries();
  keys.polAddr = addr.keys;
  addr.keys.forEach((k, i) => {
    maxSetId = Math.max(maxSetId, MAPS.polAddr.key.decode(k).set_id);
    maxClassId = Math.max(maxClassId, MAPS.polAddr.value.decode(addr.values[i]!).class_id);
  });
  // A BY_SPORT verdict names a source-port class (class ids) in its rule id.
  const sportClass = (value: Buffer): number => {
    const v = MAPS.polPort.value.decode(value);
    return v.action === ACTION_BY_SPORT ? v.rule_id : 0;
  };
  const port = maps.polPort.entries();
  keys.polPort = port.keys;
  port.keys.forEach((k, i) => {
    maxClassId = Math.max(
      maxClassId,
      MAPS.polPort.key.decode(k).class_id,
      sportClass(port.values[i]!),
    );
  });
  const l4 = maps.polL4.entries();
  keys.polL4 = l4.keys;
  l4.keys.forEach((k, i) => {
    maxClassId = Math.max(maxClassId, MAPS.polL4.key.decode(k).class_id, sportClass(l4.values[i]!));
  });
  const dflt = maps.polDflt.entries();
  keys.polDflt = dflt.keys;
  dflt.keys.forEach((k, i) => {
    maxClassId = Math.max(maxClassId, u32Codec.decode(k), sportClass(dflt.values[i]!));
  });
  const sport = maps.polSport.entries();
  keys.polSport = sport.keys;
  for (const k of sport.keys)
    maxClassId = Math.max(maxClassId, MAPS.polSport.key.decode(k).class_id);
  return { endpoints, maxSetId, maxClassId, maxPolicyRev, keys };
}

/** Compiler ids → map ids: shifted above everything a previous agent left pinned. */
export class IdSpace {
  constructor(
    readonly setOffset: number,
    readonly classOffset: number,
    readonly revOffset: number,
  ) {}

  static above(pinned: Pick<PinnedPolicy, 'maxSetId' | 'maxClassId' | 'maxPolicyRev'>): IdSpace {
    return new IdSpace(pinned.maxSetId, pinned.maxClassId, pinned.maxPolicyRev);
  }

  set(id: number): number {
    return shift(id, this.setOffset, 'policy set');
  }

  cls(id: number): number {
    return shift(id, this.classOffset, 'policy class');
  }

  /** Revisions (1 and up) wrap within 1..2^32-1: only inequality matters to conntrack. */
  rev(rev: number): number {
    return ((rev + this.revOffset - 1) % U32_MAX) + 1;
  }

  endpoint(e: EndpointEntry): EndpointEntry {
    return {
      ...e,
      ingressSet: this.set(e.ingressSet),
      egressSet: this.set(e.egressSet),
      policyRev: this.rev(e.policyRev),
    };
  }

  addr(e: PolAddrEntry): PolAddrEntry {
    return { ...e, setId: this.set(e.setId), classId: this.cls(e.classId) };
  }

  l4(e: PolL4Entry): PolL4Entry {
    return {
      ...e,
      classId: this.cls(e.classId),
      ruleId: e.action === ACTION_BY_SPORT ? this.cls(e.ruleId) : e.ruleId,
    };
  }

  sport(e: PolSportEntry): PolSportEntry {
    return { ...e, classId: this.cls(e.classId) };
  }

  delta(d: Delta): Delta {
    if (this.setOffset === 0 && this.classOffset === 0 && this.revOffset === 0) return d;
    return {
      sportWrites: d.sportWrites.map((e) => this.sport(e)),
      l4Writes: d.l4Writes.map((e) => this.l4(e)),
      addrWrites: d.addrWrites.map((e) => this.addr(e)),
      addrTrims: d.addrTrims.map((e) => this.addr(e)),
      endpointWrites: d.endpointWrites.map((e) => this.endpoint(e)),
      endpointDeletes: d.endpointDeletes.map((e) => this.endpoint(e)),
      addrDeletes: d.addrDeletes.map((e) => this.addr(e)),
      l4Deletes: d.l4Deletes.map((e) => this.l4(e)),
      sportDeletes: d.sportDeletes.map((e) => this.sport(e)),
    };
  }
}

function shift(id: number, offset: number, what: string): number {
  const out = id + offset;
  if (out > U32_MAX) {
    throw new RangeError(
      `${what} id ${id} shifted by ${offset} leaves the u32 range: drain the node and remove its pins so ids start again from 1`,
    );
  }
  return out;
}

/** Pinned endpoints the new compilation no longer has: to delete before the old sets. */
export function staleEndpoints(pinned: PinnedPolicy, current: ReadonlySet<number>): number[] {
  return [...pinned.endpoints.keys()]
    .filter((ifindex) => !current.has(ifindex))
    .sort((a, b) => a - b);
}

/** Deletes the given ifaces entries, then every pinned policy entry (finest map first). */
export function deletePinnedEndpoints(
  maps: Pick<DataplaneMaps, 'ifaces'>,
  ifindexes: readonly number[],
): number {
  if (ifindexes.length === 0) return 0;
  return maps.ifaces.deleteBatch(Buffer.concat(ifindexes.map((i) => u32Codec.encode(i))));
}

export function deletePinnedPolicy(
  maps: Pick<DataplaneMaps, PolicyRole>,
  pinned: PinnedPolicy,
): number {
  let n = 0;
  for (const role of POLICY_DELETE_ORDER) {
    const keys = pinned.keys[role];
    if (keys.length > 0) n += maps[role].deleteBatch(Buffer.concat(keys));
  }
  return n;
}

/** What a previous agent left in the routes map: local /32s and remote routes. */
export function readPinnedRoutes(routes: Iterable<[RouteKeyView, RouteValueView]>): {
  local: Map<string, number>;
  remote: Map<string, DesiredRoute>;
} {
  const local = new Map<string, number>();
  const remote = new Map<string, DesiredRoute>();
  for (const [k, v] of routes) {
    const ip = u32ToIp(k.addr);
    if (v.type === RouteType.LOCAL_EP && k.prefixlen === 32) local.set(ip, v.ifindex);
    else if (v.type === RouteType.REMOTE_BLOCK) {
      const cidr = `${ip}/${k.prefixlen}`;
      remote.set(cidr, {
        cidr,
        node: '',
        nextHop: u32ToIp(v.next_hop),
        ipip: (v.flags & RouteFlags.IPIP) !== 0,
        vxlan: (v.flags & RouteFlags.VXLAN) !== 0,
      });
    }
  }
  return { local, remote };
}

interface RouteKeyView {
  readonly prefixlen: number;
  readonly addr: number;
}
interface RouteValueView {
  readonly type: number;
  readonly ifindex: number;
  readonly next_hop: number;
  readonly flags: number;
}
