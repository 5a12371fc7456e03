/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * tortie_maps.h — every map's key and value, every enum the control plane shares.
 *
 * This is the only header the TypeScript codecs mirror (src/maps/). The codec test
 * reads the compiled object's BTF and fails when a struct here and its codec differ in
 * size or field offsets, so drift cannot reach a running node. Change a struct here and
 * its codec in the same commit.
 *
 * Byte order: fields named __be* hold network byte order (addresses, ports, the LPM
 * key tails that must be compared bit by bit from the most significant end); every
 * other field is host byte order (little-endian on every target tortie supports).
 */
#ifndef TORTIE_MAPS_H
#define TORTIE_MAPS_H

#include <linux/types.h>

/* ---- map names (pinned under <bpffs root>/<name>) and sizes --------------------- */

#define TORTIE_MAX_IFACES 16384      /* local endpoints (pod veths) on one node */
#define TORTIE_MAX_ROUTES 65536      /* local /32s + remote blocks */
#define TORTIE_MAX_POL_ADDR (1 << 20) /* address stage, all sets: the tortie_pol_addr LPM */
#define TORTIE_MAX_POL_IP32 TORTIE_MAX_POL_ADDR /* its /32s: tortie_pol_ip32 */
#define TORTIE_MAX_POL_L4 (1 << 20)  /* port stage, all classes: the tortie_pol_l4 LPM */
#define TORTIE_MAX_POL_PORT TORTIE_MAX_POL_L4   /* its exact ports: tortie_pol_port */
#define TORTIE_MAX_POL_DFLT TORTIE_MAX_POL_L4   /* its class defaults: tortie_pol_dflt */
#define TORTIE_MAX_POL_SPORT (1 << 20) /* source-port stage, all its classes: tortie_pol_sprt */
#define TORTIE_MAX_CT 262144         /* conntrack flows (LRU) */
#define TORTIE_MAX_FRAGS 8192        /* first fragments awaiting their followers (LRU) */
#define TORTIE_MAX_METRICS 65536     /* (endpoint, reason, direction) counters */
#define TORTIE_MAX_CT_NEW TORTIE_MAX_IFACES /* per-endpoint conntrack-created counters */
#define TORTIE_MAX_CT_BUDGET TORTIE_MAX_IFACES /* per-endpoint new-flow budgets (LRU) */
#define TORTIE_MAX_NODES 16384       /* other nodes IPIP is accepted from */
#define TORTIE_EVENTS_BYTES (1 << 20) /* ring buffer for drop/verdict events */
#define TORTIE_MAX_XDP_DENY (1 << 20) /* deny-listed source prefixes on the uplink (XDP) */

/* ---- tortie_ifaces: HASH, key __u32 ifindex (host end of a pod veth) ----------- */

enum tortie_ep_flags {
	TORTIE_EP_F_NONE = 0,
	TORTIE_EP_F_HOST = 1 << 0, /* a host endpoint (the uplink's): sets judge the node's own traffic */
};

struct tortie_endpoint {
	__be32 ip;          /* the pod's only legal source address (anti-spoofing) */
	__u32 id;           /* endpoint id for counters and events; never 0 */
	__u32 ingress_set;  /* policy set judging traffic to the pod; 0 = not programmed yet */
	__u32 egress_set;   /* policy set judging traffic from the pod; 0 = not programmed yet */
	__u32 policy_rev;   /* changes whenever either set's compiled content changes */
	__u32 flags;        /* enum tortie_ep_flags */
};

/* ---- tortie_routes: LPM_TRIE ---------------------------------------------------- */

struct tortie_route_key {
	__u32 prefixlen;    /* 0..32 */
	__be32 addr;
};

enum tortie_route_type {
	TORTIE_ROUTE_NONE = 0,
	TORTIE_ROUTE_LOCAL_EP = 1,     /* a pod on this node: ifindex = its host veth */
	TORTIE_ROUTE_REMOTE_BLOCK = 2, /* a block on another node: next_hop = node address */
	TORTIE_ROUTE_HOST = 3,         /* an address of this node */
};

enum tortie_route_flags {
	TORTIE_ROUTE_F_NONE = 0,
	TORTIE_ROUTE_F_IPIP = 1 << 0,  /* encapsulate to next_hop */
	TORTIE_ROUTE_F_VXLAN = 1 << 1,
};

