/**
 * What the conformance labs on a ClusterLab share, on etcd (./conformance.ts) and through
 * Kubernetes (./kube-conformance.ts): pods placed round-robin over the nodes in the model's
 * pod order, each serving the model's TCP and UDP ports (no SCTP: Node.js has no SCTP
 * sockets), probed from the pod's process; the lab's description and pod CIDR.
 */
import type { ConformanceLab, ConformancePodSpec } from '../conformance/lab.js';
import type { Protocol } from '../conformance/schema.js';
import type { Labels } from '../../policy/model.js';
import type { ClusterLab } from './cluster-lab.js';

export abstract class ClusterLabConformance implements ConformanceLab {
  readonly podCidr: string;
  private next = 0;

  protected constructor(readonly lab: ClusterLab) {
    this.podCidr = lab.podCidr;
  }

  abstract createNamespace(name: string, labels: Labels): Promise<void>;
  abstract createPod(spec: ConformancePodSpec): Promise<{ ip: string }>;
  abstract setPodLabels(pod: string, labels: Labels): Promise<void>;
  abstract setNamespaceLabels(namespace: string, labels: Labels): Promise<void>;
  abstract setPolicies(policies: readonly unknown[]): Promise<void>;
  abstract waitForDataplane(): Promise<void>;
  abstract close(): Promise<void>;

  /** The node of the next pod: round-robin, deterministic in the model's pod order. */
  protected nextNode(): number {
    return this.next++ % this.lab.nodes.length;
  }

  /** The pod's servers as ClusterLab.addPod takes them ("tcp:80,udp:53"). */
  protected static servers(spec: ConformancePodSpec): string {
    return spec.serve
      .filter((s) => s.protocol !== 'SCTP')
      .map((s) => `${s.protocol.toLowerCase()}:${s.port}`)
      .join(',');
  }

  nodeOf(pod: string): string | undefined {
    return this.lab.pods.find((p) => p.key === pod)?.node;
  }

  get description(): string {
    return this.lab.description;
  }

  unsupported(protocol: Protocol): string | undefined {
    return protocol === 'SCTP'
      ? "the lab's pod process serves and probes TCP and UDP only (Node.js has no SCTP sockets)"
      : undefined;
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
}
