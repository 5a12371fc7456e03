// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * tc_policy.c — the programs of a node: two on the host end of every pod veth, one on
 * the node's uplink.
 *
 *   tortie_from_pod    (pod veth, tc ingress: the pod sends) parse; the sender's
 *                      judgement (anti-spoofing, no tunnel traffic of its own — IPIP,
 *                      VXLAN —, conntrack, egress policy); route: a local pod gets the
 *                      receiver's ingress policy and a redirect straight into it; a
 *                      remote block routed with IPIP is encapsulated and redirected
 *                      to the uplink (a DF packet too big for the tunnel is answered
 *                      with ICMP "fragmentation needed"); one without encapsulation
 *                      is routed by the kernel's FIB and redirected to the uplink;
 *                      anything else goes to the host stack.
 *   tortie_to_pod      (pod veth, tc egress: the pod receives what the host stack
 *                      delivers) parse, destination check; the receiver's judgement
 *                      (conntrack, ingress policy).
 *   tortie_from_uplink (uplink, tc ingress) IPIP from a known node is decapsulated;
 *                      an inner packet from that node's own address or blocks goes
 *                      to its pod as a local delivery would (receiver's ingress
 *                      policy, redirect into the pod); IPIP from anyone else, or
 *                      carrying another node's source, is dropped; a plain packet
 *                      for a local pod is judged and redirected into it the same
 *                      way; everything else passes untouched.
 *   tortie_to_uplink   (uplink, tc egress) what the node itself sends to a remote
 *                      block routed with IPIP is encapsulated; everything else
 *                      (pods' packets encapsulated already, the node's own traffic)
 *                      passes untouched.
 *
 * The judgement of a packet — conntrack and policy, for its sender and its receiver —
 * lives in lib/judge.h, the parsing, tunnelling and accounting in the other lib/
 * headers; this file keeps the entry programs and the routing decisions: where a
 * packet goes once judged, and who it is counted for on the way. docs/dataplane.md
 * describes the verdicts and reasons.
 */
#include "lib/compat.h"
#include "tortie_maps.h"
#include "lib/endpoint.h"
#include "lib/fib.h"
#include "lib/finish.h"
#include "lib/host.h"
#include "lib/host_endpoint.h"
#include "lib/ipip.h"
#include "lib/judge.h"
#include "lib/metrics.h"
#include "lib/packet.h"
#include "lib/parse.h"
#include "lib/pmtu.h"
#include "lib/route.h"

#define TORTIE_PACKET_HOST 0 /* skb->pkt_type: addressed to this host (linux/if_packet.h) */

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
						__u8 reason, const struct tortie_endpoint *receiver,
						__u32 ifindex)
{
	metrics_count(receiver ? receiver->id : 0, reason, TORTIE_DIR_TO_POD, ctx->len);
	return pass_packet(ctx, reason,
			   redirect_to_local_endpoint(skb, ifindex, ctx->pkt.ttl, ctx->pkt.proto));
}

/*
 * A DF packet too big for the tunnel: turned into ICMP "fragmentation needed" with the
 * tunnel's MTU and sent back into the sender's namespace (lib/pmtu.h); a packet that
 * cannot be answered is dropped as TORTIE_DROP_ENCAP_MTU, as before. The blame is on
 * the sender towards the uplink already.
 */
static __always_inline int answer_frag_needed(struct __sk_buff *skb, struct pkt_ctx *ctx,
					      __u32 tunnel_mtu)
{
	const struct tortie_node_config *cfg = node_config();

	if (!tunnel_mtu || !cfg || !cfg->underlay_ip ||
	    pmtu_answer4(skb, &ctx->pkt, tunnel_mtu, cfg->underlay_ip) < 0)
		return drop_packet(ctx, TORTIE_DROP_ENCAP_MTU);
	return answer_packet(ctx, TORTIE_DROP_FRAG_NEEDED, bpf_redirect_peer(ctx->ifindex, 0));
}

/*
 * A pod's packet, judged for its sender (lib/judge.h), then routed: to a pod of this
 * node, judged for the receiver too and redirected into it; to a remote block routed
 * with IPIP, encapsulated and redirected to the uplink; to a remote block without
 * encapsulation, routed by the kernel's FIB and redirected to the interface it names
 * (lib/fib.h); anywhere else (the node itself, unknown destinations, VXLAN routes), to
 * the host stack. The flow is recorded only once the packet can leave (a drop leaves
 * no new entry).
 */
