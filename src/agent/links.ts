/**
 * Interfaces and addresses of the node's network namespace, read by rtnetlink dumps in
 * the native addon (no process: a reconcile asks several of these, and an ADD waits for
 * that reconcile), kernel routes too; route changes still go through one `ip -batch`.
 */
import { native } from '../native/index.js';
import { netnsTarget } from '../plumbing/netns.js';
import { HOST_VETH_PREFIX } from '../plumbing/index.js';
import { runIpBatch } from '../plumbing/ip-batch.js';
import type { KernelRoute } from './routes.js';

/** The path the native calls take (undefined: the agent's own namespace), checked. */
function pathOf(nodeNetns: string | undefined): string | undefined {
  const target = netnsTarget(nodeNetns, 'node network namespace');
  return target.kind === 'current' ? undefined : target.path;
}

/** Interface name → ifindex in the namespace (undefined: the agent's own). */
export async function listLinks(nodeNetns: string | undefined): Promise<Map<string, number>> {
  return new Map(native.linkDump(pathOf(nodeNetns)).map((l) => [l.name, l.ifindex]));
}

/** Global-or-narrower IPv4 addresses with their interface's name and state. */
function addresses(nodeNetns: string | undefined) {
  const path = pathOf(nodeNetns);
  const links = new Map(native.linkDump(path).map((l) => [l.ifindex, l]));
  return native.addressDump(path).map((a) => ({ ...a, link: links.get(a.ifindex) }));
}

/** rtnetlink's RT_SCOPE_UNIVERSE ("global"). */
const SCOPE_GLOBAL = 0;

/**
 * The node's underlay address as `a.b.c.d/n`: the first global IPv4 address of an
 * interface that is up and is neither loopback nor a pod veth. undefined when there is none.
 */
export async function detectNodeAddress(
  nodeNetns: string | undefined,
): Promise<string | undefined> {
  for (const a of addresses(nodeNetns)) {
    const name = a.link?.name ?? '';
    if (a.link?.up !== true || name === 'lo' || name.startsWith(HOST_VETH_PREFIX)) continue;
    if (a.scope === SCOPE_GLOBAL) return `${a.address}/${a.prefixlen}`;
  }
  return undefined;
}

/**
 * Every IPv4 address of the namespace, on any interface, sorted: what the node's INPUT
 * chain would get a pod's packet for (the BPF dataplane's host routes). Loopback
 * addresses are included as found; the caller decides.
 */
export async function listNodeAddresses(nodeNetns: string | undefined): Promise<string[]> {
  return [...new Set(native.addressDump(pathOf(nodeNetns)).map((a) => a.address))].sort();
}

/** The ifindex of the interface holding `ip` in the namespace; undefined when none does. */
export async function findAddressInterface(
  nodeNetns: string | undefined,
  ip: string,
): Promise<number | undefined> {
  return native.addressDump(pathOf(nodeNetns)).find((a) => a.address === ip)?.ifindex;
}

/** The routes with tortie's protocol in the namespace's main table, by rtnetlink dump. */
export async function listKernelRoutes(
  nodeNetns: string | undefined,
  proto: number,
): Promise<KernelRoute[]> {
  const path = pathOf(nodeNetns);
  const routes = native.routeDump(path, proto);
  if (routes.length === 0) return [];
  const names = new Map(native.linkDump(path).map((l) => [l.ifindex, l.name]));
  return routes.map((r) => ({
    cidr: `${r.dst ?? '0.0.0.0'}/${r.prefixlen}`,
    via: r.gateway ?? '',
    dev: (r.oif === undefined ? undefined : names.get(r.oif)) ?? '',
    mtu: r.mtu,
    ...(r.prefsrc === undefined ? {} : { src: r.prefsrc }),
  }));
}

/** Runs route lines (from diffKernelRoutes) in one `ip -batch -`. */
export async function applyKernelRoutes(
  nodeNetns: string | undefined,
  lines: readonly string[],
  dev: string,
): Promise<void> {
  if (lines.length === 0) return;
  await runIpBatch(
    netnsTarget(nodeNetns, 'node network namespace'),
    lines.map((command) => ({
      step: 'keep the kernel route to a remote block',
      ifName: dev,
      command,
    })),
  );
}

/** The MTU of interface `name` in the namespace; undefined when there is no such interface. */
export async function linkMtu(
  nodeNetns: string | undefined,
  name: string,
): Promise<number | undefined> {
  return native.linkDump(pathOf(nodeNetns)).find((l) => l.name === name)?.mtu;
}

/** The node namespace's interfaces, addresses and routes, as the managers ask for them. */
export interface NodeNetns {
  detectNodeAddress(): Promise<string | undefined>;
  listLinks(): Promise<Map<string, number>>;
  linkMtu(name: string): Promise<number | undefined>;
  findAddressInterface(ip: string): Promise<number | undefined>;
  listNodeAddresses(): Promise<string[]>;
  listKernelRoutes(proto: number): Promise<KernelRoute[]>;
  applyKernelRoutes(lines: readonly string[], dev: string): Promise<void>;
}

/** NodeNetns over rtnetlink (and `ip -batch` for route changes) in the namespace (undefined: the agent's own). */
export function nodeNetns(netns: string | undefined): NodeNetns {
  return {
    detectNodeAddress: () => detectNodeAddress(netns),
    listLinks: () => listLinks(netns),
    linkMtu: (name) => linkMtu(netns, name),
    findAddressInterface: (ip) => findAddressInterface(netns, ip),
    listNodeAddresses: () => listNodeAddresses(netns),
    listKernelRoutes: (proto) => listKernelRoutes(netns, proto),
    applyKernelRoutes: (lines, dev) => applyKernelRoutes(netns, lines, dev),
  };
}

/**
 * The node's underlay address: the one given (`--ip`), else the one found. `problem` says
 * what the user should know when there is none (and `cause` why detection failed).
 */
export async function nodeAddress(
  given: string | undefined,
  detect: () => Promise<string | undefined>,
): Promise<{ address: string | undefined; problem?: string; cause?: string }> {
  if (given !== undefined) return { address: given };
  let address: string | undefined;
  try {
    address = await detect();
  } catch (e) {
    const cause = (e as Error).message;
    return {
      address: undefined,
      problem:
        `no underlay address given (--ip), and it could not be detected: ${cause}; ` +
        'other nodes cannot route to this one',
      cause,
    };
  }
  if (address !== undefined) return { address };
  return {
    address: undefined,
    problem: 'no underlay address given (--ip) or found: other nodes cannot route to this one',
  };
}
