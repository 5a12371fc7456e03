/**
 * The conformance lab on one node: a NodeLab (pods behind veths in a node namespace,
 * echo servers and a prober in each) with the BPF dataplane attached to every pod veth.
 *
 * Changes are recorded as the store would hold them and compiled into the maps by
 * `waitForDataplane`; NodeDataplane.program returns once the maps are written, so the
 * dataplane has a change as soon as that call returns.
 */
import { NodeDataplane } from '../../dataplane/node-dataplane.js';
import { removePins } from '../../loader/index.js';
import { parseCidr } from '../../policy/cidr.js';
import type { LocalEndpoint } from '../../policy/compile/index.js';
import type { Endpoint, Labels, NamedPort } from '../../policy/model.js';
import { parseResource, worldFrom, type Resource } from '../../policy/resources.js';
import { destroyNodeLab, labNames, NodeLab, type LabPod } from '../node-lab.js';
import type { ConformanceLab, ConformancePodSpec } from './lab.js';
import type { Protocol } from './schema.js';

export interface OneNodeLabOptions {
  /** Lab id: 1-12 lower-case letters or digits; names every namespace and the bpffs root. */
  id: string;
  /** bpffs directory for the dataplane's pins (default /sys/fs/bpf/tortie-<id>). */
  pinRoot?: string;
  /** Pod addresses come from here, from the 10th address on (default 10.66.0.0/24). */
  pool?: string;
}

const PROTOCOL_NUMBER: Record<Protocol, number> = { TCP: 6, UDP: 17, SCTP: 132 };

interface Pod {
  readonly lab: LabPod;
  readonly id: number;
  readonly namespace: string;
  readonly name: string;
  labels: Labels;
  readonly ports: readonly NamedPort[];
}

export class OneNodeConformanceLab implements ConformanceLab {
  readonly description = 'one node, BPF dataplane';
  readonly podCidr: string;
  private readonly pods = new Map<string, Pod>();
  private readonly namespaces = new Map<string, Labels>();
  private policies: Resource[] = [];
  private dirty = true;
  private readonly network: number;
  private readonly size: number;

  private constructor(
    readonly node: NodeLab,
    readonly dataplane: NodeDataplane,
    readonly pinRoot: string,
    pool: string,
  ) {
    const cidr = parseCidr(pool);
    if (!cidr.ok) throw new Error(`pool ${pool}: ${cidr.reason}`);
    this.podCidr = cidr.cidr.text;
    this.network = cidr.cidr.network;
    this.size = 2 ** (32 - cidr.cidr.prefixLength);
  }

  static async create(opts: OneNodeLabOptions): Promise<OneNodeConformanceLab> {
    labNames(opts.id); // refuses a bad id before anything is made
    const pinRoot = opts.pinRoot ?? `/sys/fs/bpf/tortie-${opts.id}`;
    const node = await NodeLab.create(opts.id, []);
    try {
      const dp = NodeDataplane.open({ pinRoot, nodeNetns: node.nodeNetns });
      try {
        return new OneNodeConformanceLab(node, dp, pinRoot, opts.pool ?? '10.66.0.0/24');
      } catch (e) {
        dp.destroy();
        throw e;
      }
    } catch (e) {
      await node.destroy();
      removePins(pinRoot);
      throw e;
    }
  }

  unsupported(protocol: Protocol): string | undefined {
    return protocol === 'SCTP'
      ? "the lab's pod process serves and probes TCP and UDP only (Node.js has no SCTP sockets)"
      : undefined;
  }

  async createNamespace(name: string, labels: Labels): Promise<void> {
    this.namespaces.set(name, labels);
    this.dirty = true;
  }

