/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * finish.h — the only ways out of a program. Each counts the packet under its reason
 * (and the endpoint/direction blamed in the context); drops also emit a DROP event
 * when configured. Nothing leaves unnamed.
 */
#ifndef TORTIE_FINISH_H
#define TORTIE_FINISH_H

#include "compat.h"
#include "config.h"
#include "events.h"
#include "metrics.h"
#include "packet.h"
#include "policy.h"

static __always_inline int pass_packet(struct pkt_ctx *ctx, __u8 reason, int tc_verdict)
{
	metrics_count(ctx->ep_id, reason, ctx->dir, ctx->len);
	return tc_verdict;
}

static __always_inline int drop_packet(struct pkt_ctx *ctx, __u8 reason)
{
	metrics_count(ctx->ep_id, reason, ctx->dir, ctx->len);
	if (tortie_cfg_drop_events)
		event_emit(ctx, TORTIE_EVENT_DROP, ctx->ep_id, ctx->dir, reason, ctx->action,
			   ctx->rule_id);
	return TC_ACT_SHOT;
}

/*
 * The packet is dropped, but an answer made of it leaves in its place (an ICMP error
 * back to the sender, lib/pmtu.h): counted and reported as a drop, with the answer's
 * verdict.
 */
static __always_inline int answer_packet(struct pkt_ctx *ctx, __u8 reason, int tc_verdict)
{
	metrics_count(ctx->ep_id, reason, ctx->dir, ctx->len);
	if (tortie_cfg_drop_events)
		event_emit(ctx, TORTIE_EVENT_DROP, ctx->ep_id, ctx->dir, reason, ctx->action,
			   ctx->rule_id);
	return tc_verdict;
}

/* Reasons from 64 up are drops (tortie_maps.h). */
static __always_inline int reason_is_drop(__u8 reason)
{
	return reason >= TORTIE_DROP_POLICY;
}

/*
 * A policy decision denied the packet: blame the endpoint whose set decided, remember
 * the deciding rule for the event, and return the drop reason.
 */
static __always_inline __u8 blame_policy(struct pkt_ctx *ctx, __u32 ep_id, __u8 dir,
					 const struct policy_decision *d)
{
	ctx_blame(ctx, ep_id, dir);
	ctx->rule_id = d->rule_id;
	ctx->action = d->action;
	return d->reason;
}

static __always_inline int drop_by_policy(struct pkt_ctx *ctx, __u32 ep_id, __u8 dir,
					  const struct policy_decision *d)
{
	return drop_packet(ctx, blame_policy(ctx, ep_id, dir, d));
}

#endif /* TORTIE_FINISH_H */
