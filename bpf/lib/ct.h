/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ct.h — conntrack: one tortie_ct entry per flow, keyed by the flow's forward tuple
 * (the direction of its first packet). A packet finds its flow by its own tuple
 * (original direction) or by its reversed tuple (reply). Entries expire by idle
 * time; an expired entry is treated as absent and overwritten by the next allowed
 * packet (the LRU reclaims the rest).
 */
#ifndef TORTIE_CT_H
#define TORTIE_CT_H

#include "compat.h"
#include "config.h"
#include "maps.h"
#include "node.h"
#include "packet.h"
#include "parse.h"
#include "route.h"

/*
 * The conntrack tuple of a packet. ICMP query messages use their identifier as both
 * ports and carry their query tag (icmp_query_tag: the request type, marked in a
 * reply), so a reply's reversed tuple is the tuple of the request it answers — and only
 * of a request of that type, sent the other way; other ICMP messages and protocols
 * without ports use 0.
 */
static __always_inline void ct_tuple_of(const struct packet *pkt, struct tortie_ct_key *key)
{
	key->saddr = pkt->saddr;
	key->daddr = pkt->daddr;
	key->proto = pkt->proto;
	key->sport = pkt->sport;
	key->dport = pkt->dport;
	if (pkt->proto == IPPROTO_ICMP) {
		key->dport = pkt->sport;
		key->icmp_query = icmp_query_tag(bpf_ntohs(pkt->dport) >> 8);
	}
}

static __always_inline void ct_reverse(const struct tortie_ct_key *key, struct tortie_ct_key *rev)
{
	rev->saddr = key->daddr;
	rev->daddr = key->saddr;
	rev->sport = key->dport;
	rev->dport = key->sport;
	rev->proto = key->proto;
	rev->icmp_query = key->icmp_query ? key->icmp_query ^ TORTIE_CT_ICMP_REPLY : 0;
}

static __always_inline __u64 ct_timeout_of(const struct tortie_ct_entry *e, __u8 proto)
{
	if (proto != IPPROTO_TCP)
		return tortie_cfg_ct_other_timeout_ns;
	switch (e->state) {
	case TORTIE_CT_SYN_SENT:
		return tortie_cfg_ct_syn_timeout_ns;
	case TORTIE_CT_ESTABLISHED:
		return tortie_cfg_ct_established_timeout_ns;
	default:
		return tortie_cfg_ct_closing_timeout_ns;
	}
}

/*
 * Whether the entry has been idle longer than its timeout. The idle time is signed: a
 * program takes `now` when its judgement starts, and another CPU may refresh the same
 * entry (a packet the other way: each node's entry is met by both pods' traffic, on
 * both CPUs) before this one reads it, so last_seen_ns can be a little later than
 * `now`. Unsigned, that difference wrapped to ~2^64 ns and a live flow counted as
 * expired: its packet was judged as a new flow — a TCP segment dropped as
 * TORTIE_DROP_CT_TCP_NOT_SYN, several per second under an iperf3 stream across nodes.
 * An entry touched after `now` is live.
 */
static __always_inline int ct_is_expired(const struct tortie_ct_entry *e, __u8 proto, __u64 now)
{
	return (__s64)(now - e->last_seen_ns) > (__s64)ct_timeout_of(e, proto);
}

static __always_inline int tcp_is_syn_only(const struct packet *pkt)
{
	return pkt->proto == IPPROTO_TCP &&
	       (pkt->tcp_flags & (TCP_FLAG_SYN_BIT | TCP_FLAG_ACK_BIT)) == TCP_FLAG_SYN_BIT;
}

/*
 * Whether a TCP segment may open a flow: a bare SYN (no ACK, RST or FIN). Anything
 * else belongs to a flow that must already be tracked.
 */
static __always_inline int tcp_opens_flow(const struct packet *pkt)
{
	return (pkt->tcp_flags & (TCP_FLAG_SYN_BIT | TCP_FLAG_ACK_BIT | TCP_FLAG_RST_BIT |
				  TCP_FLAG_FIN_BIT)) == TCP_FLAG_SYN_BIT;
}

/*
 * The live entry of the packet's flow, or NULL. *flow receives the flow's forward
 * tuple (the packet's own tuple when NULL is returned, ready for ct_create4) and
 * *reply whether the packet travels against it. A new SYN on a CLOSED flow (a port
 * reused within the closing timeout) starts a new flow.
 */
static __always_inline struct tortie_ct_entry *ct_lookup4(const struct packet *pkt, __u64 now,
							  struct tortie_ct_key *flow, int *reply)
{
	struct tortie_ct_key rev = {};
	struct tortie_ct_entry *e;

