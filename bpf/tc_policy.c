// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * tc_policy.c — the programs of a node: two on the host end of every pod veth, one on
 * the node's uplink.
 *
 *   tortie_from_pod    (pod veth, tc ingress: the pod sends)   parse, anti-spoofing,
 *                      no tunnel traffic of its own (IPIP, VXLAN), conntrack, sender's egress policy, route: a local pod gets the
 *                      receiver's ingress policy and a redirect straight into it; a
 *                      remote block routed with IPIP is encapsulated and redirected
 *                      to the uplink; anything else goes to the host stack.
 *   tortie_to_pod      (pod veth, tc egress: the pod receives what the host stack
 *                      delivers) parse, destination check, conntrack, receiver's
 *                      ingress policy.
 *   tortie_from_uplink (uplink, tc ingress) IPIP from a known node is decapsulated;
 *                      an inner packet from that node's own address or blocks goes
 *                      to its pod as a local delivery would (receiver's ingress
 *                      policy, redirect into the pod); IPIP from anyone else, or
 *                      carrying another node's source, is dropped; everything else
 *                      passes untouched.
 *   tortie_to_uplink   (uplink, tc egress) what the node itself sends to a remote
 *                      block routed with IPIP is encapsulated; everything else
 *                      (pods' packets encapsulated already, the node's own traffic)
 *                      passes untouched.
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
#include "lib/host.h"
#include "lib/node.h"
#include "lib/ipip.h"
#include "lib/workload_encap.h"
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
	__u8 forward = TORTIE_PASS_HOST_ROUTE;
	__u32 uplink = 0;
	__u8 reason;
	__u16 port;

	if (pkt->saddr != ep->ip)
		return drop_packet(ctx, TORTIE_DROP_SPOOF);
	if (pkt->frag == FRAG_LATER && !frag_restore_ports(pkt))
		return drop_packet(ctx, TORTIE_DROP_FRAG_NO_FIRST);
	reason = workload_encap_check4(pkt);
	if (reason != TORTIE_REASON_NONE)
		return drop_packet(ctx, reason);
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
	} else if ((reason = ct_untracked4(pkt, now)) != TORTIE_REASON_NONE) {
		if (reason_is_drop(reason))
			return drop_packet(ctx, reason);
	} else {
		if (!policy_can_egress4(ctx, ep, pkt->daddr, pkt->proto, port, &d))
			return drop_by_policy(ctx, ep->id, TORTIE_DIR_FROM_POD, &d);
		is_new = 1;
		sides.src_ifindex = ctx->ifindex;
		sides.src_rev = ep->policy_rev;
		sides.rule_id = d.rule_id;
		reason = TORTIE_PASS_POLICY;
	}
	if (is_new && endpoint_to_host4(pkt) != TORTIE_REASON_NONE)
		return drop_packet(ctx, TORTIE_DROP_ENDPOINT_TO_HOST);
	/* A flow that will take an entry is charged to its sender's budget (off by default). */
	if (is_new && !(flow.icmp_query & TORTIE_CT_ICMP_REPLY) && !ct_budget_take(ep->id, now))
		return drop_packet(ctx, TORTIE_DROP_CT_BUDGET);
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
			ct_create4(&flow, pkt, &sides, now, ep->id);
		else if (ct)
			ct_refresh4(ct, pkt, reply, now);
		frag_remember_first(pkt);
		return deliver_to_local_pod(skb, ctx, reason, to_ifindex);
	}

	/*
	 * A remote block routed with IPIP: encapsulated here and sent to the uplink. The
	 * flow is recorded only once the packet can leave (a drop leaves no entry).
	 */
	if (route && route->type == TORTIE_ROUTE_REMOTE_BLOCK &&
	    (route->flags & TORTIE_ROUTE_F_IPIP))
		forward = ipip_prepare4(skb, pkt, route, &uplink);
	if (reason_is_drop(forward)) {
		ctx_blame(ctx, ep->id, TORTIE_DIR_TO_UPLINK);
		return drop_packet(ctx, forward);
	}

	if (is_new)
		ct_create4(&flow, pkt, &sides, now, ep->id);
	else if (ct)
		ct_refresh4(ct, pkt, reply, now);
	frag_remember_first(pkt);
	if (!route || route->type != TORTIE_ROUTE_REMOTE_BLOCK)
		return pass_packet(ctx, reason, TC_ACT_OK); /* the node itself, or unknown */

	/*
	 * To another node: counted for the sender under the reason policy or conntrack
	 * gave, and towards the uplink under how it left — encapsulated, or handed to the
	 * host stack, whose routes carry it (ipipMode Never).
	 */
	metrics_count(ep->id, reason, TORTIE_DIR_FROM_POD, ctx->len);
	ctx_blame(ctx, ep->id, TORTIE_DIR_TO_UPLINK);
	if (forward == TORTIE_PASS_ENCAP)
		return pass_packet(ctx, forward, ipip_redirect(uplink));
	return pass_packet(ctx, forward, TC_ACT_OK);
}

