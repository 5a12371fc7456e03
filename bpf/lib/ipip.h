/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ipip.h — IP in IP (RFC 2003) between nodes, done here: the kernel's ipip module is
 * neither needed nor used. A packet to a remote block gets a 20-byte outer IPv4 header
 * (this node's underlay address → the owning node's) and leaves through the uplink. On
 * the receiving uplink the outer header is checked — IPIP, addressed to this node, from
 * a known node, well formed, not fragmented, a whole inner IPv4 header inside — and
 * stripped; the inner packet then goes the way a packet to a local pod goes.
 *
 * Nothing is fragmented here. A packet that would not fit the uplink's MTU with the
 * outer header is dropped: with DF set it is answered with ICMP "fragmentation needed"
 * (TORTIE_DROP_FRAG_NEEDED, lib/pmtu.h), without it dropped (TORTIE_DROP_ENCAP_MTU);
 * in IPIP mode pods get an MTU 20 bytes below the underlay's. GSO packets fit whatever the pod MTU: adding the header
 * lowers their segment size by the same 20 bytes (no BPF_F_ADJ_ROOM_FIXED_GSO).
 */
#ifndef TORTIE_IPIP_H
#define TORTIE_IPIP_H

#include "compat.h"
#include "node.h"
#include "packet.h"
#include "parse.h"
#include "route.h"

#define IPIP_HLEN ((__u32)sizeof(struct iphdr))
#define IPIP_TTL 64
#define IPV4_MAX_LEN 0xffff

/* The ones' complement checksum of a 20-byte IPv4 header whose check field is 0. */
static __always_inline __sum16 ipv4_header_csum(const struct iphdr *iph)
{
	const __u16 *word = (const __u16 *)iph;
	__u32 sum = 0;

#pragma unroll
	for (int i = 0; i < (int)(sizeof(*iph) / 2); i++)
		sum += word[i];
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__sum16)~sum;
}

/*
 * Whether the IPv4 header at offset `off` (ihl bytes, 20..60) sums to 0xffff. It is
 * copied into a zeroed buffer of the largest header size, so all 15 words can be summed
 * whatever ihl is (the zeros add nothing); 32-bit words with the carries folded back in
 * give the same ones' complement sum as 16-bit ones.
 */
static __always_inline int ipv4_header_csum_ok(struct __sk_buff *skb, __u32 off, __u32 ihl)
{
	__u32 word[15] = {};
	__u64 sum = 0;

	if (ihl < 20 || ihl > sizeof(word) || bpf_skb_load_bytes(skb, off, word, ihl) < 0)
		return 0;
#pragma unroll
	for (int i = 0; i < 15; i++)
		sum += word[i];
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return sum == 0xffff;
}

/*
 * The outer header for `inner` (RFC 2003, 3.1): TOS copied, so DSCP and ECN cross the
 * tunnel; DF copied, so path MTU discovery keeps working end to end; a random
 * identification when the outer packet may be fragmented on the way (0 when it may
 * not: RFC 6864 leaves it unused then); TTL 64.
 */
static __always_inline void ipip_outer_of(struct iphdr *outer, const struct iphdr *inner,
					  __u32 inner_len, __be32 saddr, __be32 daddr)
{
	outer->version = 4;
	outer->ihl = IPIP_HLEN / 4;
	outer->tos = inner->tos;
	outer->tot_len = bpf_htons(inner_len + IPIP_HLEN);
	outer->frag_off = inner->frag_off & bpf_htons(IP_DF);
	outer->id = outer->frag_off ? 0 : (__be16)bpf_get_prandom_u32();
	outer->ttl = IPIP_TTL;
	outer->protocol = IPPROTO_IPIP;
	outer->check = 0;
	outer->saddr = saddr;
	outer->daddr = daddr;
	outer->check = ipv4_header_csum(outer);
}

/*
 * Wraps the packet (Ethernet + IPv4) in an outer IPv4 header from saddr to daddr,
 * between the Ethernet header and the inner one. The Ethernet header stays as it was:
 * bpf_redirect_neigh writes the uplink's addresses into it. Returns TORTIE_REASON_NONE
 * or the reason to drop.
 */
