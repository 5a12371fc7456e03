/**
 * The conformance lab on several nodes: a ClusterLab (etcd, one agent per node, the real
 * CNI plugin, IPIP or plain routing) behind the ConformanceLab interface. Pods are spread
 * over the nodes round-robin; labels, namespaces and policies go through the Datastore as
 * a user's would; `waitForDataplane` waits for every agent to be idle after the change.
 *
 * Named ports: the CNI plugin does not take container ports, so the lab adds them to the
 * WorkloadEndpoint after ADD (as an orchestrator integration would).
 */
import type { Labels } from '../../policy/model.js';
import type { ConformanceLab, ConformancePodSpec } from '../conformance/lab.js';
import type { Protocol } from '../conformance/schema.js';
import { ClusterLab, type ClusterUpOptions } from './cluster-lab.js';

interface StoredRef {
  kind: string;
  name: string;
  namespace?: string;
}

function refOf(p: unknown): StoredRef {
  const o = p as { kind?: string; metadata?: { name?: string; namespace?: string } };
  return { kind: String(o.kind), name: String(o.metadata?.name), namespace: o.metadata?.namespace };
}

export class ClusterConformanceLab implements ConformanceLab {
  readonly podCidr: string;
  private next = 0;
  private applied: { ref: StoredRef; object: unknown }[] = [];

  private constructor(readonly lab: ClusterLab) {
    this.podCidr = lab.podCidr;
  }

  static async create(opts: ClusterUpOptions): Promise<ClusterConformanceLab> {
    return new ClusterConformanceLab(await ClusterLab.up(opts));
  }

  get description(): string {
    return this.lab.description;
  }

  unsupported(protocol: Protocol): string | undefined {
    return protocol === 'SCTP'
      ? "the lab's pod process serves and probes TCP and UDP only (Node.js has no SCTP sockets)"
      : undefined;
  }

  async createNamespace(name: string, labels: Labels): Promise<void> {
    await this.lab.createNamespace(name, { ...labels });
  }

  async createPod(spec: ConformancePodSpec): Promise<{ ip: string }> {
    const node = this.next++ % this.lab.nodes.length;
    const servers = spec.serve
      .filter((s) => s.protocol !== 'SCTP')
      .map((s) => `${s.protocol.toLowerCase()}:${s.port}`)
      .join(',');
    const pod = await this.lab.addPod({
      namespace: spec.namespace,
      name: spec.name,
      labels: { ...spec.labels },
      node,
      servers,
    });
    if (spec.namedPorts.length > 0) {
      await this.lab.updateEndpoint(pod.key, (wep) => {
        wep.spec.ports = spec.namedPorts.map((p) => ({
          name: p.name,
          protocol: p.protocol,
          port: p.port,
        }));
      });
    }
    return { ip: pod.ip };
  }

  async setPodLabels(pod: string, labels: Labels): Promise<void> {
    await this.lab.updateEndpoint(pod, (wep) => {
      wep.metadata.labels = { ...labels };
    });
  }

  async setNamespaceLabels(namespace: string, labels: Labels): Promise<void> {
    await this.lab.createNamespace(namespace, { ...labels });
  }

  async setPolicies(policies: readonly unknown[]): Promise<void> {
    const store = this.lab.store!;
    const key = (r: StoredRef) => `${r.kind}/${r.namespace ?? ''}/${r.name}`;
    const next = policies.map((object) => ({ ref: refOf(object), object }));
    const keep = new Set(next.map((p) => key(p.ref)));
    const gone = this.applied.filter((p) => !keep.has(key(p.ref)));
    if (next.length > 0) await store.apply(next.map((p) => p.object));
    if (gone.length > 0)
      await store.delete(
        gone.map((p) => p.object),
        { ignoreNotFound: true },
      );
    this.applied = next;
  }

  waitForDataplane(): Promise<void> {
    return this.lab.waitForDataplane();
  }

  probe(
    from: string,
    to: string,
    port: number,
    protocol: Protocol,
    timeoutMs: number,
  ): Promise<boolean> {
    if (protocol === 'SCTP') throw new Error(this.unsupported(protocol));
    return this.lab.probe(from, to, port, protocol === 'TCP' ? 'tcp' : 'udp', timeoutMs);
  }

  close(): Promise<void> {
    return this.lab.down();
  }
}
