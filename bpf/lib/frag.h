/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * frag.h — IPv4 fragments. Only the first fragment carries the L4 header, so when it
 * passes, its ports are remembered under (saddr, daddr, id, proto); the later
 * fragments of the datagram take them from there and follow the same flow. A later
 * fragment whose first never passed here has no ports to be judged by: dropped
 * (TORTIE_DROP_FRAG_NO_FIRST). Fragments that arrive before their first are dropped
 * too; the sender retransmits the datagram.
 */
#ifndef TORTIE_FRAG_H
#define TORTIE_FRAG_H

#include "compat.h"
#include "maps.h"
#include "packet.h"

static __always_inline void frag_key_of(const struct packet *pkt, struct tortie_frag_key *key)
{
	key->saddr = pkt->saddr;
	key->daddr = pkt->daddr;
	key->id = pkt->ip_id;
	key->proto = pkt->proto;
}

/* Called when a packet passes: remembers a first fragment's ports. */
static __always_inline void frag_remember_first(const struct packet *pkt)
{
	struct tortie_frag_key key = {};
	struct tortie_frag_val val = {};

	if (pkt->frag != FRAG_FIRST)
		return;
	frag_key_of(pkt, &key);
	val.sport = pkt->sport;
	val.dport = pkt->dport;
	bpf_map_update_elem(&tortie_frags, &key, &val, BPF_ANY);
}

/* A later fragment takes its first fragment's ports; returns 0 when none passed. */
static __always_inline int frag_restore_ports(struct packet *pkt)
{
	struct tortie_frag_key key = {};
	struct tortie_frag_val *val;

	frag_key_of(pkt, &key);
	val = bpf_map_lookup_elem(&tortie_frags, &key);
	if (!val)
		return 0;
	pkt->sport = val->sport;
	pkt->dport = val->dport;
	return 1;
}

/* Whatever let a later fragment through, it is counted as one. */
static __always_inline __u8 frag_pass_reason(const struct packet *pkt, __u8 reason)
{
	return pkt->frag == FRAG_LATER ? TORTIE_PASS_FRAGMENT : reason;
}

#endif /* TORTIE_FRAG_H */
