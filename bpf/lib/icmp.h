/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * icmp.h — the ICMPv4 header and message types (RFC 792), defined here rather than
 * taken from <linux/icmp.h>: that header includes <linux/if.h>, which includes glibc's
 * <sys/socket.h>, and under -target bpf glibc selects 32-bit stubs that a normal machine
 * does not have. The BPF objects build from UAPI, libbpf and clang headers only
 * (check-deps.sh enforces it).
 */
#ifndef TORTIE_ICMP_H
#define TORTIE_ICMP_H

#include <linux/types.h>

#define ICMP_ECHOREPLY 0
#define ICMP_DEST_UNREACH 3
#define ICMP_SOURCE_QUENCH 4
#define ICMP_REDIRECT 5
#define ICMP_ECHO 8
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETERPROB 12
#define ICMP_TIMESTAMP 13
#define ICMP_TIMESTAMPREPLY 14
#define ICMP_INFO_REQUEST 15
#define ICMP_INFO_REPLY 16
#define ICMP_ADDRESS 17
#define ICMP_ADDRESSREPLY 18

#define ICMP_FRAG_NEEDED 4 /* code of ICMP_DEST_UNREACH */

/* The fixed 8 bytes every ICMPv4 message starts with; layout as on the wire. */
struct icmphdr {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	union {
		struct {
			__be16 id;
			__be16 sequence;
		} echo;
		__be32 gateway;
		struct {
			__be16 __unused;
			__be16 mtu;
		} frag;
		__u8 reserved[4];
	} un;
};

#endif /* TORTIE_ICMP_H */
