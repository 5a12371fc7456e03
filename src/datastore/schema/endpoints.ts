/**
 * WorkloadEndpoint (a pod's interface, written by the CNI plugin) and HostEndpoint (a
 * node's own interface). Labels live in metadata, as in Calico.
 */
import { z } from 'zod';
import { fail } from '../../policy/fields.js';
import {
  dnsSubdomain,
  endpointPorts,
  workloadEndpointPorts,
  hostNetwork,
  interfaceName,
  ipv4Address,
  ipv6Only,
  mac,
  profileNames,
  uniqueNames,
} from './fields.js';

const nonEmpty = (what: string) =>
  z.string().superRefine((s, ctx) => {
    if (s.trim() === '') fail(ctx, `${what} must not be empty`);
  });

/** As Calico's "omitempty": an empty string is the same as leaving the field out. */
function omitEmpty<T extends z.ZodTypeAny>(schema: T) {
  return z.preprocess((v) => (v === '' ? undefined : v), schema.optional());
}

export const workloadEndpointSpec = z
  .object({
    node: dnsSubdomain,
    orchestrator: omitEmpty(z.string()),
    workload: omitEmpty(z.string()),
    endpoint: nonEmpty('endpoint').default('eth0'),
    containerID: omitEmpty(
      z.string().superRefine((s, ctx) => {
        if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$/.test(s))
          fail(ctx, `${JSON.stringify(s)} is not a container ID`);
      }),
    ),
    network: omitEmpty(z.string()),
    interfaceName,
    mac: omitEmpty(mac),
    ipNetworks: uniqueNames(hostNetwork, 'address').default([]),
    profiles: profileNames.default([]),
    ports: workloadEndpointPorts.default([]),
    // Written by Calico's CNI plugin and kube-controllers; stored (docs/calico-compat.md).
    pod: omitEmpty(z.string()),
    serviceAccountName: omitEmpty(z.string()),
    ipv4Gateway: omitEmpty(ipv4Address),
    ipv6Gateway: ipv6Only,
    ipNATs: z
      .array(z.object({ internalIP: ipv4Address, externalIP: ipv4Address }).strict())
      .optional(),
    allowSpoofedSourcePrefixes: z.array(z.string()).optional(),
    qosControls: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();

export type WorkloadEndpointSpec = z.output<typeof workloadEndpointSpec>;

export const hostEndpointSpec = z
  .object({
    node: dnsSubdomain,
    interfaceName: z.union([z.literal('*'), interfaceName]).optional(),
    expectedIPs: uniqueNames(ipv4Address, 'address').default([]),
    profiles: profileNames.default([]),
    ports: endpointPorts.default([]),
  })
  .strict()
  .superRefine((spec, ctx) => {
    if (spec.interfaceName === undefined && spec.expectedIPs.length === 0) {
      fail(ctx, 'a HostEndpoint needs interfaceName or expectedIPs (or both)', ['interfaceName']);
    }
  });

export type HostEndpointSpec = z.output<typeof hostEndpointSpec>;
