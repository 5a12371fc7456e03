/**
 * The (protocol, port) space of the second lookup stage: l4 = protocol << 16 | port,
 * 24 bits. `port` is the destination port for TCP, UDP, UDPLite and SCTP, (type << 8) |
 * code for ICMP, and 0 for every other protocol (bpf/tortie_maps.h).
 *
 * A rule's protocol, ICMP and port fields each restrict this space; this module turns
 * them into interval sets. Named ports are resolved by the caller (they depend on an
 * endpoint) and arrive here as (protocol, port) pairs.
 */
import {
  PORT_PROTOCOLS,
  type IcmpMatch,
  type NamedPort,
  type PortMatch,
  type Rule,
} from '../model.js';
import {
  intersect,
  normalize,
  subtract,
  union,
  type Interval,
  type IntervalSet,
} from './intervals.js';

export const L4_BITS = 24;
export const L4_MAX = 2 ** 24 - 1;
export const ALL_L4: IntervalSet = [[0, L4_MAX]];
const ICMP = 1;

export function l4Of(protocol: number, port: number): number {
  return protocol * 65536 + port;
}

/** The l4 value a packet is judged by. */
export function packetL4(packet: {
  protocol: number;
  dport: number;
  icmpType?: number;
  icmpCode?: number;
}): number {
  if (PORT_PROTOCOLS.has(packet.protocol)) return l4Of(packet.protocol, packet.dport);
  if (packet.protocol === ICMP)
    return l4Of(ICMP, (packet.icmpType ?? 0) * 256 + (packet.icmpCode ?? 0));
  return l4Of(packet.protocol, 0);
}

function protocolSet(protocol: number): IntervalSet {
  return [[l4Of(protocol, 0), l4Of(protocol, 65535)]];
}

function icmpSet(match: IcmpMatch): IntervalSet {
  const base = l4Of(ICMP, match.type * 256);
  return match.code === undefined ? [[base, base + 255]] : [[base + match.code, base + match.code]];
}

/** Every protocol number whose packets carry no port: policy sees their port as 0. */
const PORTLESS_PROTOCOLS: readonly number[] = Array.from({ length: 256 }, (_, p) => p).filter(
  (p) => !PORT_PROTOCOLS.has(p),
);

/**
 * A numeric port range [from, to]. It matches the destination port of the port-carrying
 * protocols; a packet of any other protocol has port 0 as policy sees it, so a range
 * that includes 0 matches all of those too. (Validation refuses ports without a
 * port-carrying protocol, so the second half only keeps the compiler exact on inputs
 * that never reach it.)
 */
function portRangeSet(from: number, to: number): IntervalSet {
  const key = from * 65536 + to;
  let set = portRanges.get(key);
  if (set === undefined) {
    set = buildPortRangeSet(from, to);
    if (portRanges.size >= 4096) portRanges.clear();
    portRanges.set(key, set);
  }
  return set;
}

const portRanges = new Map<number, IntervalSet>();

function buildPortRangeSet(from: number, to: number): IntervalSet {
  const pieces: Interval[] = [...PORT_PROTOCOLS].map((p) => [l4Of(p, from), l4Of(p, to)] as const);
  if (from === 0) for (const p of PORTLESS_PROTOCOLS) pieces.push([l4Of(p, 0), l4Of(p, 65535)]);
  return normalize(pieces);
}

/** Named ports as l4 points (a port-less protocol only ever has port 0, as policy sees it). */
function namedPortSet(ports: readonly NamedPort[]): IntervalSet {
  const pieces: Interval[] = [];
  for (const np of ports) {
    if (PORT_PROTOCOLS.has(np.protocol))
      pieces.push([l4Of(np.protocol, np.port), l4Of(np.protocol, np.port)]);
    else if (np.port === 0) pieces.push([l4Of(np.protocol, 0), l4Of(np.protocol, 65535)]);
  }
  return normalize(pieces);
}

/** An empty list constrains nothing, exactly like an absent one. */
export function present<T>(list: readonly T[] | undefined): list is readonly T[] {
  return list !== undefined && list.length > 0;
}

/** The l4 points the protocol and ICMP fields of a rule allow. */
export function ruleBaseL4(
  rule: Pick<Rule, 'protocol' | 'notProtocol' | 'icmp' | 'notICMP'>,
): IntervalSet {
  let set = ALL_L4;
  if (rule.protocol !== undefined) set = intersect(set, protocolSet(rule.protocol));
  if (rule.notProtocol !== undefined) set = subtract(set, protocolSet(rule.notProtocol));
  if (rule.icmp !== undefined) set = intersect(set, icmpSet(rule.icmp));
  if (rule.notICMP !== undefined) set = subtract(set, icmpSet(rule.notICMP));
  return set;
}

/** The numeric entries of a port list as l4 points, and the names it mentions. */
export interface PortList {
  readonly numeric: IntervalSet;
  readonly names: readonly string[];
}

export function splitPortList(list: readonly PortMatch[]): PortList {
  let numeric: IntervalSet = [];
  const names: string[] = [];
  for (const entry of list) {
    if (entry.kind === 'range') numeric = union(numeric, portRangeSet(entry.from, entry.to));
    else if (!names.includes(entry.name)) names.push(entry.name);
  }
  return { numeric, names };
}

