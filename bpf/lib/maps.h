/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * maps.h — every map the tc programs use (the observability maps they share with the
 * XDP program are declared in obs_maps.h). Keys and values are the structs of
 * tortie_maps.h, declared with BTF so `bpftool map dump` shows field names and the
 * codec test can compare them with src/maps/. The loader pins each one at
 * <pinRoot>/<name> (names stay within the kernel's 15 characters).
 */
#ifndef TORTIE_LIB_MAPS_H
#define TORTIE_LIB_MAPS_H

#include "compat.h"
#include "tortie_maps.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TORTIE_MAX_IFACES);
	__type(key, __u32); /* ifindex of the host end of a pod veth */
	__type(value, struct tortie_endpoint);
} tortie_ifaces SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, TORTIE_MAX_ROUTES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct tortie_route_key);
	__type(value, struct tortie_route);
} tortie_routes SEC(".maps");

/* The other nodes, by underlay address: the only sources IPIP is accepted from. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TORTIE_MAX_NODES);
	__type(key, __be32);
	__type(value, struct tortie_node);
} tortie_nodes SEC(".maps");

/* This node's underlay address and uplink (one entry; why a map: tortie_maps.h). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tortie_node_config);
} tortie_node_cfg SEC(".maps");

/* Policy, address stage: prefixes of 0..31 bits, tried after tortie_pol_ip32. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, TORTIE_MAX_POL_ADDR);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct tortie_pol_addr_key);
	__type(value, struct tortie_pol_addr_val);
} tortie_pol_addr SEC(".maps");

/* Policy, address stage: the /32s, tried before tortie_pol_addr (see tortie_maps.h). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TORTIE_MAX_POL_IP32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct tortie_pol_ip32_key);
	__type(value, struct tortie_pol_addr_val);
} tortie_pol_ip32 SEC(".maps");

/* Policy, port stage: (proto, port) prefixes of 1..23 bits (ranges, whole protocols). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, TORTIE_MAX_POL_L4);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct tortie_pol_l4_key);
	__type(value, struct tortie_verdict);
} tortie_pol_l4 SEC(".maps");

/* Policy, port stage: the exact (proto, port) entries, tried before tortie_pol_l4. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TORTIE_MAX_POL_PORT);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct tortie_pol_port_key);
	__type(value, struct tortie_verdict);
} tortie_pol_port SEC(".maps");

/* Policy, port stage: each class's default (its 0-bit entry), tried after tortie_pol_l4. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TORTIE_MAX_POL_DFLT);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32); /* class_id */
	__type(value, struct tortie_verdict);
} tortie_pol_dflt SEC(".maps");

/* Policy, source-port stage: every prefix of 0..16 bits (see tortie_maps.h). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, TORTIE_MAX_POL_SPORT);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct tortie_pol_sport_key);
	__type(value, struct tortie_verdict);
} tortie_pol_sprt SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TORTIE_MAX_CT);
	__type(key, struct tortie_ct_key);
	__type(value, struct tortie_ct_entry);
} tortie_ct SEC(".maps");

/* Conntrack entries created per endpoint (see tortie_maps.h). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, TORTIE_MAX_CT_NEW);
	__type(key, __u32); /* endpoint id; 0 = unknown or map full */
	__type(value, __u64);
} tortie_ct_new SEC(".maps");

/* New-flow budgets of sending pods (see tortie_maps.h); empty while the budget is off. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TORTIE_MAX_CT_BUDGET);
	__type(key, __u32);   /* endpoint id */
	__type(value, __u64); /* the bucket's theoretical arrival time, ns */
} tortie_ct_rate SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TORTIE_MAX_FRAGS);
	__type(key, struct tortie_frag_key);
	__type(value, struct tortie_frag_val);
} tortie_frags SEC(".maps");

/* tortie_metrics, tortie_events, tortie_ev_lost: shared with the XDP program. */
#include "obs_maps.h"

#endif /* TORTIE_LIB_MAPS_H */
