/**
 * Checks that a pod's network is as createPodNetwork left it, and lists what is not.
 * Three spawns, run in parallel: an ip batch in each namespace and the host sysctls.
 */
import { stat } from 'node:fs/promises';
import { HOST_VETH_MAC, POD_GATEWAY_IP } from './constants.js';
import { IpBatchError, runIpBatch } from './ip-batch.js';
import {
  ipAddrsSchema,
  ipLinksSchema,
  ipRoutesSchema,
  parseIpJson,
  splitJsonOutputs,
  type IpAddr,
  type IpLink,
  type IpRoute,
} from './iproute-json.js';
import { describeNetns, type NetnsTarget } from './netns.js';
import { planPodNetwork, type PodNetworkOptions, type PodNetworkPlan } from './pod-network-plan.js';
import { readSysctls } from './sysctl.js';

export type PodNetworkProblemKind =
  | 'missing-netns'
  | 'missing-link'
  | 'link-down'
  | 'wrong-mac'
  | 'wrong-mtu'
  | 'wrong-peer'
  | 'wrong-address'
  | 'missing-route'
  | 'proxy-arp-off'
  | 'proxy-delay'
  | 'ip-forward-off'
  | 'gateway-unroutable';

export interface PodNetworkProblem {
  kind: PodNetworkProblemKind;
  /** Which namespace the problem is in. */
  side: 'host' | 'pod';
  /** The interface concerned, when there is one. */
  ifName?: string;
  /** A sentence a user can act on. */
  message: string;
}

interface HostState {
  links: IpLink[];
  routes: IpRoute[];
  /** The route `ip route get 169.254.1.1` chose, or the error it gave. */
  gatewayRoute: IpRoute | { error: string };
}

interface PodState {
  links: IpLink[];
  addrs: IpAddr[];
  routes: IpRoute[];
}

/** Returns every difference from what createPodNetwork sets up; empty when all is right. */
export async function checkPodNetwork(opts: PodNetworkOptions): Promise<PodNetworkProblem[]> {
  const plan = planPodNetwork(opts);
  const [hostExists, podExists] = await Promise.all([exists(plan.host), exists(plan.pod)]);
  const problems: PodNetworkProblem[] = [];
  if (!hostExists) problems.push(missingNetns('host', plan.host));
  if (!podExists) problems.push(missingNetns('pod', plan.pod));
  if (!hostExists) return problems;

  const [host, sysctls, pod] = await Promise.all([
    readHost(plan.host),
    readSysctls(plan.host, sysctlKeys(plan)),
    podExists ? readPod(plan.pod) : Promise.resolve(undefined),
  ]);
  const hostLink = host.links.find((link) => link.ifname === plan.hostIfName);
  problems.push(...checkHost(plan, host, hostLink, sysctls));
  if (pod) problems.push(...checkPod(plan, pod, hostLink));
  return problems;
}