static __always_inline int from_pod4(struct __sk_buff *skb, struct pkt_ctx *ctx,
				     const struct tortie_endpoint *ep)
{
	struct packet *pkt = &ctx->pkt;
	struct judgement j = {};
	struct tortie_endpoint *receiver;
	struct tortie_route *route;
	struct fib_way way = {};
	__u8 forward = TORTIE_PASS_HOST_ROUTE;
	__u32 uplink = 0, to_ifindex, tunnel_mtu = 0;
	__u8 reason;

	reason = judge_egress4(ctx, ep, &j);
	if (reason != TORTIE_REASON_NONE)
		return drop_packet(ctx, reason);

	route = route_lookup4(pkt->daddr);
	if (route && route->type == TORTIE_ROUTE_LOCAL_EP) {
		to_ifindex = route->ifindex;
		receiver = endpoint_of(to_ifindex);
		reason = judge_receiver4(ctx, receiver, to_ifindex, &j);
		if (reason != TORTIE_REASON_NONE)
			return drop_packet(ctx, reason);
		reason = judge_commit4(pkt, &j, ep->id);
		return deliver_to_local_pod(skb, ctx, reason, receiver, to_ifindex);
	}

	if (route && route->type == TORTIE_ROUTE_REMOTE_BLOCK) {
		if (route->flags & TORTIE_ROUTE_F_IPIP)
			forward = ipip_prepare4(skb, pkt, route, &uplink, &tunnel_mtu);
		else if (!(route->flags & TORTIE_ROUTE_F_VXLAN))
			forward = fib_prepare4(skb, pkt, &way);
	}
	if (reason_is_drop(forward)) {
		ctx_blame(ctx, ep->id, TORTIE_DIR_TO_UPLINK);
		if (forward == TORTIE_DROP_ENCAP_MTU)
			return answer_frag_needed(skb, ctx, tunnel_mtu);
		return drop_packet(ctx, forward);
	}

	reason = judge_commit4(pkt, &j, ep->id);
	if (!route || route->type != TORTIE_ROUTE_REMOTE_BLOCK)
		return pass_packet(ctx, reason, TC_ACT_OK); /* the node itself, or unknown */

	/*
	 * To another node: counted for the sender under the reason policy or conntrack
	 * gave, and towards the uplink under how it left — encapsulated, routed in BPF, or
	 * handed to the host stack.
	 */
	metrics_count(ep->id, reason, TORTIE_DIR_FROM_POD, ctx->len);
	ctx_blame(ctx, ep->id, TORTIE_DIR_TO_UPLINK);
	if (forward == TORTIE_PASS_ENCAP)
		return pass_packet(ctx, forward, ipip_redirect(uplink));
	if (forward == TORTIE_PASS_FIB)
		return pass_packet(ctx, forward, fib_redirect(&way));
	return pass_packet(ctx, forward, TC_ACT_OK);
}

static __always_inline int to_pod4(struct pkt_ctx *ctx, const struct tortie_endpoint *ep)
{
	__u8 reason;

	if (ctx->pkt.daddr != ep->ip)
		return drop_packet(ctx, TORTIE_DROP_NOT_FOR_ENDPOINT);
	reason = judge_ingress4(ctx, ep, ctx->ifindex);
	if (reason_is_drop(reason))
		return drop_packet(ctx, reason);
	return pass_packet(ctx, reason, TC_ACT_OK);
}

/*
 * A packet for the node itself, arriving on the uplink (plain, or decapsulated): judged
 * by the uplink's host endpoint if it has one (lib/host_endpoint.h), then handed to the
 * host stack; without one it passes as `passing` says, as before host endpoints.
 */
static __always_inline int to_host4(struct __sk_buff *skb, struct pkt_ctx *ctx, __u8 passing)
{
	struct tortie_endpoint *hep = host_endpoint_of(skb->ifindex);
	__u8 reason;

	if (!hep)
		return pass_packet(ctx, passing, TC_ACT_OK);
	ctx_blame(ctx, hep->id, TORTIE_DIR_FROM_UPLINK);
	reason = judge_host4(ctx, hep, 1);
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
		return to_host4(skb, ctx, TORTIE_PASS_DECAP);
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
	reason = judge_ingress4(ctx, receiver, to_ifindex);
	if (reason_is_drop(reason))
		return drop_packet(ctx, reason);

	metrics_count(receiver->id, reason, TORTIE_DIR_TO_POD, ctx->len);
	return pass_packet(ctx, TORTIE_PASS_DECAP,
			   redirect_to_local_endpoint(skb, to_ifindex, pkt->ttl, pkt->proto));
}

/*
 * A plain packet on the uplink (no IPIP for this node). For a local pod it is judged
 * for the receiver exactly as tortie_to_pod judges it once the host stack has
 * forwarded it — blamed on the receiver towards the pod, the same conntrack and policy
 * — and redirected straight into the pod. Anything else goes to the host stack
 * untouched, as before: not IPv4, malformed (the host stack and tortie_to_pod decide),
 * a fragment (left to the stack's reassembly rules), a TTL running out (Time
 * Exceeded), a frame not addressed to this host, a destination that is no local pod.
 */
