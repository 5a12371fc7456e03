/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * metrics.h — per-CPU packet and byte counters by (endpoint, reason, direction).
 * Every packet is counted exactly once per program run under the reason it left with.
 */
#ifndef TORTIE_METRICS_H
#define TORTIE_METRICS_H

#include "compat.h"
#include "obs_maps.h"

static __always_inline int __metrics_add(const struct tortie_metrics_key *key, __u32 bytes)
{
	struct tortie_metrics_val *val = bpf_map_lookup_elem(&tortie_metrics, key);

	if (!val) {
		struct tortie_metrics_val zero = {};

		/* EEXIST just means another CPU created it first; look up again either way. */
		bpf_map_update_elem(&tortie_metrics, key, &zero, BPF_NOEXIST);
		val = bpf_map_lookup_elem(&tortie_metrics, key);
		if (!val)
			return -1;
	}
	/* Per-CPU value: no other CPU writes it, plain increments suffice. */
	val->packets += 1;
	val->bytes += bytes;
	return 0;
}

/*
 * Count one packet. When the map is full (TORTIE_MAX_METRICS keys) the packet is counted
 * under endpoint 0 with the same reason and direction, so totals by reason stay exact.
 */
static __always_inline void metrics_count(__u32 ep_id, __u8 reason, __u8 dir, __u32 bytes)
{
	struct tortie_metrics_key key = { .ep_id = ep_id, .reason = reason, .dir = dir };

	if (__metrics_add(&key, bytes) == 0 || ep_id == 0)
		return;
	key.ep_id = 0;
	__metrics_add(&key, bytes);
}

#endif /* TORTIE_METRICS_H */
