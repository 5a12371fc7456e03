/**
 * The enums of bpf/tortie_maps.h as TypeScript consts, same names (without the
 * TORTIE_ prefix) and numbers. test/unit/maps-enums.test.ts reads the header and fails
 * when the two disagree.
 */

type ValueOf<T> = T[keyof T];

/** enum tortie_reason: why a packet passed (< 64) or was dropped (≥ 64). */
export const Reason = {
  NONE: 0,
  PASS_POLICY: 1,
  PASS_CT_ESTABLISHED: 2,
  PASS_CT_REPLY: 3,
  PASS_CT_RELATED: 4,
  PASS_ARP: 5,
  PASS_FRAGMENT: 6,
  PASS_ENCAP: 7,
  PASS_HOST_ROUTE: 8,
  PASS_DECAP: 9,
  PASS_NOT_TUNNEL: 10,
  PASS_FIB: 11,
  PASS_UPLINK_TO_POD: 12,
  DROP_POLICY: 64,
  DROP_SPOOF: 65,
  DROP_MALFORMED: 66,
  DROP_FRAG_NO_FIRST: 67,
  DROP_IPV6: 68,
  DROP_UNSUPPORTED_L3: 69,
  DROP_NO_ENDPOINT: 70,
  DROP_NO_POLICY: 71,
  DROP_POLICY_REVOKED: 72,
  DROP_NOT_FOR_ENDPOINT: 73,
  DROP_IPIP_UNKNOWN_SOURCE: 74,
  DROP_IPIP_FRAGMENT: 75,
  DROP_IPIP_NOT_LOCAL: 76,
  DROP_NO_UPLINK: 77,
  DROP_ENCAP_MTU: 78,
  DROP_ENCAP_FAILED: 79,
  DROP_DECAP_FAILED: 80,
  DROP_WORKLOAD_ENCAP: 81,
  DROP_IPIP_INNER_SPOOF: 82,
  DROP_TO_LOOPBACK: 83,
  DROP_ENDPOINT_TO_HOST: 84,
  DROP_CT_TCP_NOT_SYN: 85,
  DROP_CT_BUDGET: 86,
  DROP_FRAG_NEEDED: 87,
  DROP_XDP_DENY: 88,
} as const;
export type Reason = ValueOf<typeof Reason>;
export type ReasonName = keyof typeof Reason;

/** TORTIE_REASON_MAX: every reason is below it. */
export const REASON_MAX = 89;

/** What each reason means, for humans (CLI, monitor, docs). */
export const REASON_TEXT: Readonly<Record<ReasonName, string>> = {
  NONE: 'no reason',
  PASS_POLICY: 'new flow allowed by policy',
  PASS_CT_ESTABLISHED: 'packet of a tracked flow, original direction',
  PASS_CT_REPLY: 'packet of a tracked flow, reply direction',
  PASS_CT_RELATED: 'ICMP error about a tracked flow',
  PASS_ARP: 'ARP',
  PASS_FRAGMENT: 'non-first fragment of an allowed datagram',
  PASS_ENCAP: 'to a remote block: IPIP-encapsulated and sent to the uplink',
  PASS_HOST_ROUTE:
    'to a remote block without encapsulation, left to the host stack (TTL runs out here, no way out in the FIB, too big)',
  PASS_DECAP: 'IPIP from a known node, decapsulated',
  PASS_NOT_TUNNEL: 'on the uplink, no tunnel traffic for this node: passed untouched',
  PASS_FIB:
    'to a remote block without encapsulation: routed in BPF (kernel FIB), redirected to the uplink',
  PASS_UPLINK_TO_POD:
    'on the uplink, a plain packet for a local pod: judged and redirected into it',
  DROP_POLICY: 'a Deny rule or a default deny decided',
  DROP_SPOOF: 'pod sent from an address that is not its own',
  DROP_MALFORMED: 'truncated or inconsistent headers',
  DROP_FRAG_NO_FIRST: 'non-first fragment with no allowed first fragment',
  DROP_IPV6: 'IPv6 (not supported yet)',
  DROP_UNSUPPORTED_L3: 'neither IPv4 nor ARP (VLAN tags, MPLS, ...)',
  DROP_NO_ENDPOINT: 'interface has no endpoint',
  DROP_NO_POLICY: "endpoint's policy not programmed yet (fail closed)",
  DROP_POLICY_REVOKED: 'tracked flow denied after its policy changed',
  DROP_NOT_FOR_ENDPOINT: "packet to a pod veth whose destination is not the pod's address",
  DROP_IPIP_UNKNOWN_SOURCE: 'IPIP from an address that is not a known node',
  DROP_IPIP_FRAGMENT: 'fragmented IPIP (the outer packet must arrive whole)',
  DROP_IPIP_NOT_LOCAL: 'decapsulated packet for no pod or address of this node',
  DROP_NO_UPLINK: 'IPIP route, but no underlay address or uplink configured',
  DROP_ENCAP_MTU: 'packet plus the 20-byte IPIP header exceeds the uplink MTU',
  DROP_ENCAP_FAILED: 'the kernel refused to add the IPIP header',
  DROP_DECAP_FAILED: 'the kernel refused to remove the IPIP header',
  DROP_WORKLOAD_ENCAP:
    'pod sent IPIP or VXLAN itself (allowIPIPPacketsFromWorkloads / allowVXLANPacketsFromWorkloads off)',
  DROP_IPIP_INNER_SPOOF:
    'decapsulated packet whose source is neither the sending node nor in a block routed to it',
  DROP_TO_LOOPBACK: 'pod sent to 127.0.0.0/8 (never allowed, whatever route_localnet says)',
  DROP_ENDPOINT_TO_HOST:
    "pod's new flow to an address of the node (defaultEndpointToHostAction Drop)",
  DROP_CT_TCP_NOT_SYN:
    'TCP segment of no tracked flow that is not a bare SYN (only a SYN opens a flow)',
  DROP_CT_BUDGET: "the sending pod's new-flow budget is spent (ctNewFlowBudget; off by default)",
  DROP_FRAG_NEEDED:
    'packet with DF set too big for the tunnel: answered with ICMP fragmentation needed (the tunnel MTU)',
  DROP_XDP_DENY:
    'on the uplink, in XDP: source in the deny list (a doNotTrack Deny rule), dropped before an skb exists',
};

