/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * route.h — where a pod's packet goes: tortie_routes (LPM) by destination, and local
 * delivery straight into the receiving pod.
 */
#ifndef TORTIE_ROUTE_H
#define TORTIE_ROUTE_H

#include "compat.h"
#include "maps.h"

static __always_inline struct tortie_route *route_lookup4(__be32 daddr)
{
	struct tortie_route_key key = { .prefixlen = 32, .addr = daddr };

	return bpf_map_lookup_elem(&tortie_routes, &key);
}

/*
 * The node is a router: a packet it forwards loses one from its TTL, and the header
 * checksum follows (RFC 1624, eqn. 3; the TTL shares a 16-bit word with the protocol).
 * TTL, protocol and checksum are written in one store, so a refused write leaves the
 * header as it came: never a checksum for a TTL that was not written, which the host
 * stack (where a packet goes when this fails) would drop without a word. The caller
 * makes sure ttl > 1. Returns 0, or -1 when the kernel refused the read or the write.
 */
static __always_inline int ipv4_ttl_decrement(struct __sk_buff *skb, __u8 ttl, __u8 proto)
{
	struct {
		__u8 ttl;
		__u8 protocol;
		__sum16 check;
	} hdr;
	__u32 off = ETH_HLEN + offsetof(struct iphdr, ttl);
	__be16 old_word = bpf_htons(((__u16)ttl << 8) | proto);
	__be16 new_word = bpf_htons(((__u16)(ttl - 1) << 8) | proto);
	__u32 sum;

	if (bpf_skb_load_bytes(skb, off, &hdr, sizeof(hdr)) < 0)
		return -1;
	sum = (__u16)~hdr.check + (__u16)~old_word + new_word;
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	hdr.ttl = ttl - 1;
	hdr.check = (__sum16)~sum;
	return bpf_skb_store_bytes(skb, off, &hdr, sizeof(hdr), 0) < 0 ? -1 : 0;
}

/*
 * Deliver to a pod on this node: the TTL drops by one; then bpf_redirect_peer hands the
 * packet to the pod end of the receiver's veth, skipping the host stack and the host
 * end's egress hook (its ingress policy was judged by the caller). A packet whose TTL
 * would expire goes to the host stack instead, which answers with ICMP Time Exceeded as
 * any router would.
 *
 * The Ethernet header is left as the sender wrote it (destination: the gateway MAC, or
 * the uplink's MAC for a decapsulated packet): the peer redirect scrubs the skb to
 * PACKET_HOST, so the receiving stack accepts it.
 */
static __always_inline int redirect_to_local_endpoint(struct __sk_buff *skb, __u32 ifindex,
						      __u8 ttl, __u8 proto)
{
	if (ttl <= 1)
		return TC_ACT_OK;
	if (ipv4_ttl_decrement(skb, ttl, proto) < 0)
		return TC_ACT_OK; /* could not rewrite: let the host stack route it */
	return bpf_redirect_peer(ifindex, 0);
}

#endif /* TORTIE_ROUTE_H */
