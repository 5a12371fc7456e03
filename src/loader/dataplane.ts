/**
 * Loading bpf/tc_policy.o: configure, load (the verifier runs here), pin every map
 * under pinRoot — adopting what a previous agent pinned there, so conntrack, policy,
 * routes, the node's tunnel configuration and counters survive a restart — and hand
 * out the maps and programs.
 */
import { existsSync } from 'node:fs';
import { isNativeError, native } from '../native/index.js';
import type { BpfMap, BpfObject, BpfProgram } from '../native/types.js';
import { EVENTS_MAP_NAME, MAPS, type MapRole, type MapSpec } from '../maps/catalog.js';
import { PerCpuMap, TypedMap } from '../maps/typed-map.js';
import type {
  CtEntry,
  CtKey,
  EndpointValue,
  FragKey,
  FragVal,
  MetricsKey,
  MetricsVal,
  NodeConfigValue,
  NodeValue,
  PolAddrKey,
  PolAddrVal,
  PolIp32Key,
  PolL4Key,
  PolPortKey,
  PolSportKey,
  RouteKey,
  RouteValue,
  VerdictValue,
} from '../maps/structs.js';
import {
  attachPrograms,
  attachUplinkPrograms,
  detachPrograms,
  detachUplinkPrograms,
  type NetnsOption,
} from './attach.js';
import { configGlobals, type DataplaneConfig } from './config.js';
import { defaultObjectPath } from './object-path.js';
import { ensurePinRoot } from './pins.js';

export interface LoadOptions {
  /** Default: bpf/tc_policy.o of this package. */
  readonly objectPath?: string;
  /** bpffs directory for the map pins, e.g. /sys/fs/bpf/tortie. Created when missing. */
  readonly pinRoot: string;
  readonly config?: DataplaneConfig;
}

export const PROGRAM_NAMES = {
  fromPod: 'tortie_from_pod',
  toPod: 'tortie_to_pod',
  fromUplink: 'tortie_from_uplink',
  toUplink: 'tortie_to_uplink',
} as const;

export type DataplaneMaps = Record<MapRole | 'events', BpfMap>;

/** The maps through their codecs. */
export interface DataplaneViews {
  readonly ifaces: TypedMap<number, EndpointValue>;
  readonly routes: TypedMap<RouteKey, RouteValue>;
  /** The nodes IPIP is accepted from, by underlay address. */
  readonly nodes: TypedMap<number, NodeValue>;
  /** This node's underlay address and uplink: the one entry at key 0. */
  readonly nodeCfg: TypedMap<number, NodeConfigValue>;
  /** Policy, address stage: /32s (hash), then shorter prefixes (trie). */
  readonly polIp32: TypedMap<PolIp32Key, PolAddrVal>;
  readonly polAddr: TypedMap<PolAddrKey, PolAddrVal>;
  /** Policy, port stage: exact ports (hash), then prefixes (trie), then class defaults (hash by class id). */
  readonly polPort: TypedMap<PolPortKey, VerdictValue>;
  readonly polL4: TypedMap<PolL4Key, VerdictValue>;
  readonly polDflt: TypedMap<number, VerdictValue>;
  /** Policy, source-port stage (one trie), reached through a BY_SPORT port-stage verdict. */
  readonly polSport: TypedMap<PolSportKey, VerdictValue>;
  readonly ct: TypedMap<CtKey, CtEntry>;
  /** Conntrack entries created, by endpoint id (0: unknown, or the map full). */
  readonly ctNew: PerCpuMap<number, bigint>;
  /** New-flow budgets of sending pods (empty while the budget is off). */
  readonly ctBudget: TypedMap<number, bigint>;
  readonly frags: TypedMap<FragKey, FragVal>;
  readonly metrics: PerCpuMap<MetricsKey, MetricsVal>;
  readonly evLost: PerCpuMap<number, bigint>;
}

export interface Dataplane {
  readonly objectPath: string;
  readonly pinRoot: string;
  readonly maps: DataplaneMaps;
  readonly views: DataplaneViews;
  readonly programs: {
    readonly fromPod: BpfProgram;
    readonly toPod: BpfProgram;
    readonly fromUplink: BpfProgram;
    readonly toUplink: BpfProgram;
  };
  /** tc ingress ← tortie_from_pod, tc egress ← tortie_to_pod; replaces what was there. */
  attachToEndpoint(ifindex: number, opts?: NetnsOption): void;
  /** Removes both; false when nothing was attached. */
  detachFromEndpoint(ifindex: number, opts?: NetnsOption): boolean;
  /**
   * The node's uplink: tc ingress ← tortie_from_uplink, tc egress ← tortie_to_uplink;
   * replaces what was there.
   */
  attachToUplink(ifindex: number, opts?: NetnsOption): void;
  /** Removes both; false when nothing was attached. */
  detachFromUplink(ifindex: number, opts?: NetnsOption): boolean;
  /** Releases the object (attached programs and pinned maps stay). */
  close(): void;
}

/** An error of the native layer with libbpf's log, when it kept one. */
export function describe(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const log = isNativeError(e) && e.libbpfLog ? `\nlibbpf: ${e.libbpfLog}` : '';
  return `${e.message}${log}`;
}

