/**
 * World + the node's local endpoints → the iptables `filter` chains and the ipsets they
 * use, structured as Calico's Felix does it (docs/iptables.md):
 *
 *   FORWARD → tortie-FORWARD → tortie-from-wl-dispatch (-i veth → tortie-fw-<veth>)
 *                            → tortie-to-wl-dispatch   (-o veth → tortie-tw-<veth>)
 *                            → accept when the accept mark is set
 *   INPUT   → tortie-INPUT   → (-i tor+) tortie-wl-to-host → loopback dropped,
 *                              from-wl-dispatch, then the endpoint-to-host action
 *
 * An endpoint chain: anti-spoofing and no tunnel traffic (from the workload: IPIP and
 * UDP to the VXLAN port dropped unless allowIPIPPacketsFromWorkloads /
 * allowVXLANPacketsFromWorkloads, as Felix does; src/policy/guards.ts), conntrack (established/related
 * accepted, invalid dropped), marks cleared, then per applicable tier: clear the pass
 * mark, jump to each policy chain while the pass mark is clear and return as soon as the
 * accept mark is set, drop at the end of a Deny tier unless a policy passed; then the
 * profiles; then drop. A policy chain (`tortie-pi-…` ingress, `tortie-po-…` egress)
 * sets the accept mark and returns (Allow), sets the pass mark and returns (Pass), drops
 * (Deny) or logs and goes on (Log). Profile chains (`tortie-pri-…` / `tortie-pro-…`) are
 * policy chains in which Pass drops (profiles end with a deny).
 *
 * Selector resolution is the compiler's (WorldIndex): only this last step differs from
 * the BPF compiler. Every match is address- or port-based, so a policy chain is the same
 * for every endpoint that applies it; what depends on the endpoint lives in ipsets:
 *   - peer selectors (`tortie-s-…`, by identity: selector, scope): the addresses of the
 *     in-scope endpoints and network sets they match;
 *   - CIDR lists (`tortie-n-…`, by content): nets and notNets of more than one CIDR;
 *   - local sides (`tortie-l-…`, by identity): the local endpoints a rule's local-side
 *     fields admit, matched on the local address (anti-spoofing makes it E's own);
 *   - named ports (`tortie-p-…`, by identity: the names): hash:ip,port of
 *     (endpoint address, protocol:port) for every endpoint holding one of the names,
 *     matched on (daddr, protocol:dport) — the destination side's named ports, for
 *     ingress E's and for egress the peer's, as docs/policy-semantics.md says; and on
 *     (saddr, protocol:sport) for source named ports (Calico's ip,port set of the source
 *     endpoints), the same set.
 */
import { createHash } from 'node:crypto';
import {
  DEFAULT_TIER,
  DEFAULT_TIER_ORDER,
  PORT_PROTOCOLS,
  policyKey,
  type Direction,
  type Endpoint,
  type EntityMatch,
  type Policy,
  type Profile,
  type Rule,
  type Tier,
  type World,
} from '../policy/model.js';
import { parseSelector } from '../policy/selector.js';
import {
  DEFAULT_VXLAN_PORT,
  IPPROTO_IPIP,
  IPPROTO_UDP,
  type WorkloadEncapSettings,
} from '../policy/guards.js';
import { ALL_ADDRESSES, cidrsToSet, formatAddress } from '../policy/compile/addresses.js';
import { normalize, type IntervalSet } from '../policy/compile/intervals.js';
import { endpointLabels, WorldIndex, type RuleOwner } from '../policy/compile/world-index.js';
import { cidrWithin, formatCidr, tryParseCidr } from '../ipam/ipv4.js';
import { MULTIPORT_MAX, protoName, type IptRule, type Match, type Target } from './rules.js';

/** Felix's bits: accept, pass and a scratch bit, in the mark's 0x70000 (Felix's default band). */
export const MARK_ACCEPT = 0x10000;
export const MARK_PASS = 0x20000;
export const MARK_SCRATCH = 0x40000;
export const MARK_ALL = MARK_ACCEPT | MARK_PASS | MARK_SCRATCH;

export const CHAIN_PREFIX = 'tortie-';
export const SET_PREFIX = 'tortie-';
export const CHAIN_FORWARD = 'tortie-FORWARD';
export const CHAIN_INPUT = 'tortie-INPUT';
export const CHAIN_FROM_WL = 'tortie-from-wl-dispatch';
export const CHAIN_TO_WL = 'tortie-to-wl-dispatch';
export const CHAIN_WL_TO_HOST = 'tortie-wl-to-host';
/** iptables chain names hold 28 characters. */
export const MAX_CHAIN_NAME = 28;
/** ipset names hold 31 characters. */
export const MAX_SET_NAME = 31;

