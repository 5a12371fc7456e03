/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * parse.h — Ethernet, IPv4 and L4 headers into struct packet. Every read is bounds
 * checked against data_end; every inconsistency has a reason (docs/dataplane.md has
 * the table). A parse either yields TORTIE_REASON_NONE (an IPv4 packet to judge) or
 * the reason the packet leaves now.
 */
#ifndef TORTIE_PARSE_H
#define TORTIE_PARSE_H

#include "compat.h"
#include "packet.h"

/*
 * Headers must be in the linear part of the skb for direct access. Pull enough for
 * Ethernet + the largest IPv4 header + an ICMP header + a quoted IPv4 header + 8
 * bytes, which also covers the largest TCP header.
 */
#define PARSE_PULL_BYTES (ETH_HLEN + 60 + 8 + 60 + 8)

/*
 * Whether every header the parsers read is in the linear part already: an IPv4 packet
 * (not a later fragment) carrying TCP, UDP, UDP-Lite, SCTP or IPIP, whose IP header and
 * the part of its L4 header that is read (for IPIP: the inner IPv4 header, which
 * ipip_classify4 checks; the inner packet is pulled for itself once decapsulated) lie
 * before data_end. Anything else (ICMP and its quote, other protocols) is pulled as
 * ever.
 *
 * Why: a TCP socket builds its headers in the skb's head and leaves the payload in
 * page fragments, so a pull of PARSE_PULL_BYTES moved payload into the head of nearly
 * every packet with data — a copy, and for a GSO packet a reallocation of the head —
 * to read nothing from it.
 */
static __always_inline int parse_headers_linear(void *data, void *data_end)
{
	struct ethhdr *eth = data;
	struct iphdr *iph = (void *)(eth + 1);
	__u32 l4_len;

	if ((void *)(iph + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP) ||
	    iph->version != 4 || iph->ihl < 5 || (iph->frag_off & bpf_htons(IP_OFFSET)))
		return 0;
	switch (iph->protocol) {
	case IPPROTO_TCP:
		l4_len = sizeof(struct tcphdr);
		break;
	case IPPROTO_UDP:
	case IPPROTO_UDPLITE:
		l4_len = sizeof(struct udphdr);
		break;
	case IPPROTO_SCTP:
		l4_len = sizeof(struct sctp_common_hdr);
		break;
	case IPPROTO_IPIP: /* the uplink reads the inner IPv4 header, parse_l4 nothing */
		l4_len = sizeof(struct iphdr);
		break;
	default:
		return 0;
	}
	return (void *)iph + iph->ihl * 4 + l4_len <= data_end;
}

static __always_inline void parse_pull_headers(struct __sk_buff *skb)
{
	__u32 want = skb->len < PARSE_PULL_BYTES ? skb->len : PARSE_PULL_BYTES;
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;

	if (data_end - data >= want || parse_headers_linear(data, data_end))
		return;
	bpf_skb_pull_data(skb, want);
}

static __always_inline int icmp_is_error(__u8 type)
{
	return type == ICMP_DEST_UNREACH || type == ICMP_SOURCE_QUENCH ||
	       type == ICMP_REDIRECT || type == ICMP_TIME_EXCEEDED ||
	       type == ICMP_PARAMETERPROB;
}

/* Query messages carry an identifier that pairs a request with its reply. */
static __always_inline int icmp_is_query(__u8 type)
{
	return type == ICMP_ECHO || type == ICMP_ECHOREPLY ||
	       type == ICMP_TIMESTAMP || type == ICMP_TIMESTAMPREPLY ||
	       type == ICMP_INFO_REQUEST || type == ICMP_INFO_REPLY ||
	       type == ICMP_ADDRESS || type == ICMP_ADDRESSREPLY;
}

static __always_inline int proto_has_ports(__u8 proto)
{
	return proto == IPPROTO_TCP || proto == IPPROTO_UDP ||
	       proto == IPPROTO_UDPLITE || proto == IPPROTO_SCTP;
}

