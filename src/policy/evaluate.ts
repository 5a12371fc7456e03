/**
 * The reference evaluator: docs/policy-semantics.md in the most obvious code.
 *
 * No indexing and no precomputation beyond memoised selector and CIDR parsing: every
 * call walks the world as the document describes it. The compiler is held to this by
 * differential tests, so the matching below is deliberately private to this module
 * (and ./evaluate-net.ts, which only it uses) — do not import it from the compiler.
 */
import {
  DEFAULT_TIER,
  DEFAULT_TIER_ORDER,
  NAMESPACE_LABEL,
  PORT_PROTOCOLS,
  policyKey,
  type Direction,
  type Endpoint,
  type EntityMatch,
  type IcmpMatch,
  type Labels,
  type NetworkSet,
  type Packet,
  type Policy,
  type PortMatch,
  type Rule,
  type Tier,
  type Verdict,
  type World,
} from './model.js';
import { parseSelector } from './selector.js';
import { addressInNet } from './evaluate-net.js';

/** Whose rules are being walked: decides which endpoints and sets rule selectors see. */
type RuleOwner =
  { readonly kind: 'namespaced-policy'; readonly namespace: string } | { readonly kind: 'global' }; // global policies and profiles

/** An endpoint or network set as a peer: its labels as selectors see them. */
interface PeerEntity {
  readonly kind: 'endpoint' | 'network-set';
  readonly namespace: string | undefined;
  readonly labels: Labels;
}

/**
 * What a program judges: a pod (an Endpoint) or a host endpoint (./evaluate-host.ts).
 * The local side of a rule tests its labels, its namespace's labels and its address.
 */
export interface Subject {
  /** Labels as selectors see them (a pod's include its namespace label). */
  readonly labels: Labels;
  /** undefined for a host endpoint: no namespaced policy or namespace selector matches it. */
  readonly namespace: string | undefined;
  /** The address the local side's nets/notNets test. */
  readonly address: string;
  readonly ports: Endpoint['ports'];
  readonly profiles: readonly string[];
}

/** Everything one evaluation needs to hand to the rule matcher. */
interface Context {
  readonly world: World;
  readonly subject: Subject;
  readonly direction: Direction;
  readonly packet: Packet;
  readonly peerAddress: string;
  /** Endpoints and network sets that contain the peer address. */
  readonly peerEntities: readonly PeerEntity[];
}

/** The verdict for `packet` at `endpoint` in `direction` (egress: E sends; ingress: E receives). */
export function evaluate(
  world: World,
  endpoint: Endpoint,
  direction: Direction,
  packet: Packet,
): Verdict {
  const subject: Subject = {
    labels: endpointSelectorLabels(endpoint),
    namespace: endpoint.namespace,
    address: endpoint.ip,
    ports: endpoint.ports,
    profiles: endpoint.profiles,
  };
  return walkPolicies(world, subject, direction, packet, world.policies, 'profiles') as Verdict;
}

/**
 * How a walk ends when no rule decided:
 *  - 'profiles': tier defaults, then the subject's profiles, then deny (pods, and host
 *    endpoints for the host's own traffic);
 *  - 'tiers': tier defaults; after the last tier, deny by `profiles/default/<d>` without
 *    looking at profiles (host endpoints' forwarded traffic);
 *  - 'fall-through': no tier default and no profiles; undefined when nothing matched
 *    (doNotTrack and preDNAT policies: an unmatched packet goes on to the next stage).
 */
export type WalkEnd = 'profiles' | 'tiers' | 'fall-through';

/**
 * The walk of docs/policy-semantics.md over `policies` (those that apply to the subject
 * in `direction` are chosen here). Exported for ./evaluate-host.ts only.
 */