export interface IptablesEndpoint {
  /** Host end of the pod's veth. */
  readonly iface: string;
  readonly endpoint: Endpoint;
}

export interface IpSetSpec {
  readonly name: string;
  readonly type: 'hash:net' | 'hash:ip,port';
  /** Sorted, as `ipset save` spells them (a /32 without its length). */
  readonly members: readonly string[];
}

export interface Ruleset {
  /** Chain → its rules, in order. Only tortie's chains. */
  readonly chains: ReadonlyMap<string, readonly IptRule[]>;
  readonly sets: ReadonlyMap<string, IpSetSpec>;
  /** Built-in chains and the tortie chain each jumps to first. */
  readonly hooks: readonly { readonly builtin: 'FORWARD' | 'INPUT'; readonly chain: string }[];
}

export interface RenderOptions extends WorkloadEncapSettings {
  /** Host-side veth names share this prefix (src/plumbing: `tor`). */
  readonly ifacePrefix?: string;
  /**
   * What happens to a pod's new flow to the node itself once its egress policy allowed
   * it (Felix's DefaultEndpointToHostAction): Drop (default, as Calico), Accept, or Return
   * (back to INPUT, the host's own rules).
   */
  readonly endpointToHost?: 'Drop' | 'Accept' | 'Return';
  /**
   * The underlay addresses VXLAN is accepted from (the other nodes). When given,
   * tortie-INPUT drops UDP to the VXLAN port from any other source before the kernel's
   * vxlan device sees it (set SET_VXLAN_SOURCES). Undefined: no such rule.
   */
  readonly vxlanSources?: readonly string[];
  /**
   * Per other node, the inner sources its VXLAN may carry: `source` is its underlay
   * address (the outer source), `cidrs` the blocks and borrowed /32s routed to it and its
   * own address (what its vxlan device sends node-originated traffic from). When given,
   * tortie-INPUT sends UDP to the VXLAN port through CHAIN_VXLAN_IN, which returns a
   * packet only when the longest of all nodes' prefixes holding its inner source (read
   * with u32 before decapsulation) is the sender's, and drops everything else.
   */
  readonly vxlanInnerSources?: readonly VxlanPeer[];
}

export interface VxlanPeer {
  readonly source: string;
  readonly cidrs: readonly string[];
}

/** The inner-source check of VXLAN (anti-spoofing across nodes), from tortie-INPUT. */
export const CHAIN_VXLAN_IN = 'tortie-vxlan-in';

/** The ipset of the nodes VXLAN is accepted from (Calico's cali40all-vxlan-net); kind 'v'. */
export const SET_VXLAN_SOURCES = 'tortie-v-vxlan-nodes';

/** What the iptables dataplane cannot express: it refuses the whole render. */
export class IptablesUnsupportedError extends Error {
  override readonly name = 'IptablesUnsupportedError';
}

/** 16 hex digits of the SHA-1 of `identity`. */
export function shortHash(identity: string, length = 16): string {
  return createHash('sha1').update(identity).digest('hex').slice(0, length);
}

export function policyChainName(tier: string, policy: Policy, direction: Direction): string {
  return `tortie-p${direction === 'ingress' ? 'i' : 'o'}-${shortHash(`${tier}|${policyKey(policy)}`)}`;
}

export function profileChainName(name: string, direction: Direction): string {
  return `tortie-pr${direction === 'ingress' ? 'i' : 'o'}-${shortHash(name, 15)}`;
}

export function endpointChainName(iface: string, direction: Direction): string {
  return `tortie-${direction === 'ingress' ? 'tw' : 'fw'}-${iface}`;
}

/** Sets by kind: s selector, n nets, l local side, p named ports. */
export function setName(kind: 's' | 'n' | 'l' | 'p', identity: string): string {
  return `${SET_PREFIX}${kind}-${shortHash(identity)}`;
}

/** The set a changed set is built in before it is swapped in. */
export function tempSetName(name: string): string {
  if (!name.startsWith(SET_PREFIX) || name[SET_PREFIX.length + 1] !== '-')
    throw new Error(`not a tortie set name: ${name}`);
  return `${SET_PREFIX}t${name.slice(SET_PREFIX.length)}`;
}

// --- CIDRs ----------------------------------------------------------------------------

