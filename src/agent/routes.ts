/**
 * Routes to other nodes' pods, as a pure function of what the store says: IPAM blocks
 * with their node affinity (and addresses borrowed across blocks), the Nodes' underlay
 * addresses, which nodes exist (the agent passes every Node resource as alive: routes
 * must not flap while a node's agent restarts), and the
 * pools' encapsulation modes. The agent diffs the result into the dataplane.
 *
 * As in Calico: a block affine to another live node is routed to that node's address;
 * an address a node borrowed from a block that is not its own gets a /32 to the borrower
 * (longest prefix wins over the block route); blocks of this node and addresses of this
 * node need no remote route (local /32s come from the local endpoints). A node that is
 * gone or has no address gets no route: its routes are withdrawn.
 */
import type { EncapMode } from '../datastore/index.js';
import {
  cidrContains,
  formatCidr,
  tryParseCidr,
  tryParseIp,
  parseInterfaceAddress,
  type Cidr,
  type InterfaceAddress,
} from '../ipam/ipv4.js';

export interface RouteNode {
  readonly name: string;
  /** Node.spec.bgp.ipv4Address, `a.b.c.d/n`; undefined when the node has none. */
  readonly address: string | undefined;
  /** Whether the node counts as present (the agent: its Node resource exists). */
  readonly alive: boolean;
}

export interface RouteBlock {
  readonly cidr: string;
  /** The node the block is affine to, or null. */
  readonly affinity: string | null;
  /** Allocated addresses and the node each was allocated for. */
  readonly allocations: readonly { readonly ip: string; readonly node: string }[];
}

export interface RoutePool {
  readonly cidr: string;
  readonly ipipMode: EncapMode;
  readonly vxlanMode: EncapMode;
}

export interface RouteInputs {
  readonly self: string;
  readonly nodes: readonly RouteNode[];
  readonly blocks: readonly RouteBlock[];
  readonly pools: readonly RoutePool[];
}

export interface DesiredRoute {
  readonly cidr: string;
  /** The node that owns the destination. */
  readonly node: string;
  /** That node's underlay address. */
  readonly nextHop: string;
  readonly ipip: boolean;
  readonly vxlan: boolean;
}

/** A node's underlay address, parsed. */
export type NodeAddr = InterfaceAddress;
export const nodeAddress = parseInterfaceAddress;

/** Whether traffic to `peer` is encapsulated under `mode`, seen from `self`. */
export function encapsulates(mode: EncapMode, self: NodeAddr | undefined, peer: NodeAddr): boolean {
  switch (mode) {
    case 'Always':
      return true;
    case 'Never':
      return false;
    case 'CrossSubnet':
      // Same subnet only when both ends say so (each by its own prefix length).
      return !(
        self !== undefined &&
        cidrContains(self.subnet, peer.ip) &&
        cidrContains(peer.subnet, self.ip)
      );
  }
}

