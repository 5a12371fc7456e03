/**
 * The lab's underlay: a namespace holding a bridge `br0`, and one veth per member (a node
 * or the ToR) — the bridge port `t<id>…` in the underlay namespace, `ul` in the member's
 * namespace with its address in the underlay /24. Underlay addresses exist only inside
 * the lab's namespaces.
 */
import { createNetns, deleteNetns, otherNetns, runIn } from '../../plumbing/netns.js';
import { clusterNames, nodeName } from './names.js';

/** How long one plumbing command may take (`ip`, `sysctl` in a lab namespace). */
export const STEP_TIMEOUT = { timeoutMs: 20_000 } as const;

/** Creates the underlay namespace with its bridge; returns its path. */
export async function createUnderlay(id: string): Promise<string> {
  const path = await createNetns(clusterNames(id).underlay);
  await runIn(otherNetns(path), 'ip', ['-batch', '-'], {
    ...STEP_TIMEOUT,
    stdin: 'link set lo up\nlink add br0 type bridge\nlink set br0 up\n',
  });
  return path;
}

/**
 * Joins the namespace `member` (name; path `memberPath`) to the bridge: a veth `port` in
 * the underlay namespace at `ulPath`, its peer `ul` in the member with `ip`/24, up,
 * forwarding on, and (`defaultRoute`) a default route on `ul`.
 */
export async function joinUnderlay(
  ulPath: string,
  port: string,
  member: string,
  memberPath: string,
  ip: string,
  defaultRoute: boolean,
): Promise<void> {
  const ul = otherNetns(ulPath);
  const m = otherNetns(memberPath);
  const link = ['link', 'add', port, 'type', 'veth', 'peer', 'name', 'ul', 'netns', member];
  await runIn(ul, 'ip', link, STEP_TIMEOUT);
  await runIn(ul, 'ip', ['link', 'set', port, 'master', 'br0', 'up'], STEP_TIMEOUT);
  const up = [
    'link set lo up',
    `addr add ${ip}/24 dev ul`,
    'link set ul up',
    ...(defaultRoute ? ['route add default dev ul'] : []),
  ];
  await runIn(m, 'ip', ['-batch', '-'], { ...STEP_TIMEOUT, stdin: up.join('\n') + '\n' });
  await runIn(m, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1'], STEP_TIMEOUT);
}

/** A node's place on the underlay (what plumbNode made). */
export interface PlumbedNode {
  readonly name: string;
  /** Path of its namespace. */
  readonly netns: string;
  readonly underlayIp: string;
  readonly pinRoot: string;
}

/**
 * Node `i` of lab `id`: its namespace `tortie-<id>-n<i>`, a veth `ul` to the underlay
 * bridge with address `<prefix>.<i+1>/24`, a default route on it (proxy ARP for the pods'
 * gateway needs one), forwarding on. The namespace is removed again if a step fails.
 */
export async function plumbNode(
  id: string,
  i: number,
  ulPath: string,
  underlayPrefix: string,
): Promise<PlumbedNode> {
  const names = clusterNames(id);
  const nodeNs = names.node(i);
  const ip = `${underlayPrefix}.${i + 1}`;
  const path = await createNetns(nodeNs);
  try {
    await joinUnderlay(ulPath, names.nodePort(i), nodeNs, path, ip, true);
  } catch (e) {
    await deleteNetns(nodeNs).catch(() => undefined);
    throw e;
  }
  return { name: nodeName(nodeNs), netns: path, underlayIp: ip, pinRoot: names.pinRoot(i) };
}