struct tortie_route {
	__u32 type;         /* enum tortie_route_type */
	__u32 ifindex;      /* LOCAL_EP: host end of the pod veth; REMOTE_BLOCK: the interface
			     * to send through, 0 = the node's uplink (tortie_node_cfg) */
	__be32 next_hop;    /* REMOTE_BLOCK: the owning node's underlay address */
	__u32 flags;        /* enum tortie_route_flags */
};

/* ---- tortie_nodes: HASH, key __be32 a node's underlay IPv4 address ------------ */

/*
 * The other nodes of the cluster, by underlay address: the only sources IPIP is
 * decapsulated from (tortie_from_uplink). Anyone else's IPIP is dropped as
 * TORTIE_DROP_IPIP_UNKNOWN_SOURCE, so a host that can reach the underlay cannot tunnel
 * a forged pod source past the receiving node's checks.
 */
enum tortie_node_flags {
	TORTIE_NODE_F_NONE = 0,
};

struct tortie_node {
	__u32 flags;        /* enum tortie_node_flags */
};

/* ---- tortie_node_cfg: ARRAY of one, key __u32 0 ---------------------------------- */

/*
 * This node's own place on the underlay. An ARRAY map rather than `volatile const`
 * (.rodata) because both fields can change while the node runs: the uplink's ifindex
 * when the interface is recreated, the address when the node is re-addressed, and the
 * agent may learn them only after it loaded the object. A .rodata change would mean a
 * new load and re-attaching every pod veth; a map update is one syscall, takes effect on
 * the next packet, and survives an agent restart with the other pins. The cost is
 * nothing measurable: the verifier turns an ARRAY lookup with a constant key into a
 * pointer computation, as cheap as reading .rodata.
 *
 * All zeros = not configured: REMOTE_BLOCK routes with TORTIE_ROUTE_F_IPIP then drop as
 * TORTIE_DROP_NO_UPLINK, and the uplink programs accept IPIP from known nodes to any
 * destination address.
 */
struct tortie_node_config {
	__be32 underlay_ip;     /* outer source of the IPIP this node sends; the outer
				 * destination it accepts */
	__u32 uplink_ifindex;   /* where encapsulated packets leave (bpf_redirect_neigh) */
};

