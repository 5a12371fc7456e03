/**
 * The conformance lab on several nodes: a ClusterLab (etcd, one in-process agent per
 * node, the real CNI plugin, IPIP or plain routing; or with `dataplane: 'iptables'` the
 * agents' iptables mode, plain routing or VXLAN) behind the ConformanceLab interface.
 *
 * - Placement: pods go round-robin over the nodes in the model's pod order (deterministic).
 *   On 2 nodes that is as even as it gets (9 pods: 5 + 4), so about half of the
 *   pod-to-pod probes cross nodes (40 of 72 with the diagonal ignored); `nodeOf` lets the
 *   runner count them. With N nodes about 1 - 1/N of them cross.
 * - Labels, namespaces and policies go through the Datastore as a user's would.
 * - `waitForDataplane` is exact (./settle.ts): every write is noted with its store
 *   revision, and the wait ends when every agent has programmed a model holding the
 *   highest of them.
 *
 * Named ports: the CNI plugin does not take container ports, so the lab adds them to the
 * WorkloadEndpoint after ADD (as an orchestrator integration would).
 */
import { kindOfObject } from '../../datastore/index.js';
import type { Labels } from '../../policy/model.js';
import type { ConformancePodSpec } from '../conformance/lab.js';
import { ClusterLab, type ClusterUpOptions } from './cluster-lab.js';
import { ClusterLabConformance } from './conformance-base.js';
import { DataplaneSettle } from './settle.js';

interface StoredRef {
  kind: string;
  name: string;
  namespace?: string;
}

function refOf(p: unknown): StoredRef {
  const o = p as {
    apiVersion?: string;
    kind?: string;
    metadata?: { name?: string; namespace?: string };
  };
  // The stored kind: a Kubernetes NetworkPolicy and a tortie one of the same name differ.
  const kind = kindOfObject(String(o.apiVersion), String(o.kind))?.name ?? String(o.kind);
  return { kind, name: String(o.metadata?.name), namespace: o.metadata?.namespace };
}

type WepEdit = Parameters<ClusterLab['updateEndpoint']>[1];

export class ClusterConformanceLab extends ClusterLabConformance {
  private applied: { ref: StoredRef; object: unknown }[] = [];

  private constructor(
    lab: ClusterLab,
    readonly settle: DataplaneSettle,
  ) {
    super(lab);
  }

  /** Brings a ClusterLab up (inline agents); on failure removes what it made. */
  static async create(
    opts: Omit<ClusterUpOptions, 'agents'> & { settleTimeoutMs?: number },
  ): Promise<ClusterConformanceLab> {
    const { settleTimeoutMs, ...up } = opts;
    const lab = await ClusterLab.up({ ...up, agents: 'inline' });
    try {
      const settle = await DataplaneSettle.start(
        lab,
        settleTimeoutMs === undefined ? {} : { timeoutMs: settleTimeoutMs },
      );
      return new ClusterConformanceLab(lab, settle);
    } catch (e) {
      await lab.down().catch(() => undefined);
      throw e;
    }
  }

  async createNamespace(name: string, labels: Labels): Promise<void> {
    this.settle.noteWrites(
      await this.lab.store!.apply([
        { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: { ...labels } } },
      ]),
    );
    this.lab.namespacesSeen.add(name);
  }

  /** As ClusterLab.updateEndpoint, noting the revision written (or the current one). */
  private async updateEndpoint(key: string, edit?: WepEdit): Promise<void> {
    const pod = this.lab.pod(key);
    const store = this.lab.store!;
    const weps = await store.list('WorkloadEndpoint', { namespace: pod.namespace });
    const wep = weps.find((w) => w.spec.containerID === pod.containerId);
    if (!wep) throw new Error(`no WorkloadEndpoint for pod ${key}`);
    if (edit === undefined) {
      this.settle.note(wep.metadata.resourceVersion);
      return;
    }
    const copy = structuredClone(wep) as unknown as Parameters<WepEdit>[0];
    edit(copy);
    this.settle.noteWrites(await store.apply([copy]));
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
    });
    // The plugin's WorkloadEndpoint (every node must have it), with the named ports.
    await this.updateEndpoint(
      pod.key,
      spec.namedPorts.length === 0
        ? undefined
        : (wep) => {
            wep.spec.ports = spec.namedPorts.map((p) => ({
              name: p.name,
              protocol: p.protocol,
              port: p.port,
            }));
          },
    );
    return { ip: pod.ip };
  }

  async setPodLabels(pod: string, labels: Labels): Promise<void> {
    await this.updateEndpoint(pod, (wep) => {
      wep.metadata.labels = { ...labels };
    });
  }

  async setNamespaceLabels(namespace: string, labels: Labels): Promise<void> {
    await this.createNamespace(namespace, labels);
  }

  async setPolicies(policies: readonly unknown[]): Promise<void> {
    const store = this.lab.store!;
    const key = (r: StoredRef) => `${r.kind}/${r.namespace ?? ''}/${r.name}`;
    const next = policies.map((object) => ({ ref: refOf(object), object }));
    const keep = new Set(next.map((p) => key(p.ref)));
    const gone = this.applied.filter((p) => !keep.has(key(p.ref)));
    if (next.length > 0) this.settle.noteWrites(await store.apply(next.map((p) => p.object)));
    if (gone.length > 0)
      await this.settle.noteDeletes(
        await store.delete(
          gone.map((p) => p.object),
          { ignoreNotFound: true },
        ),
      );
    this.applied = next;
  }

  /** Every agent has programmed every change made so far (see ./settle.ts). */
  waitForDataplane(): Promise<void> {
    return this.settle.waitForDataplane();
  }

  async close(): Promise<void> {
    await this.settle.close().catch(() => undefined);
    await this.lab.down();
  }
}