/*
 * The conntrack tag of an ICMP query message (tortie_ct_key.icmp_query): a request is
 * its own type, a reply the type of the request it answers with TORTIE_CT_ICMP_REPLY
 * added; anything else 0. Reversing a tuple flips the reply bit, so an echo reply's
 * reversed tuple is its echo request's, while a request sent back the other way (or a
 * reply to another request type) finds nothing.
 */
static __always_inline __u8 icmp_query_tag(__u8 type)
{
	switch (type) {
	case ICMP_ECHO:
	case ICMP_TIMESTAMP:
	case ICMP_INFO_REQUEST:
	case ICMP_ADDRESS:
		return type;
	case ICMP_ECHOREPLY:
		return ICMP_ECHO | TORTIE_CT_ICMP_REPLY;
	case ICMP_TIMESTAMPREPLY:
		return ICMP_TIMESTAMP | TORTIE_CT_ICMP_REPLY;
	case ICMP_INFO_REPLY:
		return ICMP_INFO_REQUEST | TORTIE_CT_ICMP_REPLY;
	case ICMP_ADDRESSREPLY:
		return ICMP_ADDRESS | TORTIE_CT_ICMP_REPLY;
	default:
		return 0;
	}
}

/*
 * The header quoted by an ICMP error, as a conntrack tuple. Best effort: anything
 * that does not parse leaves has_inner 0 and the error is judged like any packet.
 * avail: bytes of the outer datagram from the quote on (tot_len based).
 */
static __always_inline void parse_icmp_quote(struct packet *pkt, void *quote, __u32 avail,
					     void *data_end)
{
	struct iphdr *iph = quote;
	__u32 ihl;
	void *l4;

	if ((void *)(iph + 1) > data_end || sizeof(*iph) > avail)
		return;
	if (iph->version != 4 || iph->ihl < 5)
		return;
	if (iph->frag_off & bpf_htons(IP_OFFSET))
		return;
	ihl = iph->ihl * 4;
	l4 = quote + ihl;

	if (proto_has_ports(iph->protocol)) {
		__be16 *ports = l4;

		if ((void *)(ports + 2) > data_end || ihl + 4 > avail)
			return;
		pkt->inner.sport = ports[0];
		pkt->inner.dport = ports[1];
	} else if (iph->protocol == IPPROTO_ICMP) {
		struct icmphdr *icmp = l4;

		if ((void *)(icmp + 1) > data_end || ihl + sizeof(*icmp) > avail)
			return;
		if (icmp_is_query(icmp->type)) {
			pkt->inner.sport = icmp->un.echo.id;
			pkt->inner.dport = icmp->un.echo.id;
			pkt->inner.icmp_query = icmp_query_tag(icmp->type);
		}
	}
	pkt->inner.saddr = iph->saddr;
	pkt->inner.daddr = iph->daddr;
	pkt->inner.proto = iph->protocol;
	pkt->has_inner = 1;
}

/*
 * An L4 header must be both present (data_end) and inside the datagram (avail =
 * tot_len - IHL, the bytes the IP header claims after itself).
 */
static __always_inline __u8 parse_l4(struct packet *pkt, void *l4, __u32 avail, void *data_end)
{
	switch (pkt->proto) {
	case IPPROTO_TCP: {
		struct tcphdr *tcp = l4;

		if ((void *)(tcp + 1) > data_end || sizeof(*tcp) > avail)
			return TORTIE_DROP_MALFORMED;
		if (tcp->doff < 5 || tcp->doff * 4 > avail)
			return TORTIE_DROP_MALFORMED;
		pkt->sport = tcp->source;
		pkt->dport = tcp->dest;
		pkt->tcp_flags = ((__u8 *)tcp)[13];
		return TORTIE_REASON_NONE;
	}
	case IPPROTO_UDP:
	case IPPROTO_UDPLITE: {
		struct udphdr *udp = l4;

		if ((void *)(udp + 1) > data_end || sizeof(*udp) > avail)
			return TORTIE_DROP_MALFORMED;
		pkt->sport = udp->source;
		pkt->dport = udp->dest;
		return TORTIE_REASON_NONE;
	}
	case IPPROTO_SCTP: {
		struct sctp_common_hdr *sctp = l4;

		if ((void *)(sctp + 1) > data_end || sizeof(*sctp) > avail)
			return TORTIE_DROP_MALFORMED;
		pkt->sport = sctp->source;
		pkt->dport = sctp->dest;
		return TORTIE_REASON_NONE;
	}
	case IPPROTO_ICMP: {
		struct icmphdr *icmp = l4;

		if ((void *)(icmp + 1) > data_end || sizeof(*icmp) > avail)
			return TORTIE_DROP_MALFORMED;
		pkt->dport = bpf_htons(((__u16)icmp->type << 8) | icmp->code);
		if (icmp_is_query(icmp->type))
			pkt->sport = icmp->un.echo.id;
		else if (icmp_is_error(icmp->type))
			parse_icmp_quote(pkt, (void *)(icmp + 1), avail - sizeof(*icmp), data_end);
		return TORTIE_REASON_NONE;
	}
	default:
		return TORTIE_REASON_NONE; /* judged with port 0 */
	}
}

