// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * tc_policy.c — the two programs on the host end of every pod veth.
 *
 *   tortie_from_pod  (tc ingress: the pod sends)   parse, anti-spoofing, conntrack,
 *                    sender's egress policy, route: a local pod gets the receiver's
 *                    ingress policy and a redirect straight into it; anything else
 *                    goes to the host stack.
 *   tortie_to_pod    (tc egress: the pod receives what the host stack delivers)
 *                    parse, destination check, conntrack, receiver's ingress policy.
 *
 * The work lives in lib/; these functions only wire the path. docs/dataplane.md
 * describes the verdicts and reasons.
 */
#include "lib/compat.h"
#include "tortie_maps.h"
#include "lib/config.h"
#include "lib/maps.h"
#include "lib/packet.h"
#include "lib/parse.h"
#include "lib/endpoint.h"
#include "lib/metrics.h"
#include "lib/events.h"
#include "lib/policy.h"
#include "lib/ct.h"
#include "lib/ct_policy.h"
#include "lib/frag.h"
#include "lib/route.h"
#include "lib/finish.h"

static __always_inline void ctx_init(struct pkt_ctx *ctx, struct __sk_buff *skb, __u8 dir,
				     const struct tortie_endpoint *ep)
{
	ctx->ifindex = skb->ifindex;
	ctx->len = skb->len;
	ctx->dir = dir;
	ctx->ep_id = ep ? ep->id : 0;
}

/* Local delivery: counted for the receiver too, then redirected into its pod. */
static __always_inline int deliver_to_local_pod(struct __sk_buff *skb, struct pkt_ctx *ctx,
						__u8 reason, __u32 ifindex)
{
	struct tortie_endpoint *receiver = endpoint_of(ifindex);

	metrics_count(receiver ? receiver->id : 0, reason, TORTIE_DIR_TO_POD, ctx->len);
	return pass_packet(ctx, reason,
			   redirect_to_local_endpoint(skb, ifindex, ctx->pkt.ttl, ctx->pkt.proto));
}

static __always_inline int from_pod4(struct __sk_buff *skb, struct pkt_ctx *ctx,
				     const struct tortie_endpoint *ep)
{
	struct packet *pkt = &ctx->pkt;
	struct tortie_ct_key flow = {};
	struct ct_sides sides = {};
	struct policy_decision d = {};
	struct tortie_endpoint *receiver;
	struct tortie_ct_entry *ct;
	struct tortie_route *route;
	__u64 now = bpf_ktime_get_ns();
	int reply = 0, is_new = 0;
	__u8 reason;
	__u16 port;

	if (pkt->saddr != ep->ip)
		return drop_packet(ctx, TORTIE_DROP_SPOOF);
	if (pkt->frag == FRAG_LATER && !frag_restore_ports(pkt))
		return drop_packet(ctx, TORTIE_DROP_FRAG_NO_FIRST);
	port = bpf_ntohs(pkt->dport);

	ct = ct_lookup4(pkt, now, &flow, &reply);
	if (ct) {
		reason = ct_revalidate4(ctx, ct, &flow, reply);
		if (reason != TORTIE_REASON_NONE)
			return drop_packet(ctx, reason);
		reason = reply ? TORTIE_PASS_CT_REPLY : TORTIE_PASS_CT_ESTABLISHED;
		if (!reply && ct->src_ifindex != ctx->ifindex) {
			/* The flow was opened elsewhere; this sender's egress was never judged. */
			if (!policy_can_egress4(ctx, ep, pkt->daddr, pkt->proto, port, &d))
				return drop_by_policy(ctx, ep->id, TORTIE_DIR_FROM_POD, &d);
			ct->src_ifindex = ctx->ifindex;
			ct->src_rev = ep->policy_rev;
			if (!ct->dst_ifindex)
				ct->rule_id = d.rule_id;
			reason = TORTIE_PASS_POLICY;
		}
	} else if (ct_is_related4(pkt, now)) {
		reason = TORTIE_PASS_CT_RELATED;
	} else {
		if (!policy_can_egress4(ctx, ep, pkt->daddr, pkt->proto, port, &d))
			return drop_by_policy(ctx, ep->id, TORTIE_DIR_FROM_POD, &d);
		is_new = 1;
		sides.src_ifindex = ctx->ifindex;
		sides.src_rev = ep->policy_rev;
		sides.rule_id = d.rule_id;
		reason = TORTIE_PASS_POLICY;
	}
	reason = frag_pass_reason(pkt, reason);

	route = route_lookup4(pkt->daddr);
	if (route && route->type == TORTIE_ROUTE_LOCAL_EP) {
		__u32 to_ifindex = route->ifindex;

		if (is_new || (ct && !reply && ct->dst_ifindex != to_ifindex)) {
			receiver = endpoint_of(to_ifindex);
			if (!receiver) {
				ctx_blame(ctx, 0, TORTIE_DIR_TO_POD);
				return drop_packet(ctx, TORTIE_DROP_NO_POLICY);
			}
			if (!policy_can_ingress4(ctx, receiver, pkt->saddr, pkt->proto, port, &d))
				return drop_by_policy(ctx, receiver->id, TORTIE_DIR_TO_POD, &d);
			if (ct) {
				ct->dst_ifindex = to_ifindex;
				ct->dst_rev = receiver->policy_rev;
				ct->rule_id = d.rule_id;
				reason = frag_pass_reason(pkt, TORTIE_PASS_POLICY);
			}
			sides.dst_ifindex = to_ifindex;
			sides.dst_rev = receiver->policy_rev;
			sides.rule_id = d.rule_id;
		}
		if (is_new)
			ct_create4(&flow, pkt, &sides, now);
		else if (ct)
			ct_refresh4(ct, pkt, reply, now);
		frag_remember_first(pkt);
		return deliver_to_local_pod(skb, ctx, reason, to_ifindex);
	}

	/*
	 * Not a pod of this node: the host stack routes it (to the node itself or, through
	 * the kernel's routes, towards a remote block). BPF encapsulation to remote blocks
	 * (TORTIE_ROUTE_REMOTE_BLOCK with TORTIE_ROUTE_F_IPIP/VXLAN) hooks in here.
	 */
	if (is_new)
		ct_create4(&flow, pkt, &sides, now);
	else if (ct)
		ct_refresh4(ct, pkt, reply, now);
	frag_remember_first(pkt);
	return pass_packet(ctx, reason, TC_ACT_OK);
}

