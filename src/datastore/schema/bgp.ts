/**
 * BGPConfiguration (cluster-wide "default", or "node.<name>" overrides) and BGPPeer.
 * Only the default configuration takes the cluster-wide fields (AS number, mesh,
 * service addresses), as Calico; defaults are filled in for it alone.
 */
import { z } from 'zod';
import { fail } from '../../policy/fields.js';
import { errorMap } from '../../util/zod-issues.js';
import {
  asNumber,
  DUAL_STACK,
  dnsSubdomain,
  duration,
  intIn,
  ipv4Address,
  ipv6Only,
  isIPv4,
  networkCidr,
  port,
  selector,
} from './fields.js';

export const DEFAULT_AS_NUMBER = 64512;

export const BGP_LOG_SEVERITIES = ['Debug', 'Info', 'Warning', 'Error', 'Fatal'] as const;

const serviceCidrs = z.array(z.object({ cidr: networkCidr }).strict());

/**
 * A Kubernetes SecretKeySelector: where a BGP password is kept. Without Kubernetes the
 * agent reads it from a file, `<bgpSecretsDir>/<name>/<key>` (docs/bgp.md, "Passwords").
 */
const secretKeyRef = z
  .object({
    name: dnsSubdomain,
    key: z
      .string()
      .regex(/^[-._a-zA-Z0-9]+$/, 'a Secret key has letters, digits, "-", "_" and "."')
      .refine((k) => k !== '.' && k !== '..', 'a Secret key cannot be "." or ".."'),
    optional: z.boolean().optional(),
  })
  .strict();

export type SecretKeyRef = z.output<typeof secretKeyRef>;

/** Calico's password form: `{ secretKeyRef: { name, key } }`. */
const bgpPassword = z.object({ secretKeyRef }).strict();

/** A BGP password: the key itself (tortie's own spelling) or Calico's secretKeyRef. */
export type BgpPassword = string | { readonly secretKeyRef: SecretKeyRef };

/** Whether `text` is a standard (aa:nn) or large (aa:nn:mm) BGP community. */
export function isCommunity(text: string): boolean {
  const parts = text.split(':');
  return (
    (parts.length === 2 || parts.length === 3) &&
    parts.every((p) => /^\d+$/.test(p) && Number(p) <= (parts.length === 2 ? 65535 : 4294967295))
  );
}

/** A standard (aa:nn) or large (aa:nn:mm) BGP community. */
const communityValue = z.string().superRefine((text, ctx) => {
  if (!isCommunity(text))
    fail(ctx, `${JSON.stringify(text)} is not a BGP community (aa:nn or aa:nn:mm)`);
});