/*
 * The receiver's half of a packet to a local pod, however it arrived (from the host
 * stack on the pod veth, or decapsulated on the uplink): fragment ports, conntrack
 * with revocation, the receiver's ingress policy for a flow not yet judged for it.
 * ifindex: the receiver's host veth. Returns the reason the packet passes with, or a
 * drop reason (policy drops blamed on the receiver).
 */
static __always_inline __u8 judge_to_pod4(struct pkt_ctx *ctx, const struct tortie_endpoint *ep,
					  __u32 ifindex)
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

	if (pkt->frag == FRAG_LATER && !frag_restore_ports(pkt))
		return TORTIE_DROP_FRAG_NO_FIRST;
	port = bpf_ntohs(pkt->dport);

	ct = ct_lookup4(pkt, now, &flow, &reply);
	if (ct) {
		reason = ct_revalidate4(ctx, ct, &flow, reply);
		if (reason != TORTIE_REASON_NONE)
			return reason;
		reason = reply ? TORTIE_PASS_CT_REPLY : TORTIE_PASS_CT_ESTABLISHED;
		if (!reply && ct->dst_ifindex != ifindex) {
			/* Opened before it reached this pod (e.g. on its sender's veth). */
			if (!policy_can_ingress4(ctx, ep, pkt->saddr, pkt->proto, port, &d))
				return blame_policy(ctx, ep->id, TORTIE_DIR_TO_POD, &d);
			ct->dst_ifindex = ifindex;
			ct->dst_rev = ep->policy_rev;
			ct->rule_id = d.rule_id;
			reason = TORTIE_PASS_POLICY;
		}
		ct_refresh4(ct, pkt, reply, now);
	} else if ((reason = ct_untracked4(pkt, now)) != TORTIE_REASON_NONE) {
		if (reason_is_drop(reason))
			return reason;
	} else {
		if (!policy_can_ingress4(ctx, ep, pkt->saddr, pkt->proto, port, &d))
			return blame_policy(ctx, ep->id, TORTIE_DIR_TO_POD, &d);
		sides.dst_ifindex = ifindex;
		sides.dst_rev = ep->policy_rev;
		sides.rule_id = d.rule_id;
		ct_create4(&flow, pkt, &sides, now, ep->id);
		reason = TORTIE_PASS_POLICY;
	}
	frag_remember_first(pkt);
	return frag_pass_reason(pkt, reason);
}

static __always_inline int to_pod4(struct pkt_ctx *ctx, const struct tortie_endpoint *ep)
{
	__u8 reason;

	if (ctx->pkt.daddr != ep->ip)
		return drop_packet(ctx, TORTIE_DROP_NOT_FOR_ENDPOINT);
	reason = judge_to_pod4(ctx, ep, ctx->ifindex);
	if (reason_is_drop(reason))
		return drop_packet(ctx, reason);
	return pass_packet(ctx, reason, TC_ACT_OK);
}

/*
 * A decapsulated packet (ctx->pkt is the inner one now): to a pod of this node, judged
 * and delivered as a local delivery is — counted for the receiver under the policy or
 * conntrack reason, and on the uplink as TORTIE_PASS_DECAP; to an address of the node
 * itself, handed to the host stack; anywhere else, dropped: a node is no transit hop
 * for tunnelled traffic.
 */