/** The desired remote routes, sorted by CIDR; at most one per CIDR. */
export function desiredRoutes(inputs: RouteInputs): DesiredRoute[] {
  const addrs = new Map<string, NodeAddr>();
  const live = new Set<string>();
  for (const n of inputs.nodes) {
    const a = nodeAddress(n.address);
    if (a !== undefined) addrs.set(n.name, a);
    if (n.alive) live.add(n.name);
  }
  const self = addrs.get(inputs.self);
  const pools = inputs.pools
    .map((p) => ({ pool: p, cidr: tryParseCidr(p.cidr) }))
    .filter((p): p is { pool: RoutePool; cidr: Cidr } => p.cidr !== undefined)
    // Most specific pool first, should pools ever nest.
    .sort((a, b) => b.cidr.prefixLength - a.cidr.prefixLength);
  const poolOf = (ip: number) => pools.find((p) => cidrContains(p.cidr, ip))?.pool;

  const out = new Map<string, DesiredRoute>();
  const route = (cidr: Cidr, node: string) => {
    if (node === inputs.self || !live.has(node)) return;
    const peer = addrs.get(node);
    if (peer === undefined) return;
    const pool = poolOf(cidr.base);
    const text = formatCidr(cidr);
    out.set(text, {
      cidr: text,
      node,
      nextHop: peer.text,
      ipip: pool !== undefined && encapsulates(pool.ipipMode, self, peer),
      vxlan: pool !== undefined && encapsulates(pool.vxlanMode, self, peer),
    });
  };

  for (const b of inputs.blocks) {
    const cidr = tryParseCidr(b.cidr);
    if (cidr === undefined) continue;
    if (b.affinity !== null) route(cidr, b.affinity);
    for (const a of b.allocations) {
      if (a.node === b.affinity) continue;
      const ip = tryParseIp(a.ip);
      if (ip === undefined || !cidrContains(cidr, ip)) continue;
      route({ base: ip, prefixLength: 32 }, a.node);
    }
  }
  return [...out.values()].sort((x, y) => compareCidrText(x.cidr, y.cidr));
}

/** The underlay addresses of every live node but this one: whom to accept IPIP from. */
export function knownNodeAddresses(inputs: Pick<RouteInputs, 'self' | 'nodes'>): string[] {
  return inputs.nodes
    .filter((n) => n.alive && n.name !== inputs.self)
    .map((n) => nodeAddress(n.address)?.text)
    .filter((a): a is string => a !== undefined)
    .sort();
}

/**
 * Per other live node (its underlay address), the inner sources its VXLAN may carry:
 * the blocks and borrowed /32s routed to it, and its underlay address (its vxlan device's
 * VTEP address, the source of its node-originated traffic to pods). The iptables
 * dataplane binds decapsulated sources to the sending node with it (tortie-vxlan-in).
 */
export function vxlanInnerSources(inputs: RouteInputs): { source: string; cidrs: string[] }[] {
  const byNode = new Map<string, { source: string; cidrs: string[] }>();
  for (const n of inputs.nodes) {
    if (!n.alive || n.name === inputs.self) continue;
    const a = nodeAddress(n.address);
    if (a !== undefined) byNode.set(n.name, { source: a.text, cidrs: [`${a.text}/32`] });
  }
  for (const r of desiredRoutes(inputs)) byNode.get(r.node)?.cidrs.push(r.cidr);
  return [...byNode.values()].sort((x, y) => compareCidrText(x.source + '/32', y.source + '/32'));
}

export interface RouteDiff {
  /** New routes and routes whose next hop or encapsulation changed. */
  readonly set: readonly DesiredRoute[];
  /** CIDRs to withdraw. */
  readonly remove: readonly string[];
}

export function diffRoutes(
  current: ReadonlyMap<string, DesiredRoute>,
  desired: readonly DesiredRoute[],
): RouteDiff {
  const want = new Map(desired.map((r) => [r.cidr, r]));
  const set = desired.filter((r) => {
    const c = current.get(r.cidr);
    return (
      c === undefined ||
      c.nextHop !== r.nextHop ||
      c.ipip !== r.ipip ||
      c.vxlan !== r.vxlan ||
      c.node !== r.node
    );
  });
  const remove = [...current.keys()].filter((c) => !want.has(c)).sort(compareCidrText);
  return { set, remove };
}

function compareCidrText(a: string, b: string): number {
  const ca = tryParseCidr(a);
  const cb = tryParseCidr(b);
  if (ca === undefined || cb === undefined) return a < b ? -1 : a > b ? 1 : 0;
  return ca.base - cb.base || ca.prefixLength - cb.prefixLength;
}

// --- kernel routes ---------------------------------------------------------------------

/**
 * The routing protocol number tortie's kernel routes carry (`proto 177`): the agent lists,
 * replaces and deletes only routes with it, never anyone else's.
 */
