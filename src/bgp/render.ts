/**
 * BIRD 2 configuration for one node, as a pure function of what the store says (what
 * Calico's confd does with its templates). docs/bgp.md shows a rendered example.
 *
 *   router id            the node's underlay address
 *   protocol device      interface scan (BGP `direct` sessions need it)
 *   protocol direct      only the uplink, into BIRD's table (next-hop resolution for
 *                        multihop peers); never exported anywhere
 *   protocol kernel      exports what BGP learned into the main table (`proto bird`,
 *                        metric 32, `src` = the node's address, `mtu 1480` where the pool
 *                        encapsulates); imports nothing
 *   protocol static      the node's affine blocks (one blackhole route per block: blocks
 *                        are advertised aggregated) and the /32s it borrowed elsewhere
 *   tortie_export        BGP exports only prefixes inside an IP pool (not those of pools
 *                        with disableBGPExport), with prefixAdvertisements' communities
 *   BGPFilter functions  one per filter and direction (./filters.ts), called by the
 *                        BGPPeers naming them before tortie_export's rules
 *   protocol bgp         a session per peer: the node mesh, then BGPPeers; on a route
 *                        reflector (Node routeReflectorClusterID) `rr client` + `rr cluster
 *                        id` towards its clients (peersOf explains the roles); passwords
 *                        (secretKeyRef ones as the agent read them, ./secrets.ts) and the
 *                        BGPPeer session options (docs/bgp.md, "Calico's BGP fields")
 *
 * Sessions are named after their peer (`Mesh_192_168_231_2`, `Global_10_0_0_1`,
 * `Node_10_0_0_1`), so a reload (`birdc configure`) restarts only the sessions whose
 * lines changed. Everything is sorted: the same store renders the same text.
 */
import type { BGPConfigurationSpec, BGPPeerSpec, EncapMode } from '../datastore/index.js';
import {
  DEFAULT_AS_NUMBER,
  isCommunity,
  type BgpPassword,
  type SecretKeyRef,
} from '../datastore/schema/bgp.js';
import {
  communityTerm,
  filterFunctionName,
  hasRules,
  renderFilterFunctions,
  type NamedFilter,
} from './filters.js';
import {
  cidrContains,
  cidrWithin,
  formatCidr,
  parseInterfaceAddress as nodeAddress,
  tryParseCidr,
  tryParseIp,
  type Cidr,
  type InterfaceAddress as NodeAddr,
} from '../ipam/ipv4.js';
import { parseSelector } from '../policy/selector.js';
import { goDurationSeconds } from '../util/duration.js';

export interface BgpNode {
  readonly name: string;
  /** Node.spec.bgp.ipv4Address (`a.b.c.d/n`), undefined when it has none. */
  readonly address: string | undefined;
  readonly asNumber?: number | undefined;
  readonly labels?: Readonly<Record<string, string>>;
  /** Node.spec.bgp.routeReflectorClusterID: the node is a route reflector of that cluster. */
  readonly routeReflectorClusterID?: string | undefined;
  /** The port its BIRD listens on (BGPConfiguration listenPort; undefined: 179). */
  readonly listenPort?: number | undefined;
}

export interface BgpBlock {
  readonly cidr: string;
  readonly affinity: string | null;
  readonly allocations: readonly { readonly ip: string; readonly node: string }[];
}

export interface BgpPool {
  readonly cidr: string;
  readonly ipipMode: EncapMode;
  readonly vxlanMode: EncapMode;
  /** IPPool disableBGPExport: the pool's prefixes are never sent to a peer. */
  readonly disableBGPExport?: boolean | undefined;
}

/** A secretKeyRef password as the agent found it (./secrets.ts), or why it could not. */
export type SecretValue =
  { readonly value: string } | { readonly problem: string; readonly missing?: boolean };

/** The key of a secretKeyRef in BirdInputs.secrets. */
export function secretId(ref: SecretKeyRef): string {
  return `${ref.name}/${ref.key}`;
}