/** A map of the loaded object must have the layout its codecs assume. */
function checkMap(map: BpfMap, spec: MapSpec<unknown, unknown>): void {
  const info = map.info();
  const problems: string[] = [];
  if (info.typeName !== spec.typeName)
    problems.push(`type ${info.typeName}, expected ${spec.typeName}`);
  if (info.keySize !== spec.key.size)
    problems.push(`key ${info.keySize} bytes, codec ${spec.key.size}`);
  if (info.valueSize !== spec.value.size)
    problems.push(`value ${info.valueSize} bytes, codec ${spec.value.size}`);
  if (problems.length > 0) {
    throw new Error(
      `map ${spec.name} does not match its codecs: ${problems.join('; ')} (rebuild bpf/ and src/maps together)`,
    );
  }
}

function openMaps(obj: BpfObject): DataplaneMaps {
  const maps: Partial<DataplaneMaps> = {};
  for (const [role, spec] of Object.entries(MAPS) as [MapRole, MapSpec<unknown, unknown>][]) {
    const map = obj.map(spec.name);
    checkMap(map, spec);
    maps[role] = map;
  }
  maps.events = obj.map(EVENTS_MAP_NAME);
  return maps as DataplaneMaps;
}

function viewsOf(maps: DataplaneMaps): DataplaneViews {
  return {
    ifaces: new TypedMap(maps.ifaces, MAPS.ifaces),
    routes: new TypedMap(maps.routes, MAPS.routes),
    nodes: new TypedMap(maps.nodes, MAPS.nodes),
    nodeCfg: new TypedMap(maps.nodeCfg, MAPS.nodeCfg),
    polIp32: new TypedMap(maps.polIp32, MAPS.polIp32),
    polAddr: new TypedMap(maps.polAddr, MAPS.polAddr),
    polPort: new TypedMap(maps.polPort, MAPS.polPort),
    polL4: new TypedMap(maps.polL4, MAPS.polL4),
    polDflt: new TypedMap(maps.polDflt, MAPS.polDflt),
    polSport: new TypedMap(maps.polSport, MAPS.polSport),
    ct: new TypedMap(maps.ct, MAPS.ct),
    ctNew: new PerCpuMap(maps.ctNew, MAPS.ctNew),
    ctBudget: new TypedMap(maps.ctBudget, MAPS.ctBudget),
    frags: new TypedMap(maps.frags, MAPS.frags),
    metrics: new PerCpuMap(maps.metrics, MAPS.metrics),
    evLost: new PerCpuMap(maps.evLost, MAPS.evLost),
  };
}

export function loadDataplane(options: LoadOptions): Dataplane {
  const objectPath = options.objectPath ?? defaultObjectPath();
  if (!existsSync(objectPath)) {
    throw new Error(
      `BPF object ${objectPath} not found: build it with \`make -C bpf\` (or \`npm run build\`)`,
    );
  }
  const pinRoot = ensurePinRoot(options.pinRoot);
  const globals = configGlobals(options.config);

  let obj: BpfObject;
  try {
    obj = native.openObject(objectPath, { pinRoot });
  } catch (e) {
    throw new Error(`opening ${objectPath} failed: ${describe(e)}`, { cause: e });
  }
  try {
    for (const g of globals) obj.setGlobal(g.name, g.value);
    obj.load();
  } catch (e) {
    obj.close();
    throw new Error(
      `loading ${objectPath} with maps pinned under ${pinRoot} failed: ${describe(e)}`,
      { cause: e },
    );
  }

  let maps: DataplaneMaps;
  let programs: Dataplane['programs'];
  try {
    maps = openMaps(obj);
    programs = {
      fromPod: obj.program(PROGRAM_NAMES.fromPod),
      toPod: obj.program(PROGRAM_NAMES.toPod),
      fromUplink: obj.program(PROGRAM_NAMES.fromUplink),
      toUplink: obj.program(PROGRAM_NAMES.toUplink),
    };
  } catch (e) {
    obj.close();
    throw e;
  }

  let closed = false;
  const live = (what: string): void => {
    if (closed) throw new Error(`${what}: the dataplane loaded from ${objectPath} is closed`);
  };
  return {
    objectPath,
    pinRoot,
    maps,
    views: viewsOf(maps),
    programs,
    attachToEndpoint(ifindex, opts) {
      live(`attachToEndpoint(${ifindex})`);
      attachPrograms(ifindex, { fromPodFd: programs.fromPod.fd, toPodFd: programs.toPod.fd }, opts);
    },
    detachFromEndpoint(ifindex, opts) {
      return detachPrograms(ifindex, opts);
    },
    attachToUplink(ifindex, opts) {
      live(`attachToUplink(${ifindex})`);
      attachUplinkPrograms(
        ifindex,
        { fromUplinkFd: programs.fromUplink.fd, toUplinkFd: programs.toUplink.fd },
        opts,
      );
    },
    detachFromUplink(ifindex, opts) {
      return detachUplinkPrograms(ifindex, opts);
    },
    close() {
      if (closed) return;
      closed = true;
      obj.close();
    },
  };
}