/** The fewest CIDRs covering exactly an interval set (none of them /0 unless it is all). */
export function intervalsToCidrs(set: IntervalSet): string[] {
  const out: string[] = [];
  for (const [lo0, hi] of set) {
    let lo = lo0;
    while (lo <= hi) {
      let size = 1;
      while (size < 2 ** 32 && lo % (size * 2) === 0 && lo + size * 2 - 1 <= hi) size *= 2;
      const bits = 32 - Math.log2(size);
      out.push(bits === 32 ? formatAddress(lo) : `${formatAddress(lo)}/${bits}`);
      lo += size;
    }
  }
  return out;
}

function isAll(set: IntervalSet): boolean {
  return (
    set.length === 1 && set[0]![0] === ALL_ADDRESSES[0]![0] && set[0]![1] === ALL_ADDRESSES[0]![1]
  );
}

function present<T>(list: readonly T[] | undefined): list is readonly T[] {
  return list !== undefined && list.length > 0;
}

// --- ordering (docs/policy-semantics.md, "Which policies apply") ----------------------

function compareOrders(a: number | undefined, b: number | undefined): number {
  if (a === b) return 0;
  if (a === undefined) return 1;
  if (b === undefined) return -1;
  return a < b ? -1 : 1;
}

function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function findTier(world: World, name: string): Tier {
  const tier = world.tiers.find((t) => t.name === name);
  if (tier !== undefined) return tier;
  if (name === DEFAULT_TIER) return { name, order: DEFAULT_TIER_ORDER, defaultAction: 'Deny' };
  return { name, defaultAction: 'Deny' };
}

/** The applicable tiers of (E, D), ordered, each with its applicable policies, ordered. */
export function applicableTiers(
  world: World,
  index: WorldIndex,
  endpoint: Endpoint,
  direction: Direction,
): { tier: Tier; policies: Policy[] }[] {
  const labels = endpointLabels(endpoint);
  const nsLabels = index.namespaceLabels(endpoint.namespace);
  const type = direction === 'ingress' ? 'Ingress' : 'Egress';
  const applicable = world.policies.filter(
    (p) =>
      p.types.includes(type) &&
      (p.namespace === undefined || p.namespace === endpoint.namespace) &&
      parseSelector(p.selector).matches(labels) &&
      (p.namespace !== undefined ||
        p.namespaceSelector === undefined ||
        parseSelector(p.namespaceSelector).matches(nsLabels)),
  );
  return [...new Set(applicable.map((p) => p.tier))]
    .map((name) => findTier(world, name))
    .sort((a, b) => compareOrders(a.order, b.order) || compareNames(a.name, b.name))
    .map((tier) => ({
      tier,
      policies: applicable
        .filter((p) => p.tier === tier.name)
        .sort(
          (a, b) =>
            compareOrders(a.order, b.order) ||
            compareNames(a.name, b.name) ||
            compareNames(policyKey(a), policyKey(b)),
        ),
    }));
}

// --- the renderer ---------------------------------------------------------------------

const markIs = (bit: number): Match => ({ k: 'mark', value: bit, mask: bit });
const markClear = (bit: number): Match => ({ k: 'mark', value: 0, mask: bit });
const setMark = (bit: number): Target => ({ k: 'set-mark', value: bit, mask: bit });
const ACCEPT: Target = { k: 'ACCEPT' };
const DROP: Target = { k: 'DROP' };
const RETURN: Target = { k: 'RETURN' };

interface Builder {
  readonly world: World;
  readonly index: WorldIndex;
  readonly locals: readonly IptablesEndpoint[];
  readonly chains: Map<string, IptRule[]>;
  readonly sets: Map<string, IpSetSpec>;
}