function checkHost(
  plan: PodNetworkPlan,
  host: HostState,
  link: IpLink | undefined,
  sysctls: Map<string, string | undefined>,
): PodNetworkProblem[] {
  const ifName = plan.hostIfName;
  const problems: PodNetworkProblem[] = [];
  const add = (kind: PodNetworkProblemKind, message: string): void => {
    problems.push({ kind, side: 'host', ifName, message });
  };
  if (sysctls.get('net.ipv4.ip_forward') !== '1') {
    problems.push({
      kind: 'ip-forward-off',
      side: 'host',
      message: `net.ipv4.ip_forward is ${sysctls.get('net.ipv4.ip_forward') ?? 'unreadable'} in ${describeNetns(plan.host)}, not 1`,
    });
  }
  if (!link) {
    add('missing-link', `host veth ${ifName} does not exist in ${describeNetns(plan.host)}`);
    return problems;
  }
  if (!link.flags.includes('UP')) add('link-down', `host veth ${ifName} is down`);
  if (link.address?.toLowerCase() !== HOST_VETH_MAC) {
    add('wrong-mac', `host veth ${ifName} has MAC ${link.address ?? 'none'}, not ${HOST_VETH_MAC}`);
  }
  if (plan.mtu !== undefined && link.mtu !== plan.mtu)
    add('wrong-mtu', `host veth ${ifName} has MTU ${link.mtu}, not ${plan.mtu}`);
  const proxyArp = sysctls.get(`net.ipv4.conf.${ifName}.proxy_arp`);
  if (proxyArp !== '1')
    add('proxy-arp-off', `proxy_arp is ${proxyArp ?? 'unreadable'} on ${ifName}, not 1`);
  const proxyDelay = sysctls.get(`net.ipv4.neigh.${ifName}.proxy_delay`);
  if (proxyDelay !== '0') {
    add(
      'proxy-delay',
      `proxy_delay is ${proxyDelay ?? 'unreadable'} on ${ifName}, not 0 (ARP answers for the gateway are delayed)`,
    );
  }
  if (!host.routes.some((route) => isLinkRoute(route, plan.ip, ifName))) {
    const others = host.routes.filter((route) => routeDst(route) === `${plan.ip}/32`);
    add(
      'missing-route',
      `no route ${plan.ip}/32 dev ${ifName} scope link in ${describeNetns(plan.host)}` +
        (others.length > 0 ? ` (found: ${others.map(formatRoute).join('; ')})` : ''),
    );
  }
  const gateway = host.gatewayRoute;
  if ('error' in gateway || gateway.dev === ifName) {
    add(
      'gateway-unroutable',
      `${describeNetns(plan.host)} has no route to ${POD_GATEWAY_IP} through another interface` +
        ` (${'error' in gateway ? gateway.error : `it goes back out ${ifName}`}), so proxy ARP will not answer` +
        ` for the pod's gateway: give the node a default route`,
    );
  }
  return problems;
}

function checkPod(
  plan: PodNetworkPlan,
  pod: PodState,
  hostLink: IpLink | undefined,
): PodNetworkProblem[] {
  const ifName = plan.podIfName;
  const problems: PodNetworkProblem[] = [];
  const add = (kind: PodNetworkProblemKind, message: string, on: string = ifName): void => {
    problems.push({ kind, side: 'pod', ifName: on, message });
  };
  const lo = pod.links.find((link) => link.ifname === 'lo');
  if (!lo?.flags.includes('UP')) add('link-down', `lo is down in ${plan.pod.path}`, 'lo');
  const link = pod.links.find((candidate) => candidate.ifname === ifName);
  if (!link) {
    add('missing-link', `pod interface ${ifName} does not exist in ${plan.pod.path}`);
    return problems;
  }
  if (!link.flags.includes('UP')) add('link-down', `pod interface ${ifName} is down`);
  if (plan.mtu !== undefined && link.mtu !== plan.mtu)
    add('wrong-mtu', `pod interface ${ifName} has MTU ${link.mtu}, not ${plan.mtu}`);
  if (hostLink && (hostLink.link_index !== link.ifindex || link.link_index !== hostLink.ifindex)) {
    add(
      'wrong-peer',
      `pod interface ${ifName} (ifindex ${link.ifindex}) is not the peer of host veth ${plan.hostIfName}`,
    );
  }
  const inet = (pod.addrs.find((addr) => addr.ifname === ifName)?.addr_info ?? []).filter(
    (a) => a.family === 'inet',
  );
  if (!inet.some((a) => a.local === plan.ip && a.prefixlen === 32)) {
    add('wrong-address', `pod interface ${ifName} lacks ${plan.ip}/32 (has: ${formatAddrs(inet)})`);
  }
  const extra = inet.filter((a) => a.local !== plan.ip);
  if (extra.length > 0)
    add('wrong-address', `pod interface ${ifName} has unexpected addresses ${formatAddrs(extra)}`);
  if (!pod.routes.some((route) => isLinkRoute(route, POD_GATEWAY_IP, ifName))) {
    add('missing-route', `no route ${POD_GATEWAY_IP} dev ${ifName} scope link in ${plan.pod.path}`);
  }
  const isDefault = (route: IpRoute): boolean =>
    route.dst === 'default' &&
    route.gateway === POD_GATEWAY_IP &&
    route.dev === ifName &&
    isUnicast(route);
  if (!pod.routes.some(isDefault)) {
    add(
      'missing-route',
      `no route default via ${POD_GATEWAY_IP} dev ${ifName} onlink in ${plan.pod.path}`,
    );
  }
  return problems;
}