/*
 * ---- policy: two stages (three with source ports), exact hashes before tries ----
 *
 * The compiler flattens every rule that applies to one endpoint in one direction into a
 * "policy set". A packet is judged in two stages, whatever the rule count:
 *
 *   1. address stage: (set_id, peer address) -> class_id
 *   2. port stage:    (class_id, proto, port) -> verdict
 *   3. only where rules match source ports (see "Source ports" below):
 *                     (sport_class_id, source port) -> verdict
 *
 * The peer is the source for ingress and the destination for egress. A class is the
 * set of peer addresses for which the set's decision over (proto, port) is the same
 * function, so stage 2 is that function as prefixes over (proto, port).
 *
 * The compiler emits each stage as one longest-prefix-match table: address prefixes of
 * 0..32 bits, (proto, port) prefixes of 0..24 bits. The control plane stores each table
 * in several maps by prefix length, so that the common entries are found by an O(1)
 * hash lookup and only what needs prefix matching sits in an LPM trie (a trie lookup
 * gets deeper as the trie fills):
 *
 *   stage  bits        map              type      key                        value
 *   1      32          tortie_pol_ip32  HASH      {set_id, addr}             class
 *   1      0..31       tortie_pol_addr  LPM_TRIE  {32 + bits, set_id, addr}  class
 *   2      24          tortie_pol_port  HASH      {class_id, l4}             verdict
 *   2      1..23       tortie_pol_l4    LPM_TRIE  {40 + bits, class_id, l4}  verdict
 *   2      0           tortie_pol_dflt  HASH      __u32 class_id             verdict
 *
 * Each stage is looked up in the order of that table and stops at the first hit:
 * stage 1 tortie_pol_ip32, then tortie_pol_addr; stage 2 tortie_pol_port, then
 * tortie_pol_l4, then tortie_pol_dflt. The maps of a stage hold disjoint prefix lengths
 * and are tried longest first, so the first hit is the entry one LPM over the whole
 * table would return: the split changes the cost of a lookup, never its result.
 *
 * A decision is at most five lookups, two of them trie walks (six and three where the
 * source port decides, below). A peer the policy names as a /32 (every selected pod is
 * one) costs one hash lookup in stage 1, and a port the class names exactly one in
 * stage 2, however many entries the maps hold. Only a peer
 * matched by a shorter prefix, or a port decided by a range or by the class default,
 * walks a trie, and the tries hold only the prefixes and ranges. The price: a hash
 * lookup costs more than a walk of a near-empty trie, and a decision that falls through
 * to a set's /0 and a class default (e.g. for a pod no policy selects) is five lookups,
 * three of them misses; docs/dataplane.md has the measured costs.
 *
 * In the tries, set_id and class_id are matched in full (they sit first in the key and
 * every stored prefix length covers them); the address and the (proto, port) tail are
 * big-endian so that LPM prefixes are address and port ranges. The hash keys are the
 * same fields without the prefix length. Every set has a /0 address entry (in
 * tortie_pol_addr) and every class a default (in tortie_pol_dflt), so a miss in every
 * map of a stage means the compiler never wrote the set or class: the packet is dropped
 * as TORTIE_DROP_NO_POLICY (fail closed), never passed.
 *
 * Sizes: the compiler's budgets are per stage (TORTIE_MAX_POL_ADDR entries over all
 * sets, TORTIE_MAX_POL_L4 over all classes) and every map of a stage can hold the whole
 * stage, so no split of a stage within budget overflows one of its maps. Entries are
 * allocated as they are written (BPF_F_NO_PREALLOC), but a hash map's bucket array is
 * allocated whole at creation: 16 MiB for 2^20 entries, 48 MiB for the three hashes.
 *
 * Source ports. A rule with source.ports / source.notPorts makes the decision at some
 * (class, proto, port) points depend on the source port too. There, and only there,
 * stage 2 answers TORTIE_ACT_BY_SPORT: its rule_id field names a source-port class
 * (numbered from the class ids), and stage 3 looks the source port up in it:
 *
 *   stage  bits   map              type      key                             value
 *   3      0..16  tortie_pol_sprt  LPM_TRIE  {48 + bits, sport_class, sport}  verdict
 *
 * One trie holds the whole stage (exact ports, ranges and each class's default, the
 * 0-bit entry): the stage is reached only by packets whose (class, proto, port) a
 * source-port rule decides, and a walk of its trie is bounded by the key's 64 bits,
 * whatever the number of rules. Every other packet decides in stage 2 as before and
 * pays nothing. Every source-port class has a 0-bit entry, so a miss means the compiler
 * never wrote the class (fail closed, TORTIE_DROP_NO_POLICY), and a stage-3 verdict is
 * always Allow or Deny (never another BY_SPORT). The source port is the policy's: the
 * packet's for TCP, UDP, UDPLite and SCTP, 0 for every other protocol. A flow's
 * replies never reach policy (conntrack), and revalidation judges the original
 * direction with the flow's own source port.
 */

struct tortie_pol_addr_key {
	__u32 prefixlen;    /* 32 + address bits: 32..63 (a /32 goes to tortie_pol_ip32) */
	__u32 set_id;
	__be32 addr;
};

struct tortie_pol_addr_val {
	__u32 class_id;
};

/* tortie_pol_ip32 (HASH): the /32s of the address stage; value tortie_pol_addr_val. */
struct tortie_pol_ip32_key {
	__u32 set_id;
	__be32 addr;
};

/*
 * l4 = (proto << 16) | port, big-endian, top byte always 0. port is the destination
 * port for TCP, UDP, UDPLite and SCTP; (type << 8) | code for ICMP; 0 for any other
 * protocol. prefixlen = 40 + bits over the 24-bit (proto, port); 40 alone would be the
 * whole class, which is the class default's job (tortie_pol_dflt).
 */
struct tortie_pol_l4_key {
	__u32 prefixlen;    /* 40 + bits: 41..63 (24 bits: tortie_pol_port, 0: tortie_pol_dflt) */
	__u32 class_id;
	__be32 l4;
};

/*
 * tortie_pol_port (HASH): the exact (proto, port) entries of the port stage, l4 as
 * above; value struct tortie_verdict. The class defaults (0 bits) live in
 * tortie_pol_dflt (HASH), keyed by the bare __u32 class_id, value struct tortie_verdict.
 */
struct tortie_pol_port_key {
	__u32 class_id;
	__be32 l4;
};

enum tortie_action {
	TORTIE_ACT_NONE = 0,
	TORTIE_ACT_ALLOW = 1,
	TORTIE_ACT_DENY = 2,
	TORTIE_ACT_BY_SPORT = 3, /* stage 2 only: rule_id is the source-port class (stage 3) */
};

