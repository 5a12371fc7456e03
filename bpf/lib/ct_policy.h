/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ct_policy.h — where conntrack meets policy: revoking tracked flows whose endpoints'
 * policy changed.
 */
#ifndef TORTIE_CT_POLICY_H
#define TORTIE_CT_POLICY_H

#include "compat.h"
#include "ct.h"
#include "endpoint.h"
#include "parse.h"
#include "policy.h"

/* The request type a query reply answers (echo reply -> echo request, ...). */
static __always_inline __u8 icmp_request_of(__u8 type)
{
	switch (type) {
	case ICMP_ECHOREPLY:
		return ICMP_ECHO;
	case ICMP_TIMESTAMPREPLY:
		return ICMP_TIMESTAMP;
	case ICMP_INFO_REPLY:
		return ICMP_INFO_REQUEST;
	case ICMP_ADDRESSREPLY:
		return ICMP_ADDRESS;
	default:
		return type;
	}
}

/*
 * The policy "port" of the flow's original direction. A packet travelling that way
 * carries it; a reply carries the flow's ports swapped (the forward tuple holds them),
 * and an ICMP query reply stands for the request it answers.
 */
static __always_inline __u16 ct_flow_policy_port(const struct tortie_ct_key *flow,
						 const struct packet *pkt, int reply)
{
	__u16 port = bpf_ntohs(pkt->dport);

	if (!reply)
		return port;
	if (proto_has_ports(flow->proto))
		return bpf_ntohs(flow->dport);
	if (flow->proto == IPPROTO_ICMP && icmp_is_query(port >> 8))
		return (__u16)icmp_request_of(port >> 8) << 8;
	return port;
}

/*
 * Policy is decided on a flow's first packet, but a flow must not outlive a policy
 * change that would deny it. The entry remembers, for each side judged here, the
 * endpoint's policy_rev at the time; when either endpoint's rev moved (or the
 * endpoint is gone), the flow's original direction is judged again against the
 * current sets — whichever direction this packet travels. Still allowed: the new
 * revs are stored and the packet goes on. Denied: the entry is deleted and the packet
 * dropped as TORTIE_DROP_POLICY_REVOKED, blamed on the endpoint whose set denied it.
 *
 * known: the endpoint the caller looked up already for known_ifindex, the interface it
 * judges on (NULL: none). A side behind that interface takes it rather than a second
 * lookup of the same key in the same run: one hash lookup less per tracked packet.
 *
 * Returns TORTIE_REASON_NONE or TORTIE_DROP_POLICY_REVOKED.
 */
static __always_inline const struct tortie_endpoint *
ct_side_endpoint(__u32 ifindex, __u32 known_ifindex, const struct tortie_endpoint *known)
{
	if (ifindex == known_ifindex && known)
		return known;
	return endpoint_of(ifindex);
}

static __always_inline __u8 ct_revalidate4(struct pkt_ctx *ctx, struct tortie_ct_entry *e,
					   const struct tortie_ct_key *flow, int reply,
					   __u32 known_ifindex,
					   const struct tortie_endpoint *known)
{
	const struct tortie_endpoint *src = NULL, *dst = NULL;
	struct policy_decision d = {};
	__u32 rule_id = e->rule_id;
	int stale = 0;
	__u16 port, sport;

	if (e->src_ifindex) {
		src = ct_side_endpoint(e->src_ifindex, known_ifindex, known);
		stale |= !src || src->policy_rev != e->src_rev;
	}
	if (e->dst_ifindex) {
		dst = ct_side_endpoint(e->dst_ifindex, known_ifindex, known);
		stale |= !dst || dst->policy_rev != e->dst_rev;
	}
	if (!stale)
		return TORTIE_REASON_NONE;

	port = ct_flow_policy_port(flow, &ctx->pkt, reply);
	/* The original sender's source port: the forward tuple's (read for port protocols only). */
	sport = bpf_ntohs(flow->sport);
	if (e->src_ifindex) {
		if (!src)
			goto revoke;
		if (!policy_can_egress4(ctx, src, flow->daddr, flow->proto, sport, port, &d)) {
			ctx_blame(ctx, src->id, TORTIE_DIR_FROM_POD);
			goto revoke_by_policy;
		}
		rule_id = d.rule_id;
	}
	if (e->dst_ifindex) {
		if (!dst)
			goto revoke;
		if (!policy_can_ingress4(ctx, dst, flow->saddr, flow->proto, sport, port, &d)) {
			ctx_blame(ctx, dst->id, TORTIE_DIR_TO_POD);
			goto revoke_by_policy;
		}
		rule_id = d.rule_id;
	}
	if (src)
		e->src_rev = src->policy_rev;
	if (dst)
		e->dst_rev = dst->policy_rev;
	e->rule_id = rule_id;
	return TORTIE_REASON_NONE;

revoke_by_policy:
	ctx->rule_id = d.rule_id;
	ctx->action = d.action;
revoke:
	bpf_map_delete_elem(&tortie_ct, flow);
	return TORTIE_DROP_POLICY_REVOKED;
}

#endif /* TORTIE_CT_POLICY_H */
