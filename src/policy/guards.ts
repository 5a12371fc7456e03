/**
 * The dataplane guards a pod's packet meets before policy, stated once as plain code
 * for the evaluators and differential tests to predict with. They are not policy — no
 * rule can allow what they drop, and a tracked flow does not bypass them — but they
 * decide a packet's fate as surely as a Deny, so a prediction of what a dataplane does
 * with a pod's packet is `guard, then evaluate()`.
 *
 *   - anti-spoofing: a pod sends only from its own address (DROP_SPOOF);
 *   - no tunnel traffic from pods (Calico's allowIPIPPacketsFromWorkloads /
 *     allowVXLANPacketsFromWorkloads, false by default): a pod's IPIP (protocol 4), or
 *     UDP to the VXLAN port, is dropped where the pod sends it (BPF:
 *     DROP_WORKLOAD_ENCAP; iptables: the pod's from-workload chain), so it can never
 *     reach another node as tunnel traffic that a masquerading node made its own.
 *   - only a SYN opens a TCP flow: a segment that belongs to no tracked flow and is not
 *     a bare SYN (no ACK, FIN or RST) is dropped (BPF: DROP_CT_TCP_NOT_SYN), in both
 *     directions, before policy. Otherwise a peer whose flow was revoked could open it
 *     again the other way with its next ACK, judged by its own (allowing) policy.
 */
import type { Packet } from './model.js';

export const IPPROTO_IPIP = 4;
export const IPPROTO_UDP = 17;
/** The VXLAN UDP port when none is configured (IANA's; Calico's default). */
export const DEFAULT_VXLAN_PORT = 4789;

/** The node settings of the tunnel guard (FelixConfiguration's names). */
export interface WorkloadEncapSettings {
  readonly allowIPIPPacketsFromWorkloads?: boolean;
  readonly allowVXLANPacketsFromWorkloads?: boolean;
  /** Default 4789. */
  readonly vxlanPort?: number;
}

/**
 * Which tunnel a pod's packet is, when its setting forbids pods to send it: 'ipip',
 * 'vxlan', or undefined (the guard lets it through to policy).
 */
export function workloadEncapDrop(
  packet: Pick<Packet, 'protocol' | 'dport'>,
  settings: WorkloadEncapSettings = {},
): 'ipip' | 'vxlan' | undefined {
  if (packet.protocol === IPPROTO_IPIP && settings.allowIPIPPacketsFromWorkloads !== true)
    return 'ipip';
  if (
    packet.protocol === IPPROTO_UDP &&
    settings.allowVXLANPacketsFromWorkloads !== true &&
    packet.dport === (settings.vxlanPort ?? DEFAULT_VXLAN_PORT)
  )
    return 'vxlan';
  return undefined;
}

export const IPPROTO_TCP = 6;
/** TCP header flag bits. */
export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_ACK = 0x10;

/**
 * Whether a packet that finds no tracked flow is dropped for not being a bare SYN.
 * flags: the TCP header's flags byte.
 */
export function tcpNotSynDrop(packet: Pick<Packet, 'protocol'>, flags: number): boolean {
  return (
    packet.protocol === IPPROTO_TCP && (flags & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN)) !== TCP_SYN
  );
}