static __always_inline int from_uplink_plain4(struct __sk_buff *skb, struct pkt_ctx *ctx)
{
	struct packet *pkt = &ctx->pkt;
	struct tortie_endpoint *receiver;
	struct tortie_route *route;
	__u32 to_ifindex;
	__u8 reason;

	if (skb->pkt_type != TORTIE_PACKET_HOST)
		return pass_packet(ctx, TORTIE_PASS_NOT_TUNNEL, TC_ACT_OK);
	__builtin_memset(pkt, 0, sizeof(*pkt));
	if (parse_packet(skb, pkt) != TORTIE_REASON_NONE)
		return pass_packet(ctx, TORTIE_PASS_NOT_TUNNEL, TC_ACT_OK);
	route = route_lookup4(pkt->daddr);
	if (route && route->type == TORTIE_ROUTE_HOST)
		return to_host4(skb, ctx, TORTIE_PASS_NOT_TUNNEL);
	if (pkt->frag != FRAG_NONE || pkt->ttl <= 1)
		return pass_packet(ctx, TORTIE_PASS_NOT_TUNNEL, TC_ACT_OK);
	if (!route || route->type != TORTIE_ROUTE_LOCAL_EP)
		return pass_packet(ctx, TORTIE_PASS_NOT_TUNNEL, TC_ACT_OK);
	to_ifindex = route->ifindex;
	receiver = endpoint_of(to_ifindex);
	if (!receiver || pkt->daddr != receiver->ip)
		return pass_packet(ctx, TORTIE_PASS_NOT_TUNNEL, TC_ACT_OK);

	ctx_blame(ctx, receiver->id, TORTIE_DIR_TO_POD);
	reason = judge_ingress4(ctx, receiver, to_ifindex);
	if (reason_is_drop(reason))
		return drop_packet(ctx, reason);
	metrics_count(receiver->id, reason, TORTIE_DIR_TO_POD, ctx->len);
	ctx_blame(ctx, 0, TORTIE_DIR_FROM_UPLINK);
	return pass_packet(ctx, TORTIE_PASS_UPLINK_TO_POD,
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
 * The uplink: IPIP for this node and plain packets for its pods are tortie's business.
 * The outer header is checked and stripped, then the inner packet is parsed afresh and
 * judged as a packet arriving for a local pod; a plain packet goes to
 * from_uplink_plain4. Counters and events name the outer addresses until the strip,
 * the inner ones after; bytes are skb->len at the time.
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
		return from_uplink_plain4(skb, &ctx);
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
 * A packet leaving by an uplink that has a host endpoint. The node's own (nothing
 * received it: skb->ingress_ifindex 0) is judged by the host endpoint's egress set
 * (lib/host_endpoint.h) — before any encapsulation, so a node's packet to a remote pod
 * is judged by its own tuple. A forwarded packet with the node's address as source
 * (a pod's, masqueraded by natOutgoing) is tracked with no side, so its replies, which
 * arrive for the node, pass as replies. Tunnel packets (IPIP between nodes) and
 * anything not IPv4 pass. Returns the host endpoint's pass or drop reason for the
 * node's own packet, else TORTIE_REASON_NONE.
 */
static __always_inline __u8 from_host4(struct __sk_buff *skb, struct pkt_ctx *ctx,
				       const struct tortie_endpoint *hep)
{
	struct packet *pkt = &ctx->pkt;
	struct tortie_route *route;
	struct judgement j = {};
	__u8 reason;

	if (parse_packet(skb, pkt) != TORTIE_REASON_NONE || pkt->proto == IPPROTO_IPIP)
		goto out;
	if (skb->ingress_ifindex == 0) {
		ctx_blame(ctx, hep->id, TORTIE_DIR_TO_UPLINK);
		reason = judge_host4(ctx, hep, 0);
		if (!reason_is_drop(reason))
			__builtin_memset(pkt, 0, sizeof(*pkt)); /* peeked afresh by the caller */
		return reason;
	}
	route = route_lookup4(pkt->saddr);
	if (route && route->type == TORTIE_ROUTE_HOST && pkt->frag != FRAG_LATER) {
		j.now = bpf_ktime_get_ns();
		if (judge_flow4(ctx, &j, ctx->ifindex, hep) == TORTIE_REASON_NONE)
			judge_commit4(pkt, &j, hep->id);
	}
out:
	__builtin_memset(pkt, 0, sizeof(*pkt));
	return TORTIE_REASON_NONE;
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
	struct tortie_endpoint *hep = host_endpoint_of(skb->ifindex);
	__u8 passing = TORTIE_PASS_NOT_TUNNEL;
	struct tortie_route *route;
	struct pkt_ctx ctx = {};
	__u8 reason;

	ctx_init(&ctx, skb, TORTIE_DIR_TO_UPLINK, NULL);
	if (hep) {
		reason = from_host4(skb, &ctx, hep);
		if (reason_is_drop(reason))
			return drop_packet(&ctx, reason);
		if (reason != TORTIE_REASON_NONE)
			passing = reason;
	}
	if (!uplink_peek4(skb, &ctx.pkt) || ctx.pkt.proto == IPPROTO_IPIP)
		return pass_packet(&ctx, passing, TC_ACT_OK);
	route = route_lookup4(ctx.pkt.daddr);
	if (!route || route->type != TORTIE_ROUTE_REMOTE_BLOCK ||
	    !(route->flags & TORTIE_ROUTE_F_IPIP))
		return pass_packet(&ctx, passing, TC_ACT_OK);

	reason = ipip_encap_host4(skb, route);
	if (reason_is_drop(reason))
		return drop_packet(&ctx, reason);
	return pass_packet(&ctx, reason, TC_ACT_OK);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
