/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * judge.h — the verdict on a pod's packet, side by side for its two ends: the sender's
 * judgement (judge_egress4: the pod sends) and the receiver's (judge_ingress4: a packet
 * arrives for a pod). Both go the same way — fragment ports, conntrack with
 * revocation, then policy for whichever side the flow was not yet judged for — and
 * record the flow through one commit (judge_commit4) once the packet may pass.
 *
 * A packet between two pods of this node is judged for both ends in tortie_from_pod:
 * the sender's judgement, then the receiver's side of the same flow (judge_receiver4),
 * then one commit. Routing — where the packet goes and how it gets there — is the
 * entry programs' business (tc_policy.c), not this file's.
 *
 * Order matters and is kept to the letter: an entry that is already tracked is
 * updated where a side is judged (a drop after that leaves the update); a new flow is
 * written only at the commit, so a packet dropped on its way (by the receiver's
 * policy, the budget, the encapsulation) leaves no entry.
 */
#ifndef TORTIE_JUDGE_H
#define TORTIE_JUDGE_H

#include "compat.h"
#include "ct.h"
#include "ct_policy.h"
#include "endpoint.h"
#include "finish.h"
#include "frag.h"
#include "host.h"
#include "packet.h"
#include "policy.h"
#include "workload_encap.h"

/*
 * What the judgement of one packet knows about its flow, from the lookup to the commit.
 *
 * Why reply and is_new are 64-bit: the struct lives on the stack, and the verifier
 * keeps the value of a spilled 8-byte scalar but not always of a narrower one. With
 * int fields it forgot them and walked paths no packet can take (a tracked flow
 * created anew, a new one refreshed): tortie_from_pod took 121k verified instructions
 * on 6.18 instead of 77k.
 */
struct judgement {
	struct tortie_ct_key flow;  /* the flow's forward tuple */
	struct ct_sides sides;      /* a new flow's sides judged so far */
	struct tortie_ct_entry *ct; /* the flow's live entry, or NULL */
	__u64 now;
	__u64 reply;                /* 1: the packet travels against the flow */
	__u64 is_new;               /* 1: no entry and not related, a flow to open */
	__u8 reason;                /* the pass reason so far */
};

/*
 * Conntrack's word on the packet: the live flow it belongs to (revalidated against the
 * current policy revisions), a related ICMP error, or a new flow. Returns
 * TORTIE_REASON_NONE or a drop reason; the pass reason so far lands in j->reason. ep: the
 * endpoint behind ifindex, the interface the packet is judged for (revalidation reuses it).
 */
static __always_inline __u8 judge_flow4(struct pkt_ctx *ctx, struct judgement *j, __u32 ifindex,
					const struct tortie_endpoint *ep)
{
	struct packet *pkt = &ctx->pkt;
	int reply = 0;
	__u8 reason;

	j->ct = ct_lookup4(pkt, j->now, &j->flow, &reply);
	j->reply = reply;
	if (j->ct) {
		reason = ct_revalidate4(ctx, j->ct, &j->flow, j->reply, ifindex, ep);
		if (reason != TORTIE_REASON_NONE)
			return reason;
		j->reason = j->reply ? TORTIE_PASS_CT_REPLY : TORTIE_PASS_CT_ESTABLISHED;
		return TORTIE_REASON_NONE;
	}
	reason = ct_untracked4(pkt, j->now);
	if (reason_is_drop(reason))
		return reason;
	if (reason != TORTIE_REASON_NONE) {
		j->reason = reason;
		return TORTIE_REASON_NONE;
	}
	j->is_new = 1;
	return TORTIE_REASON_NONE;
}

/*
 * Whether the flow still needs the policy of the side behind ifindex: a new flow does;
 * a tracked one, in its original direction, when it was opened without that side (on
 * another interface, or before the packet reached it). Replies and related errors
 * never do.
 */
static __always_inline int judge_needs_sender(const struct judgement *j, __u32 ifindex)
{
	return j->is_new || (j->ct && !j->reply && j->ct->src_ifindex != ifindex);
}

static __always_inline int judge_needs_receiver(const struct judgement *j, __u32 ifindex)
{
	return j->is_new || (j->ct && !j->reply && j->ct->dst_ifindex != ifindex);
}

/*
 * The sender's egress policy, if the flow needs it (ifindex: the sender's host veth).
 * A tracked entry takes the sender's side now (and its rule, unless a receiver
 * decided already); a new flow keeps it for the commit. Returns TORTIE_REASON_NONE or
 * the policy drop, blamed on the sender.
 */
static __always_inline __u8 judge_sender4(struct pkt_ctx *ctx, const struct tortie_endpoint *ep,
					  __u32 ifindex, struct judgement *j)
{
	struct packet *pkt = &ctx->pkt;
	struct policy_decision d = {};

	if (!judge_needs_sender(j, ifindex))
		return TORTIE_REASON_NONE;
	if (!policy_can_egress4(ctx, ep, pkt->daddr, pkt->proto, bpf_ntohs(pkt->sport),
				bpf_ntohs(pkt->dport), &d))
		return blame_policy(ctx, ep->id, TORTIE_DIR_FROM_POD, &d);
	if (j->ct) {
		j->ct->src_ifindex = ifindex;
		j->ct->src_rev = ep->policy_rev;
		if (!j->ct->dst_ifindex)
			j->ct->rule_id = d.rule_id;
	}
	j->sides.src_ifindex = ifindex;
	j->sides.src_rev = ep->policy_rev;
	j->sides.rule_id = d.rule_id;
	j->reason = TORTIE_PASS_POLICY;
	return TORTIE_REASON_NONE;
}

