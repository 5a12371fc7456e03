/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * config.h — load-time configuration (.rodata). The loader sets these with
 * setGlobal() before load; the verifier then sees constants and prunes the branches
 * a configuration disables. Defaults are what a node runs with when nobody says
 * otherwise.
 */
#ifndef TORTIE_CONFIG_H
#define TORTIE_CONFIG_H

#include "compat.h"

/* Emit a TORTIE_EVENT_DROP for every dropped packet. */
volatile const __u32 tortie_cfg_drop_events = 1;
/* Emit a TORTIE_EVENT_VERDICT for every policy decision (debugging, `tortie monitor`). */
volatile const __u32 tortie_cfg_trace_verdicts = 0;

/* Conntrack idle timeouts, in nanoseconds since the flow's last packet. */
volatile const __u64 tortie_cfg_ct_syn_timeout_ns = 60 * NSEC_PER_SEC;
volatile const __u64 tortie_cfg_ct_established_timeout_ns = 6 * 3600 * NSEC_PER_SEC;
volatile const __u64 tortie_cfg_ct_closing_timeout_ns = 10 * NSEC_PER_SEC; /* CLOSING and CLOSED */
volatile const __u64 tortie_cfg_ct_other_timeout_ns = 60 * NSEC_PER_SEC;   /* UDP, ICMP, ... */

/*
 * New-flow budget per sending pod (docs/dataplane.md, "Conntrack capacity and
 * fairness"): a pod may open one new flow every interval, and a burst of that many at
 * once; the flow beyond is dropped as TORTIE_DROP_CT_BUDGET and creates no entry.
 * Interval 0 = off (the default): the verifier prunes the check. The loader keeps the
 * burst at 1 or more.
 */
volatile const __u64 tortie_cfg_ct_budget_interval_ns = 0;
volatile const __u32 tortie_cfg_ct_budget_burst = 1;

/*
 * Pods may not send tunnel traffic themselves (Calico's FelixConfiguration
 * allowIPIPPacketsFromWorkloads / allowVXLANPacketsFromWorkloads, both false by
 * default): a pod's IPIP (protocol 4), or UDP to the VXLAN port, is dropped in
 * tortie_from_pod as TORTIE_DROP_WORKLOAD_ENCAP unless its setting is 1. Otherwise a
 * pod could hand another node a tunnelled packet with any inner source, its outer
 * source made a node's by the node's own masquerade (natOutgoing).
 */
volatile const __u32 tortie_cfg_allow_ipip_from_workloads = 0;
volatile const __u32 tortie_cfg_allow_vxlan_from_workloads = 0;
/* The VXLAN UDP destination port that counts as tunnel traffic (host byte order). */
volatile const __u32 tortie_cfg_vxlan_port = 4789;

/*
 * A pod's new flow to an address of this node (a TORTIE_ROUTE_HOST route), once the
 * sender's egress policy allowed it: Felix's defaultEndpointToHostAction. Accept and
 * Return both hand the packet to the host stack (tortie has no host endpoint policy yet
 * for Return to continue with); Drop drops it as TORTIE_DROP_ENDPOINT_TO_HOST.
 */
#define TORTIE_HOST_ACTION_DROP 0
#define TORTIE_HOST_ACTION_ACCEPT 1
#define TORTIE_HOST_ACTION_RETURN 2
volatile const __u32 tortie_cfg_endpoint_to_host_action = TORTIE_HOST_ACTION_DROP;

#endif /* TORTIE_CONFIG_H */
