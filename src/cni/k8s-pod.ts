/**
 * What a Kubernetes pod asks of the CNI plugin through Calico's annotations, read from the
 * pod (and its namespace) as Calico's plugin reads them:
 *
 *   cni.projectcalico.org/ipAddrs     '["10.65.0.7"]': exactly this address (from IPAM: it
 *                                     must lie in a pool and be free)
 *   cni.projectcalico.org/ipv4pools   '["blue-pool", "10.66.0.0/16"]': allocate from these
 *                                     pools (by name or CIDR) instead of the config's; the
 *                                     namespace's annotation applies when the pod has none
 *
 * `cni.projectcalico.org/ipAddrsNoIpam` (an address outside IPAM) is behind a feature flag
 * in Calico, off by default, and tortie has no such flag: it is refused as Calico refuses
 * it then. IPv6 addresses and pools are refused: tortie pods are IPv4 only.
 *
 * Pure: the pod's facts come in, a request or a CniError (code 7, naming the pod and the
 * annotation, with Calico's wording first) comes out.
 */
import { CniCode, CniError } from './errors.js';

export const IP_ADDRS_ANNOTATION = 'cni.projectcalico.org/ipAddrs';
export const IP_ADDRS_NO_IPAM_ANNOTATION = 'cni.projectcalico.org/ipAddrsNoIpam';
export const IPV4_POOLS_ANNOTATION = 'cni.projectcalico.org/ipv4pools';
export const IPV6_POOLS_ANNOTATION = 'cni.projectcalico.org/ipv6pools';

/** What the plugin reads of the pod it is called for. */
export interface PodFacts {
  namespace: string;
  name: string;
  uid?: string;
  annotations: Record<string, string>;
  /** The annotations of the pod's namespace ({} when it has none). */
  namespaceAnnotations: Record<string, string>;
  /**
   * What the pod's WorkloadEndpoint takes from the pod (the native Pod mapping derives
   * them: labels with Calico's three, the namespace's and account's profiles, named
   * ports): the plugin's put repeats them, as the mapping refuses a put that differs.
   */
  endpoint: {
    labels: Record<string, string>;
    profiles: string[];
    ports: unknown[];
    serviceAccountName?: string;
  };
}

export type PodAddressRequest =
  /** Allocate from the pools named (undefined: the config's, else every usable pool). */
  | { kind: 'auto'; pools?: string[]; poolsFrom?: string }
  /** Take exactly this address; pools (if named) must contain it. */
  | { kind: 'explicit'; ip: string; pools?: string[]; poolsFrom?: string };

export function podAddressRequest(pod: PodFacts): PodAddressRequest {
  const who = `pod ${pod.namespace}/${pod.name}`;
  const ipAddrs = pod.annotations[IP_ADDRS_ANNOTATION] ?? '';
  const noIpam = pod.annotations[IP_ADDRS_NO_IPAM_ANNOTATION] ?? '';
  if (ipAddrs !== '' && noIpam !== '') {
    refuse(
      `can't have both annotations: 'ipAddrs' and 'ipAddrsNoIpam' in use at the same time (${who})`,
    );
  }
  if (noIpam !== '') {
    refuse(
      `requested feature is not enabled: ip_addrs_no_ipam (${who} has ${IP_ADDRS_NO_IPAM_ANNOTATION}; tortie takes every pod address from IPAM: use ${IP_ADDRS_ANNOTATION})`,
    );
  }
  const v6pools = pod.annotations[IPV6_POOLS_ANNOTATION] ?? '';
  if (v6pools !== '') {
    refuse(
      `${who}: annotation ${IPV6_POOLS_ANNOTATION} asks for IPv6 pools, but tortie pods are IPv4 only`,
    );
  }
  const pools = poolsOf(pod, who);
  if (ipAddrs === '') return { kind: 'auto', ...pools };
  return { kind: 'explicit', ip: explicitAddress(ipAddrs, who), ...pools };
}

/** The pod's ipv4pools annotation, else its namespace's (Calico's precedence). */
function poolsOf(pod: PodFacts, who: string): { pools?: string[]; poolsFrom?: string } {
  const own = pod.annotations[IPV4_POOLS_ANNOTATION] ?? '';
  const inherited = pod.namespaceAnnotations[IPV4_POOLS_ANNOTATION] ?? '';
  const raw = own !== '' ? own : inherited;
  if (raw === '') return {};
  const from =
    own !== ''
      ? `annotation ${IPV4_POOLS_ANNOTATION} of ${who}`
      : `annotation ${IPV4_POOLS_ANNOTATION} of namespace ${pod.namespace}`;
  const list = stringList(raw, from);
  if (list.length === 0) refuse(`${from} specified but empty`);
  for (const p of list) {
    if (p.includes(':')) refuse(`${from}: "${p}" isn't a IPv4 address (tortie pods are IPv4 only)`);
  }
  return { pools: list, poolsFrom: from };
}

/** Calico's checks of the ipAddrs list, in Calico's words; then tortie's IPv4-only rule. */
function explicitAddress(raw: string, who: string): string {
  const list = stringList(
    raw,
    `failed to parse IPs ${raw} for annotation "${IP_ADDRS_ANNOTATION}" (${who})`,
  );
  if (list.length === 0) refuse(`annotation "${IP_ADDRS_ANNOTATION}" specified but empty (${who})`);
  let v4: string | undefined;
  for (const ip of list) {
    if (isIpv4(ip)) {
      if (v4 !== undefined)
        refuse(
          `cannot have more than one IPv4 address for "${IP_ADDRS_ANNOTATION}" annotation (${who})`,
        );
      v4 = ip;
    } else if (ip.includes(':') && /^[0-9a-fA-F:.]+$/.test(ip)) {
      refuse(
        `${who}: annotation ${IP_ADDRS_ANNOTATION} names IPv6 address ${ip}, but tortie pods are IPv4 only`,
      );
    } else {
      refuse(`invalid IP format: ${ip} (annotation ${IP_ADDRS_ANNOTATION} of ${who})`);
    }
  }
  return v4!;
}

function stringList(raw: string, what: string): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (err) {
    refuse(`${what}: failed to parse '${raw}' as JSON: ${(err as Error).message}`);
  }
  if (!Array.isArray(parsed) || parsed.some((v) => typeof v !== 'string')) {
    refuse(`${what}: failed to parse '${raw}' as JSON: expected a list of strings`);
  }
  return parsed as string[];
}

const OCTET = '(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])';
const IPV4 = new RegExp(`^${OCTET}\\.${OCTET}\\.${OCTET}\\.${OCTET}$`);

function isIpv4(ip: string): boolean {
  return IPV4.test(ip);
}

function refuse(problem: string): never {
  throw new CniError(CniCode.InvalidConfig, problem);
}
