/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * node.h — this node on the underlay (tortie_node_cfg) and the other nodes it accepts
 * tunnel traffic from (tortie_nodes).
 */
#ifndef TORTIE_NODE_H
#define TORTIE_NODE_H

#include "compat.h"
#include "maps.h"

/* Never NULL once loaded (an ARRAY entry always exists); all zeros until configured. */
static __always_inline const struct tortie_node_config *node_config(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&tortie_node_cfg, &zero);
}

static __always_inline int node_is_known(__be32 underlay_ip)
{
	return bpf_map_lookup_elem(&tortie_nodes, &underlay_ip) != NULL;
}

#endif /* TORTIE_NODE_H */
