/**
 * An in-memory stand-in for the BPF policy maps: answers (set, peer, proto, sport, port)
 * → verdict with the same longest-prefix lookups tc_policy does (two stages, a third
 * where stage 2 says the source port decides), over a CompiledState or over maps built
 * by applying deltas one entry at a time.
 *
 * It reads the entries' fields, not the compiler's key strings, so a key that disagrees
 * with its entry cannot hide here (`checkKeys` finds it).
 */
import type { Direction, Packet, Verdict } from '../../src/policy/model.js';
import {
  addrKey,
  l4Key,
  sportKey,
  type CompiledState,
  type Delta,
  type EndpointEntry,
  type PolAddrEntry,
  type PolL4Entry,
  type PolSportEntry,
} from '../../src/policy/compile/index.js';
import { pino, type Logger } from 'pino';
import { applyDelta } from '../../src/dataplane/apply.js';
import type { ConntrackPressure, CounterRow } from '../../src/dataplane/node-dataplane.js';
import { MAPS } from '../../src/maps/catalog.js';
import { u32Codec } from '../../src/maps/structs.js';
import type { BpfMap } from '../../src/native/types.js';
import {
  deletePinnedEndpoints,
  deletePinnedPolicy,
  readPinnedPolicy,
} from '../../src/agent/adopt.js';
import type { NodeNetns } from '../../src/agent/links.js';
import type { ManagerContext, Snapshot, Tally } from '../../src/agent/manager.js';
import { ClusterModel } from '../../src/agent/model.js';
import type { LocalEndpointInfo } from '../../src/agent/endpoints.js';
import type { MapRole, PolicyMapsPort } from '../../src/agent/managers/bpf-policy.js';
import type { KernelRoute } from '../../src/agent/routes.js';

export interface MapVerdict {
  readonly action: 1 | 2 | 3;
  readonly flags: number;
  readonly ruleId: number;
  readonly classId: number;
  /** The source-port class that decided (stage 3), if one did. */
  readonly sportClass?: number;
}

export type Lookup =
  | { readonly ok: true; readonly verdict: MapVerdict }
  | { readonly ok: false; readonly miss: string };

/** The policy maps as tc_policy sees them. */
export interface PolicyMaps {
  readonly addr: Iterable<PolAddrEntry>;
  readonly l4: Iterable<PolL4Entry>;
  readonly sport: Iterable<PolSportEntry>;
  readonly endpoints: ReadonlyMap<number, EndpointEntry>;
}

interface Index {
  /** `${setId}/${bits}/${addr}` → class id */
  readonly addr: Map<string, number>;
  readonly l4: Map<string, PolL4Entry>;
  readonly sport: Map<string, PolSportEntry>;
}

