// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * feeder.bpf.c — the last hop of `tortie bench xdp`'s flood: on the generator's side,
 * every frame is redirected (XDP_REDIRECT) into the generator's end of the lab's veth,
 * whose peer, the node's uplink, then receives it as an XDP frame, not as the skb the
 * flood was sent in. So the node receives the flood as from a NIC: its XDP program runs
 * before any skb exists, and without XDP the node builds the skb itself (iptables pays
 * that, as on a real uplink). Built by the bench with clang, the target's ifindex given
 * as -DTARGET_IFINDEX.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int tortie_bench_feeder(struct xdp_md *xdp)
{
	return bpf_redirect(TARGET_IFINDEX, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