export function walkPolicies(
  world: World,
  subject: Subject,
  direction: Direction,
  packet: Packet,
  policies: readonly Policy[],
  end: WalkEnd,
): Verdict | undefined {
  const peerAddress = direction === 'ingress' ? packet.saddr : packet.daddr;
  const ctx: Context = {
    world,
    subject,
    direction,
    packet,
    peerAddress,
    peerEntities: entitiesContaining(world, peerAddress),
  };
  let logged = false;

  // 1. Tiers, by order; in each, its applicable policies by order; their rules in order.
  const applicable = policies.filter((p) => policyApplies(world, p, subject, direction));
  const tierNames = [...new Set(applicable.map((p) => p.tier))];
  const tiers = tierNames.map((name) => findTier(world.tiers, name)).sort(compareTiers);

  tiers: for (const tier of tiers) {
    const policies = applicable.filter((p) => p.tier === tier.name).sort(comparePolicies);
    for (const policy of policies) {
      const owner: RuleOwner =
        policy.namespace === undefined
          ? { kind: 'global' }
          : { kind: 'namespaced-policy', namespace: policy.namespace };
      const rules = direction === 'ingress' ? policy.ingress : policy.egress;
      for (const [index, rule] of rules.entries()) {
        if (!ruleMatches(rule, owner, ctx)) continue;
        const ref = `policy/${tier.name}/${policyKey(policy)}/${direction}/${index}`;
        switch (rule.action) {
          case 'Allow':
            return { action: 'allow', rule: ref, logged };
          case 'Deny':
            return { action: 'deny', rule: ref, logged };
          case 'Pass':
            continue tiers;
          case 'Log':
            logged = true;
            continue;
        }
      }
    }
    if (tier.defaultAction === 'Deny' && end !== 'fall-through') {
      return { action: 'deny', rule: `tier/${tier.name}/default/${direction}`, logged };
    }
  }
  if (end === 'fall-through') return undefined;

  // 2. Profiles, in the endpoint's order. Pass ends profile evaluation (deny by default).
  const profilesDefault: Verdict = {
    action: 'deny',
    rule: `profiles/default/${direction}`,
    logged,
  };
  if (end === 'tiers') return profilesDefault;
  for (const name of subject.profiles) {
    const profile = world.profiles.find((p) => p.name === name);
    if (profile === undefined) continue; // an unknown profile has no rules
    const rules = direction === 'ingress' ? profile.ingress : profile.egress;
    for (const [index, rule] of rules.entries()) {
      if (!ruleMatches(rule, { kind: 'global' }, ctx)) continue;
      const ref = `profile/${name}/${direction}/${index}`;
      switch (rule.action) {
        case 'Allow':
          return { action: 'allow', rule: ref, logged };
        case 'Deny':
          return { action: 'deny', rule: ref, logged };
        case 'Pass':
          return { ...profilesDefault, logged };
        case 'Log':
          logged = true;
          continue;
      }
    }
  }
  return { ...profilesDefault, logged };
}

/**
 * Felix's defaultEndpointToHostAction: what a pod's new flow to its own node gets once
 * the pod's egress policy allowed it. Drop is Calico's default; Return hands it to the
 * host's own rules (host endpoints), which tortie does not have yet: it allows, as Accept.
 */
export type EndpointToHostAction = 'Drop' | 'Accept' | 'Return';

export interface PacketJudgement {
  /** True when every local judge allowed the packet (vacuously true with none). */
  readonly allowed: boolean;
  /** The sender's egress verdict, when the sender is a local endpoint. */
  readonly egress?: Verdict;
  /** The receiver's ingress verdict, when the receiver is a local endpoint. */
  readonly ingress?: Verdict;
  /** For a packet to the sender's own node: the action that followed an allowing egress. */
  readonly toHost?: EndpointToHostAction;
}

/**
 * A packet's fate: the egress policy of a local sender AND the ingress policy of a local
 * receiver. `toHost` says the destination is an address of the sender's own node (no
 * receiver then): after the sender's egress allowed it, that action decides — Drop
 * denies, Accept and Return allow. Egress still comes first, so a denied packet is the
 * policy's verdict (as Felix: the from-workload chain, then the action).
 */
export function judgePacket(
  world: World,
  packet: Packet,
  ends: {
    readonly sender?: Endpoint;
    readonly receiver?: Endpoint;
    readonly toHost?: EndpointToHostAction;
  },
): PacketJudgement {
  if (ends.toHost !== undefined && (ends.sender === undefined || ends.receiver !== undefined))
    throw new Error(
      'judgePacket: toHost needs a sender and no receiver (the node is the receiver)',
    );
  const egress =
    ends.sender === undefined ? undefined : evaluate(world, ends.sender, 'egress', packet);
  const ingress =
    ends.receiver === undefined ? undefined : evaluate(world, ends.receiver, 'ingress', packet);
  const allowed =
    egress?.action !== 'deny' &&
    ingress?.action !== 'deny' &&
    (ends.toHost === undefined || ends.toHost !== 'Drop');
  return {
    allowed,
    ...(egress === undefined ? {} : { egress }),
    ...(ingress === undefined ? {} : { ingress }),
    ...(ends.toHost === undefined || egress?.action === 'deny' ? {} : { toHost: ends.toHost }),
  };
}