const bgpConfigurationFields = z
  .object({
    asNumber: asNumber.optional(),
    nodeToNodeMeshEnabled: z.boolean().optional(),
    logSeverityScreen: z.enum(BGP_LOG_SEVERITIES).optional(),
    listenPort: port.optional(),
    serviceClusterIPs: serviceCidrs.optional(),
    serviceExternalIPs: serviceCidrs.optional(),
    serviceLoadBalancerIPs: serviceCidrs.optional(),
    serviceLoadBalancerAggregation: z.enum(['Enabled', 'Disabled']).optional(),
    communities: z
      .array(z.object({ name: z.string().min(1), value: communityValue }).strict())
      .optional(),
    prefixAdvertisements: z
      .array(z.object({ cidr: networkCidr, communities: z.array(z.string()).optional() }).strict())
      .optional(),
    nodeMeshPassword: bgpPassword.optional(),
    nodeMeshMaxRestartTime: duration.optional(),
    bindMode: z.enum(['None', 'NodeIP']).optional(),
    ignoredInterfaces: z.array(z.string()).optional(),
    programClusterRoutes: z.enum(['Enabled', 'Disabled']).optional(),
    localWorkloadPeeringIPV4: ipv4Address.optional(),
    localWorkloadPeeringIPV6: ipv6Only,
  })
  .strict()
  .superRefine((spec, ctx) => {
    // As Calico: an advertisement's community is a value or the name of one in `communities`.
    const names = new Set((spec.communities ?? []).map((c) => c.name));
    for (const [i, adv] of (spec.prefixAdvertisements ?? []).entries())
      for (const [j, c] of (adv.communities ?? []).entries())
        if (!names.has(c) && !isCommunity(c))
          fail(
            ctx,
            `${JSON.stringify(c)} is neither a BGP community (aa:nn or aa:nn:mm) nor a name in communities`,
            ['prefixAdvertisements', i, 'communities', j],
          );
  });

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
    if (name.startsWith('node.')) {
      for (const field of CLUSTER_WIDE) {
        if (spec[field] !== undefined) {
          fail(ctx, `only the "default" BGPConfiguration may set ${field}`, [field]);
        }
      }
      return spec;
    }
    // As Calico: a name other than "default" and "node.<name>" is stored and has no effect.
    if (name !== 'default') return spec;
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
  if (text.includes(':') && !/^[\d.]+:\d+$/.test(text)) {
    fail(ctx, `${JSON.stringify(text)} is IPv6: ${DUAL_STACK}`);
    return;
  }
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
    // tortie's own spelling: the key itself. Calico's: {secretKeyRef} (docs/calico-compat.md).
    password: z
      .unknown()
      .transform((p, ctx): BgpPassword | undefined => {
        if (p === undefined) return undefined;
        if (typeof p === 'string') {
          if (p.length === 0 || p.length > 80)
            fail(ctx, 'a BGP password has 1-80 characters (TCP MD5 key)');
          return p;
        }
        const calico = bgpPassword.safeParse(p, { errorMap });
        if (!calico.success) {
          for (const issue of calico.error.issues) ctx.addIssue({ ...issue, path: issue.path });
          return undefined;
        }
        return calico.data;
      })
      .optional(),
    // Calico: "UseNodeIP" (the default) or "None"; tortie's own spelling: an address.
    sourceAddress: z.union([z.enum(['UseNodeIP', 'None']), ipv4Address]).optional(),
    localASNumber: asNumber.optional(),
    keepOriginalNextHop: z.boolean().optional(),
    nextHopMode: z.enum(['Auto', 'Self', 'Keep']).optional(),
    maxRestartTime: duration.optional(),
    keepaliveTime: duration.optional(),
    numAllowedLocalASNumbers: intIn(1, 10).optional(),
    ttlSecurity: intIn(0, 255).optional(),
    reachableBy: ipv4Address.optional(),
    filters: z.array(dnsSubdomain).optional(),
    localWorkloadSelector: selector.optional(),
    reversePeering: z.enum(['Auto', 'Manual']).optional(),
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

// --- BGPFilter ------------------------------------------------------------------------

const asPath = z.array(z.union([asNumber, z.string()]));

const bgpFilterRuleV4 = z
  .object({
    action: z.enum(['Accept', 'Reject']),
    cidr: networkCidr.optional(),
    prefixLength: z
      .object({ min: intIn(0, 32).optional(), max: intIn(0, 32).optional() })
      .strict()
      .optional(),
    matchOperator: z.enum(['Equal', 'NotEqual', 'In', 'NotIn']).optional(),
    source: z.enum(['RemotePeers']).optional(),
    interface: z
      .string()
      .regex(
        /^[a-zA-Z0-9_.*-]{1,15}$/,
        'an interface name or pattern (letters, digits, "_.-*", at most 15)',
      )
      .optional(),
    peerType: z.enum(['eBGP', 'iBGP']).optional(),
    communities: z
      .object({ values: z.array(communityValue) })
      .strict()
      .optional(),
    asPathPrefix: asPath.optional(),
    priority: intIn(1, 2147483646).optional(),
    operations: z
      .array(
        z
          .object({
            addCommunity: z.object({ value: communityValue }).strict().optional(),
            prependASPath: z.object({ prefix: asPath }).strict().optional(),
            setPriority: z
              .object({ value: intIn(1, 2147483646) })
              .strict()
              .optional(),
          })
          .strict(),
      )
      .optional(),
  })
  .strict()
  .superRefine((rule, ctx) => {
    if ((rule.cidr === undefined) !== (rule.matchOperator === undefined))
      fail(ctx, 'cidr and matchOperator go together', [
        rule.cidr === undefined ? 'cidr' : 'matchOperator',
      ]);
  });

/** BGPFilter: import and export rules for BGP peers (IPv4; the V6 lists are refused). */
export const bgpFilterSpec = z
  .object({
    exportV4: z.array(bgpFilterRuleV4).optional(),
    importV4: z.array(bgpFilterRuleV4).optional(),
    exportV6: ipv6Only,
    importV6: ipv6Only,
  })
  .strict();

export type BGPFilterSpec = z.output<typeof bgpFilterSpec>;