export function render(
  world: World,
  locals: readonly IptablesEndpoint[],
  opts: RenderOptions = {},
): Ruleset {
  checkLocals(locals);
  const ifacePrefix = opts.ifacePrefix ?? 'tor';
  const b: Builder = {
    world,
    index: new WorldIndex(world),
    locals,
    chains: new Map(),
    sets: new Map(),
  };
  const sorted = [...locals].sort((x, y) => compareNames(x.iface, y.iface));
  const anyIface = { k: 'iface', name: `${ifacePrefix}+` } as const;

  b.chains.set(CHAIN_FORWARD, [
    { matches: [], target: { k: 'set-mark', value: 0, mask: MARK_ALL }, comment: 'clear marks' },
    { matches: [{ ...anyIface, dir: 'in' }], target: { k: 'jump', chain: CHAIN_FROM_WL } },
    { matches: [{ ...anyIface, dir: 'out' }], target: { k: 'jump', chain: CHAIN_TO_WL } },
    { matches: [markIs(MARK_ACCEPT)], target: ACCEPT, comment: 'policy accepted' },
  ]);
  const vxlanPort = opts.vxlanPort ?? DEFAULT_VXLAN_PORT;
  if (opts.vxlanSources !== undefined) {
    b.sets.set(SET_VXLAN_SOURCES, {
      name: SET_VXLAN_SOURCES,
      type: 'hash:net',
      members: [...new Set(opts.vxlanSources)].sort(compareAddresses),
    });
  }
  b.chains.set(CHAIN_INPUT, [
    ...(opts.vxlanSources === undefined
      ? []
      : [
          {
            matches: [
              { k: 'proto', not: false, proto: IPPROTO_UDP },
              { k: 'multiport', not: false, ranges: [[vxlanPort, vxlanPort]] },
              { k: 'set', not: true, name: SET_VXLAN_SOURCES, flags: 'src' },
            ],
            target: DROP,
            comment: 'VXLAN from a host that is not a node',
          } satisfies IptRule,
        ]),
    ...(opts.vxlanInnerSources === undefined
      ? []
      : [
          {
            matches: [
              { k: 'proto', not: false, proto: IPPROTO_UDP },
              { k: 'multiport', not: false, ranges: [[vxlanPort, vxlanPort]] },
            ],
            target: { k: 'jump', chain: CHAIN_VXLAN_IN },
            comment: 'VXLAN inner source bound to the sending node',
          } satisfies IptRule,
        ]),
    { matches: [], target: { k: 'set-mark', value: 0, mask: MARK_ALL }, comment: 'clear marks' },
    { matches: [{ ...anyIface, dir: 'in' }], target: { k: 'goto', chain: CHAIN_WL_TO_HOST } },
  ]);
  if (opts.vxlanInnerSources !== undefined) {
    b.chains.set(CHAIN_VXLAN_IN, vxlanInnerSourceRules(opts.vxlanInnerSources));
  }
  const hostAction = opts.endpointToHost ?? 'Drop';
  b.chains.set(CHAIN_WL_TO_HOST, [
    // Reachable only with route_localnet=1 (kube-proxy's setting): never a pod's business.
    {
      matches: [{ k: 'addr', dir: 'dst', not: false, cidr: '127.0.0.0/8' }],
      target: DROP,
      comment: 'pod to loopback',
    },
    { matches: [], target: { k: 'jump', chain: CHAIN_FROM_WL } },
    {
      matches: [],
      target: hostAction === 'Accept' ? ACCEPT : hostAction === 'Return' ? RETURN : DROP,
      comment: 'endpoint to host',
    },
  ]);
  b.chains.set(CHAIN_FROM_WL, [
    ...sorted.map((l): IptRule => ({
      matches: [{ k: 'iface', dir: 'in', name: l.iface }],
      target: { k: 'goto', chain: endpointChainName(l.iface, 'egress') },
    })),
    { matches: [], target: DROP, comment: 'unknown interface' },
  ]);
  b.chains.set(CHAIN_TO_WL, [
    ...sorted.map((l): IptRule => ({
      matches: [{ k: 'iface', dir: 'out', name: l.iface }],
      target: { k: 'goto', chain: endpointChainName(l.iface, 'ingress') },
    })),
    { matches: [], target: DROP, comment: 'unknown interface' },
  ]);

  for (const local of sorted) {
    for (const direction of ['ingress', 'egress'] as const)
      endpointChain(b, local, direction, opts);
  }
  return {
    chains: b.chains,
    sets: b.sets,
    hooks: [
      { builtin: 'FORWARD', chain: CHAIN_FORWARD },
      { builtin: 'INPUT', chain: CHAIN_INPUT },
    ],
  };
}

/**
 * CHAIN_VXLAN_IN: per sending node (by outer source), its own prefixes (RETURN) and the
 * other nodes' prefixes nested inside them (DROP: a /32 borrowed from its block by
 * another node), longest first — so the longest prefix holding the inner source decides,
 * as the routes do — then DROP for anything else.
 */
