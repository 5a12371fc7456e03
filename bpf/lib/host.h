/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * host.h — the node's own doors, as a pod sees them: the loopback network, which a pod
 * must never reach, and the node's addresses, which a pod reaches only as the node's
 * defaultEndpointToHostAction says.
 *
 * Why loopback is checked here and not left to the kernel: a packet from a veth to
 * 127.0.0.0/8 is a martian only while the interface's route_localnet is 0. kube-proxy
 * (and anyone copying it) sets it to 1, and then the kernel delivers a pod's SYN to
 * whatever listens on the node's 127.0.0.1 — the agent's health port included
 * (CVE-2020-8558). No legitimate pod traffic is addressed there, so it is dropped
 * before conntrack or policy look at it, whatever the configuration.
 */
#ifndef TORTIE_HOST_H
#define TORTIE_HOST_H

#include "compat.h"
#include "config.h"
#include "maps.h"
#include "packet.h"
#include "route.h"

static __always_inline int ipv4_is_loopback(__be32 addr)
{
	return (bpf_ntohl(addr) >> 24) == 127;
}

/*
 * A pod's new flow whose destination is an address of this node (a TORTIE_ROUTE_HOST
 * route: what the node's INPUT chain would get), asked after the sender's egress policy
 * allowed it. Returns TORTIE_DROP_ENDPOINT_TO_HOST when the node's action is Drop, else
 * TORTIE_REASON_NONE (Accept, Return: the host stack takes it). Replies and packets of
 * tracked flows never get here: the node's own connections to its pods (health checks,
 * `curl` on the node) keep working under Drop.
 */
static __always_inline __u8 endpoint_to_host4(const struct packet *pkt)
{
	struct tortie_route *route;

	if (tortie_cfg_endpoint_to_host_action != TORTIE_HOST_ACTION_DROP)
		return TORTIE_REASON_NONE;
	route = route_lookup4(pkt->daddr);
	if (route && route->type == TORTIE_ROUTE_HOST)
		return TORTIE_DROP_ENDPOINT_TO_HOST;
	return TORTIE_REASON_NONE;
}

#endif /* TORTIE_HOST_H */