enum tortie_verdict_flags {
	TORTIE_VERDICT_F_NONE = 0,
	TORTIE_VERDICT_F_LOG = 1 << 0, /* a Log rule matched before the deciding rule */
};

struct tortie_verdict {
	__u8 action;        /* enum tortie_action */
	__u8 flags;         /* enum tortie_verdict_flags */
	__u16 reserved;
	__u32 rule_id;      /* the deciding rule (or default), resolved by the control plane;
			     * TORTIE_ACT_BY_SPORT: the source-port class to look up */
};

/*
 * tortie_pol_sprt (LPM_TRIE): stage 3. sport = the source port, big-endian in the low
 * 16 bits of a 32-bit tail whose top 16 bits are 0; prefixlen = 48 + bits over the
 * source port (48: the class default). Value struct tortie_verdict (Allow or Deny).
 */
struct tortie_pol_sport_key {
	__u32 prefixlen;    /* 48 + bits: 48..64 */
	__u32 class_id;     /* a source-port class */
	__be32 sport;
};

/* ---- conntrack: LRU_HASH, forward tuple as key ---------------------------------- */

struct tortie_ct_key {
	__be32 saddr;       /* the flow's original sender */
	__be32 daddr;
	__be16 sport;       /* ICMP query: the identifier in both ports */
	__be16 dport;
	__u8 proto;
	__u8 icmp_query;    /* ICMP query: the request type (8 echo, 13 timestamp, 15 info,
			     * 17 address mask), | TORTIE_CT_ICMP_REPLY in a reply's own
			     * tuple; 0 for everything else. A reply matches only a request
			     * of its own type, and a request never matches as a reply. */
	__u8 pad[2];
};

#define TORTIE_CT_ICMP_REPLY 0x80

enum tortie_ct_state {
	TORTIE_CT_NONE = 0,
	TORTIE_CT_SYN_SENT = 1,     /* TCP: SYN seen from the sender */
	TORTIE_CT_ESTABLISHED = 2,  /* TCP: reply seen; other protocols: any packet */
	TORTIE_CT_CLOSING = 3,      /* TCP: FIN seen */
	TORTIE_CT_CLOSED = 4,       /* TCP: RST seen, or FIN from both sides */
};

enum tortie_ct_flags {
	TORTIE_CT_F_NONE = 0,
	TORTIE_CT_F_SEEN_REPLY = 1 << 0,
	TORTIE_CT_F_FIN_FWD = 1 << 1,
	TORTIE_CT_F_FIN_REV = 1 << 2,
};

struct tortie_ct_entry {
	__u64 created_ns;
	__u64 last_seen_ns;
	__u32 src_ifindex;  /* local sender whose egress policy allowed the flow, else 0 */
	__u32 dst_ifindex;  /* local receiver whose ingress policy allowed it, else 0 */
	__u32 src_rev;      /* tortie_endpoint.policy_rev of the sender when judged */
	__u32 dst_rev;      /* ... of the receiver when judged */
	__u32 rule_id;      /* the allowing rule (ingress if judged here, else egress) */
	__u8 state;         /* enum tortie_ct_state */
	__u8 flags;         /* enum tortie_ct_flags */
	__u16 reserved;
};

/*
 * ---- tortie_ct_new: PERCPU_HASH, key __u32 ep_id, value __u64 ------------------
 *
 * Conntrack entries created, per endpoint that caused them: the sender for a flow a
 * local pod opens (tortie_from_pod), the receiver for a flow that reaches a local pod
 * from elsewhere (tortie_to_pod, decapsulated delivery). Only counted when the insert
 * succeeded. Never decremented: tortie_ct is an LRU and evicts silently, so a live
 * count per endpoint could not be kept exact; a monotonic per-CPU counter is exact and
 * costs one lookup and an add per new flow. Key 0 when the map is full.
 */

/*
 * ---- tortie_ct_rate: LRU_HASH, key __u32 ep_id, value __u64 ------------------
 *
 * The new-flow budget of each sending pod, when tortie_cfg_ct_budget_interval_ns is set
 * (off by default): the value is the bucket's "theoretical arrival time" (GCRA, a token
 * bucket in one number), see ct_budget_take in ct.h. An LRU so that the budgets of
 * endpoints long gone make room by themselves; an evicted budget starts full again.
 */