async function readHost(target: NetnsTarget): Promise<HostState> {
  const lines = [
    { step: 'list links', ifName: '', command: 'link show' },
    { step: 'list routes', ifName: '', command: 'route show table main' },
    // Last, because it fails (and ends the batch) when nothing routes the gateway.
    { step: 'route the gateway', ifName: '', command: `route get ${POD_GATEWAY_IP}` },
  ];
  let stdout: string;
  let gatewayError: string | undefined;
  try {
    stdout = await runIpBatch(target, lines, { json: true });
  } catch (err) {
    if (!(err instanceof IpBatchError) || err.failedIndex !== 2) throw err;
    stdout = err.stdout;
    gatewayError = err.stderr;
  }
  const [links, routes, gateway] = splitJsonOutputs(stdout);
  const gatewayRoutes =
    gatewayError === undefined ? parseIpJson(ipRoutesSchema, gateway, 'ip route get') : [];
  return {
    links: parseIpJson(ipLinksSchema, links, 'ip link show'),
    routes: parseIpJson(ipRoutesSchema, routes, 'ip route show'),
    gatewayRoute: gatewayRoutes[0] ?? { error: gatewayError ?? 'ip route get returned no route' },
  };
}

async function readPod(target: NetnsTarget): Promise<PodState> {
  const stdout = await runIpBatch(
    target,
    [
      { step: 'list links', ifName: '', command: 'link show' },
      { step: 'list addresses', ifName: '', command: 'address show' },
      { step: 'list routes', ifName: '', command: 'route show table main' },
    ],
    { json: true },
  );
  const [links, addrs, routes] = splitJsonOutputs(stdout);
  return {
    links: parseIpJson(ipLinksSchema, links, 'ip link show'),
    addrs: parseIpJson(ipAddrsSchema, addrs, 'ip address show'),
    routes: parseIpJson(ipRoutesSchema, routes, 'ip route show'),
  };
}

function sysctlKeys(plan: PodNetworkPlan): string[] {
  return [
    'net.ipv4.ip_forward',
    `net.ipv4.conf.${plan.hostIfName}.proxy_arp`,
    `net.ipv4.neigh.${plan.hostIfName}.proxy_delay`,
  ];
}

async function exists(target: NetnsTarget): Promise<boolean> {
  if (target.kind === 'current') return true;
  try {
    await stat(target.path);
    return true;
  } catch {
    return false;
  }
}

function missingNetns(side: 'host' | 'pod', target: NetnsTarget): PodNetworkProblem {
  return {
    kind: 'missing-netns',
    side,
    message: `${side} ${describeNetns(target)} does not exist`,
  };
}

function isUnicast(route: IpRoute): boolean {
  return route.type === undefined || route.type === 'unicast';
}

/** `DST/32 dev IFNAME scope link`, without a gateway. */
function isLinkRoute(route: IpRoute, dst: string, ifName: string): boolean {
  return (
    routeDst(route) === `${dst}/32` &&
    route.dev === ifName &&
    route.scope === 'link' &&
    !route.gateway &&
    isUnicast(route)
  );
}

/** iproute2 prints a /32 destination without its prefix length. */
function routeDst(route: IpRoute): string {
  return route.dst === 'default' || route.dst.includes('/') ? route.dst : `${route.dst}/32`;
}

function formatRoute(route: IpRoute): string {
  return [
    route.type,
    route.dst,
    route.gateway && `via ${route.gateway}`,
    route.dev && `dev ${route.dev}`,
    route.scope && `scope ${route.scope}`,
  ]
    .filter(Boolean)
    .join(' ');
}

function formatAddrs(addrs: IpAddr['addr_info']): string {
  return addrs.length === 0
    ? 'none'
    : addrs.map((a) => `${a.local ?? '?'}/${a.prefixlen ?? '?'}`).join(', ');
}
