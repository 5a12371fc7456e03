/** The fixed facts of the pod packet path (docs/architecture.md, "Packet path"). */

/** Every host-side pod veth name starts with this; the rest is a hash of the workload id. */
export const HOST_VETH_PREFIX = 'tor';

/** Linux IFNAMSIZ - 1: the longest interface name the kernel accepts. */
export const MAX_IFNAME_LENGTH = 15;

/** The MAC of every host-side pod veth (Calico's choice: the pod never needs to learn it). */
export const HOST_VETH_MAC = 'ee:ee:ee:ee:ee:ee';

/**
 * The pod's default gateway. No interface has this address: the host end answers ARP for
 * it by proxy ARP, which requires the host namespace to route 169.254.1.1 through some
 * other interface (normally its default route).
 */
export const POD_GATEWAY_IP = '169.254.1.1';

export const DEFAULT_POD_IFNAME = 'eth0';