const REASON_BY_NUMBER: ReadonlyMap<number, ReasonName> = new Map(
  (Object.entries(Reason) as [ReasonName, number][]).map(([name, n]) => [n, name]),
);

/** 64 → 'DROP_POLICY'; an unknown number → 'REASON_<n>'. */
export function reasonName(reason: number): string {
  return REASON_BY_NUMBER.get(reason) ?? `REASON_${reason}`;
}

/** Reasons from 64 up are drops. */
export function isDrop(reason: number): boolean {
  return reason >= 64;
}

/** enum tortie_action */
export const Action = { NONE: 0, ALLOW: 1, DENY: 2, BY_SPORT: 3 } as const;
export type Action = ValueOf<typeof Action>;

/** enum tortie_verdict_flags */
export const VerdictFlags = { NONE: 0, LOG: 1 << 0 } as const;

/** enum tortie_route_type */
export const RouteType = { NONE: 0, LOCAL_EP: 1, REMOTE_BLOCK: 2, HOST: 3 } as const;
export type RouteType = ValueOf<typeof RouteType>;

/** enum tortie_route_flags */
export const RouteFlags = { NONE: 0, IPIP: 1 << 0, VXLAN: 1 << 1 } as const;

/** enum tortie_node_flags */
export const NodeFlags = { NONE: 0 } as const;

/** enum tortie_ep_flags */
export const EndpointFlags = { NONE: 0, HOST: 1 << 0 } as const;

/** enum tortie_ct_state */
export const CtState = { NONE: 0, SYN_SENT: 1, ESTABLISHED: 2, CLOSING: 3, CLOSED: 4 } as const;
export type CtState = ValueOf<typeof CtState>;

/** enum tortie_ct_flags */
export const CtFlags = { NONE: 0, SEEN_REPLY: 1 << 0, FIN_FWD: 1 << 1, FIN_REV: 1 << 2 } as const;

/** enum tortie_dir: where a packet was counted. */
export const Dir = { FROM_POD: 0, TO_POD: 1, FROM_UPLINK: 2, TO_UPLINK: 3 } as const;
export type Dir = ValueOf<typeof Dir>;

export type DirName = 'from-pod' | 'to-pod' | 'from-uplink' | 'to-uplink';
const DIR_NAMES: readonly DirName[] = ['from-pod', 'to-pod', 'from-uplink', 'to-uplink'];

/** 0 → 'from-pod', 1 → 'to-pod', 2 → 'from-uplink', 3 → 'to-uplink'; else 'dir-<n>'. */
export function dirName(dir: number): DirName | `dir-${number}` {
  return DIR_NAMES[dir] ?? `dir-${dir}`;
}

/** enum tortie_event_type */
export const EventType = { DROP: 1, VERDICT: 2, LOG: 3 } as const;
export type EventType = ValueOf<typeof EventType>;

/** What a tc program returns (linux/pkt_cls.h), as BPF_PROG_TEST_RUN reports it. */
export const TcAction = { OK: 0, SHOT: 2, REDIRECT: 7 } as const;
export type TcAction = ValueOf<typeof TcAction>;
