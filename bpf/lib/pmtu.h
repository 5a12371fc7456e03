/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * pmtu.h — path MTU discovery through the tunnel: a pod's packet with DF set that does
 * not fit the uplink once encapsulated is answered with ICMP Destination Unreachable,
 * Fragmentation Needed (RFC 792, RFC 1191: type 3 code 4, the next-hop MTU in the
 * second word), as the kernel's ipip device would answer, instead of vanishing. The
 * sender's stack lowers its path MTU for the destination and sends smaller packets
 * (TCP lowers its segment size; `ping -M do` says "Frag needed and DF set (mtu = N)").
 *
 * The packet itself becomes the answer: its first 28 bytes (an IPv4 header without
 * options and the first 8 bytes of its payload, what RFC 792 asks to quote) are kept,
 * a new IPv4 and ICMP header go in front, the rest is cut off, the MACs swap, and the
 * answer goes straight back into the sender's namespace (bpf_redirect_peer): it is
 * the node's word about the pod's own packet, not traffic to be judged by policy.
 *
 * No answer (the packet is dropped as TORTIE_DROP_ENCAP_MTU, as before) for: a packet
 * without DF (the pod chose to let routers fragment, and nothing here fragments), a
 * header with options, an ICMP error (RFC 1122 3.2.2: never an error about an error),
 * a non-first fragment, or a packet the kernel would not let us rewrite. The answers
 * are not rate limited: they go back to the only sender that asked for them, one per
 * oversized packet it sent.
 */
#ifndef TORTIE_PMTU_H
#define TORTIE_PMTU_H

#include "compat.h"
#include "ipip.h"
#include "packet.h"
#include "parse.h"

#define PMTU_QUOTE_LEN 28 /* an IPv4 header without options + 8 bytes of payload */
#define PMTU_ICMP_TTL 64
#define PMTU_IPTOS_INTERNETCONTROL 0xc0 /* what Linux puts in its ICMP errors' TOS */

/* The answer after the Ethernet header; all 4-byte multiples for bpf_csum_diff. */
struct pmtu_answer {
	struct iphdr ip;
	struct icmphdr icmp;
	__u8 quote[PMTU_QUOTE_LEN];
};

static __always_inline __sum16 csum_fold32(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__sum16)~sum;
}

/* Whether the pod's packet may be answered (see the top of this file). */
static __always_inline int pmtu_answerable(const struct packet *pkt, const struct iphdr *iph)
{
	if (iph->ihl != 5 || !(iph->frag_off & bpf_htons(IP_DF)))
		return 0;
	if (pkt->frag == FRAG_LATER)
		return 0;
	return !(pkt->proto == IPPROTO_ICMP && icmp_is_error(bpf_ntohs(pkt->dport) >> 8));
}

/*
 * Turns the pod's packet into "fragmentation needed, next-hop MTU mtu" from `from` (an
 * address of this node) back to its source. Returns 0, or -1 when the packet does not
 * qualify or the kernel refused a step — in which case it may be half rewritten and
 * must be dropped, never sent on.
 */
static __always_inline int pmtu_answer4(struct __sk_buff *skb, const struct packet *pkt,
					__u32 mtu, __be32 from)
{
	struct pmtu_answer a = {};
	struct iphdr *quoted = (struct iphdr *)a.quote;
	__u8 eth[2 * ETH_ALEN];
	__u8 swapped[2 * ETH_ALEN];

	if (bpf_skb_load_bytes(skb, 0, eth, sizeof(eth)) < 0 ||
	    bpf_skb_load_bytes(skb, ETH_HLEN, a.quote, sizeof(a.quote)) < 0)
		return -1;
	if (!pmtu_answerable(pkt, quoted))
		return -1;

	a.icmp.type = ICMP_DEST_UNREACH;
	a.icmp.code = ICMP_FRAG_NEEDED;
	a.icmp.un.frag.mtu = bpf_htons(mtu);
	a.icmp.checksum = csum_fold32(bpf_csum_diff(NULL, 0, (__be32 *)&a.icmp,
						    sizeof(a.icmp) + sizeof(a.quote), 0));

	a.ip.version = 4;
	a.ip.ihl = 5;
	a.ip.tos = PMTU_IPTOS_INTERNETCONTROL;
	a.ip.tot_len = bpf_htons(sizeof(a));
	a.ip.id = (__be16)bpf_get_prandom_u32();
	a.ip.ttl = PMTU_ICMP_TTL;
	a.ip.protocol = IPPROTO_ICMP;
	a.ip.saddr = from;
	a.ip.daddr = quoted->saddr;
	a.ip.check = ipv4_header_csum(&a.ip);

	__builtin_memcpy(swapped, eth + ETH_ALEN, ETH_ALEN);
	__builtin_memcpy(swapped + ETH_ALEN, eth, ETH_ALEN);

	if (bpf_skb_change_tail(skb, ETH_HLEN + sizeof(a), 0) < 0)
		return -1;
	if (bpf_skb_store_bytes(skb, 0, swapped, sizeof(swapped), 0) < 0 ||
	    bpf_skb_store_bytes(skb, ETH_HLEN, &a, sizeof(a), 0) < 0)
		return -1;
	return 0;
}

#endif /* TORTIE_PMTU_H */
