/**
 * BGPConfiguration (cluster-wide "default", or "node.<name>" overrides) and BGPPeer.
 * Only the default configuration takes the cluster-wide fields (AS number, mesh,
 * service addresses), as Calico; defaults are filled in for it alone.
 */
import { z } from 'zod';
import { fail } from '../../policy/fields.js';
import {
  asNumber,
  dnsSubdomain,
  ipv4Address,
  isIPv4,
  networkCidr,
  port,
  selector,
} from './fields.js';

export const DEFAULT_AS_NUMBER = 64512;

export const BGP_LOG_SEVERITIES = ['Debug', 'Info', 'Warning', 'Error', 'Fatal'] as const;

const serviceCidrs = z.array(z.object({ cidr: networkCidr }).strict());

const bgpConfigurationFields = z
  .object({
    asNumber: asNumber.optional(),
    nodeToNodeMeshEnabled: z.boolean().optional(),
    logSeverityScreen: z.enum(BGP_LOG_SEVERITIES).optional(),
    listenPort: port.optional(),
    serviceClusterIPs: serviceCidrs.optional(),
    serviceExternalIPs: serviceCidrs.optional(),
    serviceLoadBalancerIPs: serviceCidrs.optional(),
  })
  .strict();

const CLUSTER_WIDE = [
  'asNumber',
  'nodeToNodeMeshEnabled',
  'serviceClusterIPs',
  'serviceExternalIPs',
  'serviceLoadBalancerIPs',
] as const;

export type BGPConfigurationSpec = z.output<typeof bgpConfigurationFields>;

/** The spec schema for the configuration called `name`. */
export function bgpConfigurationSpec(name: string) {
  return bgpConfigurationFields.transform((spec, ctx): BGPConfigurationSpec => {
    if (name !== 'default') {
      for (const field of CLUSTER_WIDE) {
        if (spec[field] !== undefined) {
          fail(ctx, `only the "default" BGPConfiguration may set ${field}`, [field]);
        }
      }
      return spec;
    }
    return {
      ...spec,
      asNumber: spec.asNumber ?? DEFAULT_AS_NUMBER,
      nodeToNodeMeshEnabled: spec.nodeToNodeMeshEnabled ?? true,
      logSeverityScreen: spec.logSeverityScreen ?? 'Info',
    };
  });
}

/** "a.b.c.d" or "a.b.c.d:port". */
const peerIP = z.string().superRefine((text, ctx) => {
  const m = /^([^:]+)(?::(\d+))?$/.exec(text);
  const portNumber = m?.[2] === undefined ? 179 : Number(m[2]);
  if (m === null || !isIPv4(m[1]!) || portNumber < 1 || portNumber > 65535) {
    fail(
      ctx,
      `${JSON.stringify(text)} is not an IPv4 peer address (expected a.b.c.d or a.b.c.d:port)`,
    );
  }
});

export const bgpPeerSpec = z
  .object({
    peerIP: peerIP.optional(),
    asNumber: asNumber.optional(),
    node: dnsSubdomain.optional(),
    nodeSelector: selector.optional(),
    peerSelector: selector.optional(),
    password: z
      .string()
      .superRefine((p, ctx) => {
        if (p.length === 0 || p.length > 80)
          fail(ctx, 'a BGP password has 1-80 characters (TCP MD5 key)');
      })
      .optional(),
    sourceAddress: ipv4Address.optional(),
  })
  .strict()
  .superRefine((spec, ctx) => {
    if (spec.node !== undefined && spec.nodeSelector !== undefined) {
      fail(ctx, 'node and nodeSelector cannot both be set', ['nodeSelector']);
    }
    if (spec.peerIP !== undefined && spec.peerSelector !== undefined) {
      fail(ctx, 'peerIP and peerSelector cannot both be set', ['peerSelector']);
    }
    if (spec.peerIP === undefined && spec.peerSelector === undefined) {
      fail(ctx, 'a BGPPeer needs peerIP (with asNumber) or peerSelector', ['peerIP']);
    }
    if (spec.peerIP !== undefined && spec.asNumber === undefined) {
      fail(ctx, 'required with peerIP', ['asNumber']);
    }
    if (spec.peerSelector !== undefined && spec.asNumber !== undefined) {
      fail(ctx, 'peers chosen by peerSelector use their own Node AS number; remove asNumber', [
        'asNumber',
      ]);
    }
  });

export type BGPPeerSpec = z.output<typeof bgpPeerSpec>;
