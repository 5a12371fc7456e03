/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * policy.h — judging a packet against an endpoint's policy set: two stages (address →
 * class, (proto, port) → verdict), each looked up longest prefix first across the maps
 * that hold it: exact hashes before the LPM tries, so the common entries cost O(1)
 * whatever the number of rules; and, only where a rule matches source ports, a third
 * (source port → verdict). The maps and why the split is exact are explained in
 * tortie_maps.h.
 */
#ifndef TORTIE_POLICY_H
#define TORTIE_POLICY_H

#include "compat.h"
#include "config.h"
#include "events.h"
#include "maps.h"
#include "packet.h"
#include "parse.h"

#define POL_ADDR_FULL_PREFIX 64 /* set_id (32) + address (32) */
#define POL_L4_FULL_PREFIX 64   /* class_id (32) + zero byte (8) + proto (8) + port (16) */
#define POL_SPORT_FULL_PREFIX 64 /* class_id (32) + zero (16) + source port (16) */

struct policy_decision {
	__u8 reason;   /* TORTIE_PASS_POLICY, TORTIE_DROP_POLICY or TORTIE_DROP_NO_POLICY */
	__u8 action;   /* enum tortie_action as written by the compiler */
	__u8 flags;    /* enum tortie_verdict_flags */
	__u8 pad;
	__u32 rule_id;
};

/* Stage 1: the class of peer in set_id — its /32 entry, else its longest prefix. */
static __always_inline struct tortie_pol_addr_val *policy_class_of(__u32 set_id, __be32 peer)
{
	struct tortie_pol_ip32_key exact = { .set_id = set_id, .addr = peer };
	struct tortie_pol_addr_key prefix = {
		.prefixlen = POL_ADDR_FULL_PREFIX,
		.set_id = set_id,
		.addr = peer,
	};
	struct tortie_pol_addr_val *class;

	class = bpf_map_lookup_elem(&tortie_pol_ip32, &exact);
	if (class)
		return class;
	return bpf_map_lookup_elem(&tortie_pol_addr, &prefix);
}

/*
 * Stage 2: the verdict of class_id for l4 — its exact (proto, port) entry, else its
 * longest (proto, port) prefix, else the class default.
 */
static __always_inline struct tortie_verdict *policy_verdict_of(__u32 class_id, __be32 l4)
{
	struct tortie_pol_port_key exact = { .class_id = class_id, .l4 = l4 };
	struct tortie_pol_l4_key prefix = {
		.prefixlen = POL_L4_FULL_PREFIX,
		.class_id = class_id,
		.l4 = l4,
	};
	struct tortie_verdict *verdict;

	verdict = bpf_map_lookup_elem(&tortie_pol_port, &exact);
	if (verdict)
		return verdict;
	verdict = bpf_map_lookup_elem(&tortie_pol_l4, &prefix);
	if (verdict)
		return verdict;
	return bpf_map_lookup_elem(&tortie_pol_dflt, &class_id);
}

/* Stage 3: the verdict of source-port class class_id for the source port sport. */
static __always_inline struct tortie_verdict *policy_sport_verdict_of(__u32 class_id, __u16 sport)
{
	struct tortie_pol_sport_key key = {
		.prefixlen = POL_SPORT_FULL_PREFIX,
		.class_id = class_id,
		.sport = bpf_htonl(sport),
	};

	return bpf_map_lookup_elem(&tortie_pol_sprt, &key);
}

/*
 * A set id of 0, a miss in every map of a stage, or a final verdict that is neither
 * Allow nor Deny all mean "the compiler has not written this" and fail closed as
 * NO_POLICY. sport is the policy's source port (0 for a protocol without ports); only
 * a stage-2 TORTIE_ACT_BY_SPORT verdict reads it.
 */
static __always_inline void policy_lookup4(__u32 set_id, __be32 peer, __u8 proto, __u16 sport,
					   __u16 port, struct policy_decision *d)
{
	struct tortie_pol_addr_val *class;
	struct tortie_verdict *verdict;

	d->reason = TORTIE_DROP_NO_POLICY;
	d->action = TORTIE_ACT_NONE;
	d->flags = 0;
	d->rule_id = 0;
	if (set_id == 0)
		return;

	class = policy_class_of(set_id, peer);
	if (!class)
		return;
	verdict = policy_verdict_of(class->class_id, bpf_htonl(((__u32)proto << 16) | port));
	if (!verdict)
		return;
	if (verdict->action == TORTIE_ACT_BY_SPORT) {
		verdict = policy_sport_verdict_of(verdict->rule_id, proto_has_ports(proto) ? sport : 0);
		if (!verdict)
			return;
	}

	d->action = verdict->action;
	d->flags = verdict->flags;
	d->rule_id = verdict->rule_id;
	if (verdict->action == TORTIE_ACT_ALLOW)
		d->reason = TORTIE_PASS_POLICY;
	else if (verdict->action == TORTIE_ACT_DENY)
		d->reason = TORTIE_DROP_POLICY;
}

/* VERDICT (when traced) and LOG events about a decision of ep_id's set in dir. */
static __always_inline void policy_report(const struct pkt_ctx *ctx, __u32 ep_id, __u8 dir,
					  const struct policy_decision *d)
{
	if (tortie_cfg_trace_verdicts)
		event_emit(ctx, TORTIE_EVENT_VERDICT, ep_id, dir, d->reason, d->action, d->rule_id);
	if (d->flags & TORTIE_VERDICT_F_LOG)
		event_emit(ctx, TORTIE_EVENT_LOG, ep_id, dir, d->reason, d->action, d->rule_id);
}

/*
 * May ep send (proto, sport -> port) to daddr? The peer of an egress decision is the
 * destination.
 */
static __always_inline int policy_can_egress4(const struct pkt_ctx *ctx,
					      const struct tortie_endpoint *ep, __be32 daddr,
					      __u8 proto, __u16 sport, __u16 port,
					      struct policy_decision *d)
{
	policy_lookup4(ep->egress_set, daddr, proto, sport, port, d);
	policy_report(ctx, ep->id, TORTIE_DIR_FROM_POD, d);
	return d->reason == TORTIE_PASS_POLICY;
}

/*
 * May ep receive (proto, sport -> port) from saddr? The peer of an ingress decision is
 * the source.
 */
static __always_inline int policy_can_ingress4(const struct pkt_ctx *ctx,
					       const struct tortie_endpoint *ep, __be32 saddr,
					       __u8 proto, __u16 sport, __u16 port,
					       struct policy_decision *d)
{
	policy_lookup4(ep->ingress_set, saddr, proto, sport, port, d);
	policy_report(ctx, ep->id, TORTIE_DIR_TO_POD, d);
	return d->reason == TORTIE_PASS_POLICY;
}

#endif /* TORTIE_POLICY_H */