/* ---- fragments: LRU_HASH, first fragment's ports for its followers ------------- */

struct tortie_frag_key {
	__be32 saddr;
	__be32 daddr;
	__be16 id;          /* IPv4 identification */
	__u8 proto;
	__u8 pad;
};

struct tortie_frag_val {
	__be16 sport;
	__be16 dport;
};

/*
 * ---- tortie_xdp_deny: LPM_TRIE, the uplink's deny list (xdp_uplink.c) -----------
 *
 * Source prefixes whose packets the node's uplink drops in XDP, before an skb exists:
 * the ingress Deny rules of doNotTrack policies that match on the source address alone
 * (src/policy/xdp.ts says which rules qualify). One longest-prefix lookup per IPv4
 * packet, whatever the number of prefixes. The value names the rule for the drop's
 * event; the prefix with the longest match decides which rule is named.
 */
struct tortie_xdp_deny_key {
	__u32 prefixlen;    /* 0..32 */
	__be32 addr;        /* the source prefix, network byte order */
};

struct tortie_xdp_deny_val {
	__u32 rule_id;      /* the Deny rule (agent's XDP rule ids, src/policy/xdp.ts) */
};

/* ---- reasons: why a packet passed or was dropped (counters and events) --------- */

enum tortie_reason {
	TORTIE_REASON_NONE = 0,
	/* passes */
	TORTIE_PASS_POLICY = 1,         /* new flow allowed by policy */
	TORTIE_PASS_CT_ESTABLISHED = 2, /* packet of a tracked flow, original direction */
	TORTIE_PASS_CT_REPLY = 3,       /* packet of a tracked flow, reply direction */
	TORTIE_PASS_CT_RELATED = 4,     /* ICMP error about a tracked flow */
	TORTIE_PASS_ARP = 5,
	TORTIE_PASS_FRAGMENT = 6,       /* non-first fragment of an allowed datagram */
	TORTIE_PASS_ENCAP = 7,          /* to a remote block: IPIP-encapsulated, sent to the uplink */
	TORTIE_PASS_HOST_ROUTE = 8,     /* to a remote block, not encapsulated, left to the host
					 * stack: its TTL runs out here, or the kernel's FIB gave
					 * no way out (unreachable, too big for the egress MTU) */
	TORTIE_PASS_DECAP = 9,          /* IPIP from a known node, decapsulated */
	TORTIE_PASS_NOT_TUNNEL = 10,    /* on the uplink: no tunnel work (the node's own
					 * traffic, or IPIP not addressed to this node) */
	TORTIE_PASS_FIB = 11,           /* to a remote block, not encapsulated (ipipMode Never):
					 * routed in BPF by the kernel's FIB and neighbour tables,
					 * redirected to the egress interface past the host stack */
	TORTIE_PASS_UPLINK_TO_POD = 12, /* on the uplink, a plain packet for a local pod: judged
					 * for the receiver and redirected into it (counted for
					 * the receiver under its policy or conntrack reason) */
	/* drops: from 64 up, so "reason >= 64" means dropped */
	TORTIE_DROP_POLICY = 64,        /* a Deny rule or a default deny decided */
	TORTIE_DROP_SPOOF = 65,         /* pod sent from an address that is not its own */
	TORTIE_DROP_MALFORMED = 66,     /* truncated or inconsistent headers */
	TORTIE_DROP_FRAG_NO_FIRST = 67, /* non-first fragment with no allowed first fragment */
	TORTIE_DROP_IPV6 = 68,          /* IPv6 until dual stack lands */
	TORTIE_DROP_UNSUPPORTED_L3 = 69,/* neither IPv4 nor ARP (VLAN tags, MPLS, ...) */
	TORTIE_DROP_NO_ENDPOINT = 70,   /* program attached to an interface with no endpoint */
	TORTIE_DROP_NO_POLICY = 71,     /* endpoint's policy not programmed yet (fail closed) */
	TORTIE_DROP_POLICY_REVOKED = 72,/* tracked flow denied after its policy changed */
	TORTIE_DROP_NOT_FOR_ENDPOINT = 73, /* packet to a pod veth whose daddr is not the pod */
	TORTIE_DROP_IPIP_UNKNOWN_SOURCE = 74, /* IPIP whose outer source is not in tortie_nodes */
	TORTIE_DROP_IPIP_FRAGMENT = 75, /* fragmented outer header: cannot decapsulate in place */
	TORTIE_DROP_IPIP_NOT_LOCAL = 76,/* decapsulated, but for no pod or address of this node */
	TORTIE_DROP_NO_UPLINK = 77,     /* IPIP route, but no underlay address or uplink known */
	TORTIE_DROP_ENCAP_MTU = 78,     /* packet + outer header would exceed the uplink MTU */
	TORTIE_DROP_ENCAP_FAILED = 79,  /* the kernel refused to add the outer header */
	TORTIE_DROP_DECAP_FAILED = 80,  /* the kernel refused to remove the outer header */
	TORTIE_DROP_WORKLOAD_ENCAP = 81,/* a pod sent IPIP or VXLAN itself (Calico's
					 * allowIPIPPacketsFromWorkloads / allowVXLANPacketsFromWorkloads
					 * off, the default) */
	TORTIE_DROP_IPIP_INNER_SPOOF = 82, /* decapsulated packet whose source is neither the
					 * sending node nor inside a block routed to it */
	TORTIE_DROP_TO_LOOPBACK = 83,   /* pod sent to 127.0.0.0/8, whatever route_localnet says */
	TORTIE_DROP_ENDPOINT_TO_HOST = 84, /* pod's new flow to an address of this node, after its
					 * egress policy allowed it (defaultEndpointToHostAction Drop) */
	TORTIE_DROP_CT_TCP_NOT_SYN = 85, /* TCP segment of no tracked flow without a bare SYN:
					 * only a SYN opens a flow (no mid-stream pick-up) */
	TORTIE_DROP_CT_BUDGET = 86,     /* the sender's new-flow budget is spent (off by default:
					 * tortie_cfg_ct_budget_interval_ns) */
	TORTIE_DROP_FRAG_NEEDED = 87,   /* DF packet that does not fit the uplink once
					 * encapsulated: dropped, and answered with ICMP
					 * "fragmentation needed" carrying the tunnel's MTU */
	TORTIE_DROP_XDP_DENY = 88,      /* on the uplink, in XDP: the source is in tortie_xdp_deny
					 * (a doNotTrack Deny rule), dropped before an skb exists */
	TORTIE_REASON_MAX = 89,
};

