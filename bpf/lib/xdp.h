/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * xdp.h — the uplink's deny list in XDP: read the IPv4 source straight from the frame,
 * look it up once in tortie_xdp_deny (longest prefix), and account a drop the way the
 * tc programs do (lib/metrics.h, lib/events.h). Kept small: this runs for every frame
 * the uplink receives, before the kernel has spent anything on it.
 */
#ifndef TORTIE_XDP_H
#define TORTIE_XDP_H

#include "compat.h"
#include "events.h"
#include "metrics.h"
#include "packet.h"
#include "xdp_maps.h"

/*
 * At most one drop event per CPU per interval (ns; 0 = every drop). A flood is what
 * the deny list exists for: reporting each of millions of drops per second would cost
 * more than the drop itself and bury the ring buffer (and `tortie monitor`) under one
 * source. The counters stay exact; the events are a sample, and a trickle of drops
 * (slower than one per interval) is reported whole.
 */
volatile const __u64 tortie_cfg_xdp_event_interval_ns = 1000000; /* 1 ms */

/*
 * The frame's IPv4 header, or NULL: not IPv4 over Ethernet (no VLAN tags), or too
 * short to hold a whole header. Such frames are not the deny list's business: they
 * pass, and tc ingress on the uplink judges and counts them.
 */
static __always_inline struct iphdr *xdp_ipv4_header(struct xdp_md *xdp)
{
	void *data = (void *)(long)xdp->data;
	void *data_end = (void *)(long)xdp->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + ETH_HLEN;

	if ((void *)(ip + 1) > data_end)
		return 0;
	if (eth->h_proto != bpf_htons(ETH_P_IP) || ip->version != 4 || ip->ihl < 5)
		return 0;
	return ip;
}

/* The Deny rule whose prefix holds saddr (longest match), or NULL. One trie walk. */
static __always_inline const struct tortie_xdp_deny_val *xdp_deny_lookup(__be32 saddr)
{
	struct tortie_xdp_deny_key key = { .prefixlen = 32, .addr = saddr };

	return bpf_map_lookup_elem(&tortie_xdp_deny, &key);
}

/* Whether this CPU may report a drop now (and, if so, not again for an interval). */
static __always_inline int xdp_event_due(void)
{
	__u32 zero = 0;
	__u64 *next;
	__u64 now;

	if (tortie_cfg_xdp_event_interval_ns == 0)
		return 1;
	next = bpf_map_lookup_elem(&tortie_xdp_evrl, &zero);
	if (!next)
		return 0;
	now = bpf_ktime_get_ns();
	if (now < *next)
		return 0;
	*next = now + tortie_cfg_xdp_event_interval_ns;
	return 1;
}

/*
 * The event of a drop: addresses, protocol and (for a first fragment or a whole
 * datagram whose header is in the frame) the ports, as the tc programs report them.
 * Cold path: only reached when xdp_event_due said so.
 */
static __noinline void xdp_report_drop(struct xdp_md *xdp, struct iphdr *ip, __u32 rule_id)
{
	void *data_end = (void *)(long)xdp->data_end;
	struct pkt_ctx ctx = {};
	__u32 ihl = ip->ihl * 4;
	void *l4 = (void *)ip + ihl;

	ctx.ifindex = xdp->ingress_ifindex;
	ctx.pkt.saddr = ip->saddr;
	ctx.pkt.daddr = ip->daddr;
	ctx.pkt.proto = ip->protocol;
	if ((ip->frag_off & bpf_htons(IP_OFFSET)) == 0 && ihl >= 20 && ihl <= 60 &&
	    l4 + 4 <= data_end) {
		if (ip->protocol == IPPROTO_TCP || ip->protocol == IPPROTO_UDP ||
		    ip->protocol == IPPROTO_UDPLITE || ip->protocol == IPPROTO_SCTP) {
			ctx.pkt.sport = ((__be16 *)l4)[0];
			ctx.pkt.dport = ((__be16 *)l4)[1];
		} else if (ip->protocol == IPPROTO_ICMP) {
			__u8 *icmp = l4;

			ctx.pkt.dport = bpf_htons(((__u16)icmp[0] << 8) | icmp[1]);
		}
	}
	event_emit(&ctx, TORTIE_EVENT_DROP, 0, TORTIE_DIR_FROM_UPLINK, TORTIE_DROP_XDP_DENY,
		   TORTIE_ACT_DENY, rule_id);
}

/*
 * A deny-listed source: counted (endpoint 0, the uplink's direction, its own reason:
 * the same per-CPU counters as every tc drop) and reported as sampled above.
 */
static __always_inline int xdp_drop_denied(struct xdp_md *xdp, struct iphdr *ip, __u32 rule_id)
{
	metrics_count(0, TORTIE_DROP_XDP_DENY, TORTIE_DIR_FROM_UPLINK,
		      (__u32)(xdp->data_end - xdp->data));
	if (tortie_cfg_drop_events && xdp_event_due())
		xdp_report_drop(xdp, ip, rule_id);
	return XDP_DROP;
}

#endif /* TORTIE_XDP_H */
