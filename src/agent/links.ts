/**
 * Interfaces and addresses of the node's network namespace, read with one `ip -json`
 * spawn (~3 ms) per question: the agent asks once per reconcile, not per endpoint.
 */
import { netnsTarget, runIpIn } from '../plumbing/netns.js';
import { ipAddrsSchema, ipLinksSchema } from '../plumbing/iproute-json.js';
import { HOST_VETH_PREFIX } from '../plumbing/index.js';
import { runIpBatch } from '../plumbing/ip-batch.js';
import { parseKernelRoutes, type KernelRoute } from './routes.js';

/** Interface name → ifindex in the namespace (undefined: the agent's own). */
export async function listLinks(nodeNetns: string | undefined): Promise<Map<string, number>> {
  const { stdout } = await runIpIn(netnsTarget(nodeNetns, 'node network namespace'), [
    '-json',
    'link',
    'show',
  ]);
  const links = ipLinksSchema.parse(entries(stdout));
  return new Map(links.map((l) => [l.ifname, l.ifindex]));
}

/**
 * The node's underlay address as `a.b.c.d/n`: the first global IPv4 address of an
 * interface that is up and is neither loopback nor a pod veth. undefined when there is none.
 */
export async function detectNodeAddress(
  nodeNetns: string | undefined,
): Promise<string | undefined> {
  const { stdout } = await runIpIn(netnsTarget(nodeNetns, 'node network namespace'), [
    '-json',
    'address',
    'show',
    'up',
  ]);
  const addrs = ipAddrsSchema.parse(entries(stdout));
  for (const a of addrs) {
    if (a.ifname === 'lo' || a.ifname.startsWith(HOST_VETH_PREFIX)) continue;
    for (const info of a.addr_info) {
      if (info.family === 'inet' && info.local && (info.scope ?? 'global') === 'global') {
        return `${info.local}/${info.prefixlen ?? 32}`;
      }
    }
  }
  return undefined;
}

/**
 * Every IPv4 address of the namespace, on any interface, sorted: what the node's INPUT
 * chain would get a pod's packet for (the BPF dataplane's host routes). Loopback
 * addresses are included as found; the caller decides.
 */
export async function listNodeAddresses(nodeNetns: string | undefined): Promise<string[]> {
  const { stdout } = await runIpIn(netnsTarget(nodeNetns, 'node network namespace'), [
    '-json',
    'address',
    'show',
  ]);
  const addrs = ipAddrsSchema.parse(entries(stdout));
  const out = new Set<string>();
  for (const a of addrs) {
    for (const info of a.addr_info) if (info.family === 'inet' && info.local) out.add(info.local);
  }
  return [...out].sort();
}

/** The ifindex of the interface holding `ip` in the namespace; undefined when none does. */
export async function findAddressInterface(
  nodeNetns: string | undefined,
  ip: string,
): Promise<number | undefined> {
  const { stdout } = await runIpIn(netnsTarget(nodeNetns, 'node network namespace'), [
    '-json',
    'address',
    'show',
  ]);
  const addrs = ipAddrsSchema.parse(entries(stdout));
  return addrs.find((a) => a.addr_info.some((i) => i.family === 'inet' && i.local === ip))?.ifindex;
}

/** iproute2's JSON array without the empty objects it prints for filtered-out links. */
function entries(stdout: string): unknown[] {
  const parsed = JSON.parse(stdout || '[]') as unknown[];
  return parsed.filter((e) => typeof e === 'object' && e !== null && 'ifindex' in e);
}

/** The routes with tortie's protocol in the namespace's main table (`ip -j route show proto N`). */
export async function listKernelRoutes(
  nodeNetns: string | undefined,
  proto: number,
): Promise<KernelRoute[]> {
  const { stdout } = await runIpIn(netnsTarget(nodeNetns, 'node network namespace'), [
    '-json',
    'route',
    'show',
    'proto',
    String(proto),
  ]);
  return parseKernelRoutes(stdout);
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
  const { stdout } = await runIpIn(netnsTarget(nodeNetns, 'node network namespace'), [
    '-json',
    'link',
    'show',
  ]);
  return ipLinksSchema.parse(entries(stdout)).find((l) => l.ifname === name)?.mtu;
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

/** NodeNetns over `ip` in the namespace (undefined: the agent's own). */
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