export const TORTIE_ROUTE_PROTO = 177;
/** What IPIP adds to a packet: the outer IPv4 header. */
export const IPIP_OVERHEAD = 20;
/**
 * The MTU of a kernel route in IPIP mode when the uplink's MTU cannot be read: a
 * 1500-byte underlay less the 20-byte header.
 */
export const IPIP_ROUTE_MTU = 1480;

/**
 * A tunnel's MTU over the uplink: the configured one (FelixConfiguration ipipMTU /
 * vxlanMTU) wins; else the uplink's MTU less what the encapsulation adds; else (the
 * uplink's MTU unknown) the value for a 1500-byte underlay.
 */
export function tunnelMtu(
  configured: number | undefined,
  uplinkMtu: number | undefined,
  overhead: number,
  fallback: number,
): number {
  if (configured !== undefined) return configured;
  if (uplinkMtu !== undefined && uplinkMtu > overhead) return uplinkMtu - overhead;
  return fallback;
}

/**
 * A kernel route in the node's namespace: `<cidr> via <via> dev <dev> proto 177 [src S]
 * [mtu N]`.
 */
export interface KernelRoute {
  readonly cidr: string;
  readonly via: string;
  readonly dev: string;
  readonly mtu: number | undefined;
  /**
   * The source address the node's own packets take (`src`, the node's underlay address):
   * the address the remote pod answers to, routable on the underlay without a tunnel,
   * whatever other addresses the node holds.
   */
  readonly src?: string | undefined;
  /** `onlink`: the gateway is taken as reachable on `dev` (VXLAN: the peer's VTEP). */
  readonly onlink?: boolean;
}

/** The kernel routes for the desired remote routes, out of `dev` (the uplink). */
export function desiredKernelRoutes(
  desired: readonly DesiredRoute[],
  dev: string,
  ipipMtu = IPIP_ROUTE_MTU,
  src?: string,
): KernelRoute[] {
  return desired.map((r) => ({
    cidr: r.cidr,
    via: r.nextHop,
    dev,
    mtu: r.ipip ? ipipMtu : undefined,
    ...(src === undefined ? {} : { src }),
  }));
}

/** `ip -j route show proto 177` output as KernelRoutes (entries it cannot read are left out). */
export function parseKernelRoutes(json: string): KernelRoute[] {
  const parsed = JSON.parse(json.trim() || '[]') as unknown;
  if (!Array.isArray(parsed)) return [];
  const out: KernelRoute[] = [];
  for (const e of parsed as unknown[]) {
    if (typeof e !== 'object' || e === null) continue;
    const r = e as {
      dst?: unknown;
      gateway?: unknown;
      dev?: unknown;
      metrics?: unknown;
      prefsrc?: unknown;
    };
    if (typeof r.dst !== 'string') continue;
    // A /32 shows without its prefix length.
    const cidr = r.dst.includes('/') ? r.dst : `${r.dst}/32`;
    let mtu: number | undefined;
    if (Array.isArray(r.metrics)) {
      for (const m of r.metrics as unknown[]) {
        const v = (m as { mtu?: unknown } | null)?.mtu;
        if (typeof v === 'number') mtu = v;
      }
    }
    out.push({
      cidr,
      via: typeof r.gateway === 'string' ? r.gateway : '',
      dev: typeof r.dev === 'string' ? r.dev : '',
      mtu,
      ...(typeof r.prefsrc === 'string' ? { src: r.prefsrc } : {}),
    });
  }
  return out;
}

/**
 * The `ip -batch` lines (without the leading `ip`) that turn the present tortie routes into
 * the desired ones: `route replace` for new and changed routes first (a moved block is
 * never unrouted), then `route del ... proto 177` for the ones no longer wanted. Every
 * line carries tortie's protocol, so no other route is deleted.
 */
