/**
 * What the one-node conformance labs share, whatever their dataplane: a NodeLab (pods
 * behind veths in a node namespace, echo servers and a prober in each), the model the
 * runner builds (namespaces, pods with labels and named ports, policies) kept as the
 * store would hold it, addresses from a pool, probes from inside the pods. A subclass
 * says how a new pod is wired (`podAdded`) and how the model reaches its dataplane
 * (`program`), which `waitForDataplane` calls once per batch of changes.
 */
import { parseCidr } from '../../policy/cidr.js';
import type { Endpoint, Labels, NamedPort, World } from '../../policy/model.js';
import { parseResource, worldFrom, type Resource } from '../../policy/resources.js';
import type { LabPod, NodeLab } from '../node-lab.js';
import type { ConformanceLab, ConformancePodSpec } from './lab.js';
import type { Protocol } from './schema.js';

const PROTOCOL_NUMBER: Record<Protocol, number> = { TCP: 6, UDP: 17, SCTP: 132 };

export interface OneNodePod {
  readonly lab: LabPod;
  /** 1, 2, … in creation order (the BPF dataplane's endpoint ids). */
  readonly id: number;
  readonly namespace: string;
  readonly name: string;
  labels: Labels;
  readonly ports: readonly NamedPort[];
}

export abstract class OneNodeModelLab implements ConformanceLab {
  abstract readonly description: string;
  readonly podCidr: string;
  private readonly pods = new Map<string, OneNodePod>();
  private readonly namespaces = new Map<string, Labels>();
  private policies: Resource[] = [];
  private dirty = true;
  private readonly network: number;
  private readonly size: number;

  protected constructor(
    readonly node: NodeLab,
    pool: string,
  ) {
    const cidr = parseCidr(pool);
    if (!cidr.ok) throw new Error(`pool ${pool}: ${cidr.reason}`);
    this.podCidr = cidr.cidr.text;
    this.network = cidr.cidr.network;
    this.size = 2 ** (32 - cidr.cidr.prefixLength);
  }

  /** Wires a pod's veth into the dataplane right after it exists (default: nothing). */
  protected podAdded(_pod: LabPod): void {}

  /** Brings the dataplane to `world` for these pods (in creation order). */
  protected abstract program(world: World, pods: readonly OneNodePod[]): Promise<void> | void;

  abstract close(): Promise<void>;

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
    this.podAdded(labPod);
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
    const pods = [...this.pods.values()];
    const world = worldFrom(
      [...namespaces, ...this.policies],
      pods.map((p) => this.endpoint(p)),
    );
    await this.program(world, pods);
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

  protected endpoint(p: OneNodePod): Endpoint {
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

  private pod(key: string): OneNodePod {
    const p = this.pods.get(key);
    if (p === undefined) throw new Error(`no pod ${key} in this lab`);
    return p;
  }
}

function u32ToIp(n: number): string {
  return [24, 16, 8, 0].map((s) => (n >>> s) & 0xff).join('.');
}
