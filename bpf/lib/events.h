/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * events.h — struct tortie_event records on the tortie_events ring buffer: drops,
 * traced policy verdicts and Log rules. A full buffer loses the event (counted per CPU
 * and event type in tortie_ev_lost), never the packet.
 */
#ifndef TORTIE_EVENTS_H
#define TORTIE_EVENTS_H

#include "compat.h"
#include "config.h"
#include "obs_maps.h"
#include "packet.h"

static __always_inline void events_count_lost(__u32 type)
{
	__u64 *lost = bpf_map_lookup_elem(&tortie_ev_lost, &type);

	if (lost)
		*lost += 1;
}

/*
 * Not inlined on purpose: events are the cold path, and a real function with a
 * struct tortie_event * parameter is what makes clang describe the struct in the
 * object's BTF (the codec test and `bpftool btf dump` read it from there).
 */
static __noinline void event_fill(struct tortie_event *ev, const struct pkt_ctx *ctx)
{
	const struct packet *pkt = &ctx->pkt;

	ev->ts_ns = bpf_ktime_get_ns();
	ev->ifindex = ctx->ifindex;
	ev->saddr = pkt->saddr;
	ev->daddr = pkt->daddr;
	ev->sport = pkt->sport;
	ev->dport = pkt->dport;
	ev->proto = pkt->proto;
}

static __always_inline void event_emit(const struct pkt_ctx *ctx, __u32 type, __u32 ep_id,
				       __u8 dir, __u8 reason, __u8 action, __u32 rule_id)
{
	struct tortie_event *ev;

	ev = bpf_ringbuf_reserve(&tortie_events, sizeof(*ev), 0);
	if (!ev) {
		events_count_lost(type);
		return;
	}
	event_fill(ev, ctx);
	ev->type = type;
	ev->ep_id = ep_id;
	ev->rule_id = rule_id;
	ev->reason = reason;
	ev->dir = dir;
	ev->action = action;
	bpf_ringbuf_submit(ev, 0);
}

#endif /* TORTIE_EVENTS_H */