export function diffKernelRoutes(
  present: readonly KernelRoute[],
  desired: readonly KernelRoute[],
  proto = TORTIE_ROUTE_PROTO,
): string[] {
  const have = new Map<string, KernelRoute[]>();
  for (const p of present) have.set(p.cidr, [...(have.get(p.cidr) ?? []), p]);
  const want = new Set(desired.map((d) => d.cidr));
  const lines: string[] = [];
  for (const d of desired) {
    const cur = have.get(d.cidr);
    const same =
      cur?.length === 1 &&
      cur[0]!.via === d.via &&
      cur[0]!.dev === d.dev &&
      cur[0]!.mtu === d.mtu &&
      cur[0]!.src === d.src;
    if (same) continue;
    lines.push(
      `route replace ${d.cidr} via ${d.via} dev ${d.dev} proto ${proto}` +
        (d.onlink === true ? ' onlink' : '') +
        (d.src === undefined ? '' : ` src ${d.src}`) +
        (d.mtu === undefined ? '' : ` mtu ${d.mtu}`),
    );
  }
  const gone = [...have.entries()]
    .filter(([cidr]) => !want.has(cidr))
    .sort(([a], [b]) => compareCidrText(a, b));
  for (const [cidr, routes] of gone) {
    for (let i = 0; i < routes.length; i++) lines.push(`route del ${cidr} proto ${proto}`);
  }
  return lines;
}

// --- routes learned over BGP (routing: bgp) --------------------------------------------

/** The protocol number of BIRD's kernel routes (`proto bird` in `ip route`). */
export const BIRD_ROUTE_PROTO = 12;

/**
 * With BGP routing, the route map follows what BIRD installed in the node's kernel (`ip -j
 * route show proto bird`): every learned prefix inside an IP pool becomes a remote route
 * to its next hop, encapsulated as the pool says (exactly as `desiredRoutes` decides it
 * for the static path; the next hop's subnet, for CrossSubnet, is its Node's when a Node
 * has that address, else this node's prefix length). Prefixes outside every pool (routes
 * from an external peer) stay kernel-only; so do multipath routes (no single gateway).
 * Sorted by CIDR, one per CIDR.
 */
export function learnedRoutes(
  learned: readonly KernelRoute[],
  inputs: Pick<RouteInputs, 'self' | 'nodes' | 'pools'>,
): DesiredRoute[] {
  const selfNode = inputs.nodes.find((n) => n.name === inputs.self);
  const self = nodeAddress(selfNode?.address);
  const byIp = new Map<string, { name: string; addr: NodeAddr }>();
  for (const n of inputs.nodes) {
    const a = nodeAddress(n.address);
    if (a !== undefined && n.name !== inputs.self) byIp.set(a.text, { name: n.name, addr: a });
  }
  const pools = inputs.pools
    .map((p) => ({ pool: p, cidr: tryParseCidr(p.cidr) }))
    .filter((p): p is { pool: RoutePool; cidr: Cidr } => p.cidr !== undefined)
    .sort((a, b) => b.cidr.prefixLength - a.cidr.prefixLength);
  const out = new Map<string, DesiredRoute>();
  for (const r of learned) {
    const cidr = tryParseCidr(r.cidr);
    if (cidr === undefined || r.via === '' || tryParseIp(r.via) === undefined) continue;
    const text = formatCidr(cidr);
    if (out.has(text)) continue;
    const pool = pools.find(
      (p) => p.cidr.prefixLength <= cidr.prefixLength && cidrContains(p.cidr, cidr.base),
    )?.pool;
    if (pool === undefined) continue;
    const known = byIp.get(r.via);
    const peer = known?.addr ?? nodeAddress(`${r.via}/${self?.subnet.prefixLength ?? 32}`)!;
    out.set(text, {
      cidr: text,
      node: known?.name ?? '',
      nextHop: r.via,
      ipip: encapsulates(pool.ipipMode, self, peer),
      vxlan: encapsulates(pool.vxlanMode, self, peer),
    });
  }
  return [...out.values()].sort((x, y) => compareCidrText(x.cidr, y.cidr));
}
