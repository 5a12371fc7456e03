/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * workload_encap.h — pods do not send tunnel traffic (Calico's default). A pod that
 * sends IPIP, or UDP to the VXLAN port, addressed at another node's underlay address,
 * has its packet forwarded by its own node like any packet to an outside address — and
 * with natOutgoing the node masquerades it, so it arrives from a known node with an
 * inner packet whose source the pod chose. The receiving node's inner-source check
 * (ipip.h) confines that to the sending node's own addresses; this guard stops it at
 * the source, as Felix does (allowIPIPPacketsFromWorkloads /
 * allowVXLANPacketsFromWorkloads, false by default).
 *
 * A dataplane guard, not policy: it runs after anti-spoofing and before conntrack, so
 * neither an allowing rule nor a tracked flow lets such a packet through.
 */
#ifndef TORTIE_WORKLOAD_ENCAP_H
#define TORTIE_WORKLOAD_ENCAP_H

#include "compat.h"
#include "config.h"
#include "packet.h"

/*
 * TORTIE_DROP_WORKLOAD_ENCAP for a pod's IPIP or VXLAN that its setting does not allow,
 * else TORTIE_REASON_NONE. A later fragment carries the ports of its first (restored by
 * the caller), so VXLAN split in fragments is caught too — its first fragment was
 * dropped here, so the rest find no first fragment anyway.
 */
static __always_inline __u8 workload_encap_check4(const struct packet *pkt)
{
	if (pkt->proto == IPPROTO_IPIP && !tortie_cfg_allow_ipip_from_workloads)
		return TORTIE_DROP_WORKLOAD_ENCAP;
	if (pkt->proto == IPPROTO_UDP && !tortie_cfg_allow_vxlan_from_workloads &&
	    bpf_ntohs(pkt->dport) == tortie_cfg_vxlan_port)
		return TORTIE_DROP_WORKLOAD_ENCAP;
	return TORTIE_REASON_NONE;
}

#endif /* TORTIE_WORKLOAD_ENCAP_H */
