/**
 * Node: one host of the cluster and its BGP identity. The fields Calico's node agent
 * writes (`orchRefs`, `addresses`, `interfaces`, `wireguard`, `vxlanTunnelMACAddr`) are
 * accepted and stored; the IPv6 ones are refused (dual stack is not yet supported).
 */
import { z } from 'zod';
import { asNumber, interfaceAddress, ipv4Address, ipv6Only, mac } from './fields.js';

const orchRef = z.object({ nodeName: z.string().optional(), orchestrator: z.string() }).strict();

export const nodeSpec = z
  .object({
    bgp: z
      .object({
        ipv4Address: interfaceAddress,
        ipv6Address: ipv6Only,
        asNumber: asNumber.optional(),
        routeReflectorClusterID: ipv4Address.optional(),
        ipv4IPIPTunnelAddr: ipv4Address.optional(),
      })
      .strict()
      .optional(),
    ipv4VXLANTunnelAddr: ipv4Address.optional(),
    ipv6VXLANTunnelAddr: ipv6Only,
    vxlanTunnelMACAddr: mac.optional(),
    vxlanTunnelMACAddrV6: ipv6Only,
    orchRefs: z.array(orchRef).optional(),
    addresses: z
      .array(z.object({ address: z.string(), type: z.string().optional() }).strict())
      .optional(),
    interfaces: z
      .array(z.object({ name: z.string(), addresses: z.array(z.string()).optional() }).strict())
      .optional(),
    wireguard: z
      .object({ interfaceIPv4Address: ipv4Address.optional(), interfaceIPv6Address: ipv6Only })
      .strict()
      .optional(),
  })
  .strict();

export type NodeSpec = z.output<typeof nodeSpec>;