export function vxlanInnerSourceRules(peers: readonly VxlanPeer[]): IptRule[] {
  const owned = peers.map((p) => ({
    source: p.source,
    cidrs: [...new Set(p.cidrs)].map((c) => {
      const cidr = tryParseCidr(c.includes('/') ? c : `${c}/32`);
      if (cidr === undefined) throw new IptablesUnsupportedError(`not an IPv4 CIDR: ${c}`);
      return cidr;
    }),
  }));
  owned.sort((x, y) => compareAddresses(x.source, y.source));
  const rules: IptRule[] = [];
  for (const peer of owned) {
    const own = new Set(peer.cidrs.map(formatCidr));
    const entries = peer.cidrs.map((cidr) => ({ cidr, mine: true }));
    for (const other of owned) {
      if (other === peer) continue;
      for (const cidr of other.cidrs) {
        if (own.has(formatCidr(cidr))) continue;
        if (!peer.cidrs.some((c) => cidrWithin(cidr, c) && c.prefixLength < cidr.prefixLength))
          continue;
        own.add(formatCidr(cidr));
        entries.push({ cidr, mine: false });
      }
    }
    entries.sort((x, y) => y.cidr.prefixLength - x.cidr.prefixLength || x.cidr.base - y.cidr.base);
    for (const e of entries) {
      rules.push({
        matches: [
          { k: 'addr', dir: 'src', not: false, cidr: `${peer.source}/32` },
          { k: 'vxlan-inner-src', cidr: formatCidr(e.cidr) },
        ],
        target: e.mine ? RETURN : DROP,
        ...(e.mine ? {} : { comment: 'inner source routed to another node' }),
      });
    }
  }
  rules.push({ matches: [], target: DROP, comment: 'VXLAN inner source not routed to the sender' });
  return rules;
}

function checkLocals(locals: readonly IptablesEndpoint[]): void {
  const ifaces = new Set<string>();
  const ips = new Set<string>();
  for (const l of locals) {
    if (!/^[A-Za-z0-9_.-]{1,15}$/.test(l.iface))
      throw new IptablesUnsupportedError(`interface name ${JSON.stringify(l.iface)} is not usable`);
    if (ifaces.has(l.iface)) throw new IptablesUnsupportedError(`interface ${l.iface} twice`);
    if (ips.has(l.endpoint.ip))
      throw new IptablesUnsupportedError(`two local endpoints have ${l.endpoint.ip}`);
    ifaces.add(l.iface);
    ips.add(l.endpoint.ip);
  }
}

function endpointChain(
  b: Builder,
  local: IptablesEndpoint,
  direction: Direction,
  opts: RenderOptions,
): void {
  const { endpoint } = local;
  const rules: IptRule[] = [];
  if (direction === 'egress') {
    rules.push({
      matches: [{ k: 'addr', dir: 'src', not: true, cidr: `${endpoint.ip}/32` }],
      target: DROP,
      comment: 'anti-spoofing',
    });
    // Before conntrack: no tracked flow carries a pod's tunnel traffic either.
    if (opts.allowVXLANPacketsFromWorkloads !== true) {
      const port = opts.vxlanPort ?? DEFAULT_VXLAN_PORT;
      rules.push({
        matches: [
          { k: 'proto', not: false, proto: IPPROTO_UDP },
          { k: 'multiport', not: false, ranges: [[port, port]] },
        ],
        target: DROP,
        comment: 'VXLAN from a workload',
      });
    }
    if (opts.allowIPIPPacketsFromWorkloads !== true) {
      rules.push({
        matches: [{ k: 'proto', not: false, proto: IPPROTO_IPIP }],
        target: DROP,
        comment: 'IPIP from a workload',
      });
    }
  }
  rules.push(
    { matches: [{ k: 'ctstate', states: ['RELATED', 'ESTABLISHED'] }], target: ACCEPT },
    { matches: [{ k: 'ctstate', states: ['INVALID'] }], target: DROP },
    { matches: [], target: { k: 'set-mark', value: 0, mask: MARK_ALL } },
  );
  for (const { tier, policies } of applicableTiers(b.world, b.index, endpoint, direction)) {
    rules.push({
      matches: [],
      target: { k: 'set-mark', value: 0, mask: MARK_PASS },
      comment: `tier ${tier.name}`.slice(0, 200),
    });
    for (const policy of policies) {
      const chain = policyChainName(tier.name, policy, direction);
      if (!b.chains.has(chain)) {
        b.chains.set(
          chain,
          ruleListChain(b, direction === 'ingress' ? policy.ingress : policy.egress, {
            direction,
            owner: policy.namespace,
            passDrops: false,
            logTag: chain.slice(CHAIN_PREFIX.length),
          }),
        );
      }
      rules.push({ matches: [markClear(MARK_PASS)], target: { k: 'jump', chain } });
      rules.push({ matches: [markIs(MARK_ACCEPT)], target: RETURN });
    }
    if (tier.defaultAction === 'Deny') {
      rules.push({
        matches: [markClear(MARK_PASS)],
        target: DROP,
        comment: `end of tier ${tier.name}`.slice(0, 200),
      });
    }
  }
  for (const name of endpoint.profiles) {
    const profile = b.world.profiles.find((p) => p.name === name);
    if (profile === undefined) continue; // an unknown profile has no rules
    const chain = profileChainName(profile.name, direction);
    if (!b.chains.has(chain)) b.chains.set(chain, profileChain(b, profile, direction, chain));
    rules.push({ matches: [], target: { k: 'jump', chain } });
    rules.push({ matches: [markIs(MARK_ACCEPT)], target: RETURN });
  }
  rules.push({ matches: [], target: DROP, comment: 'no profile allowed' });
  b.chains.set(endpointChainName(local.iface, direction), rules);
}

