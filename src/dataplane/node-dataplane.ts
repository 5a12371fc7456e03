/**
 * One node's BPF dataplane as the control plane drives it: the loaded object with its
 * pinned maps, the policy compiler whose deltas it applies, the routes (local pods and
 * remote blocks), the tunnel (this node's underlay address and uplink, the nodes IPIP is
 * accepted from), and the observability a user reads (counters by reason, events with
 * rule names).
 */
import {
  loadDataplane,
  removePins,
  type Dataplane,
  type DataplaneConfig,
} from '../loader/index.js';
import { ipToU32, parseCidr, u32ToIp } from '../maps/addr.js';
import { dirName, isDrop, reasonName, RouteFlags, RouteType, type DirName } from '../maps/enums.js';
import { eventCodec, type EventRecord } from '../maps/structs.js';
import { native } from '../native/index.js';
import type { RingBuffer } from '../native/types.js';
import {
  PolicyCompiler,
  type CompiledState,
  type LocalEndpoint,
  type PolicyCompilerOptions,
} from '../policy/compile/index.js';
import type { RuleRef, World } from '../policy/model.js';
import { applyDelta, syncKnownNodes, type ApplyStats, type NodeSetStats } from './apply.js';

export interface NodeDataplaneOptions {
  /** bpffs directory for the pins, e.g. /sys/fs/bpf/tortie. */
  pinRoot: string;
  /** Namespace holding the pod veths' host ends (default: the caller's). */
  nodeNetns?: string;
  config?: DataplaneConfig;
  compiler?: PolicyCompilerOptions;
}

export interface ProgramStats extends ApplyStats {
  compileMs: number;
  applyMs: number;
  sets: number;
}

/** This node on the underlay (tortie_node_cfg). */
export interface NodeConfig {
  /** The node's underlay IPv4 address: the outer source of the IPIP it sends. */
  underlayIp: string;
  /** The interface (in the node's namespace) tunnel traffic leaves and arrives by. */
  uplinkIfindex: number;
}

export interface RemoteRouteOptions {
  /** Encapsulate in IPIP to the next hop (ipipMode Always, or CrossSubnet across subnets). */
  ipip: boolean;
}

export interface CounterRow {
  epId: number;
  reason: string;
  dropped: boolean;
  dir: DirName | `dir-${number}`;
  packets: bigint;
  bytes: bigint;
}

/**
 * How full conntrack is and who fills it (docs/dataplane.md, "Conntrack capacity and
 * fairness"). `created` counts since tortie_ct_new was created (it is pinned with
 * tortie_ct, so an agent restart keeps both).
 */
export interface ConntrackPressure {
  /** Entries in tortie_ct now, live or expired-but-not-yet-reused (a sample: see count()). */
  entries: number;
  capacity: number;
  /** Entries created, summed over endpoints. */
  created: bigint;
  /** created − entries: evicted by the LRU, revoked, replaced after expiry or deleted. */
  removed: bigint;
  /** Entries created per endpoint id (0: no endpoint known, or tortie_ct_new full). */
  byEndpoint: { epId: number; created: bigint }[];
  /** Milliseconds the count of tortie_ct took. */
  countMs: number;
}

/** Count tortie_ct (batch lookup) and sum tortie_ct_new over CPUs. */
export function conntrackPressure(dp: Dataplane): ConntrackPressure {
  const t0 = performance.now();
  const entries = dp.maps.ct.count();
  const countMs = performance.now() - t0;
  const byEndpoint = dp.views.ctNew
    .entriesSum()
    .map(([epId, created]) => ({ epId, created }))
    .sort((a, b) => a.epId - b.epId);
  const created = byEndpoint.reduce((sum, e) => sum + e.created, 0n);
  const removed = created - BigInt(entries);
  return {
    entries,
    capacity: dp.maps.ct.info().maxEntries,
    created,
    removed: removed > 0n ? removed : 0n,
    byEndpoint,
    countMs,
  };
}

export interface DataplaneEvent {
  type: 'drop' | 'verdict' | 'log';
  epId: number;
  ifindex: number;
  reason: string;
  action: 'allow' | 'deny' | 'none';
  rule: RuleRef | undefined;
  saddr: string;
  daddr: string;
  protocol: number;
  sport: number;
  dport: number;
  dir: DirName | `dir-${number}`;
  raw: EventRecord;
}

const EVENT_TYPES = { 1: 'drop', 2: 'verdict', 3: 'log' } as const;
const ACTIONS = { 0: 'none', 1: 'allow', 2: 'deny' } as const;

export class NodeDataplane {
  private readonly compiler: PolicyCompiler;
  private state: CompiledState | undefined;
  private uplinkIfindex: number | undefined;