	*reply = 0;
	ct_tuple_of(pkt, flow);
	e = bpf_map_lookup_elem(&tortie_ct, flow);
	if (e && !ct_is_expired(e, pkt->proto, now) &&
	    !(e->state == TORTIE_CT_CLOSED && tcp_is_syn_only(pkt)))
		return e;

	ct_reverse(flow, &rev);
	e = bpf_map_lookup_elem(&tortie_ct, &rev);
	if (e && !ct_is_expired(e, pkt->proto, now)) {
		*flow = rev;
		*reply = 1;
		return e;
	}
	return NULL;
}

/* The address pods use as their gateway (onlink default route). */
#define TORTIE_POD_GATEWAY bpf_htonl(0xa9fe0101) /* 169.254.1.1 */

/*
 * Who may plausibly send an ICMP error about a flow: the quoted packet's destination
 * (the flow's peer, answering), or a router on the path — this node (any address
 * tortie_routes holds as HOST, or the pods' gateway 169.254.1.1) or a known node
 * (tortie_nodes: the underlay address a remote node's own packets carry). Anyone else
 * quoting a live flow is a third party, and its error is judged by policy.
 */
static __always_inline int ct_error_source_plausible4(const struct packet *pkt)
{
	struct tortie_route *route;

	if (pkt->saddr == pkt->inner.daddr || pkt->saddr == TORTIE_POD_GATEWAY)
		return 1;
	if (node_is_known(pkt->saddr))
		return 1;
	route = route_lookup4(pkt->saddr);
	return route && route->type == TORTIE_ROUTE_HOST;
}

/*
 * An ICMP error is related when the header it quotes belongs to a live flow, in
 * either direction, it travels back to that quoted packet's sender, and it comes from
 * the flow's peer or a router on the path (ct_error_source_plausible4).
 */
static __always_inline int ct_is_related4(const struct packet *pkt, __u64 now)
{
	struct tortie_ct_key rev = {};
	struct tortie_ct_entry *e;

	if (!pkt->has_inner || pkt->inner.saddr != pkt->daddr)
		return 0;
	if (!ct_error_source_plausible4(pkt))
		return 0;
	e = bpf_map_lookup_elem(&tortie_ct, &pkt->inner);
	if (e && !ct_is_expired(e, pkt->inner.proto, now))
		return 1;
	ct_reverse(&pkt->inner, &rev);
	e = bpf_map_lookup_elem(&tortie_ct, &rev);
	return e && !ct_is_expired(e, pkt->inner.proto, now);
}

/*
 * A packet that found no live flow: TORTIE_PASS_CT_RELATED for a related ICMP error,
 * TORTIE_DROP_CT_TCP_NOT_SYN for a TCP segment that is not a bare SYN, else
 * TORTIE_REASON_NONE (a new flow: judge it by policy).
 *
 * Why no mid-stream pick-up: when a flow is revoked its entry goes, and the peer's
 * next segment (an ACK, data, a retransmit) would otherwise be judged as a new flow the
 * other way — by the other side's policy, which may well allow it — and from then on
 * the revoked side's packets would pass as its replies. Only a SYN, judged by the
 * policy of the side that sends it, opens a flow. Established flows survive an agent
 * restart (the conntrack map is pinned and adopted); a flow whose entry expired or was
 * evicted must reconnect, as under Calico's BPF dataplane.
 */
static __always_inline __u8 ct_untracked4(const struct packet *pkt, __u64 now)
{
	if (ct_is_related4(pkt, now))
		return TORTIE_PASS_CT_RELATED;
	if (pkt->proto == IPPROTO_TCP && pkt->frag != FRAG_LATER && !tcp_opens_flow(pkt))
		return TORTIE_DROP_CT_TCP_NOT_SYN;
	return TORTIE_REASON_NONE;
}

/*
 * The TCP state a flow starts in: SYN_SENT for the bare SYN that opens a TCP flow
 * (ct_untracked4 lets no other segment get here from the pod paths).
 */
static __always_inline __u8 ct_initial_state(const struct packet *pkt, __u8 *flags)
{
	__u8 f = pkt->tcp_flags;

	if (pkt->proto != IPPROTO_TCP)
		return TORTIE_CT_ESTABLISHED;
	if (f & TCP_FLAG_RST_BIT)
		return TORTIE_CT_CLOSED;
	if (f & TCP_FLAG_FIN_BIT) {
		*flags |= TORTIE_CT_F_FIN_FWD;
		return TORTIE_CT_CLOSING;
	}
	if (tcp_is_syn_only(pkt))
		return TORTIE_CT_SYN_SENT;
	return TORTIE_CT_ESTABLISHED;
}

struct ct_sides {
	__u32 src_ifindex; /* local sender judged here (its egress), else 0 */
	__u32 src_rev;
	__u32 dst_ifindex; /* local receiver judged here (its ingress), else 0 */
	__u32 dst_rev;
	__u32 rule_id;
};

