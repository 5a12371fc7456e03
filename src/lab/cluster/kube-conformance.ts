/**
 * The conformance lab through Kubernetes (`tortie lab conformance --datastore kubernetes`):
 * a ClusterLab on the Kubernetes datastore (a real kube-apiserver, the agents and the CNI
 * plugin reading the API with manifests/' ServiceAccounts, the lab playing kubelet) behind
 * the ConformanceLab interface. Everything a case sets goes through the API, as a user with
 * kubectl would set it:
 *
 *   namespaces      Namespace objects with the model's labels (and their `default`
 *                   ServiceAccount, which no controller makes here);
 *   pods            Pod objects bound to their node (round-robin over the nodes, as the
 *                   etcd lab places them), their container ports the model's named ports,
 *                   then CNI ADD with kubelet's arguments and the status kubelet writes;
 *   label changes   merge patches of the Pod's / Namespace's labels (`kubectl label`);
 *   policies        networking.k8s.io/v1 NetworkPolicies applied server-side
 *                   (`kubectl apply --server-side`), deleted when a step drops them.
 *
 * `waitForDataplane` is exact (./kube-settle.ts): every agent has programmed, per kind,
 * the resourceVersion of the lab's last write of that kind.
 */
import type { Labels } from '../../policy/model.js';
import type { ConformancePodSpec } from '../conformance/lab.js';
import { ClusterLab, type ClusterUpOptions } from './cluster-lab.js';
import { ClusterLabConformance } from './conformance-base.js';
import type { KubeApi, KubeObject } from './kube-api.js';
import { KubeSettle } from './kube-settle.js';
import { labelsPatch, NAMESPACE_NAME_LABEL, paths } from './kubelet.js';

/** A NetworkPolicy of a case, checked: its namespace and name. */
interface PolicyRef {
  readonly namespace: string;
  readonly name: string;
  readonly object: KubeObject;
}

/** Refuses what cannot be applied as a Kubernetes NetworkPolicy, naming the field. */
export function networkPolicyRef(p: unknown, i: number): PolicyRef {
  const o = p as {
    apiVersion?: unknown;
    kind?: unknown;
    metadata?: { name?: unknown; namespace?: unknown };
  };
  const where = `policies[${i}]`;
  if (o?.apiVersion !== 'networking.k8s.io/v1' || o.kind !== 'NetworkPolicy')
    throw new Error(
      `${where}: ${String(o?.apiVersion)} ${String(o?.kind)}: through Kubernetes the lab applies networking.k8s.io/v1 NetworkPolicy objects only`,
    );
  if (typeof o.metadata?.name !== 'string' || o.metadata.name === '')
    throw new Error(`${where}.metadata.name: required`);
  if (typeof o.metadata.namespace !== 'string' || o.metadata.namespace === '')
    throw new Error(`${where}.metadata.namespace: required (a NetworkPolicy is namespaced)`);
  const object = structuredClone(p) as KubeObject;
  // What the server owns is not the applier's to send.
  for (const f of ['resourceVersion', 'uid', 'creationTimestamp', 'managedFields', 'generation'])
    delete object.metadata[f];
  return { namespace: o.metadata.namespace, name: o.metadata.name, object };
}

export class KubeConformanceLab extends ClusterLabConformance {
  private applied = new Map<string, PolicyRef>();

  private constructor(
    lab: ClusterLab,
    readonly settle: KubeSettle,
  ) {
    super(lab);
  }

  /** Brings the lab up on the Kubernetes datastore; on failure removes what it made. */
  static async create(
    opts: Omit<ClusterUpOptions, 'agents' | 'datastore'> & { settleTimeoutMs?: number },
  ): Promise<KubeConformanceLab> {
    const { settleTimeoutMs, ...up } = opts;
    const lab = await ClusterLab.up({ ...up, datastore: 'kubernetes' });
    try {
      const settle = await KubeSettle.start(
        lab.kube!.api,
        () =>
          lab.nodes.map((n) => {
            if (n.process === undefined) throw new Error(`node ${n.name} has no agent process`);
            return n.process;
          }),
        settleTimeoutMs === undefined ? {} : { timeoutMs: settleTimeoutMs },
      );
      return new KubeConformanceLab(lab, settle);
    } catch (e) {
      await lab.down().catch(() => undefined);
      throw e;
    }
  }

  private get api(): KubeApi {
    return this.lab.kube!.api;
  }

  async createNamespace(name: string, labels: Labels): Promise<void> {
    await this.lab.createNamespace(name, { ...labels });
    // Labels as the model says, also when it was there.
    await this.setNamespaceLabels(name, labels);
  }

  async createPod(spec: ConformancePodSpec): Promise<{ ip: string }> {
    const node = this.nextNode();
    const servers = ClusterLabConformance.servers(spec);
    const pod = await this.lab.addPod({
      namespace: spec.namespace,
      name: spec.name,
      labels: { ...spec.labels },
      node,
      servers,
      ports: spec.namedPorts.map((p) => ({
        name: p.name,
        containerPort: p.port,
        protocol: p.protocol,
      })),
    });
    this.settle.note('WorkloadEndpoint', pod.resourceVersion);
    return { ip: pod.ip };
  }

  async setPodLabels(pod: string, labels: Labels): Promise<void> {
    const p = this.lab.pod(pod);
    const current = await this.api.get(paths.pod(p.namespace, p.name));
    const written = await this.api.mergePatch(
      paths.pod(p.namespace, p.name),
      labelsPatch(current.metadata.labels, labels),
    );
    this.settle.note('WorkloadEndpoint', written.metadata.resourceVersion);
  }

  async setNamespaceLabels(namespace: string, labels: Labels): Promise<void> {
    const current = await this.api.get(paths.namespace(namespace));
    const written = await this.api.mergePatch(
      paths.namespace(namespace),
      labelsPatch(current.metadata.labels, labels, [NAMESPACE_NAME_LABEL]),
    );
    this.settle.note('Namespace', written.metadata.resourceVersion);
  }

  async setPolicies(policies: readonly unknown[]): Promise<void> {
    const next = new Map<string, PolicyRef>(
      policies.map((p, i) => {
        const ref = networkPolicyRef(p, i);
        return [`${ref.namespace}/${ref.name}`, ref] as const;
      }),
    );
    for (const ref of next.values()) {
      const written = await this.api.apply(
        paths.networkPolicy(ref.namespace, ref.name),
        ref.object,
      );
      this.settle.note('K8sNetworkPolicy', written.metadata.resourceVersion);
    }
    for (const [key, ref] of this.applied) {
      if (next.has(key)) continue;
      const path = paths.networkPolicy(ref.namespace, ref.name);
      const current = await this.api.find(path);
      if (current === undefined) continue;
      await this.api.delete(path);
      await this.settle.noteNetworkPolicyDelete(
        ref.namespace,
        ref.name,
        current.metadata.resourceVersion ?? '0',
      );
    }
    this.applied = next;
  }

  /** Every agent has programmed every change made so far, per kind (./kube-settle.ts). */
  waitForDataplane(): Promise<void> {
    return this.settle.waitForDataplane();
  }

  async close(): Promise<void> {
    this.settle.close();
    await this.lab.down();
  }
}