  private constructor(
    readonly dp: Dataplane,
    readonly options: NodeDataplaneOptions,
  ) {
    this.compiler = new PolicyCompiler(options.compiler);
  }

  static open(options: NodeDataplaneOptions): NodeDataplane {
    const dp = loadDataplane({ pinRoot: options.pinRoot, config: options.config });
    return new NodeDataplane(dp, options);
  }

  /** Attach both programs to a pod's host veth. */
  attach(ifindex: number): void {
    this.dp.attachToEndpoint(ifindex, { netnsPath: this.options.nodeNetns });
  }

  detach(ifindex: number): boolean {
    return this.dp.detachFromEndpoint(ifindex, { netnsPath: this.options.nodeNetns });
  }

  /** A pod on this node: packets to `ip` are judged by its ingress policy and redirected into it. */
  setLocalRoute(ip: string, ifindex: number): void {
    this.dp.views.routes.update(
      { prefixlen: 32, addr: ipToU32(ip) },
      { type: RouteType.LOCAL_EP, ifindex, next_hop: 0, flags: 0 },
    );
  }

  deleteLocalRoute(ip: string): boolean {
    return this.dp.views.routes.delete({ prefixlen: 32, addr: ipToU32(ip) });
  }

  /**
   * A block of another node: packets from local pods to `cidr` go to `nextHop` (that
   * node's underlay address) — in IPIP, encapsulated here and sent out of the uplink;
   * without, handed to the host stack, whose own routes must carry them (ipipMode
   * Never). Replaces any route for the same prefix. Takes effect at the next packet.
   */
  setRemoteRoute(cidr: string, nextHop: string, opts: RemoteRouteOptions): void {
    const { addr, bits } = parseCidr(cidr);
    const hop = ipToU32(nextHop);
    if (hop === 0) throw new Error(`remote route ${cidr}: next hop 0.0.0.0 is not a node`);
    this.dp.views.routes.update(
      { prefixlen: bits, addr },
      {
        type: RouteType.REMOTE_BLOCK,
        ifindex: 0, // the node's uplink (setNodeConfig)
        next_hop: hop,
        flags: opts.ipip ? RouteFlags.IPIP : RouteFlags.NONE,
      },
    );
  }

  /** Removes the route for exactly `cidr` (local or remote); false when there was none. */
  deleteRoute(cidr: string): boolean {
    const { addr, bits } = parseCidr(cidr);
    return this.dp.views.routes.delete({ prefixlen: bits, addr });
  }

  /**
   * This node's underlay address and uplink. Needed before IPIP can leave the node
   * (until then such packets drop as DROP_NO_UPLINK); can change at any time.
   */
  setNodeConfig(cfg: NodeConfig): void {
    const ip = ipToU32(cfg.underlayIp);
    if (ip === 0) throw new Error('node config: underlay address 0.0.0.0');
    if (!Number.isInteger(cfg.uplinkIfindex) || cfg.uplinkIfindex <= 0) {
      throw new Error(
        `node config: uplink ifindex must be a positive integer, got ${cfg.uplinkIfindex}`,
      );
    }
    this.dp.views.nodeCfg.update(0, { underlay_ip: ip, uplink_ifindex: cfg.uplinkIfindex });
  }

  /** What setNodeConfig last wrote (also by an earlier agent: the map is pinned), if anything. */
  nodeConfig(): NodeConfig | undefined {
    const v = this.dp.views.nodeCfg.lookup(0);
    if (!v || v.underlay_ip === 0) return undefined;
    return { underlayIp: u32ToIp(v.underlay_ip), uplinkIfindex: v.uplink_ifindex };
  }

  /**
   * The other nodes' underlay addresses: the only sources IPIP is accepted from on the
   * uplink. Written as a difference against what the map holds (see syncKnownNodes).
   */
  setKnownNodes(ips: readonly string[]): NodeSetStats {
    return syncKnownNodes(this.dp.views.nodes, ips);
  }

  /**
   * The node's own addresses (every IPv4 address of the node namespace): each becomes a
   * /32 TORTIE_ROUTE_HOST route, which is how tortie_from_pod knows a pod's new flow is
   * for the node (defaultEndpointToHostAction). A difference against the map: host
   * routes not in `ips` go, the others are written. 127.0.0.0/8 is left out (pods'
   * packets there are dropped before any route is looked up). Returns what changed.
   */
  setHostAddresses(ips: readonly string[]): { added: number; removed: number } {
    const want = new Set(ips.filter((ip) => !ip.startsWith('127.')).map(ipToU32));
    const routes = this.dp.views.routes;
    let removed = 0;
    for (const [k, v] of routes.entries()) {
      if (v.type !== RouteType.HOST || k.prefixlen !== 32) continue;
      if (want.delete(k.addr)) continue; // present already
      if (routes.delete(k)) removed++;
    }
    for (const addr of want) {
      routes.update(
        { prefixlen: 32, addr },
        { type: RouteType.HOST, ifindex: 0, next_hop: 0, flags: 0 },
      );
    }
    return { added: want.size, removed };
  }

