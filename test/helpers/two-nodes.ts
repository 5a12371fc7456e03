/**
 * Two tortie nodes on one machine, for the cross-node (IPIP) tests:
 *
 *   pods ── veth ── node A (ns) ── ul ─┐
 *                                      ├─ br0 in the underlay ns ── other hosts (addHost)
 *   pods ── veth ── node B (ns) ── ul ─┘
 *
 * Each node namespace has its uplink `ul` on the underlay (192.0.2.0/24, addresses only
 * inside these namespaces), its own BPF dataplane (NodeDataplane, its own pin root,
 * configured with its own underlay address), the programs on every pod veth and on the
 * uplink, and a remote route for the other node's block. Pods are namespaces behind
 * veths running the lab's pod process (TCP/UDP echo servers and a prober).
 *
 * Everything carries the run id (tortie-t<id>-…, /sys/fs/bpf/tortie-t<id>-<node>) and
 * destroy() removes all of it, also after a failure half-way.
 */
import { createPodNetwork, type PodNetwork } from '../../src/plumbing/index.js';
import { NodeDataplane } from '../../src/dataplane/node-dataplane.js';
import { removePins } from '../../src/loader/index.js';
import { PodProcess } from '../../src/lab/pod-handle.js';
import type { LocalEndpoint } from '../../src/policy/compile/index.js';
import type { Endpoint, NamedPort, Namespace } from '../../src/policy/model.js';
import { worldFrom, type Resource } from '../../src/policy/resources.js';
import { execInOk, ipJson, TestNetnsSet, type TestNetns } from './netns.js';

export type NodeName = 'a' | 'b';

export const UNDERLAY_PREFIX = '192.0.2';
export const UNDERLAY_LEN = 24;

export interface LabNode {
  readonly name: NodeName;
  readonly ns: TestNetns;
  readonly underlayIp: string;
  readonly uplinkIfindex: number;
  /** This node's pod block. */
  readonly block: string;
  readonly pinRoot: string;
  readonly dp: NodeDataplane;
  readonly locals: LocalEndpoint[];
}

export interface TwoNodePod {
  readonly key: string; // namespace/name
  readonly node: NodeName;
  readonly ip: string;
  readonly ns: TestNetns;
  readonly network: PodNetwork;
  readonly process: PodProcess;
  readonly endpoint: Endpoint;
  readonly epId: number;
}

export interface TwoNodeOptions {
  /** Encapsulate between the nodes (ipipMode Always) or not (Never). */
  readonly ipip: boolean;
  /** Pod interface MTU; default 1480 (the underlay's 1500 minus the IPIP header). */
  readonly podMtu?: number;
  /** Pod blocks of A and B; default 10.88.1.0/26 and 10.88.2.0/26. */
  readonly blocks?: Record<NodeName, string>;
}

const SERVED: NamedPort[] = [
  { name: 'tcp-80', protocol: 6, port: 80 },
  { name: 'udp-80', protocol: 17, port: 80 },
];

export class TwoNodes {
  readonly pods: TwoNodePod[] = [];
  private readonly probers: PodProcess[] = [];
  readonly nodes = {} as Record<NodeName, LabNode>;
  private mode: boolean;
  private nextEpId = 1;

  private constructor(
    readonly run: TestNetnsSet,
    readonly underlay: TestNetns,
    readonly options: TwoNodeOptions,
  ) {
    this.mode = options.ipip;
  }

  get ipip(): boolean {
    return this.mode;
  }

  static async create(options: TwoNodeOptions, run = new TestNetnsSet()): Promise<TwoNodes> {
    const underlay = await run.create('ul');
    const lab = new TwoNodes(run, underlay, options);
    try {
      await execInOk(underlay.path, 'ip', ['link', 'set', 'lo', 'up']);
      await execInOk(underlay.path, 'ip', ['link', 'add', 'br0', 'type', 'bridge']);
      await execInOk(underlay.path, 'ip', ['link', 'set', 'br0', 'up']);
      const blocks = options.blocks ?? { a: '10.88.1.0/26', b: '10.88.2.0/26' };
      for (const [i, name] of (['a', 'b'] as const).entries()) {
        const ns = await lab.addHost(`n${name}`, `${UNDERLAY_PREFIX}.${i + 1}`);
        const uplinkIfindex = (
          await ipJson<{ ifindex: number }[]>(ns.path, ['link', 'show', 'ul'])
        )[0]!.ifindex;
        const pinRoot = `/sys/fs/bpf/${run.prefix}-${name}`;
        const dp = NodeDataplane.open({ pinRoot, nodeNetns: ns.path });
        lab.nodes[name] = {
          name,
          ns,
          underlayIp: `${UNDERLAY_PREFIX}.${i + 1}`,
          uplinkIfindex,
          block: blocks[name],
          pinRoot,
          dp,
          locals: [],
        };
      }
      for (const node of Object.values(lab.nodes)) {
        const other = lab.other(node.name);
        node.dp.setNodeConfig({ underlayIp: node.underlayIp, uplinkIfindex: node.uplinkIfindex });
        node.dp.setKnownNodes([other.underlayIp]);
        node.dp.attachUplink(node.uplinkIfindex);
      }
      await lab.setIpip(options.ipip);
    } catch (e) {
      await lab.destroy().catch(() => undefined);
      throw e;
    }
    return lab;
  }

  other(name: NodeName): LabNode {
    return this.nodes[name === 'a' ? 'b' : 'a'];
  }