export interface BgpTimers {
  /** BGP hold time in seconds (keepalive: a third of it). Default: BIRD's (240). */
  readonly holdTime?: number;
  readonly keepaliveTime?: number;
  /** Seconds between connection attempts (BIRD's default 120). */
  readonly connectRetryTime?: number;
  /** Delay before the first connection attempt of a (re)started session (BIRD's 5). */
  readonly startDelayTime?: number;
  /** Delay before a failed session restarts, min and max seconds (BIRD's 60, 300). */
  readonly errorWaitTime?: readonly [number, number];
}

export interface BirdInputs {
  readonly self: string;
  readonly nodes: readonly BgpNode[];
  /** BGPConfiguration "default" (undefined: none stored, the defaults apply). */
  readonly config?: BGPConfigurationSpec | undefined;
  /** BGPConfiguration "node.<self>", when stored. */
  readonly nodeConfig?: BGPConfigurationSpec | undefined;
  readonly peers: readonly { readonly name: string; readonly spec: BGPPeerSpec }[];
  /** The BGPFilters (BGPPeer `filters` name them). */
  readonly filters?: readonly NamedFilter[] | undefined;
  /** secretKeyRef passwords, by secretId. A reference not in here is not found. */
  readonly secrets?: ReadonlyMap<string, SecretValue> | undefined;
  readonly pools: readonly BgpPool[];
  readonly blocks: readonly BgpBlock[];
  /** The interface holding the node's address (protocol direct is limited to it). */
  readonly uplink?: string | undefined;
  /** Where BIRD logs (a file); undefined: no log statement. */
  readonly logFile?: string | undefined;
  readonly timers?: BgpTimers | undefined;
  /** MTU of kernel routes to encapsulating pools' blocks (the agent: ipipMTU, else the uplink's MTU − 20; default 1480). */
  readonly ipipMtu?: number;
}

export type SessionType = 'mesh' | 'global' | 'node';

/**
 * A session's route-reflection role, seen from this node (undefined: plain BGP):
 * - `rr-client`: this node reflects, the peer is its client (`rr client`);
 * - `reflector`: the peer is a route reflector and this node its client;
 * - `rr-peer`: both reflect for the same cluster (plain iBGP, same cluster id).
 */
export type ReflectionRole = 'rr-client' | 'reflector' | 'rr-peer';

/** The role as BIRD's protocol description says it (and `node status` shows it). */
export const ROLE_DESCRIPTION: Record<ReflectionRole, string> = {
  'rr-client': 'route reflector client',
  reflector: 'route reflector',
  'rr-peer': 'route reflector, same cluster',
};

export interface RenderedPeer {
  /** BIRD protocol name. */
  readonly name: string;
  readonly type: SessionType;
  readonly ip: string;
  readonly port: number | undefined;
  readonly asNumber: number;
  /** The Node (mesh, peerSelector) or the BGPPeer it comes from. */
  readonly source: string;
  readonly password: BgpPassword | undefined;
  /** The peer is in the node's subnet: a directly connected session. */
  readonly direct: boolean;
  /** The BGPPeer's session options (undefined: a mesh session). */
  readonly spec?: BGPPeerSpec | undefined;
  /** Route reflection on this session (iBGP with a reflector on either side). */
  readonly role?: ReflectionRole | undefined;
  /** The cluster id written on the session (this node reflects). */
  readonly clusterId?: string | undefined;
}

export interface RenderedBird {
  readonly text: string;
  readonly routerId: string;
  readonly asNumber: number;
  readonly peers: readonly RenderedPeer[];
  /** What the static protocol originates (blocks, borrowed /32s), sorted. */
  readonly originated: readonly string[];
  /**
   * What is not as configured, and why: peers left out (a password BIRD cannot take, a
   * secret not found), filter rules left out, fields stored but not implemented.
   */
  readonly problems: readonly string[];
  /** Fields stored and not acted on (node status lists them). */
  readonly notImplemented: readonly string[];
}

const PREFIX: Record<SessionType, string> = { mesh: 'Mesh', global: 'Global', node: 'Node' };

