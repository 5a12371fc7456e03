/**
 * The ADD success result in the shape of the requested spec version, and the reading of a
 * `prevResult` (any supported version) back into what tortie set up.
 *
 * tortie's attachment, as a result: two interfaces (the host veth, without sandbox, and
 * the pod's interface in the sandbox), one /32 on the pod interface with gateway
 * 169.254.1.1, one default route via 169.254.1.1, and the network's DNS settings.
 */
import { z } from 'zod';
import type { DnsConfig } from './config.js';
import { CniCode, CniError } from './errors.js';
import { interfacesCarryMtu, ipsCarryVersion, type CniVersion } from './versions.js';

export const POD_GATEWAY = '169.254.1.1';
export const HOST_SIDE_MAC = 'ee:ee:ee:ee:ee:ee';

export interface Attachment {
  hostIfName: string;
  podIfName: string;
  podMac: string;
  /** CNI_NETNS of the pod. */
  sandbox: string;
  /** The pod's IPv4 address, without prefix length. */
  ip: string;
  mtu?: number;
  dns: DnsConfig;
}

export interface ResultInterface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
}

export interface ResultIp {
  version?: '4' | '6';
  address: string;
  gateway?: string;
  interface?: number;
}

export interface ResultRoute {
  dst: string;
  gw?: string;
}

export interface AddResult {
  cniVersion: CniVersion;
  interfaces: ResultInterface[];
  ips: ResultIp[];
  routes: ResultRoute[];
  dns: DnsConfig;
}

export function buildAddResult(version: CniVersion, a: Attachment): AddResult {
  const withMtu = interfacesCarryMtu(version) && a.mtu !== undefined ? { mtu: a.mtu } : {};
  const ip: ResultIp = {
    ...(ipsCarryVersion(version) ? { version: '4' as const } : {}),
    address: `${a.ip}/32`,
    gateway: POD_GATEWAY,
    interface: 1,
  };
  return {
    cniVersion: version,
    interfaces: [
      { name: a.hostIfName, mac: HOST_SIDE_MAC, ...withMtu },
      { name: a.podIfName, mac: a.podMac, ...withMtu, sandbox: a.sandbox },
    ],
    ips: [ip],
    routes: [{ dst: '0.0.0.0/0', gw: POD_GATEWAY }],
    dns: a.dns,
  };
}

const prevResultSchema = z
  .object({
    interfaces: z
      .array(
        z
          .object({ name: z.string(), mac: z.string().optional(), sandbox: z.string().optional() })
          .passthrough(),
      )
      .optional(),
    ips: z
      .array(
        z
          .object({
            version: z.enum(['4', '6']).optional(),
            address: z.string(),
            gateway: z.string().optional(),
            interface: z.number().int().nonnegative().optional(),
          })
          .passthrough(),
      )
      .optional(),
    routes: z
      .array(z.object({ dst: z.string(), gw: z.string().optional() }).passthrough())
      .optional(),
  })
  .passthrough();

/** What a prevResult says about the attachment (ifName, sandbox) tortie made. */
export interface PreviousAttachment {
  /** The pod interface's entry, found by name (and sandbox, when the result gives one). */
  podInterface: ResultInterface;
  /** The host-side interfaces (no sandbox) listed. */
  hostInterfaces: ResultInterface[];
  /** IPv4 addresses assigned to the pod interface, without prefix length. */
  ips: string[];
  routes: ResultRoute[];
}

/**
 * Reads prevResult for the pod interface `ifName` in `sandbox`. A malformed prevResult is
 * an invalid config (7); one that does not mention the interface a CheckFailed (105).
 */
export function readPrevResult(prev: unknown, ifName: string, sandbox: string): PreviousAttachment {
  const parsed = prevResultSchema.safeParse(prev);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `prevResult.${i.path.join('.')}: ${i.message}`);
    throw new CniError(CniCode.InvalidConfig, `network config: ${problems.join('; ')}`);
  }
  const interfaces = parsed.data.interfaces ?? [];
  const podIndex = interfaces.findIndex(
    (i) =>
      i.name === ifName && (i.sandbox === undefined || i.sandbox === '' || i.sandbox === sandbox),
  );
  const pod = interfaces[podIndex];
  if (!pod) {
    throw new CniError(
      CniCode.CheckFailed,
      `prevResult lists no interface ${ifName} in sandbox ${sandbox} (it lists: ${
        interfaces.map((i) => `${i.name}${i.sandbox ? ` in ${i.sandbox}` : ''}`).join(', ') ||
        'none'
      })`,
    );
  }
  const ips = (parsed.data.ips ?? [])
    .filter((ip) => ip.interface === undefined || ip.interface === podIndex)
    .map((ip) => ip.address)
    .filter((address) => !address.includes(':'))
    .map((address) => address.split('/')[0] ?? address);
  return {
    podInterface: pod,
    hostInterfaces: interfaces.filter((i) => !i.sandbox),
    ips,
    routes: parsed.data.routes ?? [],
  };
}