// --- which policies and tiers ---------------------------------------------------------

/** Whether `policy` applies to the subject in `direction` (exported for ./evaluate-host.ts). */
export function policyApplies(
  world: World,
  policy: Policy,
  subject: Subject,
  direction: Direction,
): boolean {
  if (!policy.types.includes(direction === 'ingress' ? 'Ingress' : 'Egress')) return false;
  if (policy.namespace !== undefined) {
    return (
      policy.namespace === subject.namespace &&
      parseSelector(policy.selector).matches(subject.labels)
    );
  }
  if (!parseSelector(policy.selector).matches(subject.labels)) return false;
  if (policy.namespaceSelector === undefined) return true;
  return (
    subject.namespace !== undefined &&
    parseSelector(policy.namespaceSelector).matches(namespaceLabels(world, subject.namespace))
  );
}

/** The tier object for a name; `default` exists implicitly; an unknown tier has no order and denies. */
export function findTier(tiers: readonly Tier[], name: string): Tier {
  const tier = tiers.find((t) => t.name === name);
  if (tier !== undefined) return tier;
  if (name === DEFAULT_TIER) return { name, order: DEFAULT_TIER_ORDER, defaultAction: 'Deny' };
  return { name, defaultAction: 'Deny' };
}

/** Lower order first; an absent order after every present one; then by name. */
function compareOrders(a: number | undefined, b: number | undefined): number {
  if (a === b) return 0;
  if (a === undefined) return 1;
  if (b === undefined) return -1;
  return a < b ? -1 : 1;
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Evaluation order of tiers (also the XDP deny list's walk, ./xdp.ts). */
export function compareTiers(a: Tier, b: Tier): number {
  return compareOrders(a.order, b.order) || compareStrings(a.name, b.name);
}

/** Evaluation order of the policies of one tier. */
export function comparePolicies(a: Policy, b: Policy): number {
  return (
    compareOrders(a.order, b.order) ||
    compareStrings(a.name, b.name) ||
    compareStrings(policyKey(a), policyKey(b))
  );
}

// --- labels ---------------------------------------------------------------------------

function endpointSelectorLabels(endpoint: Endpoint): Labels {
  return { ...endpoint.labels, [NAMESPACE_LABEL]: endpoint.namespace };
}

function networkSetSelectorLabels(set: NetworkSet): Labels {
  return set.namespace === undefined
    ? set.labels
    : { ...set.labels, [NAMESPACE_LABEL]: set.namespace };
}

/** A namespace that is not in the world has no labels. */
function namespaceLabels(world: World, namespace: string): Labels {
  return world.namespaces.find((n) => n.name === namespace)?.labels ?? {};
}

/** The endpoints (by their /32) and network sets (by their nets) an address belongs to. */
function entitiesContaining(world: World, address: string): PeerEntity[] {
  const found: PeerEntity[] = [];
  for (const e of world.endpoints) {
    if (e.ip === address)
      found.push({ kind: 'endpoint', namespace: e.namespace, labels: endpointSelectorLabels(e) });
  }
  for (const s of world.networkSets) {
    if (s.nets.some((net) => addressInNet(address, net))) {
      found.push({
        kind: 'network-set',
        namespace: s.namespace,
        labels: networkSetSelectorLabels(s),
      });
    }
  }
  return found;
}

// --- rules ----------------------------------------------------------------------------

function ruleMatches(rule: Rule, owner: RuleOwner, ctx: Context): boolean {
  const { packet } = ctx;
  if (rule.protocol !== undefined && packet.protocol !== rule.protocol) return false;
  if (rule.notProtocol !== undefined && packet.protocol === rule.notProtocol) return false;
  if (rule.icmp !== undefined && !icmpMatches(rule.icmp, packet)) return false;
  if (rule.notICMP !== undefined && icmpMatches(rule.notICMP, packet)) return false;
  if (!portsMatch(rule.destination, 'destination', ctx)) return false;
  if (!portsMatch(rule.source, 'source', ctx)) return false;
  const [peerSide, localSide] =
    ctx.direction === 'ingress' ? [rule.source, rule.destination] : [rule.destination, rule.source];
  return peerSideMatches(peerSide, owner, ctx) && localSideMatches(localSide, ctx);
}

/** An empty list constrains nothing, exactly like an absent one. */
function present<T>(list: readonly T[] | undefined): list is readonly T[] {
  return list !== undefined && list.length > 0;
}

function icmpMatches(match: IcmpMatch, packet: Packet): boolean {
  return (
    packet.protocol === 1 &&
    packet.icmpType === match.type &&
    (match.code === undefined || packet.icmpCode === match.code)
  );
}

/** A side's ports / notPorts against the packet's port on that side. */
function portsMatch(side: EntityMatch, which: 'source' | 'destination', ctx: Context): boolean {
  if (present(side.ports) && !side.ports.some((p) => portMatches(p, which, ctx))) return false;
  if (present(side.notPorts) && side.notPorts.some((p) => portMatches(p, which, ctx))) return false;
  return true;
}

function portMatches(port: PortMatch, which: 'source' | 'destination', ctx: Context): boolean {
  const { packet } = ctx;
  // Policy sees port 0 for a protocol that carries none.
  const carries = PORT_PROTOCOLS.has(packet.protocol);
  const value = which === 'destination' ? packet.dport : carries ? packet.sport : 0;
  if (port.kind === 'range') return port.from <= value && value <= port.to;
  // A named port names a port of the endpoint on that side: E itself when that side is
  // local (destination of ingress, source of egress), else the endpoint at the peer
  // address (Calico: an ip,port set of the endpoints holding the name).
  const local = (which === 'destination') === (ctx.direction === 'ingress');
  const address = which === 'destination' ? packet.daddr : packet.saddr;
  const holder = local ? ctx.subject : ctx.world.endpoints.find((e) => e.ip === address);
  return (
    holder?.ports.some(
      (np) => np.name === port.name && np.protocol === packet.protocol && np.port === value,
    ) ?? false
  );
}

function peerSideMatches(side: EntityMatch, owner: RuleOwner, ctx: Context): boolean {
  const address = ctx.peerAddress;
  if (present(side.nets) && !side.nets.some((net) => addressInNet(address, net))) return false;
  if (present(side.notNets) && side.notNets.some((net) => addressInNet(address, net))) return false;

  const selector = side.selector ?? (side.namespaceSelector !== undefined ? 'all()' : undefined);
  const inScope = ctx.peerEntities.filter((entity) =>
    entityInScope(entity, owner, side.namespaceSelector, ctx.world),
  );
  if (selector !== undefined) {
    const s = parseSelector(selector);
    if (!inScope.some((entity) => s.matches(entity.labels))) return false;
  }
  if (side.notSelector !== undefined) {
    const s = parseSelector(side.notSelector);
    if (inScope.some((entity) => s.matches(entity.labels))) return false;
  }
  return true;
}

/**
 * Which endpoints and sets a rule's selectors see: a namespaced policy's rule sees its own
 * namespace; a global policy's or profile's rule sees every endpoint and global set; a
 * namespaceSelector replaces either with the endpoints and namespaced sets of the
 * namespaces it matches.
 */
function entityInScope(
  entity: PeerEntity,
  owner: RuleOwner,
  namespaceSelector: string | undefined,
  world: World,
): boolean {
  if (namespaceSelector !== undefined) {
    return (
      entity.namespace !== undefined &&
      parseSelector(namespaceSelector).matches(namespaceLabels(world, entity.namespace))
    );
  }
  if (owner.kind === 'namespaced-policy') return entity.namespace === owner.namespace;
  return entity.kind === 'endpoint' || entity.namespace === undefined;
}

function localSideMatches(side: EntityMatch, ctx: Context): boolean {
  const { subject } = ctx;
  const address = subject.address;
  if (present(side.nets) && !side.nets.some((net) => addressInNet(address, net))) return false;
  if (present(side.notNets) && side.notNets.some((net) => addressInNet(address, net))) return false;
  if (side.selector !== undefined && !parseSelector(side.selector).matches(subject.labels))
    return false;
  if (side.notSelector !== undefined && parseSelector(side.notSelector).matches(subject.labels))
    return false;
  if (
    side.namespaceSelector !== undefined &&
    (subject.namespace === undefined ||
      !parseSelector(side.namespaceSelector).matches(namespaceLabels(ctx.world, subject.namespace)))
  ) {
    return false;
  }
  return true;
}
