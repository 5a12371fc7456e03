/**
 * The policy domain, as the evaluator and the compiler see it: validated, normalised
 * objects (resource schemas in src/policy/resources.ts turn user YAML into these).
 * Semantics: docs/policy-semantics.md.
 */

export type Labels = Readonly<Record<string, string>>;

export type Direction = 'ingress' | 'egress';

/** IANA protocol numbers tortie knows by name. */
export const PROTOCOLS = { ICMP: 1, TCP: 6, UDP: 17, SCTP: 132, UDPLite: 136 } as const;
export type ProtocolName = keyof typeof PROTOCOLS;
/** Protocols whose packets carry ports that policy can match. */
export const PORT_PROTOCOLS: ReadonlySet<number> = new Set([6, 17, 132, 136]);

/** The implicit label every endpoint carries (Calico's name, so Calico selectors work). */
export const NAMESPACE_LABEL = 'projectcalico.org/namespace';

export interface NamedPort {
  readonly name: string;
  readonly protocol: number; // 6, 17, 132, 136
  readonly port: number;
}

export interface Endpoint {
  /** `<namespace>/<name>`; unique in the world. */
  readonly key: string;
  readonly namespace: string;
  readonly name: string;
  /** Dotted quad. */
  readonly ip: string;
  /**
   * The labels selectors see: its own, the service-account label, and what its profiles'
   * labelsToApply give it (endpointLabels in ./service-accounts.ts builds them).
   */
  readonly labels: Labels;
  /** Profile names, in evaluation order. */
  readonly profiles: readonly string[];
  readonly ports: readonly NamedPort[];
  /**
   * 'host': a host endpoint as the compiler sees it (its labels carry no namespace
   * label; namespaced policies and namespace selectors never match it; `ip` is the
   * address of its interface). Absent for pods.
   */
  readonly kind?: 'host';
}

export interface Namespace {
  readonly name: string;
  readonly labels: Labels;
}

export interface NetworkSet {
  readonly name: string;
  /** undefined for a GlobalNetworkSet. */
  readonly namespace?: string;
  readonly labels: Labels;
  /** CIDRs, e.g. "10.0.0.0/8" (a bare address means /32). */
  readonly nets: readonly string[];
}

/** A port match: a single port, an inclusive range, or a named port. */
export type PortMatch =
  | { readonly kind: 'range'; readonly from: number; readonly to: number }
  | { readonly kind: 'named'; readonly name: string };

export interface EntityMatch {
  readonly nets?: readonly string[];
  readonly notNets?: readonly string[];
  /** Selector source text (src/policy/selector.ts parses it). */
  readonly selector?: string;
  readonly notSelector?: string;
  readonly namespaceSelector?: string;
  /**
   * Destination side: the destination port. Source side: the source port (a named port
   * there names a port of the source endpoint, as Calico resolves it).
   */
  readonly ports?: readonly PortMatch[];
  readonly notPorts?: readonly PortMatch[];
}

export type Action = 'Allow' | 'Deny' | 'Pass' | 'Log';

export interface IcmpMatch {
  readonly type: number;
  readonly code?: number;
}

export interface Rule {
  readonly action: Action;
  readonly protocol?: number;
  readonly notProtocol?: number;
  readonly icmp?: IcmpMatch;
  readonly notICMP?: IcmpMatch;
  readonly source: EntityMatch;
  readonly destination: EntityMatch;
}

export interface Tier {
  readonly name: string;
  readonly order?: number;
  readonly defaultAction: 'Deny' | 'Pass';
}

export const DEFAULT_TIER = 'default';
export const DEFAULT_TIER_ORDER = 1_000_000;

export interface Policy {
  readonly name: string;
  /** undefined for a GlobalNetworkPolicy. */
  readonly namespace?: string;
  readonly tier: string;
  readonly order?: number;
  readonly selector: string;
  /** GlobalNetworkPolicy only. */
  readonly namespaceSelector?: string;
  readonly types: readonly ('Ingress' | 'Egress')[];
  readonly ingress: readonly Rule[];
  readonly egress: readonly Rule[];
  /**
   * GlobalNetworkPolicy only: host endpoint policy also judges traffic forwarded through
   * the host endpoint (docs/host-endpoints.md). No meaning for pods.
   */
  readonly applyOnForward?: true;
  /**
   * GlobalNetworkPolicy only: a host endpoint policy judged before conntrack
   * (doNotTrack) or before DNAT (preDNAT). Such policies live in `World.hostPolicies`,
   * never in `World.policies`: they never judge pods.
   */
  readonly stage?: 'doNotTrack' | 'preDNAT';
}

export interface Profile {
  readonly name: string;
  readonly ingress: readonly Rule[];
  readonly egress: readonly Rule[];
  /** Labels the profile gives the endpoints that list it (their own labels win). */
  readonly labelsToApply?: Labels;
}

/** Everything a verdict can depend on. */
export interface World {
  readonly endpoints: readonly Endpoint[];
  readonly namespaces: readonly Namespace[];
  readonly networkSets: readonly NetworkSet[];
  readonly tiers: readonly Tier[];
  readonly policies: readonly Policy[];
  readonly profiles: readonly Profile[];
  /** doNotTrack and preDNAT policies (host endpoints only; absent = none). */
  readonly hostPolicies?: readonly Policy[];
}

/**
 * A HostEndpoint (Calico's kind): one interface of a node (`interfaceName`), every
 * non-workload interface of it (`*`), or the interface holding one of `expectedIPs`.
 * Policy selects it by its labels (no namespace: namespaced policies and namespace
 * selectors never match it).
 */
export interface HostEndpoint {
  readonly name: string;
  readonly node: string;
  /** An interface name, `*` (all of the node's non-workload interfaces), or undefined. */
  readonly interfaceName?: string;
  readonly expectedIPs: readonly string[];
  readonly labels: Labels;
  readonly profiles: readonly string[];
  readonly ports: readonly NamedPort[];
}

/** A failsafe port (FelixConfiguration failsafeInboundHostPorts / failsafeOutboundHostPorts). */
export interface FailsafePort {
  readonly protocol: 6 | 17;
  readonly port: number;
  /** The peer must be in this CIDR (inbound: the source; outbound: the destination). */
  readonly net?: string;
}

export interface Failsafe {
  readonly inbound: readonly FailsafePort[];
  readonly outbound: readonly FailsafePort[];
}

/** A packet as policy sees it (well-formed; malformed packets never reach policy). */
export interface Packet {
  readonly saddr: string;
  readonly daddr: string;
  readonly protocol: number;
  /** TCP/UDP/UDPLite/SCTP destination port; 0 otherwise. */
  readonly dport: number;
  /** TCP/UDP/UDPLite/SCTP source port (matched by source.ports); policy sees 0 for others. */
  readonly sport: number;
  /** ICMP only. */
  readonly icmpType?: number;
  readonly icmpCode?: number;
}

/**
 * A deciding rule, as a stable string (docs/policy-semantics.md, "Rule refs"):
 * `policy/<tier>/<policy-key>/<d>/<index>`, `profile/<name>/<d>/<index>`,
 * `tier/<tier>/default/<d>`, `profiles/default/<d>`.
 */
export type RuleRef = string;

export interface Verdict {
  readonly action: 'allow' | 'deny';
  readonly rule: RuleRef;
  /** A Log rule matched before the deciding rule. */
  readonly logged: boolean;
}

export function policyKey(p: Pick<Policy, 'name' | 'namespace'>): string {
  return p.namespace === undefined ? p.name : `${p.namespace}/${p.name}`;
}