function profileChain(
  b: Builder,
  profile: Profile,
  direction: Direction,
  chain: string,
): IptRule[] {
  return ruleListChain(b, direction === 'ingress' ? profile.ingress : profile.egress, {
    direction,
    owner: undefined,
    passDrops: true,
    logTag: chain.slice(CHAIN_PREFIX.length),
  });
}

interface ListContext {
  readonly direction: Direction;
  readonly owner: RuleOwner;
  /** Profiles: Pass ends profile evaluation as a deny. */
  readonly passDrops: boolean;
  readonly logTag: string;
}

function ruleListChain(b: Builder, rules: readonly Rule[], ctx: ListContext): IptRule[] {
  const out: IptRule[] = [];
  rules.forEach((rule, index) => {
    const branches = ruleBranches(b, rule, ctx, index);
    if (branches.length === 0) return; // can never match
    switch (rule.action) {
      case 'Allow':
        for (const m of branches) out.push({ matches: m, target: setMark(MARK_ACCEPT) });
        out.push({ matches: [markIs(MARK_ACCEPT)], target: RETURN });
        break;
      case 'Deny':
        for (const m of branches) out.push({ matches: m, target: DROP });
        break;
      case 'Pass':
        if (ctx.passDrops) {
          for (const m of branches) out.push({ matches: m, target: DROP });
        } else {
          for (const m of branches) out.push({ matches: m, target: setMark(MARK_PASS) });
          out.push({ matches: [markIs(MARK_PASS)], target: RETURN });
        }
        break;
      case 'Log': {
        const prefix = `tortie ${ctx.logTag.slice(0, 18)} ${index}: `.slice(0, 29);
        if (branches.length === 1) {
          out.push({ matches: branches[0]!, target: { k: 'log', prefix } });
        } else {
          // One log line per packet, however many branches match.
          for (const m of branches) out.push({ matches: m, target: setMark(MARK_SCRATCH) });
          out.push({ matches: [markIs(MARK_SCRATCH)], target: { k: 'log', prefix } });
          out.push({ matches: [], target: { k: 'set-mark', value: 0, mask: MARK_SCRATCH } });
        }
        break;
      }
    }
  });
  return out;
}

/**
 * One semantic rule as an OR of match lists (iptables rules with the same target). Only
 * `ports` makes more than one: numeric ports in chunks of multiport's 15, and named
 * ports in their set; with both destination and source ports, every pairing of a
 * destination branch with a source branch. An empty result: the rule can never match.
 */