function buildIndex(maps: PolicyMaps): Index {
  const addr = new Map<string, number>();
  for (const e of maps.addr) addr.set(`${e.setId}/${e.bits}/${e.addr}`, e.classId);
  const l4 = new Map<string, PolL4Entry>();
  for (const e of maps.l4) l4.set(`${e.classId}/${e.bits}/${e.l4}`, e);
  const sport = new Map<string, PolSportEntry>();
  for (const e of maps.sport) sport.set(`${e.classId}/${e.bits}/${e.sport}`, e);
  return { addr, l4, sport };
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

/** Stage 1 then stage 2 (then 3), longest prefix first, as the kernel's LPM tries do. */
export function lookup(
  maps: PolicyMaps,
  setId: number,
  peer: number,
  l4: number,
  sport = 0,
): Lookup {
  const index = indexOf(maps);
  let classId: number | undefined;
  for (let bits = 32; bits >= 0 && classId === undefined; bits--) {
    classId = index.addr.get(`${setId}/${bits}/${masked(peer, 32, bits)}`);
  }
  if (classId === undefined)
    return { ok: false, miss: `set ${setId} has no entry for peer ${peer}` };
  for (let bits = 24; bits >= 0; bits--) {
    const e = index.l4.get(`${classId}/${bits}/${masked(l4, 24, bits)}`);
    if (e === undefined) continue;
    if (e.action !== 3)
      return { ok: true, verdict: { action: e.action, flags: e.flags, ruleId: e.ruleId, classId } };
    for (let sbits = 16; sbits >= 0; sbits--) {
      const s = index.sport.get(`${e.ruleId}/${sbits}/${masked(sport, 16, sbits)}`);
      if (s !== undefined)
        return {
          ok: true,
          verdict: {
            action: s.action,
            flags: s.flags,
            ruleId: s.ruleId,
            classId,
            sportClass: e.ruleId,
          },
        };
    }
    return { ok: false, miss: `source-port class ${e.ruleId} has no entry for ${sport}` };
  }
  return { ok: false, miss: `class ${classId} (set ${setId}) has no entry for l4 ${l4}` };
}

/** The source port as policy sees it: the packet's for TCP, UDP, UDPLite and SCTP, else 0. */
export function sportOfPacket(packet: Packet): number {
  return [6, 17, 132, 136].includes(packet.protocol) ? packet.sport : 0;
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
  const found = lookup(mapsOf(state), setId, peer, l4OfPacket(packet), sportOfPacket(packet));
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
      sport: [...state.sport.values()],
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
  const sportIds = new Set<number>();
  const sportsWithDefault = new Set<number>();
  const referencedSports = new Set<number>();
  for (const [key, e] of state.sport) {
    if (key !== sportKey(e)) problems.push(`sport key ${key} holds ${JSON.stringify(e)}`);
    if (e.classId === 0 || e.ruleId === 0) problems.push(`sport entry with id 0: ${key}`);
    if (masked(e.sport, 16, e.bits) !== e.sport)
      problems.push(`sport entry ${key} has host bits set`);
    if (e.action !== 1 && e.action !== 2)
      problems.push(`sport entry ${key} has action ${e.action}`);
    if (!state.rules.has(e.ruleId))
      problems.push(`sport entry ${key} names unknown rule ${e.ruleId}`);
    sportIds.add(e.classId);
    if (e.bits === 0) sportsWithDefault.add(e.classId);
  }
  for (const [key, e] of state.l4) {
    if (key !== l4Key(e)) problems.push(`l4 key ${key} holds ${JSON.stringify(e)}`);
    if (e.classId === 0 || e.ruleId === 0) problems.push(`l4 entry with id 0: ${key}`);
    if (masked(e.l4, 24, e.bits) !== e.l4) problems.push(`l4 entry ${key} has host bits set`);
    if (e.action === 3) {
      referencedSports.add(e.ruleId);
      if (!sportIds.has(e.ruleId))
        problems.push(`l4 entry ${key} names absent source-port class ${e.ruleId}`);
    } else if (!state.rules.has(e.ruleId))
      problems.push(`l4 entry ${key} names unknown rule ${e.ruleId}`);
    classIds.add(e.classId);
    if (e.bits === 0) classesWithDefault.add(e.classId);
  }
  for (const id of sportIds) {
    if (classIds.has(id)) problems.push(`id ${id} is both a class and a source-port class`);
    if (!sportsWithDefault.has(id)) problems.push(`source-port class ${id} has no bits-0 entry`);
    if (!referencedSports.has(id)) problems.push(`source-port class ${id} is not referenced`);
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
  readonly sportMap = new Map<string, PolSportEntry>();
  readonly endpoints = new Map<number, EndpointEntry>();
  private version = 0;
  private cached: { version: number; maps: PolicyMaps } | undefined;

  get addr(): Iterable<PolAddrEntry> {
    return this.addrMap.values();
  }

  get l4(): Iterable<PolL4Entry> {
    return this.l4Map.values();
  }

  get sport(): Iterable<PolSportEntry> {
    return this.sportMap.values();
  }

  apply(delta: Delta, onStep?: (stage: keyof Delta) => void): void {
    const step = (stage: keyof Delta, change: () => void): void => {
      change();
      this.version++;
      onStep?.(stage);
    };
    for (const e of delta.sportWrites) step('sportWrites', () => this.sportMap.set(sportKey(e), e));
    for (const e of delta.l4Writes) step('l4Writes', () => this.l4Map.set(l4Key(e), e));
    for (const e of delta.addrWrites) step('addrWrites', () => this.addrMap.set(addrKey(e), e));
    for (const e of delta.addrTrims) step('addrTrims', () => this.addrMap.delete(addrKey(e)));
    for (const e of delta.endpointWrites)
      step('endpointWrites', () => this.endpoints.set(e.ifindex, e));
    for (const e of delta.endpointDeletes)
      step('endpointDeletes', () => this.endpoints.delete(e.ifindex));
    for (const e of delta.addrDeletes) step('addrDeletes', () => this.addrMap.delete(addrKey(e)));
    for (const e of delta.l4Deletes) step('l4Deletes', () => this.l4Map.delete(l4Key(e)));
    for (const e of delta.sportDeletes)
      step('sportDeletes', () => this.sportMap.delete(sportKey(e)));
  }

  /** A frozen view for `lookup` (re-indexed after every change). */
  snapshot(): PolicyMaps {
    if (this.cached === undefined || this.cached.version !== this.version) {
      this.cached = {
        version: this.version,
        maps: {
          addr: [...this.addrMap.values()],
          l4: [...this.l4Map.values()],
          sport: [...this.sportMap.values()],
          endpoints: new Map(this.endpoints),
        },
      };
    }
    return this.cached.maps;
  }
}

// --- the agent's managers, in memory -------------------------------------------------
//
// Ports of src/agent/managers/* over in-memory state: BPF maps that keep the real
// encodings (so the adopt code reads and deletes what the apply code wrote), the routes
// map, the node namespace's links/addresses/routes, BIRD and the NAT chain. Failures are
// injected by setting `fail*` to an Error.

/** A BPF map in memory: the batch calls the apply and adopt code use, keyed by raw bytes. */
export class SoftBpfMap {
  readonly data = new Map<string, Buffer>();
  constructor(
    readonly name: string,
    private readonly keySize: number,
    private readonly valueSize: number,
    readonly maxEntries = 1024,
  ) {}
  updateBatch(keys: Buffer, values: Buffer): number {
    const n = keys.length / this.keySize;
    for (let i = 0; i < n; i++) {
      const k = keys.subarray(i * this.keySize, (i + 1) * this.keySize);
      this.data.set(
        k.toString('hex'),
        Buffer.from(values.subarray(i * this.valueSize, (i + 1) * this.valueSize)),
      );
    }
    return n;
  }
  deleteBatch(keys: Buffer): number {
    let n = 0;
    for (let i = 0; i < keys.length / this.keySize; i++) {
      if (this.data.delete(keys.subarray(i * this.keySize, (i + 1) * this.keySize).toString('hex')))
        n++;
    }
    return n;
  }
  entries(): { keys: Buffer[]; values: Buffer[] } {
    return {
      keys: [...this.data.keys()].map((k) => Buffer.from(k, 'hex')),
      values: [...this.data.values()],
    };
  }
  count(): number {
    return this.data.size;
  }
}

const POLICY_MAPS = ['polIp32', 'polAddr', 'polPort', 'polL4', 'polDflt', 'polSport'] as const;

/** The policy maps and tortie_ifaces in memory, as BpfPolicyManager's port. */
export class SoftPolicyDataplane implements PolicyMapsPort {
  readonly maps = {
    ifaces: new SoftBpfMap('tortie_ifaces', MAPS.ifaces.key.size, MAPS.ifaces.value.size),
    polIp32: new SoftBpfMap('tortie_pol_ip32', MAPS.polIp32.key.size, MAPS.polIp32.value.size),
    polAddr: new SoftBpfMap('tortie_pol_addr', MAPS.polAddr.key.size, MAPS.polAddr.value.size),
    polPort: new SoftBpfMap('tortie_pol_port', MAPS.polPort.key.size, MAPS.polPort.value.size),
    polL4: new SoftBpfMap('tortie_pol_l4', MAPS.polL4.key.size, MAPS.polL4.value.size),
    polDflt: new SoftBpfMap('tortie_pol_dflt', MAPS.polDflt.key.size, MAPS.polDflt.value.size),
    polSport: new SoftBpfMap('tortie_pol_sprt', MAPS.polSport.key.size, MAPS.polSport.value.size),
  };
  readonly others = {
    routes: new SoftBpfMap('tortie_routes', 8, 16),
    ct: new SoftBpfMap('tortie_ct', 16, 16, 4096),
    frags: new SoftBpfMap('tortie_frags', 8, 8),
  };
  readonly attached = new Set<number>();
  /** Set to make the next writes, attaches or reads fail. */
  failApply: Error | undefined;
  failAttach: Error | undefined;
  failCounters: Error | undefined;
  failConntrack: Error | undefined;
  failMap: { role: MapRole; error: Error } | undefined;
  counterRows: CounterRow[] = [];

  private get bpfMaps() {
    return this.maps as unknown as Record<keyof typeof this.maps, BpfMap>;
  }

  attach(ifindex: number): void {
    if (this.failAttach) throw this.failAttach;
    this.attached.add(ifindex);
  }
  readPinned() {
    return readPinnedPolicy(this.bpfMaps);
  }
  apply(delta: Parameters<PolicyMapsPort['apply']>[0]) {
    if (this.failApply) throw this.failApply;
    return applyDelta(this.bpfMaps as never, delta);
  }
  deleteEndpoints(ifindexes: readonly number[]): number {
    return deletePinnedEndpoints(this.bpfMaps, ifindexes);
  }
  deletePolicy(pinned: Parameters<PolicyMapsPort['deletePolicy']>[0]): number {
    return deletePinnedPolicy(this.bpfMaps, pinned);
  }
  counters(): CounterRow[] {
    if (this.failCounters) throw this.failCounters;
    return this.counterRows;
  }
  conntrack(): ConntrackPressure {
    if (this.failConntrack) throw this.failConntrack;
    return {
      entries: this.others.ct.count(),
      capacity: this.others.ct.maxEntries,
      created: 0n,
      removed: 0n,
      byEndpoint: [],
      countMs: 0,
    };
  }
  mapInfo(role: MapRole): { name: string; capacity: number } {
    if (this.failMap?.role === role) throw this.failMap.error;
    const m =
      role in this.maps
        ? this.maps[role as keyof typeof this.maps]
        : this.others[role as keyof typeof this.others];
    return { name: m.name, capacity: m.maxEntries };
  }
  mapCount(role: 'ifaces' | 'routes' | 'frags'): number {
    if (this.failMap?.role === role) throw this.failMap.error;
    return role === 'ifaces' ? this.maps.ifaces.count() : this.others[role].count();
  }

  /** ifindex → the endpoint entry tortie_ifaces holds. */
  endpoints() {
    const e = this.maps.ifaces.entries();
    return new Map(
      e.keys.map((k, i) => [u32Codec.decode(k), MAPS.ifaces.value.decode(e.values[i]!)]),
    );
  }

  /** Set ids some endpoint points at that have no entry in the address maps (drops: no policy). */
  danglingSets(): number[] {
    const present = new Set<number>();
    for (const k of this.maps.polIp32.entries().keys)
      present.add(MAPS.polIp32.key.decode(k).set_id);
    for (const k of this.maps.polAddr.entries().keys)
      present.add(MAPS.polAddr.key.decode(k).set_id);
    const out = new Set<number>();
    for (const e of this.endpoints().values())
      for (const s of [e.ingress_set, e.egress_set]) if (!present.has(s)) out.add(s);
    return [...out].sort((a, b) => a - b);
  }

  policyEntries(): number {
    return POLICY_MAPS.reduce((n, r) => n + this.maps[r].count(), 0);
  }
}

/** The routes map's local and remote entries, the uplink and host addresses, in memory. */
export class SoftRoutesMap {
  readonly local = new Map<string, number>();
  readonly remote = new Map<string, { nextHop: string; ipip: boolean }>();
  knownNodes: readonly string[] = [];
  uplinks: number[] = [];
  nodeConfig: { underlayIp: string; uplinkIfindex: number } | undefined;
  hostAddresses: readonly string[] = [];
  failRemote: Error | undefined;
  writes = 0;

  setLocalRoute(ip: string, ifindex: number): void {
    this.writes++;
    this.local.set(ip, ifindex);
  }
  deleteLocalRoute(ip: string): boolean {
    return this.local.delete(ip);
  }
  setRemoteRoute(cidr: string, nextHop: string, opts: { ipip: boolean }): void {
    if (this.failRemote) throw this.failRemote;
    this.writes++;
    this.remote.set(cidr, { nextHop, ipip: opts.ipip });
  }
  deleteRoute(cidr: string): boolean {
    return this.remote.delete(cidr) || this.local.delete(cidr.replace(/\/32$/, ''));
  }
  setKnownNodes(ips: readonly string[]): void {
    this.knownNodes = [...ips];
  }
  attachUplink(ifindex: number): void {
    this.uplinks.push(ifindex);
  }
  setNodeConfig(cfg: { underlayIp: string; uplinkIfindex: number }): void {
    this.nodeConfig = cfg;
  }
  setHostAddresses(ips: readonly string[]): { added: number; removed: number } {
    const before = new Set(this.hostAddresses);
    const added = ips.filter((ip) => !before.has(ip)).length;
    const removed = [...before].filter((ip) => !ips.includes(ip)).length;
    this.hostAddresses = [...ips];
    return { added, removed };
  }
}

/** The node namespace: links, addresses (ifindex → ips) and routes by protocol. */
export class SoftNetns implements NodeNetns {
  readonly links = new Map<string, number>();
  /** Interface name → MTU (absent: unknown). */
  readonly mtus = new Map<string, number>();
  readonly addresses = new Map<number, string[]>();
  readonly routes = new Map<number, KernelRoute[]>();
  readonly applied: string[][] = [];
  failDetect: Error | undefined;
  failRoutes: Error | undefined;

  async detectNodeAddress(): Promise<string | undefined> {
    if (this.failDetect) throw this.failDetect;
    for (const ips of this.addresses.values()) if (ips[0] !== undefined) return `${ips[0]}/24`;
    return undefined;
  }
  async listLinks(): Promise<Map<string, number>> {
    return new Map(this.links);
  }
  async linkMtu(name: string): Promise<number | undefined> {
    return this.mtus.get(name);
  }
  async findAddressInterface(ip: string): Promise<number | undefined> {
    for (const [ifindex, ips] of this.addresses) if (ips.includes(ip)) return ifindex;
    return undefined;
  }
  async listNodeAddresses(): Promise<string[]> {
    return [...this.addresses.values()].flat().sort();
  }
  async listKernelRoutes(proto: number): Promise<KernelRoute[]> {
    if (this.failRoutes) throw this.failRoutes;
    return [...(this.routes.get(proto) ?? [])];
  }
  async applyKernelRoutes(lines: readonly string[]): Promise<void> {
    this.applied.push([...lines]);
  }
}

/** Log lines as objects (level as pino's label), for tests that read what was logged. */
export function captureLogger(): {
  log: Logger;
  lines: { level: string; msg: string; [k: string]: unknown }[];
} {
  const lines: { level: string; msg: string }[] = [];
  const log = pino(
    { level: 'debug', formatters: { level: (label) => ({ level: label }) } },
    {
      write: (line: string) => void lines.push(JSON.parse(line) as { level: string; msg: string }),
    },
  );
  return { log, lines };
}

/** A ManagerContext whose triggers are counted. */
export function softContext(
  log: Logger,
  programmed = true,
): ManagerContext & {
  triggers: number;
  tally: Tally;
} {
  const ctx = {
    node: 'node-a',
    log,
    tally: { routeErrors: 0 },
    triggers: 0,
    trigger: () => void ctx.triggers++,
    programmed: () => programmed,
  };
  return ctx;
}

/** A snapshot with nothing in it but what the test gives. */
export function softSnapshot(over: Partial<Snapshot> = {}): Snapshot {
  return {
    world: {
      endpoints: [],
      namespaces: [],
      networkSets: [],
      tiers: [],
      profiles: [],
      policies: [],
    },
    model: new ClusterModel(),
    locals: [],
    links: new Map(),
    routes: { self: 'node-a', nodes: [], blocks: [], pools: [] },
    address: undefined,
    ...over,
  };
}

/** A local endpoint as resolveLocalEndpoints gives it. */
export function softLocal(
  name: string,
  ip: string,
  ifindex: number,
  id = ifindex,
): LocalEndpointInfo {
  return {
    endpoint: {
      key: `x/${name}`,
      namespace: 'x',
      name,
      ip,
      labels: { app: name },
      profiles: ['kns.x'],
      ports: [],
    },
    ifindex,
    id,
    interfaceName: `tor${ifindex}`,
    wep: { metadata: { resourceVersion: '1' } } as LocalEndpointInfo['wep'],
  };
}

/** An IPPool put into a model. */
export function putPool(model: ClusterModel, name: string, spec: Record<string, unknown>): void {
  model.apply({
    type: 'put',
    kind: 'IPPool',
    resource: {
      apiVersion: 'tortie.io/v1',
      kind: 'IPPool',
      metadata: { name, resourceVersion: '3' },
      spec,
    } as never,
    revision: '3',
    synthetic: false,
  });
}
