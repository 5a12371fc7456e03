/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * host_endpoint.h — the node's own traffic through its uplink, judged by the uplink's
 * host endpoint (docs/host-endpoints.md): packets arriving for the node itself by its
 * ingress set, packets the node sends by its egress set. The host endpoint is an entry
 * of tortie_ifaces under the uplink's ifindex, like a pod's under its veth's, so its
 * sets, revision and conntrack sides work as a pod's do: conntrack is the pod path's
 * (one table), a flow records the uplink as the side that judged it, and a policy
 * change revalidates it (ct_policy.h). The failsafe ports are the first rules of both
 * sets (the compiler puts them before every policy), so nothing here knows them.
 *
 * Why a TCP segment of no tracked flow is judged rather than dropped: the node's
 * connections (BGP, etcd, SSH) exist before a host endpoint does, and before an
 * agent's first start; a pod's flows cannot (its policy is in place before it runs).
 * Such a segment is judged as a new flow in the packet's own direction, and, if that
 * side's policy denies it, in the other direction by the other set — the flow may have
 * been opened by either end — and tracked as the direction that allowed it. So an
 * outbound BGP session to a peer's port 179 is picked up by its first inbound segment
 * as well as by its first outbound one.
 */
#ifndef TORTIE_HOST_ENDPOINT_H
#define TORTIE_HOST_ENDPOINT_H

#include "compat.h"
#include "ct.h"
#include "endpoint.h"
#include "finish.h"
#include "judge.h"
#include "policy.h"

/* The host endpoint of the uplink behind ifindex, or NULL (a pod's entry never is one). */
static __always_inline struct tortie_endpoint *host_endpoint_of(__u32 ifindex)
{
	struct tortie_endpoint *ep = endpoint_of(ifindex);

	return ep && (ep->flags & TORTIE_EP_F_HOST) ? ep : NULL;
}

/* The host endpoint's verdict on one direction of a flow (dir: as the packet travels). */
static __always_inline int hep_policy_allows4(const struct pkt_ctx *ctx,
					      const struct tortie_endpoint *hep, int to_host,
					      __be32 peer, __u8 proto, __u16 sport, __u16 dport,
					      struct policy_decision *d)
{
	policy_lookup4(to_host ? hep->ingress_set : hep->egress_set, peer, proto, sport, dport, d);
	policy_report(ctx, hep->id, to_host ? TORTIE_DIR_FROM_UPLINK : TORTIE_DIR_TO_UPLINK, d);
	return d->reason == TORTIE_PASS_POLICY;
}

/*
 * A packet between the node itself and the uplink, judged by the uplink's host
 * endpoint hep: to_host 1 for a packet arriving for the node (tc ingress), 0 for one
 * the node sends (tc egress). Returns the pass reason, or a drop reason blamed on the
 * host endpoint.
 */
static __always_inline __u8 judge_host4(struct pkt_ctx *ctx, const struct tortie_endpoint *hep,
					int to_host)
{
	struct packet *pkt = &ctx->pkt;
	struct policy_decision d = {};
	struct judgement j = {};
	struct tortie_ct_key rev = {};
	__u8 dir = to_host ? TORTIE_DIR_FROM_UPLINK : TORTIE_DIR_TO_UPLINK;
	__u32 ifindex = ctx->ifindex;
	__be32 peer = to_host ? pkt->saddr : pkt->daddr;
	__u8 reason;
	int mid_flow = 0;

	j.now = bpf_ktime_get_ns();
	if (pkt->frag == FRAG_LATER && !frag_restore_ports(pkt))
		return TORTIE_DROP_FRAG_NO_FIRST;
	reason = judge_flow4(ctx, &j, ifindex, hep);
	if (reason == TORTIE_DROP_CT_TCP_NOT_SYN) {
		j.is_new = 1;
		mid_flow = 1;
		reason = TORTIE_REASON_NONE;
	}
	if (reason == TORTIE_DROP_POLICY_REVOKED)
		ctx_blame(ctx, hep->id, dir); /* revalidation names pod directions */
	if (reason != TORTIE_REASON_NONE)
		return reason;

	/*
	 * A tracked flow (revalidated by judge_flow4 if the host endpoint's policy changed)
	 * or a related ICMP error: it passes. Host flows are only ever opened here.
	 */
	if (!j.is_new)
		return judge_commit4(pkt, &j, hep->id);

	if (hep_policy_allows4(ctx, hep, to_host, peer, pkt->proto, bpf_ntohs(pkt->sport),
			       bpf_ntohs(pkt->dport), &d)) {
		if (to_host) {
			j.sides.dst_ifindex = ifindex;
			j.sides.dst_rev = hep->policy_rev;
		} else {
			j.sides.src_ifindex = ifindex;
			j.sides.src_rev = hep->policy_rev;
		}
		j.sides.rule_id = d.rule_id;
		j.reason = TORTIE_PASS_POLICY;
		return judge_commit4(pkt, &j, hep->id);
	}
	if (!mid_flow)
		return blame_policy(ctx, hep->id, dir, &d);

	/* Mid-flow, denied this way: was the flow opened the other way? */
	{
		struct policy_decision back = {};

		if (!hep_policy_allows4(ctx, hep, !to_host, peer, pkt->proto, bpf_ntohs(pkt->dport),
					bpf_ntohs(pkt->sport), &back))
			return blame_policy(ctx, hep->id, dir, &d);
		ct_reverse(&j.flow, &rev);
		if (to_host) {
			j.sides.src_ifindex = ifindex;
			j.sides.src_rev = hep->policy_rev;
		} else {
			j.sides.dst_ifindex = ifindex;
			j.sides.dst_rev = hep->policy_rev;
		}
		j.sides.rule_id = back.rule_id;
		ct_create4(&rev, pkt, &j.sides, j.now, hep->id);
		return TORTIE_PASS_POLICY;
	}
}

#endif /* TORTIE_HOST_ENDPOINT_H */
