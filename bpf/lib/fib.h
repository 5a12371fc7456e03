/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * fib.h — host routing in BPF for a pod's packet to another node without encapsulation
 * (ipipMode Never, CrossSubnet within a subnet): the kernel's FIB and neighbour tables
 * choose the way out, the program sends the packet there itself, and the host stack
 * (ip_rcv, the forwarding path, netfilter's hooks) never sees it.
 *
 * The FIB is asked as the forwarding path would ask it (bpf_fib_lookup with the pod
 * veth as input interface, so policy rules keyed on iif or TOS match as they did), and
 * answers with the egress interface and, when the next hop's neighbour entry is
 * resolved, both MAC addresses: the program writes them and redirects. An unresolved
 * neighbour is left to bpf_redirect_neigh with the next hop the FIB named, which
 * resolves it (ARP) and queues the packet meanwhile. Whatever the FIB does not answer
 * with a way out — too big for the egress MTU (the host stack fragments it or answers
 * "fragmentation needed"), unreachable, forwarding off, an encapsulating route — goes
 * to the host stack as before, which does what a router does about it.
 */
#ifndef TORTIE_FIB_H
#define TORTIE_FIB_H

#include "compat.h"
#include "packet.h"
#include "route.h"

#define TORTIE_AF_INET 2 /* no socket header here */

/* Where fib_prepare4 sends the packet: ifindex, and the next hop when no MAC is known. */
struct fib_way {
	__u32 ifindex;
	__be32 next_hop; /* 0: MACs written, plain redirect */
};

/*
 * Looks the packet up in the kernel's FIB and, when it has a way out, lowers the TTL
 * and writes the MACs the FIB gave. Returns
 *   TORTIE_PASS_FIB         *way says where: send it with fib_redirect;
 *   TORTIE_PASS_HOST_ROUTE  the host stack's business (TTL running out here, no way
 *                           out, too big, or the header could not be rewritten:
 *                           nothing was changed then).
 */
static __always_inline __u8 fib_prepare4(struct __sk_buff *skb, const struct packet *pkt,
					 struct fib_way *way)
{
	struct bpf_fib_lookup fib = {};
	__u8 macs[2 * ETH_ALEN];
	long rc;

	if (pkt->ttl <= 1)
		return TORTIE_PASS_HOST_ROUTE;
	fib.family = TORTIE_AF_INET;
	fib.tos = pkt->tos;
	fib.l4_protocol = pkt->proto;
	fib.sport = pkt->sport;
	fib.dport = pkt->dport;
	fib.tot_len = 0; /* 0: the kernel checks the skb itself against the MTU (GSO aware) */
	fib.ipv4_src = pkt->saddr;
	fib.ipv4_dst = pkt->daddr;
	fib.ifindex = skb->ifindex;

	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		return TORTIE_PASS_HOST_ROUTE;
	if (ipv4_ttl_decrement(skb, pkt->ttl, pkt->proto) < 0)
		return TORTIE_PASS_HOST_ROUTE;
	way->ifindex = fib.ifindex;
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		way->next_hop = fib.ipv4_dst; /* the gateway, or the destination on-link */
		return TORTIE_PASS_FIB;
	}
	/* dmac then smac: the first 12 bytes of the Ethernet header, in one store. */
	__builtin_memcpy(macs, fib.dmac, ETH_ALEN);
	__builtin_memcpy(macs + ETH_ALEN, fib.smac, ETH_ALEN);
	if (bpf_skb_store_bytes(skb, 0, macs, sizeof(macs), 0) < 0) {
		way->next_hop = fib.ipv4_dst;
		return TORTIE_PASS_FIB; /* the TTL is down already: let the neighbour code write them */
	}
	way->next_hop = 0;
	return TORTIE_PASS_FIB;
}

static __always_inline int fib_redirect(const struct fib_way *way)
{
	struct bpf_redir_neigh nh = {};

	if (!way->next_hop)
		return bpf_redirect(way->ifindex, 0);
	nh.nh_family = TORTIE_AF_INET;
	nh.ipv4_nh = way->next_hop;
	return bpf_redirect_neigh(way->ifindex, &nh, sizeof(nh), 0);
}

#endif /* TORTIE_FIB_H */