static __always_inline __u8 ipip_encap4(struct __sk_buff *skb, __be32 saddr, __be32 daddr)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct iphdr *inner = data + ETH_HLEN;
	struct iphdr outer = {};
	__u32 inner_len;

	if ((void *)(inner + 1) > data_end)
		return TORTIE_DROP_MALFORMED;
	inner_len = bpf_ntohs(inner->tot_len);
	/* 0 is a BIG TCP packet over 64 KiB: no outer header can state its length. */
	if (inner_len == 0 || inner_len > IPV4_MAX_LEN - IPIP_HLEN)
		return TORTIE_DROP_ENCAP_MTU;
	ipip_outer_of(&outer, inner, inner_len, saddr, daddr);

	if (bpf_skb_adjust_room(skb, IPIP_HLEN, BPF_ADJ_ROOM_MAC,
				BPF_F_ADJ_ROOM_ENCAP_L3_IPV4) < 0)
		return TORTIE_DROP_ENCAP_FAILED;
	if (bpf_skb_store_bytes(skb, ETH_HLEN, &outer, sizeof(outer), 0) < 0)
		return TORTIE_DROP_ENCAP_FAILED;
	return TORTIE_REASON_NONE;
}

/*
 * Where a route's tunnel starts and leaves: this node's underlay address and the
 * route's uplink (its own ifindex, else the node's). TORTIE_DROP_NO_UPLINK while the
 * node configuration lacks either.
 */
static __always_inline __u8 ipip_tunnel_of(const struct tortie_route *route, __be32 *saddr,
					   __u32 *uplink)
{
	const struct tortie_node_config *cfg = node_config();

	if (!cfg || !cfg->underlay_ip)
		return TORTIE_DROP_NO_UPLINK;
	*saddr = cfg->underlay_ip;
	*uplink = route->ifindex ? route->ifindex : cfg->uplink_ifindex;
	return *uplink ? TORTIE_REASON_NONE : TORTIE_DROP_NO_UPLINK;
}

/*
 * The packet plus the outer header against the MTU of `ifindex` (0: the interface the
 * program runs on). A GSO packet passes: its segments shrink to fit (above). A
 * negative answer from the kernel means no such interface. *mtu: the interface's MTU
 * (the kernel reports it whatever the answer).
 */
static __always_inline __u8 ipip_check_mtu(struct __sk_buff *skb, __u32 ifindex, __u32 *mtu)
{
	__u32 mtu_len = 0;
	long rc = bpf_check_mtu(skb, ifindex, &mtu_len, IPIP_HLEN, 0);

	*mtu = mtu_len;
	if (rc < 0)
		return TORTIE_DROP_NO_UPLINK;
	return rc > 0 ? TORTIE_DROP_ENCAP_MTU : TORTIE_REASON_NONE;
}

/*
 * A pod's packet to a remote block routed with TORTIE_ROUTE_F_IPIP, up to (not
 * including) the redirect: tunnel, TTL, MTU, then the outer header. Returns
 *   TORTIE_PASS_ENCAP       encapsulated; send it to *uplink;
 *   TORTIE_PASS_HOST_ROUTE  its TTL runs out here: the host stack answers with Time
 *                           Exceeded, as any router would;
 *   a drop reason; for TORTIE_DROP_ENCAP_MTU, *tunnel_mtu is the largest packet the
 *   tunnel carries (the uplink's MTU less the outer header), for the ICMP answer.
 */
static __always_inline __u8 ipip_prepare4(struct __sk_buff *skb, const struct packet *pkt,
					  const struct tortie_route *route, __u32 *uplink,
					  __u32 *tunnel_mtu)
{
	__be32 saddr = 0;
	__u32 mtu = 0;
	__u8 reason;

	reason = ipip_tunnel_of(route, &saddr, uplink);
	if (reason != TORTIE_REASON_NONE)
		return reason;
	if (pkt->ttl <= 1)
		return TORTIE_PASS_HOST_ROUTE;
	reason = ipip_check_mtu(skb, *uplink, &mtu);
	*tunnel_mtu = mtu > IPIP_HLEN ? mtu - IPIP_HLEN : 0;
	if (reason != TORTIE_REASON_NONE)
		return reason;
	if (ipv4_ttl_decrement(skb, pkt->ttl, pkt->proto) < 0)
		return TORTIE_DROP_ENCAP_FAILED;
	reason = ipip_encap4(skb, saddr, route->next_hop);
	return reason == TORTIE_REASON_NONE ? TORTIE_PASS_ENCAP : reason;
}

