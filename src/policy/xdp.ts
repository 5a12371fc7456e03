/**
 * The uplink's XDP deny list, from Calico's untracked (doNotTrack) policy: which source
 * prefixes the node can drop in XDP, before an skb exists, without changing any verdict.
 * Pure: the agent's xdp manager writes the result into tortie_xdp_deny.
 *
 * What Felix accelerates (felix/dataplane/linux/xdp_state.go): only untracked policies
 * of the interface's host endpoint, ingress only, and of those only an inbound rule
 * that is a plain Deny on the source address: no protocol, no ports, no ICMP, no
 * destination, no negations, nothing but "these sources". Felix takes the first
 * policy of each untracked tier and its first rule alone; a rule it cannot accelerate
 * stays in the iptables raw table, so everything is still enforced, only slower.
 *
 * tortie takes the same rules but more of them, and keeps the verdicts exact: the
 * untracked policies that apply to the uplink's host endpoint are walked in evaluation
 * order (tiers, then policies, then rules), and every rule up to the first one that is
 * not such a Deny is accelerated. Stopping there is what keeps XDP from dropping what
 * the full evaluation would allow: a later Deny could be preceded, for some of its
 * sources, by an Allow, a Pass or a match XDP does not see. A leading Deny, whatever
 * comes after, decides for its sources before anything else can. Everything from the
 * stopping rule on is left to the host endpoint's normal enforcement (tc on the uplink),
 * and said in `stoppedAt`.
 *
 * A rule's sources are its source.nets, or the addresses its source.selector selects
 * (the nets of the network sets, the /32s of the endpoints, the expected IPs of the host
 * endpoints, as Felix's IP set for the selector holds), or, with both, the prefixes in
 * both. IPv4 only (tortie is IPv4 only). A prefix named by several rules belongs to the
 * first: that rule decides for it.
 */
import { parseCidr, type Cidr } from './cidr.js';
import { comparePolicies, compareTiers, findTier } from './evaluate.js';
import {
  NAMESPACE_LABEL,
  policyKey,
  type Endpoint,
  type Labels,
  type NetworkSet,
  type Policy,
  type Rule,
  type RuleRef,
  type Tier,
} from './model.js';
import { parseSelector, type Selector } from './selector.js';

/** A host endpoint as the deny list needs it (HostEndpoint resources). */
export interface XdpHostEndpoint {
  readonly name: string;
  readonly node: string;
  /** An interface name, `*` (every interface of the node), or absent (by expectedIPs). */
  readonly interfaceName?: string;
  readonly expectedIPs: readonly string[];
  /** The labels its policies' selectors see. */
  readonly labels: Labels;
}

export interface XdpInputs {
  readonly node: string;
  /** The uplink: its name and its IPv4 address (host endpoints by expectedIPs). */
  readonly uplink: { readonly name: string; readonly ip?: string };
  readonly hostEndpoints: readonly XdpHostEndpoint[];
  /** The doNotTrack GlobalNetworkPolicies (others are not looked at). */
  readonly untracked: readonly Policy[];
  readonly tiers: readonly Tier[];
  /** What a source selector can select: network sets (global and namespaced), endpoints. */
  readonly networkSets: readonly NetworkSet[];
  readonly endpoints: readonly Endpoint[];
}

/** A rule the walk stopped at, and why it cannot be decided in XDP. */
export interface XdpStop {
  readonly rule: RuleRef;
  readonly reason: string;
}

export interface XdpDenyList {
  /** The host endpoint of the uplink (undefined: none, so the list is empty). */
  readonly hostEndpoint: string | undefined;
  /** The accelerated rules, in evaluation order; rule i has id XDP_RULE_ID_BASE + i. */
  readonly rules: readonly RuleRef[];
  /** Source prefix ("a.b.c.d/n", host bits zero) → rule id. */
  readonly entries: ReadonlyMap<string, number>;
  /** Where the walk stopped (undefined: every untracked ingress rule is accelerated). */
  readonly stoppedAt: XdpStop | undefined;
}

/**
 * XDP rule ids live apart from the policy compiler's (which count up from 1), so an
 * event's rule id names one rule whichever program reported it.
 */
export const XDP_RULE_ID_BASE = 0x4000_0000;

export function xdpRuleId(index: number): number {
  return XDP_RULE_ID_BASE + index;
}

/**
 * The host endpoint that covers the uplink, as Felix chooses: one named for the
 * interface, else one without a name whose expected IPs hold the uplink's address,
 * else a wildcard (`*`). Ties go to the first name.
 */
export function uplinkHostEndpoint(inputs: XdpInputs): XdpHostEndpoint | undefined {
  const mine = inputs.hostEndpoints
    .filter((h) => h.node === inputs.node)
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const ip = inputs.uplink.ip;
  return (
    mine.find((h) => h.interfaceName === inputs.uplink.name) ??
    mine.find(
      (h) => h.interfaceName === undefined && ip !== undefined && h.expectedIPs.includes(ip),
    ) ??
    mine.find((h) => h.interfaceName === '*')
  );
}

