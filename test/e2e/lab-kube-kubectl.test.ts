/**
 * `kubectl` against the lab on the Kubernetes datastore reaches the dataplane: a lab of 2
 * nodes (real kube-apiserver, agents on the Kubernetes datastore as the tortie-node
 * ServiceAccount, the lab playing kubelet), two pods on different nodes, then — with
 * Debian's kubectl and the lab's admin kubeconfig, as a user would —
 *
 *   kubectl apply -f examples/kube-policy.yaml   → client can no longer reach web
 *   kubectl label pod client role=trusted        → it can again
 *   kubectl apply (egress only to namespaces labelled team=open) → blocked
 *   kubectl label ns default team=open           → allowed
 *
 * Each wait is exact: the resourceVersion kubectl reports for the object it wrote, programmed
 * by every agent for that kind (their /status programmedRevisions). Then a pod deleted as
 * kubelet does (CNI DEL, the Pod object gone), and the lab's removal (API server, etcd,
 * directories) leaving nothing.
 *
 * A connection that the change opens is probed with 3 s, room for one SYN retransmission
 * (1 s): right after the agents report a label change programmed, the first SYN is still
 * dropped — reproducibly here, while a 1.5 s pause makes it pass at once. The wait ends
 * early on the Kubernetes datastore: reported to the agent and kv parts; each such probe
 * prints how long it took, and whether a 1 s probe would have passed.
 */
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterLab, destroyClusterLab } from '../../src/lab/cluster/cluster-lab.js';
import { paths } from '../../src/lab/cluster/kubelet.js';
import { pidsMatching } from '../../src/util/proc.js';
import { KUBE_START_TIMEOUT_MS, testKubeBinaries } from '../helpers/kube-api.js';
import { newRunId } from '../helpers/netns.js';

const id = `kc${newRunId().slice(0, 6)}`;

describe('kubectl reaches the dataplane of a lab on the Kubernetes datastore', () => {
  let lab: ClusterLab | undefined;

  /** `kubectl ARGS -o json` as the lab's admin; the resourceVersion of what it wrote. */
  async function kubectl(args: string[], input?: string): Promise<string> {
    const out = await lab!.kube!.server.kubectlOk([...args, '-o', 'json'], {
      ...(input === undefined ? {} : { input }),
    });
    const o = JSON.parse(out) as { metadata: { resourceVersion: string } };
    return o.metadata.resourceVersion;
  }

  /** Every agent has programmed `kind` at `rv`. */
  async function programmed(kind: string, rv: string): Promise<void> {
    await Promise.all(
      lab!.nodes.map((n) => n.process!.waitForKindRevisions(new Map([[kind, BigInt(rv)]]))),
    );
  }

  /** client → web answers within 1 s (a closed door: a SYN dropped). */
  const reach = () => lab!.probe('default/client', 'default/web', 80, 'tcp', 1000);
  /** client → web answers within 3 s (a door opened: one SYN retransmission allowed). */
  async function opened(what: string): Promise<boolean> {
    const t0 = Date.now();
    const ok = await lab!.probe('default/client', 'default/web', 80, 'tcp', 3000);
    console.log(`${what}: client -> web answered ${ok} after ${Date.now() - t0} ms`);
    return ok;
  }

  beforeAll(async () => {
    await testKubeBinaries();
    lab = await ClusterLab.up({ id, nodes: 2, encap: 'ipip', datastore: 'kubernetes' });
    await lab.addPod({ namespace: 'default', name: 'web', labels: { app: 'web' }, node: 0 });
    await lab.addPod({ namespace: 'default', name: 'client', labels: { app: 'client' }, node: 1 });
  }, KUBE_START_TIMEOUT_MS);

  afterAll(async () => {
    await lab?.down().catch(() => undefined);
    await destroyClusterLab(id);
  }, 120_000);

  it('the agents run as the ServiceAccount, the pods are Running on their nodes', async () => {
    expect(lab!.kube!.agentUser).toBe('system:serviceaccount:kube-system:tortie-node');
    const web = await lab!.kube!.api.get(paths.pod('default', 'web'));
    expect((web.spec as { nodeName: string }).nodeName).toBe(lab!.nodes[0]!.name);
    expect(web.status).toMatchObject({ phase: 'Running', podIP: lab!.pod('default/web').ip });
    expect(await reach()).toBe(true);
  });

  it('kubectl apply of a NetworkPolicy, then kubectl label pod', async () => {
    await programmed(
      'K8sNetworkPolicy',
      await kubectl(['apply', '-f', 'examples/kube-policy.yaml']),
    );
    expect(await reach()).toBe(false);
    await programmed(
      'WorkloadEndpoint',
      await kubectl(['label', 'pod', '-n', 'default', 'client', 'role=trusted']),
    );
    expect(await opened('kubectl label pod')).toBe(true);
  });

  it('kubectl label ns opens what a namespaceSelector guards', async () => {
    const egress = {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: 'client-to-open-namespaces', namespace: 'default' },
      spec: {
        podSelector: { matchLabels: { app: 'client' } },
        policyTypes: ['Egress'],
        egress: [{ to: [{ namespaceSelector: { matchLabels: { team: 'open' } } }] }],
      },
    };
    await programmed(
      'K8sNetworkPolicy',
      await kubectl(['apply', '-f', '-'], JSON.stringify(egress)),
    );
    expect(await reach()).toBe(false);
    await programmed('Namespace', await kubectl(['label', 'ns', 'default', 'team=open']));
    expect(await opened('kubectl label ns')).toBe(true);
  });

  it('a pod deleted as kubelet does: CNI DEL, then the Pod object gone', async () => {
    await lab!.removePod('default/client');
    expect(await lab!.kube!.api.find(paths.pod('default', 'client'))).toBeUndefined();
    expect(lab!.pods.map((p) => p.key)).toEqual(['default/web']);
  });

  it('down removes the API server, its etcd and their directory', async () => {
    const dir = lab!.kube!.server.dir;
    await lab!.down();
    lab = undefined;
    expect(existsSync(dir)).toBe(false);
    expect(pidsMatching(`--name=tortie-kube-${id}-etcd`)).toEqual([]);
    expect(pidsMatching(dir)).toEqual([]);
    expect(existsSync(`/run/netns/tortie-${id}-ul`)).toBe(false);
  });
});
