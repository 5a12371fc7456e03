/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * xdp_maps.h — the maps only the XDP program (xdp_uplink.c) uses. Keys and values are
 * the structs of tortie_maps.h; the loader pins them beside the tc programs' maps.
 */
#ifndef TORTIE_LIB_XDP_MAPS_H
#define TORTIE_LIB_XDP_MAPS_H

#include "compat.h"
#include "tortie_maps.h"

/* The uplink's deny list: source prefix -> the Deny rule (see tortie_maps.h). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, TORTIE_MAX_XDP_DENY);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct tortie_xdp_deny_key);
	__type(value, struct tortie_xdp_deny_val);
} tortie_xdp_deny SEC(".maps");

/*
 * When each CPU may next report an XDP drop as an event (ktime ns), see xdp.h. Per CPU,
 * so the drop path takes no lock and shares no cache line. (Not in tortie_maps.h: its
 * key and value are plain integers.)
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} tortie_xdp_evrl SEC(".maps");

#endif /* TORTIE_LIB_XDP_MAPS_H */