/** The BIRD protocol name of a session: `Mesh_192_168_231_2`, `Global_10_0_0_1_1790`. */
export function sessionName(type: SessionType, ip: string, port?: number): string {
  return `${PREFIX[type]}_${ip.replace(/\./g, '_')}${port === undefined || port === 179 ? '' : `_${port}`}`;
}

/** The session type a protocol name says (undefined: not a tortie BGP session). */
export function sessionType(name: string): SessionType | undefined {
  const m = /^(Mesh|Global|Node)_\d+_\d+_\d+_\d+(_\d+)?$/.exec(name);
  if (m === null) return undefined;
  return m[1] === 'Mesh' ? 'mesh' : m[1] === 'Global' ? 'global' : 'node';
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function ipKey(text: string): number {
  return tryParseIp(text.split(':')[0]!) ?? 0;
}

/** A BIRD string literal; BIRD has no escapes, so `"`, `\\` and line breaks cannot appear. */
function quote(s: string): string {
  if (!quotable(s)) throw new Error(`${JSON.stringify(s)} cannot be written as a BIRD string`);
  return `"${s}"`;
}

function quotable(s: string): boolean {
  return !/["\\\n\r]/.test(s);
}

function selects(selector: string | undefined, labels: Readonly<Record<string, string>>): boolean {
  if (selector === undefined) return true;
  try {
    return parseSelector(selector).matches(labels);
  } catch {
    return false;
  }
}

/**
 * The sessions of node `self`: mesh first (by address), then BGPPeers; one per address.
 *
 * A BGPPeer applies to this node when the node is selected by it (global; `node`;
 * `nodeSelector`): one session per `peerIP`, or per Node matching `peerSelector`. As in
 * Calico, a peerSelector BGPPeer also works the other way: a node matching
 * `peerSelector` peers with every Node the BGPPeer selects (that is how route reflectors,
 * chosen by `peerSelector`, get their sessions to their clients).
 *
 * Route reflection (iBGP only): when this node has `routeReflectorClusterID`, a session to
 * a Node that is not a reflector of the same cluster is `rr client` with that cluster id;
 * reflectors of the same cluster peer as plain iBGP peers (with the common cluster id, so
 * that routes already reflected in the cluster are not taken back). A node without a
 * cluster id talking to a reflector is its client (nothing to configure on that side).
 */
export function peersOf(inputs: BirdInputs): RenderedPeer[] {
  const self = inputs.nodes.find((n) => n.name === inputs.self);
  const me = nodeAddress(self?.address);
  const defaultAs = inputs.config?.asNumber ?? DEFAULT_AS_NUMBER;
  const myAs = self?.asNumber ?? defaultAs;
  const myCluster = self?.routeReflectorClusterID;
  const mesh = inputs.config?.nodeToNodeMeshEnabled ?? true;
  const out: RenderedPeer[] = [];
  const taken = new Set<string>();
  const direct = (ip: number) => me !== undefined && cidrContains(me.subnet, ip) && ip !== me.ip;
  const others = inputs.nodes
    .filter((n) => n.name !== inputs.self)
    .map((n) => ({ node: n, a: nodeAddress(n.address) }))
    .filter((x): x is { node: BgpNode; a: NodeAddr } => x.a !== undefined)
    .sort((x, y) => x.a.ip - y.a.ip || cmp(x.node.name, y.node.name));
  const byAddress = new Map(others.map((o) => [o.a.text, o.node]));
  const reflection = (
    ip: string,
    asNumber: number,
  ): { role?: ReflectionRole; clusterId?: string } => {
    const peer = byAddress.get(ip);
    if (peer === undefined || asNumber !== myAs) return {};
    const theirs = peer.routeReflectorClusterID;
    if (myCluster !== undefined)
      return theirs === myCluster
        ? { role: 'rr-peer', clusterId: myCluster }
        : { role: 'rr-client', clusterId: myCluster };
    return theirs === undefined ? {} : { role: 'reflector' };
  };
  const add = (p: Omit<RenderedPeer, 'role' | 'clusterId'>) => {
    const key = `${p.ip}:${p.port ?? 179}`;
    if (taken.has(key) || (me !== undefined && p.ip === me.text)) return;
    taken.add(key);
    const nodePort = byAddress.get(p.ip)?.listenPort;
    const toNode = p.port === undefined || p.port === nodePort;
    out.push({ ...p, ...(toNode ? reflection(p.ip, p.asNumber) : {}) });
  };
  if (mesh) {
    for (const { node, a } of others) {
      add({
        name: sessionName('mesh', a.text, node.listenPort),
        type: 'mesh',
        ip: a.text,
        port: node.listenPort === 179 ? undefined : node.listenPort,
        asNumber: node.asNumber ?? defaultAs,
        source: `Node ${node.name}`,
        password: inputs.config?.nodeMeshPassword,
        direct: direct(a.ip),
      });
    }
  }
  const labels = self?.labels ?? {};
  const appliesTo = (spec: BGPPeerSpec, name: string, nodeLabels: Record<string, string>) => {
    if (spec.node !== undefined) return spec.node === name;
    if (spec.nodeSelector !== undefined) return selects(spec.nodeSelector, nodeLabels);
    return true;
  };
  const peers = [...inputs.peers].sort(
    (a, b) =>
      // Node-specific before global, then by address, then by name.
      Number(a.spec.node === undefined && a.spec.nodeSelector === undefined) -
        Number(b.spec.node === undefined && b.spec.nodeSelector === undefined) ||
      ipKey(a.spec.peerIP ?? '') - ipKey(b.spec.peerIP ?? '') ||
      cmp(a.name, b.name),
  );
  for (const { name, spec } of peers) {
    const type: SessionType =
      spec.node !== undefined || spec.nodeSelector !== undefined ? 'node' : 'global';
    const forward = appliesTo(spec, inputs.self, labels);
    if (forward && spec.peerIP !== undefined) {
      const [ipText = '', portText] = spec.peerIP.split(':');
      const ip = tryParseIp(ipText);
      if (ip === undefined || spec.asNumber === undefined) continue;
      const port = portText === undefined ? undefined : Number(portText);
      add({
        name: sessionName(type, ipText, port),
        type,
        ip: ipText,
        port: port === 179 ? undefined : port,
        asNumber: spec.asNumber,
        source: `BGPPeer ${name}`,
        password: spec.password,
        direct: direct(ip),
        spec,
      });
    } else if (spec.peerSelector !== undefined) {
      // Forward: this node is selected, peer with the Nodes peerSelector picks. Reverse:
      // this node is one peerSelector picks, peer with the Nodes the BGPPeer selects.
      const reverse = selects(spec.peerSelector, labels);
      for (const { node, a } of others) {
        const fwd = forward && selects(spec.peerSelector, node.labels ?? {});
        const rev = reverse && appliesTo(spec, node.name, node.labels ?? {});
        if (!fwd && !rev) continue;
        add({
          name: sessionName(type, a.text, node.listenPort),
          type,
          ip: a.text,
          port: node.listenPort === 179 ? undefined : node.listenPort,
          asNumber: node.asNumber ?? defaultAs,
          source: `BGPPeer ${name} (Node ${node.name}${fwd ? '' : ', reverse'})`,
          password: spec.password,
          direct: direct(a.ip),
          spec,
        });
      }
    }
  }
  return out;
}

/** What this node originates: its affine blocks and the /32s it borrowed, sorted. */
export function originated(
  self: string,
  blocks: readonly BgpBlock[],
): { cidr: Cidr; text: string }[] {
  const out = new Map<string, Cidr>();
  for (const b of blocks) {
    const cidr = tryParseCidr(b.cidr);
    if (cidr === undefined) continue;
    if (b.affinity === self) out.set(formatCidr(cidr), cidr);
    for (const a of b.allocations) {
      if (a.node !== self || b.affinity === self) continue;
      const ip = tryParseIp(a.ip);
      if (ip === undefined || !cidrContains(cidr, ip)) continue;
      const c = { base: ip, prefixLength: 32 };
      out.set(formatCidr(c), c);
    }
  }
  return [...out.entries()]
    .map(([text, cidr]) => ({ text, cidr }))
    .sort((a, b) => a.cidr.base - b.cidr.base || a.cidr.prefixLength - b.cidr.prefixLength);
}

const SEVERITY: Record<string, { log: string; debug: string }> = {
  Debug: { log: 'all', debug: 'all' },
  Info: { log: '{ info, remote, warning, error, auth, fatal, bug }', debug: '{ states }' },
  Warning: { log: '{ warning, error, fatal, bug }', debug: 'off' },
  Error: { log: '{ error, fatal, bug }', debug: 'off' },
  Fatal: { log: '{ fatal, bug }', debug: 'off' },
};

/** A Go duration ("2m", "1h30m", "90s", "0") in whole seconds, rounded (as Calico). */
export function durationSeconds(text: string): number {
  // The schema let only durations through (src/datastore/schema/fields.ts).
  return Math.round(goDurationSeconds(text) ?? 0);
}

/** BGPConfiguration fields tortie stores without acting on them, and why. */
const NOT_IMPLEMENTED: readonly (readonly [keyof BGPConfigurationSpec, string])[] = [
  ['serviceClusterIPs', 'tortie has no Services yet: not advertised'],
  ['serviceExternalIPs', 'tortie has no Services yet: not advertised'],
  ['serviceLoadBalancerIPs', 'tortie has no Services yet: not advertised'],
  ['serviceLoadBalancerAggregation', 'tortie has no Services yet'],
  ['localWorkloadPeeringIPV4', 'tortie has no workload BGP peering'],
  ['programClusterRoutes', 'BIRD always programs the learned routes under routing bgp'],
];

/** The password of a session, or why it cannot be had (the session is left out then). */
function passwordOf(
  p: RenderedPeer,
  secrets: ReadonlyMap<string, SecretValue> | undefined,
): { value: string | undefined } | { problem: string } {
  if (p.password === undefined) return { value: undefined };
  if (typeof p.password === 'string')
    return quotable(p.password)
      ? { value: p.password }
      : { problem: 'the password holds " \\ or a line break, which BIRD cannot take' };
  const ref = p.password.secretKeyRef;
  const where = `password secret ${ref.name} key ${ref.key}`;
  const found = secrets?.get(secretId(ref)) ?? { problem: 'not found', missing: true };
  if ('problem' in found) {
    // Kubernetes' optional: a missing secret means no password.
    if (ref.optional === true && found.missing === true) return { value: undefined };
    return { problem: `${where}: ${found.problem}` };
  }
  return quotable(found.value)
    ? { value: found.value }
    : { problem: `${where} holds " \\ or a line break, which BIRD cannot take` };
}

/** The communities prefixAdvertisements attach, as BIRD statements per prefix. */
function advertisements(
  config: BGPConfigurationSpec | undefined,
  nodeConfig: BGPConfigurationSpec | undefined,
): { cidr: string; adds: string[] }[] {
  // As Calico: the node's list replaces the default's.
  const own = nodeConfig?.prefixAdvertisements !== undefined ? nodeConfig : config;
  const named = new Map<string, string>();
  for (const c of [...(config?.communities ?? []), ...(own?.communities ?? [])])
    named.set(c.name, c.value);
  return (own?.prefixAdvertisements ?? [])
    .map((adv) => ({
      cidr: tryParseCidr(adv.cidr),
      adds: (adv.communities ?? [])
        .map((c) => (isCommunity(c) ? c : named.get(c)))
        .filter((v): v is string => v !== undefined)
        .map((v) => {
          const t = communityTerm(v);
          return `${t.attribute}.add(${t.term});`;
        }),
    }))
    .filter((x): x is { cidr: Cidr; adds: string[] } => x.cidr !== undefined)
    .map((x) => ({ cidr: formatCidr(x.cidr), adds: x.adds }));
}

/**
 * The configuration text of node `inputs.self`. Throws when the node has no usable
 * underlay address (no router id, nothing to peer from).
 */
export function renderBird(inputs: BirdInputs): RenderedBird {
  const self = inputs.nodes.find((n) => n.name === inputs.self);
  const me = nodeAddress(self?.address);
  if (me === undefined)
    throw new Error(`node ${inputs.self} has no underlay address (Node.spec.bgp.ipv4Address)`);
  const config = inputs.config;
  const nodeConfig = inputs.nodeConfig;
  const asNumber = self?.asNumber ?? config?.asNumber ?? DEFAULT_AS_NUMBER;
  const severity =
    SEVERITY[nodeConfig?.logSeverityScreen ?? config?.logSeverityScreen ?? 'Info'] ??
    SEVERITY.Info!;
  const listenPort = nodeConfig?.listenPort ?? config?.listenPort;
  const pools = inputs.pools
    .map((p) => ({ pool: p, cidr: tryParseCidr(p.cidr) }))
    .filter((p): p is { pool: BgpPool; cidr: Cidr } => p.cidr !== undefined)
    .sort((a, b) => a.cidr.base - b.cidr.base || a.cidr.prefixLength - b.cidr.prefixLength);
  const poolSet = (ps: typeof pools) => `[ ${ps.map((p) => `${formatCidr(p.cidr)}+`).join(', ')} ]`;
  const inPool = (c: Cidr) => pools.some((p) => cidrWithin(c, p.cidr));
  const statics = originated(inputs.self, inputs.blocks).filter((o) => inPool(o.cidr));
  const problems: string[] = [];
  const filters = new Map((inputs.filters ?? []).map((f) => [f.name, f.spec]));
  const functions = renderFilterFunctions(inputs.filters ?? []);
  problems.push(...functions.problems);
  const passwords = new Map<string, string | undefined>();
  const peers = peersOf(inputs).filter((p) => {
    const pw = passwordOf(p, inputs.secrets);
    if ('problem' in pw) {
      problems.push(`${p.source}: ${pw.problem}: session ${p.name} not started`);
      return false;
    }
    passwords.set(p.name, pw.value);
    return true;
  });
  const notImplemented: string[] = [];
  for (const [which, spec] of [
    ['default', config],
    [`node.${inputs.self}`, nodeConfig],
  ] as const)
    for (const [field, why] of NOT_IMPLEMENTED)
      if (spec?.[field] !== undefined)
        notImplemented.push(`BGPConfiguration ${which} ${field}: stored, ${why}`);
  const mtu = inputs.ipipMtu ?? 1480;
  const encapAlways = pools.filter((p) => p.pool.ipipMode === 'Always');
  const encapCross = pools.filter((p) => p.pool.ipipMode === 'CrossSubnet');
  const exported = pools.filter((p) => p.pool.disableBGPExport !== true);
  const unexported = pools.filter((p) => p.pool.disableBGPExport === true);
  const t = inputs.timers ?? {};

  const L: string[] = [];
  L.push(`# BIRD configuration of node ${inputs.self}, rendered by tortie from the store.`);
  L.push('# Do not edit: the agent rewrites it and reloads BIRD (birdc configure) on change.');
  L.push(`router id ${me.text};`);
  L.push('timeformat protocol iso long;');
  if (inputs.logFile !== undefined) L.push(`log ${quote(inputs.logFile)} ${severity.log};`);
  L.push('');
  L.push('# What BGP may carry: prefixes inside an IP pool that exports over BGP, nothing else;');
  L.push('# with the communities of prefixAdvertisements.');
  L.push('function tortie_export_to_peers() {');
  if (unexported.length > 0)
    L.push(`  if net ~ ${poolSet(unexported)} then reject; # IPPool disableBGPExport`);
  for (const adv of advertisements(config, nodeConfig))
    if (adv.adds.length > 0) L.push(`  if net ~ ${adv.cidr} then { ${adv.adds.join(' ')} }`);
  if (exported.length > 0) L.push(`  if net ~ ${poolSet(exported)} then accept;`);
  L.push('  reject;');
  L.push('}');
  L.push('');
  L.push('filter tortie_export {');
  L.push('  tortie_export_to_peers();');
  L.push('}');
  L.push('');
  if (functions.lines.length > 0) {
    L.push('# BGPFilters: called by the sessions of the BGPPeers that name them.');
    L.push(...functions.lines);
  }
  L.push('# Into the kernel: routes learned over BGP only (never the own blackholes).');
  L.push('filter tortie_to_kernel {');
  L.push('  if source != RTS_BGP then reject;');
  L.push(`  krt_prefsrc = ${me.text};`);
  if (encapAlways.length > 0) L.push(`  if net ~ ${poolSet(encapAlways)} then krt_mtu = ${mtu};`);
  if (encapCross.length > 0)
    L.push(
      `  if net ~ ${poolSet(encapCross)} && !(gw ~ ${formatCidr(me.subnet)}) then krt_mtu = ${mtu};`,
    );
  L.push('  accept;');
  L.push('}');
  L.push('');
  L.push('protocol device {');
  L.push('  scan time 10;');
  L.push('}');
  L.push('');
  if (inputs.uplink !== undefined) {
    const ignored = (config?.ignoredInterfaces ?? []).filter(quotable);
    L.push('# The uplink only: resolves next hops of multihop sessions; exported nowhere.');
    L.push('protocol direct tortie_direct {');
    L.push('  ipv4 { import all; export none; };');
    L.push(
      `  interface ${[...ignored.map((i) => `-${quote(i)}`), quote(inputs.uplink)].join(', ')};`,
    );
    L.push('}');
    L.push('');
  }
  L.push('protocol kernel tortie_kernel {');
  L.push('  ipv4 { import none; export filter tortie_to_kernel; };');
  L.push('  kernel table 254;');
  L.push('  metric 32;');
  L.push('  scan time 10;');
  L.push('}');
  L.push('');
  L.push('# Advertised: the affine blocks (aggregated) and borrowed addresses.');
  L.push('protocol static tortie_blocks {');
  L.push('  ipv4;');
  for (const s of statics) L.push(`  route ${s.text} blackhole;`);
  L.push('}');
  L.push('');
  const reachable = peers.filter((p) => p.spec?.reachableBy !== undefined);
  if (reachable.length > 0) {
    L.push('# BGPPeer reachableBy: the peer address through its gateway (next-hop resolution).');
    L.push('protocol static tortie_reachable {');
    L.push('  ipv4;');
    // One route per address (sessions to two ports of one peer share it).
    const routes = new Map(reachable.map((p) => [p.ip, p.spec!.reachableBy!]));
    for (const [ip, via] of routes) L.push(`  route ${ip}/32 via ${via};`);
    L.push('}');
    L.push('');
  }
  L.push('template bgp tortie_bgp {');
  L.push(
    `  local ${me.text}${listenPort === undefined ? '' : ` port ${listenPort}`} as ${asNumber};`,
  );
  // BindMode NodeIP: the listening socket is bound to the node's address only.
  if (config?.bindMode === 'NodeIP') L.push('  strict bind on;');
  L.push(`  debug ${severity.debug};`);
  if (t.holdTime !== undefined) {
    L.push(`  hold time ${t.holdTime};`);
    L.push(`  keepalive time ${t.keepaliveTime ?? Math.max(1, Math.floor(t.holdTime / 3))};`);
  }
  if (t.startDelayTime !== undefined) L.push(`  start delay time ${t.startDelayTime};`);
  if (t.connectRetryTime !== undefined) L.push(`  connect retry time ${t.connectRetryTime};`);
  if (t.errorWaitTime !== undefined)
    L.push(`  error wait time ${t.errorWaitTime[0]}, ${t.errorWaitTime[1]};`);
  L.push('  ipv4 { import all; export filter tortie_export; };');
  L.push('}');
  const meshRestart = config?.nodeMeshMaxRestartTime;
  for (const p of peers) {
    const spec = p.spec;
    const localAs = spec?.localASNumber ?? asNumber;
    const sameAs = p.asNumber === localAs;
    L.push('');
    L.push(
      `# ${p.type} peer: ${p.source}${p.role === undefined ? '' : ` (${ROLE_DESCRIPTION[p.role]})`}`,
    );
    L.push(`protocol bgp ${p.name} from tortie_bgp {`);
    L.push(`  neighbor ${p.ip}${p.port === undefined ? '' : ` port ${p.port}`} as ${p.asNumber};`);
    if (spec?.localASNumber !== undefined) L.push(`  local as ${spec.localASNumber};`);
    const ttl = spec?.ttlSecurity ?? 0;
    if (ttl > 0) {
      // As Calico: GTSM, and the peer at most that many hops away.
      L.push('  ttl security on;');
      L.push(`  multihop ${ttl};`);
    } else L.push(p.direct ? '  direct;' : '  multihop;');
    const source = spec?.sourceAddress;
    if (source !== undefined && source !== 'UseNodeIP' && source !== 'None')
      L.push(`  source address ${source};`);
    const password = passwords.get(p.name);
    if (password !== undefined) L.push(`  password ${quote(password)};`);
    const restart = spec === undefined ? meshRestart : spec.maxRestartTime;
    // The restart time travels in 12 bits of the graceful restart capability.
    if (restart !== undefined)
      L.push(`  graceful restart time ${Math.min(4095, durationSeconds(restart))};`);
    if (spec?.keepaliveTime !== undefined && t.holdTime === undefined) {
      const keepalive = Math.min(21845, Math.max(1, durationSeconds(spec.keepaliveTime)));
      // BIRD refuses a keepalive longer than the hold time (240 s by default): the hold
      // time grows to three keepalives then, as BGP's own ratio.
      if (keepalive > 240) L.push(`  hold time ${keepalive * 3};`);
      L.push(`  keepalive time ${keepalive};`);
    }
    if (spec?.numAllowedLocalASNumbers !== undefined)
      L.push(`  allow local as ${spec.numAllowedLocalASNumbers};`);
    if (p.role !== undefined) L.push(`  description ${quote(ROLE_DESCRIPTION[p.role])};`);
    if (p.role === 'rr-client') L.push('  rr client;');
    if (p.clusterId !== undefined) L.push(`  rr cluster id ${p.clusterId};`);
    const channel: string[] = [];
    const named = (spec?.filters ?? []).filter((f) => {
      if (filters.has(f)) return true;
      problems.push(`${p.source}: BGPFilter ${f} does not exist (ignored, as Calico does)`);
      return false;
    });
    const calls = (dir: 'import' | 'export') =>
      named
        .filter((f) => hasRules(filters.get(f)!, dir))
        .map((f) => `${filterFunctionName(f, dir)}(${sameAs});`);
    const imports = calls('import');
    const exports = calls('export');
    if (imports.length > 0)
      channel.push(`    import filter { ${[...imports, 'accept;'].join(' ')} };`);
    if (exports.length > 0)
      channel.push(
        `    export filter { ${[...exports, 'tortie_export_to_peers();', 'reject;'].join(' ')} };`,
      );
    // keepOriginalNextHop: eBGP peers only (as Calico); nextHopMode says it for any peer.
    if (spec?.nextHopMode === 'Self') channel.push('    next hop self;');
    else if (spec?.nextHopMode === 'Keep' || (spec?.keepOriginalNextHop === true && !sameAs))
      channel.push('    next hop keep;');
    if (channel.length > 0) L.push('  ipv4 {', ...channel, '  };');
    L.push('}');
  }
  L.push('');
  return {
    text: L.join('\n'),
    routerId: me.text,
    asNumber,
    peers,
    originated: statics.map((s) => s.text),
    problems: [...new Set(problems)],
    notImplemented,
  };
}

/** The pool holding `cidr` (most specific), for turning learned routes into map entries. */
export function poolOf<P extends { readonly cidr: string }>(
  pools: readonly P[],
  cidr: Cidr,
): P | undefined {
  let best: { pool: P; len: number } | undefined;
  for (const p of pools) {
    const c = tryParseCidr(p.cidr);
    if (c === undefined || !cidrWithin(cidr, c)) continue;
    if (best === undefined || c.prefixLength > best.len) best = { pool: p, len: c.prefixLength };
  }
  return best?.pool;
}