  async createPod(spec: ConformancePodSpec): Promise<{ ip: string }> {
    const key = `${spec.namespace}/${spec.name}`;
    if (this.pods.has(key)) throw new Error(`pod ${key} exists already`);
    const index = this.pods.size + 10;
    if (index >= this.size - 1)
      throw new Error(`pool ${this.podCidr} has no address left for ${key}`);
    const ip = u32ToIp(this.network + index);
    // NodeLab serves what its spec lists; the names there are the lab's own, the named
    // ports policies see are the spec's (set on the endpoint below).
    const serve = spec.serve.filter(
      (s): s is { port: number; protocol: 'TCP' | 'UDP' } => s.protocol !== 'SCTP',
    );
    const labPod = await this.node.addPod(
      {
        namespace: spec.namespace,
        name: spec.name,
        labels: spec.labels,
        ports: serve.map((s) => ({
          name: `serve-${s.port}-${s.protocol.toLowerCase()}`,
          protocol: s.protocol,
          port: s.port,
        })),
      },
      ip,
    );
    const ifindex = labPod.network.hostIfindex;
    this.dataplane.attach(ifindex);
    this.dataplane.setLocalRoute(ip, ifindex);
    this.pods.set(key, {
      lab: labPod,
      id: this.pods.size + 1,
      namespace: spec.namespace,
      name: spec.name,
      labels: spec.labels,
      ports: spec.namedPorts.map((p) => ({
        name: p.name,
        port: p.port,
        protocol: PROTOCOL_NUMBER[p.protocol],
      })),
    });
    this.dirty = true;
    return { ip };
  }

  async setPodLabels(pod: string, labels: Labels): Promise<void> {
    this.pod(pod).labels = labels;
    this.dirty = true;
  }

  async setNamespaceLabels(namespace: string, labels: Labels): Promise<void> {
    if (!this.namespaces.has(namespace)) throw new Error(`no namespace ${namespace} in this lab`);
    this.namespaces.set(namespace, labels);
    this.dirty = true;
  }

  async setPolicies(policies: readonly unknown[]): Promise<void> {
    this.policies = policies.map((p) => parseResource(p));
    this.dirty = true;
  }

  async waitForDataplane(): Promise<void> {
    if (!this.dirty) return;
    const namespaces = [...this.namespaces].map(([name, labels]) =>
      // As the API server does: every namespace carries its name as a label.
      parseResource({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } }),
    );
    const locals: LocalEndpoint[] = [...this.pods.values()].map((p) => ({
      endpoint: this.endpoint(p),
      ifindex: p.lab.network.hostIfindex,
      id: p.id,
    }));
    const world = worldFrom(
      [...namespaces, ...this.policies],
      locals.map((l) => l.endpoint),
    );
    this.dataplane.program(world, locals);
    this.dirty = false;
  }

  async probe(
    from: string,
    to: string,
    port: number,
    protocol: Protocol,
    timeoutMs: number,
  ): Promise<boolean> {
    if (protocol === 'SCTP') throw new Error(this.unsupported(protocol));
    const target = this.pod(to).lab.ip;
    return this.pod(from).lab.process.probe(
      protocol === 'TCP' ? 'tcp' : 'udp',
      target,
      port,
      timeoutMs,
    );
  }

  async close(): Promise<void> {
    try {
      this.dataplane.destroy();
    } finally {
      await this.node.destroy();
    }
  }

  private pod(key: string): Pod {
    const p = this.pods.get(key);
    if (p === undefined) throw new Error(`no pod ${key} in this lab`);
    return p;
  }

  private endpoint(p: Pod): Endpoint {
    return {
      key: `${p.namespace}/${p.name}`,
      namespace: p.namespace,
      name: p.name,
      ip: p.lab.ip,
      labels: p.labels,
      profiles: [`kns.${p.namespace}`],
      ports: p.ports,
    };
  }
}

function u32ToIp(n: number): string {
  return [24, 16, 8, 0].map((s) => (n >>> s) & 0xff).join('.');
}

/** Removes a one-node conformance lab left behind by a crash: its namespaces and pins. */
export async function destroyOneNodeLab(
  id: string,
  pinRoot = `/sys/fs/bpf/tortie-${id}`,
): Promise<void> {
  await destroyNodeLab(id);
  removePins(pinRoot);
}
