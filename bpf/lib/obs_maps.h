/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * obs_maps.h — the maps every program reports through: counters by reason
 * (tortie_metrics), drop and verdict events (tortie_events) and the events a full ring
 * lost (tortie_ev_lost). Apart from maps.h because the XDP program (xdp_uplink.c)
 * shares them with the tc programs without declaring the tc programs' other maps: the
 * loader pins both objects under one root, so both write the same counters and ring.
 */
#ifndef TORTIE_LIB_OBS_MAPS_H
#define TORTIE_LIB_OBS_MAPS_H

#include "compat.h"
#include "tortie_maps.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, TORTIE_MAX_METRICS);
	__type(key, struct tortie_metrics_key);
	__type(value, struct tortie_metrics_val);
} tortie_metrics SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, TORTIE_EVENTS_BYTES);
} tortie_events SEC(".maps");

/*
 * Events that found tortie_events full, per CPU, indexed by enum tortie_event_type.
 * A full ring buffer loses the event, never the packet; this is how a reader learns
 * it fell behind. (Not in tortie_maps.h: its key and value are plain integers.)
 */
#define TORTIE_EVENT_TYPE_SLOTS 4
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TORTIE_EVENT_TYPE_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} tortie_ev_lost SEC(".maps");

#endif /* TORTIE_LIB_OBS_MAPS_H */