static __always_inline __u8 parse_ipv4(struct __sk_buff *skb, struct packet *pkt, void *l3,
				       void *data_end)
{
	struct iphdr *iph = l3;
	__u32 ihl, tot_len, present;
	__u16 frag_off;

	if ((void *)(iph + 1) > data_end)
		return TORTIE_DROP_MALFORMED;
	if (iph->version != 4 || iph->ihl < 5)
		return TORTIE_DROP_MALFORMED;
	ihl = iph->ihl * 4;
	if (l3 + ihl > data_end)
		return TORTIE_DROP_MALFORMED;

	/*
	 * Bytes present after Ethernet: skb->len, not data_end, because the payload of a
	 * large packet may sit in fragments beyond the linear part. Trailing padding (a
	 * frame longer than tot_len) is fine. A GSO packet larger than 64 KiB (BIG TCP)
	 * carries tot_len 0: it stands for the whole packet.
	 */
	present = skb->len - ETH_HLEN;
	tot_len = bpf_ntohs(iph->tot_len);
	if (tot_len == 0 && skb->gso_size != 0)
		tot_len = present;
	if (tot_len < ihl || tot_len > present)
		return TORTIE_DROP_MALFORMED;

	pkt->saddr = iph->saddr;
	pkt->daddr = iph->daddr;
	pkt->proto = iph->protocol;
	pkt->ip_id = iph->id;
	pkt->ttl = iph->ttl;
	pkt->tos = iph->tos;

	frag_off = bpf_ntohs(iph->frag_off);
	if (frag_off & IP_OFFSET) {
		pkt->frag = FRAG_LATER;
		return TORTIE_REASON_NONE; /* no L4 header here; ports from tortie_frags */
	}
	if (frag_off & IP_MF)
		pkt->frag = FRAG_FIRST;

	return parse_l4(pkt, l3 + ihl, tot_len - ihl, data_end);
}

/*
 * TORTIE_REASON_NONE: an IPv4 packet to judge; TORTIE_PASS_ARP: let it through;
 * anything else: the drop reason.
 */
static __always_inline __u8 parse_packet(struct __sk_buff *skb, struct packet *pkt)
{
	void *data, *data_end;
	struct ethhdr *eth;

	parse_pull_headers(skb);
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	eth = data;

	if ((void *)(eth + 1) > data_end)
		return TORTIE_DROP_MALFORMED;
	/* A tag the kernel already moved out of the frame is still a VLAN. */
	if (skb->vlan_present)
		return TORTIE_DROP_UNSUPPORTED_L3;

	switch (eth->h_proto) {
	case bpf_htons(ETH_P_ARP):
		return TORTIE_PASS_ARP;
	case bpf_htons(ETH_P_IPV6):
		return TORTIE_DROP_IPV6;
	case bpf_htons(ETH_P_IP):
		return parse_ipv4(skb, pkt, (void *)(eth + 1), data_end);
	default:
		return TORTIE_DROP_UNSUPPORTED_L3;
	}
}

#endif /* TORTIE_PARSE_H */