static __always_inline int from_uplink4(struct __sk_buff *skb, struct pkt_ctx *ctx)
{
	struct packet *pkt = &ctx->pkt;
	struct tortie_endpoint *receiver;
	struct tortie_route *route;
	__u32 to_ifindex;
	__u8 reason;

	route = route_lookup4(pkt->daddr);
	if (route && route->type == TORTIE_ROUTE_HOST)
		return pass_packet(ctx, TORTIE_PASS_DECAP, TC_ACT_OK);
	if (!route || route->type != TORTIE_ROUTE_LOCAL_EP)
		return drop_packet(ctx, TORTIE_DROP_IPIP_NOT_LOCAL);

	to_ifindex = route->ifindex;
	receiver = endpoint_of(to_ifindex);
	if (!receiver) {
		ctx_blame(ctx, 0, TORTIE_DIR_TO_POD);
		return drop_packet(ctx, TORTIE_DROP_NO_POLICY);
	}
	if (pkt->daddr != receiver->ip)
		return drop_packet(ctx, TORTIE_DROP_NOT_FOR_ENDPOINT);
	reason = judge_to_pod4(ctx, receiver, to_ifindex);
	if (reason_is_drop(reason))
		return drop_packet(ctx, reason);

	metrics_count(receiver->id, reason, TORTIE_DIR_TO_POD, ctx->len);
	return pass_packet(ctx, TORTIE_PASS_DECAP,
			   redirect_to_local_endpoint(skb, to_ifindex, pkt->ttl, pkt->proto));
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
	if (ipv4_is_loopback(ctx.pkt.daddr))
		return drop_packet(&ctx, TORTIE_DROP_TO_LOOPBACK);
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

/*
 * The uplink: only IPIP for this node is tortie's business. The outer header is
 * checked and stripped, then the inner packet is parsed afresh and judged as a packet
 * arriving for a local pod. Counters and events name the outer addresses until the
 * strip, the inner ones after; bytes are skb->len at the time.
 */
SEC("tc")
int tortie_from_uplink(struct __sk_buff *skb)
{
	struct pkt_ctx ctx = {};
	__u32 outer_len = 0;
	__be32 outer_saddr;
	__u8 reason;

	ctx_init(&ctx, skb, TORTIE_DIR_FROM_UPLINK, NULL);
	reason = ipip_classify4(skb, &ctx.pkt, &outer_len);
	if (reason == TORTIE_PASS_NOT_TUNNEL)
		return pass_packet(&ctx, reason, TC_ACT_OK);
	if (reason != TORTIE_REASON_NONE)
		return drop_packet(&ctx, reason);
	outer_saddr = ctx.pkt.saddr;
	if (ipip_decap4(skb, outer_len) < 0)
		return drop_packet(&ctx, TORTIE_DROP_DECAP_FAILED);

	__builtin_memset(&ctx.pkt, 0, sizeof(ctx.pkt));
	ctx.len = skb->len;
	reason = parse_packet(skb, &ctx.pkt);
	if (reason == TORTIE_PASS_ARP) /* cannot be: the ethertype stayed IPv4 */
		reason = TORTIE_DROP_MALFORMED;
	if (reason != TORTIE_REASON_NONE)
		return drop_packet(&ctx, reason);
	if (!ipip_inner_source_ok(outer_saddr, ctx.pkt.saddr))
		return drop_packet(&ctx, TORTIE_DROP_IPIP_INNER_SPOOF);
	return from_uplink4(skb, &ctx);
}

/*
 * The node's own packets to remote pods (a health check, `curl` on the node): the
 * kernel routes them out of the uplink towards the owning node, and they get their
 * outer header here, since no ipip device exists to give it. Pods' packets arrive
 * here encapsulated already (protocol 4) and pass, as does everything not for an IPIP
 * block.
 */
SEC("tc")
int tortie_to_uplink(struct __sk_buff *skb)
{
	struct tortie_route *route;
	struct pkt_ctx ctx = {};
	__u8 reason;

	ctx_init(&ctx, skb, TORTIE_DIR_TO_UPLINK, NULL);
	if (!uplink_peek4(skb, &ctx.pkt) || ctx.pkt.proto == IPPROTO_IPIP)
		return pass_packet(&ctx, TORTIE_PASS_NOT_TUNNEL, TC_ACT_OK);
	route = route_lookup4(ctx.pkt.daddr);
	if (!route || route->type != TORTIE_ROUTE_REMOTE_BLOCK ||
	    !(route->flags & TORTIE_ROUTE_F_IPIP))
		return pass_packet(&ctx, TORTIE_PASS_NOT_TUNNEL, TC_ACT_OK);

	reason = ipip_encap_host4(skb, route);
	if (reason_is_drop(reason))
		return drop_packet(&ctx, reason);
	return pass_packet(&ctx, reason, TC_ACT_OK);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
