/**
 * One codec per struct of bpf/tortie_maps.h, members in the header's order. Keep this
 * file and the header in the same commit: test/dataplane/codecs-btf.test.ts compares
 * them with the compiled object's BTF.
 */
import { defineScalar, defineStruct, type CodecValue } from './codec.js';

/** tortie_ifaces value (key: __u32 ifindex). */
export const endpointCodec = defineStruct('tortie_endpoint', [
  ['ip', 'be32'],
  ['id', 'u32'],
  ['ingress_set', 'u32'],
  ['egress_set', 'u32'],
  ['policy_rev', 'u32'],
  ['flags', 'u32'],
] as const);
export type EndpointValue = CodecValue<typeof endpointCodec>;

export const routeKeyCodec = defineStruct('tortie_route_key', [
  ['prefixlen', 'u32'],
  ['addr', 'be32'],
] as const);
export type RouteKey = CodecValue<typeof routeKeyCodec>;

export const routeCodec = defineStruct('tortie_route', [
  ['type', 'u32'],
  ['ifindex', 'u32'],
  ['next_hop', 'be32'],
  ['flags', 'u32'],
] as const);
export type RouteValue = CodecValue<typeof routeCodec>;

/** tortie_nodes value (key: __be32 underlay address, ipv4Codec). */
export const nodeCodec = defineStruct('tortie_node', [['flags', 'u32']] as const);
export type NodeValue = CodecValue<typeof nodeCodec>;

/** tortie_node_cfg value (key: __u32 0). All zeros = not configured. */
export const nodeConfigCodec = defineStruct('tortie_node_config', [
  ['underlay_ip', 'be32'],
  ['uplink_ifindex', 'u32'],
] as const);
export type NodeConfigValue = CodecValue<typeof nodeConfigCodec>;

export const polAddrKeyCodec = defineStruct('tortie_pol_addr_key', [
  ['prefixlen', 'u32'],
  ['set_id', 'u32'],
  ['addr', 'be32'],
] as const);
export type PolAddrKey = CodecValue<typeof polAddrKeyCodec>;

export const polAddrValCodec = defineStruct('tortie_pol_addr_val', [['class_id', 'u32']] as const);
export type PolAddrVal = CodecValue<typeof polAddrValCodec>;

/** tortie_pol_ip32 key: the /32 entries of the address stage (value: polAddrValCodec). */
export const polIp32KeyCodec = defineStruct('tortie_pol_ip32_key', [
  ['set_id', 'u32'],
  ['addr', 'be32'],
] as const);
export type PolIp32Key = CodecValue<typeof polIp32KeyCodec>;

export const polL4KeyCodec = defineStruct('tortie_pol_l4_key', [
  ['prefixlen', 'u32'],
  ['class_id', 'u32'],
  ['l4', 'be32'],
] as const);
export type PolL4Key = CodecValue<typeof polL4KeyCodec>;

/**
 * tortie_pol_port key: the exact (proto, port) entries of the port stage (value:
 * verdictCodec). The class defaults (tortie_pol_dflt) are keyed by a bare __u32.
 */
export const polPortKeyCodec = defineStruct('tortie_pol_port_key', [
  ['class_id', 'u32'],
  ['l4', 'be32'],
] as const);
export type PolPortKey = CodecValue<typeof polPortKeyCodec>;

/** tortie_pol_sprt key: the source-port stage (value: verdictCodec). */
export const polSportKeyCodec = defineStruct('tortie_pol_sport_key', [
  ['prefixlen', 'u32'],
  ['class_id', 'u32'],
  ['sport', 'be32'],
] as const);
export type PolSportKey = CodecValue<typeof polSportKeyCodec>;

export const verdictCodec = defineStruct('tortie_verdict', [
  ['action', 'u8'],
  ['flags', 'u8'],
  ['reserved', 'u16'],
  ['rule_id', 'u32'],
] as const);
export type VerdictValue = CodecValue<typeof verdictCodec>;