  /** The addresses setHostAddresses wrote, sorted. */
  hostAddresses(): string[] {
    return this.dp.views.routes
      .entries()
      .filter(([k, v]) => v.type === RouteType.HOST && k.prefixlen === 32)
      .map(([k]) => u32ToIp(k.addr))
      .sort();
  }

  knownNodes(): string[] {
    return this.dp.views.nodes
      .entries()
      .map(([addr]) => u32ToIp(addr))
      .sort();
  }

  /**
   * The uplink programs on the node's uplink (in the node's namespace): tortie_from_uplink
   * on tc ingress (decapsulation), tortie_to_uplink on tc egress (the node's own packets
   * to remote pods). Idempotent.
   */
  attachUplink(ifindex: number): void {
    this.dp.attachToUplink(ifindex, { netnsPath: this.options.nodeNetns });
    this.uplinkIfindex = ifindex;
  }

  /**
   * Takes it off again: the given interface, else the one attachUplink was last given,
   * else the configured uplink. False when nothing was attached.
   */
  detachUplink(ifindex?: number): boolean {
    const target = ifindex ?? this.uplinkIfindex ?? this.nodeConfig()?.uplinkIfindex;
    if (target === undefined) return false;
    const removed = this.dp.detachFromUplink(target, { netnsPath: this.options.nodeNetns });
    if (target === this.uplinkIfindex) this.uplinkIfindex = undefined;
    return removed;
  }

  /** Compile `world` for the local endpoints and write the difference to the maps. */
  program(world: World, locals: LocalEndpoint[]): ProgramStats {
    const t0 = performance.now();
    const { state, delta } = this.compiler.update(world, locals);
    const t1 = performance.now();
    const stats = applyDelta(this.dp.maps, delta);
    const t2 = performance.now();
    this.state = state;
    const sets = new Set<number>();
    for (const e of state.endpoints.values()) sets.add(e.ingressSet).add(e.egressSet);
    return { ...stats, compileMs: t1 - t0, applyMs: t2 - t1, sets: sets.size };
  }

  ruleRef(ruleId: number): RuleRef | undefined {
    return ruleId === 0 ? undefined : this.state?.rules.get(ruleId);
  }

  get compiled(): CompiledState | undefined {
    return this.state;
  }

  counters(): CounterRow[] {
    return this.dp.views.metrics
      .entriesSum()
      .map(([k, v]) => ({
        epId: k.ep_id,
        reason: reasonName(k.reason),
        dropped: isDrop(k.reason),
        dir: dirName(k.dir),
        packets: BigInt(v.packets),
        bytes: BigInt(v.bytes),
      }))
      .sort(
        (a, b) => a.epId - b.epId || a.reason.localeCompare(b.reason) || a.dir.localeCompare(b.dir),
      );
  }

  conntrack(): ConntrackPressure {
    return conntrackPressure(this.dp);
  }

  decodeEvent(buf: Buffer): DataplaneEvent {
    const raw = eventCodec.decode(buf);
    return {
      type: EVENT_TYPES[raw.type as 1 | 2 | 3] ?? 'drop',
      epId: raw.ep_id,
      ifindex: raw.ifindex,
      reason: reasonName(raw.reason),
      action: ACTIONS[raw.action as 0 | 1 | 2] ?? 'none',
      rule: this.ruleRef(raw.rule_id),
      saddr: u32ToIp(raw.saddr),
      daddr: u32ToIp(raw.daddr),
      protocol: raw.proto,
      sport: raw.sport,
      dport: raw.dport,
      dir: dirName(raw.dir),
      raw,
    };
  }

  /**
   * Events from the ring buffer. With `poll` a background thread delivers them as they
   * come; without, call consume() on the returned buffer to drain synchronously.
   */
  events(onEvent: (e: DataplaneEvent) => void, opts: { poll?: boolean } = {}): RingBuffer {
    return native.ringBuffer(this.dp.maps.events.fd, (rec) => onEvent(this.decodeEvent(rec)), opts);
  }

  /** Release the object; attachments and pins stay (an agent restart adopts them). */
  close(): void {
    this.dp.close();
  }

  /** Release the object and remove the pins (a lab or test tearing down). */
  destroy(): void {
    this.dp.close();
    removePins(this.options.pinRoot);
  }
}