/**
 * The destination-port restriction of a rule, for a destination whose named ports are
 * `destinationPorts` (the named ports of the endpoint on the destination side; empty
 * when it is not a known endpoint).
 */
export interface PortRestriction {
  readonly ports?: PortList;
  readonly notPorts?: PortList;
}

export function portRestriction(destination: {
  ports?: readonly PortMatch[];
  notPorts?: readonly PortMatch[];
}): PortRestriction {
  return {
    ...(present(destination.ports) ? { ports: splitPortList(destination.ports) } : {}),
    ...(present(destination.notPorts) ? { notPorts: splitPortList(destination.notPorts) } : {}),
  };
}

/** The names a restriction mentions (whose meaning depends on the destination). */
export function restrictionNames(r: PortRestriction): string[] {
  return [...new Set([...(r.ports?.names ?? []), ...(r.notPorts?.names ?? [])])];
}

/** base ∩ (ports, with names resolved on `destinationPorts`) \ (notPorts, likewise). */
export function restrictL4(
  base: IntervalSet,
  r: PortRestriction,
  destinationPorts: readonly NamedPort[],
): IntervalSet {
  let set = base;
  if (r.ports !== undefined)
    set = intersect(set, union(r.ports.numeric, named(r.ports.names, destinationPorts)));
  if (r.notPorts !== undefined)
    set = subtract(set, union(r.notPorts.numeric, named(r.notPorts.names, destinationPorts)));
  return set;
}

function named(names: readonly string[], ports: readonly NamedPort[]): IntervalSet {
  if (names.length === 0 || ports.length === 0) return [];
  return namedPortSet(ports.filter((np) => names.includes(np.name)));
}

// --- source ports ---------------------------------------------------------------------

/** The source-port space of stage 3: 16 bits (policy sees 0 for a protocol without ports). */
export const SPORT_BITS = 16;
export const SPORT_MAX = 65535;
export const ALL_SPORTS: IntervalSet = [[0, SPORT_MAX]];

/** A rule's source.ports / source.notPorts as written (names resolve on the source endpoint). */
export interface SportRestriction {
  readonly ports?: readonly PortMatch[];
  readonly notPorts?: readonly PortMatch[];
}

export function sportRestriction(source: {
  ports?: readonly PortMatch[];
  notPorts?: readonly PortMatch[];
}): SportRestriction {
  return {
    ...(present(source.ports) ? { ports: source.ports } : {}),
    ...(present(source.notPorts) ? { notPorts: source.notPorts } : {}),
  };
}

export function sportNames(r: SportRestriction): string[] {
  const names = new Set<string>();
  for (const m of [...(r.ports ?? []), ...(r.notPorts ?? [])])
    if (m.kind === 'named') names.add(m.name);
  return [...names];
}

/** The source ports a list matches for packets of `protocol`, names resolved on `held`. */
function sportSet(
  list: readonly PortMatch[],
  protocol: number,
  held: readonly NamedPort[],
): IntervalSet {
  const pieces: Interval[] = [];
  for (const m of list) {
    if (m.kind === 'range') pieces.push([m.from, m.to]);
    else
      for (const np of held)
        if (np.name === m.name && np.protocol === protocol) pieces.push([np.port, np.port]);
  }
  return normalize(pieces);
}

/**
 * The l4 points `l4` of a rule split by what its source-port restriction demands there:
 * a list of (l4, source ports) pairs, the source ports undefined where any will do. A
 * named source port matches a packet of its own protocol only, so the l4 points of each
 * protocol the names resolve to get their own pair (`sourcePorts`: the named ports of
 * the source endpoint; empty when it is not a known endpoint).
 */
export function sportParts(
  l4: IntervalSet,
  r: SportRestriction,
  sourcePorts: readonly NamedPort[],
): { l4: IntervalSet; sport: IntervalSet | undefined }[] {
  if (l4.length === 0) return [];
  if (r.ports === undefined && r.notPorts === undefined) return [{ l4, sport: undefined }];
  const names = sportNames(r);
  const held = names.length === 0 ? [] : sourcePorts.filter((np) => names.includes(np.name));
  const protocols = [...new Set(held.map((np) => np.protocol))].sort((a, b) => a - b);
  const sportsFor = (protocol: number): IntervalSet => {
    let set = r.ports === undefined ? ALL_SPORTS : sportSet(r.ports, protocol, held);
    if (r.notPorts !== undefined) set = subtract(set, sportSet(r.notPorts, protocol, held));
    return set;
  };
  const out: { l4: IntervalSet; sport: IntervalSet | undefined }[] = [];
  const push = (points: IntervalSet, sport: IntervalSet): void => {
    if (points.length === 0 || sport.length === 0) return;
    const full = sport.length === 1 && sport[0]![0] === 0 && sport[0]![1] === SPORT_MAX;
    out.push({ l4: points, sport: full ? undefined : sport });
  };
  let rest = l4;
  for (const p of protocols) {
    push(intersect(l4, protocolSet(p)), sportsFor(p));
    rest = subtract(rest, protocolSet(p));
  }
  push(rest, sportsFor(-1));
  return out;
}
