/** Node: one host of the cluster and its BGP identity. */
import { z } from 'zod';
import { asNumber, interfaceAddress, ipv4Address } from './fields.js';

export const nodeSpec = z
  .object({
    bgp: z
      .object({
        ipv4Address: interfaceAddress,
        asNumber: asNumber.optional(),
        routeReflectorClusterID: ipv4Address.optional(),
        ipv4IPIPTunnelAddr: ipv4Address.optional(),
      })
      .strict()
      .optional(),
    ipv4VXLANTunnelAddr: ipv4Address.optional(),
  })
  .strict();

export type NodeSpec = z.output<typeof nodeSpec>;