export function compileXdpDenyList(inputs: XdpInputs): XdpDenyList {
  const hep = uplinkHostEndpoint(inputs);
  if (hep === undefined)
    return { hostEndpoint: undefined, rules: [], entries: new Map(), stoppedAt: undefined };

  const rules: RuleRef[] = [];
  const entries = new Map<string, number>();
  const selectors = new SelectorCache();
  const applicable = inputs.untracked.filter(
    (p) =>
      p.namespace === undefined &&
      p.namespaceSelector === undefined &&
      p.types.includes('Ingress') &&
      selectors.get(p.selector).matches(hep.labels),
  );
  const tiers = [...new Set(applicable.map((p) => p.tier))]
    .map((name) => findTier(inputs.tiers, name))
    .sort(compareTiers);

  for (const tier of tiers) {
    const policies = applicable.filter((p) => p.tier === tier.name).sort(comparePolicies);
    for (const policy of policies) {
      for (const [index, rule] of policy.ingress.entries()) {
        const ref = `policy/${tier.name}/${policyKey(policy)}/ingress/${index}`;
        const reason = notAcceleratedBecause(rule);
        if (reason !== undefined) return done(hep, rules, entries, { rule: ref, reason });
        const id = xdpRuleId(rules.length);
        rules.push(ref);
        for (const cidr of ruleSources(rule, inputs, selectors)) {
          if (!entries.has(cidr)) entries.set(cidr, id);
        }
      }
    }
  }
  return done(hep, rules, entries, undefined);
}

function done(
  hep: XdpHostEndpoint,
  rules: RuleRef[],
  entries: Map<string, number>,
  stoppedAt: XdpStop | undefined,
): XdpDenyList {
  return { hostEndpoint: hep.name, rules, entries, stoppedAt };
}

/** Why a rule cannot be decided in XDP; undefined when it can. */
export function notAcceleratedBecause(rule: Rule): string | undefined {
  if (rule.action !== 'Deny') return `action ${rule.action}: only Deny rules are dropped in XDP`;
  const problems: string[] = [];
  if (rule.protocol !== undefined || rule.notProtocol !== undefined) problems.push('a protocol');
  if (rule.icmp !== undefined || rule.notICMP !== undefined) problems.push('an ICMP match');
  const s = rule.source;
  if (present(s.ports) || present(s.notPorts)) problems.push('source ports');
  if (present(s.notNets)) problems.push('source notNets');
  if (s.notSelector !== undefined) problems.push('a source notSelector');
  if (s.namespaceSelector !== undefined) problems.push('a source namespaceSelector');
  const d = rule.destination;
  if (
    present(d.nets) ||
    present(d.notNets) ||
    d.selector !== undefined ||
    d.notSelector !== undefined ||
    d.namespaceSelector !== undefined ||
    present(d.ports) ||
    present(d.notPorts)
  )
    problems.push('a destination match');
  if (problems.length > 0) return `matches on ${problems.join(', ')}, not the source alone`;
  if (!present(s.nets) && s.selector === undefined)
    return 'matches every source (no source nets or selector): left to the host endpoint policy';
  return undefined;
}

/** The source prefixes a rule that notAcceleratedBecause accepted matches. */
function ruleSources(rule: Rule, inputs: XdpInputs, selectors: SelectorCache): string[] {
  const nets = present(rule.source.nets) ? cidrs(rule.source.nets) : undefined;
  const selected =
    rule.source.selector === undefined
      ? undefined
      : selectedPrefixes(selectors.get(rule.source.selector), inputs);
  if (nets === undefined) return texts(selected ?? []);
  if (selected === undefined) return texts(nets);
  return texts(intersect(nets, selected));
}

/** What a source selector selects, as prefixes (Felix's IP set for it). */
function selectedPrefixes(sel: Selector, inputs: XdpInputs): Cidr[] {
  const out: Cidr[] = [];
  for (const s of inputs.networkSets) {
    const labels =
      s.namespace === undefined ? s.labels : { ...s.labels, [NAMESPACE_LABEL]: s.namespace };
    if (sel.matches(labels)) out.push(...cidrs(s.nets));
  }
  for (const e of inputs.endpoints) {
    if (sel.matches({ ...e.labels, [NAMESPACE_LABEL]: e.namespace })) out.push(...cidrs([e.ip]));
  }
  for (const h of inputs.hostEndpoints) {
    if (sel.matches(h.labels)) out.push(...cidrs(h.expectedIPs));
  }
  return out;
}

/** Prefixes in both lists: of two nested prefixes, the inner one. */
function intersect(a: readonly Cidr[], b: readonly Cidr[]): Cidr[] {
  const out: Cidr[] = [];
  for (const x of a) {
    for (const y of b) {
      if (within(x, y)) out.push(x);
      else if (within(y, x)) out.push(y);
    }
  }
  return out;
}

function within(inner: Cidr, outer: Cidr): boolean {
  if (inner.prefixLength < outer.prefixLength) return false;
  const mask = outer.prefixLength === 0 ? 0 : (~0 << (32 - outer.prefixLength)) >>> 0;
  return (inner.network & mask) >>> 0 === outer.network;
}

/** Valid IPv4 prefixes only (the schemas validated them; IPv6 cannot reach XDP's IPv4 list). */
function cidrs(list: readonly string[]): Cidr[] {
  const out: Cidr[] = [];
  for (const text of list) {
    const r = parseCidr(text);
    if (r.ok) out.push(r.cidr);
  }
  return out;
}

function texts(list: readonly Cidr[]): string[] {
  return list.map((c) => c.text);
}

function present<T>(list: readonly T[] | undefined): list is readonly T[] {
  return list !== undefined && list.length > 0;
}

class SelectorCache {
  private readonly cache = new Map<string, Selector>();
  get(text: string): Selector {
    let s = this.cache.get(text);
    if (s === undefined) {
      s = parseSelector(text);
      this.cache.set(text, s);
    }
    return s;
  }
}