/*
 * A packet the node itself sends to a remote block routed with IPIP, met on its way
 * out of the uplink (the kernel routed it there: the block's route points at the
 * owning node, so the Ethernet header already carries the next hop's address).
 * Encapsulated in place; no TTL change (the host stack did its own). Returns
 * TORTIE_PASS_ENCAP or a drop reason.
 */
static __always_inline __u8 ipip_encap_host4(struct __sk_buff *skb,
					     const struct tortie_route *route)
{
	__be32 saddr = 0;
	__u32 uplink = 0, mtu = 0;
	__u8 reason;

	reason = ipip_tunnel_of(route, &saddr, &uplink);
	if (reason == TORTIE_REASON_NONE)
		reason = ipip_check_mtu(skb, 0, &mtu);
	if (reason == TORTIE_REASON_NONE)
		reason = ipip_encap4(skb, saddr, route->next_hop);
	return reason == TORTIE_REASON_NONE ? TORTIE_PASS_ENCAP : reason;
}

/*
 * The IPv4 destination and protocol of a frame leaving by the uplink, or 0 when it is
 * no IPv4 packet (ARP, IPv6, a runt: the host's business).
 */
static __always_inline int uplink_peek4(struct __sk_buff *skb, struct packet *pkt)
{
	void *data, *data_end;
	struct ethhdr *eth;
	struct iphdr *iph;

	parse_pull_headers(skb);
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	eth = data;
	iph = (void *)(eth + 1);
	if ((void *)(iph + 1) > data_end || skb->vlan_present ||
	    eth->h_proto != bpf_htons(ETH_P_IP) || iph->version != 4)
		return 0;
	pkt->saddr = iph->saddr;
	pkt->daddr = iph->daddr;
	pkt->proto = iph->protocol;
	pkt->ttl = iph->ttl;
	pkt->ip_id = iph->id;
	return 1;
}

/*
 * Sends an encapsulated packet out of the uplink. No next hop is given: the kernel
 * routes the outer destination on the uplink and resolves the neighbour of whatever it
 * routes through — the other node itself on a shared segment, the underlay's gateway
 * when the nodes sit in different subnets.
 */
static __always_inline int ipip_redirect(__u32 uplink)
{
	return bpf_redirect_neigh(uplink, NULL, 0, 0);
}

/*
 * What arrived on the uplink, read without changing anything. For an IPIP packet the
 * outer addresses land in pkt (so counters and events name the sending node).
 * Returns
 *   TORTIE_REASON_NONE      IPIP for this node from a known node, outer and inner
 *                           headers whole: *outer_len is the outer header's length;
 *   TORTIE_PASS_NOT_TUNNEL  not IPIP, or IPIP addressed to another host: not ours;
 *   a drop reason.
 * The order of the checks is the order of the docs' table: source before form, so
 * anything an unknown host tunnels at this node is dropped as what it is.
 */