export const ctKeyCodec = defineStruct('tortie_ct_key', [
  ['saddr', 'be32'],
  ['daddr', 'be32'],
  ['sport', 'be16'],
  ['dport', 'be16'],
  ['proto', 'u8'],
  ['icmp_query', 'u8'],
  ['pad', { pad: 2 }],
] as const);
export type CtKey = CodecValue<typeof ctKeyCodec>;

export const ctEntryCodec = defineStruct('tortie_ct_entry', [
  ['created_ns', 'u64'],
  ['last_seen_ns', 'u64'],
  ['src_ifindex', 'u32'],
  ['dst_ifindex', 'u32'],
  ['src_rev', 'u32'],
  ['dst_rev', 'u32'],
  ['rule_id', 'u32'],
  ['state', 'u8'],
  ['flags', 'u8'],
  ['reserved', 'u16'],
] as const);
export type CtEntry = CodecValue<typeof ctEntryCodec>;

export const fragKeyCodec = defineStruct('tortie_frag_key', [
  ['saddr', 'be32'],
  ['daddr', 'be32'],
  ['id', 'be16'],
  ['proto', 'u8'],
  ['pad', { pad: 1 }],
] as const);
export type FragKey = CodecValue<typeof fragKeyCodec>;

export const fragValCodec = defineStruct('tortie_frag_val', [
  ['sport', 'be16'],
  ['dport', 'be16'],
] as const);
export type FragVal = CodecValue<typeof fragValCodec>;

export const metricsKeyCodec = defineStruct('tortie_metrics_key', [
  ['ep_id', 'u32'],
  ['reason', 'u8'],
  ['dir', 'u8'],
  ['pad', { pad: 2 }],
] as const);
export type MetricsKey = CodecValue<typeof metricsKeyCodec>;

export const metricsValCodec = defineStruct('tortie_metrics_val', [
  ['packets', 'u64'],
  ['bytes', 'u64'],
] as const);
export type MetricsVal = CodecValue<typeof metricsValCodec>;

/** A record of the tortie_events ring buffer. ICMP: (type << 8) | code in dport, id in sport. */
export const eventCodec = defineStruct('tortie_event', [
  ['ts_ns', 'u64'],
  ['type', 'u32'],
  ['ifindex', 'u32'],
  ['ep_id', 'u32'],
  ['rule_id', 'u32'],
  ['saddr', 'be32'],
  ['daddr', 'be32'],
  ['sport', 'be16'],
  ['dport', 'be16'],
  ['proto', 'u8'],
  ['reason', 'u8'],
  ['dir', 'u8'],
  ['action', 'u8'],
] as const);
export type EventRecord = CodecValue<typeof eventCodec>;

/** tortie_xdp_deny (LPM trie): a source prefix the uplink drops in XDP, and its rule. */
export const xdpDenyKeyCodec = defineStruct('tortie_xdp_deny_key', [
  ['prefixlen', 'u32'],
  ['addr', 'be32'],
] as const);
export type XdpDenyKey = CodecValue<typeof xdpDenyKeyCodec>;

export const xdpDenyValCodec = defineStruct('tortie_xdp_deny_val', [['rule_id', 'u32']] as const);
export type XdpDenyVal = CodecValue<typeof xdpDenyValCodec>;

/** Plain integer keys and values (tortie_ifaces and tortie_pol_dflt keys, tortie_ev_lost). */
export const u32Codec = defineScalar('__u32', 'u32');
/** A bare IPv4 address in network order (tortie_nodes keys). */
export const ipv4Codec = defineScalar('__be32', 'be32');
export const u64Codec = defineScalar('__u64', 'u64');

/** Every codec of a struct in bpf/tortie_maps.h, by C name. */
export const STRUCT_CODECS = [
  endpointCodec,
  routeKeyCodec,
  routeCodec,
  nodeCodec,
  nodeConfigCodec,
  polAddrKeyCodec,
  polAddrValCodec,
  polIp32KeyCodec,
  polL4KeyCodec,
  polPortKeyCodec,
  polSportKeyCodec,
  verdictCodec,
  ctKeyCodec,
  ctEntryCodec,
  fragKeyCodec,
  fragValCodec,
  metricsKeyCodec,
  metricsValCodec,
  eventCodec,
  xdpDenyKeyCodec,
  xdpDenyValCodec,
] as const;
