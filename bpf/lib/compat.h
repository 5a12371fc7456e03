/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * compat.h — the kernel UAPI and libbpf headers every program needs, plus what Debian's
 * 6.1 UAPI headers lack. Nothing tortie-specific lives here. No glibc header may be
 * reached from here, directly or through a UAPI header (check-deps.sh refuses the build):
 * that is why ICMP comes from icmp.h and not <linux/icmp.h>.
 */
#ifndef TORTIE_COMPAT_H
#define TORTIE_COMPAT_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include "icmp.h"

#ifndef IPPROTO_UDPLITE
#define IPPROTO_UDPLITE 136
#endif
#ifndef IPPROTO_SCTP
#define IPPROTO_SCTP 132
#endif

#define IP_DF 0x4000
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff

#define TCP_FLAG_FIN_BIT 0x01
#define TCP_FLAG_SYN_BIT 0x02
#define TCP_FLAG_RST_BIT 0x04
#define TCP_FLAG_ACK_BIT 0x10

/* The UAPI has no SCTP common header; only its ports matter here. */
struct sctp_common_hdr {
	__be16 source;
	__be16 dest;
	__be32 vtag;
	__le32 checksum;
};

#define NSEC_PER_SEC 1000000000ULL

/*
 * bpf_skb_adjust_room flag of kernel 6.3+: the packet that remains after the outer
 * header is removed is IPv4. Older kernels refuse it (ipip_decap4 copes). Named apart
 * from the UAPI enum so newer headers do not clash.
 */
#define TORTIE_ADJ_ROOM_DECAP_L3_IPV4 (1ULL << 7)

/* What a helper returns for an argument it does not accept (no errno.h here). */
#define TORTIE_EINVAL 22

#endif /* TORTIE_COMPAT_H */
