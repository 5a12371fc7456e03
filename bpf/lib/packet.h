/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * packet.h — what the parser learns about a packet, and the per-packet context the
 * programs carry from the first header to the exit (who is accountable for the
 * verdict, for counters and events).
 */
#ifndef TORTIE_PACKET_H
#define TORTIE_PACKET_H

#include "compat.h"
#include "tortie_maps.h"

enum frag_kind {
	FRAG_NONE = 0,  /* a whole datagram */
	FRAG_FIRST = 1, /* MF set, offset 0: carries the L4 header */
	FRAG_LATER = 2, /* offset > 0: no L4 header, ports come from tortie_frags */
};

/*
 * Ports follow the event convention of tortie_maps.h: TCP/UDP/UDPLite/SCTP carry their
 * ports; ICMP carries (type << 8) | code in dport and, for query messages (echo,
 * timestamp, info, address mask), the identifier in sport; other protocols carry 0.
 * So bpf_ntohs(dport) is always the policy "port", and the conntrack tuple derives
 * from (sport, dport) alone — also for a later fragment whose ports were restored.
 */
struct packet {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__be16 ip_id;
	__u8 proto;
	__u8 tcp_flags;
	__u8 frag;       /* enum frag_kind */
	__u8 ttl;
	__u8 has_inner;  /* ICMP error whose quoted header parsed: inner is valid */
	__u8 tos;        /* parse_packet only */
	struct tortie_ct_key inner; /* the quoted packet's tuple, conntrack convention */
};

/*
 * Where the packet was met and who answers for its fate. ep_id/dir start as the
 * interface's endpoint and the program's direction; a policy decision about another
 * endpoint (the receiver in local delivery) moves them there, so a drop is counted
 * and reported against the endpoint whose policy decided it.
 */
struct pkt_ctx {
	struct packet pkt;
	__u32 ifindex;
	__u32 len;       /* skb->len: bytes for the counters */
	__u32 ep_id;
	__u32 rule_id;
	__u8 dir;        /* enum tortie_dir */
	__u8 action;     /* enum tortie_action of the deciding verdict, if policy decided */
	__u8 pad[2];
};

static __always_inline void ctx_blame(struct pkt_ctx *ctx, __u32 ep_id, __u8 dir)
{
	ctx->ep_id = ep_id;
	ctx->dir = dir;
}

#endif /* TORTIE_PACKET_H */