static __always_inline __u8 ipip_classify4(struct __sk_buff *skb, struct packet *pkt,
					   __u32 *outer_len)
{
	const struct tortie_node_config *cfg = node_config();
	struct iphdr *outer, *inner;
	void *data, *data_end;
	struct ethhdr *eth;
	__u32 ihl, tot_len, inner_len;

	parse_pull_headers(skb);
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	eth = data;
	if ((void *)(eth + 1) > data_end || skb->vlan_present ||
	    eth->h_proto != bpf_htons(ETH_P_IP))
		return TORTIE_PASS_NOT_TUNNEL;
	outer = (void *)(eth + 1);
	if ((void *)(outer + 1) > data_end || outer->protocol != IPPROTO_IPIP)
		return TORTIE_PASS_NOT_TUNNEL;

	pkt->saddr = outer->saddr;
	pkt->daddr = outer->daddr;
	pkt->proto = IPPROTO_IPIP;
	pkt->ttl = outer->ttl;
	pkt->ip_id = outer->id;
	if (cfg && cfg->underlay_ip && outer->daddr != cfg->underlay_ip)
		return TORTIE_PASS_NOT_TUNNEL;
	if (!node_is_known(outer->saddr))
		return TORTIE_DROP_IPIP_UNKNOWN_SOURCE;

	/* The outer header: as parse_ipv4 wants any header, and its checksum right (no
	 * ip_rcv has looked at it yet). */
	if (outer->version != 4 || outer->ihl < 5)
		return TORTIE_DROP_MALFORMED;
	ihl = outer->ihl * 4;
	if ((void *)outer + ihl > data_end)
		return TORTIE_DROP_MALFORMED;
	tot_len = bpf_ntohs(outer->tot_len);
	if (tot_len < ihl || tot_len > skb->len - ETH_HLEN)
		return TORTIE_DROP_MALFORMED;
	if (!ipv4_header_csum_ok(skb, ETH_HLEN, ihl))
		return TORTIE_DROP_MALFORMED;
	if (outer->frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return TORTIE_DROP_IPIP_FRAGMENT;

	/* The inner header: whole, IPv4, and no longer than what the outer one carries. */
	inner = (void *)outer + ihl;
	if ((void *)(inner + 1) > data_end || tot_len - ihl < sizeof(*inner))
		return TORTIE_DROP_MALFORMED;
	if (inner->version != 4 || inner->ihl < 5)
		return TORTIE_DROP_MALFORMED;
	inner_len = bpf_ntohs(inner->tot_len);
	if (inner_len < inner->ihl * 4u || inner_len > tot_len - ihl)
		return TORTIE_DROP_MALFORMED;

	*outer_len = ihl;
	return TORTIE_REASON_NONE;
}

/*
 * Whether the node at outer_saddr may send an inner packet from inner_saddr: its own
 * address (the node's own traffic: tortie_to_uplink encapsulates what the node sends
 * with its underlay address as source, the kernel route's `src`), or an address this
 * node routes to it — the longest match in tortie_routes is a REMOTE_BLOCK whose
 * next_hop is that node. Longest match matters: a /32 another node borrowed out of the
 * sender's block is routed to the borrower, so the block's owner cannot claim it.
 *
 * Without this, "from a known node" would say nothing about the inner packet: a pod
 * on a node that forwards (and masquerades, natOutgoing) tunnel traffic could have its
 * node carry a packet with any source — another node's pod, this node itself — past
 * the outer check, to be judged by the source it claims.
 */
static __always_inline int ipip_inner_source_ok(__be32 outer_saddr, __be32 inner_saddr)
{
	const struct tortie_route *route;

	if (inner_saddr == outer_saddr)
		return 1;
	route = route_lookup4(inner_saddr);
	return route && route->type == TORTIE_ROUTE_REMOTE_BLOCK &&
	       route->next_hop == outer_saddr;
}

/*
 * Strips the outer header checked by ipip_classify4; 0 or a negative error.
 *
 * BPF_F_ADJ_ROOM_DECAP_L3_IPV4 (kernel 6.3+) tells the kernel the remaining packet is
 * IPv4. A kernel before 6.3 does not know the flag and refuses the call with -EINVAL
 * before it changes anything; for IPv4 in IPv4 the flag only restates what skb->protocol
 * says already, so the header is stripped again without it. On 6.3+ the first call
 * does the work and the fallback is never taken.
 */
static __always_inline long ipip_decap4(struct __sk_buff *skb, __u32 outer_len)
{
	long rc = bpf_skb_adjust_room(skb, -(__s32)outer_len, BPF_ADJ_ROOM_MAC,
				      TORTIE_ADJ_ROOM_DECAP_L3_IPV4);

	if (rc == -TORTIE_EINVAL)
		rc = bpf_skb_adjust_room(skb, -(__s32)outer_len, BPF_ADJ_ROOM_MAC, 0);
	return rc;
}

#endif /* TORTIE_IPIP_H */