static __always_inline int to_pod4(struct pkt_ctx *ctx, const struct tortie_endpoint *ep)
{
	struct packet *pkt = &ctx->pkt;
	struct tortie_ct_key flow = {};
	struct ct_sides sides = {};
	struct policy_decision d = {};
	struct tortie_ct_entry *ct;
	__u64 now = bpf_ktime_get_ns();
	int reply = 0;
	__u8 reason;
	__u16 port;

	if (pkt->daddr != ep->ip)
		return drop_packet(ctx, TORTIE_DROP_NOT_FOR_ENDPOINT);
	if (pkt->frag == FRAG_LATER && !frag_restore_ports(pkt))
		return drop_packet(ctx, TORTIE_DROP_FRAG_NO_FIRST);
	port = bpf_ntohs(pkt->dport);

	ct = ct_lookup4(pkt, now, &flow, &reply);
	if (ct) {
		reason = ct_revalidate4(ctx, ct, &flow, reply);
		if (reason != TORTIE_REASON_NONE)
			return drop_packet(ctx, reason);
		reason = reply ? TORTIE_PASS_CT_REPLY : TORTIE_PASS_CT_ESTABLISHED;
		if (!reply && ct->dst_ifindex != ctx->ifindex) {
			/* Opened before it reached this pod (e.g. on its sender's veth). */
			if (!policy_can_ingress4(ctx, ep, pkt->saddr, pkt->proto, port, &d))
				return drop_by_policy(ctx, ep->id, TORTIE_DIR_TO_POD, &d);
			ct->dst_ifindex = ctx->ifindex;
			ct->dst_rev = ep->policy_rev;
			ct->rule_id = d.rule_id;
			reason = TORTIE_PASS_POLICY;
		}
		ct_refresh4(ct, pkt, reply, now);
	} else if (ct_is_related4(pkt, now)) {
		reason = TORTIE_PASS_CT_RELATED;
	} else {
		if (!policy_can_ingress4(ctx, ep, pkt->saddr, pkt->proto, port, &d))
			return drop_by_policy(ctx, ep->id, TORTIE_DIR_TO_POD, &d);
		sides.dst_ifindex = ctx->ifindex;
		sides.dst_rev = ep->policy_rev;
		sides.rule_id = d.rule_id;
		ct_create4(&flow, pkt, &sides, now);
		reason = TORTIE_PASS_POLICY;
	}
	frag_remember_first(pkt);
	return pass_packet(ctx, frag_pass_reason(pkt, reason), TC_ACT_OK);
}

SEC("tc")
int tortie_from_pod(struct __sk_buff *skb)
{
	struct tortie_endpoint *ep = endpoint_of(skb->ifindex);
	struct pkt_ctx ctx = {};
	__u8 reason;

	ctx_init(&ctx, skb, TORTIE_DIR_FROM_POD, ep);
	reason = parse_packet(skb, &ctx.pkt);
	if (reason == TORTIE_PASS_ARP)
		return pass_packet(&ctx, reason, TC_ACT_OK);
	if (reason != TORTIE_REASON_NONE)
		return drop_packet(&ctx, reason);
	if (!ep)
		return drop_packet(&ctx, TORTIE_DROP_NO_ENDPOINT);
	return from_pod4(skb, &ctx, ep);
}

SEC("tc")
int tortie_to_pod(struct __sk_buff *skb)
{
	struct tortie_endpoint *ep = endpoint_of(skb->ifindex);
	struct pkt_ctx ctx = {};
	__u8 reason;

	ctx_init(&ctx, skb, TORTIE_DIR_TO_POD, ep);
	reason = parse_packet(skb, &ctx.pkt);
	if (reason == TORTIE_PASS_ARP)
		return pass_packet(&ctx, reason, TC_ACT_OK);
	if (reason != TORTIE_REASON_NONE)
		return drop_packet(&ctx, reason);
	if (!ep)
		return drop_packet(&ctx, TORTIE_DROP_NO_ENDPOINT);
	return to_pod4(&ctx, ep);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