  /** A process in `node`'s own namespace that can probe like a pod (the node's own traffic). */
  async nodeProber(node: NodeName): Promise<PodProcess> {
    const p = await PodProcess.start(this.nodes[node].ns.path, '');
    this.probers.push(p);
    return p;
  }

  /**
   * A host namespace on the underlay (`ul` at `ip`/24, a default route onto the
   * underlay: what proxy ARP for the pods' gateway needs). Nodes are hosts; so is an
   * outsider that is not a node.
   */
  async addHost(role: string, ip: string): Promise<TestNetns> {
    const ns = await this.run.create(role);
    const port = `p${role}`.slice(0, 15);
    await execInOk(this.underlay.path, 'ip', [
      'link',
      'add',
      port,
      'type',
      'veth',
      'peer',
      'name',
      'ul',
      'netns',
      ns.name,
    ]);
    await execInOk(this.underlay.path, 'ip', ['link', 'set', port, 'master', 'br0', 'up']);
    await execInOk(ns.path, 'ip', ['-batch', '-'], {
      stdin: [
        'link set lo up',
        `addr add ${ip}/${UNDERLAY_LEN} dev ul`,
        'link set ul up',
        'route add default dev ul',
      ].join('\n'),
    });
    await execInOk(ns.path, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    return ns;
  }

  /**
   * Switches both nodes between IPIP and plain routing (ipipMode Always / Never): the
   * remote route's flag in BPF, and the kernel route for the other block that an agent
   * keeps in both modes (via the other node; in IPIP with the MTU the tunnel leaves,
   * so the node's own TCP picks segments that fit). Pods' packets never use the kernel
   * route in IPIP mode: tortie_from_pod redirects them encapsulated; the node's own
   * packets follow it and are encapsulated by tortie_to_uplink.
   */
  async setIpip(ipip: boolean): Promise<void> {
    for (const node of Object.values(this.nodes)) {
      const other = this.other(node.name);
      node.dp.setRemoteRoute(other.block, other.underlayIp, { ipip });
      await execInOk(node.ns.path, 'ip', [
        'route',
        'replace',
        other.block,
        'via',
        other.underlayIp,
        'dev',
        'ul',
        ...(ipip ? ['mtu', String(1500 - 20)] : []),
      ]);
    }
    this.mode = ipip;
  }

  /** A pod on `node` at `ip` serving TCP and UDP echo on port 80; attached and routed. */
  async addPod(
    node: NodeName,
    spec: { namespace: string; name: string; labels: Record<string, string> },
    ip: string,
  ): Promise<TwoNodePod> {
    const n = this.nodes[node];
    const key = `${spec.namespace}/${spec.name}`;
    const ns = await this.run.create(`${node}-${spec.namespace}-${spec.name}`);
    const network = await createPodNetwork({
      workloadId: `${this.run.prefix}/${node}/${key}`,
      podNetns: ns.path,
      hostNetns: n.ns.path,
      ip,
      mtu: this.options.podMtu ?? 1480,
    });
    const process = await PodProcess.start(ns.path, 'tcp:80,udp:80');
    const epId = this.nextEpId++;
    const endpoint: Endpoint = {
      key,
      namespace: spec.namespace,
      name: spec.name,
      ip,
      labels: spec.labels,
      profiles: [`kns.${spec.namespace}`],
      ports: SERVED,
    };
    const pod: TwoNodePod = { key, node, ip, ns, network, process, endpoint, epId };
    this.pods.push(pod);
    n.dp.attach(network.hostIfindex);
    n.dp.setLocalRoute(ip, network.hostIfindex);
    n.locals.push({ endpoint, ifindex: network.hostIfindex, id: epId });
    return pod;
  }

  pod(key: string): TwoNodePod {
    const p = this.pods.find((x) => x.key === key);
    if (!p) throw new Error(`no pod ${key}`);
    return p;
  }

  /** Compiles the same world (namespaces, every pod of both nodes, policies) on each node. */
  program(namespaces: Namespace[], policies: Resource[]): void {
    const nsResources: Resource[] = namespaces.map((n) => ({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: n.name, labels: n.labels },
      namespace: n,
    }));
    const world = worldFrom(
      [...nsResources, ...policies],
      this.pods.map((p) => p.endpoint),
    );
    for (const node of Object.values(this.nodes)) node.dp.program(world, node.locals);
  }

  /** Packets counted on `node` for (epId, reason, dir) — epId 0: the uplink's own rows. */
  count(node: NodeName, epId: number, reason: string, dir: string): bigint {
    return this.nodes[node].dp
      .counters()
      .filter((c) => c.epId === epId && c.reason === reason && c.dir === dir)
      .reduce((n, c) => n + c.packets, 0n);
  }

  async destroy(): Promise<void> {
    await Promise.all(
      [...this.pods.map((p) => p.process), ...this.probers].map((p) =>
        p.stop().catch(() => undefined),
      ),
    );
    const errors: unknown[] = [];
    for (const node of Object.values(this.nodes)) {
      try {
        node.dp.destroy();
      } catch (e) {
        errors.push(e);
      }
    }
    // Pins of a node whose dataplane never opened (a failure half-way).
    for (const name of ['a', 'b']) {
      try {
        removePins(`/sys/fs/bpf/${this.run.prefix}-${name}`);
      } catch (e) {
        errors.push(e);
      }
    }
    await this.run.removeAll();
    if (errors.length > 0) throw errors[0];
  }
}
