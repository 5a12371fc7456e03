// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * xdp_uplink.c — the program of the node's uplink in XDP, ahead of everything else:
 *
 *   tortie_xdp_uplink  (uplink, XDP) an IPv4 frame whose source address is in the deny
 *                      list (tortie_xdp_deny, the doNotTrack Deny rules of the node's
 *                      host endpoint) is dropped before the kernel allocates an skb,
 *                      counted as TORTIE_DROP_XDP_DENY and reported as a drop event;
 *                      every other frame passes (XDP_PASS) to tc ingress, where
 *                      tortie_from_uplink judges and counts it as before.
 *
 * Passes are not counted here: each of them is counted by tc ingress a moment later,
 * and a second counter per frame would tax every legitimate packet to say nothing new.
 *
 * A separate object from tc_policy.o so that a node can run the tc programs without
 * XDP (and load this one alone, with its small maps, in tests). The loader pins its
 * maps under the same root: tortie_metrics, tortie_events and tortie_ev_lost are the
 * tc programs' own, shared through their pins (lib/obs_maps.h).
 * Needs kernel 5.10 (BPF ring buffer 5.8, xdp_md.ingress_ifindex 4.16).
 */
#include "lib/compat.h"
#include "tortie_maps.h"
#include "lib/xdp.h"

SEC("xdp")
int tortie_xdp_uplink(struct xdp_md *xdp)
{
	const struct tortie_xdp_deny_val *deny;
	struct iphdr *ip = xdp_ipv4_header(xdp);

	if (!ip)
		return XDP_PASS;
	deny = xdp_deny_lookup(ip->saddr);
	if (!deny)
		return XDP_PASS;
	return xdp_drop_denied(xdp, ip, deny->rule_id);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
