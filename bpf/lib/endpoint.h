/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* endpoint.h — the local endpoint (pod) behind a host veth, by ifindex. */
#ifndef TORTIE_ENDPOINT_H
#define TORTIE_ENDPOINT_H

#include "compat.h"
#include "maps.h"

static __always_inline struct tortie_endpoint *endpoint_of(__u32 ifindex)
{
	return bpf_map_lookup_elem(&tortie_ifaces, &ifindex);
}

#endif /* TORTIE_ENDPOINT_H */