/*
 * The receiver's ingress policy, if the flow needs it (ifindex: the receiver's host
 * veth; ep NULL when no endpoint is behind it — a flow to judge there has no policy to
 * be judged by, TORTIE_DROP_NO_POLICY). A tracked entry takes the receiver's side and
 * rule now; a new flow keeps them for the commit (the receiver's rule wins over the
 * sender's). Returns TORTIE_REASON_NONE or the drop, blamed towards the receiver.
 */
static __always_inline __u8 judge_receiver4(struct pkt_ctx *ctx, const struct tortie_endpoint *ep,
					    __u32 ifindex, struct judgement *j)
{
	struct packet *pkt = &ctx->pkt;
	struct policy_decision d = {};

	if (!judge_needs_receiver(j, ifindex))
		return TORTIE_REASON_NONE;
	if (!ep) {
		ctx_blame(ctx, 0, TORTIE_DIR_TO_POD);
		return TORTIE_DROP_NO_POLICY;
	}
	if (!policy_can_ingress4(ctx, ep, pkt->saddr, pkt->proto, bpf_ntohs(pkt->sport),
				 bpf_ntohs(pkt->dport), &d))
		return blame_policy(ctx, ep->id, TORTIE_DIR_TO_POD, &d);
	if (j->ct) {
		j->ct->dst_ifindex = ifindex;
		j->ct->dst_rev = ep->policy_rev;
		j->ct->rule_id = d.rule_id;
	}
	j->sides.dst_ifindex = ifindex;
	j->sides.dst_rev = ep->policy_rev;
	j->sides.rule_id = d.rule_id;
	j->reason = TORTIE_PASS_POLICY;
	return TORTIE_REASON_NONE;
}

/*
 * The packet passes: a new flow is created (counted for ep_id, the endpoint that caused
 * it: the local sender, else the local receiver), a tracked one refreshed, a first
 * fragment's ports remembered. Returns the reason the packet passes with.
 */
static __always_inline __u8 judge_commit4(const struct packet *pkt, const struct judgement *j,
					  __u32 ep_id)
{
	if (j->is_new)
		ct_create4(&j->flow, pkt, &j->sides, j->now, ep_id);
	else if (j->ct)
		ct_refresh4(j->ct, pkt, j->reply, j->now);
	frag_remember_first(pkt);
	return frag_pass_reason(pkt, j->reason);
}

/*
 * The sender's judgement of a pod's packet (ep behind the interface the packet came
 * from): anti-spoofing, fragment ports, no tunnel traffic of its own, conntrack, egress
 * policy, then what only a new flow must pass — the node's endpoint-to-host action and
 * the sender's conntrack budget. Returns TORTIE_REASON_NONE (j ready for
 * judge_receiver4 and judge_commit4) or a drop reason.
 */
static __always_inline __u8 judge_egress4(struct pkt_ctx *ctx, const struct tortie_endpoint *ep,
					  struct judgement *j)
{
	struct packet *pkt = &ctx->pkt;
	__u8 reason;

	j->now = bpf_ktime_get_ns();
	if (pkt->saddr != ep->ip)
		return TORTIE_DROP_SPOOF;
	if (pkt->frag == FRAG_LATER && !frag_restore_ports(pkt))
		return TORTIE_DROP_FRAG_NO_FIRST;
	reason = workload_encap_check4(pkt);
	if (reason != TORTIE_REASON_NONE)
		return reason;

	reason = judge_flow4(ctx, j, ctx->ifindex, ep);
	if (reason != TORTIE_REASON_NONE)
		return reason;
	reason = judge_sender4(ctx, ep, ctx->ifindex, j);
	if (reason != TORTIE_REASON_NONE)
		return reason;

	if (j->is_new && endpoint_to_host4(pkt) != TORTIE_REASON_NONE)
		return TORTIE_DROP_ENDPOINT_TO_HOST;
	/* A flow that will take an entry is charged to its sender's budget (off by default). */
	if (j->is_new && !(j->flow.icmp_query & TORTIE_CT_ICMP_REPLY) &&
	    !ct_budget_take(ep->id, j->now))
		return TORTIE_DROP_CT_BUDGET;
	return TORTIE_REASON_NONE;
}

/*
 * The receiver's judgement of a packet for a local pod, however it arrived (from the
 * host stack on the pod veth, or decapsulated on the uplink): fragment ports,
 * conntrack, ingress policy for a flow not yet judged for it, and the commit.
 * ifindex: the receiver's host veth. Returns the reason the packet passes with, or a
 * drop reason (policy drops blamed on the receiver).
 */
static __always_inline __u8 judge_ingress4(struct pkt_ctx *ctx, const struct tortie_endpoint *ep,
					   __u32 ifindex)
{
	struct packet *pkt = &ctx->pkt;
	struct judgement j = {};
	__u8 reason;

	j.now = bpf_ktime_get_ns();
	if (pkt->frag == FRAG_LATER && !frag_restore_ports(pkt))
		return TORTIE_DROP_FRAG_NO_FIRST;
	reason = judge_flow4(ctx, &j, ifindex, ep);
	if (reason != TORTIE_REASON_NONE)
		return reason;
	reason = judge_receiver4(ctx, ep, ifindex, &j);
	if (reason != TORTIE_REASON_NONE)
		return reason;
	return judge_commit4(pkt, &j, ep->id);
}

#endif /* TORTIE_JUDGE_H */