/*
 * Where a packet was counted. A packet is counted once for every (endpoint, direction)
 * it went through; a drop only for the one blamed (see docs/dataplane.md, "Counters").
 */
enum tortie_dir {
	TORTIE_DIR_FROM_POD = 0,    /* tc ingress on the host end: the pod is sending */
	TORTIE_DIR_TO_POD = 1,      /* tc egress on the host end (or a redirect): the pod is receiving */
	TORTIE_DIR_FROM_UPLINK = 2, /* tc ingress on the node's uplink */
	TORTIE_DIR_TO_UPLINK = 3,   /* leaving for another node: encapsulated or handed to the
				     * host's routes (tortie_from_pod), or tc egress on the uplink */
};

/* ---- tortie_metrics: PERCPU_HASH ------------------------------------------------ */

struct tortie_metrics_key {
	__u32 ep_id;        /* 0 when no endpoint could be identified */
	__u8 reason;        /* enum tortie_reason */
	__u8 dir;           /* enum tortie_dir */
	__u16 pad;
};

struct tortie_metrics_val {
	__u64 packets;
	__u64 bytes;
};

/* ---- tortie_events: RINGBUF of struct tortie_event ------------------------------ */

enum tortie_event_type {
	TORTIE_EVENT_DROP = 1,    /* every drop, when tortie_cfg_drop_events */
	TORTIE_EVENT_VERDICT = 2, /* every policy decision, when tortie_cfg_trace_verdicts */
	TORTIE_EVENT_LOG = 3,     /* a Log rule matched */
};

struct tortie_event {
	__u64 ts_ns;
	__u32 type;         /* enum tortie_event_type */
	__u32 ifindex;
	__u32 ep_id;
	__u32 rule_id;      /* deciding rule for policy events, 0 otherwise */
	__be32 saddr;
	__be32 daddr;
	__be16 sport;       /* ICMP: (type << 8) | code in dport, id in sport */
	__be16 dport;
	__u8 proto;
	__u8 reason;        /* enum tortie_reason */
	__u8 dir;           /* enum tortie_dir */
	__u8 action;        /* enum tortie_action */
};

#endif /* TORTIE_MAPS_H */