function ruleBranches(b: Builder, rule: Rule, ctx: ListContext, index: number): Match[][] {
  const where = `${ctx.logTag} rule ${index}`;
  const common: Match[] = [];
  // Protocol.
  if (rule.protocol !== undefined) {
    if (rule.notProtocol === rule.protocol) return [];
    common.push({ k: 'proto', not: false, proto: rule.protocol });
  } else if (rule.notProtocol !== undefined) {
    common.push({ k: 'proto', not: true, proto: rule.notProtocol });
  }
  // ICMP: the icmp match needs `-p icmp`.
  if (rule.icmp !== undefined || rule.notICMP !== undefined) {
    if (rule.protocol !== 1) {
      throw new IptablesUnsupportedError(
        `${where}: icmp / notICMP without protocol ICMP cannot be written in iptables (validation requires protocol ICMP)`,
      );
    }
    if (rule.icmp !== undefined) common.push({ k: 'icmp', not: false, ...rule.icmp });
    if (rule.notICMP !== undefined) common.push({ k: 'icmp', not: true, ...rule.notICMP });
  }
  const dst = rule.destination;
  const src = rule.source;
  for (const [side, what] of [
    [dst, 'ports / notPorts'],
    [src, 'source ports / notPorts'],
  ] as const) {
    if (
      (present(side.ports) || present(side.notPorts)) &&
      (rule.protocol === undefined || !PORT_PROTOCOLS.has(rule.protocol))
    ) {
      throw new IptablesUnsupportedError(
        `${where}: ${what} need protocol TCP, UDP, SCTP or UDPLite in iptables (validation requires it)`,
      );
    }
  }
  // Addresses.
  const [peerSide, localSide] =
    ctx.direction === 'ingress' ? [rule.source, rule.destination] : [rule.destination, rule.source];
  const peerDir = ctx.direction === 'ingress' ? 'src' : 'dst';
  const localDir = ctx.direction === 'ingress' ? 'dst' : 'src';
  if (!peerMatches(b, peerSide, ctx.owner, peerDir, common)) return [];
  if (constrains(localSide)) common.push(localSetMatch(b, localSide, localDir));
  let branches: Match[][] = [common];
  for (const [side, dir] of [
    [dst, 'dst'],
    [src, 'src'],
  ] as const) {
    // notPorts: every part must miss.
    if (present(side.notPorts)) {
      const { numeric, names } = splitPorts(side.notPorts);
      const misses: Match[] = multiportChunks(numeric).map((chunk) => ({
        k: 'multiport',
        not: true,
        side: dir,
        ranges: chunk,
      }));
      if (names.length > 0) misses.push(namedPortMatch(b, names, true, dir));
      branches = branches.map((m) => [...m, ...misses]);
    }
    if (present(side.ports)) {
      const { numeric, names } = splitPorts(side.ports);
      const hits: Match[] = multiportChunks(numeric).map((chunk) => ({
        k: 'multiport',
        not: false,
        side: dir,
        ranges: chunk,
      }));
      if (names.length > 0) hits.push(namedPortMatch(b, names, false, dir));
      branches = branches.flatMap((m) => hits.map((hit) => [...m, hit]));
    }
  }
  return branches;
}

/** Adds the peer-side address matches; false when they admit no address at all. */
function peerMatches(
  b: Builder,
  side: EntityMatch,
  owner: RuleOwner,
  dir: 'src' | 'dst',
  out: Match[],
): boolean {
  if (present(side.nets)) {
    const set = cidrsToSet(side.nets);
    if (!isAll(set)) {
      const cidrs = intervalsToCidrs(set);
      if (cidrs.length === 1) out.push({ k: 'addr', dir, not: false, cidr: withLength(cidrs[0]!) });
      else out.push(netSetMatch(b, cidrs, dir, false));
    }
  }
  if (present(side.notNets)) {
    const set = cidrsToSet(side.notNets);
    if (isAll(set)) return false;
    out.push(netSetMatch(b, intervalsToCidrs(set), dir, true));
  }
  const selector = side.selector ?? (side.namespaceSelector !== undefined ? 'all()' : undefined);
  if (selector !== undefined) out.push(selectorSetMatch(b, selector, side, owner, dir, false));
  if (side.notSelector !== undefined)
    out.push(selectorSetMatch(b, side.notSelector, side, owner, dir, true));
  return true;
}

function withLength(cidr: string): string {
  return cidr.includes('/') ? cidr : `${cidr}/32`;
}

function addSet(b: Builder, spec: IpSetSpec): void {
  const known = b.sets.get(spec.name);
  if (known !== undefined && JSON.stringify(known) !== JSON.stringify(spec))
    throw new Error(`ipset name collision: ${spec.name}`);
  b.sets.set(spec.name, spec);
}

function netSetMatch(
  b: Builder,
  cidrs: readonly string[],
  dir: 'src' | 'dst',
  not: boolean,
): Match {
  const members = [...cidrs].sort();
  const name = setName('n', JSON.stringify(members));
  addSet(b, { name, type: 'hash:net', members: netMembers(members) });
  return { k: 'set', not, name, flags: dir };
}

/** hash:net members as `ipset save` spells them; /0 cannot be stored, so it is split. */
function netMembers(cidrs: readonly string[]): string[] {
  return cidrs
    .flatMap((c) => (c.endsWith('/0') ? ['0.0.0.0/1', '128.0.0.0/1'] : [c]))
    .map((c) => (c.endsWith('/32') ? c.slice(0, -3) : c))
    .sort();
}