static __always_inline int __ct_count_new(__u32 ep_id)
{
	__u64 *n = bpf_map_lookup_elem(&tortie_ct_new, &ep_id);

	if (!n) {
		__u64 zero = 0;

		/* EEXIST: another CPU created it first; look up again either way. */
		bpf_map_update_elem(&tortie_ct_new, &ep_id, &zero, BPF_NOEXIST);
		n = bpf_map_lookup_elem(&tortie_ct_new, &ep_id);
		if (!n)
			return -1;
	}
	*n += 1; /* per-CPU value: no other CPU writes it */
	return 0;
}

/*
 * Whether the sending pod ep_id may open one more flow now (tortie_cfg_ct_budget_*):
 * 1 yes (and the budget is charged), 0 no. GCRA: *tat is when the bucket would be full
 * again; a flow is admitted while tat lies at most (burst - 1) intervals ahead of now,
 * and each admitted flow moves tat one interval on. O(1): one lookup, one write.
 *
 * Two CPUs charging the same pod at the same instant may both read the old tat and
 * admit one flow each for one interval's charge: at most one flow more per CPU, never
 * fewer. Not worth an atomic: the budget bounds churn, it is not a quota.
 */
static __always_inline int ct_budget_take(__u32 ep_id, __u64 now)
{
	__u64 interval = tortie_cfg_ct_budget_interval_ns;
	__u64 slack, start, *tat;

	if (interval == 0)
		return 1;
	slack = interval * (tortie_cfg_ct_budget_burst - 1);
	tat = bpf_map_lookup_elem(&tortie_ct_rate, &ep_id);
	if (!tat) {
		__u64 next = now + interval;

		/* A first flow (or a budget the LRU evicted): a full bucket, one flow charged. */
		bpf_map_update_elem(&tortie_ct_rate, &ep_id, &next, BPF_ANY);
		return 1;
	}
	start = *tat > now ? *tat : now;
	if (start - now > slack)
		return 0;
	*tat = start + interval;
	return 1;
}

/*
 * Count one created entry for ep_id (tortie_ct_new). When that map is full the entry
 * counts under 0, so the node's total stays exact.
 */
static __always_inline void ct_count_new(__u32 ep_id)
{
	if (__ct_count_new(ep_id) == 0 || ep_id == 0)
		return;
	__ct_count_new(0);
}

/*
 * Record a new flow, counted for ep_id (the endpoint that caused it: the local sender,
 * else the local receiver). A failed insert (memory pressure; the LRU never runs full)
 * is not a reason to drop a packet policy allowed: the next packet is judged again.
 */
static __always_inline void ct_create4(const struct tortie_ct_key *flow, const struct packet *pkt,
				       const struct ct_sides *sides, __u64 now, __u32 ep_id)
{
	struct tortie_ct_entry e = {
		.created_ns = now,
		.last_seen_ns = now,
		.src_ifindex = sides->src_ifindex,
		.src_rev = sides->src_rev,
		.dst_ifindex = sides->dst_ifindex,
		.dst_rev = sides->dst_rev,
		.rule_id = sides->rule_id,
	};

	/* A query reply answers a request this node never tracked: it opens nothing. */
	if (flow->icmp_query & TORTIE_CT_ICMP_REPLY)
		return;
	e.state = ct_initial_state(pkt, &e.flags);
	if (bpf_map_update_elem(&tortie_ct, flow, &e, BPF_ANY) == 0)
		ct_count_new(ep_id);
}

/* A packet of a tracked flow went through: keep the flow alive, follow TCP's state. */
static __always_inline void ct_refresh4(struct tortie_ct_entry *e, const struct packet *pkt,
					int reply, __u64 now)
{
	__u8 f = pkt->tcp_flags;

	e->last_seen_ns = now;
	if (reply)
		e->flags |= TORTIE_CT_F_SEEN_REPLY;
	if (pkt->proto != IPPROTO_TCP)
		return;
	if (reply && e->state == TORTIE_CT_SYN_SENT)
		e->state = TORTIE_CT_ESTABLISHED;
	if (f & TCP_FLAG_FIN_BIT) {
		e->flags |= reply ? TORTIE_CT_F_FIN_REV : TORTIE_CT_F_FIN_FWD;
		if ((e->flags & TORTIE_CT_F_FIN_FWD) && (e->flags & TORTIE_CT_F_FIN_REV))
			e->state = TORTIE_CT_CLOSED;
		else if (e->state < TORTIE_CT_CLOSING)
			e->state = TORTIE_CT_CLOSING;
	}
	if (f & TCP_FLAG_RST_BIT)
		e->state = TORTIE_CT_CLOSED;
}

#endif /* TORTIE_CT_H */