function selectorSetMatch(
  b: Builder,
  selector: string,
  side: EntityMatch,
  owner: RuleOwner,
  dir: 'src' | 'dst',
  not: boolean,
): Match {
  const ns = side.namespaceSelector;
  const identity = JSON.stringify([
    parseSelector(selector).canonical,
    owner ?? null,
    ns === undefined ? null : parseSelector(ns).canonical,
  ]);
  const name = setName('s', identity);
  if (!b.sets.has(name)) {
    const addresses = b.index.peerAddresses(
      { selector, ...(ns === undefined ? {} : { namespaceSelector: ns }) },
      owner,
    );
    addSet(b, { name, type: 'hash:net', members: netMembers(intervalsToCidrs(addresses)) });
  }
  return { k: 'set', not, name, flags: dir };
}

function constrains(side: EntityMatch): boolean {
  return (
    present(side.nets) ||
    present(side.notNets) ||
    side.selector !== undefined ||
    side.notSelector !== undefined ||
    side.namespaceSelector !== undefined
  );
}

/** The local endpoints whose address, labels and namespace satisfy a rule's local side. */
function localSetMatch(b: Builder, side: EntityMatch, dir: 'src' | 'dst'): Match {
  const identity = JSON.stringify([
    side.nets ?? null,
    side.notNets ?? null,
    side.selector ?? null,
    side.notSelector ?? null,
    side.namespaceSelector ?? null,
  ]);
  const name = setName('l', identity);
  if (!b.sets.has(name)) {
    const members = b.locals
      .filter((l) => b.index.localSideMatches(side, l.endpoint))
      .map((l) => l.endpoint.ip)
      .sort();
    addSet(b, { name, type: 'hash:net', members });
  }
  return { k: 'set', not: false, name, flags: dir };
}

function splitPorts(list: readonly NonNullable<EntityMatch['ports']>[number][]): {
  numeric: [number, number][];
  names: string[];
} {
  const ranges: [number, number][] = [];
  const names: string[] = [];
  for (const p of list) {
    if (p.kind === 'range') ranges.push([p.from, p.to]);
    else if (!names.includes(p.name)) names.push(p.name);
  }
  return { numeric: normalize(ranges).map(([lo, hi]) => [lo, hi]), names: names.sort() };
}

/** Port ranges in chunks multiport accepts: 15 ports, a range counting as two. */
export function multiportChunks(
  ranges: readonly (readonly [number, number])[],
): (readonly [number, number])[][] {
  const chunks: (readonly [number, number])[][] = [];
  let chunk: (readonly [number, number])[] = [];
  let used = 0;
  for (const r of ranges) {
    const cost = r[0] === r[1] ? 1 : 2;
    if (used + cost > MULTIPORT_MAX) {
      chunks.push(chunk);
      chunk = [];
      used = 0;
    }
    chunk.push(r);
    used += cost;
  }
  if (chunk.length > 0) chunks.push(chunk);
  return chunks;
}

/**
 * Named ports as a hash:ip,port set of (address, protocol:port) for every endpoint (the
 * first at each address, as the compiler's WorldIndex) holding one of `names`; matched
 * on (daddr, protocol:dport) for destination ports, so it names the destination
 * endpoint's ports, and on (saddr, protocol:sport) for source ports.
 */
function namedPortMatch(
  b: Builder,
  names: readonly string[],
  not: boolean,
  dir: 'src' | 'dst' = 'dst',
): Match {
  const name = setName('p', JSON.stringify(names));
  if (!b.sets.has(name)) {
    const members = new Set<string>();
    for (const holder of b.index.portHolders(names)) {
      for (const np of holder.ports) {
        if (!names.includes(np.name) || !PORT_PROTOCOLS.has(np.protocol)) continue;
        members.add(`${formatAddress(holder.ip)},${protoName(np.protocol)}:${np.port}`);
      }
    }
    addSet(b, { name, type: 'hash:ip,port', members: [...members].sort() });
  }
  return { k: 'set', not, name, flags: dir === 'src' ? 'src,src' : 'dst,dst' };
}

/** Dotted IPv4 addresses in numeric order (as `ipset save` lists a set's members). */
function compareAddresses(a: string, b: string): number {
  const n = (t: string) => t.split('.').reduce((v, o) => v * 256 + Number(o), 0);
  return n(a) - n(b);
}
